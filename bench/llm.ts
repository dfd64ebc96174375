/**
 * LLM client throughput and overhead against the loopback OpenAI server (test/servers/openai.ts).
 *  1. 200 ms added latency, concurrency 8 / 32 / 128: achieved requests/s over the ideal (concurrency ÷
 *     latency), and over plain keep-alive HTTP POSTs (the client's own transport, no client logic) driven at
 *     the same concurrency in the same run. Target: ≥ 90 % of ideal.
 *  2. Per-request client overhead at zero latency, one request at a time: client (cache miss: hashing,
 *     cache lookup, request, cache write) and client (cache hit) against plain HTTP, with global fetch for reference.
 * The server runs in a child process (as a real server would), so client and server do not share a core.
 * Usage: npx tsx bench/llm.ts [--quick]
 */
import { spawn, type ChildProcess } from "node:child_process";
import { promises as fsp } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { createLlmClient, llmConfigSchema } from "../pipeline/llm/client.ts";
import { nodeTransport } from "../pipeline/llm/http.ts";
import { startOpenAIServer } from "../test/servers/openai.ts";

const quick = process.argv.includes("--quick");
const LATENCY_MS = 200;
const ROUNDS = quick ? 4 : 12;
const LEVELS = [8, 32, 128];
const SEQ = quick ? 200 : 600;
const TEXT = "## Unit Test\n### Input Arguments\nArguments: ```f([1, 2], 3)```\n### Output\nOutput: ```6```";

const body = (i: number, model = "bench") => ({ model, messages: [{ role: "user", content: `prompt ${i}` }], n: 1, temperature: 0.7, top_p: 0.9, max_tokens: 64 });
const fmt = (x: number, d = 1) => x.toFixed(d);
const pct = (x: number) => `${(100 * x).toFixed(1)} %`;

/** Run `total` jobs with exactly `workers` loops pulling from a counter (no promise per job). */
async function drive(total: number, workers: number, job: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (next < total) await job(next++);
    }),
  );
  return (performance.now() - t0) / 1000;
}

/** Baseline: the same keep-alive HTTP POST the client uses underneath, with no client logic. */
const raw = nodeTransport();
async function rawPost(url: string, i: number, model: string): Promise<void> {
  const res = await raw.post(`${url}/chat/completions`, { "content-type": "application/json" }, JSON.stringify(body(i, model)), 60_000);
  JSON.parse(res.text);
}

