// The runner tells the truth about a run folder and fails in one line:
//  - the folder remembers its source and --input (a re-run without the flag uses it, or stops in one line);
//  - --status compares the input's digest, --limit and config with what was built (stale + why, pending
//    behind a stage that rebuilds, a half-built stage as "in progress k shards");
//  - file-system problems with the run folder are one line, exit 2 (EACCES, a parent that is a file, /proc/x);
//  - malformed input rows are named (count, first file:line); an empty input or one whose every row is
//    dropped exits 2 unless --allow-empty.
import { afterAll, describe, expect, it } from "vitest";
import { spawn, spawnSync } from "node:child_process";
import { appendFileSync, chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { main } from "../pipeline/cli.ts";
import { scratchDirs } from "../stages/heuristic/context.ts";
import { exited, untilHold } from "./helpers/hold.ts";

const ROOT = path.resolve(__dirname, "..");
const DEMO_ROWS = path.join(ROOT, "data/demo/tulu-demo.jsonl");
const scratch = scratchDirs("utgen-truth-");
afterAll(() => scratch.removeAll());

async function run(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(["--config", path.join(ROOT, "configs/demo.yaml"), ...args], { stdout: (l) => out.push(l), stderr: (l) => err.push(l) });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

/** The --status row of a stage: [state, why]. */
function row(status: string, stage: string): [string, string] {
  const line = status.split("\n").find((l) => l.startsWith(`| ${stage} `));
  if (!line) throw new Error(`no ${stage} row in:\n${status}`);
  const cells = line.split("|").map((c) => c.trim());
  return [cells[2], cells[5]];
}

/** The first n demo rows (good Python tasks come first in the file). */
function demoRows(n: number): string {
  return readFileSync(DEMO_ROWS, "utf8").split("\n").filter(Boolean).slice(0, n).join("\n") + "\n";
}

describe("run folder memory and --status", () => {
  it("remembers --input: a plain re-run and --status use it; a vanished input stops in one line", async () => {
    const dir = scratch.make();
    const input = path.join(dir, "rows.jsonl");
    writeFileSync(input, demoRows(6));
    const runDir = path.join(dir, "run");
    const first = await run(["--stage", "filter", "--input", input, "--run-dir", runDir]);
    expect(first.code, first.err).toBe(0);
    const rec = JSON.parse(readFileSync(path.join(runDir, "run.json"), "utf8")).source;
    expect(rec).toMatchObject({ kind: "local", input, path: input });
    // without --input: the recorded input, not configs/demo.yaml's source (which would rebuild)
    const again = await run(["--stage", "filter", "--run-dir", runDir]);
    expect(again.code, again.err).toBe(0);
    expect(again.err).toContain(`source: --input ${input}, as recorded in ${path.join(runDir, "run.json")}`);
    expect(again.err).toContain("filter: up to date");
    const st = await run(["--status", "--run-dir", runDir]);
    expect(row(st.out, "filter")).toEqual(["done", "up to date"]);
    expect(st.out).toContain(`(--input ${input})`);
    // the input is edited: stale, and the next stage waits for it
    appendFileSync(input, demoRows(8).split("\n").slice(6).join("\n") + "\n");
    const edited = await run(["--status", "--run-dir", runDir]);
    expect(row(edited.out, "filter")[0]).toBe("stale");
    expect(row(edited.out, "filter")[1]).toMatch(/^the input changed since this was built \(local .*rows\.jsonl\)$/);
    // gone: one line, exit 2
    rmSync(input);
    const gone = await run(["--stage", "filter", "--run-dir", runDir]);
    expect(gone.code).toBe(2);
    expect(gone.err).toBe(`error: ${runDir} was built with --input ${input}, which no longer exists; pass --input <file or folder> to choose the source`);
  });

  it("--limit and config are compared with what was built; a stage behind one that rebuilds is pending", async () => {
    const dir = scratch.make();
    const input = path.join(dir, "rows.jsonl");
    writeFileSync(input, demoRows(6));
    const runDir = path.join(dir, "run");
    const built = await run(["--to", "perturb", "--limit", "4", "--input", input, "--run-dir", runDir]);
    expect(built.code, built.err).toBe(0);
    const plain = await run(["--status", "--run-dir", runDir]);
    for (const s of ["filter", "perturb"]) expect(row(plain.out, s)).toEqual(["stale", "built with --limit 4; a run without --limit rebuilds it"]);
    const same = await run(["--status", "--limit", "4", "--run-dir", runDir]);
    expect(row(same.out, "filter")).toEqual(["done", "up to date"]);
    expect(row(same.out, "perturb")).toEqual(["done", "up to date"]);
    expect(row(same.out, "attack")).toEqual(["missing", "never built"]);
    const cfg = await run(["--status", "--limit", "4", "--run-dir", runDir, "--set", "perturb.n_bugs=3"]);
    expect(row(cfg.out, "perturb")).toEqual(["stale", "config perturb.n_bugs: 2 → 3"]);
    // the input changes: filter rebuilds first, perturb waits for its output
    writeFileSync(input, demoRows(7));
    const edited = await run(["--status", "--limit", "4", "--run-dir", runDir]);
    expect(row(edited.out, "filter")[0]).toBe("stale");
    expect(row(edited.out, "perturb")).toEqual(["pending", "filter rebuilds first; this is kept if filter's output comes out the same"]);
  });

  it("a half-built stage (killed mid-way) is in progress with the shards written, not missing", async () => {
    const dir = scratch.make();
    const runDir = path.join(dir, "run");
    const child = spawn(process.execPath, ["pipeline/run.mjs", "--stage", "filter", "--run-dir", runDir, "--set", "run.shard_size=4"], {
      cwd: ROOT,
      detached: true,
      stdio: ["ignore", "ignore", "pipe"],
      env: { ...process.env, UTGEN_TEST_HOLD: "filter:2" },
    });
    await untilHold(child, "filter 2");
    process.kill(-child.pid!, "SIGKILL");
    await exited(child);
    const st = await run(["--status", "--run-dir", runDir, "--set", "run.shard_size=4"]);
    const [state, why] = row(st.out, "filter");
    expect(state).toBe("in progress");
    expect(why).toMatch(/^2 shard\(s\) written \(8 input records\), still running, or stopped by a kill \(last write .*\); a re-run resumes from there$/);
    expect(row(st.out, "perturb")[0]).toBe("missing");
  });
});

describe("file-system problems with the run folder are one line, exit 2", () => {
  const oneLine = (r: { code: number | null; err: string }, re: RegExp) => {
    expect(r.code, r.err).toBe(2);
    expect(r.err.trim().split("\n"), r.err).toHaveLength(1);
    expect(r.err.trim()).toMatch(re);
  };

  it("a parent that is a file, and a run folder that is a file", async () => {
    const dir = scratch.make();
    const file = path.join(dir, "plain");
    writeFileSync(file, "x");
    oneLine(await run(["--stage", "filter", "--run-dir", path.join(file, "run")]), /^error: cannot use the run folder .*plain\/run: .*plain is not a folder \(a parent is a file, not a folder\); choose another --run-dir/);
    oneLine(await run(["--stage", "filter", "--run-dir", file]), /^error: cannot use the run folder .*plain: .*plain is not a folder \(a file of that name exists\)/);
  });

  it("/proc/x: one line, no spin (the process ends by itself)", () => {
    // a child, so that a regression (Node's recursive mkdir loops on /proc) ends at its timeout, not the suite's
    const r = spawnSync(process.execPath, ["pipeline/run.mjs", "--stage", "filter", "--run-dir", "/proc/utgen-x/run"], { cwd: ROOT, encoding: "utf8", timeout: 50_000 });
    expect(r.error).toBeUndefined();
    oneLine({ code: r.status, err: r.stderr }, /^error: cannot use the run folder \/proc\/utgen-x\/run: cannot create \/proc\/utgen-x \(folders cannot be created there\)/);
  });

  it("EACCES: a folder this user may not write (as root: the runner runs as nobody)", () => {
    const dir = scratch.make();
    chmodSync(dir, 0o755);
    const locked = path.join(dir, "locked");
    mkdirSync(locked, { mode: 0o555 });
    chmodSync(locked, 0o555);
    const tmp = path.join(dir, "tmp"); // tsx's cache for the unprivileged child
    mkdirSync(tmp);
    chmodSync(tmp, 0o777);
    const root = process.getuid?.() === 0;
    // the private test TMPDIR is 0700: let nobody through to these folders for this test
    const tmpRoot = path.dirname(dir);
    if (root) chmodSync(tmpRoot, 0o755);
    try {
      const argv = [process.execPath, "pipeline/run.mjs", "--stage", "filter", "--run-dir", path.join(locked, "run")];
      const cmd = root ? ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", ...argv] : argv;
      const r = spawnSync(cmd[0], cmd.slice(1), { cwd: ROOT, encoding: "utf8", timeout: 50_000, env: { ...process.env, TMPDIR: tmp, HOME: tmp } });
      oneLine({ code: r.status, err: r.stderr }, /^error: cannot use the run folder .*locked\/run: cannot create .*locked\/run \(permission denied\)/);
    } finally {
      if (root) chmodSync(tmpRoot, 0o700);
      chmodSync(locked, 0o755);
    }
  });
});

describe("malformed and empty input", () => {
  it("malformed rows: a warning with the count and the first file:line, exit 0", async () => {
    const dir = scratch.make();
    const input = path.join(dir, "rows.jsonl");
    const good = demoRows(4).split("\n").filter(Boolean);
    writeFileSync(input, [good[0], "{not json", good[1], JSON.stringify({ id: "x", messages: "no" }), good[2], good[3].slice(0, 40)].join("\n") + "\n");
    const r = await run(["--stage", "filter", "--input", input, "--run-dir", path.join(dir, "run")]);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toContain(`warning: 3 malformed input rows dropped as bad_row; the first: rows.jsonl:2: not valid JSON (source: local ${input})`);
  });

  it("an empty input, or one whose every row is dropped, exits 2 in one line unless --allow-empty", async () => {
    const dir = scratch.make();
    const empty = path.join(dir, "empty.jsonl");
    writeFileSync(empty, "\n");
    const e = await run(["--stage", "filter", "--input", empty, "--run-dir", path.join(dir, "a")]);
    expect(e.code, e.err).toBe(2);
    expect(e.err.split("\n").at(-1)).toBe(`error: the input has no rows (local ${empty}); nothing to build on — fix the input, or pass --allow-empty to accept it`);
    expect((await run(["--stage", "filter", "--input", empty, "--run-dir", path.join(dir, "a"), "--allow-empty"])).code).toBe(0);
    const prose = path.join(dir, "prose.jsonl");
    const rows = [0, 1, 2].map((i) => JSON.stringify({ id: `p${i}`, messages: [{ role: "user", content: `write a poem ${i}` }, { role: "assistant", content: "roses" }] }));
    writeFileSync(prose, rows.join("\n") + "\n");
    const d = await run(["--input", prose, "--run-dir", path.join(dir, "b")]);
    expect(d.code, d.err).toBe(2);
    expect(d.err.split("\n").at(-1)).toMatch(/^error: filter dropped every one of the 3 input rows \(no_python_mention 3\); the drops and their reasons are in .*\/b\/filter\/shards\/\*\.drop\.jsonl; nothing to build on/);
    expect(d.err).not.toContain("perturb:"); // the run stopped there
  });
});
