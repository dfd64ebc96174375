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
import { exited } from "./helpers/hold.ts";

const ROOT = path.resolve(__dirname, "..");
const DEMO_ROWS = path.join(ROOT, "data/demo/tulu-demo.jsonl");
const HELD_BACK = "demo-evol_codealpaca-0009"; // gcd (no duplicate in the file): added in the last step
let server: OpenAIServer;
let dir: string;

/** Per-test override of the scripted model (a barrier, a kill point); the plain scripted model otherwise. */
let hook: ((req: ScriptRequest) => ScriptedReply | Promise<ScriptedReply>) | undefined;
const script = (req: ScriptRequest) => (hook ? hook(req) : utgenModel(req));

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
      `llm: {backend: openai, base_urls: [${JSON.stringify(server.url)}], model: test-model, max_retries: 0, seed: 7}`,
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
    // A barrier, not a delay: every request waits until 9 are waiting at once (more than the old fixed 8
    // records in flight), then all are answered. If the runner cannot have 9 in flight, the barrier gives
    // up after 20 s and the test fails on the count — never on the machine's speed.
    const need = 9;
    const waiting: (() => void)[] = [];
    let open = true;
    const releaseAll = () => {
      open = false;
      for (const r of waiting.splice(0)) r();
    };
    const giveUp = setTimeout(releaseAll, 20_000);
    hook = async (req) => {
      if (open) {
        await new Promise<void>((r) => {
          waiting.push(r);
          if (waiting.length >= need) releaseAll();
        });
      }
      return utgenModel(req);
    };
    server.resetMaxInFlight();
    try {
      const r = await cli(["--set", "rationalize.llm.temperature=0.3", "--set", "llm.concurrency=16"]);
      expect(r.code, r.err).toBe(0);
    } finally {
      hook = undefined;
      clearTimeout(giveUp);
      releaseAll();
    }
    expect(server.maxInFlight).toBeGreaterThanOrEqual(need);
    // never more than the client's 16 slots
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

  it("kill -9 during attack, then a re-run, repeats no completed and persisted model call", async () => {
    // A top-up (more samples of a prompt) differs from the first request only by its seed (llm.seed is set).
    const callKey = (b: any) => JSON.stringify(b.messages) + `|n=${b.n ?? 1}|seed=${b.seed}`;
    const multiset = (bodies: any[]) => {
      const m = new Map<string, number>();
      for (const b of bodies) m.set(callKey(b), (m.get(callKey(b)) ?? 0) + 1);
      return m;
    };
    // the same work from a clean cache, uninterrupted: the reference calls
    const from0 = server.requests.length;
    const clean = await cli(["--run-dir", path.join(dir, "clean"), "--set", "llm.concurrency=2"]);
    expect(clean.code, clean.err).toBe(0);
    const reference = multiset(server.requests.slice(from0));

    // The kill point is the server's: after the 3rd UTGen (attack) response is sent, every later request is
    // held unanswered; once the cache holds every answered sample, the runner is killed (kill -9). Answered
    // = completed and persisted; held = in flight at the kill (counted here).
    const runDir = path.join(dir, "killed");
    const answered: any[] = [];
    const held: any[] = [];
    let utgenAnswered = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    hook = async (req) => {
      if (utgenAnswered >= 3) {
        held.push(req.body);
        await gate;
        return { drop: true };
      }
      if (promptKind(String(req.messages.at(-1)?.content ?? "")) === "utgen") utgenAnswered++;
      answered.push(req.body);
      return utgenModel(req);
    };
    try {
      const child = spawn(process.execPath, [path.join(ROOT, "pipeline/run.mjs"), "--config", path.join(dir, "c.yaml"), "--run-dir", runDir, "--set", "llm.concurrency=2"], {
        cwd: ROOT,
        detached: true,
        stdio: "ignore",
      });
      const samples = () => answered.reduce((a, b) => a + (b.n ?? 1), 0);
      // wait (no time limit but the test's) for: the kill point reached, every answered sample in the cache
      for (;;) {
        if (child.exitCode !== null) throw new Error(`the run ended (${child.exitCode}) before the kill point`);
        if (utgenAnswered >= 3 && held.length > 0 && cachedSamples(path.join(runDir, "cache")) === samples()) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      process.kill(-child.pid!, "SIGKILL");
      await exited(child);
    } finally {
      hook = undefined;
      release();
    }
    expect(held.length).toBeGreaterThan(0);
    expect(held.length).toBeLessThanOrEqual(2); // llm.concurrency

    const from2 = server.requests.length;
    const resumed = await cli(["--run-dir", runDir, "--set", "llm.concurrency=2"]);
    expect(resumed.code, resumed.err).toBe(0);
    expect(resumed.err).toContain("perturb: up to date");
    const again = server.requests.slice(from2);
    // no completed and persisted call is sent again ...
    const persisted = new Set(answered.map(callKey));
    expect(again.filter((b) => persisted.has(callKey(b))).map(callKey)).toEqual([]);
    // ... the only calls of the killed run that repeat are the ones held in flight ...
    const heldKeys = new Set(held.map(callKey));
    const killedKeys = new Set([...answered, ...held].map(callKey));
    for (const b of again) if (killedKeys.has(callKey(b))) expect(heldKeys.has(callKey(b))).toBe(true);
    // ... and the killed run's answered calls plus the re-run's are exactly the uninterrupted run's calls.
    expect(Object.fromEntries(multiset([...answered, ...again]))).toEqual(Object.fromEntries(reference));
    const examples = (d: string) =>
      ["train", "valid"].flatMap((s) => readFileSync(path.join(d, "emit-sft", "sft", `${s}.messages.jsonl`), "utf8").split("\n").filter(Boolean)).sort();
    expect(examples(runDir)).toEqual(examples(path.join(dir, "clean")));
  });
});

/** Complete lines in the LLM response cache's segments (one per persisted sample). */
function cachedSamples(cacheDir: string): number {
  const d = path.join(cacheDir, "llm");
  if (!existsSync(d)) return 0;
  let n = 0;
  for (const f of readdirSync(d).filter((x) => x.endsWith(".jsonl"))) n += (readFileSync(path.join(d, f), "utf8").match(/\n/g) ?? []).length;
  return n;
}
