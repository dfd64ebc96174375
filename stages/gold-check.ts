/**
 * `gold-check`: debug a benchmark in the MBPP+Fix format (`task_id`, `test`, `canonical_solution`, `code`).
 * Each problem's gold tests are the `inputs` and `results` its `test` text defines before its final loop;
 * they are extracted once in a sandbox run of that text alone (as the reference's `extract_test` does, but
 * never in a host process) and come back as typed values. `canonical_solution` and then `code` are called
 * on the inputs through the sandboxed executor — the program's process never holds `results` — and each
 * returned value is judged here, in Node, against its result: by default with the reference's
 * `eval_exact_match` (compare.ts `utgen` mode, use_set when the test text contains " set(", as
 * mbpp_utdebug.py scores pass@1), or with the test text's own `assertion(out, exp, atol)` semantics
 * (`gold-check.compare: assertion`). The code's per-test limit is calibrated on canonical's run time
 * (executor.calibrate*, see docs/executor.md). Prints problems, mean tests per problem, canonical and code
 * pass rates (means over problems) and per-problem rates; with --json the last stdout line is the summary.
 */
import * as path from "node:path";
import { z } from "zod";
import { UserError } from "../pipeline/errors.ts";
import type { CommandContext, CommandStage } from "../pipeline/stage.ts";
import { exists, hashValue, readJson, readJsonl, writeJson } from "../pipeline/util.ts";
import {
  buggyTimeoutFor,
  executorConfigSchema,
  judgeCall,
  outputsMatch,
  type CallArgs,
  type CallResult,
  type Executor,
  type ExecutorConfig,
  type PyValue,
  type Verdict,
  parseLiteral,
} from "../pipeline/executor/index.ts";
import { runReferenceHarness, type ReferenceTask } from "../pipeline/executor/reference.ts";

/**
 * gold-check's own calibration preset: tighter than the executor's default (4×, 0.2 s), which attack and
 * validate use, because here the verdict change is measured against the fixed-limit reference (docs/executor.md).
 */
export const GOLD_CHECK_CALIBRATION = { factor: 2, floor_s: 0.1 };

export const goldCheckConfigSchema = z
  .object({
    /** Module-level limit (program + the test's data literals), seconds. */
    load_timeout_s: z.number().positive().default(10),
    /** Per-test limit for the canonical solution (default: 2 × executor.buggy_timeout_s, so load does not fail gold). */
    canonical_timeout_s: z.number().positive().optional(),
    /** Reuse canonical verdicts and timings from the cache folder (keyed by solution, test text and limit). */
    cache: z.boolean().default(true),
    /** Calibration of the code's per-test limits for this command (executor.calibrate_* are for attack/validate). */
    calibrate_factor: z.number().positive().default(GOLD_CHECK_CALIBRATION.factor),
    calibrate_floor_s: z.number().positive().default(GOLD_CHECK_CALIBRATION.floor_s),
    /**
     * How a returned value is judged against the test's result: `utgen` — the reference's eval_exact_match
     * (atol 0 → 1e-6 for float results, use_set when the test text has " set(", its quirks included);
     * `assertion` — the test text's own `assertion(out, exp, atol)` (EvalPlus: the loop's atol, no set mode);
     * `strict` — compare.ts strict mode (types kept apart, NaN equal to NaN).
     */
    compare: z.enum(["utgen", "assertion", "strict"]).default("utgen"),
  })
  .strict();
export type GoldCheckConfig = z.infer<typeof goldCheckConfigSchema>;

export const problemSchema = z.looseObject({
  task_id: z.union([z.string(), z.number()]),
  test: z.string().min(1),
  canonical_solution: z.string(),
  code: z.string(),
  entry_point: z.string().optional(),
});
export type GoldProblem = z.infer<typeof problemSchema>;

