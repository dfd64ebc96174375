/**
 * `outputsMatch` in `utgen` mode is the UTGen reference's `eval_exact_match`, proven against the verdicts the
 * reference function itself returned: ../shared/data/reference_match_cases.jsonl (Python source of the two
 * values, `use_set`, the reference's `match`, and `reference_raises` where it raised — its caller counts a raise
 * as "not pass"). The file is read at run time (no copy in the project); without ../shared this test fails
 * with one line. Each value expression is evaluated inside the sandbox (the script namespace: the prelude,
 * numpy as np, encode_value) and comes back in the executor's typed encoding, exactly as a program's return
 * value would; the verdict is then computed in Node.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createExecutor, outputsMatch, type Executor, type PyValue } from "../pipeline/executor/index.ts";
import { readSharedJsonl } from "./helpers/shared.ts";

interface Case {
  out: string;
  exp: string;
  use_set: boolean;
  match: boolean;
  reference_raises?: string;
}

const EVAL = `OUTPUT = [[encode_value(eval(a)), encode_value(eval(b))] for a, b in INPUT]`;

describe("utgen mode = the reference's eval_exact_match (../shared/data/reference_match_cases.jsonl)", () => {
  let ex: Executor;
  beforeAll(async () => {
    ex = await createExecutor({ workers: 1 });
  });
  afterAll(async () => ex?.close());

  it("returns the reference's verdict for every case", async () => {
    const cases = readSharedJsonl<Case>("data/reference_match_cases.jsonl");
    expect(cases.length).toBeGreaterThanOrEqual(71);
    const r = await ex.runScript(EVAL, cases.map((c) => [c.out, c.exp]), { timeoutS: 30 });
    expect(r.status, r.message).toBe("ok");
    const values = r.output as [PyValue, PyValue][];
    const wrong = cases
      .map((c, i) => ({ c, got: outputsMatch(values[i][0], values[i][1], { mode: "utgen", useSet: c.use_set }) }))
      .filter(({ c, got }) => got !== c.match)
      .map(({ c, got }) => `${c.out} vs ${c.exp}${c.use_set ? " (use_set)" : ""}: reference ${c.match}${c.reference_raises ? ` (raises ${c.reference_raises})` : ""}, ours ${got}`);
    expect(wrong).toEqual([]);
    // The quirk rows are really exercised: the file holds cases where the reference raised and still matched nothing.
    expect(cases.filter((c) => c.reference_raises).length).toBeGreaterThan(5);
  });
});
