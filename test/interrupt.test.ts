// Interrupting a run (SIGINT / SIGTERM) at points the test controls: the loopback model server sends the
// signal when it receives a given request, so the verdicts never depend on timing. A stopped run keeps what
// is complete, lets calls in flight finish (their answers reach the cache, so the re-run repeats none),
// prints one line and exits 130 / 143; the re-run finishes with exactly the uninterrupted result. Also: the
// terminal is restored after Ctrl-C during a progress bar (in a pseudo-terminal), and a closed stdout
// (`--help | head`) is not an error.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { cpSync, existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { main } from "../pipeline/cli.ts";
import { scratchDirs } from "../stages/heuristic/context.ts";
import { startOpenAIServer, type OpenAIServer, type ScriptRequest, type ScriptedReply } from "./servers/openai.ts";
import { promptKind, utgenModel, type PromptKind } from "./servers/utgen-model.ts";
import { untilHold } from "./helpers/hold.ts";

const ROOT = path.resolve(__dirname, "..");
const RUNNER = path.join(ROOT, "pipeline/run.mjs");
const scratch = scratchDirs("utgen-interrupt-");
let server: OpenAIServer;
let dir: string;
let base: string;
/** Calls of an uninterrupted run from `base` (attack → emit-sft), keyed by prompt, n and seed. */
let reference: Map<string, number>;
let cleanExamples: string[];

let hook: ((req: ScriptRequest) => ScriptedReply | Promise<ScriptedReply>) | undefined;
const callKey = (b: any) => JSON.stringify(b.messages) + `|n=${b.n ?? 1}|seed=${b.seed}`;
const kindOf = (req: ScriptRequest): PromptKind => promptKind(String(req.messages.at(-1)?.content ?? ""));
function multiset(bodies: any[]): Record<string, number> {
  const m: Record<string, number> = {};
  for (const b of bodies) m[callKey(b)] = (m[callKey(b)] ?? 0) + 1;
  return m;
}

async function cli(args: string[]) {
  const err: string[] = [];
  const code = await main(["--config", path.join(dir, "c.yaml"), ...args], { stdout: () => {}, stderr: (l) => err.push(l) });
  return { code, err: err.join("\n") };
}

function examples(run: string): string[] {
  return ["train", "valid"].flatMap((s) => readFileSync(path.join(run, "emit-sft", "sft", `${s}.messages.jsonl`), "utf8").split("\n").filter(Boolean)).sort();
}

/** A copy of the base run folder (filter and perturb done, their model answers cached). */
function fromBase(name: string): string {
  const d = path.join(dir, name);
  cpSync(base, d, { recursive: true });
  return d;
}

function runner(args: string[], env: Record<string, string> = {}): { child: ChildProcess; stderr: () => string; done: Promise<number | null> } {
  const child = spawn(process.execPath, [RUNNER, "--config", path.join(dir, "c.yaml"), ...args], {
    cwd: ROOT,
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, ...env },
  });
  let err = "";
  child.stderr!.on("data", (d) => (err += d));
  const done = new Promise<number | null>((r) => child.once("close", (code) => r(code)));
  return { child, stderr: () => err, done };
}

beforeAll(async () => {
  server = await startOpenAIServer({ script: (req) => (hook ? hook(req) : utgenModel(req)) });
  dir = scratch.make();
  writeFileSync(
    path.join(dir, "c.yaml"),
    [
      `run: {dir: ${JSON.stringify(path.join(dir, "run"))}, shard_size: 4}`,
      `source: {kind: local, path: ${JSON.stringify(path.join(ROOT, "data/demo/tulu-demo.jsonl"))}}`,
      `llm: {backend: openai, base_urls: [${JSON.stringify(server.url)}], model: test-model, max_retries: 0, seed: 3, concurrency: 2}`,
      "filter: {tokenizer: chars, max_prompt_tokens: 8000}",
      "perturb: {n_bugs: 2}",
      "attack: {attempts: 3}",
      "",
    ].join("\n"),
  );
  base = path.join(dir, "base");
  const b = await cli(["--run-dir", base, "--to", "perturb"]);
  expect(b.code, b.err).toBe(0);
  const from = server.requests.length;
  const clean = fromBase("clean");
  const r = await cli(["--run-dir", clean]);
  expect(r.code, r.err).toBe(0);
  reference = new Map(Object.entries(multiset(server.requests.slice(from))));
  cleanExamples = examples(clean);
}, 180_000);