export interface ProblemReport {
  task_id: string | number;
  tests: number;
  canonical_pass_rate: number;
  code_pass_rate: number;
  /** Largest per-test limit used for `code` (calibrated per test on the canonical run). */
  code_limit_s: number;
  code_timeouts: number;
  /** Seconds from the start of the run until this problem's last result (a progress measure). */
  wall_s: number;
  /** Set when the code (or canonical) could not be loaded at module level. */
  load_error?: string;
  /** With `details`: one character per test of `code`: p(ass), f(ail), t(imeout). */
  code_verdicts?: string;
  /** Seconds of call time this problem cost: canonical (0 when cached), code's finished calls, code's timeouts. */
  work_s: WorkSeconds;
}

/** Where the call time went (sums of per-call times, seconds; the sandbox's own cost is not included). */
export interface WorkSeconds {
  canonical: number;
  code: number;
  timeouts: number;
}

export interface GoldCheckSummary {
  problems: number;
  mean_tests: number;
  canonical_pass_rate: number;
  code_pass_rate: number;
  calls: number;
  timeouts: number;
  wall_s: number;
  /** Call time summed over problems; divided by the workers it is a floor under `wall_s` (see bench/gold-check.ts). */
  work_s: WorkSeconds;
  workers: number;
  per_problem: ProblemReport[];
}

/** The problem's test text split into the part that defines data/assertion and its final loop's call. */
export interface SplitTest {
  header: string;
  fn: string;
  atol: string;
}

const LOOP = /\nfor i, \(inp, exp\) in enumerate\(zip\(inputs, results\)\):\s*\n[ \t]+assertion\(([A-Za-z_][A-Za-z_0-9]*)\(\*inp\), exp, ([^\n]+)\)\s*$/;

export function splitTest(test: string, taskId: string | number): SplitTest {
  const m = LOOP.exec(test);
  if (!m) {
    throw new UserError(
      `problem ${taskId}: its test text does not end with the MBPP+ loop "for i, (inp, exp) in enumerate(zip(inputs, results)): assertion(fn(*inp), exp, atol)": not an MBPP+Fix row`,
    );
  }
  return { header: test.slice(0, m.index), fn: m[1], atol: m[2].trim() };
}

/** A problem's gold tests as typed values: call arguments and the expected results, never sent to a program. */
export interface GoldTests {
  inputs: CallArgs[];
  results: PyValue[];
  /** The reference's set mode: the test text contains " set(". */
  useSet: boolean;
  /** The loop's atol (for `compare: assertion`). */
  atol: number;
}

/** How gold-check judges a value: see goldCheckConfigSchema.compare. */
export type GoldCompare = "utgen" | "assertion" | "strict";

/** Verdict of one call against a gold result under a gold-check comparison. */
export function judgeGold(r: CallResult, expected: PyValue, t: Pick<GoldTests, "useSet" | "atol">, compare: GoldCompare = "utgen"): Verdict {
  if (compare === "utgen") return judgeCall(r, expected, { mode: "utgen", useSet: t.useSet });
  if (compare === "strict") return judgeCall(r, expected, { mode: "strict", useSet: t.useSet });
  if (r.status !== "ok") return r.status;
  // The MBPP+ test text's assertion: eval_exact_match with the loop's atol and neither the str "error" quirk
  // nor set mode (two strings: `out != exp` then `assert out == exp`, or np.allclose on strings, which raises).
  const out = r.value as PyValue;
  if (typeof out === "string" && typeof expected === "string") return out === expected ? "pass" : "fail";
  return outputsMatch(out, expected, { mode: "utgen", atol: t.atol, useSet: false }) ? "pass" : "fail";
}

/**
 * Run a problem's test text (up to its final loop) alone in the sandbox and bring back its `inputs` and
 * `results` as typed values — the reference's `extract_test`, without a host `exec`. Cached by the text.
 */
