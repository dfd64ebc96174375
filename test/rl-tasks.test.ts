/**
 * `rl-tasks`: TACO rows (parquet, the Hub layout `ALL/train-*.parquet` at a pinned commit, served by the
 * loopback Hub server) become stdio tasks with App. A.3's filter — every left-out row counted under its
 * reason — a deterministic held-out validation split, optional ground-truth verification in the sandbox, and
 * no rebuild when nothing changed; local task files and their one-line errors.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parquetWriteFile } from "hyparquet-writer";
import { main } from "../pipeline/cli.ts";
import { readStageRecords, readUsableManifest } from "../pipeline/store.ts";
import { holdOut, loadTasks, tacoRowToTask, TACO_REVISION } from "../stages/rl/tasks.ts";
import { startHubServer } from "./servers/hub.ts";

let tmp: string;
let hub: Awaited<ReturnType<typeof startHubServer>>;
const saved: Record<string, string | undefined> = {};
const ENV = ["HF_ENDPOINT", "HF_HUB_CACHE", "HF_TOKEN", "HF_HUB_OFFLINE"];

const SUM = "n = int(input())\nprint(sum(map(int, input().split())))\n";
const io = (inputs: unknown[], outputs: unknown[], extra: Record<string, unknown> = {}) => JSON.stringify({ inputs, outputs, ...extra });

/** TACO-layout rows (every column a string, as in the dataset). */
function tacoRows(split: string) {
  const base = { starter_code: "", difficulty: "EASY", raw_tags: "[]", name: "", source: "codeforces", tags: "[]", skill_types: "[]", url: "", "Expected Auxiliary Space": "", time_limit: "1 second", date: "", picture_num: "0", memory_limit: "256 megabytes", "Expected Time Complexity": "" };
  const rows = [
    { ...base, question: `Sum the numbers (${split} 0).`, solutions: JSON.stringify([SUM]), input_output: io(["2\n1 2\n", "1\n5\n"], ["3\n", "5\n"]) },
    { ...base, question: "Function-call task.", solutions: JSON.stringify(["def f(x): return x"]), input_output: io([[1]], [[1]], { fn_name: "f" }) },
    { ...base, question: "No solution.", solutions: "[]", input_output: io(["1"], ["1"]) },
    { ...base, question: "Broken tests.", solutions: JSON.stringify([SUM]), input_output: "{not json" },
    { ...base, question: "Unpaired tests.", solutions: JSON.stringify([SUM]), input_output: io(["1", "2"], ["1"]) },
    // Outputs given as lists of lines; the first solution is wrong, the second right.
    { ...base, question: `Print n and 2n on two lines (${split} 5).`, solutions: JSON.stringify(["print(1)", "n = int(input())\nprint(n)\nprint(2 * n)\n"]), input_output: io(["3\n", "4\n"], [["3", "6"], ["4", "8"]]) },
    // No solution passes its own tests.
    { ...base, question: "Wrong solutions only.", solutions: JSON.stringify(["print(0)", "print(-1)"]), input_output: io(["3\n"], ["7\n"]) },
    { ...base, question: `Sum again (${split} 7).`, solutions: JSON.stringify([SUM]), input_output: io(["3\n1 1 1\n"], ["3\n"]) },
  ];
  return rows;
}

function writeTaco(file: string, rows: Record<string, string>[]) {
  const cols = Object.keys(rows[0]);
  parquetWriteFile({ filename: file, columnData: cols.map((name) => ({ name, data: rows.map((r) => r[name]), type: "STRING" as const })) });
}