afterAll(async () => {
  hook = undefined;
  await server?.close();
  scratch.removeAll();
});

/**
 * Runs the pipeline in a child from a copy of the base, signals it from the server when `trigger` says so
 * (the triggering request is then answered: it is in flight at the signal), then re-runs in-process.
 */
async function interruptAt(name: string, sig: NodeJS.Signals, trigger: (req: ScriptRequest) => boolean, opts: { holdTrigger?: boolean; env?: Record<string, string> } = {}) {
  const run = fromBase(name);
  const from = server.requests.length;
  let child: ChildProcess | undefined;
  let fired = false;
  const triggered: any[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  hook = async (req) => {
    if (!fired && trigger(req)) {
      fired = true;
      triggered.push(req.body);
      child!.kill(sig);
      if (opts.holdTrigger) {
        await gate; // never answered while the run lives: it stays in flight past the grace period
        return { drop: true };
      }
    }
    return utgenModel(req);
  };
  let code: number | null;
  let stderr: string;
  try {
    const r = runner(["--run-dir", run], opts.env);
    child = r.child;
    code = await r.done;
    stderr = r.stderr();
  } finally {
    hook = undefined;
    release();
  }
  const first = server.requests.slice(from);
  const progress: Record<string, any> = {};
  for (const st of ["filter", "perturb", "attack", "rationalize", "emit-sft"]) {
    const f = path.join(run, st, "progress.json");
    if (existsSync(f)) progress[st] = JSON.parse(readFileSync(f, "utf8"));
  }
  const status: string[] = [];
  await main(["--config", path.join(dir, "c.yaml"), "--run-dir", run, "--status"], { stdout: (l) => status.push(l), stderr: () => {} });
  const from2 = server.requests.length;
  const resumed = await cli(["--run-dir", run]);
  expect(resumed.code, resumed.err).toBe(0);
  return { run, code, stderr, first, again: server.requests.slice(from2), triggered, fired, progress, status: status.join("\n") };
}

describe("interrupting a run", () => {
  it("SIGINT during attack: calls in flight finish, complete shards are kept, one line, exit 130; the re-run repeats no call", async () => {
    let utgen = 0;
    const r = await interruptAt("sigint", "SIGINT", (req) => kindOf(req) === "utgen" && ++utgen === 5);
    expect(r.fired).toBe(true);
    expect(r.code, r.stderr).toBe(130);
    const last = r.stderr.trim().split("\n").at(-1)!;
    const m = /^interrupted: 2 of 5 stages done, attack (\d+)\/(\d+) records kept; re-run the same command to resume$/.exec(last);
    expect(m, r.stderr).not.toBeNull();
    // what the line says was kept is what the written shards hold
    expect(r.progress.attack.inputsDone).toBe(Number(m![1]));
    expect(r.progress.attack.interrupted).toBe(true);
    expect(Number(m![2])).toBe(JSON.parse(readFileSync(path.join(base, "perturb", "manifest.json"), "utf8")).counts.out);
    expect(r.status).toMatch(/\| attack +\| interrupted +\|.*shard\(s\) written/);
    // every call of the interrupted run was answered and cached: none is sent again, and together the two
    // runs made exactly the uninterrupted run's calls
    const firstKeys = new Set(r.first.map(callKey));
    expect(r.again.filter((b) => firstKeys.has(callKey(b))).map(callKey)).toEqual([]);
    expect(multiset([...r.first, ...r.again])).toEqual(Object.fromEntries(reference));
    expect(examples(r.run)).toEqual(cleanExamples);
  });

  it("SIGTERM during rationalize: exit 143 with the same one line; the re-run repeats no call", async () => {
    let rat = 0;
    const r = await interruptAt("sigterm", "SIGTERM", (req) => kindOf(req) === "rationalize" && ++rat === 3);
    expect(r.code, r.stderr).toBe(143);
    expect(r.stderr.trim().split("\n").at(-1)).toMatch(/^interrupted: 3 of 5 stages done, rationalize \d+\/\d+ records kept; re-run the same command to resume$/);
    const firstKeys = new Set(r.first.map(callKey));
    expect(r.again.filter((b) => firstKeys.has(callKey(b))).map(callKey)).toEqual([]);
    expect(multiset([...r.first, ...r.again])).toEqual(Object.fromEntries(reference));
    expect(examples(r.run)).toEqual(cleanExamples);
  });

  it("a call that does not finish within the grace period is left: the run still stops (130), and only that call repeats", async () => {
    let utgen = 0;
    const r = await interruptAt("grace", "SIGINT", (req) => kindOf(req) === "utgen" && ++utgen === 4, { holdTrigger: true, env: { UTGEN_INTERRUPT_GRACE_S: "1" } });
    expect(r.code, r.stderr).toBe(130);
    expect(r.stderr.trim().split("\n").at(-1)).toMatch(/^interrupted: 2 of 5 stages done, attack \d+\/\d+ records kept/);
    const held = new Set(r.triggered.map(callKey));
    const answered = new Set(r.first.map(callKey).filter((k) => !held.has(k)));
    expect(r.again.filter((b) => answered.has(callKey(b))).map(callKey)).toEqual([]);
    expect(r.again.filter((b) => held.has(callKey(b)))).toHaveLength(1);
    expect(examples(r.run)).toEqual(cleanExamples);
  });
});

describe("the terminal and closed pipes", () => {
  it("Ctrl-C during a progress bar restores the cursor and line wrap (in a pseudo-terminal)", async () => {
    expect(spawnSync("script", ["--version"]).status, "this test needs util-linux's `script` (Debian: apt-get install bsdutils)").toBe(0);
    // The heuristic demo config in a pty (util-linux `script`), held after attack's first shard; SIGINT then.
    const run = path.join(dir, "tty");
    const cmd = `exec ${[process.execPath, RUNNER, "--config", "configs/demo.yaml", "--run-dir", run, "--set", "run.shard_size=3"].map((a) => `'${a}'`).join(" ")}`;
    const env: Record<string, string | undefined> = { ...process.env, UTGEN_TEST_HOLD: "attack:1", TERM: "xterm" };
    delete env.CI; // a bar is drawn only on a TTY outside CI
    const sc = spawn("script", ["-qfec", cmd, "/dev/null"], { cwd: ROOT, stdio: ["pipe", "pipe", "pipe"], env });
    let out = "";
    sc.stdout!.on("data", (d) => (out += d));
    const done = new Promise<number | null>((r) => sc.once("close", (c) => r(c)));
    const wrapped = { stderr: sc.stdout, once: sc.once.bind(sc), exitCode: null } as unknown as ChildProcess;
    await untilHold(wrapped, "attack 1");
    // the runner is the pty's process: the child of `script` (exec)
    const kids = readdirSync(`/proc/${sc.pid}/task`).flatMap((t) => readFileSync(`/proc/${sc.pid}/task/${t}/children`, "utf8").trim().split(/\s+/).filter(Boolean));
    expect(kids).toHaveLength(1);
    process.kill(Number(kids[0]), "SIGINT");
    const code = await done;
    expect(code, out).toBe(130);
    expect(out).toMatch(/interrupted: 2 of 5 stages done, attack \d+\/\d+ records kept; re-run the same command to resume/);
    // whatever the bar hid or turned off, the end of the output turns back on
    for (const [off, on] of [["\x1b[?25l", "\x1b[?25h"], ["\x1b[?7l", "\x1b[?7h"]]) {
      if (out.includes(off)) expect(out.lastIndexOf(on), JSON.stringify(out.slice(-400))).toBeGreaterThan(out.lastIndexOf(off));
    }
    expect(out).toContain("\x1b[?25l"); // a bar was drawn (otherwise the test proves nothing)
  });

  it("--help and --status into a closed pipe: no EPIPE stack trace, exit 0", async () => {
    const run = fromBase("pipe");
    for (const args of [["--help"], ["--config", path.join(dir, "c.yaml"), "--run-dir", run, "--status"]]) {
      const child = spawn(process.execPath, [RUNNER, ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
      child.stdout!.destroy(); // the reader is gone before the runner writes its first line
      let err = "";
      child.stderr!.on("data", (d) => (err += d));
      const code = await new Promise<number | null>((r) => child.once("close", (c) => r(c)));
      expect(err).not.toMatch(/EPIPE|Error|    at /);
      expect(code, err).toBe(0);
    }
  });
});
