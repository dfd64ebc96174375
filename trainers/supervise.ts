/**
 * Supervising the training process: spawn it in its own process group, stream stdout+stderr to
 * `train.log`, parse progress into a bar and `metrics.jsonl`, register `checkpoint-N` folders as they
 * complete, and stop it cleanly on Ctrl-C / abort (SIGINT to the group, SIGTERM after a grace period,
 * SIGKILL last). On a non-zero exit the last log lines and the likely cause are returned.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, promises as fsp } from "node:fs";
import * as path from "node:path";
import cliProgress from "cli-progress";
import { LineSplitter, ProgressState, parseLine, type MetricRow } from "./progress.ts";
import type { CheckpointEntry, CheckpointRegistry } from "./registry.ts";

export interface SuperviseOptions {
  argv: string[];
  /** Full environment of the child. */
  env: NodeJS.ProcessEnv;
  cwd: string;
  logFile: string;
  metricsFile: string;
  outputDir: string;
  registry: CheckpointRegistry;
  effectiveBatch: number;
  stdout: (line: string) => void;
  signal?: AbortSignal;
  /** Also stop the child on SIGINT/SIGTERM sent to this process (the CLI case). */
  handleProcessSignals?: boolean;
  stopGraceMs?: number;
  /** How often the output folder is scanned for checkpoints. */
  pollMs?: number;
  /** Live bar on a TTY; otherwise a line every `plainIntervalMs` (default UTGEN_PROGRESS_INTERVAL_S or 30 s) and a last one. */
  tty?: boolean;
  plainIntervalMs?: number;
  tailLines?: number;
}

export interface SuperviseResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** Stopped on our request (Ctrl-C / abort). */
  interrupted: boolean;
  tail: string[];
  cause: string | null;
  checkpoints: CheckpointEntry[];
  step: number;
  maxSteps: number;
  last: Record<string, unknown>;
  /** Spawning failed (no such interpreter …). */
  spawnError: string | null;
}

/** Known failure signatures in the last log lines → one line: cause and fix. */
const CAUSES: [RegExp, string][] = [
  [/CUDA out of memory|OutOfMemoryError|CUBLAS_STATUS_ALLOC_FAILED/i,
    "GPU out of memory: lower train.micro_batch_size (the accumulation grows to keep the batch) or train.max_length, use method: qlora, or shard with distributed: zero3/fsdp"],
  [/No module named '([^']+)'/, "a Python package is missing in the trainer env: install trainers/requirements.txt into train.python.trl's virtualenv"],
  [/assistant_only_loss|generation.*keyword|return_assistant_tokens_mask/i,
    "the chat template has no {% generation %} markers for assistant_only_loss: use train.data_format: prompt_completion"],
  [/GatedRepoError|401 Client Error|Cannot access gated repo|Repository Not Found/i,
    "the model is gated or not found on the Hub: accept its licence, `huggingface-cli login` (HF_TOKEN), or set train.model_path to a local copy"],
  [/LocalEntryNotFoundError|couldn't connect to 'https:\/\/huggingface.co'|offline mode is enabled/i,
    "the model is not in the local Hugging Face cache and the Hub cannot be reached: download it first or set train.model_path"],
  [/NCCL (error|WARN.*(timeout|Timeout))|ProcessGroupNCCL|Watchdog caught collective operation timeout/i,
    "NCCL communication failed between GPUs/nodes: check NCCL_SOCKET_IFNAME / network, or set NCCL_DEBUG=INFO in train.env"],
  [/Address already in use|EADDRINUSE/i, "the rendezvous port is taken: set train.main_process_port to a free port"],
  [/No space left on device/i, "the disk is full: free space under the run folder or lower train.save.total_limit"],
  [/bitsandbytes.*(CUDA|cuda).*(not|setup)|libbitsandbytes_cuda|bitsandbytes was compiled without GPU/i,
    "bitsandbytes cannot use CUDA: reinstall bitsandbytes for this CUDA version in the trainer env"],
  [/Bfloat16 is only supported|bf16.*(requires|not supported)|--bf16.*Ampere/i,
    "the GPU has no bf16 support: set train.bf16: false (fp16) or use an Ampere-or-newer GPU"],
  [/^error: /m, "the training script rejected its config or data (see the error line above)"],
];

