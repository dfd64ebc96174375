import { describe, expect, it } from "vitest";
import {
  bootstrapCI,
  mergeRuns,
  seededRandom,
  pooledRate,
  quantileSorted,
  scoreTest,
  summarize,
  tallyProblem,
} from "../stages/validation/metrics.ts";

const f = (attack: boolean, outputCorrect: boolean) => ({ attack, outputCorrect, both: attack && outputCorrect });

describe("scoreTest (UTGen check_attack_success + eval_exact_match semantics)", () => {
  it("unparsable arguments fail all three", () => {
    expect(scoreTest({ parse: "no_arguments" })).toEqual({ attack: false, outputCorrect: false, both: false, goldValid: false });
  });
  it("gold raising or timing out makes the input invalid: no attack, no output credit", () => {
    for (const goldStatus of ["error", "timeout", "crash"] as const) {
      const s = scoreTest({ parse: "ok", goldStatus, buggyStatus: "error", predictedParsed: true, predictedMatchesGold: true });
      expect(s).toEqual({ attack: false, outputCorrect: false, both: false, goldValid: false });
    }
  });
  it("buggy error, timeout, crash or a different value all count as an attack", () => {
    for (const buggyStatus of ["error", "timeout", "crash"] as const)
      expect(scoreTest({ parse: "ok", goldStatus: "ok", buggyStatus }).attack).toBe(true);
    expect(scoreTest({ parse: "ok", goldStatus: "ok", buggyStatus: "ok", buggyMatchesGold: false }).attack).toBe(true);
    expect(scoreTest({ parse: "ok", goldStatus: "ok", buggyStatus: "ok", buggyMatchesGold: true }).attack).toBe(false);
  });
  it("output accuracy needs a parsed prediction equal to gold's output; both needs attack too", () => {
    const base = { parse: "ok", goldStatus: "ok" as const, buggyStatus: "ok" as const, buggyMatchesGold: true };
    expect(scoreTest({ ...base, predictedParsed: true, predictedMatchesGold: true })).toEqual({ attack: false, outputCorrect: true, both: false, goldValid: true });
    expect(scoreTest({ ...base, predictedParsed: false })).toMatchObject({ outputCorrect: false });
    expect(scoreTest({ ...base, buggyMatchesGold: false, predictedParsed: true, predictedMatchesGold: true })).toMatchObject({ attack: true, outputCorrect: true, both: true });
    expect(scoreTest({ ...base, buggyMatchesGold: false, predictedParsed: true, predictedMatchesGold: false })).toMatchObject({ attack: true, outputCorrect: false, both: false });
  });
});

describe("aggregation", () => {
  // Problem A: (T,T) (T,F) (F,T) → attack 2, out 2, both 1. Problem B: (F,F) (T,T) (F,F) → 1, 1, 1.
  const A = tallyProblem("A", [f(true, true), f(true, false), f(false, true)]);
  const B = tallyProblem("B", [f(false, false), f(true, true), f(false, false)]);
  it("tallies and pooled rates match a hand computation", () => {
    expect(A).toEqual({ taskId: "A", tests: 3, attack: 2, outputCorrect: 2, both: 1 });
    expect(B).toEqual({ taskId: "B", tests: 3, attack: 1, outputCorrect: 1, both: 1 });
    expect(pooledRate([A, B], "attack")).toBeCloseTo(3 / 6, 12);
    expect(pooledRate([A, B], "outputCorrect")).toBeCloseTo(3 / 6, 12);
    expect(pooledRate([A, B], "both")).toBeCloseTo(2 / 6, 12);
    expect(pooledRate([], "both")).toBe(0);
  });
  it("runs are pooled per problem and reported per run with their spread", () => {
    const run2 = [tallyProblem("A", [f(false, false), f(false, false), f(false, false)]), tallyProblem("B", [f(true, true), f(true, true), f(true, true)])];
    expect(mergeRuns([[A, B], run2])).toEqual([
      { taskId: "A", tests: 6, attack: 2, outputCorrect: 2, both: 1 },
      { taskId: "B", tests: 6, attack: 4, outputCorrect: 4, both: 4 },
    ]);
    const s = summarize([[A, B], run2], { validInputs: 10, failures: { no_arguments: 2 } }, { samples: 200, seed: 1 });
    expect(s.problems).toBe(2);
    expect(s.tests).toBe(12);
    expect(s.metrics.both.value).toBeCloseTo(5 / 12, 12);
    expect(s.metrics.both.perRun.map((x) => +x.toFixed(6))).toEqual([+(2 / 6).toFixed(6), 0.5]);
    // sample std of [1/3, 1/2]
    expect(s.metrics.both.runStd).toBeCloseTo(Math.abs(1 / 2 - 1 / 3) / Math.SQRT2, 12);
    expect(s.failures).toEqual({ no_arguments: 2 });
  });
  it("quantiles interpolate linearly like numpy", () => {
    expect(quantileSorted([1, 2, 3, 4], 0.5)).toBe(2.5);
    expect(quantileSorted([0, 10], 0.25)).toBe(2.5);
    expect(quantileSorted([7], 0.9)).toBe(7);
  });
});

