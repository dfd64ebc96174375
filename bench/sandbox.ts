/**
 * What the sandbox's hardening costs and what hostile neighbours cost (issue #16), measured in this run:
 *
 *  1. Per-request cost of the hardening: one call per request, with the hardening (children in their own pid
 *     namespace, an IPC namespace per request, a fresh tmpfs per child when needed, the seccomp filter) and
 *     with `diagnostic_no_hardening` (same bubblewrap sandbox and uid drop, none of those), alternated A/B/A/B.
 *  2. Neighbours: a benign many-programs batch alone, then beside a stream of one-program requests with the
 *     same 0.5 s limit: benign neighbours (one that computes for most of its limit, one that sleeps, one that
 *     returns the largest value allowed — each takes its share of the workers and cores, as any long request
 *     does) and hostile ones — a CPU spin, a memory bomb, an output flood, a program that tries to SIGSTOP /
 *     SIGKILL every process it can see. Each hostile row is compared with the benign neighbour of the same
 *     shape: what a hostile neighbour costs beyond an honest one of the same size.
 *
 * `npx tsx bench/sandbox.ts [--quick]`.
 */
import { createExecutor, type SandboxExecutor } from "../pipeline/executor/index.ts";

const quick = process.argv.includes("--quick");
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function perRequest(ex: SandboxExecutor, n: number): Promise<number> {
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const [r] = await ex.runCalls({ program: "def add(a, b):\n    return a + b\n", entryPoint: "add", inputs: [{ args: [i, 1] }], timeoutS: 1 });
      if (r.value !== i + 1) throw new Error(`wrong result ${JSON.stringify(r)}`);
    }),
  );
  return n / ((performance.now() - t0) / 1000);
}

const hardened = await createExecutor({});
const plain = await createExecutor({ diagnostic_no_hardening: true });
const N = quick ? 200 : 800;
const rounds = quick ? 2 : 3;
const a: number[] = [];
const b: number[] = [];
try {
  await perRequest(hardened, 20);
  await perRequest(plain, 20);
  for (let r = 0; r < rounds; r++) {
    a.push(await perRequest(plain, N));
    b.push(await perRequest(hardened, N));
  }
} finally {
  await plain.close();
}
console.log(`Per-request cost of the hardening, one call per request, ${hardened.config.workers} workers, ${rounds} rounds of ${N} (median requests/s)\n`);
console.log("| sandbox | requests/s (median) | rounds | ratio |");
console.log("|---|---:|---|---:|");
console.log(`| bubblewrap + uid drop, no hardening (diagnostic_no_hardening) | ${median(a).toFixed(0)} | ${a.map((x) => x.toFixed(0)).join(", ")} | 1.00 |`);
console.log(`| hardened (pid + IPC namespaces, per-child tmpfs, seccomp) | ${median(b).toFixed(0)} | ${b.map((x) => x.toFixed(0)).join(", ")} | ${(median(b) / median(a)).toFixed(2)} |`);

