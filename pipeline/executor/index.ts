/**
 * The executor: the only way the pipeline runs model- or dataset-provided Python. A pool of sandboxed
 * fork servers (see sandbox.ts, server.py, pool.ts and docs/executor.md) behind the `Executor` contract
 * of types.ts, plus the `executor:` config block and the calibrated-timeout policy.
 */
import { availableParallelism } from "node:os";
import { z } from "zod";
import { UserError } from "../errors.ts";
import { Pool, Worker, WorkerDied } from "./pool.ts";
import { checkSandboxAsync, serverCommand, type SandboxOptions } from "./sandbox.ts";
import type { CallArgs, CallResult, Executor, ProgramCheck, ProgramJob, ProgramResult, RunCallsRequest, RunProgramsOptions, ScriptResult } from "./types.ts";

export * from "./types.ts";
export * from "./literals.ts";
export * from "./compare.ts";
export * from "./judge.ts";

export const executorConfigSchema = z
  .object({
    /** Interpreter used inside the sandbox (must have numpy for the UTGen prelude). */
    python: z.string().default("/usr/bin/python3"),
    /** Fork servers in the pool (default: one per core). */
    workers: z.number().int().positive().default(availableParallelism()),
    /** Address space a program may use on top of the preloaded interpreter, MiB. */
    memory_mb: z.number().int().min(64).default(1024),
    /** Size of the private tmpfs each child gets (its only writable place), MiB. */
    tmpfs_mb: z.number().int().min(1).default(64),
    /** Files and folders a child may create in its tmpfs. */
    tmpfs_inodes: z.number().int().min(16).default(4096),
    /** What one request may send back in values (all its programs together), MiB. */
    request_out_mb: z.number().int().min(1).default(64),
    /**
     * Run programs that never name numpy (nor anything that could look at their namespace, modules or memory)
     * in a second zygote without numpy, whose children fork ~3× faster; false: every program in the full one.
     */
    lean_zygote: z.boolean().default(true),
    /**
     * With lean_zygote: start the full (numpy) zygote only when a program first needs it (its fork still happens
     * at start-up, before any request); false: it starts with the lean one.
     */
    lazy_full_zygote: z.boolean().default(true),
    /**
     * Back each zygote's heap with 2 MiB pages once it is loaded (Linux ≥ 6.1, transparent huge pages not
     * "never"): every fork copies and every exit drops ~1/512 of the page-table entries for that memory.
     */
    huge_pages: z.boolean().default(true),
    /**
     * Put the interpreter's own code and read-only data on 2 MiB pages in each zygote (where the executable has
     * whole aligned 2 MiB of them): a fresh child reads those through one page-table entry instead of hundreds.
     */
    huge_text: z.boolean().default(true),
    /**
     * Learn, when each zygote starts, which pages of its image every child writes, and have each child copy
     * them in one system call (MADV_POPULATE_WRITE through process_madvise, Linux ≥ 6.15) instead of taking a
     * page fault for each: a saving wherever a fault is dear (a hypervisor that traps each one).
     */
    prefault: z.boolean().default(true),
    /**
     * Parse and compile each program's text in the worker's server (warm, once) and send the child the code
     * object, where that is the child's own compile to the letter (docs/executor.md, "Sixth pass"); false: every
     * child compiles the text itself.
     */
    precompile: z.boolean().default(true),
    /**
     * Decide a check (checkProgram) in the worker's server, without a child, where its module level can only
     * bind names — functions, classes of plain methods, imports of loaded modules, literal constants, an
     * `if __name__ == "__main__":` block — so it cannot fail (docs/executor.md, "Eighth pass"); false: every
     * check forks a child.
     */
    static_check: z.boolean().default(true),
    /**
     * Benchmarks only: keep bubblewrap and the uid drop but switch off the hardening of issue #16 (the
     * children's pid namespace, per-request IPC namespace, per-child tmpfs, seccomp filter), to measure
     * what it costs. Never set it for real work.
     */
    diagnostic_no_hardening: z.boolean().default(false),
    /** DANGER: run generated code without bubblewrap / uid drop (rlimits only). */
    unsafe_no_sandbox: z.boolean().default(false),
    /** Per-call limit for the gold (reference) code, e.g. the validity check of a generated input. */
    gold_timeout_s: z.number().positive().default(1),
    /** Per-call limit for code under test (the reference harness's fixed limit). */
    buggy_timeout_s: z.number().positive().default(2),
    /** Calibrate the buggy-code limit on the gold code's measured time (EvalPlus-style). */
    calibrate: z.boolean().default(true),
    /** Limit = clamp(calibrate_factor × gold time, calibrate_floor_s, buggy_timeout_s). */
    calibrate_factor: z.number().positive().default(4),
    calibrate_floor_s: z.number().positive().default(0.2),
    /** Extra wall time after a call's limit before the child is SIGKILLed (C-level loops ignore alarms). */
    grace_s: z.number().min(0.01).default(0.25),
    /**
     * Node's watchdog: a worker silent for longer than the largest limit in flight + grace_s + this is
     * killed and replaced (the server itself reports every limit; this only catches a server that hangs).
     */
    watchdog_slack_s: z.number().min(0.1).default(2),
  })
  .strict();

