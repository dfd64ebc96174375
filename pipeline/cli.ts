/**
 * The runner behind `zx pipeline/run.mjs`: parses flags, loads the config, runs the selected stages
 * (dataflow stages through the engine, commands through their own `run`), prints stats tables, writes the
 * run manifest, and shows `--status`. Every user error is one line on stderr with exit code 2.
 *
 * Run from a terminal (`runFromProcess`): SIGINT / SIGTERM restore the terminal, stop new work, let records
 * in flight finish (a short grace), keep what is complete and exit 130 / 143 with one line saying what was
 * kept; a second signal exits at once. A closed stdout / stderr (`--help | head`) is not an error.
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { promises as fsp } from "node:fs";
import { readdir } from "node:fs/promises";
import { setFlagsFromString } from "node:v8";
import * as path from "node:path";
import { UserError, oneLine } from "./errors.ts";
import { CHAIN, DATA_STAGES, coreImport, loadRegistry, type Registered } from "./registry.ts";
import { coreSchemas, llmConfigForStage, loadConfig, resolveCacheDir, resolveRunDir } from "./config.ts";
import { runDataflowStage, stageMaterial, explainChange, progressName, StageInterrupted, type ShardSpec, type StageProgress } from "./engine.ts";
import { readUsableManifest, readStageDrops, readStageRecords, shardsDir, stageDir, type StageManifest } from "./store.ts";
import { createProgress, type Progress } from "./progress.ts";
import { scaleOut } from "./slurm.ts";
import { hashValue, writeJson, exists, readJson } from "./util.ts";
import type { CommandStage, DataflowStage, StageContext, Logger, Rec } from "./stage.ts";
import type { Executor } from "./executor/types.ts";
import type { LlmClient } from "./llm/types.ts";

const GLOBAL_FLAGS = {
  config: { type: "string", help: "YAML config (default configs/demo.yaml)" },
  stage: { type: "string", help: "run one stage" },
  from: { type: "string", help: "first stage of a range" },
  to: { type: "string", help: "last stage of a range" },
  "run-dir": { type: "string", help: "run folder (overrides run.dir)" },
  input: { type: "string", help: "local file or folder to use as the source (overrides source:)" },
  set: { type: "string", multiple: true, help: "override a config value: --set perturb.n_bugs=3 (repeatable)" },
  limit: { type: "string", help: "process at most N input records per stage" },
  force: { type: "string", help: "recompute this stage and every stage after it" },
  shard: { type: "string", help: "process only slice i of N (source rows hashed by task text, so duplicates share a slice): --shard i/N" },
  status: { type: "boolean", help: "show per stage: done / stale / in progress / missing, with the reason (input, --limit and config compared)" },
  submit: { type: "string", help: "slurm: submit the data stages as a SLURM array, one --shard i/N slice per task (N = slurm.shards), and a merge job after it; with --shard i/N, slice i only (docs/cluster.md)" },
  render: { type: "string", help: "slurm: write and print those SLURM scripts, submit nothing; with --stage train: slurm | axolotl | llamafactory | all (the training launch)" },
  "allow-empty": { type: "boolean", help: "do not fail when the input has no rows or the filter drops every row" },
  "unsafe-no-sandbox": { type: "boolean", help: "DANGEROUS: run generated code without the sandbox" },
  help: { type: "boolean", help: "show this help" },
} as const;

export interface CliIO {
  stdout: (line: string) => void;
  stderr: (line: string) => void;
}

const defaultIO: CliIO = {
  stdout: (l) => process.stdout.write(l + "\n"),
  stderr: (l) => process.stderr.write(l + "\n"),
};

/**
 * Streaming stages turn over far more memory than they keep (input rows live for one chunk), and V8's
 * default heap growth lets dead rows pile up to several times the live set before a full GC: the filter
 * over the 1M-row parquet bench peaked at 564 MB RSS with ~85 MB live. A 1.5× growth factor keeps the
 * peak near the live set at no measured cost in speed (bench/filter.ts).
 */
setFlagsFromString("--heap-growing-percent=50");

/** Whether a stage's shard folder holds a completed shard (its marker); false when there is no folder. */
async function hasCompletedShard(dir: string): Promise<boolean> {
  const names = await readdir(dir).catch(() => [] as string[]);
  return names.some((n) => n.endsWith(".done.json"));
}

/** How the runner is stopped from outside (SIGINT / SIGTERM in `runFromProcess`); tests may pass their own. */
export interface RunControl {
  /** Aborted with the signal name ("SIGINT" / "SIGTERM") as the reason. */
  signal: AbortSignal;
  /** Called with the live progress bar, so an interrupt can stop it (and restore the terminal). */
  onProgress?: (p: Progress | undefined) => void;
}

/** File-system failures that are the environment's, not a bug: one line, exit 2. */
const FS_CODES = new Set(["EACCES", "EPERM", "EROFS", "ENOSPC", "EDQUOT", "ENOTDIR", "EISDIR", "ELOOP", "ENAMETOOLONG", "EMFILE", "ENFILE"]);

