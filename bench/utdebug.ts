/**
 * `utdebug` against a loopback OpenAI-compatible server with 200 ms latency at llm.concurrency 32, on the
 * 60-problem MBPP+Fix (Hard) dev split (../shared/data/…; the shipped demo set with --quick or when it is
 * absent): model calls, wall time and the share of the server's concurrency kept busy, for the stage's
 * concurrent schedule (every problem runs its rounds on its own) against the reference's sequential structure
 * (`schedule: lockstep`: one round for all problems, then the next), both measured in this run, each from an
 * empty cache. Same algorithm, same scripted answers (by request seed), so both make the same calls and reach
 * the same pass@1; only the scheduling differs.
 * Four methods, as a Table 2 config runs them: a UTGen-style generator, `prompted`, `random` and `no-ut`.
 * The scripted model knows each problem's private tests (extracted in the sandbox first): a UT input is one of
 * the 8 with the shortest calls, its votes are 6 × the right output and 2 × None; the debugger returns the canonical solution for two
 * replies in three (by a hash of the chat), the unchanged code otherwise; the No-UT critique calls the
 * canonical code correct and any other code correct or wrong by a hash.
 * `npx tsx bench/utdebug.ts [--quick]`
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import YAML from "yaml";
import { main } from "../pipeline/cli.ts";
import { createExecutor, formatCall, formatPyValue } from "../pipeline/executor/index.ts";
import { sha256 } from "../pipeline/util.ts";
import { goldTestsOf, loadDatasetFlag } from "../stages/debug/problems.ts";
import { startOpenAIServer, type ScriptRequest, type ScriptedReply } from "../test/servers/openai.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
const quick = process.argv.includes("--quick");
const LATENCY_MS = 200;
const CONCURRENCY = 32;
const dev = path.resolve(here, "../../shared/data/mbppplus_fix_hard.dev.jsonl");
const demo = path.resolve(here, "../data/utdebug-demo.jsonl");
const file = !quick && existsSync(dev) ? dev : demo;
if (!quick && file === demo) console.warn(`note: ${dev} is absent; benchmarking the demo set instead`);

const set = await loadDatasetFlag(file);
const ex = await createExecutor({});
interface World {
  canonical: string;
  buggy: string;
  calls: string[];
  outputs: string[];
}
const world = new Map<string, World>();
try {
  for (const p of set.problems) {
    const g = await goldTestsOf(ex, p);
    if (!("tests" in g)) continue;
    // A model writes small unit tests: the 8 private tests with the shortest calls (MBPP+'s stress inputs
    // would make every run of a slow buggy code a 2 s timeout, which no generator produces that often).
    const all = g.tests.inputs.map((c, i) => ({ call: formatCall(p.entryPoint, c), out: formatPyValue(g.tests.results[i]) }));
    const small = all.filter((x) => x.call.length <= 200 && x.out.length <= 200).sort((a, b) => a.call.length - b.call.length || (a.call < b.call ? -1 : 1)).slice(0, 8);
    if (!small.length) continue;
    world.set(p.entryPoint, { canonical: p.gold, buggy: p.buggy, calls: small.map((x) => x.call), outputs: small.map((x) => x.out) });
  }
} finally {
  await ex.close();
}

function script(req: ScriptRequest): ScriptedReply {
  const first = req.messages[0]?.content ?? "";
  const last = req.messages[req.messages.length - 1];
  const entry = /`([A-Za-z_]\w*)\(/.exec(first)?.[1] ?? "";
  const w = world.get(entry);
  const seed = typeof req.body.seed === "number" ? req.body.seed : 0;
  if (!w) return { choices: Array(req.n).fill("?") };
  if (last.role === "assistant" && req.body.continue_final_message) {
    const call = /Arguments: ```([\s\S]*?)```/.exec(last.content)?.[1] ?? "";
    const j = w.calls.indexOf(call);
    return { choices: Array.from({ length: req.n }, (_, i) => `### Output\nStep by step.\nOutput: \`\`\`${(seed + i) % 4 === 3 ? "None" : (w.outputs[j] ?? "None")}\`\`\``) };
  }
  if (first.includes("generate feedback that decides whether the code is correct")) {
    const code = /## Code:\n```\n([\s\S]*?)```/.exec(first)?.[1] ?? "";
    const ok = code.trim() === w.canonical.trim() || parseInt(sha256(code + seed).slice(0, 8), 16) % 2 === 0;
    return { choices: Array(req.n).fill(ok ? "Feedback: fine.\nThe above code is correct." : "Feedback: an edge case fails.\nThe above code is wrong, please fix it.") };
  }
  if (first.includes("a unit test that")) {
    return {
      choices: Array.from({ length: req.n }, (_, i) => {
        const j = ((seed + i) * 7 + first.length) % w.calls.length;
        return `## Hypothesis\nAn edge case.\n\nError Pattern: edges\n\n## Unit Test\n\n### Input Arguments\nOne of the edge cases.\nArguments: \`\`\`${w.calls[j]}\`\`\`\n\n### Output\nWorking it out.\nOutput: \`\`\`${w.outputs[j]}\`\`\``;
      }),
    };
  }
  if (first.includes("Write Python code to solve the task.")) {
    const fix = parseInt(sha256(JSON.stringify(req.messages) + seed).slice(0, 8), 16) % 3 !== 0;
    return { choices: Array(req.n).fill(`\`\`\`python\n${fix ? w.canonical : w.buggy}\n\`\`\``) };
  }
  return { choices: Array(req.n).fill("?") };
}

const server = await startOpenAIServer({ script, latencyMs: LATENCY_MS });
const dirs: string[] = [];
interface Row {
  schedule: string;
  requests: number;
  wall: number;
  busySpan: number;
  busyWall: number;
  span: number;
  pass: number;
  problems: number;
  /** Sandbox programs the loops waited for, and their mean wait (ms) from submission to results. */
  urgent: number;
  urgentWait: number;
}
const rows: Row[] = [];
try {
  for (const schedule of ["lockstep", "concurrent"] as const) {
    const dir = mkdtempSync(path.join(tmpdir(), `bench-utdebug-${schedule}-`));
    dirs.push(dir);
    const cfg = path.join(dir, "c.yaml");
    writeFileSync(
      cfg,
      YAML.stringify({
        run: { dir: path.join(dir, "run") },
        llm: { backend: "openai", base_urls: [server.url], model: "debugger-model", seed: 0, concurrency: CONCURRENCY, max_retries: 0, timeout_s: 120 },
        utdebug: { generators: ["utgen-model"], baselines: ["prompted", "random", "no-ut"], base_model: "base-model", schedule },
      }),
    );
    const out: string[] = [];
    const err: string[] = [];
    const t0 = performance.now();
    const code = await main(["--config", cfg, "--stage", "utdebug", "--dataset", file, "--json"], { stdout: (l) => out.push(l), stderr: (l) => err.push(l) });
    const wall = (performance.now() - t0) / 1000;
    if (code !== 0) throw new Error(`utdebug (${schedule}) exited with ${code}: ${err.slice(-3).join(" | ")}`);
    const b = server.busy(CONCURRENCY, t0);
    const s = Object.values(JSON.parse(out[out.length - 1]).sets)[0] as Record<string, { pass_at_1: number; problems: number }>;
    const counters = JSON.parse(readFileSync(path.join(dir, "run", "run.json"), "utf8")).lastResults.utdebug.counters;
    rows.push({
      schedule,
      requests: b.requests,
      wall,
      span: b.spanMs / 1000,
      busySpan: b.busyMs / (CONCURRENCY * b.spanMs),
      busyWall: b.busyMs / (CONCURRENCY * wall * 1000),
      pass: s["utgen-model"].pass_at_1,
      problems: s["utgen-model"].problems,
      urgent: counters.executor_urgent_programs ?? 0,
      urgentWait: (counters.executor_urgent_wait_ms ?? 0) / Math.max(1, counters.executor_urgent_programs ?? 1),
    });
  }
} finally {
  await server.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}

