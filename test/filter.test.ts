/**
 * The filter stage end to end through the runner on the shipped demo fixture: each edge case is dropped
 * under its named reason, re-runs are incremental (no-change, config change with the reason, appended
 * rows), and a real `kill -9` mid-stage followed by a re-run gives exactly the uninterrupted result.
 */
import { afterAll, describe, expect, it } from "vitest";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { spawn } from "node:child_process";
import { exited, untilHold } from "./helpers/hold.ts";
import { main } from "../pipeline/cli.ts";
import { readStageDrops, readStageRecords } from "../pipeline/store.ts";
import { scratchDirs } from "../stages/heuristic/context.ts";

const ROOT = path.resolve(__dirname, "..");
const DEMO = path.join(ROOT, "data/demo/tulu-demo.jsonl");

async function run(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(["--config", path.join(ROOT, "configs/demo.yaml"), ...args], { stdout: (l) => out.push(l), stderr: (l) => err.push(l) });
  return { code, out: out.join("\n"), err: err.join("\n") };
}
async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const a: T[] = [];
  for await (const x of it) a.push(x);
  return a;
}
const scratch = scratchDirs("utgen-filter-");
const tmp = () => scratch.make();
afterAll(() => scratch.removeAll());

const EXPECTED_DROPS: Record<string, string> = {
  "demo-wildchat-0104": "no_code_block",
  "demo-wildchat-0105": "no_assistant_turn",
  "demo-evol_codealpaca-0106": "non_python_code",
  "demo-personahub_code-0107": "syntax_error",
  "demo-evol_codealpaca-0108": "exec_error",
  "demo-wildchat-0109": "exec_error",
  "demo-wildchat-0110": "exec_timeout",
  "demo-personahub_code-0111": "no_function",
  "demo-wildchat-0112": "prompt_too_long",
  "demo-wildchat-0113": "invalid_unicode",
  "demo-wildchat-0114": "duplicate",
  "demo-evol_codealpaca-0115": "no_python_mention",
  "demo-personahub_code-0116": "no_def_mention",
  "demo-wildchat-0117": "no_python_mention",
};

