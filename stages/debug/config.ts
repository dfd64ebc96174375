/**
 * Settings of the `utdebug` and `rerank` stages (YAML blocks `utdebug:` and `rerank:`). Every switch where
 * this project and the released UTGenDebug scripts differ is explicit, with the reference's behaviour one
 * value away (docs/utdebug.md, "Fidelity rows").
 */
import { z } from "zod";
import { setSchema } from "../validation/datasets.ts";
import { llmOverrideSchema } from "../common.ts";

/** Sampling of one kind of request (the reference's SamplingParams; max_tokens 8·1024 / 2048). */
export const samplingSchema = (t: number, max: number) =>
  z
    .strictObject({
      temperature: z.number().min(0).max(2).default(t),
      top_p: z.number().gt(0).max(1).default(0.9),
      max_tokens: z.int().positive().default(max),
    })
    .default({ temperature: t, top_p: 0.9, max_tokens: max });

/** Self-consistency and UT-building settings shared by utdebug and rerank (Alg. 1, BuildUT). */
export const buildUtShape = {
  /** UTs per suite (Alg. 1 n). */
  n: z.int().positive().default(3),
  /** Output samples per UT input for the majority vote (Alg. 1 k). */
  k: z.int().positive().default(8),
  /** Self-consistency on (Alg. 1); off: the sampled UT's own output is used (Table 4 "− test-time scaling"). */
  sc: z.boolean().default(true),
  /** The winner needs at least this share of the k votes. */
  sc_threshold: z.number().gt(0).max(1).default(0.5),
  /**
   * How share × k becomes a vote count: `ceil` (the paper's ν ≥ 0.5k: k = 5 needs 3) or `python_round`
   * (the reference's round(0.5·k), half to even: k = 5 needs 2).
   */
  sc_threshold_rounding: z.enum(["ceil", "python_round"]).default("ceil"),
  /** Votes are the same answer when `compare` (the project's output comparison, utgen mode) or `str` (the reference's str(value) keys) says so. */
  sc_vote_match: z.enum(["compare", "str"]).default("compare"),
  /**
   * The output-only request: `continue` — the generator's own turn up to "### Output" as a partial assistant
   * message the server continues (vLLM / SGLang `continue_final_message`, as the reference's
   * apply_chat_template(continue_final_message=True)); `separate` — the reference's
   * separate_unit_output_prompt as a new user turn (for servers that cannot continue a turn).
   */
  sc_prompt: z.enum(["continue", "separate"]).default("continue"),
  /** UT inputs sampled at most per suite = factor × n (the issue and Alg. 1: 3; the reference loops 4 × units). */
  ut_attempts_factor: z.int().positive().default(3),
  sampling: z
    .strictObject({
      /** UT inputs (and, without SC, their outputs): the reference's sampling_params. */
      ut: samplingSchema(0.7, 8192),
      /** Self-consistency outputs: the reference's sc_sampling_params. */
      sc: samplingSchema(0.8, 2048),
      /** Debugger replies and (No-UT) critiques: the reference's sampling_params. */
      debug: samplingSchema(0.7, 8192),
    })
    .default({
      ut: { temperature: 0.7, top_p: 0.9, max_tokens: 8192 },
      sc: { temperature: 0.8, top_p: 0.9, max_tokens: 2048 },
      debug: { temperature: 0.7, top_p: 0.9, max_tokens: 8192 },
    }),
  /** Sent in every request so the server's generation_config.json cannot change sampling (as validate). */
  extra_body: z.record(z.string(), z.unknown()).default({ top_k: -1, min_p: 0, repetition_penalty: 1 }),
};

export const bootstrapSchema = z
  .strictObject({ samples: z.int().positive().default(1000), seed: z.int().default(0) })
  .default({ samples: 1000, seed: 0 });