export async function main(argv: string[], io: CliIO = defaultIO, control?: RunControl): Promise<number> {
  try {
    return await runCli(argv, io, control);
  } catch (e) {
    if (e instanceof UserError) {
      io.stderr(`error: ${e.message}`);
      return e.code;
    }
    const err = e as NodeJS.ErrnoException;
    if (err && typeof err.code === "string" && FS_CODES.has(err.code) && err.path) {
      io.stderr(`error: cannot ${err.syscall ?? "use"} ${err.path} (${err.code}): check the folder's permissions, free space, or choose another --run-dir`);
      return 2;
    }
    io.stderr(`error: ${oneLine(e)}`);
    if (process.env.UTGEN_DEBUG) io.stderr(String((e as Error).stack));
    else io.stderr("(set UTGEN_DEBUG=1 for the stack trace; please report this as a bug)");
    return 1;
  }
}

function flagSpecs(registry: Registered[]) {
  const options: Record<string, { type: "string" | "boolean"; multiple?: boolean }> = {};
  const help: [string, string][] = [];
  for (const [k, v] of Object.entries(GLOBAL_FLAGS)) {
    options[k] = { type: v.type, ...("multiple" in v ? { multiple: true } : {}) };
    help.push([k, v.help]);
  }
  // A flag several commands declare is listed once, with every command that uses it (and, where their
  // descriptions differ, each command's).
  const shared = new Map<string, { stage: string; text: string }[]>();
  for (const s of registry) {
    if (s.kind !== "command" || !s.flags) continue;
    for (const [k, v] of Object.entries(s.flags)) {
      if (options[k] && !shared.has(k)) continue;
      if (!options[k]) {
        options[k] = { type: v.type };
        shared.set(k, []);
        help.push([k, ""]);
      }
      shared.get(k)!.push({ stage: s.name, text: v.help.startsWith(`${s.name}: `) ? v.help.slice(s.name.length + 2) : v.help });
    }
  }
  for (const h of help) {
    const uses = shared.get(h[0]);
    if (!uses) continue;
    const byText = new Map<string, string[]>();
    for (const u of uses) byText.set(u.text, [...(byText.get(u.text) ?? []), u.stage]);
    const stages = uses.map((u) => u.stage).join(", ");
    h[1] = byText.size === 1 ? `(${stages}) ${uses[0].text}` : `(${stages}) ${[...byText].map(([t, st]) => `${st.join(", ")}: ${t}`).join("; ")}`;
  }
  return { options, help };
}

async function runCli(argv: string[], io: CliIO, control?: RunControl): Promise<number> {
  const registry = await loadRegistry();
  const { options, help } = flagSpecs(registry);
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: false });
  } catch (e) {
    const msg = (e as Error).message.split("\n")[0];
    const m = /Unknown option '([^']+)'/.exec(msg);
    if (m) throw new UserError(`unknown flag ${m[1]}; valid flags: ${Object.keys(options).map((k) => "--" + k).join(", ")}`);
    throw new UserError(`${msg}; see --help`);
  }
  const flags = parsed.values as Record<string, any>;
  if (flags.help) {
    printHelp(io, registry, help);
    return 0;
  }
  const byName = new Map(registry.map((s) => [s.name, s]));
  const stageNames = registry.map((s) => s.name);
  const checkStage = (flag: string, name: string | undefined) => {
    if (name !== undefined && !byName.has(name)) throw new UserError(`unknown stage ${name} in --${flag}; valid stages: ${stageNames.join(", ")}`);
  };
  checkStage("stage", flags.stage);
  checkStage("from", flags.from);
  checkStage("to", flags.to);
  checkStage("force", flags.force);
  if (flags.stage && (flags.from || flags.to)) throw new UserError("use either --stage or --from/--to, not both");
  const limit = flags.limit === undefined ? null : Number(flags.limit);
  if (limit !== null && (!Number.isInteger(limit) || limit < 0)) throw new UserError(`--limit ${flags.limit}: expected a non-negative integer`);
  const shard = parseShard(flags.shard);

  const configFile = flags.config ?? "configs/demo.yaml";
  const load = (input: string | undefined) =>
    loadConfig(configFile, flags.set ?? [], (raw) => {
      if (flags["run-dir"]) (raw.run ??= {}).dir = flags["run-dir"];
      if (input) raw.source = { ...(raw.source ?? {}), kind: "local", path: input };
      if (flags["unsafe-no-sandbox"]) (raw.executor ??= {}).unsafe_no_sandbox = true;
    });
  let { root } = await load(flags.input);
  const selection = flags.status ? [] : selectStages(flags, byName);
  const needsSource = flags.status || selection.some((n) => { const s = byName.get(n); return s?.kind === "dataflow" && s.input === "source"; });
  // A run folder built with --input remembers it: a re-run without the flag uses the same input.
  let recordedInput: string | undefined;
  if (!flags.input) {
    const rec = (await readJson<{ source?: SourceRecord }>(path.join(resolveRunDir(root), "run.json")).catch(() => undefined))?.source;
    if (rec?.input) {
      if (await exists(rec.input)) {
        recordedInput = rec.input;
        ({ root } = await load(rec.input));
      } else if (needsSource)
        throw new UserError(`${resolveRunDir(root)} was built with --input ${rec.input}, which no longer exists; pass --input <file or folder> to choose the source`);
    }
  }
  if (root.executor?.unsafe_no_sandbox) io.stderr("WARNING: executor.unsafe_no_sandbox is set — generated code runs WITHOUT isolation on this machine.");

  const scale = flags.submit ?? flags.render;
  if (scale !== undefined && !flags.status && (flags.submit !== undefined || selectStages(flags, byName).every((n) => byName.get(n)?.kind === "dataflow"))) {
    if (flags.submit !== undefined && flags.render !== undefined) throw new UserError("use either --submit or --render, not both");
    const mode = flags.submit !== undefined ? "submit" : "render";
    return await scaleOut({ mode, kind: scale, flags, root, runDir: resolveRunDir(root), stages: selectStages(flags, byName), shard, stdout: io.stdout });
  }

  const runner = new Runner(root, registry, io, { limit, shard, flags, input: flags.input ? path.resolve(flags.input) : recordedInput, control });
  let finalLine: string | undefined;
  if (recordedInput && needsSource) io.stderr(`source: --input ${recordedInput}, as recorded in ${path.join(runner.runDir, "run.json")} (pass --input to use another source)`);
  try {
    if (flags.status) return await runner.status();
    await ensureRunDir(runner.runDir);
    const forced = new Set<string>();
    if (flags.force) {
      const i = CHAIN.indexOf(flags.force as (typeof CHAIN)[number]);
      for (const n of i >= 0 ? CHAIN.slice(i) : [flags.force]) forced.add(n);
    }
    for (const name of selection) {
      const s = byName.get(name)!;
      if (s.kind === "planned") throw new UserError(`stage ${name} is planned (issue ${s.issue}) and not built yet${s.detail ? `: ${s.detail}` : ""}`);
    }
    let code = 0;
    let done = 0;
    const signal = control?.signal;
    const interrupted = (what: string) => {
      // printed last, after the services closed (their summaries)
      finalLine = `interrupted: ${done} of ${selection.length} stage${selection.length === 1 ? "" : "s"} done, ${what}; re-run the same command to resume`;
      return signal?.reason === "SIGTERM" ? 143 : 130;
    };
    try {
      for (const name of selection) {
        if (signal?.aborted) return (code = interrupted(`${name} not started`));
        const s = byName.get(name)!;
        if (s.kind === "dataflow") await runner.runDataflow(s, forced.has(name));
        else if (s.kind === "command") {
          try {
            code = await runner.runCommand(s);
          } catch (e) {
            if (signal?.aborted) return (code = interrupted(`${name} stopped`));
            throw e;
          }
          // a service stopped by a signal ended normally; the stages after it are not started
          if (signal?.aborted && s.service) {
            done++;
            if (name !== selection[selection.length - 1]) return (code = interrupted(`${name} stopped (a service)`));
            return code;
          }
          if (signal?.aborted) return (code = interrupted(`${name} stopped`));
          if (code !== 0) break;
        }
        done++;
      }
    } catch (e) {
      if (e instanceof StageInterrupted)
        return (code = interrupted(`${e.stage} ${e.inputsKept}/${e.total ?? "?"} records kept`));
      throw e;
    } finally {
      await runner.writeRunManifest(selection, code);
    }
    return code;
  } finally {
    await runner.close(finalLine !== undefined);
    if (finalLine) io.stderr(finalLine);
  }
}

