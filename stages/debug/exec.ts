/**
 * Sandbox work of UTDebug and best-of-N, all through `Executor.runPrograms`:
 *  - ProgramBatcher: the programs submitted in one turn of the event loop go out in ONE runPrograms call
 *    (problems run concurrently, so the EvalCodes of many problems meet in a batch); work nothing waits
 *    for (pass@1, diagnostics) goes in a background lane that keeps only a few programs in flight;
 *  - evalCode: Alg. 2's EvalCode — run a code on a generated suite and judge each result here, in Node
 *    (judgeCall, the reference's eval_exact_match with the problem's set mode); the program never holds the
 *    expected outputs;
 *  - GoldEvaluator: pass@1 — the code passes ALL private tests (mbpp_utdebug.py's "True Testing"), judged
 *    with gold-check's judgeGold; limits calibrated on canonical's time per test as gold-check does (or the
 *    reference's fixed limit); memoised per code, so an unchanged code is never run twice.
 */
import * as path from "node:path";
import {
  executorConfigSchema,
  judgeCall,
  type CallArgs,
  type CallResult,
  type Executor,
  type ExecutorConfig,
  type ProgramJob,
  type PyValue,
  type Verdict,
} from "../../pipeline/executor/index.ts";
import { hashValue, readJson, writeJson } from "../../pipeline/util.ts";
import { GOLD_CHECK_CALIBRATION, calibratedLimits, judgeGold, type GoldTests } from "../gold-check.ts";
import type { DebugProblem } from "./problems.ts";

export interface BatcherStats {
  /** runPrograms calls made. */
  requests: number;
  programs: number;
  calls: number;
  /** Urgent programs and the time from their submission to their results, summed (ms): what loops waited for. */
  urgentPrograms: number;
  urgentWaitMs: number;
}

interface Pending {
  job: ProgramJob;
  resolve: (r: CallResult[]) => void;
  reject: (e: unknown) => void;
}

/**
 * Coalesces programs into runPrograms calls, in two lanes:
 *  - `urgent` (what a debugging loop waits for: EvalCode, the heuristic's fuzzing and repair runs): every
 *    program submitted in one event-loop turn goes out in ONE runPrograms call;
 *  - `background` (what only annotates results: pass@1 on the private tests, canonical calibration, UT
 *    diagnostics): at most `backgroundSlots` programs in flight (one worker fewer than the executor has, so
 *    an urgent program finds a worker free instead of queueing behind long test suites; the stage widens it
 *    to every worker once no loop is left).
 * Each program's results are handed back as soon as its own last result streams in (runPrograms' onResult),
 * not when the whole call is over, so one slow program never holds up the others of its batch.
 */
export class ProgramBatcher {
  private urgent: Pending[] = [];
  private scheduled = false;
  private background: Pending[] = [];
  private backgroundInFlight = 0;
  readonly stats: BatcherStats = { requests: 0, programs: 0, calls: 0, urgentPrograms: 0, urgentWaitMs: 0 };
  /** The executor's workers (its config, else 2). */
  readonly workers: number;
  private backgroundSlots: number;

  /** Background programs in flight at most: default one worker fewer than the executor has (at least one). */
  constructor(
    readonly executor: Executor,
    opts: { backgroundSlots?: number } = {},
  ) {
    this.workers = Math.max(1, (executor as { config?: { workers?: number } }).config?.workers ?? 2);
    this.backgroundSlots = Math.max(1, opts.backgroundSlots ?? this.workers - 1);
  }

  /** Change the background lane's width (e.g. to every worker once no loop is waiting on urgent work). */
  setBackgroundSlots(n: number): void {
    this.backgroundSlots = Math.max(1, n);
    this.pump();
  }