export type ExecutorConfig = z.infer<typeof executorConfigSchema>;

/**
 * The calibrated per-call limit (seconds) for code under test, given the gold code's measured time on
 * the same input(s) in milliseconds: `min(buggy_timeout_s, max(calibrate_floor_s, factor × gold))`.
 * With `calibrate: false` it is always `buggy_timeout_s` (the reference harness's fixed 2 s).
 */
export function buggyTimeoutFor(goldMs: number, cfg: Partial<ExecutorConfig> = {}): number {
  const c = executorConfigSchema.parse(cfg);
  if (!c.calibrate || !Number.isFinite(goldMs)) return c.buggy_timeout_s;
  const s = Math.max(c.calibrate_floor_s, (c.calibrate_factor * Math.max(0, goldMs)) / 1000);
  return Math.min(c.buggy_timeout_s, s);
}

/** The Executor implementation, with a few extras for tests, benchmarks and diagnostics. */
export interface SandboxExecutor extends Executor {
  readonly config: ExecutorConfig;
  /** Host pids of the workers' sandbox launchers (for leak checks). */
  workerPids(): number[];
  /** What each worker's server reported at start (its isolation features). */
  workerInfo(): Record<string, unknown>[];
  /**
   * What each worker's zygotes did at their start (huge pages, huge text, prefault lists), a parked full zygote
   * started first: the ready message has only the zygotes that had started by then. Ask it of an idle executor:
   * its requests go one to each free worker, as benchFork's.
   */
  zygoteInfo(): Promise<Record<string, Record<string, number>>[]>;
  /** Runs a fork loop (see ForkLoop) in every worker at once. */
  benchFork(n: number, zygote?: "full" | "lean", loop?: ForkLoop): Promise<{ perWorkerPerS: number[]; totalPerS: number }>;
}

/**
 * Fork loops for bench/executor.ts: "bare" forks children that exit at once with os.fork (the fork ceiling);
 * "libc" is the same loop with the zygote's own fork (libc's fork(), no Python at-fork hooks: server.py
 * `_zygote_fork`); "floor" forks, per program, a child that reads, compiles, executes and calls a small program
 * and writes its results, with none of the harness around it (what any fork-per-program design must pay).
 */
export type ForkLoop = "bare" | "libc" | "floor";

/** A request the executor refuses before it reaches any worker (one line: what is wrong). */
export class ExecutorRequestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ExecutorRequestError";
  }
}

const RESULT_CAP = 8 << 20;
/** The largest limit (seconds) a request may ask for: anything longer is a mistake, not a test. */
export const MAX_LIMIT_S = 3600;
/** Typed values deeper than this are refused (the server's decoder and the child's encoder stop at 200). */
const MAX_VALUE_DEPTH = 150;

