// Type-aware fuzzing helpers: annotation parsing, example-call extraction, value generation and
// determinism of the seeded PRNG (pure TypeScript; the sandboxed parts are covered in attack tests).
import { describe, expect, it } from "vitest";
import { Rng } from "../stages/common.ts";
import { exampleCallTexts, fuzzInputs, parseAnnotation, planFuzz, typeOfValue, ValueGen, type TypeSpec } from "../stages/heuristic/fuzz.ts";
import type { CallArgs, PyValue } from "../pipeline/executor/types.ts";

/** Does a PyValue conform to a TypeSpec? (checks the generator's output, independent of it) */
function conforms(v: PyValue, t: TypeSpec): boolean {
  switch (t.k) {
    case "int":
      return typeof v === "number" && Number.isInteger(v);
    case "float":
      return !!v && typeof v === "object" && "$float" in v && /^-?\d+(\.\d+)?$/.test(v.$float) && v.$float.includes(".");
    case "bool":
      return typeof v === "boolean";
    case "str":
      return typeof v === "string";
    case "none":
      return v === null;
    case "list":
      return Array.isArray(v) && v.every((x) => conforms(x, t.of));
    case "set":
      return !!v && typeof v === "object" && "$set" in v && v.$set.every((x) => conforms(x, t.of)) && new Set(v.$set.map((x) => JSON.stringify(x))).size === v.$set.length;
    case "tuple":
      if (!v || typeof v !== "object" || !("$tuple" in v)) return false;
      return t.items ? v.$tuple.length === t.items.length && v.$tuple.every((x, i) => conforms(x, t.items![i])) : v.$tuple.every((x) => conforms(x, t.of!));
    case "dict":
      return !!v && typeof v === "object" && "$dict" in v && v.$dict.every(([a, b]) => conforms(a, t.key) && conforms(b, t.val));
    case "union":
      return t.opts.some((o) => conforms(v, o));
    default:
      return true;
  }
}

describe("parseAnnotation", () => {
  it("reads builtin, typing and PEP 604 forms", () => {
    expect(parseAnnotation("int")).toEqual({ k: "int" });
    expect(parseAnnotation("list[int]")).toEqual({ k: "list", of: { k: "int" } });
    expect(parseAnnotation("List[List[str]]")).toEqual({ k: "list", of: { k: "list", of: { k: "str" } } });
    expect(parseAnnotation("Dict[str, float]")).toEqual({ k: "dict", key: { k: "str" }, val: { k: "float" } });
    expect(parseAnnotation("Optional[int]")).toEqual({ k: "int" });
    expect(parseAnnotation("int | None")).toEqual({ k: "int" });
    expect(parseAnnotation("Tuple[int, str]")).toEqual({ k: "tuple", items: [{ k: "int" }, { k: "str" }] });
    expect(parseAnnotation("tuple[int, ...]")).toEqual({ k: "tuple", of: { k: "int" } });
    expect(parseAnnotation("Union[int, str]")).toEqual({ k: "union", opts: [{ k: "int" }, { k: "str" }] });
    expect(parseAnnotation("typing.Sequence[int]")).toEqual({ k: "list", of: { k: "int" } });
    expect(parseAnnotation("'MyClass'")).toEqual({ k: "any" });
    expect(parseAnnotation(undefined)).toEqual({ k: "any" });
    expect(parseAnnotation("Callable[[int], int]")).toEqual({ k: "any" });
  });

  it("types concrete values", () => {
    expect(typeOfValue([1, 2])).toEqual({ k: "list", of: { k: "int" } });
    expect(typeOfValue({ $tuple: [1, "a"] })).toEqual({ k: "tuple", items: [{ k: "int" }, { k: "str" }] });
    expect(typeOfValue({ $float: "1.5" })).toEqual({ k: "float" });
    expect(typeOfValue({ $dict: [["a", 1]] })).toEqual({ k: "dict", key: { k: "str" }, val: { k: "int" } });
  });
});

describe("exampleCallTexts", () => {
  it("finds asserted and printed calls but not the def line", () => {
    const d = [
      "Write `def add(a: int, b: int) -> int`.",
      "```python",
      "def add(a, b):",
      "    ...",
      "assert add(1, 2) == 3",
      'print(add(10, add(1, 1)))',
      "```",
      "Note: readd(5, 6) is another function; str.add(1) too.",
    ].join("\n");
    expect(exampleCallTexts(d, "add")).toEqual(["add(1, 2)", "add(10, add(1, 1))", "add(1, 1)"]);
  });

  it("handles strings with parentheses and Input: lines", () => {
    const d = 'Example: f("a)b", [1, (2, 3)]) returns 2.\nInput: nums = [2, 7, 11], target = 9\nInput: "xyz"';
    expect(exampleCallTexts(d, "f")).toEqual(['f("a)b", [1, (2, 3)])', "f([2, 7, 11], 9)", 'f("xyz")']);
  });
});

