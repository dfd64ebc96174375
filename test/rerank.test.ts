/**
 * `rerank` (best-of-N) with the scripted loopback model of test/servers/debug-model.ts: N = 3 code samples
 * per problem of the mini set, UTs per code pooled and de-duplicated, the code passing most pooled UTs
 * chosen, ties broken by the stated rule; and the heuristic backend on the demo set.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";
import { main } from "../pipeline/cli.ts";
import { createExecutor } from "../pipeline/executor/index.ts";
import type { Executor } from "../pipeline/executor/types.ts";
import type { CommandContext } from "../pipeline/stage.ts";
import { rerankStage, type RerankTrace } from "../stages/rerank.ts";
import { perPrompt, repeatedCalls, runAndKill } from "./helpers/kill-resume.ts";
import { debugModel, miniWorld } from "./servers/debug-model.ts";
import { startOpenAIServer, type OpenAIServer } from "./servers/openai.ts";

const ROOT = path.resolve(__dirname, "..");
const MINI = path.join(ROOT, "test/fixtures/utdebug/mini.jsonl");

let executor: Executor;
let server: OpenAIServer;
let dir: string;

beforeAll(async () => {
  executor = await createExecutor({});
  dir = mkdtempSync(path.join(tmpdir(), "rerank-test-"));
  const model = debugModel(miniWorld());
  server = await startOpenAIServer({ script: (r) => model.script(r) });
});

afterAll(async () => {
  await server?.close();
  await executor?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function run(runDir: string, r: Record<string, any>) {
  const out: string[] = [];
  const counters: Record<string, number> = {};
  const ctx: CommandContext<any> = {
    name: "rerank",
    config: r.rerank,
    root: r,
    runDir,
    stageDir: path.join(runDir, "rerank"),
    cacheDir: path.join(runDir, "cache"),
    log: { info: () => {}, warn: () => {} },
    counters: { add: (k, n = 1) => void (counters[k] = (counters[k] ?? 0) + n) },
    getExecutor: async () => executor,
    getLlm: () => Promise.reject(new Error("rerank builds its own client")),
    signal: new AbortController().signal,
    flags: { json: true },
    stdout: (l) => out.push(l),
  };
  expect(await rerankStage.run(ctx)).toBe(0);
  return { summary: JSON.parse(out[out.length - 1]), counters };
}

const trace = (runDir: string, method: string, task: string): RerankTrace =>
  JSON.parse(readFileSync(path.join(runDir, "rerank", "results", "mini", method, `${task}.json`), "utf8"));

describe("rerank with a scripted model", () => {
  const rd = () => path.join(dir, "llm");
  const root = (extra: Record<string, unknown> = {}) => ({
    run: { dir: rd() },
    executor: {},
    llm: { backend: "openai", base_urls: [server.url], model: "code-model", seed: 0, max_retries: 0, timeout_s: 30 },
    rerank: { sets: [{ name: "mini", path: MINI }], generators: ["utgen-model"], baselines: [], n_codes: 3, tie_break: "first", bootstrap: { samples: 200, seed: 1 }, ...extra },
  });

  it("chooses the code that passes most pooled UTs and reports base, oracle and accuracy", async () => {
    const before = server.requests.length;
    const { summary } = await run(rd(), root());
    expect(summary.sets.mini["utgen-model"]).toMatchObject({ problems: 4, accuracy: 0.75, base_accuracy: 0.25, oracle: 1 });
    const a = trace(rd(), "utgen-model", "u1");
    expect(a.codes.map((c) => c.pass)).toEqual([false, true, false]);
    expect(a.pool.map((u) => u.call)).toEqual(["add_one(1)", "add_one(5)", "add_one(0)"]); // three suites, one pool
    expect(a.scores).toEqual([0, 3, 0]);
    expect(a).toMatchObject({ chosen: 1, pass: true, base: false, oracle: true });
    const d = trace(rd(), "utgen-model", "u2");
    expect(d.scores).toEqual([2, 2, 3]);
    expect(d.chosen).toBe(2);
    // neg: the UTs' outputs are wrong, no code passes any: a three-way tie, broken by the lowest index (buggy).
    const n = trace(rd(), "utgen-model", "u4");
    expect(n).toMatchObject({ scores: [0, 0, 0], tied: [0, 1, 2], chosen: 0, pass: false, oracle: true });
    // One code request per problem with n = N; the UT prompts carry each sampled code.
    const codeReqs = server.requests.slice(before).filter((b) => b.messages.length === 1 && b.messages[0].content.includes("Write Python code"));
    expect(codeReqs).toHaveLength(4);
    expect(codeReqs.every((b) => b.n === 3 && b.model === "code-model" && b.temperature === 0.7)).toBe(true);
    const md = readFileSync(path.join(rd(), "rerank", "summary.md"), "utf8");
    expect(md).toContain("| – (one sample) | 25.00 |");
    expect(md).toContain("| oracle (any of N correct) | 100.00 |");
  });

  it("re-running makes no model call; a seeded random tie-break is stable", async () => {
    const before = server.requests.length;
    const { counters } = await run(rd(), root());
    expect(server.requests.length).toBe(before);
    expect(counters.problems_reused).toBe(4);
    const r1 = await run(rd(), root({ tie_break: "random", seed: 7 }));
    const r2 = await run(rd(), root({ tie_break: "random", seed: 7 }));
    expect(server.requests.length).toBe(before); // only the tie rule changed: every model answer is cached
    expect(r2.summary).toEqual(r1.summary);
    const n = trace(rd(), "utgen-model", "u4");
    expect(n.tied).toContain(n.chosen);
  });
});

describe("rerank: a UT prompt without the code (Random baseline) is sampled anew for every code", () => {
  it("each code's suite asks for its own range of sample indices; a re-run asks for none", async () => {
    const rdr = path.join(dir, "random");
    const r = {
      run: { dir: rdr },
      executor: {},
      llm: { backend: "openai", base_urls: [server.url], model: "code-model", seed: 0, max_retries: 0, timeout_s: 30 },
      rerank: { sets: [{ name: "mini", path: MINI }], generators: [], baselines: ["random"], base_model: "base-model", n_codes: 3, bootstrap: { samples: 50, seed: 1 } },
    };
    const before = server.requests.length;
    await run(rdr, r);
    const utReqs = server.requests.slice(before).filter((b) => b.model === "base-model" && b.messages.length === 1 && b.messages[0].content.includes("add_one") && !b.messages[0].content.includes("Write Python code"));
    // One prompt for all three codes (it does not carry the code): three requests, seeds 0, budget, 2·budget
    // (the client seeds a request by the first sample index it asks for). Before, one cached answer served all.
    expect(new Set(utReqs.map((b) => b.messages[0].content)).size).toBe(1);
    const seeds = utReqs.map((b) => b.seed as number).sort((a, b) => a - b);
    expect(seeds.length).toBeGreaterThanOrEqual(3);
    const starts = [...new Set(seeds)];
    expect(starts.length).toBe(seeds.length);
    // budget = ut_attempts_factor (3) × n (3): code i's first request starts at 9·i (later waves of a code that
    // is still short of n UTs start where its previous wave ended, inside its own range).
    expect(seeds).toEqual(expect.arrayContaining([0, 9, 18]));
    expect(seeds.every((x) => x < 27)).toBe(true);
    const after = server.requests.length;
    await run(rdr, r);
    expect(server.requests.length).toBe(after);
  });
});

describe("rerank: kill -9 mid-run, then a re-run", () => {
  it("repeats no finished (set, method, problem) and no completed model call, and ends with the clean run's scores", async () => {
    const slow = debugModel(miniWorld(), { delayMs: 40 });
    const srv = await startOpenAIServer({ script: (r) => slow.script(r) });
    try {
      const conf = (rd: string) => {
        const r = {
          run: { dir: rd },
          executor: {},
          llm: { backend: "openai", base_urls: [srv.url], model: "code-model", seed: 0, max_retries: 0, timeout_s: 30, concurrency: 1 },
          rerank: { sets: [{ name: "mini", path: MINI }], generators: ["utgen-model"], baselines: [], n_codes: 3, tie_break: "first", concurrency: 1, bootstrap: { samples: 100, seed: 1 } },
        };
        const f = path.join(dir, `${path.basename(rd)}.yaml`);
        writeFileSync(f, YAML.stringify(r));
        return f;
      };
      const quiet = { stdout: () => {}, stderr: () => {} };
      const clean = path.join(dir, "kill-clean");
      const c0 = srv.requests.length;
      expect(await main(["--config", conf(clean), "--stage", "rerank"], quiet)).toBe(0);
      const reference = perPrompt(srv.requests.slice(c0));

      const killedDir = path.join(dir, "kill-killed");
      const k0 = srv.requests.length;
      const results = path.join(killedDir, "rerank", "results", "mini", "utgen-model");
      expect(await runAndKill(conf(killedDir), "rerank", results, 2), "the run finished before it could be killed").toBe(true);
      const finished = readdirSync(results).filter((f) => f.endsWith(".json"));
      expect(finished.length).toBeLessThan(4);
      const mtimes = new Map(finished.map((f) => [f, statSync(path.join(results, f)).mtimeMs]));

      const k1 = srv.requests.length;
      const out: string[] = [];
      expect(await main(["--config", conf(killedDir), "--stage", "rerank", "--json"], { stdout: (l) => out.push(l), stderr: () => {} })).toBe(0);
      for (const f of finished) expect(statSync(path.join(results, f)).mtimeMs).toBe(mtimes.get(f)); // reused, not redone
      // Every request beyond the clean run's was one in flight at the kill (concurrency 1).
      expect(repeatedCalls(perPrompt(srv.requests.slice(k0)), reference)).toBeLessThanOrEqual(1);
      expect(srv.requests.length - k1).toBeLessThan(srv.requests.length - k0);
      const cleanSummary = JSON.parse(readFileSync(path.join(clean, "rerank", "summary.json"), "utf8"));
      expect(JSON.parse(out[out.length - 1]).sets).toEqual(cleanSummary.sets);
    } finally {
      await srv.close();
    }
  });
});

describe("rerank on the heuristic backend", () => {
  it("runs the demo set end to end", async () => {
    const rdh = path.join(dir, "heuristic");
    const r = {
      run: { dir: rdh },
      executor: {},
      llm: { backend: "heuristic" },
      rerank: { sets: [{ name: "demo", path: path.join(ROOT, "data/utdebug-demo.jsonl") }], generators: ["heuristic"], baselines: ["random"], n_codes: 4, bootstrap: { samples: 100, seed: 0 } },
    };
    const { summary } = await run(rdh, r);
    const s = summary.sets.demo;
    expect(s.heuristic.problems).toBe(8);
    // The oracle-labelled UTs always prefer a correct sample when there is one.
    expect(s.heuristic.accuracy).toBe(s.heuristic.oracle);
    expect(s.random.accuracy).toBe(s.random.oracle);
    expect(s.heuristic.base_accuracy).toBeLessThan(s.heuristic.oracle);
  });
});