export async function extractGoldTests(ex: Executor, p: GoldProblem, opts: { timeoutS?: number; cacheDir?: string } = {}): Promise<GoldTests> {
  const t = splitTest(p.test, p.task_id);
  const atolLit = parseLiteral(t.atol);
  const atol = atolLit.ok && typeof atolLit.value === "number" ? atolLit.value : atolLit.ok && atolLit.value && typeof atolLit.value === "object" && "$float" in atolLit.value ? Number(atolLit.value.$float) : 0;
  const useSet = p.test.includes(" set(");
  const key = hashValue({ v: 1, header: t.header });
  const file = opts.cacheDir ? path.join(opts.cacheDir, "gold-tests", key.slice(0, 2), key + ".json") : undefined;
  if (file) {
    const hit = await readJson<{ inputs: CallArgs[]; results: PyValue[] }>(file).catch(() => undefined);
    if (hit && Array.isArray(hit.inputs) && Array.isArray(hit.results)) return { ...hit, useSet, atol };
  }
  const res = await ex.runScript(`${t.header}\n${EXTRACT_TAIL}`, null, { timeoutS: opts.timeoutS ?? 10 });
  const out = res.output as { inputs?: PyValue[]; results?: PyValue[]; error?: string } | undefined;
  if (res.status !== "ok" || !out || out.error || !Array.isArray(out.inputs) || !Array.isArray(out.results)) {
    const why = out?.error ?? `${res.errorType ?? res.status}: ${res.message ?? ""}`;
    throw new UserError(`problem ${p.task_id}: its test text does not define usable inputs/results (${why.slice(0, 200)})`);
  }
  const inputs: CallArgs[] = out.inputs.map((inp) => ({ args: argList(inp) }));
  const n = Math.min(inputs.length, out.results.length);
  const gold = { inputs: inputs.slice(0, n), results: out.results.slice(0, n) };
  if (file) await writeJson(file, gold);
  return { ...gold, useSet, atol };
}

/** `fn(*inp)`: the positional arguments of one gold input (a list or tuple of them; anything else is one). */
function argList(inp: PyValue): PyValue[] {
  if (Array.isArray(inp)) return inp;
  if (inp && typeof inp === "object" && "$tuple" in inp) return inp.$tuple;
  return [inp];
}

/** Appended to the test text's data part: hand back inputs and results in the executor's typed encoding. */
const EXTRACT_TAIL = `
try:
    OUTPUT = {"inputs": [encode_value(x) for x in inputs], "results": [encode_value(x) for x in results]}
except NameError as e:
    OUTPUT = {"error": "NameError: " + str(e)}
`;

export interface GoldCheckOptions {
  /**
   * Executor settings for the limits (defaults: the executor's own config when it exposes one, with
   * calibrate_factor / calibrate_floor_s from GOLD_CHECK_CALIBRATION unless given here).
   */
  config?: Partial<ExecutorConfig>;
  loadTimeoutS?: number;
  canonicalTimeoutS?: number;
  /** Folder for cached canonical runs and extracted gold tests (none: always run canonical). */
  cacheDir?: string;
  /** How values are judged (default `utgen`, the reference's eval_exact_match). */
  compare?: GoldCompare;
  /** Add per-test verdicts (`code_verdicts`) to each problem's report. */
  details?: boolean;
  onProblem?: (r: ProblemReport, done: number, total: number) => void;
}

/** Per-test limits for the code under test: calibrated on canonical's time for that test. */
export function calibratedLimits(gold: CallResult[], cfg: ExecutorConfig): number[] {
  return gold.map((g) => (g.status === "ok" ? buggyTimeoutFor(g.ms, cfg) : cfg.buggy_timeout_s));
}

interface Ctx {
  details: boolean;
  cfg: ExecutorConfig;
  loadTimeoutS: number;
  canonicalTimeoutS: number;
  cacheDir?: string;
  compare: GoldCompare;
  /** Start of the run (performance.now()). */
  t0: number;
}

/** Run the given test indices of one program as one batch; judged results land in `into`. */
async function runBatch(ex: Executor, program: string, w: Work, idx: number[], limitS: number, c: Ctx, into: Judged[]): Promise<void> {
  const res = await ex.runCalls({ program, entryPoint: w.t.fn, inputs: idx.map((i) => w.gold.inputs[i]), timeoutS: limitS, loadTimeoutS: c.loadTimeoutS });
  idx.forEach((i, j) => (into[i] = { ...res[j], verdict: judgeGold(res[j], w.gold.results[i], w.gold, c.compare) }));
}

