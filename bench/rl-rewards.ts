/**
 * UTRL reward service under load: rewards/s for a GRPO step's rollouts (128 rollouts × 12 cases × 8 code
 * samples, stdio tasks) through the HTTP service — one request per step, programs batched into one sandbox
 * request, identical executions once — and the step's p50 / p99 latency over several steps; against a
 * baseline measured in the same run: the same rows scored one sandbox request per program (no batching, no
 * de-duplication, no cache). Every baseline step's rewards and per-case verdicts must equal the service's.
 *
 * Two shapes: a GRPO group shape (16 tasks × 8 unit tests each, the task's 8 code samples shared by its
 * group, as the tester's reward sees them) and 128 distinct tasks. `npx tsx bench/rl-rewards.ts [--quick]`.
 */
import { availableParallelism } from "node:os";
import { createExecutor } from "../pipeline/executor/index.ts";
import { Rng } from "../stages/common.ts";
import { parseRewardRow, type RewardRow } from "../stages/rl/cases.ts";
import { parseRlConfig } from "../stages/rl/config.ts";
import { RewardEngine, scoreDirect } from "../stages/rl/engine.ts";
import { startRewardService } from "../stages/rl/service.ts";

const quick = process.argv.includes("--quick");
const cores = availableParallelism();
const ROLLOUTS = 128;
const CASES = 12;
const CODES = 8;

interface Problem {
  name: string;
  gt: string;
  /** Code samples: correct variants and typical bugs. */
  variants: string[];
  input(r: Rng): string;
  answer(input: string): string;
}

const ints = (s: string) => s.trim().split(/\s+/).map(Number);
const PROBLEMS: Problem[] = [
  {
    name: "sum",
    gt: "n = int(input())\nprint(sum(map(int, input().split())))\n",
    variants: [
      "import sys\nd = sys.stdin.read().split()\nprint(sum(int(x) for x in d[1:]))\n",
      "n = int(input())\na = list(map(int, input().split()))\nprint(sum(a[:-1]))\n",
      "n = int(input())\nprint(sum(abs(int(x)) for x in input().split()))\n",
      "n = int(input())\nprint(sum(map(int, input().split())) % 1000)\n",
    ],
    input: (r) => {
      const n = r.int(1, 8);
      return `${n}\n${Array.from({ length: n }, () => r.int(-50, 2000)).join(" ")}`;
    },
    answer: (i) => String(ints(i).slice(1).reduce((a, b) => a + b, 0)),
  },
  {
    name: "max",
    gt: "n = int(input())\nprint(max(map(int, input().split())))\n",
    variants: [
      "n = int(input())\nprint(sorted(map(int, input().split()))[-1])\n",
      "n = int(input())\na = list(map(int, input().split()))\nm = 0\nfor x in a:\n    m = max(m, x)\nprint(m)\n",
      "n = int(input())\na = list(map(int, input().split()))\nprint(a[-1])\n",
      "n = int(input())\nprint(max(map(int, input().split()[1:])))\n",
    ],
    input: (r) => {
      const n = r.int(1, 8);
      return `${n}\n${Array.from({ length: n }, () => r.int(-100, 100)).join(" ")}`;
    },
    answer: (i) => String(Math.max(...ints(i).slice(1))),
  },
  {
    name: "reverse",
    gt: "print(input()[::-1])\n",
    variants: ["s = input()\nprint(''.join(reversed(s)))\n", "s = input()\nprint(s[::-1] if len(s) > 1 else '')\n", "print(input()[-2::-1])\n", "print(input().strip()[::-1])\n"],
    input: (r) => Array.from({ length: r.int(0, 9) }, () => r.pick("abcxyz".split(""))).join(""),
    answer: (i) => [...i].reverse().join(""),
  },
  {
    name: "fib-mod",
    gt: "n = int(input())\na, b = 0, 1\nfor _ in range(n):\n    a, b = b, (a + b) % 1000007\nprint(a)\n",
    variants: [
      "n = int(input())\nf = [0, 1]\nfor i in range(2, n + 1):\n    f.append((f[-1] + f[-2]) % 1000007)\nprint(f[n])\n",
      "n = int(input())\na, b = 0, 1\nfor _ in range(n):\n    a, b = b, a + b\nprint(a)\n",
      "n = int(input())\na, b = 1, 1\nfor _ in range(n):\n    a, b = b, (a + b) % 1000007\nprint(a)\n",
      "n = int(input())\nif n > 60:\n    raise ValueError('too big')\na, b = 0, 1\nfor _ in range(n):\n    a, b = b, (a + b) % 1000007\nprint(a)\n",
    ],
    input: (r) => String(r.int(0, 90)),
    answer: (i) => {
      let a = 0n;
      let b = 1n;
      for (let k = 0; k < Number(i); k++) [a, b] = [b, (a + b) % 1000007n];
      return String(a);
    },
  },
];

/** A unit test as the generator writes it: 12 cases, about one in five with a wrong expected output. */
function unitTest(p: Problem, r: Rng): string {
  return Array.from({ length: CASES }, (_, k) => {
    const input = p.input(r);
    let out = p.answer(input);
    if (r.chance(0.2)) out = out + "0";
    return `## Test Case ${k + 1}\nReasoning: case ${k + 1}.\n### Input\n\`\`\`\n${input}\n\`\`\`\n### Output\n\`\`\`\n${out}\n\`\`\`\n`;
  }).join("\n");
}