/** How long calls in flight may take to finish after SIGINT / SIGTERM (UTGEN_INTERRUPT_GRACE_S, default 10 s). */
function interruptGraceMs(): number {
  const s = Number(process.env.UTGEN_INTERRUPT_GRACE_S ?? 10);
  return (Number.isFinite(s) && s >= 0 ? s : 10) * 1000;
}

/** What a run folder remembers of its source (run.json `source`). */
export interface SourceRecord {
  kind: "local" | "hub";
  /** The `--input` the folder was built with (absolute), if any: a re-run without the flag uses it. */
  input: string | null;
  path?: string;
  repo?: string;
  revision?: string;
  files?: string;
  digest: string;
  describe: string;
  recordedAt: string;
}

/**
 * Create the run folder (one level at a time: Node's recursive mkdir spins on paths such as /proc/x) and
 * check it is writable. Any failure is one line, exit 2.
 */
export async function ensureRunDir(dir: string): Promise<void> {
  const fail = (what: string, e: NodeJS.ErrnoException) => {
    const why: Record<string, string> = {
      EACCES: "permission denied",
      EPERM: "operation not permitted",
      EROFS: "read-only file system",
      ENOSPC: "no space left on the device",
      EDQUOT: "disk quota exceeded",
      ENOENT: "folders cannot be created there",
      ENOTDIR: "a parent is a file, not a folder",
      EEXIST: "a file of that name exists",
      ENAMETOOLONG: "the name is too long",
    };
    return new UserError(`cannot use the run folder ${dir}: ${what} (${why[e.code ?? ""] ?? e.code ?? e.message}); choose another --run-dir (or run.dir) or fix the folder`);
  };
  const missing: string[] = [];
  for (let cur = dir; ; ) {
    let st;
    try {
      st = await fsp.stat(cur);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (err.code !== "ENOENT" && err.code !== "ENOTDIR") throw fail(`cannot look at ${cur}`, err);
      missing.unshift(cur);
      const up = path.dirname(cur);
      if (up === cur) break;
      cur = up;
      continue;
    }
    if (!st.isDirectory()) throw fail(`${cur} is not a folder`, { code: cur === dir ? "EEXIST" : "ENOTDIR" } as NodeJS.ErrnoException);
    break;
  }
  for (const d of missing) {
    try {
      await fsp.mkdir(d);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw fail(`cannot create ${d}`, e as NodeJS.ErrnoException);
    }
  }
  const probe = path.join(dir, `.write-test-${process.pid}`);
  try {
    await fsp.writeFile(probe, "");
    await fsp.rm(probe, { force: true });
  } catch (e) {
    throw fail("cannot write in it", e as NodeJS.ErrnoException);
  }
}