describe("filter stage through the runner", () => {
  it("keeps the good tasks and drops each edge case under its reason", async () => {
    const dir = tmp();
    const r = await run(["--stage", "filter", "--run-dir", dir]);
    expect(r.err).not.toMatch(/^error/m);
    expect(r.code).toBe(0);
    const kept = await collect(readStageRecords(dir, "filter"));
    const drops = await collect(readStageDrops(dir, "filter"));
    const byId = Object.fromEntries(drops.map((d) => [d.id, d.reason]));
    expect(byId).toEqual(EXPECTED_DROPS);
    expect(kept).toHaveLength(23);
    const k = kept.find((x) => x.id === "demo-personahub_code-0001")!;
    expect(k.entry_point).toBe("sum_of_squares");
    expect(k.signature).toMatch(/^sum_of_squares\(n: int\)/);
    expect(k.code).toContain("def sum_of_squares");
    // the multi-turn row keeps the LAST user turn as the task and the last assistant code
    const multi = kept.find((x) => x.id === "demo-personahub_code-0102")!;
    expect(multi.provenance).toMatchObject({ turns: 4 });
    // stats: per source and reason, and the printed table
    const stats = JSON.parse(readFileSync(path.join(dir, "filter/stats.json"), "utf8"));
    expect(stats.in).toBe(37);
    expect(stats.out).toBe(23);
    expect(stats.reasons.exec_error).toBe(2);
    expect(stats.bySource["demo/wildchat"].reasons.duplicate).toBe(1);
    expect(r.err).toMatch(/\| TOTAL +\| 37 +\| 23 /);
    // every row that reached the execution check is counted, decided in the server or in a child
    // (executor.static_check): the demo's kept functions only define names, the failing ones must run
    const reached = kept.length + drops.filter((d) => ["syntax_error", "exec_error", "exec_timeout", "no_function"].includes(d.reason)).length;
    expect(stats.counters.checks_static + stats.counters.checks_forked).toBe(reached);
    expect(stats.counters.checks_static).toBeGreaterThan(0);
    expect(stats.counters.checks_forked).toBeGreaterThanOrEqual(4);
    // and with every check in a child, the same records and drops
    const strict = tmp();
    const s2 = await run(["--stage", "filter", "--run-dir", strict, "--set", "executor.static_check=false"]);
    expect(s2.code).toBe(0);
    expect(await collect(readStageRecords(strict, "filter"))).toEqual(kept);
    expect(await collect(readStageDrops(strict, "filter"))).toEqual(drops);
    const stats2 = JSON.parse(readFileSync(path.join(strict, "filter/stats.json"), "utf8"));
    expect(stats2.counters).toMatchObject({ checks_forked: reached });
    expect(stats2.counters.checks_static ?? 0).toBe(0);
  });

  it("re-runs incrementally: nothing changed → no work; config change → recompute with the reason; new rows → only those", async () => {
    const dir = tmp();
    const input = path.join(dir, "src.jsonl");
    const lines = readFileSync(DEMO, "utf8").split("\n").filter(Boolean);
    writeFileSync(input, lines.slice(0, 30).join("\n") + "\n");
    const first = await run(["--stage", "filter", "--run-dir", dir, "--input", input]);
    expect(first.code).toBe(0);
    const again = await run(["--stage", "filter", "--run-dir", dir, "--input", input]);
    expect(again.err).toMatch(/filter: up to date/);
    const st = await run(["--status", "--run-dir", dir, "--input", input, "--set", "filter.max_prompt_tokens=100"]);
    expect(st.out).toMatch(/\| filter +\| stale +\|.*config filter\.max_prompt_tokens: 2048 → 100/);
    const perf = await run(["--status", "--run-dir", dir, "--input", input, "--set", "filter.concurrency=3"]);
    expect(perf.out).toMatch(/\| filter +\| done +\|/);
    writeFileSync(input, lines.join("\n") + "\n");
    const grown = await run(["--stage", "filter", "--run-dir", dir, "--input", input]);
    expect(grown.err).toMatch(/filter: done .* 7 record\(s\) processed/);
    // equals a fresh build
    const fresh = tmp();
    await run(["--stage", "filter", "--run-dir", fresh, "--input", input]);
    expect(await collect(readStageRecords(dir, "filter"))).toEqual(await collect(readStageRecords(fresh, "filter")));
  });

  it("survives kill -9 mid-stage: the re-run completes with exactly the uninterrupted records", async () => {
    const dir = tmp();
    const input = path.join(dir, "big.jsonl");
    const lines = readFileSync(DEMO, "utf8").split("\n").filter(Boolean);
    const rows: string[] = [];
    for (let k = 0; k < 4; k++)
      for (const l of lines) {
        const r = JSON.parse(l);
        if (r.id === "demo-wildchat-0110") continue; // its 2 s import loop adds time, not coverage
        r.id = `${r.id}-copy${k}`;
        r.messages[0].content += ` (variant ${k})`;
        rows.push(JSON.stringify(r));
      }
    writeFileSync(input, rows.join("\n") + "\n");
    const ref = tmp();
    const args = ["--stage", "filter", "--input", input, "--set", "run.shard_size=6"];
    expect((await run([...args, "--run-dir", ref])).code).toBe(0);
    // The child holds after writing its 3rd shard (UTGEN_TEST_HOLD: a point the test controls); kill it there.
    const child = spawn(process.execPath, ["pipeline/run.mjs", "--config", "configs/demo.yaml", ...args, "--run-dir", dir], {
      cwd: ROOT,
      detached: true,
      stdio: ["ignore", "ignore", "pipe"],
      env: { ...process.env, UTGEN_TEST_HOLD: "filter:3" },
    });
    await untilHold(child, "filter 3");
    process.kill(-child.pid!, "SIGKILL");
    await exited(child);
    expect(existsSync(path.join(dir, "filter", "manifest.json"))).toBe(false);
    expect(readdirSync(path.join(dir, "filter", "shards")).filter((f) => f.endsWith(".done.json"))).toHaveLength(3);
    const resumed = await run([...args, "--run-dir", dir]);
    expect(resumed.code).toBe(0);
    expect(resumed.err).toMatch(/filter: done .* \d+ shard\(s\) computed, 3 reused/);
    expect(await collect(readStageRecords(dir, "filter"))).toEqual(await collect(readStageRecords(ref, "filter")));
    expect(await collect(readStageDrops(dir, "filter"))).toEqual(await collect(readStageDrops(ref, "filter")));
  });
});

