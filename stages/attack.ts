/**
 * attack (paper §3.2 step II): per buggy version, sample unit-test inputs and keep the failing ones.
 *  - LLM backend: the UTGen prompt (description, signature, buggy code), up to `attempts` samples, fetched
 *    one at a time (`early_stop`, each a top-up of the cached ones) until enough failing inputs are found;
 *    each response's `Arguments: f(…)` is parsed as a call literal.
 *  - heuristic backend (or `fuzz.extra` on an LLM run): type-aware fuzzing (stages/heuristic/fuzz.ts),
 *    `attempts` batches of `fuzz.inputs_per_attempt` candidate inputs, evaluated batch by batch.
 * An input is valid when gold runs on it without error within `gold_timeout_s` (and, with
 * `check_determinism`, gives the same output again in a fresh process with the batch rotated by one, so
 * history-dependent gold is caught too); it is failing when the buggy code errors, times out,
 * or returns something `outputsMatch` says differs from gold in both its modes (see sameOutput). The expected
 * output is always gold's. Up to `max_failing` distinct failing inputs are kept, as `<bug id>/ut<j>`.
 * A version with none is dropped: `equivalent_mutant` when valid inputs existed but none separated the two
 * programs, `no_failing_input` when no valid input was found at all.
 */
import { z } from "zod";
import type { DataflowStage, Drop, Outcome, StageContext } from "../pipeline/stage.ts";
import type { CallArgs, CallResult, PyValue } from "../pipeline/executor/types.ts";
import { buggyTimeoutFor, formatCall, formatPyValue, parseCallLiteral } from "../pipeline/executor/index.ts";
import { Rng, clip, countedChat, isHeuristic, llmOverrideSchema, sameOutput, sourceHash, recordConcurrency, stageLlmFingerprint } from "./common.ts";
import { callKey, entryParams, exampleCallTexts, fuzzInputs, planFuzz } from "./heuristic/fuzz.ts";
import { fuzzHypothesis, fuzzInputReasoning } from "./heuristic/templates.ts";
import { parseUt, templateHashes, utgenPrompt } from "./heuristic/llm-io.ts";
import type { BugRec } from "./perturb.ts";
import { stableStringify } from "../pipeline/util.ts";

export const attackConfigSchema = z.strictObject({
  /** Sampling attempts per buggy version (paper: 5). */
  attempts: z.number().int().min(1).max(64).default(5),
  /** Ask the model one attempt at a time and stop once `max_failing` failing inputs are found (false: all attempts in one request). */
  early_stop: z.boolean().default(true),
  /** Run gold twice per valid input and drop inputs whose outputs differ (random, time- or call-history-dependent gold). */
  check_determinism: z.boolean().default(true),
  /** Distinct failing inputs kept per buggy version. */
  max_failing: z.number().int().min(1).max(64).default(1),
  /** Seed of the fuzzer. */
  seed: z.number().int().default(0),
  fuzz: z
    .strictObject({
      /** Candidate inputs per attempt on the heuristic backend. */
      inputs_per_attempt: z.number().int().min(1).max(200).default(8),
      /** Also fuzz on an LLM run (inputs added after the model's). */
      extra: z.boolean().default(false),
      /** Gold calls used to probe the types of unannotated parameters without examples. */
      probe_rounds: z.number().int().min(1).max(200).default(24),
    })
    .prefault({}),
  /** Gold's per-call limit: an input on which gold errors or runs longer is invalid (default: executor.gold_timeout_s, UTGen 1 s). */
  gold_timeout_s: z.number().positive().optional(),
  llm: llmOverrideSchema,
  /** Records in flight (default: llm.concurrency on an OpenAI backend, 8 on the heuristic one). */
  concurrency: z.number().int().positive().optional(),
});
export type AttackConfig = z.infer<typeof attackConfigSchema>;