/** Reference: global fetch (undici). */
async function fetchPost(url: string, i: number, model: string): Promise<void> {
  const res = await fetch(`${url}/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body(i, model)) });
  await res.json();
}

/** This file in server mode in a child process; resolves with its URL. */
function serverProcess(latencyMs: number): Promise<{ url: string; stop: () => Promise<void> }> {
  const child: ChildProcess = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), "--serve", String(latencyMs)], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const stop = () =>
    new Promise<void>((r) => {
      child.once("exit", () => r());
      child.stdin!.end();
    });
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d) => {
      out += d;
      const m = /http:\/\/\S+\/v1/.exec(out);
      if (m) resolve({ url: m[0], stop });
    });
    child.once("exit", (code) => reject(new Error(`bench server exited with ${code}`)));
  });
}

async function serve(latencyMs: number): Promise<void> {
  const s = await startOpenAIServer({ latencyMs, script: (r) => ({ choices: Array.from({ length: r.n }, () => TEXT) }) });
  console.log(s.url);
  process.stdin.resume();
  process.stdin.on("end", () => void s.close().then(() => process.exit(0)));
}

async function main(): Promise<void> {
  const tmpRoot = await fsp.mkdtemp(path.join(os.tmpdir(), "bench-llm-"));
  try {
    // ---------------------------------------------------------------- throughput at 200 ms latency ----
    const slow = await serverProcess(LATENCY_MS);
    const rows: string[] = [];
    let worst = Infinity;
    for (const c of LEVELS) {
      const total = c * ROUNDS;
      const ideal = c / (LATENCY_MS / 1000);
      // Warm-up (not measured): opens the c keep-alive connections.
      await drive(c, c, (i) => rawPost(slow.url, -1 - i, "warm"));
      // Baseline: plain keep-alive POSTs with exactly c requests in flight.
      const rawS = await drive(total, c, (i) => rawPost(slow.url, i, "raw"));
      // Client: callers oversubscribe (2c loops); the client's queue keeps c in flight.
      const cfg = llmConfigSchema.parse({ backend: "openai", base_urls: [slow.url], model: "bench", concurrency: c, max_tokens: 64 });
      const client = createLlmClient(cfg, { cacheDir: path.join(tmpRoot, `c${c}`), stage: "bench" });
      await drive(c, c, (i) => client.chat({ messages: [{ role: "user", content: `warm ${i}` }] })); // its own connections
      const clientS = await drive(total, 2 * c, (i) => client.chat({ messages: [{ role: "user", content: `prompt ${i}` }] }));
      await client.close();
      const st = client.stats();
      if (st.requests !== total + c || st.failures) throw new Error(`bench: expected ${total} requests, got ${st.requests} (${st.failures} failures)`);
      const rawRps = total / rawS;
      const rps = total / clientS;
      worst = Math.min(worst, rps / ideal);
      rows.push(`| ${c} | ${total} | ${fmt(ideal)} | ${fmt(rawRps)} | ${fmt(rps)} | ${pct(rps / ideal)} | ${pct(rps / rawRps)} |`);
    }
    await slow.stop();
    console.log(`\n### LLM client throughput (loopback server in a child process, ${LATENCY_MS} ms latency, ${ROUNDS} rounds per level${quick ? ", --quick" : ""})\n`);
    console.log("| concurrency | requests | ideal req/s | plain HTTP req/s | client req/s | client / ideal | client / plain HTTP |");
    console.log("|---:|---:|---:|---:|---:|---:|---:|");
    for (const r of rows) console.log(r);
    console.log(`\nworst client / ideal: ${pct(worst)} (target ≥ 90 %): ${worst >= 0.9 ? "PASS" : "BELOW TARGET"}`);

    // ------------------------------------------------------------- per-request overhead, no latency ----
    const fast = await serverProcess(0);
    const warm = 50;
    for (let i = 0; i < warm; i++) await rawPost(fast.url, -1 - i, "warm");
    for (let i = 0; i < warm; i++) await fetchPost(fast.url, -1 - i, "warm");
    const cfg = llmConfigSchema.parse({ backend: "openai", base_urls: [fast.url], model: "bench", concurrency: 1 });
    const client = createLlmClient(cfg, { cacheDir: path.join(tmpRoot, "seq"), stage: "bench" });
    const ask = (i: number) => client.chat({ messages: [{ role: "user", content: `prompt ${i}` }] });
    for (let i = 0; i < warm; i++) await ask(-1 - i);
    // Interleaved in slices so that load drift on a shared machine hits every path alike.
    const SLICES = 10;
    const per = SEQ / SLICES;
    let rawS = 0;
    let fetchS = 0;
    let missS = 0;
    for (let k = 0; k < SLICES; k++) {
      rawS += await drive(per, 1, (i) => rawPost(fast.url, k * per + i, "raw"));
      fetchS += await drive(per, 1, (i) => fetchPost(fast.url, k * per + i, "fetch"));
      missS += await drive(per, 1, (i) => ask(k * per + i));
    }
    const hitS = await drive(SEQ, 1, ask);
    await client.close();
    await fast.stop();
    raw.close();
    const us = (s: number) => (s * 1e6) / SEQ;
    console.log(`\n### LLM client per-request overhead (zero latency, one at a time, ${SEQ} requests)\n`);
    console.log("| path | µs / request | ratio to plain HTTP | overhead µs |");
    console.log("|---|---:|---:|---:|");
    console.log(`| plain keep-alive HTTP POST (baseline) | ${fmt(us(rawS), 0)} | 1.00 | 0 |`);
    console.log(`| global fetch (reference) | ${fmt(us(fetchS), 0)} | ${(fetchS / rawS).toFixed(2)} | ${fmt(us(fetchS) - us(rawS), 0)} |`);
    console.log(`| client, cache miss (hash, lookup, request, cache write) | ${fmt(us(missS), 0)} | ${(missS / rawS).toFixed(2)} | ${fmt(us(missS) - us(rawS), 0)} |`);
    console.log(`| client, cache hit (no request) | ${fmt(us(hitS), 0)} | ${(hitS / rawS).toFixed(2)} | ${fmt(us(hitS) - us(rawS), 0)} |`);
  } finally {
    await fsp.rm(tmpRoot, { recursive: true, force: true });
  }
}

const serveAt = process.argv.indexOf("--serve");
if (serveAt >= 0) await serve(Number(process.argv[serveAt + 1]));
else await main();
