/**
 * The executor: the only way the pipeline runs model- or dataset-provided Python. A pool of sandboxed
 * fork servers (see sandbox.ts, server.py, pool.ts and docs/executor.md) behind the `Executor` contract
 * of types.ts, plus the `executor:` config block and the calibrated-timeout policy.
 */
import { availableParallelism } from "node:os";
import { z } from "zod";
import { UserError } from "../errors.ts";
import { Pool, Worker, WorkerDied } from "./pool.ts";
import { checkSandbox, serverCommand, type SandboxOptions } from "./sandbox.ts";
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
    /** Size of each worker's private /tmp (tmpfs), MiB. */
    tmpfs_mb: z.number().int().min(1).default(64),
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

/** The Executor implementation, with a few extras for tests and diagnostics. */
export interface SandboxExecutor extends Executor {
  readonly config: ExecutorConfig;
  /** Host pids of the workers' sandbox launchers (for leak checks). */
  workerPids(): number[];
}

const RESULT_CAP = 8 << 20;

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
    limits: { memory_mb: c.memory_mb, grace_s: c.grace_s, out_cap: RESULT_CAP, nofile: 64, fsize: 1 << 20 },
  };
  checkSandbox(opts);
  if (c.unsafe_no_sandbox) {
    process.stderr.write(
      "WARNING: executor.unsafe_no_sandbox is set: generated code runs WITHOUT bubblewrap or a uid drop; it can read your files, environment and network.\n",
    );
  }
  const argv = serverCommand(opts);
  const workers = Array.from({ length: c.workers }, () => new Worker(argv));
  try {
    await Promise.all(workers.map((w) => w.ready));
  } catch (e) {
    await Promise.all(workers.map((w) => w.close()));
    throw new UserError(`the code sandbox did not start: ${(e as Error).message.split("\n")[0]}`);
  }
  return new PoolExecutor(c, new Pool(workers));
}

function isCallArgs(x: unknown): x is CallArgs {
  return !!x && typeof x === "object" && Array.isArray((x as CallArgs).args);
}

class PoolExecutor implements SandboxExecutor {
  constructor(
    readonly config: ExecutorConfig,
    private readonly pool: Pool,
  ) {}

  workerPids(): number[] {
    return this.pool.workers.map((w) => w.pid);
  }

  private watchdogMs(limitS: number): number {
    return Math.ceil((limitS + this.config.grace_s) * 1000) + 5000;
  }

  async runCalls(req: RunCallsRequest): Promise<CallResult[]> {
    const n = req.inputs.length;
    const results: (CallResult | undefined)[] = new Array(n);
    const valid: number[] = [];
    req.inputs.forEach((a, i) => {
      if (isCallArgs(a)) valid.push(i);
      else results[i] = { status: "invalid_input", message: "arguments must be {args: [...], kwargs?: {...}}", ms: 0 };
    });
    if (!(req.timeoutS > 0)) throw new Error("runCalls: timeoutS must be > 0");
    const loadTimeoutS = req.loadTimeoutS ?? req.timeoutS;
    let pending = valid;
    let deaths = 0;
    while (pending.length) {
      const batch = pending;
      const got = new Set<number>();
      try {
        await this.pool.use((w) =>
          w.request(
            {
              op: "calls",
              program: req.program,
              entry: req.entryPoint,
              inputs: batch.map((i) => req.inputs[i]),
              timeout: req.timeoutS,
              load_timeout: loadTimeoutS,
            },
            (msg) => {
              if (typeof msg.i === "number" && msg.r) {
                const r = msg.r as CallResult;
                results[batch[msg.i]] = { ...r, ms: typeof r.ms === "number" ? r.ms : 0 };
                got.add(msg.i);
              }
              return !!msg.done;
            },
            this.watchdogMs(Math.max(req.timeoutS, loadTimeoutS)),
          ),
        );
        pending = [];
        for (let j = 0; j < batch.length; j++) {
          if (!got.has(j)) results[batch[j]] = { status: "crash", message: "no result from the sandbox", ms: 0 };
        }
      } catch (e) {
        if (!(e instanceof WorkerDied)) throw e;
        // The worker died (the program killed its parent, or the watchdog fired): the input in flight
        // crashed; the rest continue on the restarted worker. Death during load or twice in a row ends it.
        deaths++;
        let k = 0;
        while (k < batch.length && got.has(k)) k++;
        const crash: CallResult = { status: "crash", message: `sandbox worker died: ${e.message}`.slice(0, 300), ms: 0 };
        const rest = batch.slice(k);
        if (!e.loaded || deaths >= 2) {
          for (const i of rest) results[i] = crash;
          pending = [];
        } else {
          results[rest[0]] = crash;
          pending = rest.slice(1);
        }
      }
    }
    return results as CallResult[];
  }

