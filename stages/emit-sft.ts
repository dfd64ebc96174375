/**
 * emit-sft: turns each rationalized failing test into one SFT example and, in `finalize`, writes
 * `<run>/emit-sft/sft/`:
 *   train.messages.jsonl / valid.messages.jsonl                 {"messages": [user, assistant], "metadata"}
 *   train.prompt_completion.jsonl / valid.prompt_completion.jsonl  conversational prompt-completion
 *   valid.problems.jsonl   one row per held-out buggy program (UTGenDebug format, read by validate)
 *   data_card.md           counts per stage, drop reasons, per source, bug kinds, samplers
 * user = the UTGen prompt (description, signature, buggy code); assistant = the sampler's hypothesis and
 * input reasoning, `Arguments: ```f(…)```` then `### Output`, the rationale and `Output: ```<gold>````.
 * The train/valid split is by problem (filter-level id) through a hash, so no problem is in both. Examples
 * are written in id order, so a run merged from `--shard i/N` slices gives the same files byte for byte.
 */
import * as path from "node:path";
import { z } from "zod";
import type { DataflowStage, Outcome, Rec, StageContext } from "../pipeline/stage.ts";
import { readManifest, type ChunkStats } from "../pipeline/store.ts";
import { atomicWrite, sha256, writeJsonl } from "../pipeline/util.ts";
import { DATA_STAGES } from "../pipeline/registry.ts";
import { problemIdOf, sourceHash } from "./common.ts";
import { templateHashes, utgenAssistantMessage, utgenUserMessage } from "./heuristic/llm-io.ts";
import type { RationaleRec } from "./rationalize.ts";
import { fuzzHypothesis, fuzzInputReasoning } from "./heuristic/templates.ts";
import { resolvePlan } from "../trainers/config.ts";

export const emitSftConfigSchema = z.strictObject({
  /** Fraction of problems held out for validation (by hash of the problem id). */
  valid_fraction: z.number().min(0).max(1).default(0.1),
  /** Salt of the split hash: change it to draw another split. */
  split_seed: z.number().int().default(0),
  /** Optional system message put first in every example (explicit, so every trainer sees the same prompt). */
  system_prompt: z.string().optional(),
  concurrency: z.number().int().positive().default(16),
});
export type EmitSftConfig = z.infer<typeof emitSftConfigSchema>;

type Msg = { role: "system" | "user" | "assistant"; content: string };

export interface SftMetadata {
  id: string;
  problem_id: string;
  bug_id: string;
  source: string;
  bug_origin: string;
  bug_operator?: string;
  sampler: string;
  rationale_source: string;
  args_text: string;
  gold_output_text: string;
  buggy_status: string;
  /** Sections the sampler left empty, written from the templates instead. */
  template_filled?: string[];
}

export interface SftRec extends Rec {
  id: string;
  source: string;
  problem_id: string;
  messages: Msg[];
  metadata: SftMetadata;
  /** The buggy program in the UTGenDebug format, for valid.problems.jsonl. */
  problem: { task_id: string; prompt: string; signature: string; entry_point: string; canonical_solution: string; code: string };
}

/** Position of a problem in [0, 1): its split is valid when below the fraction. */
export function splitPoint(problemId: string, seed: number): number {
  return parseInt(sha256(`${seed}\u0000${problemId}`).slice(0, 12), 16) / 2 ** 48;
}

/** Problem ids held out for validation: hash < fraction; at least one when ≥ 2 problems and fraction > 0. */
export function validProblems(problemIds: Iterable<string>, fraction: number, seed: number): Set<string> {
  const ids = [...new Set(problemIds)];
  const valid = new Set(ids.filter((p) => splitPoint(p, seed) < fraction));
  if (!valid.size && fraction > 0 && ids.length >= 2) {
    const lowest = ids.reduce((a, b) => (splitPoint(a, seed) <= splitPoint(b, seed) ? a : b));
    valid.add(lowest);
  }
  if (valid.size === ids.length && ids.length >= 2) {
    const highest = ids.reduce((a, b) => (splitPoint(a, seed) >= splitPoint(b, seed) ? a : b));
    valid.delete(highest);
  }
  return valid;
}

