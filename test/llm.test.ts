/**
 * LLM client against the project's loopback OpenAI server: request body (every sampling parameter),
 * n > 1 ordering, per-sample cache (top-ups ask only for missing samples; survives a new client; torn
 * entries are misses), retries on 429 (Retry-After honoured) / 500 / timeouts / dropped connections,
 * one-line failures, servers that ignore n, load spread over several URLs, stats and the heuristic backend.
 */
import { afterEach, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { promises as fsp } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { createLlmClient, llmConfigSchema, LLM_PERF_KEYS, LlmError, listModels, type LlmConfig } from "../pipeline/llm/client.ts";
import { startOpenAIServer, type OpenAIServer, type ScriptedReply } from "./servers/openai.ts";

const servers: OpenAIServer[] = [];
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  await Promise.all(dirs.splice(0).map((d) => fsp.rm(d, { recursive: true, force: true })));
});

async function tmp(): Promise<string> {
  const d = await fsp.mkdtemp(path.join(os.tmpdir(), "llm-test-"));
  dirs.push(d);
  return d;
}
async function server(script: (r: any) => ScriptedReply | Promise<ScriptedReply>, latencyMs?: number) {
  const s = await startOpenAIServer({ script, latencyMs, models: [{ id: "base" }, { id: "r42-e3", parent: "base" }] });
  servers.push(s);
  return s;
}
function cfg(urls: string[], over: Record<string, unknown> = {}): LlmConfig {
  return llmConfigSchema.parse({ backend: "openai", base_urls: urls, model: "base", ...over });
}
const fast = { retry: { baseMs: 5, maxMs: 20 } };
const msgs = (t: string) => [{ role: "user" as const, content: t }];
/** Echo script: choice i says which request and sample it came from. */
const echo = (r: any): ScriptedReply => ({ choices: Array.from({ length: r.n }, (_, i) => `req${r.index}-c${i}`) });

describe("llm config", () => {
  it("defaults to the heuristic backend with the paper's sampling", () => {
    const c = llmConfigSchema.parse({});
    expect(c.backend).toBe("heuristic");
    expect(c.temperature).toBe(0.7);
    expect(c.top_p).toBe(0.9);
    expect(c.api_key_env).toBe("OPENAI_API_KEY");
  });
  it("is strict and lists the performance-only keys", () => {
    expect(llmConfigSchema.safeParse({ temprature: 0.2 }).success).toBe(false);
    expect(llmConfigSchema.safeParse({ base_urls: ["localhost:8000"] }).success).toBe(false);
    expect(llmConfigSchema.safeParse({ top_p: 0 }).success).toBe(false);
    expect(LLM_PERF_KEYS).toContain("concurrency");
    expect(LLM_PERF_KEYS).not.toContain("temperature");
  });
  it("heuristic backend refuses chat with a one-line LlmError", async () => {
    const c = createLlmClient(llmConfigSchema.parse({}), { cacheDir: await tmp(), stage: "perturb" });
    expect(c.backend).toBe("heuristic");
    await expect(c.chat({ messages: msgs("x") })).rejects.toThrow(/llm\.backend is heuristic: this stage uses its built-in generator/);
  });
  it("openai backend without a model is a one-line user error", async () => {
    expect(() => createLlmClient(llmConfigSchema.parse({ backend: "openai" }), { cacheDir: "/nonexistent", stage: "attack" })).toThrow(/llm\.model is required/);
  });
});

