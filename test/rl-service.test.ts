/**
 * The UTRL reward service over loopback HTTP: its verdicts and rewards equal direct executor runs (one
 * request per program, no batching, no cache), identical executions run once across requests, the Python
 * client (TRL reward_funcs, verl compute_score) gets the same numbers, errors are one-line JSON answers, and
 * the batch mode (`--stage rl-rewards --dataset`) writes the same numbers with the summary as its last line.
 */
import { execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createExecutor, type SandboxExecutor } from "../pipeline/executor/index.ts";
import { main } from "../pipeline/cli.ts";
import { parseRlConfig } from "../stages/rl/config.ts";
import { parseRewardRow, type RewardRow } from "../stages/rl/cases.ts";
import { RewardEngine, scoreDirect } from "../stages/rl/engine.ts";
import { startRewardService, type RewardService } from "../stages/rl/service.ts";
import { loadRewardRows } from "../stages/rl-rewards.ts";

const execFileP = promisify(execFile);
const ROWS = path.resolve(__dirname, "fixtures/rl/rows.jsonl");
const CLIENT = path.resolve(__dirname, "../trainers/utrl_reward.py");
const rl = parseRlConfig({ timeout_s: 2 });

let ex: SandboxExecutor;
let engine: RewardEngine;
let svc: RewardService;
let tmp: string;
let rows: RewardRow[];

