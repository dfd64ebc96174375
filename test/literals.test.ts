import { describe, expect, it } from "vitest";
import { formatCall, formatPyValue, parseCallLiteral, parseLiteral, pyFloatRepr, type PyValue } from "../pipeline/executor/index.ts";

const ok = (text: string): PyValue => {
  const r = parseLiteral(text);
  if (!r.ok) throw new Error(`${text}: ${r.detail}`);
  return r.value;
};

describe("parseLiteral: accepted forms", () => {
  const cases: [string, PyValue][] = [
    ["1", 1],
    ["-1", -1],
    ["+7", 7],
    ["- 3", -3],
    ["0x1F", 31],
    ["0o17", 15],
    ["0b101", 5],
    ["1_000", 1000],
    ["123456789012345678901234567890", { $int: "123456789012345678901234567890" }],
    ["-9007199254740993", { $int: "-9007199254740993" }],
    ["1.5", { $float: "1.5" }],
    ["-0.0", { $float: "-0.0" }],
    ["3.", { $float: "3.0" }],
    [".5", { $float: "0.5" }],
    ["1e16", { $float: "1e+16" }],
    ["2.5e-7", { $float: "2.5e-07" }],
    ["inf", { $float: "inf" }],
    ["-inf", { $float: "-inf" }],
    ["nan", { $float: "nan" }],
    ["float('inf')", { $float: "inf" }],
    ['float("-inf")', { $float: "-inf" }],
    ["float('nan')", { $float: "nan" }],
    ["float('1.25')", { $float: "1.25" }],
    ["math.inf", { $float: "inf" }],
    ["None", null],
    ["True", true],
    ["False", false],
    ["'x'", "x"],
    ['"it\'s"', "it's"],
    ["'a\\n\\t\\x41\\u00e9\\U0001F600'", "a\n\tA\u00e9\u{1F600}"],
    ["r'\\d+'", "\\d+"],
    ["'a' 'b'", "ab"],
    ['"""two\nlines"""', "two\nlines"],
    ["b'\\x00ab'", { $bytes: Buffer.from([0, 97, 98]).toString("base64") }],
    ["[]", []],
    ["[1, [2, 3], 'x']", [1, [2, 3], "x"]],
    ["[1, 2,]", [1, 2]],
    ["()", { $tuple: [] }],
    ["(1)", 1],
    ["(1,)", { $tuple: [1] }],
    ["(1, (2, 3))", { $tuple: [1, { $tuple: [2, 3] }] }],
    ["1, 2", { $tuple: [1, 2] }],
    ["{}", { $dict: [] }],
    ["{'a': 1, 'b': [None]}", { $dict: [["a", 1], ["b", [null]]] }],
    ["{1: 'a', True: 'b', 1.0: 'c'}", { $dict: [[1, "c"]] }],
    ["{1, 2, 2}", { $set: [1, 2] }],
    ["{(1, 2), 'x'}", { $set: [{ $tuple: [1, 2] }, "x"] }],
    ["set()", { $set: [] }],
    ["set([3, 1])", { $set: [3, 1] }],
    ["frozenset({1})", { $frozenset: [1] }],
    ["tuple([1, 2])", { $tuple: [1, 2] }],
    ["[1, # one\n 2]", [1, 2]],
    ["[1, \\\n 2]", [1, 2]],
  ];
  for (const [text, value] of cases) it(text, () => expect(ok(text)).toEqual(value));
});

describe("parseLiteral: rejected forms (never evaluated)", () => {
  const bad = [
    "",
    "__import__('os').system('id')",
    "open('/etc/passwd')",
    "x",
    "1 + 2",
    "2**80",
    "[1, 2",
    "{'a' 1}",
    "1j",
    "f'{x}'",
    "{[1]: 2}",
    "{[1], 2}",
    "lambda: 0",
    "[i for i in range(3)]",
    "'unterminated",
    "b'\\u1234' 'x'",
    "b'é'",
    "01",
    "float('abc')",
    "-'x'",
    "math.pi",
    "...",
    "1 2",
  ];
  for (const text of bad) {
    it(JSON.stringify(text), () => {
      const r = parseLiteral(text);
      expect(r.ok).toBe(false);
      if (!r.ok) {
        expect(r.reason).toBe("unparsable_literal");
        expect(r.detail.length).toBeGreaterThan(0);
      }
    });
  }
});

