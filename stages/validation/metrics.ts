/**
 * Validation metrics (UTGen App. A.2), as pure functions.
 *
 * Per generated unit test (x̂, ŷ) on a problem with gold f_r and buggy f̂_b:
 *  - attack:        gold runs on x̂ (no error, within its limit) and the buggy code does not "pass" on it
 *                   (a different value, an exception, a timeout or a crash all count) — `check_attack_success`;
 *  - outputCorrect: gold runs on x̂ and ŷ matches gold's output (`eval_exact_match(gold, ŷ)`);
 *  - both:          attack ∧ outputCorrect (Acc∩Attack).
 * An unparsable response fails all three and is tallied under its reason.
 * Aggregates are means over all generated tests (every problem has the same n × runs tests, so this equals
 * the mean of per-problem means), per run and pooled, with a seeded percentile-bootstrap 95% CI that
 * resamples problems.
 *
 * Scoring "he" (a per-set option; the reference's he_intrinsic_eval.py): a response whose arguments do not
 * parse counts (as a failure) in the attack rate only — it is left out of the denominators of output accuracy
 * and Acc∩Attack — and an input whose gold output is None is never an attack ("no gold output ⇒ no attack").
 * Scoring "mbpp" (default; mbpp_intrinsic_eval.py) counts every test in every denominator.
 */
import type { CallStatus } from "../../pipeline/executor/types.ts";
import type { Scoring } from "./datasets.ts";
import { Rng } from "../common.ts";

export const METRICS = ["attack", "outputCorrect", "both"] as const;
export type MetricName = (typeof METRICS)[number];
export const METRIC_LABELS: Record<MetricName, string> = {
  attack: "Attack rate",
  outputCorrect: "Output acc.",
  both: "Acc∩Attack",
};

/** What the metric needs to know about one executed test. */
export interface TestVerdictInput {
  /** "ok" when the arguments parsed; otherwise the parse-failure reason. */
  parse: string;
  goldStatus?: CallStatus;
  buggyStatus?: CallStatus;
  /** Buggy returned a value matching gold's (utgen mode): buggy "passes" on x̂. */
  buggyMatchesGold?: boolean;
  /** The predicted output parsed (undefined when absent / unparsable). */
  predictedParsed?: boolean;
  /** Predicted output matches gold's output (utgen mode). */
  predictedMatchesGold?: boolean;
  /** Gold returned None (only "he" scoring looks at it). */
  goldIsNone?: boolean;
}

export interface TestFlags {
  attack: boolean;
  outputCorrect: boolean;
  both: boolean;
  /** Gold ran on the input (the input is valid). */
  goldValid: boolean;
  /** false: left out of the output-accuracy and Acc∩Attack denominators ("he" scoring, unparsable response). */
  outputScored?: boolean;
}

/** The reference semantics of one test, from executed statuses and comparisons. */
export function scoreTest(t: TestVerdictInput, scoring: Scoring = "mbpp"): TestFlags {
  if (t.parse !== "ok")
    return { attack: false, outputCorrect: false, both: false, goldValid: false, ...(scoring === "he" ? { outputScored: false } : {}) };
  const goldValid = t.goldStatus === "ok";
  const buggyPasses = t.buggyStatus === "ok" && t.buggyMatchesGold === true;
  const attack = goldValid && !buggyPasses && !(scoring === "he" && t.goldIsNone === true);
  const outputCorrect = goldValid && t.predictedParsed === true && t.predictedMatchesGold === true;
  return { attack, outputCorrect, both: attack && outputCorrect, goldValid };
}

/** Per-problem tallies: counts of tests and successes per metric. */
export interface ProblemTally {
  taskId: string;
  /** Tests generated (the attack-rate denominator). */
  tests: number;
  /** Tests in the output-accuracy and Acc∩Attack denominators when it differs from `tests` ("he" scoring). */
  outTests?: number;
  attack: number;
  outputCorrect: number;
  both: number;
}

export function tallyProblem(taskId: string, flags: (Pick<TestFlags, MetricName> & { outputScored?: boolean })[]): ProblemTally {
  const t: ProblemTally = { taskId, tests: flags.length, attack: 0, outputCorrect: 0, both: 0 };
  for (const f of flags) for (const m of METRICS) if (f[m]) t[m]++;
  const scored = flags.filter((f) => f.outputScored !== false).length;
  if (scored !== flags.length) t.outTests = scored;
  return t;
}

/** A tally's denominator for one metric: every test for the attack rate, the scored ones for the others. */
export function denominator(t: ProblemTally, metric: MetricName): number {
  return metric === "attack" ? t.tests : (t.outTests ?? t.tests);
}

/** Pooled rate in [0, 1] over problems (sum of successes / sum of denominators). 0 when there are no tests. */
export function pooledRate(tallies: ProblemTally[], metric: MetricName): number {
  let s = 0;
  let n = 0;
  for (const t of tallies) {
    s += t[metric];
    n += denominator(t, metric);
  }
  return n === 0 ? 0 : s / n;
}