/**
 * The runner as `npx zx pipeline/run.mjs` starts it: SIGINT / SIGTERM stop it cleanly (see the header), a
 * closed stdout / stderr is ignored (no EPIPE stack trace), and the process exits with the returned code
 * even when something (an abandoned model call after the grace period) still holds the event loop.
 */
export async function runFromProcess(argv: string[]): Promise<number> {
  let stdoutOpen = true;
  let stderrOpen = true;
  process.stdout.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code === "EPIPE") stdoutOpen = false;
    else throw e;
  });
  process.stderr.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code === "EPIPE") stderrOpen = false;
    else throw e;
  });
  const io: CliIO = {
    stdout: (l) => void (stdoutOpen && process.stdout.write(l + "\n")),
    stderr: (l) => void (stderrOpen && process.stderr.write(l + "\n")),
  };
  const ctl = new AbortController();
  let progress: Progress | undefined;
  const restoreTerminal = () => {
    progress?.stop();
    progress = undefined;
    // cli-progress hides the cursor and turns line wrap off while a bar is shown.
    if (process.stderr.isTTY && stderrOpen) process.stderr.write("\x1b[?25h\x1b[?7h");
  };
  const onSignal = (sig: NodeJS.Signals) => {
    restoreTerminal();
    if (ctl.signal.aborted) {
      io.stderr(`${sig} again: stopping now; re-run the same command to resume`);
      process.exit(sig === "SIGTERM" ? 143 : 130);
    }
    io.stderr(`${sig}: stopping — finishing the records in flight and keeping what is complete (${sig === "SIGTERM" ? "SIGTERM" : "Ctrl-C"} again to stop at once)`);
    ctl.abort(sig);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const code = await main(argv, io, { signal: ctl.signal, onProgress: (p) => (progress = p) });
  restoreTerminal();
  if (ctl.signal.aborted) process.exit(code);
  return code;
}

function parseShard(v: string | undefined): ShardSpec | null {
  if (v === undefined) return null;
  const m = /^(\d+)\/(\d+)$/.exec(v);
  if (!m || Number(m[1]) >= Number(m[2]) || Number(m[2]) < 1) throw new UserError(`--shard ${v}: expected i/N with 0 ≤ i < N (e.g. --shard 0/8; SLURM: --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)`);
  return { index: Number(m[1]), count: Number(m[2]) };
}

function selectStages(flags: Record<string, any>, byName: Map<string, Registered>): string[] {
  if (flags.stage) return [flags.stage];
  const chain = CHAIN as readonly string[];
  if (flags.from || flags.to) {
    for (const f of ["from", "to"]) {
      if (flags[f] && !chain.includes(flags[f])) throw new UserError(`--${f} ${flags[f]}: ranges cover ${chain.join(" → ")}; run ${flags[f]} with --stage ${flags[f]}`);
    }
    const a = flags.from ? chain.indexOf(flags.from) : 0;
    const b = flags.to ? chain.indexOf(flags.to) : DATA_STAGES.length - 1;
    if (a > b) throw new UserError(`--from ${flags.from} comes after --to ${flags.to}`);
    return chain.slice(a, b + 1);
  }
  void byName;
  return [...DATA_STAGES];
}

function printHelp(io: CliIO, registry: Registered[], help: [string, string][]) {
  io.stdout("utgen-pipeline — build UTGen training data, fine-tune, validate and select checkpoints\n");
  io.stdout("usage: npx zx pipeline/run.mjs [--config configs/demo.yaml] [--stage NAME | --from A --to B] [flags]\n");
  io.stdout("stages (no stage flag = filter → emit-sft):");
  for (const s of registry) {
    const tag = s.kind === "planned" ? `  [planned, issue ${s.issue}]` : "";
    io.stdout(`  ${s.name.padEnd(12)} ${s.description}${tag}`);
  }
  io.stdout("\nflags:");
  for (const [k, h] of help) io.stdout(`  --${k.padEnd(18)} ${h}`);
  const configs = shippedConfigs();
  if (configs.length) {
    io.stdout("\nconfigs (--config; configs/paper: the papers' protocols, see docs/fidelity.md):");
    for (const [f, what] of configs) io.stdout(`  ${f.padEnd(44)} ${what}`);
  }
}

/** The YAML configs shipped under configs/ and configs/paper/, each with its first comment line. */
function shippedConfigs(): [string, string][] {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
  const out: [string, string][] = [];
  for (const dir of ["configs", "configs/paper"]) {
    let names: string[] = [];
    try {
      names = readdirSync(path.join(root, dir)).filter((f) => f.endsWith(".yaml")).sort();
    } catch {
      continue;
    }
    for (const f of names) {
      let first = "";
      try {
        first = /^#\s*(.*)$/m.exec(readFileSync(path.join(root, dir, f), "utf8"))?.[1] ?? "";
      } catch {
        /* unreadable: listed without a description */
      }
      out.push([`${dir}/${f}`, first.length > 90 ? `${first.slice(0, 89)}…` : first]);
    }
  }
  return out;
}