export const emitSftStage: DataflowStage<EmitSftConfig, RationaleRec, SftRec> = {
  kind: "dataflow",
  name: "emit-sft",
  version: "1",
  description: "write chat and prompt-completion SFT JSONL, a train/valid split by problem, and a data card",
  input: "rationalize",
  inputFields: ["source", "prompt", "code", "entry_point", "signature", "buggy_code", "bug", "test", "rationale", "rationale_source", "problem_id", "parent_id"],
  outputFields: ["messages", "metadata", "problem"],
  configSchema: emitSftConfigSchema,
  perfKeys: ["concurrency"],
  async fingerprintExtra() {
    return { templates: await templateHashes(["utgen_ut"]), format: sourceHash("heuristic/llm-io.ts", "heuristic/templates.ts") };
  },
  async open(ctx: StageContext<EmitSftConfig>) {
    const cfg = ctx.config;
    const process = async (rec: RationaleRec): Promise<Outcome<SftRec>> => {
      const t = rec.test;
      const user = await utgenUserMessage(rec);
      // a model sample may skip a section: the template text (grounded in the bug and the run) fills it
      const tpl = fuzzHypothesis(rec.bug, rec.entry_point);
      const filled: string[] = [];
      const pick = (name: string, own: string | undefined, fallback: () => string) => {
        if (own && own.trim()) return own;
        filled.push(name);
        return fallback();
      };
      const hypothesis = pick("hypothesis", t.hypothesis, () => tpl.hypothesis);
      const errorPattern = pick("error_pattern", t.error_pattern, () => tpl.error_pattern);
      const inputReasoning = pick("input_reasoning", t.input_reasoning, () =>
        fuzzInputReasoning(t.args_text, { status: t.buggy_status, outputText: t.buggy_output_text, errorType: t.buggy_error?.split(":")[0] }),
      );
      const assistant = utgenAssistantMessage({
        hypothesis,
        error_pattern: errorPattern,
        input_reasoning: inputReasoning,
        args_text: t.args_text,
        rationale: rec.rationale,
        gold_output_text: t.gold_output_text,
      });
      const messages: Msg[] = [];
      if (cfg.system_prompt) messages.push({ role: "system", content: cfg.system_prompt });
      messages.push({ role: "user", content: user }, { role: "assistant", content: assistant });
      const problemId = problemIdOf(rec);
      const bugId = rec.parent_id;
      return {
        out: [
          {
            id: rec.id,
            source: rec.source,
            problem_id: problemId,
            messages,
            metadata: {
              id: rec.id,
              problem_id: problemId,
              bug_id: bugId,
              source: rec.source,
              bug_origin: rec.bug.origin,
              bug_operator: rec.bug.operator,
              sampler: t.sampler,
              rationale_source: rec.rationale_source,
              args_text: t.args_text,
              gold_output_text: t.gold_output_text,
              buggy_status: t.buggy_status,
              ...(filled.length ? { template_filled: filled } : {}),
            },
            problem: {
              task_id: bugId,
              prompt: rec.prompt,
              signature: rec.signature,
              entry_point: rec.entry_point,
              canonical_solution: rec.code,
              code: rec.buggy_code,
            },
          },
        ],
        drop: [],
      };
    };
    return { process, concurrency: cfg.concurrency };
  },
  async finalize(ctx: StageContext<EmitSftConfig>, records: () => AsyncIterable<SftRec>) {
    const cfg = ctx.config;
    const ids = new Set<string>();
    for await (const r of records()) ids.add(r.problem_id);
    const valid = validProblems(ids, cfg.valid_fraction, cfg.split_seed);

    const rows = { train: [] as SftRec[], valid: [] as SftRec[] };
    const tally = { bySource: new Map<string, [number, number]>(), origin: new Map<string, number>(), operator: new Map<string, number>(), sampler: new Map<string, number>(), rationale: new Map<string, number>() };
    const bump = (m: Map<string, number>, k: string | undefined) => k && m.set(k, (m.get(k) ?? 0) + 1);
    const validBugs = new Map<string, SftRec["problem"]>();
    for await (const r of records()) {
      const split = valid.has(r.problem_id) ? "valid" : "train";
      rows[split].push(r);
      const s = tally.bySource.get(r.source) ?? [0, 0];
      s[split === "train" ? 0 : 1]++;
      tally.bySource.set(r.source, s);
      bump(tally.origin, r.metadata.bug_origin);
      bump(tally.operator, r.metadata.bug_operator);
      bump(tally.sampler, r.metadata.sampler);
      bump(tally.rationale, r.metadata.rationale_source);
      if (split === "valid" && !validBugs.has(r.problem.task_id)) validBugs.set(r.problem.task_id, r.problem);
    }
    // Id order, not arrival order: a run merged from `--shard i/N` slices writes the same bytes as a whole run.
    for (const split of ["train", "valid"] as const) rows[split].sort((x, y) => byKey(x.id, y.id));
    const dir = path.join(ctx.stageDir, "sft");
    const messagesRow = (r: SftRec) => ({ messages: r.messages, metadata: r.metadata });
    const pcRow = (r: SftRec) => ({
      prompt: r.messages.filter((m) => m.role !== "assistant"),
      completion: r.messages.filter((m) => m.role === "assistant"),
      metadata: r.metadata,
    });
    for (const split of ["train", "valid"] as const) {
      await writeJsonl(path.join(dir, `${split}.messages.jsonl`), rows[split].map(messagesRow));
      await writeJsonl(path.join(dir, `${split}.prompt_completion.jsonl`), rows[split].map(pcRow));
    }
    await writeJsonl(path.join(dir, "valid.problems.jsonl"), [...validBugs.values()].sort((x, y) => byKey(x.task_id, y.task_id)));

    const card = await dataCard(ctx, {
      train: rows.train.length,
      valid: rows.valid.length,
      problems: ids.size,
      validProblems: valid.size,
      validBugs: validBugs.size,
      ...tally,
    });
    await atomicWrite(path.join(dir, "data_card.md"), card);
    ctx.log.info(`emit-sft: ${rows.train.length} train / ${rows.valid.length} valid examples (${valid.size} of ${ids.size} problems held out) → ${dir}`);
    // A distilled set is a legitimate choice, but also what `--set llm.model=…` alone makes of a self-generation
    // config (configs/tulu.yaml links llm.model and train.model_path with a YAML anchor, which --set does not follow).
    const setting = generationSetting(ctx.root, ctx.runDir);
    if (setting.startsWith("distilled")) ctx.log.warn(`emit-sft: the set is ${setting} For the paper's recipe set llm.model and train.model_path to the same model.`);
  },
};

