/**
 * Bootstrap intervals for per-problem 0/1 outcomes (pass@1, best-of-N accuracy): a percentile bootstrap
 * over problems and a paired bootstrap of the difference of two methods on the same problems, both seeded
 * with the project's keyed PRNG (validation/metrics.ts), so reports are stable.
 */
import { quantileSorted, seededRandom, type Interval } from "../validation/metrics.ts";

export interface BootOpts {
  samples: number;
  seed: number;
  level?: number;
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);

/** Mean of `xs` with a percentile-bootstrap interval (problems resampled with replacement). */
export function bootstrapMean(xs: number[], o: BootOpts, label = "utdebug"): { value: number; ci: Interval } {
  const value = mean(xs);
  if (!xs.length) return { value: 0, ci: { lo: 0, hi: 0 } };
  const rand = seededRandom(o.seed, label);
  const draws: number[] = [];
  for (let b = 0; b < o.samples; b++) {
    let s = 0;
    for (let i = 0; i < xs.length; i++) s += xs[Math.floor(rand() * xs.length)];
    draws.push(s / xs.length);
  }
  draws.sort((a, b) => a - b);
  const a = (1 - (o.level ?? 0.95)) / 2;
  return { value, ci: { lo: quantileSorted(draws, a), hi: quantileSorted(draws, 1 - a) } };
}

/** mean(a) − mean(b) over paired problems (same order), with a paired bootstrap interval. */
export function pairedDiff(a: number[], b: number[], o: BootOpts, label = "utdebug-paired"): { value: number; ci: Interval; n: number } {
  const n = Math.min(a.length, b.length);
  const d = Array.from({ length: n }, (_, i) => a[i] - b[i]);
  const r = bootstrapMean(d, o, label);
  return { ...r, n };
}

/** Percent with two decimals. */
export const pct = (x: number) => (100 * x).toFixed(2);
export const ciText = (v: number, ci: Interval) => `${pct(v)} [${pct(ci.lo)}, ${pct(ci.hi)}]`;
export const signed = (x: number) => `${x >= 0 ? "+" : "−"}${Math.abs(100 * x).toFixed(2)}`;