interface RunnerOpts {
  limit: number | null;
  shard: ShardSpec | null;
  flags: Record<string, any>;
  /** The local input in effect (--input, or the one recorded in run.json), absolute. */
  input?: string;
  control?: RunControl;
}

class Runner {
  readonly runDir: string;
  readonly cacheDir: string;
  private executorP?: Promise<Executor>;
  private llms = new Map<string, Promise<LlmClient>>();
  private results: Record<string, unknown> = {};
  private log: Logger;
  private sourceDescribe?: string;

  constructor(
    readonly root: Record<string, any>,
    readonly registry: Registered[],
    readonly io: CliIO,
    readonly opts: RunnerOpts,
  ) {
    this.runDir = resolveRunDir(root);
    this.cacheDir = resolveCacheDir(root);
    this.log = { info: (m) => io.stderr(m), warn: (m) => io.stderr(`warning: ${m}`) };
  }

  private stage(name: string): Registered | undefined {
    return this.registry.find((s) => s.name === name);
  }

  context(name: string, counters: Record<string, number>): StageContext {
    return {
      name,
      config: this.root[name] ?? {},
      root: this.root,
      runDir: this.runDir,
      stageDir: stageDir(this.runDir, name),
      cacheDir: this.cacheDir,
      log: this.log,
      counters: { add: (k, n = 1) => void (counters[k] = (counters[k] ?? 0) + n) },
      getExecutor: () => (this.executorP ??= this.startExecutor()),
      getLlm: () => {
        let p = this.llms.get(name);
        if (!p) {
          p = this.startLlm(name);
          this.llms.set(name, p);
        }
        return p;
      },
      signal: this.opts.control?.signal ?? new AbortController().signal,
    };
  }

  private async startExecutor(): Promise<Executor> {
    const mod = await coreImport<{ createExecutor: (cfg: unknown) => Promise<Executor> }>("../pipeline/executor/index.ts");
    return mod.createExecutor(this.root.executor ?? {});
  }

  private async startLlm(name: string): Promise<LlmClient> {
    const mod = await coreImport<{ createLlmClient: (cfg: unknown, o: unknown) => LlmClient }>("../pipeline/llm/client.ts");
    return mod.createLlmClient(await llmConfigForStage(this.root, name), { cacheDir: this.cacheDir, stage: name, log: (m: string) => this.log.info(m) });
  }

  /** Input stream, digest and upstream fingerprint of a dataflow stage. */
  private async inputOf(stage: DataflowStage): Promise<{ input: () => AsyncIterable<Rec>; digest: string; upstream: string; total?: number; sliced?: boolean }> {
    if (stage.input === "source") {
      const mod = await coreImport<{ openSource: (cfg: unknown, o: unknown) => Promise<{ rows: AsyncIterable<Rec>; fingerprint: unknown; describe: string }> }>(
        "../pipeline/sources/index.ts",
      );
      const src = await mod.openSource(this.root.source, { cacheDir: undefined, log: (m: string) => this.log.info(m) });
      this.log.info(`source: ${src.describe}`);
      const digest = hashValue(src.fingerprint).slice(0, 16);
      await this.recordSource(digest, src.describe);
      this.sourceDescribe = src.describe;
      return { input: () => src.rows, digest, upstream: "source" };
    }
    const m = await readUsableManifest(this.runDir, stage.input, this.opts.shard);
    if (!m) throw new UserError(`stage ${stage.name} needs the output of ${stage.input}, which is missing in ${this.runDir}; run --to ${stage.input} first`);
    const expected = await this.expectedFingerprint(stage.input);
    if (expected && expected !== m.fingerprint) this.log.warn(`${stage.input}'s output is stale for the current config; ${stage.name} uses it as it is (run --from ${stage.input} to rebuild)`);
    return {
      input: () => readStageRecords(this.runDir, stage.input, { manifest: m }),
      digest: m.outputDigest,
      upstream: m.fingerprint,
      total: m.counts.out,
      // the upstream slice of this --shard holds exactly this slice's records (it was partitioned at its source)
      sliced: m.shard !== null && m.shard !== undefined,
    };
  }

  /** What identifies the configured source without reading it (hub: repo, revision, files; local: path). */
  private sourceIdentity(): Omit<SourceRecord, "digest" | "describe" | "recordedAt"> {
    const src = this.root.source ?? {};
    if (src.kind === "local" || this.opts.input)
      return { kind: "local", input: this.opts.input ?? null, path: path.resolve(this.opts.input ?? src.path ?? "") };
    return { kind: "hub", input: null, repo: src.repo, revision: src.revision, files: src.files };
  }

  /** run.json remembers the source this folder was built from (and the --input, which a re-run reuses). */
  private async recordSource(digest: string, describe: string): Promise<void> {
    const file = path.join(this.runDir, "run.json");
    const old = (await readJson<any>(file)) ?? {};
    const source: SourceRecord = { ...this.sourceIdentity(), digest, describe, recordedAt: new Date().toISOString() };
    await writeJson(file, { ...old, source });
  }