describe("value generation", () => {
  const types: TypeSpec[] = [
    { k: "int" },
    { k: "float" },
    { k: "str" },
    { k: "bool" },
    { k: "list", of: { k: "int" } },
    { k: "set", of: { k: "str" } },
    { k: "tuple", items: [{ k: "int" }, { k: "str" }] },
    { k: "dict", key: { k: "str" }, val: { k: "list", of: { k: "float" } } },
    { k: "union", opts: [{ k: "int" }, { k: "str" }] },
  ];

  it("generates values of the requested type, edge values and same-type mutations", () => {
    const gen = new ValueGen(new Rng("t", 1), ["hello", 42]);
    for (const t of types) {
      for (let i = 0; i < 40; i++) {
        const v = gen.value(t);
        expect(conforms(v, t), `${JSON.stringify(v)} is a ${JSON.stringify(t)}`).toBe(true);
        expect(conforms(gen.edge(t), t)).toBe(true);
        const m = gen.mutate(v);
        expect(conforms(m, t), `mutation ${JSON.stringify(m)} of ${JSON.stringify(v)} keeps ${t.k}`).toBe(true);
      }
    }
  });

  it("is deterministic per key and differs across keys", () => {
    const plan = { params: [], typings: [[{ k: "list", of: { k: "int" } }, { k: "int" }] as TypeSpec[]], seeds: [{ args: [[1, 2, 3], 2] }] as CallArgs[], typedBy: "annotation" as const };
    const a = fuzzInputs(plan, new Rng(0, "attack", "p1/bug1"), 30);
    const b = fuzzInputs(plan, new Rng(0, "attack", "p1/bug1"), 30);
    const c = fuzzInputs(plan, new Rng(0, "attack", "p2/bug1"), 30);
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    expect(a).toHaveLength(30);
    expect(a[0]).toEqual({ args: [[1, 2, 3], 2] }); // seeds first
    expect(new Set(a.map((x) => JSON.stringify(x))).size).toBe(30); // distinct
    for (const x of a) {
      expect(x.args).toHaveLength(2);
      expect(conforms(x.args[0], { k: "list", of: { k: "int" } })).toBe(true);
      expect(conforms(x.args[1], { k: "int" })).toBe(true);
    }
  });
});

describe("planFuzz", () => {
  it("uses annotations, then example values, and probes only unknown parameters", async () => {
    let probed = 0;
    const probe = async (calls: CallArgs[]) => {
      probed += calls.length;
      return calls.map(() => true);
    };
    const annotated = await planFuzz({
      params: [{ name: "xs", annotation: "list[int]", kind: "positional" }, { name: "k", annotation: "int", kind: "positional" }, { name: "flag", default: "False", kind: "positional" }],
      seeds: [],
      rng: new Rng(1),
      probe,
    });
    expect(annotated.typedBy).toBe("annotation");
    expect(annotated.params.map((p) => p.name)).toEqual(["xs", "k"]); // defaulted parameter left out
    expect(probed).toBe(0);
    const fromExample = await planFuzz({ params: [{ name: "s", kind: "positional" }], seeds: [{ args: ["abc"] }], rng: new Rng(1), probe });
    expect(fromExample.typings).toEqual([[{ k: "str" }]]);
    expect(probed).toBe(0);
  });

  it("passes required keyword-only parameters as kwargs", async () => {
    const probe = async (calls: CallArgs[]) => calls.map(() => true);
    const plan = await planFuzz({
      params: [{ name: "xs", annotation: "list[int]", kind: "positional" }, { name: "key", annotation: "str", kind: "keyword_only" }, { name: "rev", default: "False", kind: "keyword_only" }],
      seeds: [{ args: [[1, 2]], kwargs: { key: "a" } }],
      rng: new Rng(3),
      probe,
    });
    expect(plan.kwNames).toEqual(["key"]);
    const calls = fuzzInputs(plan, new Rng(4), 20);
    expect(calls[0]).toEqual({ args: [[1, 2]], kwargs: { key: "a" } });
    for (const c of calls) {
      expect(c.args).toHaveLength(1);
      expect(conforms(c.args[0], { k: "list", of: { k: "int" } })).toBe(true);
      expect(Object.keys(c.kwargs ?? {})).toEqual(["key"]);
      expect(typeof c.kwargs!.key).toBe("string");
    }
  });

  it("keeps the type assignments the probe accepted", async () => {
    // the probe accepts exactly calls whose only argument is a string (what gold `s.upper()` would do)
    const probe = async (calls: CallArgs[]) => calls.map((c) => typeof c.args[0] === "string");
    const plan = await planFuzz({ params: [{ name: "s", kind: "positional" }], seeds: [], rng: new Rng(2), probe });
    expect(plan.typedBy).toBe("probe");
    expect(plan.typings).toEqual([[{ k: "str" }]]);
  });
});

describe("Rng", () => {
  it("is reproducible and roughly uniform", () => {
    const a = new Rng("x", 1);
    const b = new Rng("x", 1);
    const xs = Array.from({ length: 2000 }, () => a.next());
    expect(xs).toEqual(Array.from({ length: 2000 }, () => b.next()));
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    expect(mean).toBeGreaterThan(0.45);
    expect(mean).toBeLessThan(0.55);
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
  });
});