  async runPrograms(jobs: ProgramJob[], opts: RunProgramsOptions = {}): Promise<ProgramResult[]> {
    // Interim path: one runCalls request per program (the pool spreads them over the workers).
    return Promise.all(
      jobs.map(async (job, j) => {
        const limits = Array.isArray(job.timeoutS) ? job.timeoutS : [job.timeoutS];
        const timeoutS = Math.max(...limits, 0.001);
        const req: RunCallsRequest =
          job.kind === "stdio"
            ? { program: stdioWrapper(job.program), entryPoint: STDIO_ENTRY, inputs: job.inputs.map((s) => ({ args: [s] })), timeoutS, loadTimeoutS: job.loadTimeoutS }
            : { program: job.program, entryPoint: job.entryPoint, inputs: job.inputs, timeoutS, loadTimeoutS: job.loadTimeoutS };
        const results = job.inputs.length ? await this.runCalls(req) : [];
        results.forEach((r, i) => opts.onResult?.(j, i, r));
        return { results };
      }),
    );
  }

  /** One-child request (check / script): the server's final line, or a crash when the worker died. */
  private async single(req: Record<string, unknown>, timeoutS: number): Promise<{ body: any; ms: number; crash?: string }> {
    let res: any;
    try {
      await this.pool.use((w) =>
        w.request(
          { ...req, timeout: timeoutS },
          (msg) => {
            if (msg.done) res = msg;
            return !!msg.done;
          },
          this.watchdogMs(timeoutS),
        ),
      );
    } catch (e) {
      if (!(e instanceof WorkerDied)) throw e;
      return { body: {}, ms: 0, crash: e.message };
    }
    return { body: res[req.op as string] ?? {}, ms: res.ms ?? 0 };
  }

  async checkProgram(program: string, opts: { timeoutS: number }): Promise<ProgramCheck> {
    const { body, ms, crash } = await this.single({ op: "check", program }, opts.timeoutS);
    const load = crash ? { status: "crash", message: crash } : (body.load ?? { status: "crash", message: "no result" });
    return {
      status: load.status,
      ...(load.errorType ? { errorType: load.errorType } : {}),
      ...(load.message ? { message: load.message } : {}),
      functions: body.ast?.functions ?? [],
      classes: body.ast?.classes ?? [],
      ms,
    };
  }

  async runScript(script: string, input: unknown, opts: { timeoutS: number; projectCode?: boolean }): Promise<ScriptResult> {
    const { body, ms, crash } = await this.single({ op: "script", script, input, ...(opts.projectCode ? { project_code: true } : {}) }, opts.timeoutS);
    const load = crash ? { status: "crash", message: crash } : (body.load ?? { status: "crash", message: "no result" });
    const out: ScriptResult = { status: load.status === "syntax_error" ? "error" : load.status, ms };
    if (load.errorType) out.errorType = load.errorType;
    if (load.message) out.message = load.message;
    if (load.status === "ok") out.output = body.output;
    return out;
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}

const STDIO_ENTRY = "__utgen_stdio__";
function stdioWrapper(src: string): string {
  return `import io as __io, sys as __sys
__SRC = ${JSON.stringify(src)}
def ${STDIO_ENTRY}(stdin):
    out = __io.TextIOWrapper(__io.BytesIO(), encoding="utf-8")
    old = __sys.stdin, __sys.stdout
    __sys.stdin = __io.TextIOWrapper(__io.BytesIO(stdin.encode("utf-8")), encoding="utf-8")
    __sys.stdout = out
    try:
        try:
            exec(compile(__SRC, "<program>", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
        except SystemExit as e:
            if e.code not in (None, 0):
                raise
    finally:
        __sys.stdin, __sys.stdout = old
    out.flush()
    return out.buffer.getvalue().decode("utf-8", "replace")
`;
}