/** Seeded uniform [0, 1) stream for the bootstrap (the project's keyed PRNG): same seed → same intervals. */
export function seededRandom(seed: number, label = "bootstrap"): () => number {
  const rng = new Rng(label, seed);
  return () => rng.next();
}

export interface Interval {
  lo: number;
  hi: number;
}

/** Linear-interpolated quantile of a sorted array (numpy's default "linear" method). */
export function quantileSorted(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/**
 * Percentile bootstrap over problems: resample problems with replacement `samples` times, compute the pooled
 * rate of each metric, return the [2.5%, 97.5%] quantiles (for `level` 0.95). Seeded, so reports are stable.
 */
export function bootstrapCI(
  tallies: ProblemTally[],
  opts: { samples: number; seed: number; level?: number },
): Record<MetricName, Interval> {
  const level = opts.level ?? 0.95;
  const out = {} as Record<MetricName, Interval>;
  const k = tallies.length;
  if (k === 0) {
    for (const m of METRICS) out[m] = { lo: 0, hi: 0 };
    return out;
  }
  const rand = seededRandom(opts.seed);
  const draws: Record<MetricName, number[]> = { attack: [], outputCorrect: [], both: [] };
  for (let b = 0; b < opts.samples; b++) {
    const n = { attack: 0, outputCorrect: 0, both: 0 };
    const s = { attack: 0, outputCorrect: 0, both: 0 };
    for (let i = 0; i < k; i++) {
      const t = tallies[Math.floor(rand() * k)];
      for (const m of METRICS) {
        n[m] += denominator(t, m);
        s[m] += t[m];
      }
    }
    for (const m of METRICS) draws[m].push(n[m] === 0 ? 0 : s[m] / n[m]);
  }
  const a = (1 - level) / 2;
  for (const m of METRICS) {
    const sorted = draws[m].sort((x, y) => x - y);
    out[m] = { lo: quantileSorted(sorted, a), hi: quantileSorted(sorted, 1 - a) };
  }
  return out;
}

export interface MetricSummary {
  /** Pooled over every run's tests, in [0, 1]. */
  value: number;
  ci: Interval;
  /** One value per run, in [0, 1]. */
  perRun: number[];
  /** Sample standard deviation across runs (0 with one run). */
  runStd: number;
}

export interface Summary {
  problems: number;
  tests: number;
  /** The output-accuracy / Acc∩Attack denominator, when it differs from `tests` ("he" scoring). */
  outputTests?: number;
  /** Tests whose arguments parsed and whose input gold accepted. */
  validInputs: number;
  metrics: Record<MetricName, MetricSummary>;
  /** Unparsable or partly unparsable responses, by reason. */
  failures: Record<string, number>;
}

function std(xs: number[]): number {
  if (xs.length < 2) return 0;
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  return Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1));
}

/** Merge per-run tallies of the same problems into one tally per problem (pooled over runs). */
export function mergeRuns(runs: ProblemTally[][]): ProblemTally[] {
  const byId = new Map<string, ProblemTally>();
  for (const run of runs)
    for (const t of run) {
      const cur = byId.get(t.taskId) ?? { taskId: t.taskId, tests: 0, attack: 0, outputCorrect: 0, both: 0 };
      const out = (cur.outTests ?? cur.tests) + (t.outTests ?? t.tests);
      cur.tests += t.tests;
      if (out !== cur.tests || cur.outTests !== undefined) cur.outTests = out;
      for (const m of METRICS) cur[m] += t[m];
      byId.set(t.taskId, cur);
    }
  return [...byId.values()];
}

/** Summary of one model on one set from its per-run tallies. */
export function summarize(
  runs: ProblemTally[][],
  extra: { validInputs: number; failures: Record<string, number> },
  boot: { samples: number; seed: number },
): Summary {
  const pooled = mergeRuns(runs);
  const ci = bootstrapCI(pooled, boot);
  const metrics = {} as Record<MetricName, MetricSummary>;
  for (const m of METRICS) {
    const perRun = runs.map((r) => pooledRate(r, m));
    metrics[m] = { value: pooledRate(pooled, m), ci: ci[m], perRun, runStd: std(perRun) };
  }
  const tests = pooled.reduce((a, t) => a + t.tests, 0);
  const outputTests = pooled.reduce((a, t) => a + denominator(t, "outputCorrect"), 0);
  return {
    problems: pooled.length,
    tests,
    ...(outputTests !== tests ? { outputTests } : {}),
    validInputs: extra.validInputs,
    metrics,
    failures: extra.failures,
  };
}

/** Percent with two decimals, as the paper's tables. */
export function pct(x: number): string {
  return (100 * x).toFixed(2);
}