/** Split indices into consecutive chunks whose estimated cost stays under `budget` (at least one each). */
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

/** A call's raw result and its verdict (decided here, never by the program). */
type Judged = CallResult & { verdict: Verdict };

interface Work {
  p: GoldProblem;
  t: SplitTest;
  gold: GoldTests;
  n: number;
  canon: Judged[];
  /** Whether `canon` came from the cache (no call time spent on it in this run). */
  cached: boolean;
  code: Judged[];
  limits: number[];
}

/** Canonical run of one problem, from the cache when an identical one fully passed before. */
async function canonicalRun(ex: Executor, w: Work, c: Ctx): Promise<void> {
  const key = hashValue({ v: 2, program: w.p.canonical_solution, test: w.p.test, n: w.n, limit: c.canonicalTimeoutS, load: c.loadTimeoutS, compare: c.compare });
  const file = c.cacheDir ? path.join(c.cacheDir, "gold-check", key.slice(0, 2), key + ".json") : undefined;
  if (file) {
    const hit = await readJson<Judged[]>(file).catch(() => undefined);
    if (Array.isArray(hit) && hit.length === w.n && hit.every((r) => r?.verdict === "pass")) {
      w.canon = hit;
      w.cached = true;
      return;
    }
  }
  // One batch: every canonical run is scheduled before any code batch (see `schedule`), so a slow gold
  // solution runs beside the others instead of at the tail of the run.
  const idx = Array.from({ length: w.n }, (_, i) => i);
  await runBatch(ex, w.p.canonical_solution, w, idx, c.canonicalTimeoutS, c, w.canon);
  // Only fully passing canonical runs are cached: a failure is worth re-checking next time.
  if (file && w.canon.every((r) => r.verdict === "pass")) await writeJson(file, w.canon.map((r) => ({ status: r.status, verdict: r.verdict, ms: r.ms })));
}

/**
 * Code batches of one problem: tests ordered by their limit and cut so each batch holds ~0.5 s of gold's
 * time; a batch runs under the largest limit of its tests (fast problems: one batch at the floor).
 */
function codeJobs(w: Work, c: Ctx): { est: number; run: (ex: Executor) => Promise<void> }[] {
  const goldS = (i: number) => (w.canon[i].status === "ok" ? w.canon[i].ms / 1000 : w.limits[i]);
  const idx = Array.from({ length: w.n }, (_, i) => i).sort((a, b) => w.limits[a] - w.limits[b] || a - b);
  return chunkBy(idx, goldS, 0.5).map((ch) => {
    const lim = Math.max(...ch.map((i) => w.limits[i]));
    ch.forEach((i) => (w.limits[i] = lim));
    return { est: ch.reduce((a, i) => a + goldS(i), 0), run: (ex: Executor) => runBatch(ex, w.p.code, w, ch, lim, c, w.code) };
  });
}

/** Call time of results, seconds; a module-level failure, which every input reports, counts once. */
function sec(rs: (CallResult | undefined)[]): number {
  let calls = 0;
  let load = 0;
  for (const r of rs) {
    if (r?.status !== "ok" && r?.message?.startsWith("module level")) load = Math.max(load, r.ms ?? 0);
    else calls += r?.ms ?? 0;
  }
  return (calls + load) / 1000;
}