async function dataCard(
  ctx: StageContext<EmitSftConfig>,
  t: {
    train: number;
    valid: number;
    problems: number;
    validProblems: number;
    validBugs: number;
    bySource: Map<string, [number, number]>;
    origin: Map<string, number>;
    operator: Map<string, number>;
    sampler: Map<string, number>;
    rationale: Map<string, number>;
  },
): Promise<string> {
  const L: string[] = [];
  L.push("# Data card: UTGen SFT set", "");
  L.push(`Built ${new Date().toISOString().slice(0, 10)} from run \`${path.basename(ctx.runDir)}\`. Backend per stage:`);
  for (const s of ["perturb", "attack", "rationalize"]) {
    const llm = { ...(ctx.root.llm ?? {}), ...(ctx.root[s]?.llm ?? {}) };
    L.push(`- ${s}: ${llm.backend ?? "heuristic"}${llm.backend === "openai" ? ` (${llm.model})` : ""}`);
  }
  L.push("", `Generation setting: ${generationSetting(ctx.root, ctx.runDir)}`);
  L.push("");
  L.push("## Examples", "", "| split | examples | problems |", "|---|---:|---:|");
  L.push(`| train | ${t.train} | ${t.problems - t.validProblems} |`);
  L.push(`| valid | ${t.valid} | ${t.validProblems} (${t.validBugs} buggy programs in valid.problems.jsonl) |`);
  L.push("", `Split: by problem id (sha256 with split_seed ${ctx.config.split_seed}), valid_fraction ${ctx.config.valid_fraction}; no problem is in both.`, "");
  L.push("## Per stage", "", "| stage | in | out | dropped | drop reasons |", "|---|---:|---:|---:|---|");
  const perSource = new Map<string, Record<string, string>>();
  for (const s of DATA_STAGES) {
    const m = await readManifest(ctx.runDir, s);
    if (!m) {
      L.push(`| ${s} | – | – | – | (not built) |`);
      continue;
    }
    const c: ChunkStats = m.counts;
    const dropped = Object.values(c.reasons).reduce((a, b) => a + b, 0);
    L.push(`| ${s} | ${c.in} | ${c.out} | ${dropped} | ${fmtReasons(c.reasons)} |`);
    for (const [src, ss] of Object.entries(c.bySource ?? {})) {
      const row = perSource.get(src) ?? {};
      row[s] = `${ss.in}→${ss.out}`;
      perSource.set(src, row);
    }
  }
  L.push("", "`in` counts the stage's input records (items, buggy versions or tests); one input may yield several outputs.");
  if (perSource.size) {
    L.push("", "## Per source (in→out per stage)", "", `| source | ${DATA_STAGES.join(" | ")} |`, `|---|${DATA_STAGES.map(() => "---:").join("|")}|`);
    for (const [src, row] of [...perSource.entries()].sort())
      L.push(`| ${src} | ${DATA_STAGES.map((s) => row[s] ?? "–").join(" | ")} |`);
  }
  L.push("", "## Emitted examples by source", "", "| source | train | valid |", "|---|---:|---:|");
  for (const [src, [tr, va]] of [...t.bySource.entries()].sort()) L.push(`| ${src} | ${tr} | ${va} |`);
  L.push("", "## Composition", "");
  L.push(`- bug origin: ${fmtMap(t.origin)}`);
  if (t.operator.size) L.push(`- mutation operators: ${fmtMap(t.operator)}`);
  L.push(`- input sampler: ${fmtMap(t.sampler)}`);
  L.push(`- rationale source: ${fmtMap(t.rationale)}`);
  L.push("", "Every example's input was run in the sandbox: gold accepts it and the buggy code disagrees with gold (wrong value, error or timeout); the `Output:` literal is gold's executed output.", "");
  return L.join("\n");
}

