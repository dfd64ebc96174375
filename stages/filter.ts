/**
 * Paper step 1 — filter (seed 001, App. B): keep Tulu-3 rows that are Python function tasks.
 *
 * A row is kept when
 *   - its last user turn (the task description) mentions "python" (case-insensitive) and "def " — App. B's
 *     "regex search for keywords" leaves open which text is searched (`keyword_scope`) and the letter case
 *     (`keyword_case`), the two readings that move the yield most (docs/fidelity.md);
 *   - prompt and response are valid Unicode (no lone surrogates);
 *   - the prompt is at most `max_prompt_tokens` tokens by a real tokenizer of the target family
 *     (`tokenizer`; `count: raw` counts the user text alone — the default —, `chat` the chat-templated prompt);
 *   - the last assistant turn holds fenced Python code defining at least one top-level function
 *     (the blocks that define functions are joined, with the imports of the other Python blocks);
 *   - that code parses and its module level executes without error in the sandboxed executor;
 *   - the prompt is not an exact duplicate of one already kept (ordered, done by the engine).
 * Every other row is dropped under a named reason (see DROP_REASONS) and kept in the rejects file.
 */
import { z } from "zod";
import type { DataflowStage, Drop, Rec, StageContext } from "../pipeline/stage.ts";
import type { Executor, FunctionInfo } from "../pipeline/executor/types.ts";
import { countPromptTokens, getTokenCounter, type TokenizerFamily } from "../pipeline/tokenize.ts";
import { oneLine, UserError } from "../pipeline/errors.ts";

export const filterConfigSchema = z.strictObject({
  /** Tokenizer family of the target model for the prompt-length rule. */
  tokenizer: z.enum(["qwen", "llama3", "chars"]).default("qwen"),
  /** What is counted: the raw user text, or the chat-templated prompt. */
  count: z.enum(["raw", "chat"]).default("raw"),
  max_prompt_tokens: z.number().int().positive().default(2048),
  /** Keywords the prompt must contain (case-insensitive for "python", as the paper). */
  require_python: z.boolean().default(true),
  require_def: z.boolean().default(true),
  /**
   * Which text the keyword tests read: the last user turn (default: the task description the row keeps),
   * every user turn, or the whole conversation (user and assistant turns; the answers' ```python fences and
   * `def` lines then pass almost every coding row).
   */
  keyword_scope: z.enum(["last_user", "all_user", "conversation"]).default("last_user"),
  /** "insensitive" (default): "python" in any letter case ("Python"); "sensitive": exactly "python". "def " is always as written. */
  keyword_case: z.enum(["insensitive", "sensitive"]).default("insensitive"),
  /** Module-level execution limit for the "executes without error" check. */
  exec_timeout_s: z.number().positive().default(2),
  concurrency: z.number().int().positive().default(16),
});
export type FilterConfig = z.infer<typeof filterConfigSchema>;

export const DROP_REASONS = [
  "bad_row",
  "no_user_turn",
  "no_assistant_turn",
  "no_python_mention",
  "no_def_mention",
  "invalid_unicode",
  "prompt_too_long",
  "no_code_block",
  "non_python_code",
  "no_function",
  "syntax_error",
  "exec_error",
  "exec_timeout",
  "exec_crash",
  "duplicate",
] as const;

export interface FilterOut extends Rec {
  source: string;
  prompt: string;
  code: string;
  entry_point: string;
  signature: string;
  provenance: { row_id: string; turns: number; code_blocks: number; prompt_tokens: number; functions: string[] };
}

interface Block {
  lang: string;
  code: string;
}

const PY_TAGS = new Set(["", "python", "py", "python3", "py3", "ipython", "python2"]);