describe("parseCallLiteral", () => {
  it("positional, nested, negative, inf and keyword arguments", () => {
    expect(parseCallLiteral("f(1, [2, 3], 'x')", "f")).toEqual({ ok: true, fn: "f", args: { args: [1, [2, 3], "x"] } });
    expect(parseCallLiteral("  sort_matrix([[1, -2], [3, 4]], key=None, eps=float('inf'))  ")).toEqual({
      ok: true,
      fn: "sort_matrix",
      args: { args: [[[1, -2], [3, 4]]], kwargs: { key: null, eps: { $float: "inf" } } },
    });
    expect(parseCallLiteral("f()")).toEqual({ ok: true, fn: "f", args: { args: [] } });
    expect(parseCallLiteral("f((1,), {'a': {2}})")).toEqual({
      ok: true,
      fn: "f",
      args: { args: [{ $tuple: [1] }, { $dict: [["a", { $set: [2] }]] }] },
    });
  });
  it("rejects a different function, unpacking, non-literal arguments and trailing code", () => {
    for (const [text, fn] of [
      ["g(1)", "f"],
      ["f(*[1, 2])", undefined],
      ["f(**{'a': 1})", undefined],
      ["f(a=1, 2)", undefined],
      ["f(a=1, a=2)", undefined],
      ["f(x)", undefined],
      ["f(1); import os", undefined],
      ["f(1)(2)", undefined],
      ["f(os.system('id'))", undefined],
      ["f(1", undefined],
      ["1(2)", undefined],
    ] as [string, string | undefined][]) {
      const r = parseCallLiteral(text, fn);
      expect(r.ok, text).toBe(false);
      if (!r.ok) expect(r.reason).toBe("unparsable_literal");
    }
  });
});

describe("formatPyValue / formatCall", () => {
  it("writes Python literal text", () => {
    expect(formatPyValue({ $tuple: [1] })).toBe("(1,)");
    expect(formatPyValue({ $tuple: [] })).toBe("()");
    expect(formatPyValue({ $set: [] })).toBe("set()");
    expect(formatPyValue({ $frozenset: [1, 2] })).toBe("frozenset({1, 2})");
    expect(formatPyValue({ $dict: [["a", [1, { $float: "2.0" }]]] })).toBe("{'a': [1, 2.0]}");
    expect(formatPyValue("it's")).toBe(`"it's"`);
    expect(formatPyValue("a'b\"c\n")).toBe(`'a\\'b"c\\n'`);
    expect(formatPyValue({ $float: "inf" })).toBe("float('inf')");
    expect(formatPyValue({ $float: "nan" })).toBe("float('nan')");
    expect(formatPyValue({ $int: "123456789012345678901234567890" })).toBe("123456789012345678901234567890");
    expect(formatPyValue({ $bytes: Buffer.from("a'\x00").toString("base64") })).toBe(`b"a'\\x00"`);
    expect(formatPyValue(null)).toBe("None");
    expect(formatPyValue(true)).toBe("True");
    expect(formatPyValue(2.5)).toBe("2.5");
    expect(formatCall("f", { args: [1, "x"], kwargs: { k: [] } })).toBe("f(1, 'x', k=[])");
  });
  it("float repr follows Python's rules", () => {
    const cases: [number, string][] = [
      [0.1, "0.1"],
      [1 / 3, "0.3333333333333333"],
      [1e22, "1e+22"],
      [1e16, "1e+16"],
      [1e15, "1000000000000000.0"],
      [1e-7, "1e-07"],
      [0.0001, "0.0001"],
      [123456789.123, "123456789.123"],
      [5e-324, "5e-324"],
      [-2.5, "-2.5"],
    ];
    for (const [x, s] of cases) expect(pyFloatRepr(x)).toBe(s);
  });
  it("round trips: parse(format(v)) == v", () => {
    const values: PyValue[] = [
      [1, -2, { $int: "-123456789012345678901234567890" }],
      { $tuple: [{ $float: "1.5" }, { $float: "-inf" }, { $float: "nan" }, { $float: "1e-07" }] },
      { $dict: [[{ $tuple: [1, 2] }, { $set: ["a", "b"] }], [null, { $frozenset: [] }]] },
      ["quote ' and \" and \\ and \u00e9 and \u{1F600} and \x01"],
      { $bytes: Buffer.from([0, 255, 39, 34, 92, 10]).toString("base64") },
      [[], { $tuple: [] }, { $set: [] }, { $dict: [] }, true, false, null],
      { $tuple: [{ $tuple: [1] }] },
    ];
    for (const v of values) {
      const text = formatPyValue(v);
      expect(ok(text), text).toEqual(v);
    }
  });
});