/** Code-unit order (locale-independent). */
function byKey(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Most frequent first, ties by name (the same text whatever order the counts were summed in). */
const byCount = (a: [string, number], b: [string, number]) => b[1] - a[1] || byKey(a[0], b[0]);

/**
 * Self-generated (App. B: the model to be trained writes its own perturbations, attacks and rationales) or
 * distilled (another model wrote them), from the generation stages' models and the train: block's model.
 */
export function generationSetting(root: Record<string, any>, runDir: string): string {
  const gens = ["perturb", "attack", "rationalize"].map((s) => ({ ...(root.llm ?? {}), ...(root[s]?.llm ?? {}) }));
  if (gens.every((g) => g.backend !== "openai")) return "heuristic backend (no model wrote the data).";
  const models = [...new Set(gens.filter((g) => g.backend === "openai").map((g) => String(g.model)))];
  let trained: string | undefined;
  try {
    trained = root.train && Object.keys(root.train).length ? resolvePlan(root.train, runDir).model : undefined;
  } catch {
    trained = undefined;
  }
  if (!trained) return `generated by ${models.join(", ")}; no train: block names the model to be trained.`;
  if (models.length === 1 && models[0] === trained && gens.every((g) => g.backend === "openai"))
    return `self-generated (App. B): ${trained}, the model train fine-tunes, wrote the perturbations, attacks and rationales.`;
  return `distilled: ${models.join(", ")} wrote the data; train fine-tunes ${trained} (App. B has the trained model write its own).`;
}

function fmtReasons(r: Record<string, number>): string {
  const e = Object.entries(r).sort(byCount);
  return e.length ? e.map(([k, n]) => `${k} ${n}`).join(", ") : "–";
}

function fmtMap(m: Map<string, number>): string {
  const e = [...m.entries()].sort(byCount);
  return e.length ? e.map(([k, n]) => `${k} ${n}`).join(", ") : "–";
}
