/**
 * Bench: the heuristic attack sampler on real buggy programs (MBPP+Fix (Hard) dev: gold + an LLM's buggy
 * solution per problem, ../shared/data; falls back to AST mutants of a few built-in functions).
 *   1. Attack rate (buggy programs with ≥1 failing input) of the type-aware fuzzer (example seeds +
 *      annotations + probing) vs a naive baseline (random values of probed types, no seeds), same budget.
 *   2. Throughput of the stage's batched execution (one gold batch + one buggy batch per program) vs one
 *      executor call per input, same inputs.
 *   3. Heuristic perturb: share of non-equivalent mutants (the fuzzer finds a failing input) when taking
 *      the seeded round-robin over operators vs the first mutants in source order.
 * Usage: npx tsx bench/generation.ts [--quick]
 */
import { existsSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { buggyTimeoutFor, createExecutor, outputsMatch, parseCallLiteral, type CallArgs, type Executor } from "../pipeline/executor/index.ts";
import { Rng, runAstTool } from "../stages/common.ts";
import { entryParams, exampleCallTexts, fuzzInputs, planFuzz } from "../stages/heuristic/fuzz.ts";
import { orderedMutants, MUTATION_OPERATORS, type Mutant } from "../stages/heuristic/mutate.ts";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const QUICK = process.argv.includes("--quick");
const BUDGET = 40; // attempts (5) × inputs_per_attempt (8)

interface Item {
  id: string;
  prompt: string;
  code: string;
  buggy: string;
  entry: string;
}

const BUILTIN = [
  { id: "sum_sq", entry: "sum_of_squares", prompt: "Return the sum of squares 1..n.\nassert sum_of_squares(3) == 14", code: "def sum_of_squares(n: int) -> int:\n    total = 0\n    for i in range(1, n + 1):\n        total += i * i\n    return total\n" },
  { id: "vowels", entry: "count_vowels", prompt: 'Count vowels.\nassert count_vowels("Hello World") == 3', code: 'def count_vowels(s: str) -> int:\n    count = 0\n    for ch in s.lower():\n        if ch in "aeiou":\n            count += 1\n    return count\n' },
  { id: "second", entry: "second_largest", prompt: "Second largest distinct value or None.\nassert second_largest([3, 1, 2]) == 2", code: "def second_largest(xs):\n    u = sorted(set(xs))\n    if len(u) < 2:\n        return None\n    return u[-2]\n" },
];

async function loadItems(executor: Executor): Promise<{ items: Item[]; what: string }> {
  const file = path.resolve(HERE, "../../shared/data/mbppplus_fix_hard.dev.jsonl");
  if (existsSync(file)) {
    const rows = readFileSync(file, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
    const items = rows.map((r) => ({
      id: String(r.task_id),
      prompt: `${r.prompt}\n${(r.test_list ?? [])[0] ?? ""}`,
      code: r.canonical_solution,
      buggy: r.code,
      entry: r.entry_point,
    }));
    return { items: QUICK ? items.slice(0, 15) : items, what: `MBPP+Fix (Hard) dev, ${QUICK ? 15 : items.length} real buggy programs` };
  }
  console.warn("bench: ../shared/data/mbppplus_fix_hard.dev.jsonl not found; using AST mutants of built-in functions");
  const items: Item[] = [];
  for (const b of BUILTIN) {
    const ms = await orderedMutants(executor, { id: b.id, code: b.code, entry_point: b.entry }, MUTATION_OPERATORS, 0);
    for (const m of ms.slice(0, QUICK ? 3 : 8)) items.push({ id: `${b.id}/${m.operator}`, prompt: b.prompt, code: b.code, buggy: m.code, entry: b.entry });
  }
  return { items, what: `${items.length} AST mutants of ${BUILTIN.length} built-in functions` };
}

async function inputsFor(executor: Executor, it: Item, naive: boolean): Promise<CallArgs[]> {
  const rng = new Rng(0, "attack", it.id);
  const params = await entryParams(executor, it.code, it.entry, 5);
  if (!params) return [];
  const seeds: CallArgs[] = [];
  if (!naive)
    for (const t of exampleCallTexts(it.prompt, it.entry)) {
      const r = parseCallLiteral(t, it.entry);
      if (r.ok) seeds.push(r.args);
    }
  const usedParams = naive ? params.map((p) => ({ ...p, annotation: undefined })) : params;
  const probe = async (calls: CallArgs[]) => (await executor.runCalls({ program: it.code, entryPoint: it.entry, inputs: calls, timeoutS: 1 })).map((r) => r.status === "ok");
  const plan = await planFuzz({ params: usedParams, seeds, rng, probe });
  return fuzzInputs(plan, rng, BUDGET);
}

async function attack(executor: Executor, it: Item, inputs: CallArgs[], batched: boolean): Promise<{ failing: number; valid: number }> {
  if (!inputs.length) return { failing: 0, valid: 0 };
  const run = async (program: string, xs: CallArgs[], timeoutS: number) => {
    if (batched) return executor.runCalls({ program, entryPoint: it.entry, inputs: xs, timeoutS });
    const out = [];
    for (const x of xs) out.push((await executor.runCalls({ program, entryPoint: it.entry, inputs: [x], timeoutS }))[0]);
    return out;
  };
  const gold = await run(it.code, inputs, 1);
  const valid = inputs.map((x, i) => ({ x, g: gold[i] })).filter((v) => v.g.status === "ok");
  if (!valid.length) return { failing: 0, valid: 0 };
  const t = buggyTimeoutFor(Math.max(...valid.map((v) => v.g.ms)));
  const buggy = await run(it.buggy, valid.map((v) => v.x), t);
  let failing = 0;
  valid.forEach((v, i) => {
    const b = buggy[i];
    if (b.status !== "ok" || !outputsMatch(b.value!, v.g.value!)) failing++;
  });
  return { failing, valid: valid.length };
}

const executor = await createExecutor({});
try {
  const { items, what } = await loadItems(executor);
  const rows: string[] = [];
  // 1. attack rate
  const rate: Record<string, { hit: number; valid: number; tried: number }> = {};
  for (const mode of ["naive", "typed"] as const) {
    const r = (rate[mode] = { hit: 0, valid: 0, tried: 0 });
    for (const it of items) {
      const inputs = await inputsFor(executor, it, mode === "naive");
      const a = await attack(executor, it, inputs, true);
      r.tried += inputs.length;
      r.valid += a.valid;
      if (a.failing > 0) r.hit++;
    }
  }
  const pct = (x: number, n: number) => `${((100 * x) / Math.max(1, n)).toFixed(1)}%`;
  rows.push(`### Heuristic attack sampler: ${what}, ${BUDGET} inputs per program`, "");
  rows.push("| sampler | programs attacked | valid inputs | ratio (attacked) |", "|---|---:|---:|---:|");
  rows.push(`| naive: probed types, no seeds (baseline) | ${rate.naive.hit}/${items.length} (${pct(rate.naive.hit, items.length)}) | ${pct(rate.naive.valid, rate.naive.tried)} | 1.00 |`);
  rows.push(
    `| type-aware: examples + annotations + probing | ${rate.typed.hit}/${items.length} (${pct(rate.typed.hit, items.length)}) | ${pct(rate.typed.valid, rate.typed.tried)} | ${(rate.typed.hit / Math.max(1, rate.naive.hit)).toFixed(2)} |`,
  );

  // 2. batched vs per-input execution (same inputs)
  const subset = items.slice(0, QUICK ? 4 : 20);
  const prepared: { it: Item; inputs: CallArgs[] }[] = [];
  for (const it of subset) prepared.push({ it, inputs: await inputsFor(executor, it, false) });
  const time = async (batched: boolean) => {
    const t0 = performance.now();
    let calls = 0;
    for (const p of prepared) {
      const a = await attack(executor, p.it, p.inputs, batched);
      calls += p.inputs.length + a.valid;
    }
    return { s: (performance.now() - t0) / 1000, calls };
  };
  await time(true); // warm-up
  const single = await time(false);
  const batch = await time(true);
  rows.push("", `### Attack execution: ${subset.length} programs, gold + buggy calls`, "");
  rows.push("| execution | calls | seconds | calls/s | ratio |", "|---|---:|---:|---:|---:|");
  rows.push(`| one executor call per input (baseline) | ${single.calls} | ${single.s.toFixed(2)} | ${(single.calls / single.s).toFixed(0)} | 1.00 |`);
  rows.push(`| batched per program (stage) | ${batch.calls} | ${batch.s.toFixed(2)} | ${(batch.calls / batch.s).toFixed(0)} | ${(single.s / batch.s).toFixed(2)}× faster |`);
  // 3. mutant choice: seeded round-robin over operators (perturb) vs the first mutants in source order
  const golds = [...new Map(items.map((it) => [it.code, it])).values()].slice(0, QUICK ? 5 : 25);
  const choice: Record<string, { bugs: number; attacked: number; ops: Set<string> }> = {};
  for (const mode of ["source order", "round-robin"] as const) {
    const c = (choice[mode] = { bugs: 0, attacked: 0, ops: new Set() });
    for (const g of golds) {
      const rec = { id: g.id, code: g.code, entry_point: g.entry };
      const ms =
        mode === "round-robin"
          ? await orderedMutants(executor, rec, MUTATION_OPERATORS, 0)
          : (await runAstTool<{ mutants: Mutant[] }>(executor, { op: "mutants", code: g.code, entry_point: g.entry })).mutants;
      for (const m of ms.slice(0, 2)) {
        const it = { ...g, id: `${g.id}/${m.operator}/${m.line}`, buggy: m.code };
        const a = await attack(executor, it, await inputsFor(executor, it, false), true);
        c.bugs++;
        c.ops.add(m.operator);
        if (a.failing > 0) c.attacked++;
      }
    }
  }
  const so = choice["source order"];
  const rr = choice["round-robin"];
  rows.push("", `### Heuristic perturb: 2 mutants per gold program (${golds.length} programs), attacked by the fuzzer`, "");
  rows.push("| mutant choice | bugs | attacked (not equivalent) | operators used | ratio (attacked) |", "|---|---:|---:|---:|---:|");
  rows.push(`| first mutants in source order (baseline) | ${so.bugs} | ${so.attacked} (${pct(so.attacked, so.bugs)}) | ${so.ops.size} | 1.00 |`);
  rows.push(`| seeded round-robin over operators (stage) | ${rr.bugs} | ${rr.attacked} (${pct(rr.attacked, rr.bugs)}) | ${rr.ops.size} | ${(rr.attacked / Math.max(1, rr.bugs) / (so.attacked / Math.max(1, so.bugs))).toFixed(2)} |`);
  console.log(rows.join("\n"));
} finally {
  await executor.close();
}