/** 8 code samples of a problem: the ground truth's variants and bugs, in a seeded mix. */
function codes(p: Problem, r: Rng): string[] {
  return Array.from({ length: CODES }, (_, i) => (i === 0 ? p.gt : r.pick(p.variants)));
}

/** One step's rows: `tasks` tasks × (128 / tasks) unit tests each; a task's codes are shared by its group. */
function step(seed: string, tasks: number): RewardRow[] {
  const r = new Rng("rl-bench", seed);
  const rows: RewardRow[] = [];
  for (let t = 0; t < tasks; t++) {
    const p = PROBLEMS[t % PROBLEMS.length];
    // Each task's code samples are its own (a task id in the program text, as different tasks have different code).
    const cs = codes(p, r).map((c) => `# task ${seed}-${t}\n${c}`);
    for (let g = 0; g < ROLLOUTS / tasks; g++)
      rows.push(parseRewardRow({ id: `${seed}-${t}-${g}`, kind: "stdio", gt_code: `# task ${seed}-${t}\n${p.gt}`, ut_text: unitTest(p, r), codes: cs }, "bench"));
  }
  return rows;
}

const q = (xs: number[], f: number) => {
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * f;
  return s[Math.floor(pos)] + (s[Math.ceil(pos)] - s[Math.floor(pos)]) * (pos - Math.floor(pos));
};

const rl = parseRlConfig({ timeout_s: 10 });
const ex = await createExecutor({});
const steps = quick ? 3 : 8;
const baselineSteps = quick ? 1 : 2;
try {
  const engine = new RewardEngine(ex, rl);
  const svc = await startRewardService({ engine, port: 0 });
  const post = async (rows: RewardRow[]) => {
    const res = await fetch(`${svc.url}/v1/rewards`, { method: "POST", body: JSON.stringify({ rows, details: true }) });
    if (!res.ok) throw new Error(`service answered ${res.status}: ${await res.text()}`);
    return ((await res.json()) as { results: any[] }).results;
  };
  // Warm-up (worker start is not part of the per-step cost).
  await post(step("warm", 16).slice(0, 8));
  console.log(`UTRL reward service: ${ROLLOUTS} rollouts × ${CASES} cases × ${CODES} codes per step (stdio), ${cores} cores, executor workers ${ex.config.workers}${quick ? " (--quick)" : ""}\n`);
  console.log("| shape | mode | steps | rollouts/step | wall per step p50 (s) | p99 (s) | rewards/s | sandbox executions per step | ratio vs baseline |");
  console.log("|---|---|---:|---:|---:|---:|---:|---:|---:|");
  let mismatches = 0;
  let compared = 0;
  for (const [shape, tasks] of [["GRPO groups (16 tasks × 8 tests)", 16], ["128 distinct tasks", 128]] as const) {
    const lat: number[] = [];
    let execs = 0;
    const served: Record<string, any[]> = {};
    for (let s = 0; s < steps; s++) {
      const rows = step(`${tasks}-${s}`, tasks);
      const before = engine.stats().executed;
      const t0 = performance.now();
      served[s] = await post(rows);
      lat.push((performance.now() - t0) / 1000);
      execs += engine.stats().executed - before;
    }
    const base: number[] = [];
    let baseExecs = 0;
    for (let s = 0; s < baselineSteps; s++) {
      const rows = step(`${tasks}-${s}`, tasks);
      const t0 = performance.now();
      const direct = await scoreDirect(ex, rl, rows);
      base.push((performance.now() - t0) / 1000);
      baseExecs += rows.reduce((a, r) => a + (1 + (r.codes?.length ?? 0)) * CASES, 0);
      direct.forEach((d, i) => {
        compared++;
        const o = served[s][i];
        if (d.reward !== o.reward || JSON.stringify(d.code_rewards) !== JSON.stringify(o.code_rewards) || JSON.stringify(d.verdicts) !== JSON.stringify(o.verdicts)) mismatches++;
      });
    }
    const ours = ROLLOUTS / q(lat, 0.5);
    const theirs = ROLLOUTS / q(base, 0.5);
    console.log(`| ${shape} | baseline: one sandbox request per program | ${baselineSteps} | ${ROLLOUTS} | ${q(base, 0.5).toFixed(2)} | ${q(base, 0.99).toFixed(2)} | ${theirs.toFixed(1)} | ${(baseExecs / baselineSteps).toFixed(0)} | 1.0× |`);
    console.log(`| ${shape} | reward service: one request per step | ${steps} | ${ROLLOUTS} | ${q(lat, 0.5).toFixed(2)} | ${q(lat, 0.99).toFixed(2)} | ${ours.toFixed(1)} | ${(execs / steps).toFixed(0)} | ${(ours / theirs).toFixed(1)}× |`);
  }
  console.log(`\nverdicts: ${compared - mismatches} of ${compared} baseline rollouts have the service's rewards and per-case verdicts${mismatches ? ` — ${mismatches} DIFFER` : " (all equal)"}`);
  await svc.close();
  if (mismatches) process.exitCode = 1;
} finally {
  await ex.close();
}