  run(job: ProgramJob, lane: "urgent" | "background" = "urgent"): Promise<CallResult[]> {
    if (job.inputs.length === 0) return Promise.resolve([]);
    return new Promise((resolve, reject) => {
      if (lane === "background") {
        this.background.push({ job, resolve, reject });
        this.pump();
        return;
      }
      const t0 = performance.now();
      this.stats.urgentPrograms++;
      this.urgent.push({
        job,
        resolve: (r) => {
          this.stats.urgentWaitMs += performance.now() - t0;
          resolve(r);
        },
        reject,
      });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          const batch = this.urgent;
          this.urgent = [];
          this.send(batch);
        });
      }
    });
  }

  private pump(): void {
    const free = this.backgroundSlots - this.backgroundInFlight;
    if (free <= 0 || !this.background.length) return;
    const batch = this.background.splice(0, free);
    this.backgroundInFlight += batch.length;
    this.send(
      batch.map((b) => ({
        ...b,
        resolve: (r: CallResult[]) => {
          this.backgroundInFlight--;
          b.resolve(r);
          this.pump();
        },
        reject: (e: unknown) => {
          this.backgroundInFlight--;
          b.reject(e);
          this.pump();
        },
      })),
    );
  }

  private send(batch: Pending[]): void {
    if (!batch.length) return;
    this.stats.requests++;
    this.stats.programs += batch.length;
    this.stats.calls += batch.reduce((a, b) => a + b.job.inputs.length, 0);
    const got = batch.map((b) => ({ results: new Array<CallResult>(b.job.inputs.length), n: 0, settled: false }));
    const settle = (j: number, results: CallResult[]) => {
      if (got[j].settled) return;
      got[j].settled = true;
      batch[j].resolve(results);
    };
    this.executor
      .runPrograms(
        batch.map((b) => b.job),
        {
          onResult: (j, i, r) => {
            const g = got[j];
            if (!g || g.settled || g.results[i] !== undefined) return;
            g.results[i] = r;
            if (++g.n === g.results.length) settle(j, g.results);
          },
        },
      )
      .then(
        (res) => res.forEach((r, j) => settle(j, r.results)),
        (e) =>
          batch.forEach((b, j) => {
            if (got[j].settled) return;
            got[j].settled = true;
            b.reject(e);
          }),
      );
  }
}

/** A generated unit test as EvalCode needs it. */
export interface SuiteTest {
  args: CallArgs;
  output: PyValue;
}

export interface UtRun {
  results: CallResult[];
  verdicts: Verdict[];
  passed: number;
  /** passed / |suite| (0 for an empty suite). */
  rate: number;
}

/** EvalCode(code, U): every UT once, one program in the next batch; verdicts decided here. */
export async function evalCode(b: ProgramBatcher, p: DebugProblem, code: string, suite: SuiteTest[], timeoutS: number): Promise<UtRun> {
  if (!suite.length) return { results: [], verdicts: [], passed: 0, rate: 0 };
  const results = await b.run({ program: code, entryPoint: p.entryPoint, inputs: suite.map((u) => u.args), timeoutS, loadTimeoutS: timeoutS });
  const verdicts = results.map((r, i) => judgeCall(r, suite[i].output, { mode: "utgen", useSet: p.useSet }));
  const passed = verdicts.filter((v) => v === "pass").length;
  return { results, verdicts, passed, rate: passed / suite.length };
}

export interface GoldResult {
  /** All private tests pass (pass@1 of this code). */
  pass: boolean;
  passed: number;
  total: number;
  /** First failing test: its index and verdict (for the traces). */
  firstFail?: { index: number; verdict: Verdict };
}

export interface GoldEvaluatorOptions {
  limits: "calibrated" | "fixed";
  executor: Partial<ExecutorConfig>;
  /** Canonical timings are cached here (only fully passing canonical runs, as gold-check). */
  cacheDir?: string;
}

/** pass@1 of codes on a problem's private tests; one canonical run per problem (cached) calibrates the limits. */
export class GoldEvaluator {
  private readonly cfg: ExecutorConfig;
  private readonly limitMemo = new Map<string, Promise<{ limits: number[]; goldS?: number[] }>>();
  private readonly memo = new Map<string, Promise<GoldResult>>();
  /** Programs run for pass@1 (canonical runs included), for the stage's counters. */
  runs = 0;

  constructor(
    private readonly b: ProgramBatcher,
    private readonly opts: GoldEvaluatorOptions,
  ) {
    this.cfg = executorConfigSchema.parse({
      ...opts.executor,
      calibrate_factor: GOLD_CHECK_CALIBRATION.factor,
      calibrate_floor_s: GOLD_CHECK_CALIBRATION.floor_s,
    });
  }

  /** Per-test limits of the code under test, and canonical's time per test (seconds; none with fixed limits). */
  limits(p: DebugProblem, t: GoldTests): Promise<{ limits: number[]; goldS?: number[] }> {
    if (this.opts.limits === "fixed" || !this.cfg.calibrate) return Promise.resolve({ limits: t.inputs.map(() => this.cfg.buggy_timeout_s) });
    const key = hashValue({ v: 1, program: p.gold, entry: p.entryPoint, inputs: t.inputs, limit: 2 * this.cfg.buggy_timeout_s });
    let m = this.limitMemo.get(key);
    if (!m) {
      m = this.canonical(p, t, key).then((canon) => {
        const limits = calibratedLimits(canon, this.cfg);
        return { limits, goldS: canon.map((c, i) => (c.status === "ok" ? c.ms / 1000 : limits[i])) };
      });
      this.limitMemo.set(key, m);
    }
    return m;
  }