export async function createExecutor(cfg: Partial<ExecutorConfig> = {}): Promise<SandboxExecutor> {
  const parsed = executorConfigSchema.safeParse(cfg);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw new UserError(`executor.${i.path.join(".") || "?"}: ${i.message} (fix the executor: block of the config)`);
  }
  const c = parsed.data;
  const opts: SandboxOptions = {
    python: c.python,
    unsafe: c.unsafe_no_sandbox,
    tmpfsMb: c.tmpfs_mb,
    hardening: !c.diagnostic_no_hardening,
    limits: {
      memory_mb: c.memory_mb,
      grace_s: c.grace_s,
      out_cap: RESULT_CAP,
      nofile: 64,
      fsize: 1 << 20,
      tmpfs_bytes: c.tmpfs_mb << 20,
      tmpfs_inodes: c.tmpfs_inodes,
      request_out_cap: c.request_out_mb << 20,
      lean_zygote: c.lean_zygote ? 1 : 0,
      lazy_full_zygote: c.lazy_full_zygote ? 1 : 0,
      huge_pages: c.huge_pages ? 1 : 0,
      huge_text: c.huge_text ? 1 : 0,
      prefault: c.prefault ? 1 : 0,
      precompile: c.precompile ? 1 : 0,
      static_check: c.static_check ? 1 : 0,
      seccomp: c.diagnostic_no_hardening ? 0 : 1,
    },
  };
  // The interpreter and bubblewrap are checked at once (a missing one throws here); the probe (a sandboxed
  // interpreter that reports its uid, numpy and libseccomp) runs while the workers start, and its one-line
  // message, which names the fix, wins over the workers' own failure.
  const probe = checkSandboxAsync(opts);
  probe.catch(() => {});
  if (c.unsafe_no_sandbox) {
    process.stderr.write(
      "WARNING: executor.unsafe_no_sandbox is set: generated code runs WITHOUT bubblewrap or a uid drop; it can read your files, environment and network.\n",
    );
  }
  const argv = serverCommand(opts);
  const workers = Array.from({ length: c.workers }, () => new Worker(argv));
  const ready = Promise.all(workers.map((w) => w.ready));
  ready.catch(() => {}); // awaited below, after the probe
  try {
    await probe;
    await ready;
  } catch (e) {
    await Promise.all(workers.map((w) => w.close()));
    if (e instanceof UserError) throw e;
    throw new UserError(`the code sandbox did not start: ${(e as Error).message.split("\n")[0]}`);
  }
  return new PoolExecutor(c, new Pool(workers));
}

function isCallArgs(x: unknown): x is CallArgs {
  return !!x && typeof x === "object" && Array.isArray((x as CallArgs).args);
}

/** Why `v` is not a typed value the sandbox can take (types.ts), or undefined when it is one. */
export function invalidValue(v: unknown, depth = 0): string | undefined {
  if (depth > MAX_VALUE_DEPTH) return `nested deeper than ${MAX_VALUE_DEPTH}`;
  if (v === null || typeof v === "boolean" || typeof v === "string") return undefined;
  if (typeof v === "number") return Number.isFinite(v) ? undefined : `the number ${v} has no JSON form (use {"$float": "${v === Infinity ? "inf" : v === -Infinity ? "-inf" : "nan"}"})`;
  if (typeof v === "bigint") return `a BigInt (use {"$int": "${v}"})`;
  if (Array.isArray(v)) {
    for (const x of v) {
      const why = invalidValue(x, depth + 1);
      if (why) return why;
    }
    return undefined;
  }
  if (typeof v !== "object") return `a ${typeof v} is not a value`;
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o);
  const one = keys.length === 1 ? keys[0] : undefined;
  if (one === "$int") return typeof o.$int === "string" && /^-?\d+$/.test(o.$int) ? undefined : "$int must be a string of digits";
  if (one === "$float") return typeof o.$float === "string" ? undefined : "$float must be a string";
  if (one === "$bytes") return typeof o.$bytes === "string" ? undefined : "$bytes must be a base64 string";
  if (one === "$tuple" || one === "$set" || one === "$frozenset") return Array.isArray(o[one]) ? invalidValue(o[one], depth) : `${one} must be a list`;
  if (one === "$dict") {
    if (!Array.isArray(o.$dict)) return "$dict must be a list of [key, value] pairs";
    for (const pair of o.$dict) {
      if (!Array.isArray(pair) || pair.length !== 2) return "$dict must be a list of [key, value] pairs";
      const why = invalidValue(pair[0], depth + 1) ?? invalidValue(pair[1], depth + 1);
      if (why) return why;
    }
    return undefined;
  }
  if (keys.length === 2 && "$ndarray" in o && typeof o.dtype === "string") return invalidValue(o.$ndarray, depth + 1);
  if (keys.length === 2 && "$repr" in o) return "a $repr value cannot be passed as an argument";
  return `not a typed value (keys: ${keys.slice(0, 4).join(", ")})`;
}

