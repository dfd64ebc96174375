/**
 * Executor throughput on a trivial function: sandboxed pool, one call per request and batched, against
 * process-per-call baselines (`/usr/bin/python3 -c` per execution, as many in parallel as cores): the bare
 * program, and the program after the UTGen prelude (numpy …) that every execution in the pool sees, all in
 * this run. Then the many-programs shape (distinct programs, 3 tests each): one program per request versus
 * many programs per request, against the fork ceiling measured in the same run (a warm interpreter per worker —
 * the reference prelude, numpy loaded — running bare fork + exit + wait cycles, all at once; the same loop in
 * each worker's own zygote beside it), with the per-program cost broken down by phase.
 * `npx tsx bench/executor.ts [--quick]`.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { availableParallelism } from "node:os";
import { createExecutor } from "../pipeline/executor/index.ts";
import { preludeSource } from "../pipeline/executor/sandbox.ts";
import { manyJob, manyOk } from "./_many-programs.ts";

const quick = process.argv.includes("--quick");
const cores = availableParallelism();
const PROGRAM = "def add(a, b):\n    return a + b\n";

/** `/usr/bin/python3 …args` with an empty environment: its stdout, once it exited 0. */
function python(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn("/usr/bin/python3", args, { stdio: ["ignore", "pipe", "inherit"], env: {} });
    let out = "";
    p.stdout.on("data", (d) => (out += d));
    p.on("error", reject);
    // "close", not "exit": exit can come before the last stdout data has been read.
    p.on("close", (code) => (code === 0 ? resolve(out) : reject(new Error(`python3 ${args[0]} failed: ${code} ${out}`))));
  });
}

async function pythonOnce(i: number, prelude = ""): Promise<void> {
  const out = await python(["-c", `${prelude}\n${PROGRAM}print(repr(add(${i}, 1)))`]);
  if (out.trim() !== String(i + 1)) throw new Error(`python -c printed ${out}`);
}

/**
 * The fork ceiling, kept warm: one plain `/usr/bin/python3 -I` per worker with the reference prelude loaded,
 * each running the loop (os.fork + _exit + waitpid, after 20 unmeasured forks) whenever it reads a count
 * on stdin and printing its forks per second. Warm, so the ceiling can be measured between every two rounds
 * in a fraction of a second (this VM's speed drifts by a quarter within seconds).
 */
class WarmForkers {
  private readonly procs: ChildProcess[];
  private readonly lines: AsyncIterator<string>[];
  constructor(prelude: string, width: number) {
    const loop = `${prelude}\nimport os, sys, time\nfor line in sys.stdin:\n    n = int(line)\n    for k in range(n + 20):\n        if k == 20:\n            t0 = time.perf_counter()\n        pid = os.fork()\n        if pid == 0:\n            os._exit(0)\n        os.waitpid(pid, 0)\n    print(n / (time.perf_counter() - t0), flush=True)\n`;
    this.procs = Array.from({ length: width }, () => spawn("/usr/bin/python3", ["-I", "-c", loop], { stdio: ["pipe", "pipe", "inherit"], env: {} }));
    this.lines = this.procs.map((p) => createInterface({ input: p.stdout! })[Symbol.asyncIterator]());
  }
  /** All at once, n forks each: their forks per second, summed. */
  async measure(n: number): Promise<number> {
    for (const p of this.procs) p.stdin!.write(`${n}\n`);
    const rates = await Promise.all(this.lines.map(async (it) => Number((await it.next()).value)));
    if (!rates.every((r) => r > 0)) throw new Error(`fork loop printed ${rates}`);
    return rates.reduce((a, b) => a + b, 0);
  }
  close(): void {
    for (const p of this.procs) p.stdin!.end();
  }
}

async function timed(n: number, run: () => Promise<void>): Promise<{ n: number; s: number }> {
  const t0 = performance.now();
  await run();
  return { n, s: (performance.now() - t0) / 1000 };
}

async function parallel(n: number, width: number, job: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < n) await job(next++);
    }),
  );
}

const baselineN = quick ? 40 : 200;
const singleN = quick ? 300 : 2000;
const batches = quick ? 20 : 100;
const batchSize = 200;

const manyN = quick ? 300 : 1500;