export const utdebugConfigSchema = z.strictObject({
  /** Benchmark sets (UTGenDebug rows with their `test` text); `--dataset FILE` debugs that one file instead. */
  sets: z.array(setSchema).default([]),
  /** UT generators: model (or LoRA adapter) names at llm.base_urls, asked with the UTGen prompt (utgen_ut). */
  generators: z.array(z.string().min(1)).default([]),
  /** Baselines: `no-ut` (self-critique), `random` (random_joint_ut on base_model), `prompted` (utgen_ut on base_model). */
  baselines: z.array(z.enum(["no-ut", "random", "prompted"])).default(["no-ut", "random"]),
  /** Table 4 ablations, run as extra methods `<method>-no-sc` / `<method>-no-backtrack` for every UT method. */
  ablations: z.array(z.enum(["no-sc", "no-backtrack"])).default([]),
  /** The debugger model (default: llm.model). */
  debugger: z.string().min(1).optional(),
  /** Model of the `random` / `prompted` baselines (default: the debugger). */
  base_model: z.string().min(1).optional(),
  /** Debugging rounds (Alg. 2 m). */
  rounds: z.int().positive().default(3),
  /** Validate edits on the suite and discard those that do not pass (Alg. 2 backtracking; Table 4). */
  backtrack: z.boolean().default(true),
  /**
   * `rises`: keep an edit only when its pass rate on the suite is higher than the code's before (Alg. 2 and
   * the issue); `not_falls`: discard it only when the rate falls (the reference: ties are kept).
   */
  accept: z.enum(["rises", "not_falls"]).default("rises"),
  /**
   * Loop structure. `paper`: Alg. 2 — build the suite for the current code, stop when no UT fails, ask for a
   * fix, validate the fix on that suite; discarded edits leave the chat. `reference`: mbpp_utdebug.py's turns —
   * the suite is built for each newly generated code before it is validated against the previous suite, a
   * problem with no UT is regenerated without feedback and accepted unvalidated, discarded replies stay in
   * the chat without a feedback turn, the first assistant turn is repeated (docs/utdebug.md).
   */
  flow: z.enum(["paper", "reference"]).default("paper"),
  /** Debugger prompt: `auto` (MBPP template with the first test_list example when the row has one, else HumanEval's), `mbpp`, `humaneval`. */
  code_prompt: z.enum(["auto", "mbpp", "humaneval"]).default("auto"),
  ...buildUtShape,
  /** Per-call limit of a UT run on the code under debugging, seconds (the reference: 2). */
  ut_timeout_s: z.number().positive().default(2),
  /** Limits of the private tests for pass@1: `calibrated` on canonical's time (as gold-check) or `fixed` (executor.buggy_timeout_s, the reference's 2 s). */
  pass_limits: z.enum(["calibrated", "fixed"]).default("calibrated"),
  /** Run gold on every accepted UT input to mark in the traces whether its output is right (never used by the loop). */
  diagnose_uts: z.boolean().default(true),
  /** `concurrent`: every problem runs its rounds on its own; `lockstep`: one round for all problems, then the next (the reference's structure; for comparison). */
  schedule: z.enum(["concurrent", "lockstep"]).default("concurrent"),
  /** Problems (× methods) in flight; default 4 × llm.concurrency (model backends) or 8 (heuristic). Performance only. */
  concurrency: z.int().positive().optional(),
  bootstrap: bootstrapSchema,
  /** Debug only the first `limit` problems of each set (or the global --limit N). */
  limit: z.int().positive().optional(),
  /** Heuristic backend (no model): seed of the fuzzing and repair-search orders. */
  seed: z.int().default(0),
  llm: llmOverrideSchema,
});
export type UtdebugConfig = z.infer<typeof utdebugConfigSchema>;

/** The settings BuildUT reads (a subset of both stage configs). */
export type BuildUtSettings = Pick<
  UtdebugConfig,
  "n" | "k" | "sc" | "sc_threshold" | "sc_threshold_rounding" | "sc_vote_match" | "sc_prompt" | "ut_attempts_factor" | "sampling" | "extra_body"
>;

/** Vote count the winner needs: share × k, rounded as configured. */
export function voteThreshold(share: number, k: number, rounding: "ceil" | "python_round"): number {
  const x = share * k;
  if (rounding === "ceil") return Math.ceil(x - 1e-9);
  const f = Math.floor(x);
  const d = x - f;
  if (Math.abs(d - 0.5) < 1e-9) return f % 2 === 0 ? f : f + 1;
  return Math.round(x);
}