  /** The fingerprint a stage would have under the current config, chaining upstream expectations. */
  async expectedFingerprint(name: string, memo = new Map<string, string | undefined>()): Promise<string | undefined> {
    if (memo.has(name)) return memo.get(name);
    const s = this.stage(name);
    if (!s || s.kind !== "dataflow") return undefined;
    const upstream = s.input === "source" ? "source" : await this.expectedFingerprint(s.input, memo);
    if (upstream === undefined) return undefined;
    const { fingerprint } = await stageMaterial(s, this.root[name] ?? {}, this.root, upstream, await this.llmPerfKeysFor());
    memo.set(name, fingerprint);
    return fingerprint;
  }

  private async llmPerfKeysFor(): Promise<string[]> {
    return (await coreSchemas()).llmPerfKeys.map((k) => `llm.${k}`);
  }

  async runDataflow(stage: DataflowStage, force: boolean): Promise<void> {
    const t0 = Date.now();
    const counters: Record<string, number> = {};
    const ctx = this.context(stage.name, counters);
    // A fresh stage starts its services (the sandbox, a tokenizer) while its input is opened and read.
    if (stage.warm && (force || !(await hasCompletedShard(shardsDir(this.runDir, stage.name))))) stage.warm(ctx);
    const inp = await this.inputOf(stage);
    const { material, fingerprint } = await stageMaterial(stage, this.root[stage.name] ?? {}, this.root, inp.upstream, await this.llmPerfKeysFor());
    // An unsliced upstream read by a --shard run holds every slice's records: its count is not this slice's total.
    const total = this.opts.shard && !inp.sliced ? undefined : inp.total;
    const limit = this.opts.limit;
    const progress = createProgress(stage.name, {
      total: limit === null ? total : total === undefined ? limit : Math.min(limit, total),
      write: (l) => this.io.stderr(l),
    });
    this.opts.control?.onProgress?.(progress);
    // The input records this run processes, when known exactly (for the interrupt line and --status).
    const engineTotal = total === undefined ? undefined : limit === null ? total : Math.min(limit, total);
    const res = await runDataflowStage({
      runDir: this.runDir,
      stage,
      ctx,
      fingerprint,
      material,
      input: inp.input,
      inputDigest: inp.digest,
      shardSize: this.root.run.shard_size,
      compress: this.root.run.compress,
      shard: this.opts.shard,
      inputSliced: inp.sliced === true,
      limit: this.opts.limit,
      force,
      progress,
      config: this.root[stage.name] ?? {},
      meta: packageMeta(),
      counters,
      total: engineTotal,
      interruptGraceMs: interruptGraceMs(),
    }).finally(() => {
      progress.stop();
      this.opts.control?.onProgress?.(undefined);
    });
    // LLM usage joins the stage's stats.
    const llm = this.llms.get(stage.name);
    if (llm) {
      const st = (await llm).stats();
      Object.assign(counters, Object.fromEntries(Object.entries(st).map(([k, v]) => [`llm.${k}`, v])));
    }
    this.results[stage.name] = { fingerprint, skipped: res.skipped, reason: res.reason, counts: res.manifest.counts, ms: Date.now() - t0 };
    if (res.skipped) this.io.stderr(`${stage.name}: up to date (fingerprint ${fingerprint}), nothing to do`);
    else
      this.io.stderr(
        `${stage.name}: done in ${((Date.now() - t0) / 1000).toFixed(1)}s — ${res.chunksComputed} shard(s) computed, ${res.chunksReused} reused, ${res.recordsProcessed} record(s) processed, ${res.recordsSalvaged} salvaged`,
      );
    for (const line of statsTable(stage.name, res.manifest, counters)) this.io.stderr(line);
    if (stage.input === "source") await this.checkSourceRows(stage.name, res.manifest);
  }

  /**
   * Malformed source rows are named (count and the first file:line); an input with no rows, or one whose every
   * row was dropped, stops the run (exit 2) unless --allow-empty — in a --shard slice it is only a warning.
   */
  private async checkSourceRows(name: string, m: StageManifest): Promise<void> {
    const bad = m.counts.reasons.bad_row ?? 0;
    if (bad) {
      let first: string | undefined;
      for await (const d of readStageDrops(this.runDir, name, this.opts.shard)) {
        if (d.reason === "bad_row") {
          first = d.detail ?? d.id;
          break;
        }
      }
      this.log.warn(`${bad} malformed input row${bad === 1 ? "" : "s"} dropped as bad_row; the first: ${first ?? "?"}${this.sourceDescribe ? ` (source: ${this.sourceDescribe})` : ""}`);
    }
    let problem: string | undefined;
    if (m.counts.in === 0) problem = `the input has no rows${this.sourceDescribe ? ` (${this.sourceDescribe})` : ""}${this.opts.limit === 0 ? " (--limit 0)" : ""}`;
    else if (m.counts.out === 0) {
      const reasons = Object.entries(m.counts.reasons).sort((a, b) => b[1] - a[1]).map(([r, n]) => `${r} ${n}`).join(", ");
      problem = `${name} dropped every one of the ${m.counts.in} input rows (${reasons}); the drops and their reasons are in ${path.join(this.runDir, name, "shards")}/*.drop.jsonl`;
    }
    if (!problem || this.opts.flags["allow-empty"]) return;
    if (this.opts.shard) return this.log.warn(`${problem} in slice ${this.opts.shard.index}/${this.opts.shard.count}`);
    throw new UserError(`${problem}; nothing to build on — fix the input, or pass --allow-empty to accept it`);
  }