export function diagnose(tail: string[], exitCode: number | null, signal: NodeJS.Signals | null): string | null {
  const text = tail.join("\n");
  for (const [re, cause] of CAUSES) if (re.test(text)) return cause;
  if (signal === "SIGKILL" || exitCode === 137 || exitCode === -9)
    return "the process was killed (SIGKILL): most often the host ran out of RAM (OOM killer, see `dmesg`); lower dataloader workers or use a machine with more memory";
  if (signal === "SIGSEGV" || exitCode === 139) return "the process crashed (segmentation fault): usually a CUDA/driver or bitsandbytes build mismatch";
  return null;
}

class ProgressView {
  private bar: cliProgress.SingleBar | null = null;
  private timer: NodeJS.Timeout | null = null;
  constructor(private readonly state: ProgressState, private readonly out: (l: string) => void, tty: boolean, intervalMs: number) {
    if (tty) {
      this.bar = new cliProgress.SingleBar(
        { format: "train {bar} {value}/{total} steps | {info}", hideCursor: true, stream: process.stderr },
        cliProgress.Presets.shades_classic,
      );
      this.bar.start(1, 0, { info: "starting" });
    } else {
      this.timer = setInterval(() => this.out(this.line()), intervalMs);
      this.timer.unref();
    }
  }
  line(): string {
    const s = this.state;
    const pct = s.maxSteps ? ` (${((100 * s.step) / s.maxSteps).toFixed(1)}%)` : "";
    const info = s.summary();
    return `train: step ${s.step}${s.maxSteps ? `/${s.maxSteps}` : ""}${pct}${info ? ` | ${info}` : ""}`;
  }
  update(): void {
    if (!this.bar) return;
    if (this.state.maxSteps) this.bar.setTotal(this.state.maxSteps);
    this.bar.update(this.state.step, { info: this.state.summary() || "…" });
  }
  stop(): void {
    if (this.bar) {
      this.update();
      this.bar.stop();
    }
    if (this.timer) {
      clearInterval(this.timer);
      this.out(this.line());
    }
  }
}

