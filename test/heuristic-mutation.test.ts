// AST mutation operators (stages/heuristic/ast_tools.py) run through the real sandboxed executor:
// every operator fires on code that has its site, every mutant is a minimal edit that parses, differs from
// gold after normalisation and keeps the rest of the text (comments included); the order is seeded.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createExecutor } from "../pipeline/executor/index.ts";
import type { Executor } from "../pipeline/executor/types.ts";
import { normalizePrograms, runAstTool } from "../stages/common.ts";
import { MUTATION_OPERATORS, orderedMutants, type Mutant } from "../stages/heuristic/mutate.ts";

let executor: Executor;
beforeAll(async () => {
  executor = await createExecutor({});
});
afterAll(async () => {
  await executor?.close();
});

const GOLD = `import math

def helper(x):
    return x * 2  # doubled

def window_max(nums: list[int], k: int) -> int:
    """Largest sum of k consecutive numbers (0 when impossible)."""
    if k <= 0 or k > len(nums):
        return 0
    best = sum(nums[:k])
    cur = best
    for i in range(k, len(nums)):
        cur += nums[i] - nums[i - k]
        if cur > best:
            best = cur
        else:
            cur = cur
    ok = any([best > 0, True]) and "a-b".replace("-", " ") != ""
    return max(best, helper(0)) if ok else min(best, 0)

def unused(y):
    return y - 1
`;

describe("AST mutants", () => {
  it("covers every operator with minimal, parseable, distinct edits", async () => {
    const res = await runAstTool<{ mutants: Mutant[] }>(executor, { op: "mutants", code: GOLD, entry_point: "window_max" });
    const ops = new Set(res.mutants.map((m) => m.operator));
    for (const op of MUTATION_OPERATORS) expect(ops.has(op), `operator ${op} fired`).toBe(true);

    const norms = await normalizePrograms(executor, [GOLD, ...res.mutants.map((m) => m.code)]);
    const goldNorm = norms[0];
    expect(goldNorm).toBeDefined();
    expect(new Set(norms.slice(1)).size).toBe(res.mutants.length); // pairwise distinct
    const goldLines = GOLD.split("\n");
    for (const [i, m] of res.mutants.entries()) {
      expect(norms[i + 1], `mutant ${i} parses`).toBeDefined();
      expect(norms[i + 1]).not.toBe(goldNorm);
      // a minimal edit: the docstring and the comment survive, and at most the edited statement changed
      expect(m.code).toContain('"""Largest sum of k consecutive numbers (0 when impossible)."""');
      if (m.line !== 4) expect(m.code).toContain("return x * 2  # doubled");
      const lines = m.code.split("\n");
      const changed = goldLines.filter((l, j) => lines[j] !== l).length;
      expect(changed, `${m.operator}: ${m.description}`).toBeGreaterThan(0);
      expect(m.description.length).toBeGreaterThan(10);
    }
  });

  it("mutates only code reachable from the entry point", async () => {
    const res = await runAstTool<{ mutants: Mutant[] }>(executor, { op: "mutants", code: GOLD, entry_point: "window_max" });
    // `unused` is never called from window_max: its body stays as is; `helper` is reachable
    for (const m of res.mutants) expect(m.code).toContain("def unused(y):\n    return y - 1\n");
    expect(res.mutants.some((m) => m.line === 4 && !m.code.includes("return x * 2  # doubled"))).toBe(true);
    // each mutant names the function it is in
    for (const m of res.mutants) expect(m.function).toBe(m.line <= 4 ? "helper" : "window_max");
  });

  it("orders mutants round-robin over operators, reproducibly per seed and id", async () => {
    const rec = { id: "p1", code: GOLD, entry_point: "window_max" };
    const a = await orderedMutants(executor, rec, MUTATION_OPERATORS, 0);
    const b = await orderedMutants(executor, rec, MUTATION_OPERATORS, 0);
    const c = await orderedMutants(executor, rec, MUTATION_OPERATORS, 1);
    expect(a.map((m) => m.code)).toEqual(b.map((m) => m.code));
    expect(a.map((m) => m.code)).not.toEqual(c.map((m) => m.code));
    // the first |operators| mutants use |operators| different operators
    expect(new Set(a.slice(0, MUTATION_OPERATORS.length).map((m) => m.operator)).size).toBe(MUTATION_OPERATORS.length);
    const only = await orderedMutants(executor, rec, ["comparison_swap"], 0);
    expect(only.length).toBeGreaterThan(0);
    expect(only.every((m) => m.operator === "comparison_swap")).toBe(true);
  });

  it("reports unparsable code and normalises away docstrings and formatting only", async () => {
    await expect(runAstTool(executor, { op: "mutants", code: "def f(:\n", entry_point: "f" })).rejects.toThrow(/SyntaxError/);
    const [a, b, c, d] = await normalizePrograms(executor, [
      'def f(x):\n    "doc"\n    return (x+1)  # c\n',
      "def f(x):\n    return x + 1\n",
      "def f(x):\n    return x + 2\n",
      "def f(x) return",
    ]);
    expect(a).toBe(b);
    expect(c).not.toBe(a);
    expect(d).toBeUndefined();
  });

  it("`versions` does perturb's per-item work in one call, equal to the separate ops", async () => {
    const gold = "def f(x):\n    # add one\n    return x + 1\n";
    const codes = ["def f(x):\n    # add one\n    return x + 2  # off by one\n", "def f(x):\n    return x - 1\n", "def f(x) return"];
    const v = await runAstTool<any>(executor, { op: "versions", gold, codes, strip_comments: true, mutants: { entry_point: "f", max_per_operator: 40 } });
    const strip = await runAstTool<any>(executor, { op: "strip_comments", gold, codes });
    const stripped = codes.map((c, i) => (strip.results[i].ok && strip.results[i].removed ? strip.results[i].code : c));
    expect(v.results.map((r: any) => r.code)).toEqual(stripped);
    expect(v.results[0]).toMatchObject({ removed: 1, code: "def f(x):\n    # add one\n    return x + 2\n" });
    expect(v.results.map((r: any) => r.normalized)).toEqual(await normalizePrograms(executor, stripped));
    expect(v.gold).toEqual({ ok: true, normalized: (await normalizePrograms(executor, [gold]))[0] });
    const m = await runAstTool<any>(executor, { op: "mutants", code: gold, entry_point: "f", max_per_operator: 40 });
    expect(v.mutants).toEqual(m.mutants);
    const kept = await runAstTool<any>(executor, { op: "versions", gold, codes, strip_comments: false });
    expect(kept.results.map((r: any) => r.code)).toEqual(codes);
    expect(kept.mutants).toBeUndefined();
    const bad = await runAstTool<any>(executor, { op: "versions", gold: "def f(:\n", codes });
    expect(bad.gold.ok).toBe(false);
    expect(bad.results).toBeUndefined();
  });
});
