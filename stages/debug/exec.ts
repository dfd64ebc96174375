/**
 * Sandbox work of UTDebug and best-of-N, all through `Executor.runPrograms`:
 *  - ProgramBatcher: every program submitted in the same turn of the event loop goes out in ONE runPrograms
 *    call (problems run concurrently, so the EvalCodes and pass@1 runs of many problems meet in a batch);
 *  - evalCode: Alg. 2's EvalCode — run a code on a generated suite and judge each result here, in Node
 *    (judgeCall, the reference's eval_exact_match with the problem's set mode); the program never holds the
 *    expected outputs;
 *  - GoldEvaluator: pass@1 — the code passes ALL private tests (mbpp_utdebug.py's "True Testing"), judged
 *    with gold-check's judgeGold; limits calibrated on canonical's time per test as gold-check does (or the
 *    reference's fixed limit); memoised per code, so an unchanged code is never run twice.
 */
import * as path from "node:path";
import {
  buggyTimeoutFor,
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
}

/** Coalesces the programs submitted in one event-loop turn into one runPrograms call (several may be in flight). */
export class ProgramBatcher {
  private pending: { job: ProgramJob; resolve: (r: CallResult[]) => void; reject: (e: unknown) => void }[] = [];
  private scheduled = false;
  readonly stats: BatcherStats = { requests: 0, programs: 0, calls: 0 };

  constructor(readonly executor: Executor) {}

  run(job: ProgramJob): Promise<CallResult[]> {
    if (job.inputs.length === 0) return Promise.resolve([]);
    return new Promise((resolve, reject) => {
      this.pending.push({ job, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.pending;
    this.pending = [];
    if (!batch.length) return;
    this.stats.requests++;
    this.stats.programs += batch.length;
    this.stats.calls += batch.reduce((a, b) => a + b.job.inputs.length, 0);
    this.executor.runPrograms(batch.map((b) => b.job)).then(
      (res) => batch.forEach((b, i) => b.resolve(res[i].results)),
      (e) => batch.forEach((b) => b.reject(e)),
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
  private readonly limitMemo = new Map<string, Promise<number[]>>();
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

  /** Per-test limits of the code under test. */
  limits(p: DebugProblem, t: GoldTests): Promise<number[]> {
    const fixed = () => t.inputs.map(() => this.cfg.buggy_timeout_s);
    if (this.opts.limits === "fixed" || !this.cfg.calibrate) return Promise.resolve(fixed());
    const key = hashValue({ v: 1, program: p.gold, entry: p.entryPoint, inputs: t.inputs, limit: 2 * this.cfg.buggy_timeout_s });
    let m = this.limitMemo.get(key);
    if (!m) {
      m = this.canonical(p, t, key).then((canon) => calibratedLimits(canon, this.cfg));
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
    const res = await this.b.run({ program: p.gold, entryPoint: p.entryPoint, inputs: t.inputs, timeoutS: 2 * this.cfg.buggy_timeout_s, loadTimeoutS: 10 });
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
    const limits = await this.limits(p, t);
    this.runs++;
    const res = await this.b.run({ program: code, entryPoint: p.entryPoint, inputs: t.inputs, timeoutS: limits, loadTimeoutS: this.cfg.buggy_timeout_s });
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

/** Gold's outputs on UT inputs (trace diagnostics only; the loop never sees them). */
export async function goldOutputs(b: ProgramBatcher, p: DebugProblem, inputs: CallArgs[], cfg: Partial<ExecutorConfig>): Promise<CallResult[]> {
  const c = executorConfigSchema.parse(cfg);
  return b.run({ program: p.gold, entryPoint: p.entryPoint, inputs, timeoutS: c.gold_timeout_s, loadTimeoutS: Math.max(c.gold_timeout_s, 5) });
}

/** The calibrated limit for code under test given gold's time (re-exported for the heuristic generator). */
export { buggyTimeoutFor };
