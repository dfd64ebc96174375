/**
 * rationalize (paper §3.2 step III, STaR-style post-hoc rationalization): per failing test, explain why
 * gold's output is the answer for that input.
 *  - LLM backend: the output-rationalization prompt (App. E) with the gold output; the reasoning is kept.
 *    Dropped: empty (`empty_rationale`), code without prose (`code_only_rationale`), or a stated final
 *    answer that contradicts gold's output under both comparison modes (`rationale_contradicts_output`).
 *  - heuristic backend: an execution-grounded template rationale (rationale_source: template): the
 *    arguments, the successive values of gold's local variables on them (traced in the sandbox,
 *    stages/heuristic/trace.py) and gold's output.
 */
import { z } from "zod";
import type { DataflowStage, Outcome, StageContext } from "../pipeline/stage.ts";
import { formatPyValue, parseLiteral } from "../pipeline/executor/index.ts";
import { clip, countedChat, helperScript, isHeuristic, llmOverrideSchema, sameOutput, sourceHash, recordConcurrency, stageLlmFingerprint } from "./common.ts";
import { templateRationale, type TracedVar } from "./heuristic/templates.ts";
import type { Executor } from "../pipeline/executor/types.ts";
import { parseRat, rationalizePrompt, templateHashes } from "./heuristic/llm-io.ts";
import type { TestRec } from "./attack.ts";

export const rationalizeConfigSchema = z.strictObject({
  /** Template backend: include the gold function's intermediate values on the input (traced in the sandbox). */
  template_trace: z.boolean().default(true),
  /** Prose characters (outside code blocks) below which a rationale counts as code-only. */
  min_prose_chars: z.number().int().min(0).default(40),
  llm: llmOverrideSchema,
  /** Records in flight (default: llm.concurrency on an OpenAI backend, 8 on the heuristic one). */
  concurrency: z.number().int().positive().optional(),
});
export type RationalizeConfig = z.infer<typeof rationalizeConfigSchema>;

export interface RationaleRec extends TestRec {
  rationale: string;
  rationale_source: "llm" | "template";
}

/** Parameter names of a `name(a: int, b=2, *args)` signature (top-level commas only). */
export function paramNames(signature: string): string[] {
  const open = signature.indexOf("(");
  if (open < 0) return [];
  let depth = 0;
  let cur = "";
  const parts: string[] = [];
  for (const c of signature.slice(open + 1)) {
    if (c === "(" || c === "[" || c === "{") depth++;
    if (c === ")" || c === "]" || c === "}") {
      if (depth === 0) break;
      depth--;
    }
    if (c === "," && depth === 0) {
      parts.push(cur);
      cur = "";
    } else cur += c;
  }
  parts.push(cur);
  return parts
    .map((p) => p.trim().split(/[:=]/)[0].trim())
    .filter((p) => p && p !== "*" && p !== "/" && p !== "self" && !p.startsWith("**"));
}

/** The call's arguments as the paper's `Input:` line: `"BCDEFG"`, `[1, 2], 3`. */
export function inputText(args: { args: unknown[]; kwargs?: Record<string, unknown> }): string {
  const pos = args.args.map((a) => formatPyValue(a as any));
  const kw = Object.entries(args.kwargs ?? {}).map(([k, v]) => `${k}=${formatPyValue(v as any)}`);
  return [...pos, ...kw].join(", ");
}

/** Text outside fenced code blocks. */
export function proseOf(text: string): string {
  return text.replace(/```[\s\S]*?(```|$)/g, " ").replace(/\s+/g, " ").trim();
}

/** Intermediate values of gold's entry function on the test input; undefined when tracing fails. */
async function traceGold(executor: Executor, rec: TestRec): Promise<TracedVar[] | undefined> {
  const res = await executor.runScript(
    helperScript("trace.py"),
    { code: rec.code, entry_point: rec.entry_point, args: rec.test.args.args, kwargs: rec.test.args.kwargs ?? {} },
    { timeoutS: 3, projectCode: true },
  );
  const o = res.output as { ok?: boolean; vars?: TracedVar[] } | undefined;
  return res.status === "ok" && o?.ok ? o.vars : undefined;
}