function report(w: Work, c: Ctx): ProblemReport {
  const n = w.n;
  const pass = (rs: Judged[]) => (n ? rs.filter((r) => r.verdict === "pass").length / n : 0);
  const loadErr = [...w.code, ...w.canon].find((r) => r.status !== "ok" && r.message?.startsWith("module level"));
  const rep: ProblemReport = {
    task_id: w.p.task_id,
    tests: n,
    canonical_pass_rate: pass(w.canon),
    code_pass_rate: pass(w.code),
    code_limit_s: Math.max(0, ...w.limits),
    code_timeouts: w.code.filter((r) => r.status === "timeout").length,
    wall_s: (performance.now() - c.t0) / 1000,
    work_s: {
      canonical: w.cached ? 0 : sec(w.canon),
      code: sec(w.code.filter((r) => r.status !== "timeout")),
      timeouts: sec(w.code.filter((r) => r.status === "timeout")),
    },
  };
  if (loadErr) rep.load_error = `${loadErr.errorType ?? loadErr.status}: ${loadErr.message}`.slice(0, 200);
  if (c.details) rep.code_verdicts = w.code.map((r) => (r.verdict === "pass" ? "p" : r.status === "timeout" ? "t" : "f")).join("");
  return rep;
}

export interface Job {
  est: number;
  run: () => Promise<void>;
}

/**
 * Run `first` (each returns the jobs it unlocks) and then the unlocked jobs on `width` runners, one job per
 * runner at a time: every `first` task is started before any unlocked job, and unlocked jobs run longest
 * estimate first (LPT), so the runners stay busy to the end and the last jobs are short. The first error
 * stops every runner (no job starts after it) and is what `schedule` rejects with.
 */
export async function schedule(width: number, first: (() => Promise<Job[]>)[]): Promise<void> {
  const ready: Job[] = [];
  let next = 0;
  let running = 0;
  let failed = false;
  let wake: (() => void)[] = [];
  const notify = () => {
    const ws = wake;
    wake = [];
    ws.forEach((f) => f());
  };
  const loop = async (): Promise<void> => {
    for (;;) {
      if (failed) return;
      if (next < first.length) {
        const task = first[next++];
        running++;
        try {
          ready.push(...(await task()));
          ready.sort((a, b) => b.est - a.est);
        } finally {
          running--;
          notify();
        }
      } else if (ready.length) {
        await ready.shift()!.run();
      } else if (running > 0) {
        await new Promise<void>((res) => wake.push(res));
      } else return;
    }
  };
  const runner = async (): Promise<void> => {
    try {
      await loop();
    } catch (e) {
      failed = true;
      notify();
      throw e;
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, width) }, runner));
}

/**
 * Run the gold tests of every problem on canonical and code; the JSON summary of `--json`.
 * Every canonical run goes first (one batch per problem), then the code batches it unlocks, longest
 * expected first, so the pool stays busy until the end instead of waiting on one slow problem.
 */
export async function goldCheck(ex: Executor, problems: GoldProblem[], opts: GoldCheckOptions = {}): Promise<GoldCheckSummary> {
  const t0 = performance.now();
  const base = (ex as { config?: ExecutorConfig }).config ?? {};
  const cfg = executorConfigSchema.parse({
    ...base,
    calibrate_factor: GOLD_CHECK_CALIBRATION.factor,
    calibrate_floor_s: GOLD_CHECK_CALIBRATION.floor_s,
    ...opts.config,
  });
  const split = problems.map((p) => splitTest(p.test, p.task_id)); // fail fast on a malformed row
  const c: Ctx = {
    details: !!opts.details,
    cfg,
    loadTimeoutS: opts.loadTimeoutS ?? 10,
    canonicalTimeoutS: opts.canonicalTimeoutS ?? 2 * cfg.buggy_timeout_s,
    cacheDir: opts.cacheDir,
    compare: opts.compare ?? "utgen",
    t0,
  };
  // Each problem extracts its tests (a sandbox run of its test text, cached) inside its own scheduled task,
  // so the workers start on the first problem at once instead of waiting for every problem's extraction.
  const work: Work[] = [];
  let done = 0;
  await schedule(
    cfg.workers,
    problems.map((p, k) => async () => {
      const gold = await extractGoldTests(ex, p, { timeoutS: c.loadTimeoutS, cacheDir: c.cacheDir });
      const n = gold.inputs.length;
      const w: Work = { p, t: split[k], gold, n, canon: new Array(n), cached: false, code: new Array(n), limits: [] };
      work[k] = w;
      await canonicalRun(ex, w, c);
      w.limits = calibratedLimits(w.canon, cfg);
      const js = codeJobs(w, c);
      let left = js.length;
      if (!left) opts.onProblem?.(report(w, c), ++done, problems.length);
      return js.map((j) => ({
        est: j.est,
        run: async () => {
          await j.run(ex);
          if (--left === 0) opts.onProblem?.(report(w, c), ++done, problems.length);
        },
      }));
    }),
  );
  const reports = work.map((w) => report(w, c));
  const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
  return {
    problems: problems.length,
    mean_tests: mean(reports.map((r) => r.tests)),
    canonical_pass_rate: mean(reports.map((r) => r.canonical_pass_rate)),
    code_pass_rate: mean(reports.map((r) => r.code_pass_rate)),
    calls: reports.reduce((a, r) => a + 2 * r.tests, 0),
    timeouts: reports.reduce((a, r) => a + r.code_timeouts, 0),
    wall_s: (performance.now() - t0) / 1000,
    work_s: {
      canonical: reports.reduce((a, r) => a + r.work_s.canonical, 0),
      code: reports.reduce((a, r) => a + r.work_s.code, 0),
      timeouts: reports.reduce((a, r) => a + r.work_s.timeouts, 0),
    },
    workers: cfg.workers,
    per_problem: reports,
  };
}