/** Fenced code blocks of a markdown answer (an unterminated last fence runs to the end). */
export function codeBlocks(text: string): Block[] {
  const blocks: Block[] = [];
  const re = /(^|\n)[ \t]*```[ \t]*([^\n`]*)\n([\s\S]*?)(?:\n[ \t]*```|$(?![\s\S]))/g;
  for (const m of text.matchAll(re)) blocks.push({ lang: m[2].trim().toLowerCase().split(/\s+/)[0] ?? "", code: m[3] });
  return blocks;
}

const TOP_DEF = /^(?:async\s+)?def\s+[A-Za-z_]\w*\s*\(/m;
const IMPORT_LINE = /^(?:import\s+\S|from\s+\S+\s+import\s)/;

/** The code to keep: Python blocks defining top-level functions, plus the imports of other Python blocks. */
export function extractCode(response: string): { code: string; blocks: number } | { reason: "no_code_block" | "non_python_code" | "no_function"; blocks: number } {
  const blocks = codeBlocks(response);
  if (!blocks.length) return { reason: "no_code_block", blocks: 0 };
  const py = blocks.filter((b) => PY_TAGS.has(b.lang));
  if (!py.length) return { reason: "non_python_code", blocks: blocks.length };
  const defs = py.filter((b) => TOP_DEF.test(b.code));
  if (!defs.length) return { reason: "no_function", blocks: blocks.length };
  const imports: string[] = [];
  for (const b of py) {
    if (defs.includes(b)) continue;
    for (const line of b.code.split("\n")) if (IMPORT_LINE.test(line) && !imports.includes(line)) imports.push(line);
  }
  const parts = [...(imports.length ? [imports.join("\n")] : []), ...defs.map((b) => b.code.replace(/\s+$/, ""))];
  return { code: parts.join("\n\n") + "\n", blocks: blocks.length };
}

/**
 * The function the prompt names (first mentioned), else the last top-level function. A mention is a call
 * (`name(`), a quoted/backticked name, "function/named/called name", or a bare word when the name looks like
 * an identifier rather than English (underscore, digit or capital).
 */
export function pickEntryPoint(prompt: string, fns: FunctionInfo[]): FunctionInfo {
  let best: { fn: FunctionInfo; at: number } | undefined;
  for (const fn of fns) {
    // every form below holds the name as written: a prompt without it matches none (and costs no regex compile)
    if (!prompt.includes(fn.name)) continue;
    const n = fn.name.replace(/[$]/g, "\\$&");
    const forms = [`\\b${n}\\s*\\(`, `[\`'"]${n}\\b`, `\\b(?:function|named|called|def)\\s+${n}\\b`];
    if (/[_\d]|[A-Z]/.test(fn.name)) forms.push(`\\b${n}\\b`);
    const m = new RegExp(forms.join("|")).exec(prompt);
    if (m && (!best || m.index < best.at)) best = { fn, at: m.index };
  }
  return best?.fn ?? fns[fns.length - 1];
}

type Turn = { role: string; content: string };

/** The row's chat turns (empty when `messages` is not a list). */
function turnsOf(rec: Rec): Turn[] {
  return Array.isArray(rec.messages) ? (rec.messages as Turn[]) : [];
}

/** The text the keyword tests read (filter.keyword_scope). */
export function keywordText(messages: Turn[], lastUser: string, scope: "last_user" | "all_user" | "conversation"): string {
  if (scope === "last_user") return lastUser;
  const turns = scope === "all_user" ? messages.filter((m) => m?.role === "user") : messages;
  return turns.map((m) => (typeof m?.content === "string" ? m.content : "")).join("\n");
}

function lastTurn(messages: Turn[], role: string) {
  for (let i = messages.length - 1; i >= 0; i--) if (messages[i]?.role === role) return { msg: messages[i], index: i };
  return undefined;
}

/**
 * Start the sandbox and build the tokenizer (each once per run: both are cached), without waiting for either;
 * the sandbox's promise is returned. A failure is reported where a row awaits it (the first check or count).
 */
function startServices(ctx: StageContext<FilterConfig>): Promise<Executor> {
  const executor = ctx.getExecutor();
  executor.catch(() => {});
  if (ctx.config.tokenizer !== "chars") getTokenCounter(ctx.config.tokenizer as TokenizerFamily).catch(() => {});
  return executor;
}

export const filterStage: DataflowStage<FilterConfig, Rec, FilterOut> = {
  kind: "dataflow",
  name: "filter",
  version: "1",
  description: "keep Python function tasks (paper App. B)",
  input: "source",
  inputFields: ["messages", "source", "_bad"],
  outputFields: ["id", "source", "prompt", "code", "entry_point", "signature", "provenance"],
  configSchema: filterConfigSchema,
  perfKeys: ["concurrency"],
  dedupeKey: (o) => o.prompt,
  // Under --shard, rows go to slices by the same text the de-duplication keys on (the last user turn), so
  // exact duplicates meet in one slice and the kept set equals the unsharded run's.
  shardKey: (rec) => {
    const user = lastTurn(turnsOf(rec), "user");
    return user && typeof user.msg.content === "string" ? user.msg.content : rec.id;
  },
  // The sandbox (~0.5 s to start) and the tokenizer (~1 s to build) start before the input is read; open() and
  // the rows take them up where they need them.
  warm: startServices,
  async open(ctx) {
    const cfg = ctx.config;
    const family = cfg.tokenizer as TokenizerFamily;
    // Only rows that reach the execution check wait for the sandbox: the rest are read, tested and tokenized
    // while it starts (from warm(), or from here). A sandbox that cannot start stops the stage with one line,
    // as when it was awaited here (a UserError is never counted as a record's error).
    const executorP = startServices(ctx).catch((e) => {
      throw e instanceof UserError ? e : new UserError(`the sandboxed executor did not start: ${oneLine(e)}`);
    });
    executorP.catch(() => {}); // reported by the first record that waits for it
    const drop = (rec: Rec, reason: (typeof DROP_REASONS)[number], detail?: string): { out: FilterOut[]; drop: Drop[] } => ({
      out: [],
      drop: [{ id: rec.id, reason, ...(detail ? { detail } : {}) }],
    });
    return {
      concurrency: cfg.concurrency,
      async process(rec) {
        if (rec._bad) return drop(rec, "bad_row", String(rec._bad));
        const messages = turnsOf(rec);
        const user = lastTurn(messages, "user");
        if (!user || typeof user.msg.content !== "string") return drop(rec, "no_user_turn");
        const last = messages[messages.length - 1];
        if (!last || last.role !== "assistant" || typeof last.content !== "string" || !last.content.trim() || user.index > messages.length - 1)
          return drop(rec, "no_assistant_turn");
        const prompt = user.msg.content;
        const searched = keywordText(messages, prompt, cfg.keyword_scope);
        if (cfg.require_python && !(cfg.keyword_case === "sensitive" ? searched.includes("python") : /python/i.test(searched)))
          return drop(rec, "no_python_mention");
        if (cfg.require_def && !searched.includes("def ")) return drop(rec, "no_def_mention");
        if (!prompt.isWellFormed() || !last.content.isWellFormed()) return drop(rec, "invalid_unicode", "lone surrogate in the prompt or response");
        const tokens = await countPromptTokens(cfg.count === "chat" ? messages.slice(0, user.index + 1) : prompt, family, { chatTemplate: cfg.count === "chat" });
        if (tokens > cfg.max_prompt_tokens) return drop(rec, "prompt_too_long", `${tokens} > ${cfg.max_prompt_tokens} ${family} tokens`);
        const ex = extractCode(last.content);
        if ("reason" in ex) return drop(rec, ex.reason);
        const check = await (await executorP).checkProgram(ex.code, { timeoutS: cfg.exec_timeout_s });
        ctx.counters.add(check.static ? "checks_static" : "checks_forked", 1); // executor.static_check: no child for an inert module
        if (check.status === "syntax_error") return drop(rec, "syntax_error", check.message);
        if (!check.functions.length) return drop(rec, "no_function", check.classes.length ? `only classes: ${check.classes.join(", ")}` : undefined);
        if (check.status === "error") return drop(rec, "exec_error", `${check.errorType}: ${check.message ?? ""}`.slice(0, 300));
        if (check.status === "timeout") return drop(rec, "exec_timeout", `module level ran past ${cfg.exec_timeout_s}s`);
        if (check.status === "crash") return drop(rec, "exec_crash", check.message);
        const entry = pickEntryPoint(prompt, check.functions);
        return {
          out: [
            {
              id: rec.id,
              source: String(rec.source ?? "unknown"),
              prompt,
              code: ex.code,
              entry_point: entry.name,
              signature: entry.signature,
              provenance: { row_id: rec.id, turns: messages.length, code_blocks: ex.blocks, prompt_tokens: tokens, functions: check.functions.map((f) => f.name) },
            },
          ],
          drop: [],
        };
      },
    };
  },
};
