/**
 * gold-check wall time on the MBPP+Fix (Hard) dev file (../shared/data/…; the project's mini fixture with
 * --quick or when it is absent): the executor's gold-check (calibrated limits; cold, then with the
 * canonical runs cached) against a straightforward Python multiprocessing harness with fixed 2 s limits
 * (reference_harness.py, same sandbox, one process per core), all in this run, with their pass rates.
 * `npx tsx bench/gold-check.ts [--quick]`.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { createExecutor } from "../pipeline/executor/index.ts";
import { goldCheck, loadGoldProblems, referenceGoldCheck } from "../stages/gold-check.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
const quick = process.argv.includes("--quick");
const dev = path.resolve(here, "../../shared/data/mbppplus_fix_hard.dev.jsonl");
const mini = path.resolve(here, "../data/mbppplus-mini.jsonl");
const file = !quick && existsSync(dev) ? dev : mini;
if (!quick && file === mini) console.warn(`note: ${dev} is absent; benchmarking the mini fixture instead`);

const problems = await loadGoldProblems(file);
const cacheDir = mkdtempSync(path.join(tmpdir(), "bench-gold-check-"));
const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
try {
  const ref = await referenceGoldCheck(problems, { timeoutS: 2 });
  const ex = await createExecutor({});
  let cold, warm;
  try {
    cold = await goldCheck(ex, problems, { cacheDir });
    warm = await goldCheck(ex, problems, { cacheDir });
  } finally {
    await ex.close();
  }
  console.log(`gold-check on ${path.basename(file)}: ${problems.length} problems, ${cold.mean_tests.toFixed(2)} tests per problem, ${availableParallelism()} cores\n`);
  console.log("| harness | wall (s) | canonical | code pass rate | code timeouts | speed-up |");
  console.log("|---|---:|---:|---:|---:|---:|");
  const refTimeouts = ref.per_problem.reduce((a, p) => a + [...p.code_verdicts].filter((v) => v === "t").length, 0);
  console.log(`| reference: multiprocessing, fixed 2 s limits | ${ref.wall_s.toFixed(1)} | ${pct(ref.canonical_pass_rate)} | ${pct(ref.code_pass_rate)} | ${refTimeouts} | 1.0× |`);
  console.log(`| executor gold-check, calibrated, cold | ${cold.wall_s.toFixed(1)} | ${pct(cold.canonical_pass_rate)} | ${pct(cold.code_pass_rate)} | ${cold.timeouts} | ${(ref.wall_s / cold.wall_s).toFixed(1)}× |`);
  console.log(`| executor gold-check, calibrated, canonical cached | ${warm.wall_s.toFixed(1)} | ${pct(warm.canonical_pass_rate)} | ${pct(warm.code_pass_rate)} | ${warm.timeouts} | ${(ref.wall_s / warm.wall_s).toFixed(1)}× |`);
  const diff = Math.abs(cold.code_pass_rate - ref.code_pass_rate) * 100;
  console.log(`\ncode pass rate difference (cold vs reference): ${diff.toFixed(2)} points (target ≤ 1); cold speed-up target ≥ 5×: ${ref.wall_s / cold.wall_s >= 5 ? "met" : "NOT met"}`);
} finally {
  rmSync(cacheDir, { recursive: true, force: true });
}
