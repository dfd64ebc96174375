/**
 * The reward engine: Pass(code, case) for whole batches of rollouts, and the rewards built on it.
 *
 * Pass(code, case) = 1 iff the program builds, runs the case without error within `rl.timeout_s`, and its
 * result matches the case's expected output (App. A.3). Every execution goes through the sandboxed
 * executor; the program's process receives only the case's *input* (stdin text, or call arguments) and
 * reports a raw result (its stdout, or the returned value); the verdict is decided here, in Node
 * (pipeline/executor/judge.ts), against an expected output the program never held. A program can only
 * choose what it prints or returns, which is no more than answering — exit codes, printed markers, writes
 * to other descriptors, objects whose `__eq__` always says yes, or files it reads earn nothing.
 *
 * One batch → one `Executor.runPrograms` call: every distinct program (ground truth and samples, across all
 * rows of the batch) is one job holding every distinct input it must run. Identical (program, input,
 * limits) pairs run once — within a batch, across concurrent batches (in flight), and across batches
 * through a content-keyed in-memory cache of raw results (`rl.cache_mb`). Cached results are raw, so the
 * verdict is always recomputed against each case's own expected output.
 */
import { judgeCall, judgeStdout, type Verdict } from "../../pipeline/executor/judge.ts";
import type { CallArgs, CallResult, Executor, ProgramJob, PyValue } from "../../pipeline/executor/types.ts";
import { sha256, stableStringify } from "../../pipeline/util.ts";
import { stdoutOptions, type RlConfig } from "./config.ts";
import { prepareRow, type Case, type PreparedRow, type RewardRow, type TaskKind } from "./cases.ts";
import { computeRewards, zeroRewards, type Rewards } from "./rewards.ts";

/** One execution: a program on one input. */
export interface ExecRequest {
  kind: TaskKind;
  program: string;
  /** Function tasks. */
  entryPoint?: string;
  /** stdio: stdin text; function: call arguments. */
  input: string | CallArgs;
}

export interface EngineStats {
  batches: number;
  /** Executions asked for (before de-duplication). */
  requested: number;
  /** Executions actually run in the sandbox. */
  executed: number;
  /** Answered from the cache of earlier batches. */
  cacheHits: number;
  /** Answered by an identical execution of this or a concurrent batch. */
  deduplicated: number;
  cacheEntries: number;
  cacheBytes: number;
}

/** Approximate memory of a cached result (its value text dominates). */
function sizeOf(r: CallResult): number {
  const v = r.value;
  return 200 + (typeof v === "string" ? 2 * v.length : v === undefined ? 0 : 2 * JSON.stringify(v).length) + (r.message?.length ?? 0);
}

export interface RowResult extends Rewards {
  id: string;
  /** "ok", or why the unit test is unusable (all rewards 0). */
  status: string;
  /** |U|: the cases counted (malformed ones included, up to rl.max_cases). */
  cases: number;
  /** Malformed cases by reason (they count in |U| and are never valid). */
  case_reasons: Record<string, number>;
  /** Cases beyond rl.max_cases (not run, not counted). */
  over_cap: number;
  /** Codes that could not be used (no code block …), by reason; they pass nothing. */
  code_reasons: Record<string, number>;
  /** The ground truth failed every well-formed case: usually a broken task rather than a bad unit test. */
  gt_failed_all: boolean;
  /** With `details`: one letter per case — p(ass) f(ail) e(rror) t(imeout) c(rash) x (malformed case / no code). */
  verdicts?: { gt: string; codes: string[] };
}

const LETTER: Record<Verdict, string> = { pass: "p", fail: "f", error: "e", timeout: "t", crash: "c", invalid_input: "e" };

export class RewardEngine {
  private cache = new Map<string, CallResult>();
  private bytes = 0;
  private inflight = new Map<string, Promise<CallResult>>();
  private s = { batches: 0, requested: 0, executed: 0, cacheHits: 0, deduplicated: 0 };
  private readonly maxBytes: number;

  constructor(
    private readonly executor: Executor,
    readonly cfg: RlConfig,
  ) {
    this.maxBytes = cfg.cache_mb * 1024 * 1024;
  }

  stats(): EngineStats {
    return { ...this.s, cacheEntries: this.cache.size, cacheBytes: this.bytes };
  }

  private remember(key: string, r: CallResult): void {
    const old = this.cache.get(key);
    if (old) {
      this.bytes -= sizeOf(old);
      this.cache.delete(key);
    }
    this.cache.set(key, r);
    this.bytes += sizeOf(r);
    while (this.bytes > this.maxBytes && this.cache.size) {
      const [k, v] = this.cache.entries().next().value as [string, CallResult];
      this.cache.delete(k);
      this.bytes -= sizeOf(v);
    }
  }

