/**
 * The `rl:` config block: settings every UTRL command shares (rewards, the Pass function, the reward
 * cache). The numbers that decide a reward — τ, λ, the case limits, the time limit, the output checker —
 * live here once, so the batch mode (`rl-rewards`), the HTTP reward service (`rl-serve`), validation
 * between phases, best-of-N and fidelity all compute the same numbers.
 *
 *   rl:
 *     tau: 12            # Eq. 2: R_valid = |valid| / max(|U|, tau)
 *     lambda: 0.85       # Eq. 3: R = lambda · R_disc + (1 − lambda) · R_valid
 *     num_cases: 12      # test cases the UT prompt asks for
 *     max_cases: 32      # cases after this many are not run (counted as cases_over_cap)
 *     timeout_s: 10      # Pass(): per-case time limit (App. A.3: 10 s)
 *     checker: tokens    # stdio output matching: tokens | lines | exact
 */
import { z } from "zod";
import type { StdoutMatchOptions } from "../../pipeline/executor/judge.ts";

export const rlConfigSchema = z.strictObject({
  /** Eq. 2's τ: the desired minimum number of test cases (the denominator is max(|U|, τ)). */
  tau: z.int().positive().default(12),
  /** Eq. 3's λ: weight of the discrimination reward. */
  lambda: z.number().min(0).max(1).default(0.85),
  /** Test cases the UT prompt asks for (App. A.3: a fixed number per unit test). */
  num_cases: z.int().positive().default(12),
  /** Cases beyond this many in one unit test are not executed (counted as `cases_over_cap`, not in |U|). */
  max_cases: z.int().positive().default(32),
  /** A generated case whose input or output text is longer than this is invalid (`case_too_long`). */
  max_case_chars: z.int().positive().default(100_000),
  /** Pass(): per-case time limit in seconds (App. A.3: 10 s). */
  timeout_s: z.number().positive().default(10),
  /** Module-level limit (imports, top-level code of function tasks); default timeout_s. */
  load_timeout_s: z.number().positive().optional(),
  /**
   * stdio output matching (pipeline/executor/judge.ts): `tokens` — whitespace-separated tokens, equal
   * count, each equal as text or, for decimal numbers, within abs_tol/rel_tol; `lines` — line by line,
   * trailing whitespace ignored; `exact` — byte equality.
   */
  checker: z.enum(["tokens", "lines", "exact"]).default("tokens"),
  abs_tol: z.number().min(0).default(1e-6),
  rel_tol: z.number().min(0).default(1e-6),
  /** Function tasks: value comparison (compare.ts): `utgen` (the UTGen reference's eval_exact_match) or `strict`. */
  compare: z.enum(["utgen", "strict"]).default("utgen"),
  /** Raw results kept in memory for identical (code, input) pairs, MiB (performance only). */
  cache_mb: z.int().positive().default(256),
});

export type RlConfig = z.infer<typeof rlConfigSchema>;

/** Keys of `rl:` that never change a number (left out of result keys). */
export const RL_PERF_KEYS = ["cache_mb"] as const;

export function parseRlConfig(raw: unknown): RlConfig {
  return rlConfigSchema.parse(raw ?? {});
}

/** The settings that decide rewards (everything but performance knobs): joins cache keys and reports. */
export function rlSemantics(cfg: RlConfig): Omit<RlConfig, (typeof RL_PERF_KEYS)[number]> {
  const { cache_mb: _perf, ...rest } = cfg;
  return rest;
}

export function stdoutOptions(cfg: RlConfig): StdoutMatchOptions {
  return { mode: cfg.checker, abs_tol: cfg.abs_tol, rel_tol: cfg.rel_tol };
}
