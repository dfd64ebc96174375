import { createExecutor } from "../pipeline/executor/index.ts";
import { manyJob } from "./_many-programs.ts";
const ex = await createExecutor({});
await ex.runPrograms([manyJob(0)]);
const n = 300;
const rs = await ex.runPrograms(Array.from({ length: n }, (_, i) => manyJob(i)), { timing: true });
let a = 0, b = 0, c = 0;
for (const r of rs) { a += r.timing!.flt_fork; b += r.timing!.flt_setup; c += r.timing!.flt_load; }
const us = (x: number) => Math.floor(x / 100000) / n, fl = (x: number) => (x % 100000) / n;
console.log(`CPU µs: fork→harness ${us(a).toFixed(0)} (faults ${fl(a).toFixed(0)}), setup ${us(b).toFixed(0)} (${fl(b).toFixed(0)}), load ${us(c).toFixed(0)} (${fl(c).toFixed(0)})`);
const usage = { cpu_s: 0, max_rss_mb: 0, children: 0, stray: 0, user_s: 0, minflt: 0 };
await ex.runPrograms(Array.from({ length: n }, (_, i) => manyJob(i + n)), { usage });
console.log(`children total CPU ${(usage.cpu_s / n * 1e3).toFixed(2)} ms, user ${(usage.user_s! / n * 1e3).toFixed(2)} ms`);
await ex.close();
