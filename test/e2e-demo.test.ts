// End to end: the real runner on configs/demo.yaml (heuristic backend) into temp run folders.
// Asserts on the emitted examples themselves: every example's input, re-run in the sandbox, makes the
// buggy code disagree with gold, and its Output literal is gold's output. Then the incremental cases:
// a re-run does nothing, a rationalize-only change reuses perturb and attack, kill -9 during attack
// followed by a re-run gives the same examples, and --shard 0/2 + 1/2 + merge equals the whole run.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { main } from "../pipeline/cli.ts";
import { readStageRecords } from "../pipeline/store.ts";
import { createExecutor, formatPyValue, outputsMatch, parseCallLiteral, type Executor } from "../pipeline/executor/index.ts";
import { parseUnitTest } from "../stages/parsers.ts";
import { exited, untilHold } from "./helpers/hold.ts";

const ROOT = path.resolve(__dirname, "..");
const DEMO = path.join(ROOT, "configs/demo.yaml");
const dirs: string[] = [];
let executor: Executor;

function tmp(): string {
  const d = mkdtempSync(path.join(tmpdir(), "utgen-e2e-"));
  dirs.push(d);
  return d;
}

async function cli(args: string[]) {
  const err: string[] = [];
  const code = await main(["--config", DEMO, ...args], { stdout: () => {}, stderr: (l) => err.push(l) });
  return { code, err: err.join("\n") };
}