beforeAll(async () => {
  tmp = mkdtempSync(path.join(tmpdir(), "utrl-service-"));
  ex = await createExecutor({ workers: 2 });
  engine = new RewardEngine(ex, rl);
  svc = await startRewardService({ engine, port: 0 });
  rows = await loadRewardRows(ROWS);
});
afterAll(async () => {
  await svc?.close();
  await ex?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

async function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  const r = await fetch(`${url}/v1/rewards`, { method: "POST", body: typeof body === "string" ? body : JSON.stringify(body), headers: { "content-type": "application/json", ...headers } });
  return { status: r.status, json: (await r.json()) as any };
}

async function python(code: string, env: Record<string, string> = {}): Promise<any> {
  const { stdout } = await execFileP("python3", ["-c", code], {
    cwd: path.dirname(CLIENT),
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", UTRL_REWARD_URL: svc.url, UTRL_REWARD_RETRIES: "0", ...env },
  });
  return JSON.parse(stdout.trim().split("\n").pop()!);
}

const numbers = (r: any) => ({ id: r.id, status: r.status, r_valid: r.r_valid, r_disc: r.r_disc, reward: r.reward, code_rewards: r.code_rewards, verdicts: r.verdicts });

describe("reward service over loopback HTTP", () => {
  it("answers with the rewards and verdicts of direct executor runs", async () => {
    const r = await post(svc.url, { rows, details: true });
    expect(r.status).toBe(200);
    const direct = await scoreDirect(ex, rl, rows);
    expect(r.json.results.map(numbers)).toEqual(direct.map(numbers));
    // The hand-checked fixture: sum-1's third case expects 8 for "7" (invalid); the second code drops signs.
    expect(r.json.results[0]).toMatchObject({ id: "sum-1", r_valid: 2 / 12, r_disc: 3 / 4, code_rewards: [1, 0.5, 0.5, 0], verdicts: { gt: "ppf" } });
    expect(r.json.results[0].reward).toBeCloseTo(0.85 * 0.75 + 0.15 * (2 / 12), 12);
    expect(r.json.results[3]).toMatchObject({ id: "broken-ut", status: "no_cases", reward: 0, code_rewards: [0] });
    expect(r.json.summary.rows).toBe(4);
  });

  it("runs identical (code, input) pairs once: a repeated batch executes nothing new", async () => {
    const before = engine.stats();
    const again = await post(svc.url, { rows });
    const after = engine.stats();
    expect(after.executed).toBe(before.executed);
    expect(after.cacheHits).toBeGreaterThan(before.cacheHits);
    expect(again.json.results.map((r: any) => r.reward)).toEqual((await scoreDirect(ex, rl, rows)).map((r) => r.reward));
    // Eight copies of one rollout in one batch (a GRPO group sharing its codes): executed as one.
    const fresh = new RewardEngine(ex, rl);
    const row = parseRewardRow({ id: "g", kind: "stdio", gt_code: "print(int(input()) + 1)", cases: [{ input: "1", output: "2" }, { input: "5", output: "6" }], codes: ["print(2)", "print(int(input()) + 1)"] }, "t");
    const group = Array.from({ length: 8 }, (_, i) => ({ ...row, id: `g${i}` }));
    const res = await fresh.score(group);
    expect(fresh.stats()).toMatchObject({ requested: 8 * 3 * 2, executed: 2 * 2 });
    expect(new Set(res.map((r) => r.reward)).size).toBe(1);
    expect(res[0].code_rewards).toEqual([0.5, 1]);
  });

  it("the Python client gives TRL and verl the same numbers (stdlib only)", async () => {
    /** A Python expression for any JSON value. */
    const py = (v: unknown) => `json.loads(${JSON.stringify(JSON.stringify(v))})`;
    const sum1 = rows[0];
    const expected = (await post(svc.url, { rows })).json.results;
    const tester = await python(`
import json, utrl_reward as u
print(json.dumps(u.utrl_tester_reward(prompts=["p", "p"], completions=[[{"role": "assistant", "content": ${py(sum1.ut_text)}}], ${py(sum1.ut_text)}],
  task_id=["sum-1", "sum-1"], kind=["stdio", "stdio"], gt_code=[${py(sum1.gt_code)}] * 2, entry_point=[None, None], codes=[${py(sum1.codes)}] * 2)))`);
    expect(tester).toEqual([expected[0].reward, expected[0].reward]);
    const add = rows[2];
    const fence = (c: string) => "```python\n" + c + "```";
    const coder = await python(`
import json, utrl_reward as u
print(json.dumps(u.utrl_coder_reward(prompts=["p"] * 3, completions=${py([fence(add.codes![0]), fence(add.codes![1]), "no code"])},
  task_id=["add-1"] * 3, kind=["function"] * 3, gt_code=[${py(add.gt_code)}] * 3, entry_point=["add"] * 3, cases=[${py(add.cases)}] * 3, ut_text=[None] * 3)))`);
    expect(coder).toEqual([expected[2].code_rewards[0], expected[2].code_rewards[1], 0]);
    const verl = await python(`
import json, utrl_reward as u
info = {"role": "tester", "task_id": "sum-1", "kind": "stdio", "gt_code": ${py(sum1.gt_code)}, "codes": ${py(sum1.codes)}}
print(json.dumps(u.compute_score_batch(data_sources=["taco"] * 2, solution_strs=[${py(sum1.ut_text)}, "nothing"], ground_truths=[None, None], extra_infos=[info, info])
  + [u.compute_score("taco", ${py(fence(add.codes![1]))}, None, {"role": "coder", "task_id": "add-1", "kind": "function", "entry_point": "add", "gt_code": ${py(add.gt_code)}, "cases": ${py(add.cases)}})]))`);
    expect(verl).toEqual([expected[0].reward, 0, expected[2].code_rewards[1]]);
    const health = await python("import json, utrl_reward as u\nprint(json.dumps(u.wait_ready(timeout=5)))");
    expect(health).toMatchObject({ ok: true, settings: { tau: 12, lambda: 0.85, timeout_s: 2, checker: "tokens" } });
  });

  it("errors are one-line JSON answers; the Python client raises one line", async () => {
    expect(await post(svc.url, "{not json")).toEqual({ status: 400, json: { error: 'the request body is not JSON; send {"rows": [...]}' } });
    const bad = await post(svc.url, { rows: [rows[0], { id: "x", kind: "stdio", gt_code: "", cases: [{ input: 3, output: "" }] }] });
    expect(bad.status).toBe(400);
    expect(bad.json.error).toMatch(/^rows\[1\]: field "cases\.0\.input": /);
    expect((await fetch(`${svc.url}/v1/nothing`)).status).toBe(404);
    const small = await startRewardService({ engine, port: 0, maxBodyMb: 1, token: "s3cret" });
    try {
      expect((await post(small.url, { rows })).status).toBe(401);
      const big = await post(small.url, { rows: [{ ...rows[0], ut_text: "x".repeat(2 << 20) }] }, { authorization: "Bearer s3cret" });
      expect(big.status).toBe(413);
      expect((await post(small.url, { rows }, { authorization: "Bearer s3cret" })).status).toBe(200);
      const r = await execFileP("python3", [CLIENT, "--check", "--url", small.url], { env: { PATH: process.env.PATH ?? "" } }).catch((e) => e);
      expect(r.code).toBe(2);
      expect(r.stderr.trim()).toBe(`error: reward service ${small.url}/v1/health: HTTP 401: missing or wrong bearer token (set UTRL_REWARD_TOKEN for the client)`);
    } finally {
      await small.close();
    }
    const stats = (await (await fetch(`${svc.url}/v1/stats`)).json()) as any;
    expect(stats.errors).toBeGreaterThanOrEqual(3);
    expect(stats.latency_ms.count).toBeGreaterThan(0);
  });
});

describe("the rl-serve command", () => {
  it("self-tests, listens, answers, and stops cleanly on SIGTERM (exit 0, service.json removed)", async () => {
    const runDir = path.join(tmp, "serve");
    const child = spawn(process.execPath, [path.resolve(__dirname, "../pipeline/run.mjs"), "--stage", "rl-serve", "--port", "0", "--run-dir", runDir, "--set", "executor.workers=2", "--set", "rl.timeout_s=2"], {
      cwd: path.resolve(__dirname, ".."),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    const url = await new Promise<string>((resolve, reject) => {
      const t = setInterval(() => {
        const m = /listening on (http:\/\/\S+)/.exec(out);
        if (m) {
          clearInterval(t);
          resolve(m[1]);
        }
      }, 100);
      exited.then((code) => {
        clearInterval(t);
        reject(new Error(`rl-serve exited ${code}: ${err}`));
      });
    });
    expect(err).toContain("self-test passed");
    expect(JSON.parse(readFileSync(path.join(runDir, "rl-serve", "service.json"), "utf8")).url).toBe(url);
    const r = await post(url, { rows: rows.slice(0, 1) });
    expect(r.json.results[0].reward).toBeCloseTo(0.85 * 0.75 + 0.15 * (2 / 12), 12);
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(out).toMatch(/rl-serve: stopped — 1 request\(s\), 1 row\(s\)/);
    expect(existsSync(path.join(runDir, "rl-serve", "service.json"))).toBe(false);
  });
});

describe("batch mode (--stage rl-rewards)", () => {
  it("writes the service's numbers per row, the summary as the last stdout line, and reuses finished batches", async () => {
    const cfg = path.join(tmp, "c.yaml");
    writeFileSync(cfg, `run: {dir: ${path.join(tmp, "run")}}\nexecutor: {workers: 2}\nrl: {timeout_s: 2}\nrl-rewards: {batch_rows: 3}\n`);
    const run = async () => {
      const out: string[] = [];
      const err: string[] = [];
      const code = await main(["--config", cfg, "--stage", "rl-rewards", "--dataset", ROWS, "--json"], { stdout: (l) => out.push(l), stderr: (l) => err.push(l) });
      return { code, out, err };
    };
    const first = await run();
    expect(first.code).toBe(0);
    const served = (await post(svc.url, { rows })).json.results;
    const mean = (f: (r: any) => number) => served.reduce((a: number, r: any) => a + f(r), 0) / served.length;
    expect(JSON.parse(first.out.at(-1)!)).toEqual({ rows: 4, mean_reward: mean((r) => r.reward), mean_disc: mean((r) => r.r_disc), mean_valid: mean((r) => r.r_valid) });
    const written = readFileSync(path.join(tmp, "run", "rl-rewards", "rows", "rewards.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(written.map(numbers)).toEqual(served.map(numbers));
    const summary = JSON.parse(readFileSync(path.join(tmp, "run", "rl-rewards", "rows", "summary.json"), "utf8"));
    expect(summary).toMatchObject({ rows: 4, tau: 12, lambda: 0.85, statuses: { ok: 3, no_cases: 1 }, case_reasons: { wrong_function: 1 }, batches: { total: 2, reused: 0 } });
    const second = await run();
    expect(second.out.at(-1)).toBe(first.out.at(-1));
    expect(JSON.parse(readFileSync(path.join(tmp, "run", "rl-rewards", "rows", "summary.json"), "utf8")).batches).toEqual({ total: 2, reused: 2 });
    // τ from the config changes the numbers.
    const tau = await main(["--config", cfg, "--stage", "rl-rewards", "--dataset", ROWS, "--json", "--set", "rl.tau=2"], { stdout: (l) => first.out.push(l), stderr: () => {} });
    expect(tau).toBe(0);
    expect(JSON.parse(first.out.at(-1)!).mean_valid).toBeGreaterThan(JSON.parse(second.out.at(-1)!).mean_valid);
  });

  it("a bad dataset row stops with one line naming file:line and the field", async () => {
    const bad = path.join(tmp, "bad.jsonl");
    writeFileSync(bad, readFileSync(ROWS, "utf8") + JSON.stringify({ id: "z", kind: "function", gt_code: "def f(): pass", cases: [] }) + "\n");
    const err: string[] = [];
    const code = await main(["--stage", "rl-rewards", "--dataset", bad, "--run-dir", path.join(tmp, "run2")], { stdout: () => {}, stderr: (l) => err.push(l) });
    expect(code).toBe(2);
    expect(err).toEqual([`error: ${bad}:5: a function task needs "entry_point"`]);
  });
});