describe("bootstrap CI over problems", () => {
  const rand = seededRandom(42, "test-data");
  const tallies = Array.from({ length: 60 }, (_, i) => {
    const tests = 9;
    const attack = Math.floor(rand() * (tests + 1));
    const outputCorrect = Math.floor(rand() * (tests + 1));
    return { taskId: `p${i}`, tests, attack, outputCorrect, both: Math.min(attack, outputCorrect, Math.floor(rand() * (tests + 1))) };
  });
  it("is deterministic for a seed and changes with the seed", () => {
    const a = bootstrapCI(tallies, { samples: 500, seed: 7 });
    const b = bootstrapCI(tallies, { samples: 500, seed: 7 });
    const c = bootstrapCI(tallies, { samples: 500, seed: 8 });
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
  });
  it("brackets the point estimate and shrinks as problems are added", () => {
    const ci = bootstrapCI(tallies, { samples: 1000, seed: 3 });
    for (const m of ["attack", "outputCorrect", "both"] as const) {
      const v = pooledRate(tallies, m);
      expect(ci[m].lo).toBeLessThanOrEqual(v);
      expect(ci[m].hi).toBeGreaterThanOrEqual(v);
      expect(ci[m].hi - ci[m].lo).toBeGreaterThan(0);
    }
    const quadrupled = [0, 1, 2, 3].flatMap((k) => tallies.map((t) => ({ ...t, taskId: `${t.taskId}-${k}` })));
    const ci4 = bootstrapCI(quadrupled, { samples: 1000, seed: 3 });
    // Standard error scales with 1/sqrt(problems): 4× the problems → about half the width.
    const ratio = (ci4.attack.hi - ci4.attack.lo) / (ci.attack.hi - ci.attack.lo);
    expect(ratio).toBeGreaterThan(0.35);
    expect(ratio).toBeLessThan(0.65);
  });
  it("is degenerate when every problem has the same rate", () => {
    const same = Array.from({ length: 10 }, (_, i) => ({ taskId: `q${i}`, tests: 4, attack: 1, outputCorrect: 2, both: 1 }));
    const ci = bootstrapCI(same, { samples: 100, seed: 0 });
    expect(ci.attack).toEqual({ lo: 0.25, hi: 0.25 });
    expect(ci.outputCorrect).toEqual({ lo: 0.5, hi: 0.5 });
  });
});

describe('"he" scoring (he_intrinsic_eval.py): its denominators and "no gold output ⇒ no attack"', () => {
  it("an unparsable response fails the attack rate and is left out of the other two", () => {
    expect(scoreTest({ parse: "no_arguments" }, "he")).toEqual({ attack: false, outputCorrect: false, both: false, goldValid: false, outputScored: false });
    // mbpp scoring keeps it in every denominator
    expect(scoreTest({ parse: "no_arguments" }, "mbpp").outputScored).toBeUndefined();
  });
  it("a gold output of None is never an attack (mbpp scoring counts it)", () => {
    const t = { parse: "ok", goldStatus: "ok" as const, goldIsNone: true, buggyStatus: "error" as const, predictedParsed: true, predictedMatchesGold: true };
    expect(scoreTest(t, "he")).toEqual({ attack: false, outputCorrect: true, both: false, goldValid: true });
    expect(scoreTest(t, "mbpp")).toEqual({ attack: true, outputCorrect: true, both: true, goldValid: true });
  });
  it("pooled rates use the reference's denominators (hand computation)", () => {
    // 4 responses: 1 unparsable; 3 parsed: (attack, correct) = (T,T), (T,F), (F,T).
    // Reference: attack = 2/4 (the unparsable one is appended False); output acc = 2/3; Acc∩Attack = 1/3.
    const flags = [
      scoreTest({ parse: "unparsable_arguments" }, "he"),
      { attack: true, outputCorrect: true, both: true },
      { attack: true, outputCorrect: false, both: false },
      { attack: false, outputCorrect: true, both: false },
    ];
    const t = tallyProblem("H", flags);
    expect(t).toEqual({ taskId: "H", tests: 4, outTests: 3, attack: 2, outputCorrect: 2, both: 1 });
    expect(pooledRate([t], "attack")).toBeCloseTo(2 / 4, 12);
    expect(pooledRate([t], "outputCorrect")).toBeCloseTo(2 / 3, 12);
    expect(pooledRate([t], "both")).toBeCloseTo(1 / 3, 12);
    // merged over runs, the denominators add up; a run without unparsable responses adds to both alike
    const merged = mergeRuns([[t], [tallyProblem("H", [f(true, true)])]]);
    expect(merged).toEqual([{ taskId: "H", tests: 5, outTests: 4, attack: 3, outputCorrect: 3, both: 2 }]);
    const s = summarize([[t]], { validInputs: 3, failures: {} }, { samples: 50, seed: 0 });
    expect(s.tests).toBe(4);
    expect(s.outputTests).toBe(3);
    expect(s.metrics.outputCorrect.value).toBeCloseTo(2 / 3, 12);
    expect(s.metrics.outputCorrect.ci.lo).toBeCloseTo(2 / 3, 12); // one problem: a degenerate interval
  });
});