  async runCommand(stage: CommandStage): Promise<number> {
    const counters: Record<string, number> = {};
    const ctx = { ...this.context(stage.name, counters), flags: this.opts.flags, stdout: this.io.stdout };
    const t0 = Date.now();
    const code = await stage.run(ctx);
    this.results[stage.name] = { exitCode: code, ms: Date.now() - t0, counters };
    return code;
  }

  async status(): Promise<number> {
    const rows: string[][] = [["stage", "state", "records in → out", "fingerprint", "why"]];
    const recorded = (await readJson<{ source?: SourceRecord }>(path.join(this.runDir, "run.json")).catch(() => undefined))?.source;
    /** The first stage above that will rebuild: a stage below it that is otherwise done waits for it. */
    let rebuildsFirst: string | undefined;
    for (const name of DATA_STAGES) {
      const s = this.stage(name);
      if (!s || s.kind !== "dataflow") {
        rows.push([name, "planned", "", "", s?.kind === "planned" ? `issue ${s.issue}` : ""]);
        continue;
      }
      const m = await readUsableManifest(this.runDir, name, this.opts.shard);
      const expected = await this.expectedFingerprint(name);
      const prog = await readJson<StageProgress>(path.join(stageDir(this.runDir, name), progressName(this.opts.shard))).catch(() => undefined);
      const reasons: string[] = [];
      if (m && expected !== m.fingerprint) {
        const upstream = s.input === "source" ? "source" : await this.expectedFingerprint(s.input);
        const { material } = await stageMaterial(s, this.root[name] ?? {}, this.root, upstream ?? "", await this.llmPerfKeysFor());
        reasons.push(...explainChange(m.material, material, name).map((r) => (r === "upstream changed" ? `upstream ${s.input} changed` : r)));
      }
      if (m && s.input === "source") {
        const cur = await this.currentSource(recorded);
        if (cur.problem) reasons.push(cur.problem);
        else if (cur.digest !== undefined && cur.digest !== m.inputDigest) reasons.push(`the input changed since this was built (${cur.describe})`);
      } else if (m) {
        const up = await readUsableManifest(this.runDir, s.input, this.opts.shard);
        if (up && up.outputDigest !== m.inputDigest) reasons.push(`${s.input}'s output changed since this was built`);
      }
      if (m && (m.limit ?? null) !== this.opts.limit)
        reasons.push(`built with ${m.limit === null ? "no --limit" : `--limit ${m.limit}`}; ${this.opts.limit === null ? "a run without --limit" : `--limit ${this.opts.limit}`} rebuilds it`);
      const partial = prog && prog.fingerprint === expected && (prog.limit ?? null) === this.opts.limit && (!m || reasons.length) ? prog : undefined;
      let state: string;
      let why: string;
      if (partial) {
        state = partial.interrupted ? "interrupted" : "in progress";
        const n = partial.total !== null ? Math.ceil(partial.total / partial.shardSize) : undefined;
        why =
          `${partial.chunksDone}${n !== undefined ? ` of ${n}` : ""} shard(s) written (${partial.inputsDone}${partial.total !== null ? `/${partial.total}` : ""} input records)` +
          `, ${partial.interrupted ? "interrupted" : "still running, or stopped by a kill"} (last write ${partial.updatedAt}); a re-run resumes from there`;
      } else if (!m) {
        state = "missing";
        why = "never built";
      } else if (reasons.length) {
        state = "stale";
        why = reasons.join("; ");
      } else if (rebuildsFirst) {
        state = "pending";
        why = `${rebuildsFirst} rebuilds first; this is kept if ${s.input}'s output comes out the same`;
      } else {
        state = "done";
        why = "up to date";
      }
      if (state !== "done") rebuildsFirst ??= name;
      rows.push([name, state, m ? `${m.counts.in} → ${m.counts.out}` : "", m?.fingerprint ?? expected ?? "", why]);
    }
    for (const line of table(rows)) this.io.stdout(line);
    if (recorded) this.io.stdout(`source: ${recorded.describe}${recorded.input ? ` (--input ${recorded.input})` : ""}`);
    for (const line of await this.commandStatus()) this.io.stdout(line);
    return 0;
  }

  /**
   * The configured source's digest now, to compare with what the filter was built from: local files are
   * fingerprinted (as a run does); a Hub source is not contacted — its repo, revision and files are compared
   * with the ones run.json recorded (a pinned revision fixes the content).
   */
  private async currentSource(rec: SourceRecord | undefined): Promise<{ digest?: string; describe?: string; problem?: string }> {
    const id = this.sourceIdentity();
    if (id.kind === "local") {
      try {
        const mod = await coreImport<{ openSource: (cfg: unknown, o: unknown) => Promise<{ fingerprint: unknown; describe: string }> }>("../pipeline/sources/index.ts");
        const src = await mod.openSource(this.root.source, {});
        return { digest: hashValue(src.fingerprint).slice(0, 16), describe: src.describe };
      } catch (e) {
        return { problem: `the input cannot be read now: ${oneLine(e)}` };
      }
    }
    if (!rec) return {};
    const show = (r: { repo?: string; revision?: string; files?: string }) => `${r.repo}@${String(r.revision).slice(0, 12)} ${r.files}`;
    if (rec.kind !== "hub") return { problem: `the source changed: built from ${rec.describe}, now ${show(id)}` };
    if (rec.repo !== id.repo || rec.revision !== id.revision || rec.files !== id.files) return { problem: `the source changed: ${show(rec)} → ${show(id)}` };
    return { digest: rec.digest, describe: rec.describe };
  }

