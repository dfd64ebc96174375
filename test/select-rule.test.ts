import { describe, expect, it } from "vitest";
import { pairedDiffCI, selectBest, type Candidate } from "../stages/validation/selection.ts";
import type { ProblemTally } from "../stages/validation/metrics.ts";

/** k problems, 10 tests each, with the given success counts per problem. */
function tallies(k: number, per: { attack: number; outputCorrect: number; both: number }): ProblemTally[] {
  return Array.from({ length: k }, (_, i) => ({ taskId: `p${i}`, tests: 10, ...per }));
}
const boot = { samples: 400, seed: 0 };

describe("selection rule", () => {
  it("picks the highest Acc∩Attack", () => {
    const c: Candidate[] = [
      { name: "ck-step10", step: 10, tallies: tallies(20, { attack: 5, outputCorrect: 5, both: 2 }) },
      { name: "ck-step20", step: 20, tallies: tallies(20, { attack: 4, outputCorrect: 4, both: 4 }) },
      { name: "ck-step30", step: 30, tallies: tallies(20, { attack: 9, outputCorrect: 9, both: 3 }) },
    ];
    const r = selectBest(c, boot);
    expect(r.best.name).toBe("ck-step20");
    expect(r.runnerUp?.name).toBe("ck-step30");
    expect(r.decidedBy).toBe("acc_attack");
    expect(r.margin?.value).toBeCloseTo(0.1, 12);
    // Identical per-problem values → a degenerate, strictly positive difference: outside the CI.
    expect(r.margin?.ci).toEqual({ lo: expect.closeTo(0.1, 12), hi: expect.closeTo(0.1, 12) });
    expect(r.margin?.withinCi).toBe(false);
    expect(r.reason).toContain("ck-step20");
  });
  it("breaks ties by output accuracy, then attack rate, then the earlier step", () => {
    const t = (attack: number, outputCorrect: number) => tallies(5, { attack, outputCorrect, both: 3 });
    expect(selectBest([
      { name: "a", step: 1, tallies: t(5, 5) },
      { name: "b", step: 2, tallies: t(5, 6) },
    ], boot)).toMatchObject({ best: { name: "b" }, decidedBy: "output_accuracy" });
    expect(selectBest([
      { name: "a", step: 1, tallies: t(5, 5) },
      { name: "b", step: 2, tallies: t(7, 5) },
    ], boot)).toMatchObject({ best: { name: "b" }, decidedBy: "attack_rate" });
    const tie = selectBest([
      { name: "late", step: 200, tallies: t(5, 5) },
      { name: "early", step: 100, tallies: t(5, 5) },
    ], boot);
    expect(tie).toMatchObject({ best: { name: "early" }, runnerUp: { name: "late" }, decidedBy: "earlier_step" });
    // A tie has margin 0, which is inside any interval.
    expect(tie.margin?.withinCi).toBe(true);
    expect(tie.reason).toContain("inside the confidence interval");
  });
  it("says when the margin is within noise", () => {
    // Two checkpoints that differ on one problem out of 40, in opposite directions elsewhere.
    const a: ProblemTally[] = tallies(40, { attack: 5, outputCorrect: 5, both: 3 }).map((t, i) => ({ ...t, both: i % 2 ? 4 : 2 }));
    const b: ProblemTally[] = tallies(40, { attack: 5, outputCorrect: 5, both: 3 }).map((t, i) => ({ ...t, both: i % 2 ? 2 : 4 }));
    b[0] = { ...b[0], both: 1 };
    const r = selectBest([{ name: "a", step: 1, tallies: a }, { name: "b", step: 2, tallies: b }], boot);
    expect(r.best.name).toBe("a");
    expect(r.margin!.value).toBeGreaterThan(0);
    expect(r.margin!.ci.lo).toBeLessThan(0);
    expect(r.margin!.withinCi).toBe(true);
  });
  it("handles a single candidate and computes paired intervals only over shared problems", () => {
    const one = selectBest([{ name: "solo", step: 5, tallies: tallies(3, { attack: 1, outputCorrect: 1, both: 1 }) }], boot);
    expect(one).toMatchObject({ best: { name: "solo" }, decidedBy: "only_candidate" });
    expect(one.runnerUp).toBeUndefined();
    const x = [{ taskId: "p0", tests: 2, attack: 2, outputCorrect: 2, both: 2 }, { taskId: "only-x", tests: 2, attack: 0, outputCorrect: 0, both: 0 }];
    const y = [{ taskId: "p0", tests: 2, attack: 0, outputCorrect: 0, both: 0 }];
    expect(pairedDiffCI(x, y, "both", boot)).toEqual({ lo: 1, hi: 1 });
  });
});
