/**
 * Diagnostic (not part of `npm run bench`: it has no baseline): where the CPU of the many-programs shape goes,
 * per program, by process — the children (wait4, as the zygotes account them), each worker's zygote and
 * server, and this Node process — for the same 1,500 distinct programs × 3 tests as bench/executor.ts.
 * Linux only: reads /proc/<pid>/stat and /proc/<pid>/status (context switches) of every process before and
 * after each run.
 * `npx tsx bench/_executor-cpu.ts [--quick] [--full] [--check] [--phases] [--no-huge] [--no-huge-text] [--no-prefault]
 * [--no-precompile] [--static]` (--full: every program names numpy, so the full zygote runs it; --check: the filter's
 * kind, checkProgram with 16 in flight (CHECK_BATCH=1: one checkPrograms call), each in a child (--static: decided
 * in the server where it can be, executor.static_check, as by default); --phases: the children's page faults
 * by phase, from the timing breakdown; --no-*: the executor with `huge_pages`, `huge_text`, `prefault` or
 * `precompile` off, for A/B runs).
 */
import { readFileSync, readdirSync } from "node:fs";
import { availableParallelism } from "node:os";
import { createExecutor } from "../pipeline/executor/index.ts";
import { manyJob, manyOk } from "./_many-programs.ts";

const n = process.argv.includes("--quick") ? 300 : 1500;
const full = process.argv.includes("--full");
// --phases: ask for the timing breakdown too (the child then counts its page faults by phase: three more calls)
const phases = process.argv.includes("--phases");
// --check: the filter's kind instead (checkProgram, 16 in flight as the filter's default concurrency)
const checks = process.argv.includes("--check");
const checkText = (i: number) => `def f${i}(n: int) -> int:\n    total = 0\n    for i in range(1, n + 1):\n        total += i + ${i}\n    return total\n`;
const TICK = 100; // USER_HZ

type Proc = { cmd: string; cpu: number; ccpu: number; cminflt: number; minflt: number; vcs: number; ivcs: number };
function snapshot(): Map<number, Proc> {
  const m = new Map<number, Proc>();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const st = readFileSync(`/proc/${d}/stat`, "utf8");
      const f = st.slice(st.lastIndexOf(")") + 2).split(" "); // f[0] is field 3 (state)
      const cmd = readFileSync(`/proc/${d}/cmdline`, "utf8").split("\0")[0];
      const status = readFileSync(`/proc/${d}/status`, "utf8");
      const vcs = +(/voluntary_ctxt_switches:\s+(\d+)/.exec(status)?.[1] ?? 0);
      const ivcs = +(/nonvoluntary_ctxt_switches:\s+(\d+)/.exec(status)?.[1] ?? 0);
      m.set(+d, { cmd, cpu: (+f[11] + +f[12]) / TICK, ccpu: (+f[13] + +f[14]) / TICK, cminflt: +f[8], minflt: +f[7], vcs, ivcs });
    } catch {
      // gone meanwhile
    }
  }
  return m;
}

const ex = await createExecutor({
  huge_pages: !process.argv.includes("--no-huge"),
  huge_text: !process.argv.includes("--no-huge-text"),
  prefault: !process.argv.includes("--no-prefault"),
  precompile: !process.argv.includes("--no-precompile"),
  // --check measures the children of checks: its programs only define a function, which the server would
  // otherwise decide without a child (executor.static_check); --static measures that instead
  static_check: process.argv.includes("--static"),
});
try {
  await ex.runPrograms([manyJob(0)]);
  for (let rep = 0; rep < 2; rep++) {
    const usage = { cpu_s: 0, max_rss_mb: 0, children: 0, stray: 0, user_s: 0, minflt: 0 };
    const before = snapshot();
    const node0 = process.cpuUsage();
    const t0 = performance.now();
    let rs: Awaited<ReturnType<typeof ex.runPrograms>> = [];
    if (checks && process.env.CHECK_BATCH) {
      const cs = await ex.checkPrograms(Array.from({ length: n }, (_, i) => checkText(rep * n + i)), { timeoutS: 2 });
      if (cs.some((c) => c.status !== "ok")) throw new Error("check failed");
    } else if (checks) {
      let next = 0;
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          while (next < n) {
            const c = await ex.checkProgram(checkText(rep * n + next++), { timeoutS: 2 });
            if (c.status !== "ok") throw new Error(`check failed: ${JSON.stringify(c)}`);
          }
        }),
      );
    } else {
      rs = await ex.runPrograms(Array.from({ length: n }, (_, i) => manyJob(i, full)), { usage, timing: phases });
      rs.forEach((r, i) => {
        if (!manyOk(i, r.results)) throw new Error(`wrong results ${JSON.stringify(r.results)}`);
      });
    }
    const s = (performance.now() - t0) / 1000;
    const node = process.cpuUsage(node0);
    const after = snapshot();
    const rows: [string, number, number, number, number][] = [];
    for (const [pid, p] of after) {
      const q = before.get(pid);
      if (!q || pid === process.pid || p.cpu - q.cpu <= 0 || !p.cmd.includes("python")) continue;
      // A zygote forks, so it takes copy-on-write faults after every fork; a server takes almost none.
      const role = (p.minflt - q.minflt) / n > 5 ? "a zygote (forks the children)" : "a server (talks to Node, the zygote and the children)";
      rows.push([`python pid ${pid}: ${role}`, p.cpu - q.cpu, p.minflt - q.minflt, p.vcs - q.vcs, p.ivcs - q.ivcs]);
      // checkProgram takes no usage: its children's CPU is read from the zygotes' reaped-children counters
      if (checks && p.ccpu > q.ccpu) {
        usage.cpu_s += p.ccpu - q.ccpu;
        usage.minflt += p.cminflt - q.cminflt;
      }
    }
    rows.sort((a, b) => b[1] - a[1]);
    const ms = (x: number) => ((1000 * x) / n).toFixed(3);
    const total = usage.cpu_s + rows.reduce((a, r) => a + r[1], 0) + (node.user + node.system) / 1e6;
    console.log(`\nrun ${rep + 1}: ${n} programs in ${s.toFixed(2)} s = ${(n / s).toFixed(0)}/s; CPU per program, ms (faults):`);
    console.log(`  ${ms(usage.cpu_s)} (${(usage.minflt / n).toFixed(0)})  the children (wait4)`);
    // context switches per program: voluntary (it slept: a wake-up each) / involuntary (preempted)
    for (const [name, cpu, flt, v, iv] of rows) console.log(`  ${ms(cpu)} (${(flt / n).toFixed(0)})  ${name}; switches ${(v / n).toFixed(1)} / ${(iv / n).toFixed(1)}`);
    console.log(`  ${ms((node.user + node.system) / 1e6)}  Node (this process)`);
    if (phases) {
      const f = { flt_fork: 0, flt_setup: 0, flt_load: 0 };
      for (const r of rs) for (const k of Object.keys(f) as (keyof typeof f)[]) f[k] += r.timing?.[k] ?? 0;
      const rest = usage.minflt - f.flt_fork - f.flt_setup - f.flt_load;
      console.log(`  children's faults by phase: fork → harness ${(f.flt_fork / n).toFixed(1)}, set-up + request ${(f.flt_setup / n).toFixed(1)}, load ${(f.flt_load / n).toFixed(1)}, calls + results + exit ${(rest / n).toFixed(1)}`);
    }
    console.log(`  ${ms(total)}  in all: the CPU is ${((100 * total) / s / availableParallelism()).toFixed(0)} % busy on ${availableParallelism()} cores`);
  }
} finally {
  await ex.close();
}
