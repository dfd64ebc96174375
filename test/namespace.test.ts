/**
 * The program namespace is the UTGen reference's, nothing more (issue #14 §1). The reference runs every program
 * after its IMPORT_HELPER lines (archiki/UTGenDebug utils.py; listed below as the facts they are), in a fresh
 * dict. Through the executor API only:
 *  - in a fresh program every name of `builtins` is the builtin object (no wildcard import rebinds `pow`, …);
 *  - the names a program sees are exactly those the reference's lines define;
 *  - code that uses `random`, `bisect`, `statistics` or `operator` without importing them fails as in the
 *    reference (NameError), while the reference's modules and wildcard names work;
 *  - every canonical solution of every benchmark set the project can read passes 100 % of its gold tests with
 *    the shipped defaults: the MBPP+Fix (Hard) dev split in ../shared (fails with one line when absent) and
 *    data/mbppplus-mini.jsonl through gold-check, data/utdebug-demo.jsonl and test/fixtures/utdebug/mini.jsonl
 *    (MBPP+ and HumanEval+ rows) through UTDebug's pass@1 evaluator, and test/fixtures/validate/mini.jsonl (whose tests are bare
 *    `inputs` / `results` lists, not the MBPP+ loop gold-check reads) through runPrograms + judgeCall.
 */
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createExecutor, judgeCall, parseLiteral, type Executor, type PyValue } from "../pipeline/executor/index.ts";
import { goldCheck, loadGoldProblems } from "../stages/gold-check.ts";
import { sharedFile } from "./helpers/shared.ts";
import { GoldEvaluator, ProgramBatcher } from "../stages/debug/exec.ts";
import { goldTestsOf, readDebugProblems } from "../stages/debug/problems.ts";
import { utdebugConfigSchema } from "../stages/debug/config.ts";

/** The reference's IMPORT_HELPER["python"], in its order. */
const REFERENCE_IMPORTS = [
  "import math",
  "import re",
  "import sys",
  "import copy",
  "import datetime",
  "import itertools",
  "import collections",
  "import heapq",
  "import functools",
  "import hashlib",
  "import numpy",
  "import numpy as np",
  "import string",
  "from typing import *",
  "from collections import *",
  "from functools import *",
];

/** Module metadata every module namespace has; not program-visible builtins. */
const MODULE_DUNDERS = ["__name__", "__doc__", "__package__", "__loader__", "__spec__", "__builtins__", "__file__", "__cached__", "__annotations__"];

const PROBE = `
def shadowed_builtins():
    import builtins
    g = globals()
    skip = set(${JSON.stringify(MODULE_DUNDERS)})
    return sorted(n for n in dir(builtins) if n not in skip and n in g and g[n] is not getattr(builtins, n))

def visible_names():
    skip = set(${JSON.stringify(MODULE_DUNDERS)})
    return sorted(n for n in globals() if n not in skip and n not in ("shadowed_builtins", "visible_names", "builtin_calls"))

def builtin_calls():
    import builtins
    return [pow(3, 4, 5), round(2.5), sum([1, 2], 10), max([1, 3, 2]), min(4, 2), abs(-2), divmod(7, 2), open is builtins.open]
`;

let ex: Executor;
beforeAll(async () => {
  ex = await createExecutor({});
});
afterAll(async () => ex?.close());

async function call(program: string, entryPoint: string, args: PyValue[] = []) {
  const [res] = await ex.runPrograms([{ program, entryPoint, inputs: [{ args }], timeoutS: 5 }]);
  return res.results[0];
}

describe("the program namespace is the reference's", () => {
  it("every name of builtins is the builtin object in a fresh program", async () => {
    const r = await call(PROBE, "shadowed_builtins");
    expect(r.status, r.message).toBe("ok");
    expect(r.value).toEqual([]);
    const calls = await call(PROBE, "builtin_calls");
    expect(calls.status, calls.message).toBe("ok");
    // pow(b, e, m) is the builtin (math.pow takes two arguments and raises here)
    expect(calls.value).toEqual([1, 2, 13, 3, 2, 2, { $tuple: [3, 1] }, true]);
  });

  it("a program sees exactly the names the reference's IMPORT_HELPER lines define", async () => {
    const ref = await ex.runScript(
      `ns = {}\nexec(INPUT, ns)\nOUTPUT = sorted(k for k in ns if k not in ${JSON.stringify(MODULE_DUNDERS)})`,
      REFERENCE_IMPORTS.join("\n"),
      { timeoutS: 20 },
    );
    expect(ref.status, ref.message).toBe("ok");
    const ours = await call(PROBE, "visible_names");
    expect(ours.status, ours.message).toBe("ok");
    expect(ours.value).toEqual(ref.output);
    // the reference's modules and wildcard names are all there
    for (const n of ["math", "re", "np", "numpy", "heapq", "Counter", "defaultdict", "deque", "reduce", "lru_cache", "List", "Optional"])
      expect(ours.value as string[]).toContain(n);
  });

  it("modules the reference does not import fail without an import, as in the reference", async () => {
    const uses: Record<string, string> = {
      random: "random.randint(1, 1)",
      bisect: "bisect.bisect_left([1, 2, 3], 2)",
      statistics: "statistics.mean([1, 2])",
      operator: "operator.add(1, 2)",
    };
    for (const [mod, expr] of Object.entries(uses)) {
      const r = await call(`def f():\n    return ${expr}\n`, "f");
      expect(r.status, mod).toBe("error");
      expect(r.errorType, mod).toBe("NameError");
      const ok = await call(`import ${mod}\ndef f():\n    return ${expr}\n`, "f");
      expect(ok.status, `${mod} imported: ${ok.message}`).toBe("ok");
    }
  });
});