function invalidCall(x: unknown): string | undefined {
  if (!isCallArgs(x)) return "arguments must be {args: [...], kwargs?: {...}}";
  const why = invalidValue(x.args);
  if (why) return `bad argument: ${why}`;
  if (x.kwargs !== undefined) {
    if (!x.kwargs || typeof x.kwargs !== "object" || Array.isArray(x.kwargs)) return "kwargs must be an object";
    for (const v of Object.values(x.kwargs)) {
      const w = invalidValue(v, 1);
      if (w) return `bad keyword argument: ${w}`;
    }
  }
  return undefined;
}

function limitOf(what: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0 || v > MAX_LIMIT_S) {
    throw new ExecutorRequestError(`${what} must be a number of seconds in (0, ${MAX_LIMIT_S}], got ${String(v)}`);
  }
  return v;
}

/** One program as it goes to a worker, and where its results go back. */
interface Spec {
  job: number;
  /** Where this program's results go, and what its caller asked for. */
  target: Internal;
  opts: RunProgramsOptions;
  /** Called once this program's results are delivered (or with an error that ends its request). */
  settle: (e?: Error) => void;
  /** Bytes of values the caller's request may still receive (shared by every program of one call). */
  budget: { left: number };
  kind: "function" | "stdio" | "check";
  program: string;
  entry?: string;
  /** The inputs sent (valid ones only) and their indices among the job's inputs. */
  inputs: unknown[];
  index: number[];
  timeouts: number[];
  loadTimeout: number;
  attempts: number;
}

/** Per-program cost breakdown (seconds), when `timing` is asked for. */
export type ProgramTiming = {
  /** The server waiting on the zygote's fork reply. */
  spawn: number;
  /** fork() itself, from the zygote's call to the child's first instruction. */
  fork: number;
  /** The child's set-up: capabilities, session, descriptors, limits, seccomp, reading its request. */
  setup: number;
  load: number;
  run: number;
  encode: number;
  /** Previous line → answer time not spent running or encoding (pipes, scheduling, JSON). */
  transport: number;
  /** The end line (after the last answer), drain and kill. */
  exit: number;
  children: number;
  /** Page faults of the child (counts, not seconds): fork until the harness runs, its set-up and request, the module load. */
  flt_fork: number;
  flt_setup: number;
  flt_load: number;
  /** Children given the code object the server compiled (executor.precompile), not the text. */
  precompiled: number;
  /** 1 for a check decided in the server without a child (executor.static_check), else 0. */
  static: number;
};

type Internal = { results: CallResult[]; timing?: ProgramTiming; check?: ProgramCheck };

class PoolExecutor implements SandboxExecutor {
  constructor(
    readonly config: ExecutorConfig,
    private readonly pool: Pool,
  ) {}

  workerPids(): number[] {
    return this.pool.workers.map((w) => w.pid);
  }

  workerInfo(): Record<string, unknown>[] {
    return this.pool.workers.map((w) => w.info);
  }

  async zygoteInfo(): Promise<Record<string, Record<string, number>>[]> {
    return this.eachWorker({ op: "info" }, 60_000, (msg) => {
      if (!msg.info) throw new Error("zygoteInfo: no answer");
      return msg.info as Record<string, Record<string, number>>;
    });
  }

  /**
   * One request per worker, all at once (each takes a different idle worker): `pick` turns each worker's last
   * ("done") message into its answer.
   */
  private eachWorker<T>(req: Record<string, unknown>, timeoutMs: number, pick: (done: any) => T): Promise<T[]> {
    return Promise.all(
      this.pool.workers.map(async () => {
        let done: any;
        await this.pool.use((w) =>
          w.request(req, (msg) => {
            if (msg.done) done = msg;
            return !!msg.done;
          }, timeoutMs),
        );
        return pick(done ?? {});
      }),
    );
  }

  private watchdogMs(limitS: number): number {
    return Math.ceil((limitS + this.config.grace_s + this.config.watchdog_slack_s) * 1000);
  }

  async benchFork(n: number, zygote: "full" | "lean" = "full", loop: ForkLoop = "bare"): Promise<{ perWorkerPerS: number[]; totalPerS: number }> {
    const per = await this.eachWorker({ op: "bench_fork", n, zygote, loop }, 600_000, (msg) => {
      const res = msg.bench;
      if (!res || typeof res.s !== "number") throw new Error(`benchFork (${loop}, ${zygote}): ${res?.error ?? "no result"}`);
      return res.n / res.s;
    });
    return { perWorkerPerS: per, totalPerS: per.reduce((a, b) => a + b, 0) };
  }