async function run(cfgYaml: string, extra: string[] = []) {
  const cfg = path.join(tmp, `c-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(cfg, cfgYaml);
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(["--config", cfg, "--stage", "rl-tasks", ...extra], { stdout: (l) => out.push(l), stderr: (l) => err.push(l) });
  return { code, out, err };
}

const readTasks = (runDir: string, split: string) =>
  readFileSync(path.join(runDir, "rl-tasks", `${split}.jsonl`), "utf8").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l));

beforeAll(async () => {
  tmp = mkdtempSync(path.join(tmpdir(), "utrl-tasks-"));
  const repo = path.join(tmp, "repo");
  mkdirSync(path.join(repo, "ALL"), { recursive: true });
  writeTaco(path.join(repo, "ALL", "train-00000-of-00001.parquet"), tacoRows("train"));
  writeTaco(path.join(repo, "ALL", "test-00000-of-00001.parquet"), tacoRows("test"));
  writeFileSync(path.join(repo, "README.md"), "# TACO (fixture)\n");
  hub = await startHubServer({ root: repo, repo: "BAAI/TACO", revision: TACO_REVISION });
  for (const k of ENV) saved[k] = process.env[k];
  for (const k of ENV) delete process.env[k];
  process.env.HF_ENDPOINT = hub.url;
  process.env.HF_HUB_CACHE = path.join(tmp, "hf");
});
afterAll(async () => {
  for (const k of ENV) if (saved[k] === undefined) delete process.env[k];
  else process.env[k] = saved[k];
  await hub?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe("TACO rows → stdio tasks (App. A.3 filter)", () => {
  it("keeps rows with a solution and stdio tests; the rest are counted by reason", () => {
    const rows = tacoRows("train");
    const got = rows.map((r, i) => tacoRowToTask(r, "train", i));
    expect(got.map((g) => ("drop" in g && !("id" in g) ? g.drop : "kept"))).toEqual(["kept", "not_stdio", "no_solution", "bad_tests_json", "tests_unpaired", "kept", "kept", "kept"]);
    expect(got[5]).toMatchObject({ id: "taco-train-5", kind: "stdio", gt_code: "print(1)", gt_cases: [{ input: "3\n", output: "3\n6" }, { input: "4\n", output: "4\n8" }], difficulty: "EASY", time_limit: "1 second", source: "taco/codeforces" });
  });

  it("held-out split: deterministic, disjoint, the requested size", () => {
    const tasks = Array.from({ length: 50 }, (_, i) => ({ id: `t${i}` }));
    const a = holdOut(tasks, 10, 0);
    expect(a.held).toHaveLength(10);
    expect(a.kept).toHaveLength(40);
    expect(holdOut(tasks, 10, 0).held).toEqual(a.held);
    expect(holdOut(tasks, 10, 1).held).not.toEqual(a.held);
    expect(a.held.some((t) => a.kept.includes(t))).toBe(false);
  });

  it("builds train / valid / test from the Hub at the pinned revision; an unchanged re-run does nothing", async () => {
    const runDir = path.join(tmp, "run1");
    const yaml = `run: {dir: ${runDir}}\nrl-tasks: {valid_tasks: 1, train_gt_cases: 1}\n`;
    const r = await run(yaml);
    expect(r.err.filter((l) => l.startsWith("error"))).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.out[0]).toBe("rl-tasks train: 3 task(s) of 8 row(s) — dropped: not_stdio 1, no_solution 1, bad_tests_json 1, tests_unpaired 1");
    expect(r.out[1]).toBe("rl-tasks valid: 1 task(s)");
    const train = readTasks(runDir, "train");
    const valid = readTasks(runDir, "valid");
    expect(train.length + valid.length).toBe(4);
    expect([...train, ...valid].every((t) => t.gt_cases.length === 1)).toBe(true);
    const test = readTasks(runDir, "test");
    expect(test.map((t) => t.id)).toEqual(["taco-test-0", "taco-test-5", "taco-test-6", "taco-test-7"]);
    expect(test[0].gt_cases).toHaveLength(2); // all cases kept for evaluation
    // Every Hub request asked for the pinned commit.
    expect(hub.requests.every((q) => !q.path.includes("/resolve/") || q.path.includes(TACO_REVISION))).toBe(true);
    const again = await run(yaml);
    expect(again.out).toEqual([expect.stringMatching(/^rl-tasks: up to date \(train 3, valid 1, test 4\)/)]);
  });

  it("verification runs candidate solutions on their own cases in the sandbox and keeps the first that passes", async () => {
    const runDir = path.join(tmp, "run2");
    const r = await run(`run: {dir: ${runDir}}\nexecutor: {workers: 2}\nrl: {timeout_s: 2}\nrl-tasks: {valid_tasks: 0, verify_gt_cases: 2}\n`);
    expect(r.code).toBe(0);
    expect(r.out[0]).toBe("rl-tasks train: 3 task(s) of 8 row(s) — dropped: not_stdio 1, no_solution 1, bad_tests_json 1, tests_unpaired 1, gt_fails_own_tests 1");
    const train = readTasks(runDir, "train");
    expect(train.find((t) => t.id === "taco-train-5").gt_code).toBe("n = int(input())\nprint(n)\nprint(2 * n)\n");
    expect(train.some((t) => t.id === "taco-train-6")).toBe(false);
  });

  it("MBPP+Fix rows become function tasks whose cases (read in the sandbox) their ground truth passes", async () => {
    const runDir = path.join(tmp, "run-mbpp");
    const mini = path.resolve(__dirname, "../data/mbppplus-mini.jsonl");
    const r = await run(`run: {dir: ${runDir}}\nexecutor: {workers: 2}\nrl-tasks: {valid_tasks: 0, train_gt_cases: null, source: {kind: mbppfix, train: ${mini}}}\n`);
    expect(r.code).toBe(0);
    const tasks = readTasks(runDir, "train");
    expect(tasks.map((t) => t.id)).toEqual(["9001", "9002", "9003", "9004", "9005", "9006"]);
    expect(tasks[0]).toMatchObject({ kind: "function", question: "Add two numbers.", entry_point: "add" });
    expect(tasks[0].gt_cases[0]).toEqual({ input: expect.stringMatching(/^add\(/), output: expect.any(String) });
    // The cases' literal text round-trips: each task's ground truth passes every one of its cases.
    const rows = path.join(tmp, "mbpp-rows.jsonl");
    writeFileSync(rows, tasks.map((t) => JSON.stringify({ id: t.id, kind: t.kind, entry_point: t.entry_point, gt_code: t.gt_code, cases: t.gt_cases, codes: [] })).join("\n") + "\n");
    const out: string[] = [];
    const code = await main(["--stage", "rl-rewards", "--dataset", rows, "--json", "--run-dir", runDir, "--set", "executor.workers=2", "--set", "rl.timeout_s=2"], { stdout: (l) => out.push(l), stderr: () => {} });
    expect(code).toBe(0);
    const scored = readFileSync(path.join(runDir, "rl-rewards", "mbpp-rows", "rewards.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    for (const [i, s] of scored.entries()) expect(s.valid_cases, s.id).toBe(tasks[i].gt_cases.length);
  });

  it("source kind filter: this run's filter records become function tasks (joined by id); none yet is one line", async () => {
    const runDir = path.join(tmp, "run-filter");
    const demo = path.resolve(__dirname, "../data/demo/tulu-demo.jsonl");
    const conf = `run: {dir: ${runDir}, shard_size: 20}\nsource: {kind: local, path: ${demo}}\nexecutor: {workers: 2}\nllm: {backend: heuristic}\nfilter: {tokenizer: qwen, max_prompt_tokens: 2048}\nrl-tasks: {valid_tasks: 2, seed: 3, source: {kind: filter}}\n`;
    const early = await run(conf);
    expect(early.code).toBe(2);
    expect(early.err).toEqual([expect.stringMatching(/filter output, which is missing in .*; run --stage filter first$/)]);
    const cfg = path.join(tmp, "filter-src.yaml");
    writeFileSync(cfg, conf);
    expect(await main(["--config", cfg, "--stage", "filter"], { stdout: () => {}, stderr: () => {} })).toBe(0);
    const filtered = new Map<string, any>();
    const manifest = await readUsableManifest(runDir, "filter", null);
    for await (const rec of readStageRecords(runDir, "filter", { manifest: manifest! })) filtered.set(String(rec.id), rec);
    expect(filtered.size).toBeGreaterThan(2);
    const r = await run(conf);
    expect(r.code).toBe(0);
    const train = readTasks(runDir, "train");
    const valid = readTasks(runDir, "valid");
    expect(valid).toHaveLength(2);
    expect(existsSync(path.join(runDir, "rl-tasks", "test.jsonl")) ? readTasks(runDir, "test") : []).toEqual([]);
    const all = [...train, ...valid];
    expect(all.map((t) => t.id).sort()).toEqual([...filtered.keys()].sort());
    for (const t of all) {
      const f = filtered.get(t.id);
      expect(t).toMatchObject({ kind: "function", question: f.prompt, gt_code: f.code, entry_point: f.entry_point });
    }
  });

  it("local task files: read as they are; a bad row is one line naming file:line", async () => {
    const file = path.join(tmp, "tasks.jsonl");
    writeFileSync(file, JSON.stringify({ id: "a", kind: "function", question: "Add.", gt_code: "def add(a, b): return a + b", entry_point: "add" }) + "\n" + JSON.stringify({ id: "b", kind: "function", question: "x", gt_code: "def f(): pass" }) + "\n");
    await expect(loadTasks(file)).rejects.toThrow(`${file}:2: a function task needs "entry_point"`);
    writeFileSync(file, JSON.stringify({ id: "a", kind: "function", question: "Add.", gt_code: "def add(a, b): return a + b", entry_point: "add" }) + "\n");
    const runDir = path.join(tmp, "run3");
    const r = await run(`run: {dir: ${runDir}}\nrl-tasks: {valid_tasks: 0, source: {kind: tasks, train: ${file}}}\n`);
    expect(r.code).toBe(0);
    expect(readTasks(runDir, "train")).toEqual([{ id: "a", kind: "function", question: "Add.", gt_code: "def add(a, b): return a + b", entry_point: "add" }]);
    const bad = await run(`run: {dir: ${runDir}}\nrl-tasks: {source: {kind: taco, revision: main}}\n`);
    expect(bad.code).toBe(2);
    expect(bad.err).toEqual([expect.stringMatching(/^error: config key rl-tasks\.source\.revision: a 40-hex commit id/)]);
  });
});
