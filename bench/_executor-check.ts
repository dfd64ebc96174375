import { createExecutor } from "../pipeline/executor/index.ts";
const ex = await createExecutor({});
const prog = (i: number) => `def f${i}(n: int) -> int:\n    total = 0\n    for i in range(1, n + 1):\n        total += i + ${i}\n    return total\n`;
try {
  await ex.checkProgram(prog(0), { timeoutS: 2 });
  for (const conc of [1, 16, 855]) {
    const n = 400; let next = 0; const t0 = performance.now();
    await Promise.all(Array.from({ length: Math.min(conc, n) }, async () => { while (next < n) { const i = next++; await ex.checkProgram(prog(i + 1000 * conc), { timeoutS: 2 }); } }));
    console.log(`concurrency ${conc}: ${(n / ((performance.now() - t0) / 1000)).toFixed(0)} checks/s`);
  }
  const n = 400; const t0 = performance.now();
  await ex.runPrograms(Array.from({ length: n }, (_, i) => ({ program: prog(i + 5000), entryPoint: `f${i + 5000}`, inputs: [{ args: [3] }], timeoutS: 2 })));
  console.log(`runPrograms one call, 1 input: ${(n / ((performance.now() - t0) / 1000)).toFixed(0)}/s`);
} finally { await ex.close(); }