/**
 * The same rates from the straightforward fixed-limit multiprocessing harness (reference_harness.py,
 * sandboxed): program + test text exec'd together, each test under a fixed alarm (default 2 s).
 */
export async function referenceGoldCheck(
  problems: GoldProblem[],
  opts: {
    timeoutS?: number;
    /** Module-level limit (default: the per-test limit, as the UTGen reference's unsafe_execute). */
    loadTimeoutS?: number;
    canonicalTimeoutS?: number;
    /** false: run only `code` (canonical rates then read as NaN). */
    includeCanonical?: boolean;
    processes?: number;
    config?: Partial<ExecutorConfig>;
  } = {},
): Promise<{ canonical_pass_rate: number; code_pass_rate: number; wall_s: number; per_problem: { task_id: string | number; tests: number; canonical_pass_rate: number; code_pass_rate: number; code_verdicts: string }[] }> {
  const t0 = performance.now();
  const tasks: ReferenceTask[] = [];
  for (const p of problems) {
    const t = splitTest(p.test, p.task_id);
    for (const which of opts.includeCanonical === false ? (["code"] as const) : (["canonical_solution", "code"] as const)) {
      const timeout = which === "canonical_solution" ? opts.canonicalTimeoutS : undefined;
      tasks.push({ key: `${p.task_id}\u0000${which}`, program: p[which], header: t.header, fn: t.fn, atol: t.atol, timeout });
    }
  }
  const res = await runReferenceHarness(tasks, opts);
  const rate = (r: { tests: number; passed: number } | undefined) => (!r ? NaN : r.tests ? r.passed / r.tests : 0);
  const per = problems.map((p) => {
    const c = res[`${p.task_id}\u0000canonical_solution`];
    const b = res[`${p.task_id}\u0000code`];
    return { task_id: p.task_id, tests: b.tests, canonical_pass_rate: rate(c), code_pass_rate: rate(b), code_verdicts: b.verdicts };
  });
  const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
  return {
    canonical_pass_rate: mean(per.map((r) => r.canonical_pass_rate)),
    code_pass_rate: mean(per.map((r) => r.code_pass_rate)),
    wall_s: (performance.now() - t0) / 1000,
    per_problem: per,
  };
}