  private recall(key: string): CallResult | undefined {
    const r = this.cache.get(key);
    if (r) {
      // LRU: move to the end.
      this.cache.delete(key);
      this.cache.set(key, r);
    }
    return r;
  }

  /**
   * Raw results of many executions in one `runPrograms` call (results in request order). Identical
   * executions run once; cached and in-flight ones are not run again.
   */
  async execute(reqs: ExecRequest[]): Promise<CallResult[]> {
    this.s.batches++;
    this.s.requested += reqs.length;
    const limits = { t: this.cfg.timeout_s, l: this.cfg.load_timeout_s ?? this.cfg.timeout_s };
    const progKeys = new Map<string, string>();
    const out: (CallResult | Promise<CallResult>)[] = new Array(reqs.length);
    // Jobs of this batch: one per distinct program, with its distinct inputs.
    const jobs = new Map<string, { req: ExecRequest; inputs: (string | CallArgs)[]; keys: string[] }>();
    const mine = new Map<string, { resolve: (r: CallResult) => void; promise: Promise<CallResult> }>();
    reqs.forEach((r, i) => {
      const pid = `${r.kind}\u0000${r.entryPoint ?? ""}\u0000${r.program}`;
      let pk = progKeys.get(pid);
      if (!pk) {
        pk = sha256(`${pid}\u0000${limits.t}\u0000${limits.l}`);
        progKeys.set(pid, pk);
      }
      const key = pk + sha256(typeof r.input === "string" ? r.input : stableStringify(r.input));
      const hit = this.recall(key);
      if (hit) {
        this.s.cacheHits++;
        out[i] = hit;
        return;
      }
      const running = this.inflight.get(key);
      if (running) {
        this.s.deduplicated++;
        out[i] = running;
        return;
      }
      let d!: (r: CallResult) => void;
      const promise = new Promise<CallResult>((res) => (d = res));
      mine.set(key, { resolve: d, promise });
      this.inflight.set(key, promise);
      out[i] = promise;
      let job = jobs.get(pk);
      if (!job) jobs.set(pk, (job = { req: r, inputs: [], keys: [] }));
      job.inputs.push(r.input);
      job.keys.push(key);
    });
    const list = [...jobs.values()];
    try {
      if (list.length) {
        const programJobs: ProgramJob[] = list.map((j) =>
          j.req.kind === "stdio"
            ? { kind: "stdio", program: j.req.program, inputs: j.inputs as string[], timeoutS: limits.t, loadTimeoutS: limits.l }
            : { kind: "function", program: j.req.program, entryPoint: j.req.entryPoint ?? "", inputs: j.inputs as CallArgs[], timeoutS: limits.t, loadTimeoutS: limits.l },
        );
        const res = await this.executor.runPrograms(programJobs);
        list.forEach((j, n) =>
          j.keys.forEach((key, k) => {
            const r = res[n]?.results[k] ?? { status: "crash", message: "no result from the sandbox", ms: 0 };
            this.s.executed++;
            this.remember(key, r);
            mine.get(key)!.resolve(r);
          }),
        );
      }
    } catch (e) {
      const crash: CallResult = { status: "crash", message: `executor failed: ${(e as Error).message}`.slice(0, 300), ms: 0 };
      for (const m of mine.values()) m.resolve(crash);
      throw e;
    } finally {
      for (const key of mine.keys()) this.inflight.delete(key);
    }
    return Promise.all(out);
  }

  /** Verdict of a raw result against a case's expected output (decided here, never in the program's process). */
  judge(kind: TaskKind, r: CallResult, expected: string | PyValue): Verdict {
    return kind === "stdio" ? judgeStdout(r, expected as string, stdoutOptions(this.cfg)) : judgeCall(r, expected as PyValue, { mode: this.cfg.compare });
  }

  /** Rewards for a batch of rows (one runPrograms call for the whole batch). */
  async score(rows: RewardRow[], opts: { details?: boolean } = {}): Promise<RowResult[]> {
    const prepared = rows.map((r) => prepareRow(r, this.cfg));
    const reqs: ExecRequest[] = [];
    const plan = prepared.map((p) => planRow(p, reqs));
    const results = await this.execute(reqs);
    const judge = (kind: TaskKind, r: CallResult, e: string | PyValue) => this.judge(kind, r, e);
    return prepared.map((p, i) => finishRow(p, plan[i], results, !!opts.details, judge, this.cfg));
  }
}