export interface UnitTest {
  args_text: string;
  args: CallArgs;
  gold_output: PyValue;
  gold_output_text: string;
  buggy_status: CallResult["status"];
  buggy_output?: PyValue;
  buggy_output_text?: string;
  buggy_error?: string;
  sampler: "llm" | "fuzz";
  hypothesis?: string;
  error_pattern?: string;
  input_reasoning?: string;
  /** The sampler's own predicted output (LLM only; kept for analysis, never used as the label). */
  predicted_output_text?: string;
}

export interface TestRec extends BugRec {
  test: UnitTest;
}

interface Candidate {
  args: CallArgs;
  sampler: "llm" | "fuzz";
  hypothesis?: string;
  error_pattern?: string;
  input_reasoning?: string;
  predicted_output_text?: string;
}

export const attackStage: DataflowStage<AttackConfig, BugRec, TestRec> = {
  kind: "dataflow",
  name: "attack",
  version: "2",
  description: "sample unit-test inputs for each buggy version; keep those on which gold and buggy code disagree",
  input: "perturb",
  inputFields: ["prompt", "code", "entry_point", "signature", "buggy_code", "bug"],
  outputFields: ["test"],
  configSchema: attackConfigSchema,
  // early_stop only changes how many samples are fetched, never which tests are kept
  perfKeys: ["concurrency", "early_stop"],
  async fingerprintExtra({ config, root }) {
    const heuristic = await isHeuristic(root, "attack");
    return {
      llm: await stageLlmFingerprint(root, "attack"),
      templates: heuristic ? {} : await templateHashes(["utgen_ut"]),
      parsers: heuristic ? null : sourceHash("parsers.ts", "heuristic/llm-io.ts"),
      fuzz: heuristic || config.fuzz.extra ? sourceHash("heuristic/fuzz.ts", "heuristic/templates.ts") : null,
      // the validity / failure verdicts depend on the executor's limits
      executor: Object.fromEntries(Object.entries(root.executor ?? {}).filter(([k]) => /timeout|calibrat|memory/.test(k))),
    };
  },
  async open(ctx: StageContext<AttackConfig>) {
    const cfg = ctx.config;
    const heuristic = await isHeuristic(ctx.root, "attack");
    const executor = await ctx.getExecutor();
    const llm = heuristic ? undefined : await ctx.getLlm();
    const execCfg = (ctx.root.executor ?? {}) as Record<string, unknown>;
    const goldTimeoutS = cfg.gold_timeout_s ?? (typeof execCfg.gold_timeout_s === "number" ? execCfg.gold_timeout_s : 1);

    const process = async (rec: BugRec): Promise<Outcome<TestRec>> => {
      const unparsable: string[] = [];
      let llmError: string | undefined;
      const seen = new Set<string>();
      /** Keep only inputs not tried before (by value). */
      const fresh = (cs: Candidate[]) =>
        cs.filter((c) => {
          const k = callKey(c.args);
          if (seen.has(k)) return false;
          seen.add(k);
          return true;
        });

      /** The model's candidates: one batch per attempt (sample j rides on the cached samples 0..j-1). */
      async function* llmBatches(): AsyncGenerator<Candidate[]> {
        const prompt = await utgenPrompt(rec);
        const steps = cfg.early_stop ? Array.from({ length: cfg.attempts }, (_, j) => j + 1) : [cfg.attempts];
        let used = 0;
        for (const n of steps) {
          const { result, error } = await countedChat(ctx, llm!, { ...prompt, n });
          if (!result) {
            llmError = error;
            return;
          }
          const batch: Candidate[] = [];
          for (let i = used; i < n; i++) {
            const ut = await parseUt(result.texts[i], rec.entry_point, result.finishReasons[i]);
            if (!("args_text" in ut)) {
              unparsable.push(ut.reason);
              continue;
            }
            const args = callArgsOf(ut.args_text, rec.entry_point);
            if (!args) {
              unparsable.push("unparsable_literal");
              continue;
            }
            batch.push({
              args,
              sampler: "llm",
              hypothesis: ut.hypothesis,
              error_pattern: ut.error_pattern,
              input_reasoning: ut.input_reasoning,
              predicted_output_text: ut.output_text,
            });
          }
          used = n;
          yield batch;
        }
      }

      /** Fuzzed candidates: `attempts` batches of `fuzz.inputs_per_attempt`. */
      async function* fuzzBatches(): AsyncGenerator<Candidate[]> {
        const rng = new Rng(cfg.seed, "attack", rec.id);
        const params = await entryParams(executor, rec.code, rec.entry_point, Math.max(5, goldTimeoutS));
        if (!params) throw new GoldError(`gold has no function ${rec.entry_point}()`);
        const seeds: CallArgs[] = [];
        for (const t of exampleCallTexts(rec.prompt, rec.entry_point)) {
          const args = callArgsOf(t, rec.entry_point); // prose that only looks like a call is skipped
          if (args) seeds.push(args);
        }
        const probe = async (calls: CallArgs[]) =>
          (await executor.runCalls({ program: rec.code, entryPoint: rec.entry_point, inputs: calls, timeoutS: goldTimeoutS })).map(
            (r) => r.status === "ok",
          );
        const plan = await planFuzz({ params, seeds, rng, probe, probeRounds: cfg.fuzz.probe_rounds });
        ctx.counters.add(`fuzz_typed_by_${plan.typedBy}`, 1);
        const all = fuzzInputs(plan, rng, cfg.attempts * cfg.fuzz.inputs_per_attempt);
        for (let i = 0; i < all.length; i += cfg.fuzz.inputs_per_attempt)
          yield all.slice(i, i + cfg.fuzz.inputs_per_attempt).map((args) => ({ args, sampler: "fuzz" as const }));
      }

      async function* batches(): AsyncGenerator<Candidate[]> {
        if (llm) yield* llmBatches();
        if (!llm || cfg.fuzz.extra) yield* fuzzBatches();
      }

      // Per batch: gold decides validity and the expected output, then the buggy code runs on the inputs
      // gold accepted; stop as soon as `max_failing` failing inputs are found.
      const out: TestRec[] = [];
      let nValid = 0;
      let nUnstable = 0;
      let tried = 0;
      const goldErrors = new Set<string>();
      try {
        for await (const raw of batches()) {
          const batch = fresh(raw);
          if (!batch.length) continue;
          tried += batch.length;
          const gold = await executor.runCalls({ program: rec.code, entryPoint: rec.entry_point, inputs: batch.map((c) => c.args), timeoutS: goldTimeoutS });
          gold.forEach((g) => g.status !== "ok" && goldErrors.add(g.errorType ?? g.status));
          let valid = batch.map((c, i) => ({ c, g: gold[i] })).filter((x) => x.g.status === "ok");
          if (valid.length && cfg.check_determinism) {
            // gold must give the same output twice: otherwise its output is no label (random, time, id()).
            // The second run, in a fresh child, takes the inputs rotated by one, so every input sits at
            // another place in the sequence: a gold whose output depends on earlier calls in the same process
            // (a mutable default argument, module state) is caught too — its batch outputs are no standalone label.
            const order = valid.map((_, i) => (i + 1) % valid.length);
            const rotated = await executor.runCalls({ program: rec.code, entryPoint: rec.entry_point, inputs: order.map((j) => valid[j].c.args), timeoutS: goldTimeoutS });
            const again: CallResult[] = new Array(valid.length);
            order.forEach((j, k) => (again[j] = rotated[k]));
            const stable = valid.filter((v, i) => again[i].status === "ok" && stableStringify(v.g.value) === stableStringify(again[i].value));
            nUnstable += valid.length - stable.length;
            valid = stable;
          }
          if (!valid.length) continue;
          nValid += valid.length;
          const maxGoldMs = Math.max(...valid.map((v) => v.g.ms));
          const buggy = await executor.runCalls({
            program: rec.buggy_code,
            entryPoint: rec.entry_point,
            inputs: valid.map((v) => v.c.args),
            timeoutS: buggyTimeoutFor(maxGoldMs, execCfg),
          });
          for (let i = 0; i < valid.length && out.length < cfg.max_failing; i++) {
            const t = failingTest(rec, valid[i].c, valid[i].g, buggy[i]);
            if (t) out.push({ ...rec, id: `${rec.id}/ut${out.length + 1}`, parent_id: rec.id, test: t });
          }
          if (out.length >= cfg.max_failing) break;
        }
      } catch (e) {
        if (!(e instanceof GoldError)) throw e;
        return { out: [], drop: [{ id: rec.id, reason: "gold_error", detail: e.message }] };
      }
      ctx.counters.add("inputs_tried", tried);
      ctx.counters.add("inputs_valid", nValid);
      if (nUnstable) ctx.counters.add("inputs_nondeterministic", nUnstable);
      if (unparsable.length) ctx.counters.add("unparsable_samples", unparsable.length);
      if (out.length) return { out, drop: [] };
      let drop: Drop;
      if (!nValid && nUnstable) drop = { id: rec.id, reason: "nondeterministic_gold", detail: `gold gave different outputs on repeated calls for all ${nUnstable} inputs it accepted` };
      else if (nValid) drop = { id: rec.id, reason: "equivalent_mutant", detail: `all ${nValid} valid input${nValid === 1 ? "" : "s"} gave matching outputs` };
      else if (tried) drop = { id: rec.id, reason: "no_failing_input", detail: `no valid input: gold rejected all ${tried} (${[...goldErrors].slice(0, 3).join(", ")})` };
      else if (llmError !== undefined && !unparsable.length) drop = { id: rec.id, reason: "llm_failed", detail: clip(llmError) };
      else drop = { id: rec.id, reason: unparsable.length ? mostCommon(unparsable) : "no_failing_input", detail: "no parsable test input among the samples" };
      return { out: [], drop: [drop] };
    };
    return { process, concurrency: await recordConcurrency(ctx.root, "attack", cfg.concurrency) };
  },
};