// ---- neighbours ----
const batchN = quick ? 150 : 1500;
const benign = Array.from({ length: batchN }, (_, i) => ({
  program: `def f(x):\n    return sum(range(x)) + ${i}\n`,
  entryPoint: "f",
  inputs: [{ args: [1000] }, { args: [2000] }, { args: [3000] }],
  timeoutS: 1,
}));
const LIMIT = 0.5;
/** `control`: the benign neighbour of the same shape a hostile row is compared with. */
const NEIGHBOURS: { name: string; program: string; control?: string }[] = [
  { name: "benign control A: computes for ~0.48 s of its 0.5 s limit", program: "import time\ndef f():\n    t = time.perf_counter()\n    while time.perf_counter() - t < 0.48: pass\n    return 1" },
  { name: "benign control B: sleeps 0.45 s", program: "import time\ndef f():\n    time.sleep(0.45)\n    return 1" },
  { name: "benign control C: returns an 8 MB string (the largest value allowed)", program: "def f():\n    return 'y' * (8 * 10**6 - 100)" },
  { name: "CPU spin (killed at its limit)", program: "def f():\n    while True: pass", control: "A" },
  { name: "memory bomb (allocates until refused, again and again)", program: "import time\ndef f():\n    t = time.perf_counter()\n    while time.perf_counter() - t < 0.45:\n        try:\n            x = [bytearray(64 << 20) for _ in range(64)]\n        except MemoryError:\n            pass\n    return 1", control: "A" },
  { name: "output flood: a value past the 8 MB cap, every call", program: "def f():\n    return 'x' * (9 * 10**6)", control: "C" },
  { name: "SIGSTOP / SIGKILL every process it can see, then sleeps", program: "import os, signal, time\ndef f():\n    for p in os.listdir('/proc'):\n        if p.isdigit() and int(p) != os.getpid():\n            for s in (signal.SIGSTOP, signal.SIGKILL):\n                try: os.kill(int(p), s)\n                except OSError: pass\n    time.sleep(0.45)\n    return 1", control: "B" },
];

async function batchTime(ex: SandboxExecutor): Promise<number> {
  const t0 = performance.now();
  const rs = await ex.runPrograms(benign);
  rs.forEach((r, i) => {
    if (!r.results.every((x, k) => x.value === [499500, 1999000, 4498500][k] + i)) throw new Error(`wrong result ${JSON.stringify(r.results)}`);
  });
  return (performance.now() - t0) / 1000;
}

async function beside(ex: SandboxExecutor, program: string): Promise<{ s: number; neighbourRequests: number; cpu: number }> {
  let stop = false;
  let count = 0;
  const usage = { cpu_s: 0, max_rss_mb: 0, children: 0, stray: 0 };
  const stream = (async () => {
    while (!stop) {
      await ex.runPrograms([{ program, entryPoint: "f", inputs: [{ args: [] }], timeoutS: LIMIT }], { usage });
      count++;
    }
  })();
  await new Promise((r) => setTimeout(r, 50));
  const s = await batchTime(ex);
  stop = true;
  await stream;
  return { s, neighbourRequests: count, cpu: usage.cpu_s };
}

try {
  await batchTime(hardened);
  const alone = median([await batchTime(hardened), await batchTime(hardened), await batchTime(hardened)]);
  const rows: string[] = [];
  const controls: Record<string, number> = {};
  const reps = quick ? 1 : 3;
  for (const n of NEIGHBOURS) {
    const runs = [];
    for (let k = 0; k < reps; k++) runs.push(await beside(hardened, n.program));
    runs.sort((x, y) => x.s - y.s);
    const r = runs[Math.floor(runs.length / 2)];
    const key = /control ([A-Z])/.exec(n.name)?.[1];
    if (key) controls[key] = r.s;
    const vs = n.control ? `${((r.s / controls[n.control] - 1) * 100).toFixed(0)} % (vs ${n.control})` : "";
    rows.push(`| ${n.name} | ${r.s.toFixed(2)} | ${((r.s / alone - 1) * 100).toFixed(0)} % | ${vs} | ${r.neighbourRequests} | ${r.cpu.toFixed(2)} |`);
  }
  console.log(`\nNeighbours: a benign batch of ${batchN} programs × 3 tests (one runPrograms call) beside a stream of one-program requests (limit ${LIMIT} s), ${hardened.config.workers} workers; median of ${reps} runs each\n`);
  console.log("| neighbour | batch wall (s) | vs alone | vs the benign neighbour of the same shape | neighbour requests | neighbour CPU (s, wait4) |");
  console.log("|---|---:|---:|---:|---:|---:|");
  console.log(`| none (alone, median of 3) | ${alone.toFixed(2)} | 0 % | | 0 | |`);
  for (const r of rows) console.log(r);
} finally {
  await hardened.close();
}
