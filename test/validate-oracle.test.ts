/**
 * Oracle checks on ../shared/data/mbppplus_fix_hard.dev.jsonl (a failure naming it when absent): responses built from
 * each problem's own gold tests (its `inputs` / `results`, read inside the sandbox — the `test` text is
 * dataset code and never runs in Node) must give 100 % output accuracy and an attack rate equal to the share
 * of those inputs on which the buggy code fails by a direct gold-check computation (the gold-check command
 * run on the same inputs); deliberately wrong outputs must give 0 % output accuracy.
 */
import { existsSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buggyTimeoutFor, createExecutor, executorConfigSchema } from "../pipeline/executor/index.ts";
import type { Executor } from "../pipeline/executor/types.ts";
import { goldCheck } from "../stages/gold-check.ts";
import { toProblem } from "../stages/validation/datasets.ts";
import { evaluateProblem, type TestRecord } from "../stages/validation/evaluate.ts";
import { utText } from "./fixtures/validate/script.ts";

const DEV = path.resolve(__dirname, "../../shared/data/mbppplus_fix_hard.dev.jsonl");
const HAVE = existsSync(DEV);

it("has the shared MBPP+Fix (Hard) dev set", () => {
  expect(HAVE, `${DEV} is absent: ../shared (papers and data) must sit beside the repository`).toBe(true);
});

const K = 3; // chosen inputs per problem: the K with the shortest literal text
const LOOP = "\nfor i, (inp, exp) in enumerate(zip(inputs, results)):";

/** Sandbox helper: run the test text's definitions (not its assertion loop) and return K inputs as literals. */
const PICK = `
src = INPUT["test"]
cut = src.rfind(INPUT["loop"])
g = {}
exec(src if cut < 0 else src[:cut], g)
inputs, results = g["inputs"], g["results"]
idx = sorted(sorted(range(len(inputs)), key=lambda i: len(repr(inputs[i])))[:INPUT["k"]])
OUTPUT = [{"i": i, "args": [repr(a) for a in inputs[i]], "expected": repr(results[i])} for i in idx]
`;

describe.skipIf(!HAVE)("oracle checks on MBPP+Fix (Hard) dev", () => {
  let executor: Executor;
  const rows: any[] = HAVE ? readFileSync(DEV, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l)) : [];
  const chosen = new Map<string, { i: number; args: string[]; expected: string }[]>();
  const deps = () => {
    const cfg = executorConfigSchema.parse({});
    return { executor, goldTimeoutS: cfg.gold_timeout_s, buggyTimeout: (ms: number) => buggyTimeoutFor(ms, cfg) };
  };

  beforeAll(async () => {
    executor = await createExecutor({});
    await Promise.all(
      rows.map(async (r) => {
        const res = await executor.runScript(PICK, { test: r.test, loop: LOOP, k: K }, { timeoutS: 20 });
        if (res.status !== "ok") throw new Error(`task ${r.task_id}: reading its gold tests failed: ${res.status} ${res.message}`);
        chosen.set(String(r.task_id), res.output as any);
      }),
    );
  }, 120_000);
  afterAll(async () => executor?.close());

  async function score(wrong: boolean): Promise<Map<string, TestRecord[]>> {
    const out = new Map<string, TestRecord[]>();
    await Promise.all(
      rows.map(async (r) => {
        const p = toProblem(r, DEV);
        const tests = chosen.get(p.taskId)!;
        const responses = tests.map((t, j) => ({
          run: 0,
          sample: j,
          text: utText(`${p.entryPoint}(${t.args.join(", ")})`, wrong ? "('__deliberately_wrong__', -987654321)" : t.expected),
        }));
        out.set(p.taskId, await evaluateProblem(deps(), p, responses));
      }),
    );
    return out;
  }

  it("gold-test responses: 100 % output accuracy; attack rate = buggy failure share by gold-check", async () => {
    const recs = await score(false);
    const all = [...recs.values()].flat();
    expect(all).toHaveLength(rows.length * K);
    const unparsed = all.filter((t) => t.parse !== "ok" || t.outputParse !== "ok");
    expect(unparsed, JSON.stringify(unparsed.slice(0, 3))).toEqual([]);
    expect(all.filter((t) => !t.goldValid)).toEqual([]);
    expect(all.filter((t) => !t.outputCorrect).map((t) => [t.input, t.predicted, t.gold?.value])).toEqual([]);

    // Direct computation: the gold-check command on the same inputs (the problem's own assertion, atol).
    const narrowed = rows.map((r) => {
      const idx = chosen.get(String(r.task_id))!.map((t) => t.i);
      const cut = r.test.lastIndexOf(LOOP);
      const pick = `\ninputs = [inputs[i] for i in ${JSON.stringify(idx)}]\nresults = [results[i] for i in ${JSON.stringify(idx)}]`;
      return { ...r, test: r.test.slice(0, cut) + pick + r.test.slice(cut) };
    });
    const gc = await goldCheck(executor, narrowed, {});
    expect(gc.canonical_pass_rate).toBe(1);
    const mismatches: string[] = [];
    let expectedFails = 0;
    for (const pp of gc.per_problem) {
      const fails = Math.round(pp.tests * (1 - pp.code_pass_rate));
      expectedFails += fails;
      const attacks = recs.get(String(pp.task_id))!.filter((t) => t.attack).length;
      if (attacks !== fails) mismatches.push(`${pp.task_id}: attack ${attacks} vs gold-check fails ${fails}`);
    }
    expect(mismatches).toEqual([]);
    // Meaningful only if the buggy code fails on some of the chosen inputs and passes on others.
    expect(expectedFails).toBeGreaterThan(0);
    expect(expectedFails).toBeLessThan(rows.length * K);
    const attackRate = all.filter((t) => t.attack).length / all.length;
    console.log(`oracle: ${rows.length} problems × ${K} inputs: attack rate ${(100 * attackRate).toFixed(2)}% (gold-check failures ${expectedFails})`);
    expect(attackRate).toBeCloseTo(expectedFails / (rows.length * K), 12);
    // Acc∩Attack equals attack here, since every output is right.
    expect(all.filter((t) => t.both).length).toBe(all.filter((t) => t.attack).length);
  }, 300_000);

  it("deliberately wrong outputs: 0 % output accuracy and 0 % Acc∩Attack, attack unchanged", async () => {
    const right = await score(false);
    const wrong = await score(true);
    const w = [...wrong.values()].flat();
    expect(w.every((t) => t.outputParse === "ok")).toBe(true);
    expect(w.filter((t) => t.outputCorrect)).toEqual([]);
    expect(w.filter((t) => t.both)).toEqual([]);
    expect(w.filter((t) => t.attack).length).toBe([...right.values()].flat().filter((t) => t.attack).length);
  }, 300_000);
});
