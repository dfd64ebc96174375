/**
 * HE+Fix as the reference's he_intrinsic_eval.py scores it, end to end through the real executor: rows of
 * bigcode/humanevalpack converted as the reference does (`code = buggy_solution`, the body alone, which does not
 * load — so every valid input whose gold output is not None counts as an attack there and here), "he" scoring
 * (an unparsable response counts in the attack rate only; a gold output of None is never an attack), and the
 * same set under "mbpp" scoring for contrast.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createExecutor, type Executor } from "../pipeline/executor/index.ts";
import { fromHumanEvalPack, toProblem } from "../stages/validation/datasets.ts";
import { evaluateProblem } from "../stages/validation/evaluate.ts";
import { summarize, tallyProblem } from "../stages/validation/metrics.ts";
import { utText } from "./fixtures/validate/script.ts";

const ROW = {
  task_id: "Python/7",
  prompt: 'def first(xs: list):\n    """ The first element of xs, or None when xs is empty. """\n',
  declaration: "def first(xs: list):\n",
  canonical_solution: "    return xs[0] if xs else None\n",
  buggy_solution: "    return xs[-1] if xs else None\n",
  entry_point: "first",
  signature: "first(xs: list)",
  test: "def check(first):\n    assert first([1, 2]) == 1\n",
};

let ex: Executor;
beforeAll(async () => {
  ex = await createExecutor({ workers: 1 });
});
afterAll(async () => ex?.close());

const deps = () => ({ executor: ex, goldTimeoutS: 1, buggyTimeout: () => 2 });
const responses = [
  { run: 0, sample: 0, text: utText("first([5])", "5") }, // buggy body does not load: an attack (reference quirk); output right
  { run: 0, sample: 1, text: utText("first([])", "None") }, // gold output None: never an attack under "he"
  { run: 0, sample: 2, text: "I cannot write a test." }, // unparsable: attack denominator only under "he"
  { run: 0, sample: 3, text: utText("first([1, 2])", "2") }, // attack, wrong output
];

describe("HE+Fix scoring (he_intrinsic_eval.py)", () => {
  it("reference rows: the body-only buggy code fails to load, so every valid non-None input is an attack", async () => {
    const p = toProblem(fromHumanEvalPack(ROW, "row"), "row");
    const recs = await evaluateProblem(deps(), p, responses, "he");
    expect(recs.map((r) => [r.parse, r.attack, r.outputCorrect, r.both, r.outputScored])).toEqual([
      ["ok", true, true, true, undefined],
      ["ok", false, true, false, undefined],
      ["no_arguments", false, false, false, false],
      ["ok", true, false, false, undefined],
    ]);
    expect(recs[0].buggy?.status).toBe("error"); // IndentationError at module level
    const s = summarize([[tallyProblem(p.taskId, recs)]], { validInputs: 3, failures: {} }, { samples: 20, seed: 0 });
    // attack 2/4 (the unparsable response counts); output 2/3 and Acc∩Attack 1/3 (it does not)
    expect([s.metrics.attack.value, s.metrics.outputCorrect.value, s.metrics.both.value]).toEqual([2 / 4, 2 / 3, 1 / 3]);
  });

  it('"mbpp" scoring of the same tests: every denominator 4, gold None can be an attack', async () => {
    const p = toProblem(fromHumanEvalPack(ROW, "row"), "row");
    const recs = await evaluateProblem(deps(), p, responses);
    expect(recs.map((r) => r.attack)).toEqual([true, true, false, true]);
    const s = summarize([[tallyProblem(p.taskId, recs)]], { validInputs: 3, failures: {} }, { samples: 20, seed: 0 });
    expect([s.metrics.attack.value, s.metrics.outputCorrect.value, s.metrics.both.value]).toEqual([3 / 4, 2 / 4, 2 / 4]);
  });

  it('buggy_code "function" (declaration + buggy_solution) loads, and attacks are real disagreements', async () => {
    const p = toProblem(fromHumanEvalPack(ROW, "row", "function"), "row");
    const recs = await evaluateProblem(deps(), p, responses, "he");
    // first([5]) → 5 both ways: no attack; first([1, 2]) → 1 vs 2: attack
    expect(recs.map((r) => r.attack)).toEqual([false, false, false, true]);
  });
});
