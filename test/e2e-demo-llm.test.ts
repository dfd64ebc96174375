// End to end on an OpenAI-compatible backend: the real runner on the demo rows with the loopback server
// standing in for the model (answers scripted by prompt content: corruptions, UTGen tests, rationales).
// Proves the incremental contract in model calls: a re-run sends nothing, a rationalize-only change sends
// only rationalization prompts, and one added source row costs only that row's calls.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { main } from "../pipeline/cli.ts";
import { startOpenAIServer, type OpenAIServer, type ScriptRequest, type ScriptedReply } from "./servers/openai.ts";
import { promptKind, utgenModel, type PromptKind } from "./servers/utgen-model.ts";

const ROOT = path.resolve(__dirname, "..");
const DEMO_ROWS = path.join(ROOT, "data/demo/tulu-demo.jsonl");
const HELD_BACK = "demo-evol_codealpaca-0009"; // gcd (no duplicate in the file): added in the last step
let server: OpenAIServer;
let dir: string;

let delayMs = 0;
const script = (req: ScriptRequest): ScriptedReply => utgenModel(req, delayMs);

function rows(withHeldBack: boolean): string {
  return readFileSync(DEMO_ROWS, "utf8")
    .split("\n")
    .filter((l) => l.trim() && (withHeldBack || !l.includes(`"id":"${HELD_BACK}"`)))
    .join("\n") + "\n";
}

async function cli(args: string[] = []) {
  const err: string[] = [];
  const code = await main(["--config", path.join(dir, "c.yaml"), ...args], { stdout: () => {}, stderr: (l) => err.push(l) });
  return { code, err: err.join("\n") };
}

function newRequests(from: number): { kind: PromptKind; text: string }[] {
  return server.requests.slice(from).map((b) => {
    const text = b.messages.at(-1).content as string;
    return { kind: promptKind(text), text };
  });
}

