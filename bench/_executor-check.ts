/**
 * Diagnostic (not part of `npm run bench`: it has no baseline): checks/s of `checkProgram` — the filter's kind:
 * the AST's functions and signatures, then the load — on 400 distinct programs, with 1, 16 and all calls in
 * flight, beside the same texts run on one input through `runPrograms`. `npx tsx bench/_executor-check.ts
 * [--no-static]` (its programs only define a function: by default the server decides each check without a child,
 * executor.static_check; --no-static forks a child for each, as before 2026-12-04's eighth pass)
 */
import { createExecutor } from "../pipeline/executor/index.ts";

const n = 400;
const prog = (i: number) => `def f${i}(n: int) -> int:\n    total = 0\n    for i in range(1, n + 1):\n        total += i + ${i}\n    return total\n`;
const ex = await createExecutor({ static_check: !process.argv.includes("--no-static") });
try {
  await ex.checkProgram(prog(0), { timeoutS: 2 });
  for (const [round, inFlight] of [1, 16, n].entries()) {
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        while (next < n) await ex.checkProgram(prog(1 + next++ + round * n), { timeoutS: 2 });
      }),
    );
    console.log(`checkProgram, ${inFlight} in flight: ${(n / ((performance.now() - t0) / 1000)).toFixed(0)} checks/s`);
  }
  const t0 = performance.now();
  const base = 10 * n;
  await ex.runPrograms(Array.from({ length: n }, (_, i) => ({ program: prog(base + i), entryPoint: `f${base + i}`, inputs: [{ args: [3] }], timeoutS: 2 })));
  console.log(`the same texts through runPrograms (one call, 1 input each): ${(n / ((performance.now() - t0) / 1000)).toFixed(0)} programs/s`);
} finally {
  await ex.close();
}
