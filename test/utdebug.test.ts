/**
 * `utdebug` end to end: the real executor, the real LLM client and the project's loopback OpenAI server
 * scripted by test/servers/debug-model.ts, whose debugger fixes a code only when the feedback names a failing
 * input with the correct expected output. The mini set (test/fixtures/utdebug/mini.jsonl) has one problem per
 * behaviour: add_one (fixed in round 1, early stop in round 2), double (a non-failing UT, a 4–4 vote kept at the
 * threshold, a 3/3/2 vote dropped, a duplicate input, votes 8 / 8.0 that match only under the comparison, and
 * a first edit that ties the pass rate — discarded, then a fix accepted), square (already correct: stop at
 * once) and neg (unanimously wrong expected outputs: nothing to fix from, every edit discarded).
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
import { utdebugStage } from "../stages/utdebug.ts";
import type { ProblemTrace } from "../stages/debug/loop.ts";
import { perPrompt, repeatedCalls, runAndKill } from "./helpers/kill-resume.ts";
import { debugModel, miniWorld, type DebugModel } from "./servers/debug-model.ts";
import { startOpenAIServer, type OpenAIServer } from "./servers/openai.ts";

const ROOT = path.resolve(__dirname, "..");
const MINI = path.join(ROOT, "test/fixtures/utdebug/mini.jsonl");
const DEMO_SET = path.join(ROOT, "data/utdebug-demo.jsonl");

let executor: Executor;
let server: OpenAIServer;
let model: DebugModel;
let dir: string;

beforeAll(async () => {
  executor = await createExecutor({});
  dir = mkdtempSync(path.join(tmpdir(), "utdebug-test-"));
  model = debugModel(miniWorld());
  server = await startOpenAIServer({ script: (r) => model.script(r), models: [{ id: "debugger-model" }, { id: "utgen-model" }] });
});

afterAll(async () => {
  await server?.close();
  await executor?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function root(runDir: string, utdebug: Record<string, unknown> = {}, llm: Record<string, unknown> = {}) {
  return {
    run: { dir: runDir },
    executor: {},
    llm: { backend: "openai", base_urls: [server.url], model: "", seed: 0, max_retries: 0, timeout_s: 30, concurrency: 8, ...llm },
    utdebug: {
      sets: [{ name: "mini", path: MINI }],
      generators: ["utgen-model"],
      baselines: ["no-ut"],
      debugger: "debugger-model",
      bootstrap: { samples: 200, seed: 1 },
      ...utdebug,
    },
  };
}

function context(runDir: string, r: Record<string, any>, flags: Record<string, string | boolean | undefined> = {}) {
  const out: string[] = [];
  const counters: Record<string, number> = {};
  const ctx: CommandContext<any> = {
    name: "utdebug",
    config: r.utdebug,
    root: r,
    runDir,
    stageDir: path.join(runDir, "utdebug"),
    cacheDir: path.join(runDir, "cache"),
    log: { info: () => {}, warn: () => {} },
    counters: { add: (k, n = 1) => void (counters[k] = (counters[k] ?? 0) + n) },
    getExecutor: async () => executor,
    getLlm: () => Promise.reject(new Error("utdebug builds its own client")),
    signal: new AbortController().signal,
    flags,
    stdout: (l) => out.push(l),
  };
  return { ctx, out, counters };
}

const trace = (runDir: string, method: string, task: string): ProblemTrace =>
  JSON.parse(readFileSync(path.join(runDir, "utdebug", "results", "mini", method, `${task}.json`), "utf8"));

async function run(runDir: string, r: Record<string, any>, flags: Record<string, string | boolean | undefined> = { json: true }) {
  const c = context(runDir, r, flags);
  expect(await utdebugStage.run(c.ctx)).toBe(0);
  return { ...c, summary: flags.json ? JSON.parse(c.out[c.out.length - 1]) : undefined };
}

describe("utdebug with a scripted model", () => {
  const runDir = () => path.join(dir, "main");

  it("accepts, backtracks, stops early, votes with a threshold, and scores No-UT on known answers", async () => {
    const before = server.requests.length;
    const { summary, counters } = await run(runDir(), root(runDir()));
    const s = summary.sets.mini;
    expect(Object.keys(s)).toEqual(["utgen-model", "no-ut"]);
    expect(s["utgen-model"]).toMatchObject({ problems: 4, pass_at_1: 0.75, initial_pass_at_1: 0.25, per_round: [0.25, 0.5, 0.75, 0.75] });
    expect(s["no-ut"]).toMatchObject({ problems: 4, pass_at_1: 0.5, per_round: [0.25, 0.5, 0.5, 0.5] });
    expect(s["utgen-model"].ci[0]).toBeLessThanOrEqual(0.75);
    expect(counters.problems_debugged).toBe(8);

    // add_one: correct failing UTs → the fix is accepted in round 1; round 2's suite (for the fixed code) all passes.
    const a = trace(runDir(), "utgen-model", "u1");
    expect(a.curve).toEqual([false, true, true, true]);
    expect(a.rounds[1]).toMatchObject({ decision: "accepted", before: { passed: 0, total: 3 }, after: { passed: 3, total: 3 } });
    expect(a.rounds[1].feedback).toMatchObject({ input: "[1]", output: "3", expected: "2" });
    expect(a.rounds[1].feedback!.text).toBe("The above code is incorrect and does not pass the testcase.\nInput: [1]\nOutput: 3\nExpected: 2\n\n");
    expect(a.rounds[2]).toMatchObject({ stop: "no_failing_ut", before: { passed: 3, total: 3 } });
    expect(a.stoppedAt).toBe(2);
    expect(a.rounds[1].suite!.uts.map((u) => [u.call, u.output, u.votes!.winner, u.gold!.outputCorrect])).toEqual([
      ["add_one(1)", "2", 8, true],
      ["add_one(5)", "6", 8, true],
      ["add_one(0)", "1", 8, true],
    ]);

    // double: votes and the backtracking on a tie.
    const d = trace(runDir(), "utgen-model", "u2");
    const att = d.rounds[1].suite!.attempts;
    expect(att.map((x) => [x.sample, x.status])).toEqual([
      [0, "accepted"],
      [1, "accepted"],
      [2, "below_threshold"],
      [3, "duplicate_input"],
      [4, "accepted"],
    ]);
    expect(att[1].tally).toEqual([["-4", 4], ["-3", 4]]); // a 4–4 tie: the first seen wins, 4 ≥ 0.5 · 8
    expect(att[2].tally).toEqual([["-2", 3], ["0", 3], ["5", 2]]);
    expect(att[4].tally).toEqual([["8", 5], ["9", 3]]); // 8 and 8.0 are one answer under the comparison
    expect(d.rounds[1]).toMatchObject({ decision: "backtracked", before: { passed: 2, total: 3 }, after: { passed: 2, total: 3 } });
    expect(d.rounds[1].feedback).toMatchObject({ input: "[-2]", output: "-2", expected: "-4" });
    expect(d.rounds[2]).toMatchObject({ decision: "accepted", after: { passed: 3, total: 3 } });
    expect(d.rounds[2].suite).toBeUndefined(); // a discarded edit keeps the suite
    expect(d.rounds[2].reply!.sample).toBe(1); // the same chat asked again: the next sample
    expect(d.curve).toEqual([false, false, true, true]);
    expect(d.edits).toEqual({ accepted: 1, backtracked: 1, unvalidated: 0 });

    // square: nothing fails → stop in round 1 without asking the debugger.
    const q = trace(runDir(), "utgen-model", "u3");
    expect(q.rounds.map((r) => r.stop ?? r.decision)).toEqual([undefined, "no_failing_ut"]);
    expect(q.curve).toEqual([true, true, true, true]);

    // neg: the UTs' outputs are wrong (diagnostics say so), so the debugger never fixes and every edit is discarded.
    const n = trace(runDir(), "utgen-model", "u4");
    expect(n.rounds.slice(1).map((r) => r.decision)).toEqual(["backtracked", "backtracked", "backtracked"]);
    expect(n.rounds[1].suite!.uts.every((u) => u.gold!.outputCorrect === false)).toBe(true);
    expect(n.curve).toEqual([false, false, false, false]);

    // No-UT: the critique decides; add_one fixed from it, square and neg judged correct at once.
    expect(trace(runDir(), "no-ut", "u1").curve).toEqual([false, true, true, true]);
    expect(trace(runDir(), "no-ut", "u1").rounds[1]).toMatchObject({ stop: "says_correct", critique: { saysCorrect: true } });
    expect(trace(runDir(), "no-ut", "u3").rounds[0]).toMatchObject({ stop: "says_correct" });
    expect(trace(runDir(), "no-ut", "u4").rounds[0]).toMatchObject({ stop: "says_correct" });
    expect(trace(runDir(), "no-ut", "u2").rounds.map((r) => r.critique?.saysCorrect)).toEqual([false, false, false, undefined]);

    // The requests: the output-only votes continue the generator's own turn up to "### Output".
    const reqs = server.requests.slice(before);
    const votes = reqs.filter((b) => b.continue_final_message === true);
    expect(votes.length).toBeGreaterThan(0);
    for (const b of votes) {
      expect(b).toMatchObject({ add_generation_prompt: false, n: 8, temperature: 0.8, top_p: 0.9, max_tokens: 2048, top_k: -1 });
      expect(b.messages.map((m: any) => m.role)).toEqual(["user", "assistant"]);
      expect(b.messages[1].content).toMatch(/Arguments: ```\w+\(-?\d+\)```\n\n$/);
    }
    // The debugger chat: code-generation prompt, the code as the assistant turn, then the feedback turn.
    const fix = reqs.find((b) => b.model === "debugger-model" && b.messages.length === 3 && b.messages[0].content.includes("add_one"))!;
    expect(fix.messages[0].content).toBe(
      "\nWrite Python code to solve the task.\nWrite a Python function `add_one(x: int)` to solve the following problem: Present code in ```python```\n```python\n\"\"\"\nWrite a function that adds one to x.\n>>> assert add_one(1) == 2\n\"\"\"\n```\n",
    );
    expect(fix.messages[1]).toEqual({ role: "assistant", content: "```\ndef add_one(x: int):\n    return x + 2\n\n```" });
    expect(fix).toMatchObject({ temperature: 0.7, top_p: 0.9, max_tokens: 8192 });

    const md = readFileSync(path.join(runDir(), "utdebug", "summary.md"), "utf8");
    expect(md).toContain("| utgen-model | 75.00 [");
    expect(md).toMatch(/\| utgen-model − no-ut \| \+25\.00 \[/);
    const html = readFileSync(path.join(runDir(), "utdebug", "report.html"), "utf8");
    expect(html).toContain('class="method-curve"');
    expect(html).toContain("add_one(5)");
  });

  it("a re-run of a finished run makes no model call and recomputes nothing", async () => {
    const before = server.requests.length;
    const { summary, counters } = await run(runDir(), root(runDir()));
    expect(server.requests.length).toBe(before);
    expect(counters.problems_reused).toBe(8);
    expect(counters.problems_debugged ?? 0).toBe(0);
    expect(summary.sets.mini["utgen-model"].pass_at_1).toBe(0.75);
  });

  it("accept: not_falls keeps the tying edit (the reference's rule); str votes leave 8 / 8.0 below the threshold", async () => {
    const rd = path.join(dir, "variants");
    await run(rd, root(rd, { baselines: [], accept: "not_falls" }));
    const d = trace(rd, "utgen-model", "u2");
    expect(d.rounds[1]).toMatchObject({ decision: "accepted", before: { passed: 2 }, after: { passed: 2 } });
    expect(d.rounds[1].pass).toBe(false); // the edit fails the private tests: kept on a tie

    const rs = path.join(dir, "strvotes");
    await run(rs, root(rs, { baselines: [], sc_vote_match: "str" }));
    const v = trace(rs, "utgen-model", "u2").rounds[1].suite!;
    expect(v.attempts.find((x) => x.sample === 4)).toMatchObject({ status: "below_threshold", tally: [["8", 3], ["9", 3], ["8.0", 2]] });
    expect(v.uts.map((u) => u.call)).toEqual(["double(3)", "double(-2)"]);
  });

  it("Table 4 ablations: -no-sc takes each sample's own output (no votes), -no-backtrack keeps every edit unvalidated", async () => {
    const rd = path.join(dir, "ablations");
    const before = server.requests.length;
    const { summary } = await run(rd, root(rd, { baselines: [], ablations: ["no-sc", "no-backtrack"] }));
    expect(Object.keys(summary.sets.mini)).toEqual(["utgen-model", "utgen-model-no-sc", "utgen-model-no-backtrack"]);
    // Without self-consistency: UTs carry the generator's own output, and no vote request is made for them.
    const nosc = trace(rd, "utgen-model-no-sc", "u1");
    const uts = nosc.rounds.flatMap((r) => r.suite?.uts ?? []);
    expect(uts.length).toBeGreaterThan(0);
    expect(uts.every((u) => u.votes === undefined)).toBe(true);
    // Without backtracking: an edit is never judged on the old suite; the main method discards u2's bad edit.
    const nb = trace(rd, "utgen-model-no-backtrack", "u2");
    const kept = nb.rounds.map((r) => r.decision).filter(Boolean);
    expect(kept.length).toBeGreaterThan(0);
    expect(kept.every((d) => d === "kept_unvalidated")).toBe(true);
    expect(trace(rd, "utgen-model", "u2").rounds.some((r) => r.decision === "backtracked")).toBe(true);
    const votes = server.requests.slice(before).filter((b) => b.continue_final_message === true).length;
    expect(votes).toBeGreaterThan(0); // the full method (and -no-backtrack) still vote
    const md = readFileSync(path.join(rd, "utdebug", "summary.md"), "utf8");
    expect(md).toContain("### Ablations (Table 4 layout)");
    expect(md).toMatch(/\| − Output test-time scaling .*\|/);
    expect(md).toMatch(/\| − Backtracking .*\|/);
  });

  it("flow reference: the starting turn is repeated, a discarded reply stays without feedback, the suite is built for the new code", async () => {
    const rd = path.join(dir, "reference");
    const before = server.requests.length;
    const { summary } = await run(rd, root(rd, { baselines: [], flow: "reference", accept: "not_falls", ut_attempts_factor: 4 }));
    expect(summary.sets.mini["utgen-model"].problems).toBe(4);
    const reqs = server.requests.slice(before).filter((b) => b.model === "debugger-model");
    const first = reqs.find((b) => b.messages[0].content.includes("add_one"))!;
    expect(first.messages.map((m: any) => m.role)).toEqual(["user", "assistant", "assistant", "user"]);
    expect(first.messages[1].content).toBe(first.messages[2].content);
    const a = trace(rd, "utgen-model", "u1");
    expect(a.rounds[0].suite!.for).toBe("current");
    expect(a.rounds[1]).toMatchObject({ decision: "accepted", suite: { for: "candidate" } });
    expect(a.curve).toEqual([false, true, true, true]);
    // neg: every reply is discarded on a tie? No — not_falls keeps ties: the unchanged code is "kept".
    const n = trace(rd, "utgen-model", "u4");
    expect(n.rounds[1].decision).toBe("accepted");
    // The reply after a discarded one: in double under rises the chat ends with the discarded reply.
    const rr = path.join(dir, "reference-rises");
    const b2 = server.requests.length;
    await run(rr, root(rr, { baselines: [], flow: "reference", accept: "rises" }));
    const dbl = server.requests.slice(b2).filter((b) => b.model === "debugger-model" && b.messages[0].content.includes("double"));
    const afterDiscard = dbl.find((b) => b.messages.length === 5)!;
    expect(afterDiscard.messages.map((m: any) => m.role)).toEqual(["user", "assistant", "assistant", "user", "assistant"]);
    expect(trace(rr, "utgen-model", "u2").rounds[1].decision).toBe("backtracked");
  });

  it("sc_prompt separate asks the reference's output-only question instead of continuing the turn", async () => {
    const rd = path.join(dir, "separate");
    const before = server.requests.length;
    const { summary } = await run(rd, root(rd, { baselines: [], sc_prompt: "separate" }));
    expect(summary.sets.mini["utgen-model"].pass_at_1).toBe(0.75);
    const q = server.requests.slice(before).filter((b) => b.messages[0].content.includes("A user calls this functions with the input"));
    expect(q.length).toBeGreaterThan(0);
    expect(q.every((b) => b.continue_final_message === undefined && b.messages.length === 1)).toBe(true);
    expect(q.some((b) => b.messages[0].content.includes("A user calls this functions with the input: add_one(1).\n"))).toBe(true);
  });

  it("the CLI contract: --dataset FILE --json prints {sets: {SET: {METHOD: {problems, pass_at_1, …}}}} last", async () => {
    const rd = path.join(dir, "cli");
    const cfg = path.join(dir, "cli.yaml");
    const r = root(rd);
    delete (r.utdebug as any).sets;
    writeFileSync(cfg, YAML.stringify(r));
    const out: string[] = [];
    const err: string[] = [];
    const code = await main(["--config", cfg, "--stage", "utdebug", "--dataset", MINI, "--json"], { stdout: (l) => out.push(l), stderr: (l) => err.push(l) });
    expect(code, err.join("\n")).toBe(0);
    const last = JSON.parse(out[out.length - 1]);
    expect(Object.keys(last.sets)).toEqual(["mini"]);
    expect(last.sets.mini["utgen-model"]).toMatchObject({ problems: 4, pass_at_1: 0.75 });
    expect(last.sets.mini["no-ut"]).toMatchObject({ problems: 4, pass_at_1: 0.5 });
  });

  it("kill -9 mid-run, then a re-run, repeats no finished problem and no completed model call", async () => {
    const slow = debugModel(miniWorld(), { delayMs: 40 });
    const srv = await startOpenAIServer({ script: (r) => slow.script(r) });
    try {
      const conf = (rd: string) => {
        const r = root(rd, { concurrency: 1 }, { base_urls: [srv.url], concurrency: 1 });
        const f = path.join(dir, `${path.basename(rd)}.yaml`);
        writeFileSync(f, YAML.stringify(r));
        return f;
      };
      const clean = path.join(dir, "clean");
      const c0 = srv.requests.length;
      expect(await main(["--config", conf(clean), "--stage", "utdebug"], { stdout: () => {}, stderr: () => {} })).toBe(0);
      const reference = perPrompt(srv.requests.slice(c0));

      const killedDir = path.join(dir, "killed");
      const k0 = srv.requests.length;
      const results = path.join(killedDir, "utdebug", "results", "mini", "utgen-model");
      expect(await runAndKill(conf(killedDir), "utdebug", results, 2), "the run finished before it could be killed").toBe(true);
      const finished = readdirSync(results).filter((f) => f.endsWith(".json"));
      const mtimes = new Map(finished.map((f) => [f, statSync(path.join(results, f)).mtimeMs]));

      const k1 = srv.requests.length;
      const out: string[] = [];
      expect(await main(["--config", conf(killedDir), "--stage", "utdebug", "--json"], { stdout: (l) => out.push(l), stderr: () => {} })).toBe(0);
      for (const f of finished) expect(statSync(path.join(results, f)).mtimeMs).toBe(mtimes.get(f)); // finished problems reused
      // Every request beyond the clean run's was one in flight at the kill (llm.concurrency 1).
      expect(repeatedCalls(perPrompt(srv.requests.slice(k0)), reference)).toBeLessThanOrEqual(1);
      expect(srv.requests.length - k1).toBeLessThan(srv.requests.length - k0);
      const scores = (sets: any) => Object.fromEntries(Object.entries(sets.mini).map(([m, x]: [string, any]) => [m, [x.problems, x.pass_at_1, x.per_round]]));
      const clean1 = JSON.parse(readFileSync(path.join(clean, "utdebug", "summary.json"), "utf8"));
      expect(scores(JSON.parse(out[out.length - 1]).sets)).toEqual(scores(clean1.sets));
    } finally {
      await srv.close();
    }
  });
});

describe("utdebug on the heuristic backend (no model)", () => {
  it("runs the demo set end to end: repair search fixes what one edit can, backtracking discards the rest", async () => {
    const rd = path.join(dir, "heuristic");
    const r = {
      run: { dir: rd },
      executor: {},
      llm: { backend: "heuristic" },
      utdebug: { sets: [{ name: "demo", path: DEMO_SET }], generators: ["heuristic"], baselines: ["no-ut", "random"], bootstrap: { samples: 100, seed: 0 } },
    };
    const c = context(rd, r, { json: true });
    expect(await utdebugStage.run(c.ctx)).toBe(0);
    const s = JSON.parse(c.out[c.out.length - 1]).sets.demo;
    // 8 problems; clamp (a missing branch) cannot be fixed by one edit. No-UT's critic checks the prompt's one
    // example: count_positive and clamp pass theirs while wrong, and the HumanEval row shows none.
    expect(s.heuristic).toMatchObject({ problems: 8, initial_pass_at_1: 0, pass_at_1: 7 / 8 });
    expect(s.random).toMatchObject({ problems: 8, pass_at_1: 7 / 8 });
    expect(s["no-ut"]).toMatchObject({ problems: 8, pass_at_1: 5 / 8 });
    const clamp = JSON.parse(readFileSync(path.join(rd, "utdebug", "results", "demo", "heuristic", "d7.json"), "utf8")) as ProblemTrace;
    expect(clamp.rounds.slice(1).map((x) => x.decision)).toEqual(["backtracked", "backtracked", "backtracked"]);
    expect(clamp.curve).toEqual([false, false, false, false]);
  });
});