function readJsonl(file: string): any[] {
  return readFileSync(file, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
}

function sft(runDir: string, name: string): any[] {
  return readJsonl(path.join(runDir, "emit-sft", "sft", name));
}

/** The examples of a run as a sorted list of (id, assistant text), for comparing runs. */
function examples(runDir: string): string[] {
  return [...sft(runDir, "train.messages.jsonl"), ...sft(runDir, "valid.messages.jsonl")]
    .map((r) => `${r.metadata.id}\u0000${r.messages.at(-1).content}`)
    .sort();
}

beforeAll(async () => {
  executor = await createExecutor({});
});
afterAll(async () => {
  await executor?.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** The reference whole run (built once, by whichever test needs it first). */
let wholeP: Promise<string> | undefined;
function wholeRun(): Promise<string> {
  return (wholeP ??= (async () => {
    const dir = tmp();
    const r = await cli(["--run-dir", dir]);
    expect(r.code, r.err).toBe(0);
    return dir;
  })());
}

describe("demo config end to end (heuristic backend)", () => {
  it("emits a non-empty SFT set whose every example is verified in the sandbox", async () => {
    const whole = await wholeRun();
    const train = sft(whole, "train.messages.jsonl");
    const valid = sft(whole, "valid.messages.jsonl");
    expect(train.length).toBeGreaterThan(0);
    expect(valid.length).toBeGreaterThan(0);

    // join every example with its upstream record (gold and buggy code)
    const recs = new Map<string, any>();
    for await (const rec of readStageRecords(whole, "rationalize")) recs.set(rec.id, rec);
    for (const ex of [...train, ...valid]) {
      const rec = recs.get(ex.metadata.id);
      expect(rec, ex.metadata.id).toBeDefined();
      const [user, assistant] = ex.messages;
      expect(user.role).toBe("user");
      expect(user.content).toContain(rec.buggy_code.trim());
      expect(assistant.role).toBe("assistant");

      // the assistant message parses back (with the validate stage's parser) to the example's input and output
      const pu = parseUnitTest(assistant.content, rec.entry_point);
      expect(pu.ok, assistant.content).toBe(true);
      if (!pu.ok) continue;
      const call = parseCallLiteral(pu.argsText, rec.entry_point);
      expect(call.ok).toBe(true);
      if (!call.ok) continue;

      const [gold] = await executor.runCalls({ program: rec.code, entryPoint: rec.entry_point, inputs: [call.args], timeoutS: 2 });
      const [buggy] = await executor.runCalls({ program: rec.buggy_code, entryPoint: rec.entry_point, inputs: [call.args], timeoutS: 2 });
      expect(gold.status, `${ex.metadata.id}: gold runs on ${pu.argsText}`).toBe("ok");
      expect(pu.outputText?.trim()).toBe(formatPyValue(gold.value!));
      expect(ex.metadata.gold_output_text).toBe(formatPyValue(gold.value!));
      const disagrees = buggy.status !== "ok" || !outputsMatch(buggy.value!, gold.value!);
      expect(disagrees, `${ex.metadata.id}: buggy code disagrees with gold on ${pu.argsText}`).toBe(true);
    }

    // split by problem: no problem on both sides; valid.problems has one row per held-out buggy program
    const trainProblems = new Set(train.map((e) => e.metadata.problem_id));
    const validProblems = new Set(valid.map((e) => e.metadata.problem_id));
    for (const p of validProblems) expect(trainProblems.has(p)).toBe(false);
    const problems = sft(whole, "valid.problems.jsonl");
    expect(new Set(problems.map((p) => p.task_id))).toEqual(new Set(valid.map((e) => e.metadata.bug_id)));
    for (const p of problems) expect(Object.keys(p).sort()).toEqual(["canonical_solution", "code", "entry_point", "prompt", "signature", "task_id"]);

    // prompt-completion variant holds the same examples
    const pc = sft(whole, "train.prompt_completion.jsonl");
    expect(pc.map((r) => r.completion[0].content)).toEqual(train.map((r) => r.messages.at(-1).content));
    expect(pc.every((r) => r.prompt.at(-1).role === "user")).toBe(true);

    const card = readFileSync(path.join(whole, "emit-sft", "sft", "data_card.md"), "utf8");
    expect(card).toMatch(/\| attack \| \d+ \| \d+ \| \d+ \|/);
    expect(card).toContain(`| train | ${train.length} |`);
  });

  it("re-runs nothing; a rationalize-only change reuses perturb and attack", async () => {
    const whole = await wholeRun();
    const again = await cli(["--run-dir", whole]);
    expect(again.code, again.err).toBe(0);
    for (const s of ["filter", "perturb", "attack", "rationalize", "emit-sft"]) expect(again.err).toContain(`${s}: up to date`);

    const before = examples(whole);
    const changed = await cli(["--run-dir", whole, "--set", "rationalize.min_prose_chars=41"]);
    expect(changed.code, changed.err).toBe(0);
    expect(changed.err).toContain("perturb: up to date");
    expect(changed.err).toContain("attack: up to date");
    expect(changed.err).not.toContain("rationalize: up to date");
    expect(examples(whole)).toEqual(before); // template rationales do not depend on that knob
  });

  it("kill -9 during attack, then a re-run, gives the same examples", async () => {
    const runDir = tmp();
    // start from the whole run's filter output (copied: it is content-addressed, so it is up to date here)
    cpSync(path.join(await wholeRun(), "filter"), path.join(runDir, "filter"), { recursive: true });
    // The run holds after writing attack's 2nd shard (UTGEN_TEST_HOLD: a point the test controls) and is killed there.
    const child = spawn(process.execPath, [path.join(ROOT, "pipeline/run.mjs"), "--config", DEMO, "--run-dir", runDir, "--set", "run.shard_size=3"], {
      cwd: ROOT,
      detached: true,
      stdio: ["ignore", "ignore", "pipe"],
      env: { ...process.env, UTGEN_TEST_HOLD: "attack:2" },
    });
    await untilHold(child, "attack 2");
    process.kill(-child.pid!, "SIGKILL");
    await exited(child);
    expect(existsSync(path.join(runDir, "emit-sft", "sft", "train.messages.jsonl"))).toBe(false);
    const resumed = await cli(["--run-dir", runDir, "--set", "run.shard_size=3"]);
    expect(resumed.code, resumed.err).toBe(0);
    expect(resumed.err).toContain("filter: up to date");
    expect(resumed.err).toContain("perturb: up to date");
    expect(resumed.err).toMatch(/attack: done .* \d+ shard\(s\) computed, 2 reused/);
    expect(examples(runDir)).toEqual(examples(await wholeRun()));
  });

  it("--shard 0/2 and 1/2 then merge equal the whole run", async () => {
    const runDir = tmp();
    const first = await cli(["--run-dir", runDir, "--shard", "0/2"]);
    expect(first.code, first.err).toBe(0);
    // a merge before every slice is done names what is missing and writes nothing
    const early = await cli(["--run-dir", runDir, "--stage", "merge"]);
    expect(early.code).toBe(2);
    expect(early.err).toContain("filter: shard(s) 1 of 2 have not finished; perturb: shard(s) 1 of 2 have not finished");
    expect(early.err).toContain("nothing was merged");
    for (const s of ["filter", "perturb", "attack", "rationalize", "emit-sft"]) expect(existsSync(path.join(runDir, s, "manifest.json")), s).toBe(false);
    const second = await cli(["--run-dir", runDir, "--shard", "1/2"]);
    expect(second.code, second.err).toBe(0);
    const m = await cli(["--run-dir", runDir, "--stage", "merge"]);
    expect(m.code, m.err).toBe(0);
    // Rows go to slices by their task text, so the demo's duplicate prompt pair meets in one slice and the
    // filter's de-duplication drops the same row as in the whole run: identical examples.
    expect(examples(runDir)).toEqual(examples(await wholeRun()));
    // byte for byte: emit-sft writes examples in id order, whatever order the slices were merged in
    for (const f of ["train.messages.jsonl", "valid.messages.jsonl", "train.prompt_completion.jsonl", "valid.problems.jsonl"]) {
      expect(readFileSync(path.join(runDir, "emit-sft", "sft", f), "utf8"), f).toBe(readFileSync(path.join(await wholeRun(), "emit-sft", "sft", f), "utf8"));
    }
    // after the merge, a slice re-run continues from its own slices (not the merged, re-sliced upstream)
    const rerun = await cli(["--run-dir", runDir, "--shard", "1/2"]);
    expect(rerun.code, rerun.err).toBe(0);
    for (const s of ["filter", "perturb", "attack", "rationalize", "emit-sft"]) expect(rerun.err).toContain(`${s}: up to date`);
    const dups = [0, 1].map((i) => JSON.parse(readFileSync(path.join(runDir, "filter", `manifest.shard-${i}-of-2.json`), "utf8")).counts.reasons.duplicate ?? 0);
    expect(dups[0] + dups[1]).toBe(1);
  });

  it("an unsharded filter, then perturb → emit-sft in two slices, then merge equal the whole run", async () => {
    // perturb reads the whole filter output and slices it by problem id; attack onwards read their
    // upstream's slice as it is.
    const runDir = tmp();
    const f = await cli(["--run-dir", runDir, "--to", "filter"]);
    expect(f.code, f.err).toBe(0);
    const processed: number[] = [];
    for (const s of ["0/2", "1/2"]) {
      const r = await cli(["--run-dir", runDir, "--from", "perturb", "--shard", s]);
      expect(r.code, r.err).toBe(0);
      processed.push(Number(/perturb: done .* (\d+) record\(s\) processed/.exec(r.err)?.[1]));
    }
    expect(processed.every((n) => n > 0)).toBe(true);
    const m = await cli(["--run-dir", runDir, "--stage", "merge"]);
    expect(m.code, m.err).toBe(0);
    expect(examples(runDir)).toEqual(examples(await wholeRun()));
  });
});
