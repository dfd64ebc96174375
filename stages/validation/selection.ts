/**
 * Checkpoint selection rule (pure): highest Acc∩Attack; ties broken by output accuracy, then attack rate,
 * then the earlier step. The runner-up margin comes with a paired bootstrap interval over problems (same
 * resampled problems for both checkpoints), so the report can say when the margin is within noise.
 */
import { METRICS, denominator, seededRandom, pooledRate, quantileSorted, type Interval, type ProblemTally } from "./metrics.ts";

export interface Candidate {
  name: string;
  step: number | null;
  /** Pooled per-problem tallies on the selection set. */
  tallies: ProblemTally[];
  ci?: unknown;
}

export interface Scored extends Candidate {
  both: number;
  outputCorrect: number;
  attack: number;
}

/** Sort order of the rule: best first. */
export function compareCandidates(a: Scored, b: Scored): number {
  if (a.both !== b.both) return b.both - a.both;
  if (a.outputCorrect !== b.outputCorrect) return b.outputCorrect - a.outputCorrect;
  if (a.attack !== b.attack) return b.attack - a.attack;
  const sa = a.step ?? Number.POSITIVE_INFINITY;
  const sb = b.step ?? Number.POSITIVE_INFINITY;
  if (sa !== sb) return sa - sb;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

export function scoreCandidate(c: Candidate): Scored {
  return {
    ...c,
    both: pooledRate(c.tallies, "both"),
    outputCorrect: pooledRate(c.tallies, "outputCorrect"),
    attack: pooledRate(c.tallies, "attack"),
  };
}

/**
 * Paired percentile bootstrap of (a − b) for one metric over the problems both were scored on.
 */
export function pairedDiffCI(
  a: ProblemTally[],
  b: ProblemTally[],
  metric: (typeof METRICS)[number],
  opts: { samples: number; seed: number; level?: number },
): Interval {
  const bMap = new Map(b.map((t) => [t.taskId, t]));
  const pairs = a.filter((t) => bMap.has(t.taskId)).map((t) => [t, bMap.get(t.taskId)!] as const);
  if (pairs.length === 0) return { lo: 0, hi: 0 };
  const rand = seededRandom(opts.seed, "paired-bootstrap");
  const diffs: number[] = [];
  for (let s = 0; s < opts.samples; s++) {
    let na = 0, sa = 0, nb = 0, sb = 0;
    for (let i = 0; i < pairs.length; i++) {
      const [x, y] = pairs[Math.floor(rand() * pairs.length)];
      na += denominator(x, metric);
      sa += x[metric];
      nb += denominator(y, metric);
      sb += y[metric];
    }
    diffs.push((na ? sa / na : 0) - (nb ? sb / nb : 0));
  }
  diffs.sort((x, y) => x - y);
  const q = (1 - (opts.level ?? 0.95)) / 2;
  return { lo: quantileSorted(diffs, q), hi: quantileSorted(diffs, 1 - q) };
}

export interface SelectionResult {
  best: Scored;
  runnerUp?: Scored;
  ranking: Scored[];
  /** Why the best won over the runner-up: which rule decided. */
  decidedBy: "acc_attack" | "output_accuracy" | "attack_rate" | "earlier_step" | "only_candidate" | "name";
  margin?: { metric: "both"; value: number; ci: Interval; withinCi: boolean };
  reason: string;
}

const pctS = (x: number) => `${(100 * x).toFixed(2)}%`;

export function selectBest(cands: Candidate[], boot: { samples: number; seed: number }): SelectionResult {
  if (cands.length === 0) throw new Error("selectBest: no candidates");
  const ranking = cands.map(scoreCandidate).sort(compareCandidates);
  const best = ranking[0];
  const runnerUp = ranking[1];
  if (!runnerUp) {
    return {
      best,
      ranking,
      decidedBy: "only_candidate",
      reason: `${best.name} is the only validated checkpoint (Acc∩Attack ${pctS(best.both)})`,
    };
  }
  const decidedBy: SelectionResult["decidedBy"] =
    best.both !== runnerUp.both
      ? "acc_attack"
      : best.outputCorrect !== runnerUp.outputCorrect
        ? "output_accuracy"
        : best.attack !== runnerUp.attack
          ? "attack_rate"
          : (best.step ?? Infinity) !== (runnerUp.step ?? Infinity)
            ? "earlier_step"
            : "name";
  const value = best.both - runnerUp.both;
  const ci = pairedDiffCI(best.tallies, runnerUp.tallies, "both", boot);
  const withinCi = ci.lo <= 0;
  const rule: Record<SelectionResult["decidedBy"], string> = {
    acc_attack: "highest Acc∩Attack",
    output_accuracy: "Acc∩Attack tied; higher output accuracy",
    attack_rate: "Acc∩Attack and output accuracy tied; higher attack rate",
    earlier_step: "all three metrics tied; earlier step",
    name: "all metrics and steps tied; first by name",
    only_candidate: "only candidate",
  };
  const reason =
    `${best.name} (step ${best.step ?? "?"}) chosen by ${rule[decidedBy]}: Acc∩Attack ${pctS(best.both)}, ` +
    `output acc. ${pctS(best.outputCorrect)}, attack rate ${pctS(best.attack)}; runner-up ${runnerUp.name} ` +
    `at ${pctS(runnerUp.both)} (margin ${(100 * value).toFixed(2)} points, paired 95% CI ` +
    `[${(100 * ci.lo).toFixed(2)}, ${(100 * ci.hi).toFixed(2)}]` +
    (withinCi ? ", inside the confidence interval: the difference is within noise)" : ")");
  return { best, runnerUp, ranking, decidedBy, margin: { metric: "both", value, ci, withinCi }, reason };
}