describe("the sandbox starts while the input is read (filter.warm), only for a fresh stage", () => {
  // A stand-in interpreter that notes each start in a file and exits: the executor never gets ready. (Unsafe
  // mode starts it directly, so the note lands in this test's folder; no generated code runs anywhere here.)
  function fakePython(dir: string): { python: string; starts: () => number } {
    const log = path.join(dir, "starts.log");
    const python = path.join(dir, "python3");
    writeFileSync(python, `#!/bin/sh\necho started >> '${log}'\nexit 3\n`, { mode: 0o755 });
    return { python, starts: () => (existsSync(log) ? readFileSync(log, "utf8").split("\n").filter(Boolean).length : 0) };
  }
  const rows = (texts: string[]) =>
    texts.map((t, i) => JSON.stringify({ id: `w${i}`, source: "t", messages: [{ role: "user", content: t }, { role: "assistant", content: "No code here." }] })).join("\n") + "\n";

  it("a fresh stage starts it before any row needs it; a rerun that reuses every shard never does", async () => {
    const dir = tmp();
    const fake = fakePython(dir);
    const input = path.join(dir, "in.jsonl");
    writeFileSync(input, rows(["Tell me about tea.", "And coffee?"])); // no row reaches the execution check
    const set = ["--set", `executor.python=${fake.python}`, "--set", "executor.unsafe_no_sandbox=true", "--set", "executor.workers=1"];
    const first = await run(["--stage", "filter", "--input", input, "--run-dir", path.join(dir, "run"), "--allow-empty", ...set]);
    expect(first.code).toBe(0); // nothing waited for the sandbox, so its failure to start stops nothing
    expect(fake.starts()).toBeGreaterThanOrEqual(1);
    const before = fake.starts();
    const again = await run(["--stage", "filter", "--input", input, "--run-dir", path.join(dir, "run"), "--allow-empty", ...set]);
    expect(again.code).toBe(0);
    expect(again.err).toMatch(/up to date/);
    expect(fake.starts()).toBe(before);
    // before the input is opened: an input whose format cannot be told stops the run in open's place, after warm()
    const odd = path.join(dir, "in.txt");
    writeFileSync(odd, rows(["Tea?"]));
    const third = await run(["--stage", "filter", "--input", odd, "--run-dir", path.join(dir, "run3"), ...set]);
    expect(third.code).toBe(2);
    expect(third.err).toMatch(/cannot tell the format of .*in\.txt/);
    expect(fake.starts()).toBeGreaterThan(before);
  });

  it("a row that needs a sandbox that cannot start stops the stage with one line", async () => {
    const dir = tmp();
    const fake = fakePython(dir);
    const r = await run(["--stage", "filter", "--input", DEMO, "--run-dir", path.join(dir, "run"), "--set", `executor.python=${fake.python}`, "--set", "executor.unsafe_no_sandbox=true", "--set", "executor.workers=1"]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^error: .*sandbox did not start.*exited \(3\)$/m);
    expect(r.err).not.toMatch(/^\s+at /m); // no stack trace
    expect(fake.starts()).toBeGreaterThanOrEqual(1);
    expect(existsSync(path.join(dir, "run/filter/manifest.json"))).toBe(false);
  });
});

describe("App. B keyword readings as config keys (filter.keyword_scope, filter.keyword_case)", () => {
  const answer = "```python\ndef f(x):\n    return x + 1\n```";
  const rows = [
    // "Python" capitalised: kept unless the case must be exactly "python"
    { id: "cap", source: "t", messages: [{ role: "user", content: "Write a Python function def f(x) that adds one." }, { role: "assistant", content: answer }] },
    // no keyword in the task: only the whole conversation (the answer's fence and def) passes it
    { id: "answer-only", source: "t", messages: [{ role: "user", content: "Add one to a number, please." }, { role: "assistant", content: answer }] },
    // the keywords are in an earlier user turn only
    {
      id: "earlier-turn",
      source: "t",
      messages: [
        { role: "user", content: "I work in python and like def statements." },
        { role: "assistant", content: "Sure." },
        { role: "user", content: "Now a function that adds one." },
        { role: "assistant", content: answer },
      ],
    },
  ];
  async function kept(sets: string[]): Promise<Record<string, string>> {
    const dir = tmp();
    try {
      const input = path.join(dir, "rows.jsonl");
      writeFileSync(input, rows.map((r) => JSON.stringify(r)).join("\n") + "\n");
      const r = await run(["--stage", "filter", "--run-dir", path.join(dir, "run"), "--input", input, "--allow-empty", ...sets.flatMap((s) => ["--set", s])]);
      expect(r.code, r.err).toBe(0);
      const out: Record<string, string> = {};
      for (const k of await collect(readStageRecords(path.join(dir, "run"), "filter"))) out[k.id] = "kept";
      for (const d of await collect(readStageDrops(path.join(dir, "run"), "filter"))) out[d.id] = d.reason;
      return out;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  it("defaults: the last user turn, any case", async () => {
    expect(await kept([])).toEqual({ cap: "kept", "answer-only": "no_python_mention", "earlier-turn": "no_python_mention" });
  });
  it("keyword_case sensitive drops 'Python'; keyword_scope all_user / conversation widen the text searched", async () => {
    expect((await kept(["filter.keyword_case=sensitive"])).cap).toBe("no_python_mention");
    expect(await kept(["filter.keyword_scope=all_user"])).toEqual({ cap: "kept", "answer-only": "no_python_mention", "earlier-turn": "kept" });
    expect(await kept(["filter.keyword_scope=conversation"])).toEqual({ cap: "kept", "answer-only": "kept", "earlier-turn": "kept" });
  });
});