export async function supervise(o: SuperviseOptions): Promise<SuperviseResult> {
  await fsp.mkdir(path.dirname(o.logFile), { recursive: true });
  await fsp.mkdir(o.outputDir, { recursive: true });
  const log = createWriteStream(o.logFile, { flags: "a" });
  const metrics = createWriteStream(o.metricsFile, { flags: "a" });
  const state = new ProgressState(o.effectiveBatch);
  const view = new ProgressView(state, o.stdout, o.tty ?? false, o.plainIntervalMs ?? Number(process.env.UTGEN_PROGRESS_INTERVAL_S ?? 30) * 1000);
  const tailMax = o.tailLines ?? 40;
  const tail: string[] = [];
  const checkpoints: CheckpointEntry[] = [];

  log.write(`\n=== launch ${new Date().toISOString()}: ${o.argv.join(" ")}\n`);

  // Checkpoint discovery: periodic scan, plus one right after the callback reports a save.
  let scanning: Promise<void> = Promise.resolve();
  const scan = () => {
    scanning = scanning.then(async () => {
      const { added, removed } = await o.registry.sync(o.outputDir);
      for (const c of added) {
        checkpoints.push(c);
        o.stdout(`train: checkpoint ${c.name} registered (epoch ${c.epoch ?? "?"}) → ${c.path}`);
      }
      for (const c of removed) o.stdout(`train: checkpoint ${c.name} was removed by save_total_limit; unregistered`);
    }).catch((e) => o.stdout(`train: warning: checkpoint scan failed: ${(e as Error).message}`));
    return scanning;
  };

  const onLine = (line: string) => {
    if (!line.trim()) return;
    tail.push(line);
    if (tail.length > tailMax) tail.shift();
    const ev = parseLine(line);
    if (!ev) return;
    const row: MetricRow | null = state.apply(ev);
    if (row) metrics.write(JSON.stringify(row) + "\n");
    if (ev.kind === "save") void scan();
    view.update();
  };

  let child: ChildProcess;
  try {
    child = spawn(o.argv[0], o.argv.slice(1), { cwd: o.cwd, env: o.env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  } catch (e) {
    view.stop();
    log.end();
    metrics.end();
    return emptyResult(`cannot start ${o.argv[0]}: ${(e as Error).message}`);
  }

  const splitters = { out: new LineSplitter(), err: new LineSplitter() };
  let logAtLineStart = true;
  const pipe = (stream: NodeJS.ReadableStream, sp: LineSplitter) => {
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => {
      log.write(chunk);
      logAtLineStart = /[\r\n]$/.test(chunk);
      for (const l of sp.push(chunk)) onLine(l);
    });
  };
  pipe(child.stdout!, splitters.out);
  pipe(child.stderr!, splitters.err);

  let interrupted = false;
  const timers: NodeJS.Timeout[] = [];
  const killGroup = (sig: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, sig);
    } catch {
      /* already gone */
    }
  };
  // First request (Ctrl-C or abort, possibly both for one key press): SIGINT, then SIGTERM after the grace
  // period. A second Ctrl-C on this process terminates at once.
  const stop = () => {
    if (interrupted) return;
    interrupted = true;
    o.stdout("train: stopping the trainer (SIGINT); Ctrl-C again to terminate at once");
    killGroup("SIGINT");
    const grace = o.stopGraceMs ?? 60_000;
    timers.push(setTimeout(() => {
      o.stdout(`train: still running after ${grace / 1000}s, sending SIGTERM`);
      killGroup("SIGTERM");
      timers.push(setTimeout(() => killGroup("SIGKILL"), 10_000));
    }, grace));
  };
  let signals = 0;
  const onSignal = () => {
    if (++signals < 2) return stop();
    o.stdout("train: stopping now (SIGTERM)");
    killGroup("SIGTERM");
  };
  // The trainer runs in its own process group: never leave it behind if this process exits.
  const onExit = () => killGroup("SIGTERM");
  if (o.signal?.aborted) stop();
  o.signal?.addEventListener("abort", stop);
  process.on("exit", onExit);
  if (o.handleProcessSignals) {
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  }
  const poll = setInterval(() => void scan(), o.pollMs ?? 5_000);

  const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; error: string | null }>((resolve) => {
    child.once("error", (e) => resolve({ code: null, signal: null, error: `cannot start ${o.argv[0]}: ${e.message}` }));
    child.once("close", (code, signal) => resolve({ code, signal, error: null }));
  });

  clearInterval(poll);
  for (const t of timers) clearTimeout(t);
  o.signal?.removeEventListener("abort", stop);
  process.off("exit", onExit);
  if (o.handleProcessSignals) {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
  for (const l of [...splitters.out.flush(), ...splitters.err.flush()]) onLine(l);
  await scan();
  view.stop();
  log.write(`${logAtLineStart ? "" : "\n"}=== exit ${exit.signal ?? exit.code} ${new Date().toISOString()}\n`);
  await Promise.all([new Promise((r) => log.end(r)), new Promise((r) => metrics.end(r))]);
  if (exit.error) return emptyResult(exit.error);

  const failed = exit.code !== 0;
  return {
    exitCode: exit.code,
    signal: exit.signal,
    interrupted,
    tail,
    cause: failed && !interrupted ? diagnose(tail, exit.code, exit.signal) : null,
    checkpoints,
    step: state.step,
    maxSteps: state.maxSteps,
    last: state.last,
    spawnError: null,
  };
}

function emptyResult(spawnError: string): SuperviseResult {
  return { exitCode: null, signal: null, interrupted: false, tail: [], cause: null, checkpoints: [], step: 0, maxSteps: 0, last: {}, spawnError };
}
