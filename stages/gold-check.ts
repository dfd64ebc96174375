/**
 * `gold-check`: debug a benchmark in the MBPP+Fix format (`task_id`, `test`, `canonical_solution`, `code`).
 * For each problem its gold tests — `inputs`, `results` and `assertion(out, exp, atol)` defined by the
 * problem's `test` text, called by the text's final loop — run through the sandboxed executor against
 * `canonical_solution` (fixed limit, buggy_timeout_s) and then against `code`, whose per-test limit is
 * calibrated on the canonical run time (executor.calibrate*, see docs/executor.md). Prints problems,
 * mean tests per problem, canonical and code pass rates (means over problems) and per-problem rates;
 * with --json the last stdout line is the summary object.
 */
import * as path from "node:path";
import { z } from "zod";
import { UserError } from "../pipeline/errors.ts";
import type { CommandContext, CommandStage } from "../pipeline/stage.ts";
import { exists, hashValue, readJson, readJsonl, writeJson } from "../pipeline/util.ts";
import {
  buggyTimeoutFor,
  executorConfigSchema,
  type CallResult,
  type Executor,
  type ExecutorConfig,
} from "../pipeline/executor/index.ts";
import { runReferenceHarness, type ReferenceTask } from "../pipeline/executor/reference.ts";