  async runCalls(req: RunCallsRequest): Promise<CallResult[]> {
    const [r] = await this.runPrograms([{ program: req.program, entryPoint: req.entryPoint, inputs: req.inputs, timeoutS: req.timeoutS, loadTimeoutS: req.loadTimeoutS }]);
    return r.results;
  }

  async runPrograms(jobs: ProgramJob[], opts: RunProgramsOptions = {}): Promise<ProgramResult[]> {
    const out: Internal[] = [];
    const budget = { left: this.config.request_out_mb << 20 };
    const specs: Omit<Spec, "settle">[] = [];
    jobs.forEach((job, j) => {
      const kind = job.kind ?? "function";
      if (kind !== "function" && kind !== "stdio") throw new ExecutorRequestError(`job ${j}: kind must be "function" or "stdio", got ${String(kind)}`);
      if (typeof job.program !== "string") throw new ExecutorRequestError(`job ${j}: program must be a string`);
      if (kind === "function" && (typeof (job as { entryPoint?: unknown }).entryPoint !== "string" || !(job as { entryPoint: string }).entryPoint))
        throw new ExecutorRequestError(`job ${j}: a function program needs an entryPoint`);
      if (!Array.isArray(job.inputs)) throw new ExecutorRequestError(`job ${j}: inputs must be a list`);
      const n = job.inputs.length;
      const limits = Array.isArray(job.timeoutS) ? job.timeoutS : new Array(n).fill(job.timeoutS);
      if (Array.isArray(job.timeoutS) && job.timeoutS.length !== n) throw new ExecutorRequestError(`job ${j}: ${job.timeoutS.length} limits for ${n} inputs`);
      if (!Array.isArray(job.timeoutS)) limitOf(`job ${j}: timeoutS`, job.timeoutS);
      limits.forEach((t, i) => limitOf(`job ${j} input ${i}: timeoutS`, t));
      const loadTimeout = limitOf(`job ${j}: loadTimeoutS`, job.loadTimeoutS ?? Math.max(0.001, ...limits, Array.isArray(job.timeoutS) ? 0 : job.timeoutS));
      const target: Internal = { results: new Array(n) };
      const spec = { job: j, target, opts, budget, kind, program: job.program, entry: kind === "function" ? (job as { entryPoint: string }).entryPoint : undefined, inputs: [] as unknown[], index: [] as number[], timeouts: [] as number[], loadTimeout, attempts: 0 };
      job.inputs.forEach((x, i) => {
        const why = kind === "stdio" ? (typeof x === "string" ? undefined : "stdin must be a string") : invalidCall(x);
        if (why) target.results[i] = { status: "invalid_input", message: why, ms: 0 };
        else {
          spec.inputs.push(x);
          spec.index.push(i);
          spec.timeouts.push(limits[i]);
        }
      });
      out.push(target);
      if (spec.inputs.length) specs.push(spec);
    });
    await this.submit(specs);
    return out.map((o) => (o.timing ? { results: o.results, timing: o.timing } : { results: o.results }));
  }

  async checkPrograms(programs: string[], opts: { timeoutS: number; timing?: boolean }): Promise<ProgramCheck[]> {
    const t = limitOf("checkPrograms: timeoutS", opts.timeoutS);
    const out: Internal[] = programs.map(() => ({ results: [] }));
    const specs = programs.map((program, job) => {
      if (typeof program !== "string") throw new ExecutorRequestError(`program ${job} must be a string`);
      return { job, target: out[job], opts: opts.timing ? { timing: true } : {}, budget: { left: this.config.request_out_mb << 20 }, kind: "check" as const, program, inputs: [], index: [], timeouts: [], loadTimeout: t, attempts: 0 };
    });
    await this.submit(specs);
    return out.map((o) => {
      const c = o.check ?? { status: "crash", message: "no result from the sandbox", functions: [], classes: [], ms: 0 };
      return opts.timing && o.timing ? { ...c, timing: o.timing } : c;
    });
  }

  async checkProgram(program: string, opts: { timeoutS: number; timing?: boolean }): Promise<ProgramCheck> {
    return (await this.checkPrograms([program], opts))[0];
  }