/** Judge every planned execution of a row and compute its rewards. */
function finishRow(
  p: PreparedRow,
  plan: RowPlan,
  results: CallResult[],
  details: boolean,
  judge: (kind: TaskKind, r: CallResult, expected: string | PyValue) => Verdict,
  cfg: RlConfig,
): RowResult {
  const row = p.row;
  const caseReasons: Record<string, number> = {};
  for (const c of p.cases) if (c.status !== "ok") caseReasons[c.status] = (caseReasons[c.status] ?? 0) + 1;
  const codeReasons: Record<string, number> = {};
  for (const r of p.codeReasons) if (r) codeReasons[r] = (codeReasons[r] ?? 0) + 1;
  const base = { id: row.id, status: p.status, cases: p.cases.length, case_reasons: caseReasons, over_cap: p.overCap, code_reasons: codeReasons };
  if (p.status !== "ok") return { ...base, ...zeroRewards(p.codes.length), gt_failed_all: false };
  const verdictsOf = (slots: (number | undefined)[]): (Verdict | "x")[] =>
    p.cases.map((c, k) => (slots[k] === undefined ? "x" : judge(row.kind, results[slots[k]!], c.expected!)));
  const gtV = verdictsOf(plan.gt);
  const codeV = plan.codes.map((slots) => (slots ? verdictsOf(slots) : p.cases.map(() => "x" as const)));
  const gt = gtV.map((v) => v === "pass");
  const rewards = computeRewards(gt, codeV.map((vs) => vs.map((v) => v === "pass")), cfg, p.cases.length);
  const wellFormed = p.cases.filter((c) => c.status === "ok").length;
  const out: RowResult = { ...base, ...rewards, gt_failed_all: wellFormed > 0 && rewards.valid_cases === 0 };
  if (details) {
    const letters = (vs: (Verdict | "x")[]) => vs.map((v) => (v === "x" ? "x" : LETTER[v])).join("");
    out.verdicts = { gt: letters(gtV), codes: codeV.map(letters) };
  }
  return out;
}

/** Indices into the batch's request list, per case: the ground truth's and each code's (undefined: not run). */
interface RowPlan {
  gt: (number | undefined)[];
  codes: ((number | undefined)[] | undefined)[];
}

function planRow(p: PreparedRow, reqs: ExecRequest[]): RowPlan {
  const row = p.row;
  const slotsFor = (program: string): (number | undefined)[] =>
    p.cases.map((c: Case) => {
      if (c.status !== "ok") return undefined;
      reqs.push({ kind: row.kind, program, entryPoint: row.entry_point, input: c.input! });
      return reqs.length - 1;
    });
  if (p.status !== "ok") return { gt: [], codes: [] };
  return { gt: slotsFor(row.gt_code), codes: p.codes.map((c) => (c === undefined ? undefined : slotsFor(c))) };
}

/**
 * The same rewards without the engine's batching, de-duplication or cache: one `runPrograms` request per
 * program per row (the straightforward way; the bench's baseline and the tests' reference).
 */
export async function scoreDirect(executor: Executor, cfg: RlConfig, rows: RewardRow[]): Promise<RowResult[]> {
  const out: RowResult[] = [];
  for (const row of rows) {
    const p = prepareRow(row, cfg);
    const engine = new RewardEngine(executor, cfg);
    const programs = [row.gt_code, ...p.codes.filter((c): c is string => c !== undefined)];
    const perProgram = await Promise.all(
      programs.map(async (program) => {
        const reqs: ExecRequest[] = p.status === "ok" ? p.cases.filter((c) => c.status === "ok").map((c) => ({ kind: row.kind, program, entryPoint: row.entry_point, input: c.input! })) : [];
        if (!reqs.length) return [];
        const job: ProgramJob =
          row.kind === "stdio"
            ? { kind: "stdio", program, inputs: reqs.map((r) => r.input as string), timeoutS: cfg.timeout_s, loadTimeoutS: cfg.load_timeout_s ?? cfg.timeout_s }
            : { kind: "function", program, entryPoint: row.entry_point ?? "", inputs: reqs.map((r) => r.input as CallArgs), timeoutS: cfg.timeout_s, loadTimeoutS: cfg.load_timeout_s ?? cfg.timeout_s };
        return (await executor.runPrograms([job]))[0].results;
      }),
    );
    // Re-use the engine's judging and reward code on these results.
    const okIdx = p.cases.map((c, k) => (c.status === "ok" ? k : -1)).filter((k) => k >= 0);
    const flat: CallResult[] = [];
    const plan: RowPlan = { gt: [], codes: [] };
    const slots = (res: CallResult[]) => {
      const s: (number | undefined)[] = p.cases.map(() => undefined);
      okIdx.forEach((k, j) => {
        flat.push(res[j]);
        s[k] = flat.length - 1;
      });
      return s;
    };
    if (p.status === "ok") {
      plan.gt = slots(perProgram[0]);
      let q = 1;
      plan.codes = p.codes.map((c) => (c === undefined ? undefined : slots(perProgram[q++])));
    }
    out.push(finishRow(p, plan, flat, true, (kind, r, e) => engine.judge(kind, r, e), cfg));
  }
  return out;
}