  /** One line each for training runs (registered checkpoints), validation reports and the selection. */
  private async commandStatus(): Promise<string[]> {
    const lines: string[] = [];
    const trainDir = path.join(this.runDir, "train");
    for (const name of (await exists(trainDir)) ? (await readdir(trainDir)).sort() : []) {
      const reg = await readJson<{ checkpoints?: { step: number }[] }>(path.join(trainDir, name, "checkpoints.json"));
      if (!reg) continue;
      const steps = (reg.checkpoints ?? []).map((c) => c.step);
      lines.push(`train ${name}: ${steps.length} checkpoint(s) registered${steps.length ? `, last step ${Math.max(...steps)}` : ""}`);
    }
    const valDir = path.join(this.runDir, "validate");
    if (await exists(valDir)) {
      const reports = (await readdir(valDir)).filter((f) => f.endsWith(".json") && f !== "selection.json");
      lines.push(`validate: ${reports.length} report(s) in ${valDir}`);
      const sel = await readJson<{ reason?: string }>(path.join(valDir, "selection.json"));
      if (sel?.reason) lines.push(`select: ${sel.reason}`);
    }
    for (const st of ["utdebug", "rerank"]) {
      const sum = await readJson<{ sets?: Record<string, Record<string, unknown>> }>(path.join(this.runDir, st, "summary.json")).catch(() => undefined);
      if (sum?.sets)
        lines.push(`${st}: ${Object.entries(sum.sets).map(([set, ms]) => `${set} (${Object.keys(ms).length} method(s))`).join(", ")} — ${path.join(this.runDir, st, "summary.md")}`);
    }
    return lines;
  }

  async writeRunManifest(selection: string[], exitCode = 0): Promise<void> {
    if (!(await exists(this.runDir))) return;
    const file = path.join(this.runDir, "run.json");
    const old = (await readJson<any>(file).catch(() => undefined)) ?? {};
    const stages: Record<string, unknown> = { ...(old.stages ?? {}) };
    for (const name of DATA_STAGES) {
      const m: StageManifest | undefined = await readUsableManifest(this.runDir, name, this.opts.shard);
      if (m) stages[name] = { fingerprint: m.fingerprint, outputDigest: m.outputDigest, counts: { in: m.counts.in, out: m.counts.out, reasons: m.counts.reasons }, templates: m.templates };
    }
    await writeJson(file, {
      updatedAt: new Date().toISOString(),
      lastCommand: { selection, shard: this.opts.shard, limit: this.opts.limit, input: this.opts.input ?? null, exitCode },
      ...(old.source ? { source: old.source } : {}),
      config: this.root,
      ...packageMeta(),
      stages,
      lastResults: this.results,
    });
  }

  /** Closes the services; after an interrupt, waits at most the grace period (calls still in flight are left). */
  async close(interrupted = false): Promise<void> {
    const all = (async () => {
      for (const p of this.llms.values()) await (await p.catch(() => undefined))?.close();
      if (this.executorP) await (await this.executorP.catch(() => undefined))?.close();
    })();
    if (!interrupted) return all;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([all, new Promise<void>((r) => (timer = setTimeout(r, interruptGraceMs())))]);
    clearTimeout(timer);
  }
}

let meta: { package: { name: string; version: string }; gitSha: string | null } | undefined;
export function packageMeta() {
  if (meta) return meta;
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
  let gitSha: string | null = null;
  try {
    gitSha = execFileSync("git", ["rev-parse", "HEAD"], { cwd: path.dirname(new URL(import.meta.url).pathname), stdio: ["ignore", "pipe", "ignore"] })
      .toString()
      .trim();
  } catch {
    gitSha = null;
  }
  return (meta = { package: { name: pkg.name, version: pkg.version }, gitSha });
}

export function statsTable(stage: string, m: StageManifest, counters: Record<string, number>): string[] {
  const c = m.counts;
  const rows: string[][] = [["source", "in", "out", ...Object.keys(c.reasons).sort()]];
  const reasons = Object.keys(c.reasons).sort();
  for (const [src, s] of Object.entries(c.bySource).sort()) rows.push([src, String(s.in), String(s.out), ...reasons.map((r) => String(s.reasons[r] ?? 0))]);
  rows.push(["TOTAL", String(c.in), String(c.out), ...reasons.map((r) => String(c.reasons[r]))]);
  const out = [`${stage} stats (records in → out, drops per reason):`, ...table(rows)];
  const cs = Object.entries(counters).filter(([, v]) => v);
  if (cs.length) out.push(`${stage} counters: ${cs.map(([k, v]) => `${k}=${Number.isInteger(v) ? v : v.toFixed(1)}`).join(", ")}`);
  return out;
}

export function table(rows: string[][]): string[] {
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  const fmt = (r: string[]) => "| " + r.map((c, i) => (c ?? "").padEnd(w[i])).join(" | ") + " |";
  return [fmt(rows[0]), "|" + w.map((n) => "-".repeat(n + 2)).join("|") + "|", ...rows.slice(1).map(fmt)];
}

