/**
 * Incremental rebuilds at scale, on the OpenAI-compatible backend (the loopback server answering as the
 * scripted UTGen model of test/servers/utgen-model.ts, 20 ms per reply) and the real sandbox:
 *  1. first run of filter → emit-sft over N source items (default 10,000; --quick 1,000): wall time and
 *     model calls (the baseline);
 *  2. the same command again, nothing changed: wall time as a share of the first run (target < 5 %) and
 *     model calls (expected 0);
 *  3. 1 % of the source rows edited (their task text changes): model calls as a share of the first run's
 *     (expected ≈ 1 %) and wall time.
 * The runner is a child process (`node pipeline/run.mjs`), exactly as a user starts it.
 * Usage: npx tsx bench/rebuild.ts [--quick] [--items N]
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { startOpenAIServer } from "../test/servers/openai.ts";
import { promptKind, utgenModel } from "../test/servers/utgen-model.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const itemsArg = args.indexOf("--items");
const ITEMS = itemsArg >= 0 ? Number(args[itemsArg + 1]) : args.includes("--quick") ? 1000 : 10_000;
const CHANGED = Math.max(1, Math.round(ITEMS / 100));

/** The demo rows that are Python function tasks with doctest-style examples (the filter keeps them). */
const demo = readFileSync(path.join(ROOT, "data/demo/tulu-demo.jsonl"), "utf8")
  .split("\n")
  .filter(Boolean)
  .map((l) => JSON.parse(l))
  .filter((r) => r.messages.length === 2 && /assert \w+\(/.test(r.messages[0].content) && /```python/.test(r.messages[1].content));

/** Item i: a demo task with a distinct task text (so prompts, ids and cache keys are distinct). */
function row(i: number, edited: boolean): string {
  const b = demo[i % demo.length];
  const user = `${b.messages[0].content}\n\n(Task ${i}${edited ? ", revised wording" : ""}.)`;
  return JSON.stringify({ id: `bench-${i}`, source: b.source, messages: [{ role: "user", content: user }, b.messages[1]] });
}

function writeRows(file: string, editedEvery: number | null): void {
  const lines: string[] = [];
  for (let i = 0; i < ITEMS; i++) lines.push(row(i, editedEvery !== null && i % editedEvery === 0));
  writeFileSync(file, lines.join("\n") + "\n");
}

function runner(config: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [path.join(ROOT, "pipeline/run.mjs"), "--config", config], { cwd: ROOT, stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    child.stderr.on("data", (d) => (err = (err + d).slice(-4000)));
    child.on("error", reject);
    child.on("exit", (code) => (code === 0 ? resolve((performance.now() - t0) / 1000) : reject(new Error(`runner exited ${code}:\n${err}`))));
  });
}

async function main(): Promise<void> {
  if (!demo.length) throw new Error("no usable demo rows in data/demo/tulu-demo.jsonl");
  const server = await startOpenAIServer({ script: (req) => utgenModel(req, 20) });
  const dir = mkdtempSync(path.join(os.tmpdir(), "bench-rebuild-"));
  try {
    const rows = path.join(dir, "rows.jsonl");
    const config = path.join(dir, "c.yaml");
    writeFileSync(
      config,
      [
        `run: {dir: ${JSON.stringify(path.join(dir, "run"))}}`,
        `source: {kind: local, path: ${JSON.stringify(rows)}}`,
        `llm: {backend: openai, base_urls: [${JSON.stringify(server.url)}], model: bench-model, concurrency: 64, max_retries: 0}`,
        "filter: {tokenizer: chars, max_prompt_tokens: 8000}",
        "perturb: {n_bugs: 2}",
        "attack: {attempts: 3}",
        "",
      ].join("\n"),
    );
    writeRows(rows, null);
    const calls = (from: number) => server.requests.length - from;
    const byKind = (from: number) => {
      const m: Record<string, number> = {};
      for (const b of server.requests.slice(from)) {
        const k = promptKind(b.messages.at(-1).content);
        m[k] = (m[k] ?? 0) + 1;
      }
      return Object.entries(m).map(([k, v]) => `${k} ${v}`).join(", ");
    };

    const t1 = await runner(config);
    const c1 = calls(0);
    const k1 = byKind(0);
    const stageMs = ["filter", "perturb", "attack", "rationalize", "emit-sft"].map((st) => {
      const m = JSON.parse(readFileSync(path.join(dir, "run", st, "manifest.json"), "utf8"));
      return `${st} ${(m.timings.ms / 1000).toFixed(1)} s (${m.counts.in} → ${m.counts.out})`;
    });
    let from = server.requests.length;
    const t2 = await runner(config);
    const c2 = calls(from);
    writeRows(rows, 100);
    from = server.requests.length;
    const t3 = await runner(config);
    const c3 = calls(from);
    const k3 = byKind(from);

    const pct = (x: number) => `${(100 * x).toFixed(2)} %`;
    console.log(`${ITEMS} source items (${demo.length} distinct demo tasks, each with its own task text); loopback model, 20 ms per reply\n`);
    console.log("| run | wall (s) | vs first run | model calls | vs first run |");
    console.log("|---|---:|---:|---:|---:|");
    console.log(`| first run (baseline) | ${t1.toFixed(1)} | 100 % | ${c1} | 100 % |`);
    console.log(`| no change | ${t2.toFixed(1)} | ${pct(t2 / t1)} | ${c2} | ${pct(c2 / c1)} |`);
    console.log(`| ${CHANGED} rows edited (1 %) | ${t3.toFixed(1)} | ${pct(t3 / t1)} | ${c3} | ${pct(c3 / c1)} |`);
    console.log(`\nfirst run by stage: ${stageMs.join(", ")}`);
    console.log(`model calls by prompt: first run ${k1}; 1 % change ${k3}`);
    console.log(`target: no-change rebuild < 5 % of the first run: ${t2 / t1 < 0.05 ? "met" : "NOT met"}; no-change model calls 0: ${c2 === 0 ? "met" : "NOT met"}`);
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