function countSft(): { n: number; first: any } {
  const read = (f: string) => readFileSync(path.join(dir, "run", "emit-sft", "sft", f), "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
  const all = [...read("train.messages.jsonl"), ...read("valid.messages.jsonl")];
  return { n: all.length, first: all[0] };
}

beforeAll(async () => {
  server = await startOpenAIServer({ script });
  dir = mkdtempSync(path.join(tmpdir(), "utgen-e2e-llm-"));
  writeFileSync(path.join(dir, "rows.jsonl"), rows(false));
  writeFileSync(
    path.join(dir, "c.yaml"),
    [
      `run: {dir: ${JSON.stringify(path.join(dir, "run"))}, shard_size: 5}`,
      `source: {kind: local, path: ${JSON.stringify(path.join(dir, "rows.jsonl"))}}`,
      `llm: {backend: openai, base_urls: [${JSON.stringify(server.url)}], model: test-model, max_retries: 0}`,
      "filter: {tokenizer: chars, max_prompt_tokens: 8000}",
      "perturb: {n_bugs: 2}",
      "attack: {attempts: 3}",
      "",
    ].join("\n"),
  );
});
afterAll(async () => {
  await server?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("demo rows end to end on an OpenAI-compatible backend (loopback)", () => {
  it("builds an SFT set from model corruptions, tests and rationales", async () => {
    const r = await cli();
    expect(r.code, r.err).toBe(0);
    const reqs = newRequests(0);
    expect(reqs.filter((q) => q.kind === "other")).toEqual([]);
    expect(reqs.filter((q) => q.kind === "corrupt").length).toBeGreaterThan(10);
    expect(reqs.some((q) => q.text.includes("def gcd"))).toBe(false);
    const { n, first } = countSft();
    expect(n).toBeGreaterThan(0);
    expect(first.metadata).toMatchObject({ bug_origin: "llm", sampler: "llm", rationale_source: "llm" });
    expect(first.messages[1].content).toContain("Error Pattern: small inputs");
    expect(first.messages[1].content).toMatch(/returns `.+`\.\nOutput: ```/);
  });

  it("a re-run sends no request", async () => {
    const before = server.requests.length;
    const r = await cli();
    expect(r.code, r.err).toBe(0);
    expect(server.requests.length).toBe(before);
  });

  it("a rationalize-only change sends only rationalization prompts", async () => {
    const before = server.requests.length;
    const tests = countSft().n;
    const r = await cli(["--set", "rationalize.llm.temperature=0.2"]);
    expect(r.code, r.err).toBe(0);
    const reqs = newRequests(before);
    // one per distinct test (the demo has a duplicated task whose identical prompts share cache entries)
    expect(reqs.length).toBeGreaterThan(0);
    expect(reqs.length).toBeLessThanOrEqual(tests);
    expect(reqs.every((q) => q.kind === "rationalize")).toBe(true);
    expect(new Set(reqs.map((q) => q.text)).size).toBe(reqs.length);
    expect(r.err).toContain("perturb: up to date");
    expect(r.err).toContain("attack: up to date");
  });

  it("keeps llm.concurrency requests in flight (stage concurrency follows the client's slots)", async () => {
    delayMs = 100;
    server.resetMaxInFlight();
    try {
      const r = await cli(["--set", "rationalize.llm.temperature=0.3", "--set", "llm.concurrency=16"]);
      expect(r.code, r.err).toBe(0);
    } finally {
      delayMs = 0;
    }
    // more than the old fixed 8 records in flight, never more than the client's 16 slots
    expect(server.maxInFlight).toBeGreaterThan(8);
    expect(server.maxInFlight).toBeLessThanOrEqual(16);
  });

  it("one added source row costs only that row's model calls", async () => {
    const before = server.requests.length;
    const n0 = countSft().n;
    writeFileSync(path.join(dir, "rows.jsonl"), rows(true));
    const r = await cli(["--set", "rationalize.llm.temperature=0.2"]);
    expect(r.code, r.err).toBe(0);
    const reqs = newRequests(before);
    expect(reqs.length).toBeGreaterThan(0);
    for (const q of reqs) expect(q.text).toContain("gcd(");
    expect(reqs.filter((q) => q.kind === "corrupt")).toHaveLength(1);
    expect(reqs.filter((q) => q.kind === "utgen").length).toBeLessThanOrEqual(2 * 3); // n_bugs × attempts
    expect(countSft().n).toBeGreaterThan(n0);
  });

  it("kill -9 during attack, then a re-run, repeats no completed model call", async () => {
    const perPrompt = (from: number) => {
      const m = new Map<string, number>();
      for (const b of server.requests.slice(from)) {
        const k = JSON.stringify(b.messages) + `|n=${b.n}`;
        m.set(k, (m.get(k) ?? 0) + 1);
      }
      return m;
    };
    delayMs = 40;
    try {
      // the same work from a clean cache, uninterrupted: the reference request counts
      const from0 = server.requests.length;
      const clean = await cli(["--run-dir", path.join(dir, "clean"), "--set", "llm.concurrency=2"]);
      expect(clean.code, clean.err).toBe(0);
      const reference = perPrompt(from0);

      const from1 = server.requests.length;
      const runDir = path.join(dir, "killed");
      const child = spawn(process.execPath, [path.join(ROOT, "pipeline/run.mjs"), "--config", path.join(dir, "c.yaml"), "--run-dir", runDir, "--set", "llm.concurrency=2"], {
        cwd: ROOT,
        detached: true,
        stdio: "ignore",
      });
      const shards = path.join(runDir, "attack", "shards");
      let killed = false;
      for (const deadline = Date.now() + 120_000; Date.now() < deadline && child.exitCode === null; ) {
        if (existsSync(shards) && readdirSync(shards).some((f) => f.endsWith(".done.json"))) {
          process.kill(-child.pid!, "SIGKILL");
          killed = true;
          break;
        }
        await new Promise((r) => setTimeout(r, 10));
      }
      expect(killed, "the run was still in the attack stage when killed").toBe(true);
      await new Promise((r) => child.once("exit", r));
      const from2 = server.requests.length;
      const resumed = await cli(["--run-dir", runDir, "--set", "llm.concurrency=2"]);
      expect(resumed.code, resumed.err).toBe(0);
      expect(resumed.err).toContain("perturb: up to date");

      // every request beyond the reference is a call that was in flight at the kill (at most llm.concurrency)
      let repeated = 0;
      for (const [k, n] of perPrompt(from1)) repeated += Math.max(0, n - (reference.get(k) ?? 0));
      expect(repeated).toBeLessThanOrEqual(2);
      // the killed run's completed calls (perturb's at least) were not sent again
      const total = [...reference.values()].reduce((a, b) => a + b, 0);
      expect(from2 - from1).toBeGreaterThan(0);
      expect(server.requests.length - from2).toBeLessThan(total);
      expect(server.requests.length - from1).toBeLessThanOrEqual(total + 2);
      const examples = (d: string) =>
        ["train", "valid"].flatMap((s) => readFileSync(path.join(d, "emit-sft", "sft", `${s}.messages.jsonl`), "utf8").split("\n").filter(Boolean)).sort();
      expect(examples(runDir)).toEqual(examples(path.join(dir, "clean")));
    } finally {
      delayMs = 0;
    }
  });
});