export const rationalizeStage: DataflowStage<RationalizeConfig, TestRec, RationaleRec> = {
  kind: "dataflow",
  name: "rationalize",
  version: "1",
  description: "explain, without code, why gold's output is right for each failing test (LLM or template)",
  input: "attack",
  inputFields: ["prompt", "signature", "entry_point", "test"],
  outputFields: ["rationale", "rationale_source"],
  configSchema: rationalizeConfigSchema,
  perfKeys: ["concurrency"],
  async fingerprintExtra({ root }) {
    const heuristic = await isHeuristic(root, "rationalize");
    return {
      llm: await stageLlmFingerprint(root, "rationalize"),
      templates: heuristic ? { rationale: sourceHash("heuristic/templates.ts", "heuristic/trace.py") } : await templateHashes(["rationalize_output"]),
      parsers: heuristic ? null : sourceHash("parsers.ts", "heuristic/llm-io.ts"),
    };
  },
  async open(ctx: StageContext<RationalizeConfig>) {
    const cfg = ctx.config;
    const heuristic = await isHeuristic(ctx.root, "rationalize");
    const llm = heuristic ? undefined : await ctx.getLlm();

    const process = async (rec: TestRec): Promise<Outcome<RationaleRec>> => {
      const t = rec.test;
      if (!llm) {
        const trace = cfg.template_trace ? await traceGold(await ctx.getExecutor(), rec) : undefined;
        const rationale = templateRationale({
          entryPoint: rec.entry_point,
          params: paramNames(rec.signature),
          args: t.args.args,
          argTexts: t.args.args.map((a) => formatPyValue(a)),
          goldOutput: t.gold_output,
          goldOutputText: t.gold_output_text,
          trace,
        });
        return { out: [{ ...rec, rationale, rationale_source: "template" }], drop: [] };
      }
      const req = await rationalizePrompt(rec, inputText(t.args), t.gold_output_text);
      const { result, error } = await countedChat(ctx, llm, { ...req, n: 1 });
      if (!result) return { out: [], drop: [{ id: rec.id, reason: "llm_failed", detail: clip(error ?? "") }] };
      const text = result.texts[0] ?? "";
      const parsed = await parseRat(text);
      if (!("reasoning" in parsed)) {
        const reason = parsed.reason === "empty" ? "empty_rationale" : parsed.reason;
        return { out: [], drop: [{ id: rec.id, reason, detail: parsed.detail ?? clip(text), response: text }] };
      }
      const reasoning = parsed.reasoning.trim();
      if (!reasoning) return { out: [], drop: [{ id: rec.id, reason: "empty_rationale", response: text }] };
      const prose = proseOf(reasoning);
      if (prose.length < cfg.min_prose_chars && /```/.test(reasoning))
        return { out: [], drop: [{ id: rec.id, reason: "code_only_rationale", detail: clip(reasoning), response: text }] };
      if (!prose) return { out: [], drop: [{ id: rec.id, reason: "empty_rationale", response: text }] };
      if (parsed.final_answer !== undefined) {
        const lit = parseLiteral(parsed.final_answer);
        if (lit.ok && !sameOutput(t.gold_output, lit.value)) {
          return {
            out: [],
            drop: [
              {
                id: rec.id,
                reason: "rationale_contradicts_output",
                detail: `states ${clip(parsed.final_answer, 60)}, gold is ${clip(t.gold_output_text, 60)}`,
                response: text,
              },
            ],
          };
        }
      }
      return { out: [{ ...rec, rationale: reasoning, rationale_source: "llm" }], drop: [] };
    };
    return { process, concurrency: await recordConcurrency(ctx.root, "rationalize", cfg.concurrency) };
  },
};