const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
console.log(
  `utdebug on ${path.basename(file)}: ${rows[0].problems} problems × 4 methods (UTGen-style generator, prompted, random, No-UT; n 3, k 8, 3 rounds), server latency ${LATENCY_MS} ms, llm.concurrency ${CONCURRENCY}, ${availableParallelism()} cores\n`,
);
console.log("| schedule | model requests | wall (s) | first → last request (s) | ideal (requests × latency ÷ concurrency, s) | server busy, first → last request | server busy, whole run | sandbox programs the loops waited for (mean wait, ms) | pass@1 (generator) | speed-up (wall) |");
console.log("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
for (const r of rows)
  console.log(
    `| ${r.schedule === "lockstep" ? "reference structure: one round for all problems, then the next" : "utdebug: problems run their rounds concurrently"} | ${r.requests} | ${r.wall.toFixed(1)} | ${r.span.toFixed(1)} | ${((r.requests * LATENCY_MS) / 1000 / CONCURRENCY).toFixed(1)} | ${pct(r.busySpan)} | ${pct(r.busyWall)} | ${r.urgent} (${r.urgentWait.toFixed(0)}) | ${pct(r.pass)} | ${(rows[0].wall / r.wall).toFixed(2)}× |`,
  );
const c = rows[1];
console.log(
  `\nbusy-share target ≥ 90 % (first → last request): ${c.busySpan >= 0.9 ? "met" : "NOT met"}; same model requests in both schedules: ${rows[0].requests === c.requests ? "yes" : "NO"}` +
    ` (pass@1 may differ by a problem when a private test runs near its calibrated limit on a loaded machine)`,
);