const baseline = await timed(baselineN, () => parallel(baselineN, cores, (i) => pythonOnce(i)));
const prelude = preludeSource();
const withPrelude = await timed(baselineN / 2, () => parallel(baselineN / 2, cores, (i) => pythonOnce(i, prelude)));
const ex = await createExecutor({});
try {
  // Warm-up (worker start is not part of the per-call cost).
  await ex.runCalls({ program: PROGRAM, entryPoint: "add", inputs: [{ args: [1, 1] }], timeoutS: 1 });
  const single = await timed(singleN, async () => {
    await Promise.all(
      Array.from({ length: singleN }, async (_, i) => {
        const [r] = await ex.runCalls({ program: PROGRAM, entryPoint: "add", inputs: [{ args: [i, 1] }], timeoutS: 1 });
        if (r.value !== i + 1) throw new Error(`wrong result ${JSON.stringify(r)}`);
      }),
    );
  });
  const batched = await timed(batches * batchSize, async () => {
    await Promise.all(
      Array.from({ length: batches }, async (_, b) => {
        const inputs = Array.from({ length: batchSize }, (_, i) => ({ args: [b * batchSize + i, 1] }));
        const rs = await ex.runCalls({ program: PROGRAM, entryPoint: "add", inputs, timeoutS: 1 });
        rs.forEach((r, i) => {
          if (r.value !== b * batchSize + i + 1) throw new Error(`wrong result ${JSON.stringify(r)}`);
        });
      }),
    );
  });
  const rate = (x: { n: number; s: number }) => x.n / x.s;
  const base = rate(baseline);
  // The many-programs shape, in rounds: the fork ceiling is measured before the first round and after each, and
  // a round's ratio is its programs' rate over the mean of the ceilings measured just before and just after it
  // (this VM's speed drifts by a quarter within seconds, so a ceiling a minute away says little). The headline
  // is the median round; every round is printed. The ceiling is the loop as the issue defines it: a
  // warm interpreter with numpy and the prelude loaded, forking bare children in a Python loop — plain
  // `python3 -I` processes, one per worker, at once (WarmForkers). The same loop in each worker's own full
  // zygote is measured at the same points: the zygotes' images are built to fork cheaply (huge pages,
  // docs/executor.md "Fourth pass"), which a bare child gains in full and a program's child — which writes to
  // its image — only in part, so that loop no longer bounds what a program costs; it is printed beside the
  // ceiling (it was the ceiling until 2026-12-04).
  const forks = quick ? 200 : 300;
  const loopN = quick ? 200 : 600; // forks per worker in each of the other loops
  const roundN = quick ? 300 : 1000;
  const nRounds = quick ? 3 : 5;
  const warm = new WarmForkers(prelude, ex.config.workers);
  const ceilings: { plain: number; zygote: number }[] = [];
  const rounds: { s: number; rate: number }[] = [];
  try {
    await warm.measure(20); // start-up and the prelude's import, unmeasured
    const measureCeilings = async () => ceilings.push({ plain: await warm.measure(forks), zygote: (await ex.benchFork(forks)).totalPerS });
    await measureCeilings();
    for (let k = 0; k < nRounds; k++) {
      const run = await timed(roundN, async () => {
        const rs = await ex.runPrograms(Array.from({ length: roundN }, (_, i) => manyJob(k * roundN + i)));
        rs.forEach((r, i) => {
          if (!manyOk(k * roundN + i, r.results)) throw new Error(`wrong results ${JSON.stringify(r.results)}`);
        });
      });
      rounds.push({ s: run.s, rate: run.n / run.s });
      await measureCeilings();
    }
  } finally {
    warm.close();
  }
  const around = (k: number, key: "plain" | "zygote") => (ceilings[k][key] + ceilings[k + 1][key]) / 2;
  const ratios = rounds.map((r, k) => r.rate / around(k, "plain"));
  const mid = ratios.map((x, k) => [x, k]).sort((a, b) => a[0] - b[0])[Math.floor(rounds.length / 2)][1];
  // The other rows' ceiling: the mean of every measurement (and the same for the zygote's loop).
  const ceilingPerS = ceilings.reduce((a, c) => a + c.plain, 0) / ceilings.length;
  const zygoteLoopPerS = ceilings.reduce((a, c) => a + c.zygote, 0) / ceilings.length;
  const leanCeiling = await ex.benchFork(loopN, "lean");
  // The same loop with the zygote's own fork (libc's fork(), without os.fork's Python at-fork hooks), which is
  // how the zygotes fork the programs' children: what that choice buys, in both zygotes.
  const libcCeiling = await ex.benchFork(loopN, "full", "libc");
  const libcLean = await ex.benchFork(loopN, "lean", "libc");
  // The floor: per program, only what any fork-per-program design must do (see benchFork).
  const floor = await ex.benchFork(loopN, "lean", "floor");
  const onePerRequest = await timed(manyN, async () => {
    await Promise.all(
      Array.from({ length: manyN }, async (_, i) => {
        const [r] = await ex.runPrograms([manyJob(i)]);
        if (!manyOk(i, r.results)) throw new Error(`wrong results ${JSON.stringify(r.results)}`);
      }),
    );
  });
  // The per-program breakdown, in a run of its own (measuring it costs a little), with the children's CPU
  // time and page faults as the kernel accounted them.
  const timing: Record<string, number> = {};
  const usage = { cpu_s: 0, max_rss_mb: 0, children: 0, stray: 0, user_s: 0, minflt: 0 };
  const timedRun = await timed(manyN, async () => {
    const rs = await ex.runPrograms(Array.from({ length: manyN }, (_, i) => manyJob(i)), { timing: true, usage });
    for (const r of rs) for (const [k, v] of Object.entries(r.timing ?? {})) timing[k] = (timing[k] ?? 0) + v;
  });
  // The same programs, each naming numpy: the full zygote runs them.
  const forcedFull = await timed(manyN, async () => {
    const rs = await ex.runPrograms(Array.from({ length: manyN }, (_, i) => manyJob(i, true)));
    rs.forEach((r, i) => {
      if (!manyOk(i, r.results)) throw new Error(`wrong results ${JSON.stringify(r.results)}`);
    });
  });
  console.log(`Trivial-function throughput, ${cores} cores${quick ? " (--quick)" : ""}\n`);
  console.log("| mode | calls | wall (s) | calls/s | ratio vs baseline |");
  console.log("|---|---:|---:|---:|---:|");
  console.log(`| baseline: \`python3 -c\` per call, ${cores} in parallel | ${baseline.n} | ${baseline.s.toFixed(2)} | ${base.toFixed(0)} | 1.0× |`);
  console.log(`| \`python3 -c\` per call with the UTGen prelude (what each execution sees), ${cores} in parallel | ${withPrelude.n} | ${withPrelude.s.toFixed(2)} | ${rate(withPrelude).toFixed(0)} | ${(rate(withPrelude) / base).toFixed(2)}× |`);
  console.log(`| sandboxed pool, one call per request | ${single.n} | ${single.s.toFixed(2)} | ${rate(single).toFixed(0)} | ${(rate(single) / base).toFixed(1)}× |`);
  console.log(`| sandboxed pool, batches of ${batchSize} | ${batched.n} | ${batched.s.toFixed(2)} | ${rate(batched).toFixed(0)} | ${(rate(batched) / base).toFixed(1)}× |`);
  const okRatio = rate(batched) / base >= 20;
  const okRate = rate(batched) >= 1000;
  console.log(`\ntargets: batched ≥ 20× the bare baseline: ${okRatio ? "met" : "NOT met"}; batched ≥ 1,000 sandboxed calls/s: ${okRate ? "met" : "NOT met"}`);
  console.log(`one call per request: ${(rate(single) / base).toFixed(1)}× the bare baseline, ${(rate(single) / rate(withPrelude)).toFixed(1)}× the prelude baseline`);
  console.log(`\nMany distinct programs, 3 tests each, ${ex.config.workers} workers\n`);
  console.log("| mode | programs | wall (s) | programs/s | share of the fork ceiling |");
  console.log("|---|---:|---:|---:|---:|");
  const span = (xs: number[]) => `${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)}/s`;
  console.log(`| fork ceiling: ${ex.config.workers} warm plain \`python3 -I\` processes with the reference prelude (numpy loaded), each forking bare children (fork + exit + wait) in a Python loop, at once; the mean of the ${ceilings.length} measurements before and between the rounds below (${span(ceilings.map((c) => c.plain))}), for the other rows | ${forks}×${ex.config.workers} ×${ceilings.length} | | ${ceilingPerS.toFixed(0)} | 100 % |`);
  console.log(`| the same loop in each worker's full zygote (\`os.fork\`), at once, at the same points: the ceiling until 2026-12-04 (its image is now built for cheap forks, which a bare child gains in full); mean of ${ceilings.length} (${span(ceilings.map((c) => c.zygote))}) | ${forks}×${ex.config.workers} ×${ceilings.length} | | ${zygoteLoopPerS.toFixed(0)} | ${((100 * zygoteLoopPerS) / ceilingPerS).toFixed(0)} % |`);
  console.log(`| the same loop in the lean zygote (the prelude without numpy) | ${loopN}×${ex.config.workers} | | ${leanCeiling.totalPerS.toFixed(0)} | ${((100 * leanCeiling.totalPerS) / ceilingPerS).toFixed(0)} % |`);
  console.log(`| the ceiling's loop with the zygotes' own fork (libc's fork(), no Python at-fork hooks: how they fork the programs' children), full zygote | ${loopN}×${ex.config.workers} | | ${libcCeiling.totalPerS.toFixed(0)} | ${((100 * libcCeiling.totalPerS) / ceilingPerS).toFixed(0)} % |`);
  console.log(`| the same, lean zygote | ${loopN}×${ex.config.workers} | | ${libcLean.totalPerS.toFixed(0)} | ${((100 * libcLean.totalPerS) / ceilingPerS).toFixed(0)} % |`);
  console.log(`| floor: per program, a child of the lean zygote (its own fork) that reads its request, compiles, executes, makes the 3 calls and writes 3 results — no set-up, limits, end line, server or Node — all workers at once | ${loopN}×${ex.config.workers} | | ${floor.totalPerS.toFixed(0)} | ${((100 * floor.totalPerS) / ceilingPerS).toFixed(0)} % |`);
  console.log(`| one program per request (runPrograms with one job, ${manyN} requests in flight) | ${onePerRequest.n} | ${onePerRequest.s.toFixed(2)} | ${rate(onePerRequest).toFixed(0)} | ${((100 * rate(onePerRequest)) / ceilingPerS).toFixed(0)} % |`);
  rounds.forEach((r, k) =>
    console.log(`| many programs per request (one runPrograms call), round ${k + 1}, against the ceiling measured just before (${ceilings[k].plain.toFixed(0)}/s) and after (${ceilings[k + 1].plain.toFixed(0)}/s) it; against the zygotes' loop at the same points: ${((100 * r.rate) / around(k, "zygote")).toFixed(0)} % of ${around(k, "zygote").toFixed(0)}/s | ${roundN} | ${r.s.toFixed(2)} | ${r.rate.toFixed(0)} | ${(100 * ratios[k]).toFixed(0)} % of ${around(k, "plain").toFixed(0)}/s |`),
  );
  console.log(`| many programs per request, every program naming numpy (all in the full zygote) | ${forcedFull.n} | ${forcedFull.s.toFixed(2)} | ${rate(forcedFull).toFixed(0)} | ${((100 * rate(forcedFull)) / ceilingPerS).toFixed(0)} % |`);
  const per = (k: string) => ((1000 * (timing[k] ?? 0)) / manyN).toFixed(3);
  console.log(`\nPer program (ms, mean over ${manyN} in a run with timing on; wall per program on one worker ≈ ${((1000 * timedRun.s * ex.config.workers) / manyN).toFixed(2)} ms; the children's own CPU ${((1000 * usage.cpu_s) / manyN).toFixed(2)} ms and ${(usage.minflt / manyN).toFixed(0)} page faults each, mostly copy-on-write):\n`);
  console.log("| spawn (server sends the fork request; the zygote's answer is read later) | fork (fork() until the child runs) | child set-up | module load | run (3 calls) | result encoding | transport (3 calls) | end + kill |");
  console.log("|---:|---:|---:|---:|---:|---:|---:|---:|");
  console.log(`| ${per("spawn")} | ${per("fork")} | ${per("setup")} | ${per("load")} | ${per("run")} | ${per("encode")} | ${per("transport")} | ${per("exit")} |`);
  // The children's page faults by phase (each a trap into the kernel, most a copy of a page of the zygote's image):
  // the last column is what wait4 counted in all, less the three phases the child reports.
  const flt = (k: string) => (timing[k] ?? 0) / manyN;
  const fltRest = usage.minflt / manyN - flt("flt_fork") - flt("flt_setup") - flt("flt_load");
  console.log(`
Page faults per child, by phase: fork until the harness runs ${flt("flt_fork").toFixed(0)}, set-up and request ${flt("flt_setup").toFixed(0)}, module load ${flt("flt_load").toFixed(0)}, calls + results + exit ${fltRest.toFixed(0)} (${(usage.minflt / manyN).toFixed(0)} in all).`);
  console.log(`\nmany programs per request: ${rounds[mid].rate.toFixed(0)} programs/s = ${(100 * ratios[mid]).toFixed(0)} % of the fork ceiling (${around(mid, "plain").toFixed(0)}/s) — the median of ${rounds.length} rounds (${ratios.map((x) => (100 * x).toFixed(0) + " %").join(", ")}), each against the ceiling measured just before and after it; against the zygotes' own loop instead: ${((100 * rounds[mid].rate) / around(mid, "zygote")).toFixed(0)} % (${around(mid, "zygote").toFixed(0)}/s)`);
} finally {
  await ex.close();
}
