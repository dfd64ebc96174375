import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createExecutor, formatPyValue, outputsMatch, type Executor, type PyValue } from "../pipeline/executor/index.ts";

const f = (x: string): PyValue => ({ $float: x });
const t = (...xs: PyValue[]): PyValue => ({ $tuple: xs });
const arr = (data: PyValue, dtype: string): PyValue => ({ $ndarray: data, dtype });

// [actual, expected, options, utgen, strict, what]
type Row = [PyValue, PyValue, { atol?: number; useSet?: boolean }, boolean, boolean, string];
const TABLE: Row[] = [
  [3, f("3.0"), {}, true, false, "3 == 3.0"],
  [true, 1, {}, true, false, "True == 1"],
  [{ $dict: [["a", 1], ["b", 2]] }, { $dict: [["b", 2], ["a", 1]] }, {}, true, true, "dict order ignored"],
  [t(1, 2), [1, 2], {}, false, false, "tuple vs list of ints"],
  [[f("1.0"), f("2.0")], t(f("1.0"), f("2.0")), {}, true, false, "float list vs float tuple (allclose)"],
  [f("nan"), f("nan"), {}, false, true, "nan vs nan"],
  [[1], [], {}, true, false, "[1] vs [] (allclose broadcasting)"],
  [[f("1.0"), f("2.0")], [f("1.0"), f("2.0"), f("3.0")], {}, false, false, "float lists of different lengths raise"],
  ["no error here", "no error here", {}, false, true, "str out containing 'error'"],
  [f("1.0000001"), f("1.0"), {}, true, true, "float tolerance 1e-6"],
  [f("1.01"), f("1.0"), {}, false, false, "beyond tolerance"],
  [1, f("1.0000001"), {}, true, false, "int vs close float"],
  [{ $set: [1, 2] }, { $set: [2, 1] }, {}, true, true, "set equality"],
  [{ $set: [1, 2] }, { $frozenset: [2, 1] }, {}, true, false, "set == frozenset"],
  [[1, 2, 2], [2, 1], { useSet: true }, true, true, "useSet compares set(out) == set(exp)"],
  [[1, 2, 2], [2, 1], {}, false, false, "no useSet"],
  [[[1, 2]], [[1, 2]], { useSet: true }, false, false, "useSet with unhashable items raises"],
  [arr([1, 2], "int64"), [1, 2], {}, false, false, "ndarray vs list: truth value of an array raises"],
  [arr([1, 2], "int64"), arr([1, 2], "int64"), {}, false, true, "ndarray vs ndarray"],
  [f("inf"), f("inf"), {}, true, true, "inf == inf"],
  [f("inf"), f("-inf"), {}, false, false, "inf vs -inf"],
  [{ $int: "123456789012345678901234567890" }, { $int: "123456789012345678901234567890" }, {}, true, true, "big ints"],
  [{ $int: "9007199254740993" }, f("9007199254740992.0"), {}, true, false, "big int vs float: == is exact, allclose is not"],
  [null, null, {}, true, true, "None"],
  [null, f("0.0"), {}, false, false, "None vs float (allclose raises)"],
  ["abc", "abc", {}, true, true, "strings"],
  [{ $bytes: "YWJj" }, "abc", {}, false, false, "bytes vs str"],
  [[f("1.0"), 2], [f("1.0"), f("2.0")], {}, true, false, "mixed list vs float list"],
  [f("1.05"), f("1.0"), { atol: 0.1 }, true, true, "explicit atol"],
  [2, 3, { atol: 1 }, true, false, "explicit atol on ints (allclose)"],
  [{ $repr: "<Foo>", type: "Foo" }, { $repr: "<Foo>", type: "Foo" }, {}, true, true, "same repr and type"],
  [{ $dict: [[1, "a"]] }, { $dict: [[f("1.0"), "a"]] }, {}, true, false, "dict keys 1 vs 1.0"],
];

describe("outputsMatch quirk table", () => {
  for (const [a, e, o, utgen, strict, what] of TABLE) {
    it(`${what}: utgen=${utgen} strict=${strict}`, () => {
      expect(outputsMatch(a, e, { ...o, mode: "utgen" })).toBe(utgen);
      expect(outputsMatch(a, e, { ...o, mode: "strict" })).toBe(strict);
    });
  }
  it("defaults to utgen mode", () => {
    expect(outputsMatch(3, f("3.0"))).toBe(true);
    expect(outputsMatch(f("nan"), f("nan"))).toBe(false);
  });
});

// The reference implementation, run in the sandbox on the table's values: utgen mode must agree with it.
const EVAL_EXACT_MATCH = `
import numpy as np
def is_floats(x):
    if isinstance(x, float):
        return True
    if isinstance(x, (list, tuple)):
        return all(isinstance(i, float) for i in x)
    if isinstance(x, np.ndarray):
        return x.dtype == np.float64 or x.dtype == np.float32
    return False

def eval_exact_match(out, exp, atol=0, use_set=False):
    try:
        if isinstance(out, str) and "error" in out:
            raise TypeError("error output")
        if atol == 0 and is_floats(exp):
            atol = 1e-6
        if use_set:
            out, exp = set(out), set(exp)
        if out != exp and atol != 0:
            return bool(np.allclose(out, exp, rtol=1e-07, atol=atol))
        return bool(out == exp)
    except Exception:
        return False

OUTPUT = [eval_exact_match(eval(a), eval(e), atol, use_set) for a, e, atol, use_set in INPUT]
`;

describe("utgen mode agrees with eval_exact_match run in Python", () => {
  let ex: Executor;
  beforeAll(async () => {
    ex = await createExecutor({ workers: 1 });
  });
  afterAll(async () => ex?.close());
  it("on every row of the quirk table", async () => {
    const rows = TABLE.filter(([a, e]) => !JSON.stringify([a, e]).includes("$repr"));
    const input = rows.map(([a, e, o]) => [formatPyValue(a), formatPyValue(e), o.atol ?? 0, !!o.useSet]);
    const r = await ex.runScript(EVAL_EXACT_MATCH, input, { timeoutS: 20 });
    expect(r.status, r.message).toBe("ok");
    const py = r.output as boolean[];
    rows.forEach(([a, e, o, , , what], i) => {
      expect(outputsMatch(a, e, { ...o, mode: "utgen" }), what).toBe(py[i]);
    });
  });
});