export const goldCheckConfigSchema = z
  .object({
    /** Problems checked at the same time (each one occupies one executor worker at a time). */
    concurrency: z.number().int().positive().default(8),
    /** Module-level limit (program + the test's data literals), seconds. */
    load_timeout_s: z.number().positive().default(10),
    /** Per-test limit for the canonical solution (default: executor.buggy_timeout_s, the reference's 2 s). */
    canonical_timeout_s: z.number().positive().optional(),
    /** Reuse canonical verdicts and timings from the cache folder (keyed by solution, test text and limit). */
    cache: z.boolean().default(true),
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
  /** Set when the code (or canonical) could not be loaded at module level. */
  load_error?: string;
  /** With `details`: one character per test of `code`: p(ass), f(ail), t(imeout). */
  code_verdicts?: string;
}

export interface GoldCheckSummary {
  problems: number;
  mean_tests: number;
  canonical_pass_rate: number;
  code_pass_rate: number;
  calls: number;
  timeouts: number;
  wall_s: number;
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

const CASE_FN = "__utgen_gold_case__";

/** Program that defines the code, the test's data and one entry point per gold test index. */
export function goldHarnessProgram(program: string, t: SplitTest): string {
  return `${program}\n${t.header}\n\ndef ${CASE_FN}(__i):\n    assertion(${t.fn}(*inputs[__i]), results[__i], ${t.atol})\n    return True\n`;
}

export interface GoldCheckOptions {
  /** Executor settings for the limits (defaults: the executor's own config when it exposes one). */
  config?: Partial<ExecutorConfig>;
  concurrency?: number;
  loadTimeoutS?: number;
  canonicalTimeoutS?: number;
  /** Folder for cached canonical runs (none: always run canonical). */
  cacheDir?: string;
  /** Add per-test verdicts (`code_verdicts`) to each problem's report. */
  details?: boolean;
  onProblem?: (r: ProblemReport, done: number, total: number) => void;
}

/** Per-test limits for the code under test, rounded up to floor·1.5^k (capped) so each bucket is one batch. */
export function calibratedLimits(gold: CallResult[], cfg: ExecutorConfig): number[] {
  return gold.map((g) => {
    if (g.status !== "ok" || !cfg.calibrate) return cfg.buggy_timeout_s;
    const raw = buggyTimeoutFor(g.ms, cfg);
    let b = cfg.calibrate_floor_s;
    while (b < raw - 1e-9) b *= 1.5;
    return Math.min(b, cfg.buggy_timeout_s);
  });
}

interface Ctx {
  details: boolean;
  cfg: ExecutorConfig;
  loadTimeoutS: number;
  canonicalTimeoutS: number;
  cacheDir?: string;
}

async function canonicalRun(ex: Executor, p: GoldProblem, t: SplitTest, n: number, c: Ctx): Promise<CallResult[]> {
  const key = hashValue({ v: 1, program: p.canonical_solution, test: p.test, n, limit: c.canonicalTimeoutS, load: c.loadTimeoutS });
  const file = c.cacheDir ? path.join(c.cacheDir, "gold-check", key.slice(0, 2), key + ".json") : undefined;
  if (file) {
    const hit = await readJson<CallResult[]>(file).catch(() => undefined);
    if (Array.isArray(hit) && hit.length === n) return hit;
  }
  const inputs = Array.from({ length: n }, (_, i) => ({ args: [i] }));
  const res = await ex.runCalls({
    program: goldHarnessProgram(p.canonical_solution, t),
    entryPoint: CASE_FN,
    inputs,
    timeoutS: c.canonicalTimeoutS,
    loadTimeoutS: c.loadTimeoutS,
  });
  // Only fully passing canonical runs are cached: a failure is worth re-checking next time.
  if (file && res.every((r) => r.status === "ok")) await writeJson(file, res.map((r) => ({ status: r.status, ms: r.ms })));
  return res;
}

async function checkOne(ex: Executor, p: GoldProblem, c: Ctx): Promise<ProblemReport & { calls: number }> {
  const t = splitTest(p.test, p.task_id);
  const count = await ex.runScript(`${t.header}\nOUTPUT = [len(inputs), len(results)]\n`, null, { timeoutS: c.loadTimeoutS });
  if (count.status !== "ok" || !Array.isArray(count.output)) {
    throw new UserError(`problem ${p.task_id}: its test text does not define inputs/results (${count.errorType ?? count.status}: ${count.message ?? ""})`);
  }
  const n = Math.min(...(count.output as number[]));
  const canon = await canonicalRun(ex, p, t, n, c);
  const limits = calibratedLimits(canon, c.cfg);
  const code: CallResult[] = new Array(n);
  const program = goldHarnessProgram(p.code, t);
  for (const lim of [...new Set(limits)].sort((a, b) => a - b)) {
    const idx = limits.flatMap((l, i) => (l === lim ? [i] : []));
    const res = await ex.runCalls({ program, entryPoint: CASE_FN, inputs: idx.map((i) => ({ args: [i] })), timeoutS: lim, loadTimeoutS: c.loadTimeoutS });
    idx.forEach((i, j) => (code[i] = res[j]));
  }
  const pass = (rs: { status: string }[]) => (n ? rs.filter((r) => r.status === "ok").length / n : 0);
  const loadErr = [...code, ...canon].find((r) => r.status !== "ok" && r.message?.startsWith("module level"));
  const rep: ProblemReport & { calls: number } = {
    task_id: p.task_id,
    tests: n,
    canonical_pass_rate: pass(canon),
    code_pass_rate: pass(code),
    code_limit_s: Math.max(0, ...limits),
    code_timeouts: code.filter((r) => r.status === "timeout").length,
    calls: 2 * n,
  };
  if (loadErr) rep.load_error = `${loadErr.errorType ?? loadErr.status}: ${loadErr.message}`.slice(0, 200);
  if (c.details) rep.code_verdicts = code.map((r) => (r.status === "ok" ? "p" : r.status === "timeout" ? "t" : "f")).join("");
  return rep;
}

/** Run the gold tests of every problem on canonical and code; the JSON summary of `--json`. */
export async function goldCheck(ex: Executor, problems: GoldProblem[], opts: GoldCheckOptions = {}): Promise<GoldCheckSummary> {
  const t0 = performance.now();
  const cfg = executorConfigSchema.parse(opts.config ?? (ex as { config?: ExecutorConfig }).config ?? {});
  for (const p of problems) splitTest(p.test, p.task_id); // fail fast on a malformed row
  const c: Ctx = {
    details: !!opts.details,
    cfg,
    loadTimeoutS: opts.loadTimeoutS ?? 10,
    canonicalTimeoutS: opts.canonicalTimeoutS ?? cfg.buggy_timeout_s,
    cacheDir: opts.cacheDir,
  };
  const reports: (ProblemReport & { calls: number })[] = new Array(problems.length);
  let next = 0;
  let done = 0;
  const lanes = Array.from({ length: Math.max(1, opts.concurrency ?? 8) }, async () => {
    while (next < problems.length) {
      const i = next++;
      reports[i] = await checkOne(ex, problems[i], c);
      done++;
      const { calls: _c, ...r } = reports[i];
      opts.onProblem?.(r, done, problems.length);
    }
  });
  await Promise.all(lanes);
  const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
  return {
    problems: problems.length,
    mean_tests: mean(reports.map((r) => r.tests)),
    canonical_pass_rate: mean(reports.map((r) => r.canonical_pass_rate)),
    code_pass_rate: mean(reports.map((r) => r.code_pass_rate)),
    calls: reports.reduce((a, r) => a + r.calls, 0),
    timeouts: reports.reduce((a, r) => a + r.code_timeouts, 0),
    wall_s: (performance.now() - t0) / 1000,
    per_problem: reports.map(({ calls: _c, ...r }) => r),
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
      config: ctx.root?.executor,
      concurrency: cfg.concurrency,
      loadTimeoutS: cfg.load_timeout_s,
      canonicalTimeoutS: cfg.canonical_timeout_s,
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
    if (summary.canonical_pass_rate < 1) ctx.log.warn("gold-check: some canonical solutions fail their own gold tests");
    return 0;
  },
};