  private async canonical(p: DebugProblem, t: GoldTests, key: string): Promise<CallResult[]> {
    const file = this.opts.cacheDir ? path.join(this.opts.cacheDir, "utdebug-canonical", key.slice(0, 2), key + ".json") : undefined;
    if (file) {
      const hit = await readJson<{ status: CallResult["status"]; ms: number }[]>(file).catch(() => undefined);
      if (Array.isArray(hit) && hit.length === t.inputs.length && hit.every((r) => r?.status === "ok")) return hit.map((r) => ({ status: r.status, ms: r.ms }));
    }
    this.runs++;
    const res = await this.b.run({ program: p.gold, entryPoint: p.entryPoint, inputs: t.inputs, timeoutS: 2 * this.cfg.buggy_timeout_s, loadTimeoutS: 10 }, "background");
    const judged = res.map((r, i) => ({ status: judgeGold(r, t.results[i], t, "utgen") === "pass" ? r.status : ("error" as const), ms: r.ms }));
    if (file && judged.every((r) => r.status === "ok")) await writeJson(file, judged);
    return judged;
  }

  /** pass@1 of `code` (memoised by problem, tests and code text). */
  evaluate(p: DebugProblem, t: GoldTests, code: string): Promise<GoldResult> {
    const key = hashValue({ task: p.taskId, entry: p.entryPoint, inputs: hashValue(t.inputs), code });
    let m = this.memo.get(key);
    if (!m) {
      m = this.run(p, t, code);
      this.memo.set(key, m);
      m.catch(() => this.memo.delete(key));
    }
    return m;
  }

  private async run(p: DebugProblem, t: GoldTests, code: string): Promise<GoldResult> {
    const { limits, goldS } = await this.limits(p, t);
    // As gold-check: tests ordered by limit and cut so each program run holds ~0.5 s of canonical's time,
    // each run under its largest limit, so a code that hangs costs its calibrated limits, not the largest one.
    const chunks = goldS ? chunkBy(t.inputs.map((_, i) => i).sort((a, b) => limits[a] - limits[b] || a - b), (i) => goldS[i], 0.5) : [t.inputs.map((_, i) => i)];
    this.runs += chunks.length;
    const res: CallResult[] = new Array(t.inputs.length);
    await Promise.all(
      chunks.map(async (idx) => {
        const lim = Math.max(...idx.map((i) => limits[i]));
        const out = await this.b.run({ program: code, entryPoint: p.entryPoint, inputs: idx.map((i) => t.inputs[i]), timeoutS: lim, loadTimeoutS: this.cfg.buggy_timeout_s }, "background");
        idx.forEach((i, k) => (res[i] = out[k]));
      }),
    );
    let passed = 0;
    let firstFail: GoldResult["firstFail"];
    res.forEach((r, i) => {
      const v = judgeGold(r, t.results[i], t, "utgen");
      if (v === "pass") passed++;
      else if (!firstFail) firstFail = { index: i, verdict: v };
    });
    return { pass: passed === t.inputs.length, passed, total: t.inputs.length, ...(firstFail ? { firstFail } : {}) };
  }
}

/** Split indices into consecutive chunks whose cost stays under `budget` (at least one index each). */
function chunkBy(idx: number[], cost: (i: number) => number, budget: number): number[][] {
  const out: number[][] = [];
  let cur: number[] = [];
  let acc = 0;
  for (const i of idx) {
    if (cur.length && acc + cost(i) > budget) {
      out.push(cur);
      cur = [];
      acc = 0;
    }
    cur.push(i);
    acc += cost(i);
  }
  if (cur.length) out.push(cur);
  return out;
}

/** Gold's outputs on UT inputs (trace diagnostics only; the loop never sees them). */
export async function goldOutputs(b: ProgramBatcher, p: DebugProblem, inputs: CallArgs[], cfg: Partial<ExecutorConfig>): Promise<CallResult[]> {
  const c = executorConfigSchema.parse(cfg);
  return b.run({ program: p.gold, entryPoint: p.entryPoint, inputs, timeoutS: c.gold_timeout_s, loadTimeoutS: Math.max(c.gold_timeout_s, 5) }, "background");
}