/** Read and validate an MBPP+Fix JSONL file (one-line errors name the file, line and field). */
export async function loadGoldProblems(file: string): Promise<GoldProblem[]> {
  if (!(await exists(file))) throw new UserError(`--dataset ${file}: file not found (expected an MBPP+Fix .jsonl)`);
  const out: GoldProblem[] = [];
  let line = 0;
  try {
    for await (const row of readJsonl(file)) {
      line++;
      const r = problemSchema.safeParse(row);
      if (!r.success) {
        const i = r.error.issues[0];
        throw new UserError(
          `${file}: row ${line}: field '${i.path.join(".")}' ${i.message.toLowerCase()} (MBPP+Fix rows need task_id, test, canonical_solution, code)`,
        );
      }
      out.push(r.data);
    }
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`${file}: ${(e as Error).message.split("\n")[0]}`);
  }
  if (!out.length) throw new UserError(`${file}: no problems in the file`);
  return out;
}

const pct = (x: number) => `${(100 * x).toFixed(2)}%`;

export const goldCheckStage: CommandStage<GoldCheckConfig> = {
  kind: "command",
  name: "gold-check",
  description: "run a debugging benchmark's gold tests (MBPP+Fix format) on canonical and buggy code",
  configSchema: goldCheckConfigSchema,
  flags: {
    dataset: { type: "string", help: "gold-check: MBPP+Fix-format .jsonl to check" },
    json: { type: "boolean", help: "gold-check: print the summary as one JSON object (last stdout line)" },
  },
  async run(ctx: CommandContext<GoldCheckConfig>): Promise<number> {
    const file = ctx.flags.dataset;
    if (typeof file !== "string" || !file) {
      throw new UserError("gold-check needs --dataset <file.jsonl> (a benchmark in the MBPP+Fix format)");
    }
    const problems = await loadGoldProblems(path.resolve(file));
    const cfg = goldCheckConfigSchema.parse(ctx.config ?? {});
    const ex = await ctx.getExecutor();
    const json = ctx.flags.json === true;
    const summary = await goldCheck(ex, problems, {
      config: { ...ctx.root?.executor, calibrate_factor: cfg.calibrate_factor, calibrate_floor_s: cfg.calibrate_floor_s },
      loadTimeoutS: cfg.load_timeout_s,
      canonicalTimeoutS: cfg.canonical_timeout_s,
      compare: cfg.compare,
      cacheDir: cfg.cache ? ctx.cacheDir : undefined,
      onProblem: json ? undefined : (r, done, total) => {
        if (done % 10 === 0 || done === total) ctx.log.info(`gold-check: ${done}/${total} problems`);
      },
    });
    if (json) {
      ctx.stdout(JSON.stringify(summary));
      return 0;
    }
    ctx.stdout(`gold-check ${file}: ${summary.problems} problems, ${summary.mean_tests.toFixed(2)} tests per problem`);
    ctx.stdout("");
    ctx.stdout("| task_id | tests | canonical | code | code limit (s) | timeouts |");
    ctx.stdout("|---|---:|---:|---:|---:|---:|");
    for (const r of summary.per_problem) {
      ctx.stdout(
        `| ${r.task_id} | ${r.tests} | ${pct(r.canonical_pass_rate)} | ${pct(r.code_pass_rate)} | ${r.code_limit_s.toFixed(2)} | ${r.code_timeouts}${r.load_error ? " (load: " + r.load_error.slice(0, 60) + ")" : ""} |`,
      );
    }
    ctx.stdout("");
    ctx.stdout(`canonical pass rate: ${pct(summary.canonical_pass_rate)}`);
    ctx.stdout(`code pass rate:      ${pct(summary.code_pass_rate)} (mean over problems)`);
    ctx.stdout(`calls: ${summary.calls}, code timeouts: ${summary.timeouts}, wall: ${summary.wall_s.toFixed(1)} s`);
    const ws = summary.work_s;
    ctx.stdout(
      `call time: canonical ${ws.canonical.toFixed(1)} s${ws.canonical === 0 ? " (cached)" : ""}, code ${ws.code.toFixed(1)} s, code timeouts ${ws.timeouts.toFixed(1)} s, on ${summary.workers} workers`,
    );
    if (summary.canonical_pass_rate < 1) ctx.log.warn("gold-check: some canonical solutions fail their own gold tests");
    return 0;
  },
};