  // ---- the scheduler: one queue of programs for every caller, `width` runners taking chunks from it ----
  /**
   * Queued programs, in flows served round-robin: each call with several programs is a flow of its own, and
   * the single programs of every call (the engine's records in flight each calling runCalls / checkProgram)
   * share one, whatever tick they were queued in — so they travel together in few requests, and a small
   * request is not stuck behind a large batch. (Until 2026-12-04 the singles of each tick were a flow of
   * their own: the filter's checks, arriving one per tick, went one per request — 841 requests for 855
   * programs over 20K rows — and each paid a request's fixed cost, ~1.9 ms of CPU.)
   */
  private flows: Spec[][] = [];
  private readonly singles: Spec[] = [];
  private rr = 0;
  private runners = 0;
  private kickScheduled = false;

  private get queued(): number {
    let n = 0;
    for (const f of this.flows) n += f.length;
    return n;
  }

  /** Queue programs; resolves once every one is delivered. */
  private submit(specs: Omit<Spec, "settle">[]): Promise<void> {
    if (!specs.length) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      let left = specs.length;
      let failed = false;
      const settle = (e?: Error) => {
        if (failed) return;
        if (e) {
          failed = true;
          reject(e);
        } else if (--left === 0) resolve();
      };
      const mine = specs.map((s) => ({ ...s, settle }));
      if (mine.length === 1) {
        if (!this.flows.includes(this.singles)) this.flows.push(this.singles);
        this.singles.push(mine[0]);
      } else this.flows.push(mine);
      if (!this.kickScheduled) {
        this.kickScheduled = true;
        setImmediate(() => {
          this.kickScheduled = false;
          this.kick();
        });
      }
    });
  }

  private kick(): void {
    const width = this.pool.workers.length;
    while (this.runners < width && this.queued) {
      this.runners++;
      void this.runner().finally(() => {
        this.runners--;
        if (this.queued) this.kick();
      });
    }
  }

  /** What the sandbox reported for one program: its results into its target, then its caller is told. */
  private deliver(s: Spec, msg: any, defer?: Spec[]): void {
    const o = s.target;
    const rs: unknown[] = Array.isArray(msg.r) ? msg.r : [];
    // Bytes of values this program used of its caller's budget: past what the caller had left (another of its
    // requests in flight used it meanwhile), its values are voided as the server would have.
    const used = typeof msg.b === "number" && msg.b > 0 ? msg.b : 0;
    const over = used > s.budget.left;
    s.budget.left = Math.max(0, s.budget.left - used);
    const cap = this.config.request_out_mb << 20;
    s.index.forEach((i, k) => {
      let r = rs[k] as CallResult | undefined;
      if (over && r && typeof r === "object" && r.status === "ok") r = { status: "error", errorType: "OutputTooLarge", message: `the request's results passed ${cap} bytes`, ms: r.ms };
      o.results[i] = r && typeof r === "object" && typeof r.status === "string" ? { ...r, ms: typeof r.ms === "number" ? r.ms : 0 } : { status: "crash", message: "no result from the sandbox", ms: 0 };
      s.opts.onResult?.(s.job, i, o.results[i]);
    });
    if (msg.t) o.timing = msg.t;
    if (s.kind === "check") {
      const c = msg.check ?? { status: "crash", message: "no result" };
      const ast = msg.ast ?? {};
      o.check = {
        status: c.status,
        ...(c.errorType ? { errorType: c.errorType } : {}),
        ...(c.message ? { message: c.message } : {}),
        functions: ast.functions ?? [],
        classes: ast.classes ?? [],
        ms: typeof c.ms === "number" ? c.ms : 0,
        ...(c.static === true && c.status === "ok" ? { static: true as const } : {}),
      };
    }
    // A caller that asked for the request's usage is told once the request's accounting has arrived (`done`).
    if (defer && s.opts.usage) defer.push(s);
    else s.settle();
  }

  /**
   * Take chunks from the flows in turn (guided self-scheduling: about a 2·width-th of what the flow has queued, at most 64, so
   * the workers stay busy and the last chunks are small) and send each to a worker as one request. A worker
   * that dies takes only the program in flight with it: that one is retried once on a fresh worker, then
   * reported as a crash; the rest of the chunk goes back to the front of the queue.
   */
  private async runner(): Promise<void> {
    const width = this.pool.workers.length;
    for (;;) {
      this.flows = this.flows.filter((f) => f.length);
      const flow = this.flows.length ? this.flows[this.rr++ % this.flows.length] : undefined;
      if (!flow) break;
      if (!flow.length) {
        if (!this.queued) break;
        continue;
      }
      const size = Math.max(1, Math.min(64, Math.ceil(flow.length / (2 * width))));
      const chunk = flow.splice(0, size);
      const got = new Set<number>();
      const limit = Math.max(...chunk.map((s) => Math.max(s.loadTimeout, ...s.timeouts)));
      // Each caller's programs form a group with what that caller may still receive; the server keeps one budget
      // per group. (Two requests of one caller in flight at once each start from the same remainder; what Node
      // then receives past it is voided in deliver, so a caller never gets more than its budget.)
      const groups = [...new Set(chunk.map((s) => s.budget))];
      const wire = chunk.map((s) => ({ kind: s.kind, program: s.program, entry: s.entry, inputs: s.inputs, timeouts: s.timeouts, load_timeout: s.loadTimeout, g: groups.indexOf(s.budget) }));
      const timing = chunk.some((s) => s.opts.timing);
      const deferred: Spec[] = [];
      try {
        await this.pool.use((w) =>
          w.request(
            { op: "programs", programs: wire, budgets: groups.map((b) => Math.max(0, b.left)), ...(timing ? { timing: true } : {}) },
            (msg) => {
              if (typeof msg.p === "number" && chunk[msg.p] && !got.has(msg.p)) {
                got.add(msg.p);
                this.deliver(chunk[msg.p], msg, deferred);
              }
              if (msg.fatal) throw new Error(`sandbox refused the request: ${msg.fatal}`);
              if (msg.done) {
                // The request's accounting goes to every caller whose programs were in it.
                for (const u of new Set(chunk.map((s) => s.opts.usage).filter((x) => !!x))) {
                  u!.cpu_s += Number(msg.usage?.cpu_s) || 0;
                  u!.user_s = (u!.user_s ?? 0) + (Number(msg.usage?.user_s) || 0);
                  u!.minflt = (u!.minflt ?? 0) + (Number(msg.usage?.minflt) || 0);
                  u!.max_rss_mb = Math.max(u!.max_rss_mb, Number(msg.usage?.max_rss_mb) || 0);
                  u!.children += Number(msg.usage?.children) || 0;
                  u!.stray += Number(msg.stray) || 0;
                }
              }
              return !!msg.done;
            },
            this.watchdogMs(limit),
          ),
        );
        chunk.forEach((s, k) => {
          if (!got.has(k)) this.crashAll(s, "no result from the sandbox");
        });
      } catch (e) {
        const left = chunk.filter((_, k) => !got.has(k));
        if (!(e instanceof WorkerDied)) {
          for (const s of left) s.settle(e as Error);
          continue;
        }
        const first = left[0];
        if (first) {
          first.attempts++;
          if (first.attempts >= 2) {
            this.crashAll(first, `sandbox worker died: ${e.message}`.slice(0, 300));
            left.shift();
          }
        }
        flow.unshift(...left);
        if (!this.flows.includes(flow)) this.flows.push(flow);
      } finally {
        for (const s of deferred) s.settle();
      }
    }
  }

  private crashAll(s: Spec, why: string): void {
    this.deliver(s, { r: s.inputs.map(() => ({ status: "crash", message: why, ms: 0 })), check: { status: "crash", message: why } });
  }

  async runScript(script: string, input: unknown, opts: { timeoutS: number; projectCode?: boolean }): Promise<ScriptResult> {
    const timeoutS = limitOf("runScript: timeoutS", opts.timeoutS);
    try {
      JSON.stringify(input); // a BigInt or a cycle: the caller's error, before any worker is involved
    } catch (e) {
      throw new ExecutorRequestError(`runScript: input cannot be sent as JSON (${(e as Error).message.split("\n")[0]})`);
    }
    let res: any;
    try {
      await this.pool.use((w) =>
        w.request(
          { op: "script", script, input, timeout: timeoutS, ...(opts.projectCode ? { project_code: true } : {}) },
          (msg) => {
            if (msg.done) res = msg;
            return !!msg.done;
          },
          this.watchdogMs(timeoutS),
        ),
      );
    } catch (e) {
      if (!(e instanceof WorkerDied)) throw e;
      return { status: "crash", message: e.message, ms: 0 };
    }
    const body = res?.script ?? {};
    const load = body.load ?? { status: "crash", message: res?.fatal ?? "no result" };
    const out: ScriptResult = { status: load.status === "syntax_error" ? "error" : load.status, ms: res?.ms ?? 0 };
    if (load.errorType) out.errorType = load.errorType;
    if (load.message) out.message = load.message;
    if (load.status === "ok") out.output = body.output;
    return out;
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}