class GoldError extends Error {}


/** The unit test for one valid input, when the buggy code fails it (error, timeout or different value). */
function failingTest(rec: BugRec, c: Candidate, g: CallResult, b: CallResult): UnitTest | undefined {
  if (b.status === "invalid_input") return undefined;
  if (b.status === "ok" && sameOutput(b.value!, g.value!)) return undefined; // no certain disagreement
  const argsText = formatCall(rec.entry_point, c.args);
  const buggyOut = b.status === "ok" ? formatPyValue(b.value!) : undefined;
  const test: UnitTest = {
    args_text: argsText,
    args: c.args,
    gold_output: g.value!,
    gold_output_text: formatPyValue(g.value!),
    buggy_status: b.status,
    sampler: c.sampler,
  };
  if (b.status === "ok") {
    test.buggy_output = b.value;
    test.buggy_output_text = buggyOut;
  } else test.buggy_error = clip(`${b.errorType ?? b.status}${b.message ? `: ${b.message}` : ""}`);
  if (c.sampler === "llm") {
    Object.assign(test, {
      hypothesis: c.hypothesis,
      error_pattern: c.error_pattern,
      input_reasoning: c.input_reasoning,
      predicted_output_text: c.predicted_output_text,
    });
  } else {
    Object.assign(test, fuzzHypothesis(rec.bug, rec.entry_point), {
      input_reasoning: fuzzInputReasoning(argsText, { status: b.status, outputText: buggyOut, errorType: b.errorType }),
    });
  }
  return test;
}

/** A call literal `f(…)` parsed without evaluation, or undefined. */
export function callArgsOf(text: string, entryPoint: string): CallArgs | undefined {
  const r = parseCallLiteral(text, entryPoint);
  return r.ok ? r.args : undefined;
}

function mostCommon(xs: string[]): string {
  const n = new Map<string, number>();
  for (const x of xs) n.set(x, (n.get(x) ?? 0) + 1);
  return [...n.entries()].sort((a, b) => b[1] - a[1])[0][0];
}