describe("every canonical solution passes 100 % of its gold tests with the shipped defaults", () => {
  it("the MBPP+Fix (Hard) dev split in ../shared, through gold-check", async () => {
    const problems = await loadGoldProblems(sharedFile("data/mbppplus_fix_hard.dev.jsonl"));
    const s = await goldCheck(ex, problems, {});
    const failing = s.per_problem.filter((p) => p.canonical_pass_rate !== 1).map((p) => `${p.task_id}: ${p.canonical_pass_rate} ${p.load_error ?? ""}`);
    expect(failing).toEqual([]);
    expect(s.canonical_pass_rate).toBe(1);
    expect(s.problems).toBe(60);
  }, 600_000);

  it("data/mbppplus-mini.jsonl, through gold-check", async () => {
    const problems = await loadGoldProblems(path.resolve(__dirname, "../data/mbppplus-mini.jsonl"));
    const s = await goldCheck(ex, problems, {});
    const failing = s.per_problem.filter((p) => p.canonical_pass_rate !== 1).map((p) => `${p.task_id}: ${p.canonical_pass_rate} ${p.load_error ?? ""}`);
    expect(failing).toEqual([]);
    expect(s.canonical_pass_rate).toBe(1);
    expect(s.problems).toBe(problems.length);
  });

  // The UTDebug sets (MBPP+ and HumanEval+ rows) through the evaluator UTDebug and best-of-N score pass@1 with.
  for (const rel of ["data/utdebug-demo.jsonl", "test/fixtures/utdebug/mini.jsonl"]) {
    it(`${rel}, through UTDebug's pass@1 evaluator (shipped defaults)`, async () => {
      const problems = await readDebugProblems(path.resolve(__dirname, "..", rel));
      expect(problems.length).toBeGreaterThan(0);
      const gold = new GoldEvaluator(new ProgramBatcher(ex), { limits: utdebugConfigSchema.parse({}).pass_limits, executor: {} });
      const failing: string[] = [];
      for (const p of problems) {
        const t = await goldTestsOf(ex, p);
        if ("error" in t) {
          failing.push(`${p.taskId}: ${t.error}`);
          continue;
        }
        const r = await gold.evaluate(p, t.tests, p.gold);
        if (!r.pass) failing.push(`${p.taskId}: ${r.passed}/${r.total} ${JSON.stringify(r.firstFail)}`);
      }
      expect(failing).toEqual([]);
    });
  }

  it("test/fixtures/validate/mini.jsonl: gold on its inputs / results, judged in Node", async () => {
    const rows = readFileSync(path.resolve(__dirname, "fixtures/validate/mini.jsonl"), "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    // The tests are plain literals: read them with the safe literal parser (nothing evaluated in Node).
    const lit = (test: string, name: string): PyValue[] => {
      const m = new RegExp(`^${name} = (.*)$`, "m").exec(test);
      const v = m ? parseLiteral(m[1]) : undefined;
      if (!v?.ok || !Array.isArray(v.value)) throw new Error(`${name} not a list literal in ${JSON.stringify(test)}`);
      return v.value;
    };
    const jobs = rows.map((r) => ({
      program: r.canonical_solution as string,
      entryPoint: r.entry_point as string,
      inputs: lit(r.test, "inputs").map((a) => ({ args: a as PyValue[] })),
      timeoutS: 2,
    }));
    const res = await ex.runPrograms(jobs);
    rows.forEach((r, i) => {
      const expected = lit(r.test, "results");
      res[i].results.forEach((c, k) =>
        expect(judgeCall(c, expected[k], { mode: "utgen", useSet: r.test.includes(" set(") }), `${r.task_id} test ${k}`).toBe("pass"),
      );
    });
  });
});
