/**
 * Means with seeded percentile-bootstrap intervals over tasks (the project's keyed PRNG, so reports are
 * stable run to run), and the paired bootstrap of a difference of means over the same tasks.
 */
import { quantileSorted, seededRandom } from "../validation/metrics.ts";

export interface MeanCI {
  mean: number;
  lo: number;
  hi: number;
}

export function mean(xs: number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0;
}

/** Mean of `xs` with a 95% (or `level`) percentile-bootstrap interval resampling the values. */
export function bootstrapMean(xs: number[], opts: { samples: number; seed: number; level?: number }): MeanCI {
  const m = mean(xs);
  if (xs.length === 0) return { mean: 0, lo: 0, hi: 0 };
  const rand = seededRandom(opts.seed, "rl-bootstrap");
  const draws: number[] = [];
  for (let b = 0; b < opts.samples; b++) {
    let s = 0;
    for (let i = 0; i < xs.length; i++) s += xs[Math.floor(rand() * xs.length)];
    draws.push(s / xs.length);
  }
  draws.sort((a, b) => a - b);
  const q = (1 - (opts.level ?? 0.95)) / 2;
  return { mean: m, lo: quantileSorted(draws, q), hi: quantileSorted(draws, 1 - q) };
}

/** Paired bootstrap of mean(a) − mean(b) over the keys both have. */
export function pairedDiff(a: Map<string, number>, b: Map<string, number>, opts: { samples: number; seed: number; level?: number }): MeanCI {
  const keys = [...a.keys()].filter((k) => b.has(k));
  const d = keys.map((k) => a.get(k)! - b.get(k)!);
  return bootstrapMean(d, { ...opts, seed: opts.seed + 7919 });
}