describe("llm client", () => {
  it("sends every sampling parameter and extras, and orders n choices by index", async () => {
    const s = await server((r) => ({ choices: Array.from({ length: r.n }, (_, i) => `c${i}`) }));
    // Reverse the choice order on the wire: the client must sort by `index`.
    const reversing: typeof fetch = async (url, init) => {
      const res = await fetch(url, init);
      const j = (await res.json()) as { choices: unknown[] };
      j.choices.reverse();
      return new Response(JSON.stringify(j), { status: res.status, headers: res.headers });
    };
    const c = createLlmClient(cfg([s.url], { seed: 7, stop: ["</s>"], extra_body: { top_k: 20 }, max_tokens: 300 }), { cacheDir: await tmp(), stage: "t", fetch: reversing });
    const r = await c.chat({ messages: msgs("hello"), n: 3, model: "r42-e3", sampling: { temperature: 0.2 } });
    expect(r.texts).toEqual(["c0", "c1", "c2"]);
    expect(r.finishReasons).toEqual(["stop", "stop", "stop"]);
    expect(r.cached).toBe(0);
    expect(s.requests).toHaveLength(1);
    const b = s.requests[0];
    expect(b).toMatchObject({ model: "r42-e3", n: 3, temperature: 0.2, top_p: 0.9, max_tokens: 300, seed: 7, stop: ["</s>"], top_k: 20 });
    expect(b.messages).toEqual(msgs("hello"));
    expect(r.usage.completion_tokens).toBe(3);
  });

  it("caches per sample: a repeat is free, a larger n asks only for the new samples (seed shifted)", async () => {
    const s = await server(echo);
    const dir = await tmp();
    const c = createLlmClient(cfg([s.url], { seed: 1 }), { cacheDir: dir, stage: "t" });
    const a = await c.chat({ messages: msgs("p"), n: 2, templateHash: "T1" });
    expect(a.texts).toEqual(["req0-c0", "req0-c1"]);
    const again = await c.chat({ messages: msgs("p"), n: 2, templateHash: "T1" });
    expect(again.texts).toEqual(a.texts);
    expect(again.cached).toBe(2);
    expect(again.usage).toEqual({ prompt_tokens: 0, completion_tokens: 0 });
    const more = await c.chat({ messages: msgs("p"), n: 5, templateHash: "T1" });
    expect(more.texts).toEqual(["req0-c0", "req0-c1", "req1-c0", "req1-c1", "req1-c2"]);
    expect(more.cached).toBe(2);
    expect(s.requests[1]).toMatchObject({ n: 3, seed: 3 });
    // Anything that determines the answer changes the key: template hash, sampling, model.
    await c.chat({ messages: msgs("p"), n: 1, templateHash: "T2" });
    await c.chat({ messages: msgs("p"), n: 1, templateHash: "T1", sampling: { top_p: 0.5 } });
    await c.chat({ messages: msgs("p"), n: 1, templateHash: "T1", model: "r42-e3" });
    expect(s.requests).toHaveLength(5);
    expect(c.stats()).toMatchObject({ requests: 5, cacheHits: 4, failures: 0 });
    await c.close();

    // A new client (a new process) on the same cache folder: no request at all.
    const c2 = createLlmClient(cfg([s.url], { seed: 1, concurrency: 3, timeout_s: 5 }), { cacheDir: dir, stage: "t2" });
    const r2 = await c2.chat({ messages: msgs("p"), n: 5, templateHash: "T1" });
    expect(r2.texts).toEqual(more.texts);
    expect(r2.cached).toBe(5);
    expect(s.requests).toHaveLength(5);
  });

  it("first: samples before it are neither requested nor read; a later range costs only its own samples", async () => {
    const s = await server(echo);
    const c = createLlmClient(cfg([s.url], { seed: 1 }), { cacheDir: await tmp(), stage: "t" });
    const a = await c.chat({ messages: msgs("p"), n: 5, first: 3 });
    expect(a.texts).toEqual(["", "", "", "req0-c0", "req0-c1"]);
    expect(a.finishReasons.slice(0, 3)).toEqual(["skipped", "skipped", "skipped"]);
    expect(a.cached).toBe(0);
    expect(a.requested).toBe(2);
    expect(s.requests[0]).toMatchObject({ n: 2, seed: 4 }); // seed shifted by the first index asked for
    const b = await c.chat({ messages: msgs("p"), n: 6, first: 4 });
    expect(b.texts.slice(4)).toEqual(["req0-c1", "req1-c0"]);
    expect(b.cached).toBe(1);
    expect(b.requested).toBe(1);
    expect(s.requests[1]).toMatchObject({ n: 1, seed: 6 });
    await expect(c.chat({ messages: msgs("p"), n: 2, first: 2 })).rejects.toThrow(/first must be an integer in \[0, n\)/);
    expect(s.requests).toHaveLength(2);
    await c.close();
  });

  it("ignores a torn last line and garbage lines in a cache segment: those samples are asked again", async () => {
    const s = await server(echo);
    const dir = await tmp();
    const a = createLlmClient(cfg([s.url]), { cacheDir: dir, stage: "t" });
    await a.chat({ messages: msgs("kept") });
    await a.chat({ messages: msgs("torn") });
    await a.close();
    const segs = (await fsp.readdir(path.join(dir, "llm"))).filter((f) => f.endsWith(".jsonl"));
    expect(segs).toHaveLength(1);
    const f = path.join(dir, "llm", segs[0]);
    const lines = (await fsp.readFile(f, "utf8")).split("\n");
    expect(lines).toHaveLength(3); // two entries and the empty string after the last newline
    // A garbage line first, then the good entry, then the second entry cut in the middle (kill -9 mid-append).
    await fsp.writeFile(f, "{not json\n" + lines[0] + "\n" + lines[1].slice(0, lines[1].length >> 1));
    const logs: string[] = [];
    const b = createLlmClient(cfg([s.url]), { cacheDir: dir, stage: "t", log: (m) => logs.push(m) });
    const kept = await b.chat({ messages: msgs("kept") });
    expect(kept).toMatchObject({ cached: 1, texts: ["req0-c0"] });
    const torn = await b.chat({ messages: msgs("torn") });
    expect(torn).toMatchObject({ cached: 0, texts: ["req2-c0"] });
    expect(logs.some((l) => /ignored 2 torn or unreadable line\(s\)/.test(l))).toBe(true);
    await b.close();
    // The re-asked sample is appended to b's own segment and found by the next process.
    const c = createLlmClient(cfg([s.url]), { cacheDir: dir, stage: "t" });
    expect(await c.chat({ messages: msgs("torn") })).toMatchObject({ cached: 1, texts: ["req2-c0"] });
    expect(s.requests).toHaveLength(3);
  });

  it("an unusable cache folder is a one-line error", async () => {
    const s = await server(echo);
    const file = path.join(await tmp(), "not-a-dir");
    await fsp.writeFile(file, "x");
    const c = createLlmClient(cfg([s.url]), { cacheDir: file, stage: "t" });
    await expect(c.chat({ messages: msgs("x") })).rejects.toThrow(/^cannot read the LLM response cache under .*not-a-dir\/llm \(ENOTDIR\): fix its permissions or run\.cache_dir$/);
  });

  it("honours Retry-After on 429 and retries 500s, counting retries", async () => {
    const s = await server((r) => (r.index === 0 ? { status: 429, retryAfterS: 0.3 } : r.index === 1 ? { status: 500 } : echo(r)));
    const logs: string[] = [];
    const c = createLlmClient(cfg([s.url]), { cacheDir: await tmp(), stage: "t", ...fast, log: (m) => logs.push(m) });
    const r = await c.chat({ messages: msgs("x") });
    expect(r.texts).toEqual(["req2-c0"]);
    expect(c.stats()).toMatchObject({ requests: 1, retries: 2, failures: 0 });
    // The server is cooled down for its Retry-After (the two-URL test below shows requests avoid it meanwhile).
    expect(logs.some((l) => /answered 429 \(scripted 429\) \(Retry-After 0\.3 s: server cooling down\); retry 1\/6/.test(l))).toBe(true);
    expect(logs.some((l) => /answered 500 .*retry 2\/6 in 0\.0 s/.test(l))).toBe(true);
  });

  it("gives up after max_retries with a one-line error naming server, status and what to do", async () => {
    const s = await server(() => ({ status: 503, message: "engine\noverloaded" }));
    const c = createLlmClient(cfg([s.url], { max_retries: 2 }), { cacheDir: await tmp(), stage: "t", ...fast });
    const err = await c.chat({ messages: msgs("x") }).catch((e) => e);
    expect(err).toBeInstanceOf(LlmError);
    expect(err.message).not.toContain("\n");
    expect(err.message).toContain(s.url);
    expect(err.message).toMatch(/answered 503 \(engine overloaded\) after 3 attempts: check the server log, or raise llm.max_retries/);
    expect(s.requests).toHaveLength(3);
    expect(c.stats()).toMatchObject({ retries: 2, failures: 1, requests: 0 });
  });

  it("names the key variable on 401", async () => {
    const s = await server(() => ({ status: 401, message: "Invalid API key" }));
    const c = createLlmClient(cfg([s.url], { api_key_env: "UTGEN_MISSING_KEY" }), { cacheDir: await tmp(), stage: "t", ...fast });
    await expect(c.chat({ messages: msgs("x") })).rejects.toThrow(/answered 401 \(Invalid API key\): set a valid API key in \$UTGEN_MISSING_KEY \(llm.api_key_env\)$/);
    expect(s.headers[0].authorization).toBeUndefined();
  });

  it("does not retry client errors (404 unknown adapter)", async () => {
    const s = await server((r) => (r.model === "nope" ? { status: 404, message: "The model `nope` does not exist." } : echo(r)));
    const c = createLlmClient(cfg([s.url]), { cacheDir: await tmp(), stage: "t", ...fast });
    const err = await c.chat({ messages: msgs("x"), model: "nope" }).catch((e) => e);
    expect(err.message).toMatch(/answered 404 .*check llm.model \/ the adapter name "nope"/);
    expect(err.code).toBe(2);
    expect(s.requests).toHaveLength(1);
  });

  it("retries a reply slower than timeout_s, then fails naming the timeout", async () => {
    // the retry is answered at once: 1 s is far beyond its round trip under any load
    const s = await server((r) => (r.index === 0 ? { delayMs: 3000 } : echo(r)));
    const c = createLlmClient(cfg([s.url], { timeout_s: 1 }), { cacheDir: await tmp(), stage: "t", ...fast });
    expect((await c.chat({ messages: msgs("x") })).texts).toEqual(["req1-c0"]);
    const s2 = await server(() => ({ delayMs: 1500 }));
    const c2 = createLlmClient(cfg([s2.url], { timeout_s: 0.2, max_retries: 1 }), { cacheDir: await tmp(), stage: "t", ...fast });
    await expect(c2.chat({ messages: msgs("x") })).rejects.toThrow(/did not answer within 0.2 s after 2 attempts: raise llm.timeout_s/);
  });

  it("retries dropped connections and reports unreachable servers", async () => {
    const s = await server((r) => (r.index === 0 ? { drop: true } : echo(r)));
    const c = createLlmClient(cfg([s.url]), { cacheDir: await tmp(), stage: "t", ...fast });
    expect((await c.chat({ messages: msgs("x") })).texts).toEqual(["req1-c0"]);
    const dead = await server(echo);
    const url = dead.url;
    await dead.close();
    const c2 = createLlmClient(cfg([url], { max_retries: 1 }), { cacheDir: await tmp(), stage: "t", ...fast });
    await expect(c2.chat({ messages: msgs("x") })).rejects.toThrow(/connection failed \(ECONNREFUSED\) after 2 attempts: start the server or fix llm.base_urls/);
  });

  it("fails on malformed JSON without caching anything, and keeps truncated choices with finish_reason length", async () => {
    const s = await server((r) => (r.messages[0].content === "bad" ? { malformed: true } : { truncated: true, choices: Array.from({ length: r.n }, () => "Arguments: ```f([1,") }));
    const dir = await tmp();
    const c = createLlmClient(cfg([s.url]), { cacheDir: dir, stage: "t", ...fast });
    await expect(c.chat({ messages: msgs("bad") })).rejects.toThrow(/sent a body that is not JSON .*OpenAI-compatible/);
    expect(s.requests).toHaveLength(1);
    const r = await c.chat({ messages: msgs("cut"), n: 2 });
    expect(r.finishReasons).toEqual(["length", "length"]);
    expect(r.texts[0]).toBe("Arguments: ```f([1,");
    expect(c.stats().failures).toBe(1);
  });

  it("tops up when a server ignores n (one choice per request)", async () => {
    const s = await server((r) => ({ choices: [`only-${r.index}`] }));
    const c = createLlmClient(cfg([s.url]), { cacheDir: await tmp(), stage: "t" });
    const r = await c.chat({ messages: msgs("x"), n: 3 });
    expect(r.texts).toEqual(["only-0", "only-1", "only-2"]);
    expect(s.requests.map((b) => b.n)).toEqual([3, 2, 1]);
  });

  it("spreads load over several base URLs and sends the API key from the named variable", async () => {
    const a = await server(echo, 30);
    const b = await server(echo, 30);
    process.env.UTGEN_TEST_KEY = "sk-test";
    try {
      const c = createLlmClient(cfg([a.url, b.url], { api_key_env: "UTGEN_TEST_KEY", concurrency: 4 }), { cacheDir: await tmp(), stage: "t" });
      await Promise.all(Array.from({ length: 8 }, (_, i) => c.chat({ messages: msgs(`q${i}`) })));
      expect(a.requests.length).toBeGreaterThan(0);
      expect(b.requests.length).toBeGreaterThan(0);
      expect(a.requests.length + b.requests.length).toBe(8);
      expect(a.headers[0].authorization).toBe("Bearer sk-test");
    } finally {
      delete process.env.UTGEN_TEST_KEY;
    }
  });

  it("a 429 cools that server down: the retry and later requests go to the other URL", async () => {
    const limited = await server(() => ({ status: 429, retryAfterS: 120 }));
    const ok = await server(echo);
    const c = createLlmClient(cfg([limited.url, ok.url], { concurrency: 1 }), { cacheDir: await tmp(), stage: "t", ...fast });
    for (let i = 0; i < 4; i++) expect((await c.chat({ messages: msgs(`q${i}`) })).texts).toHaveLength(1);
    expect(limited.requests.length).toBeLessThanOrEqual(1);
    expect(ok.requests).toHaveLength(4);
  });

  it("cache entries written before a kill -9 are all usable by the next process", async () => {
    const s = await server(echo);
    const dir = await tmp();
    const client = path.resolve(__dirname, "../pipeline/llm/client.ts");
    const script = path.join(dir, "child.mts");
    await fsp.writeFile(
      script,
      `import { createLlmClient, llmConfigSchema } from ${JSON.stringify(client)};
const c = createLlmClient(llmConfigSchema.parse({ backend: "openai", base_urls: [${JSON.stringify(s.url)}], model: "base" }), { cacheDir: ${JSON.stringify(dir)}, stage: "child" });
for (let i = 0; ; i++) { const r = await c.chat({ messages: [{ role: "user", content: "k" + i }], n: 2 }); console.log("done " + i + " " + r.texts.join(",")); }
`,
    );
    const child = spawn(process.execPath, ["--import", "tsx", script], { cwd: path.resolve(__dirname, ".."), stdio: ["ignore", "pipe", "inherit"] });
    const done = new Map<number, string[]>();
    await new Promise<void>((resolve, reject) => {
      let buf = "";
      child.stdout!.on("data", (d) => {
        buf += d;
        for (const m of buf.matchAll(/^done (\d+) (.*)$/gm)) done.set(Number(m[1]), m[2].split(","));
        if (done.size >= 20) {
          child.kill("SIGKILL");
          resolve();
        }
      });
      child.once("exit", (code, sig) => (sig === "SIGKILL" ? resolve() : reject(new Error(`child exited with ${code}`))));
    });
    await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(null) : child.once("exit", r)));
    const before = s.requests.length;
    const c = createLlmClient(cfg([s.url]), { cacheDir: dir, stage: "t" });
    for (const [i, texts] of done) {
      const r = await c.chat({ messages: msgs("k" + i), n: 2 });
      expect(r.cached).toBe(2);
      expect(r.texts).toEqual(texts);
    }
    expect(s.requests.length).toBe(before);
  });

  it("never has more than `concurrency` requests in flight", async () => {
    const s = await server(echo, 20);
    const dir = await tmp();
    const c = createLlmClient(cfg([s.url], { concurrency: 3 }), { cacheDir: dir, stage: "t" });
    const first = await Promise.all(Array.from({ length: 12 }, (_, i) => c.chat({ messages: msgs(`q${i}`) })));
    expect(s.maxInFlight).toBeLessThanOrEqual(3);
    expect(s.maxInFlight).toBeGreaterThan(1);
    // Concurrent cache appends (group-committed) are all readable by the next process.
    await c.close();
    const c2 = createLlmClient(cfg([s.url]), { cacheDir: dir, stage: "t" });
    const again = await Promise.all(Array.from({ length: 12 }, (_, i) => c2.chat({ messages: msgs(`q${i}`) })));
    expect(again.map((r) => r.cached)).toEqual(Array(12).fill(1));
    expect(again.map((r) => r.texts[0])).toEqual(first.map((r) => r.texts[0]));
    expect(s.requests).toHaveLength(12);
  });

  it("requests_per_second caps how many requests start in any window", async () => {
    const arrivals: number[] = [];
    const s = await server((r) => {
      arrivals.push(performance.now());
      return echo(r);
    });
    // 4 per second (a sliding window of 1 s): 8 requests start as 4 at once, then 4 one second later;
    // unthrottled all 8 would arrive within a few ms. Margins allow for jitter in the timestamps.
    const c = createLlmClient(cfg([s.url], { concurrency: 8, requests_per_second: 4 }), { cacheDir: await tmp(), stage: "t" });
    await Promise.all(Array.from({ length: 8 }, (_, i) => c.chat({ messages: msgs(`r${i}`) })));
    expect(arrivals).toHaveLength(8);
    const t = [...arrivals].sort((a, b) => a - b);
    for (let i = 4; i < t.length; i++) expect(t[i] - t[i - 4], `starts ${i - 4}..${i}`).toBeGreaterThanOrEqual(900);
  });

  it("sends identical concurrent requests once", async () => {
    const s = await server(echo, 20);
    const c = createLlmClient(cfg([s.url]), { cacheDir: await tmp(), stage: "t" });
    const rs = await Promise.all([1, 2, 3].map(() => c.chat({ messages: msgs("same"), n: 2 })));
    expect(s.requests).toHaveLength(1);
    expect(rs[2].texts).toEqual(rs[0].texts);
  });

  it("fingerprint holds model and sampling, never URLs or concurrency", async () => {
    const c = createLlmClient(cfg(["http://127.0.0.1:9/v1"], { concurrency: 5 }), { cacheDir: await tmp(), stage: "t" });
    const fp = c.fingerprint();
    expect(fp).toMatchObject({ backend: "openai", model: "base", temperature: 0.7, top_p: 0.9 });
    expect(JSON.stringify(fp)).not.toContain("127.0.0.1");
    expect(fp).not.toHaveProperty("concurrency");
  });

  it("lists served models and adapters", async () => {
    const s = await server(echo);
    expect(await listModels(s.url)).toEqual([{ id: "base" }, { id: "r42-e3", parent: "base" }]);
  });
});
