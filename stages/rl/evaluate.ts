/**
 * Evaluation of generated unit tests on tasks with ground-truth unit tests (App. A.4), shared by `rl-bon`
 * and `rl-fidelity`: for every task, one unit test per UT model and `n` code samples per code model are
 * sampled through the LLM client (response cache), and every code sample runs on the generated cases and on
 * the task's ground-truth cases in the sandbox (one runPrograms call per chunk of tasks; identical executions
 * once). Per (UT model, code model, task) the result is stored under a content key in `<run>/rl-eval/`, so the
 * two stages share work and a re-run executes nothing.
 *
 * A code's generated-UT score counts the cases it passes out of |U| (malformed cases pass nothing); its
 * GT score is the share of ground-truth cases it passes. With `filter_invalid` the generated cases the
 * ground-truth code fails are left out first (not the paper's protocol: the unit test alone is the evaluator).
 */
import * as path from "node:path";
import { z } from "zod";
import { UserError } from "../../pipeline/errors.ts";
import type { CommandContext } from "../../pipeline/stage.ts";
import { atomicWrite, hashValue, readJson, writeJson } from "../../pipeline/util.ts";
import { parseRlConfig, rlSemantics, type RlConfig } from "./config.ts";
import { prepareRow, toCase, type Case } from "./cases.ts";
import { RewardEngine, type ExecRequest } from "./engine.ts";
import { extractCode } from "./ut-parser.ts";
import { loadTasks, taskFile, type RlTask } from "./tasks.ts";
import { loadUtrlTemplates, promptFor, sampleAll, type ModelTarget } from "./sampling.ts";

export const EVAL_VERSION = "1";

export const evalConfigSchema = z.strictObject({
  /** Task file with ground-truth cases (default: this run's rl-tasks test split). */
  tasks: z.string().min(1).optional(),
  /** Evaluate the first N tasks only. */
  limit: z.int().positive().optional(),
  /** Models (names at the llm endpoint) that write the unit tests (default: llm.model). */
  ut_models: z.array(z.string().min(1)).default([]),
  /** Models that write the code samples (default: llm.model). */
  code_models: z.array(z.string().min(1)).default([]),
  /** Code samples per task and code model (App. A.4: 32). */
  n: z.int().positive().default(32),
  ut_sampling: z.strictObject({ temperature: z.number().min(0).default(1.0), top_p: z.number().gt(0).max(1).default(1.0), max_tokens: z.int().positive().default(4096) }).default({ temperature: 1.0, top_p: 1.0, max_tokens: 4096 }),
  code_sampling: z.strictObject({ temperature: z.number().min(0).default(1.0), top_p: z.number().gt(0).max(1).default(1.0), max_tokens: z.int().positive().default(4096) }).default({ temperature: 1.0, top_p: 1.0, max_tokens: 4096 }),
  /** Sent in every request (e.g. {chat_template_kwargs: {enable_thinking: false}}). */
  extra_body: z.record(z.string(), z.unknown()).default({}),
  /** Drop generated cases the ground-truth code fails before scoring (off: the paper's protocol). */
  filter_invalid: z.boolean().default(false),
  bootstrap: z.strictObject({ samples: z.int().positive().default(1000), seed: z.int().default(0) }).default({ samples: 1000, seed: 0 }),
  /** Tasks executed per sandbox request (performance only). */
  tasks_per_batch: z.int().positive().default(8),
  concurrency: z.int().positive().default(32),
  llm: z.record(z.string(), z.unknown()).optional(),
});
export type EvalConfig = z.infer<typeof evalConfigSchema>;

/** One (UT model, code model, task) result. */
export interface PairResult {
  task: string;
  /** "ok", or why the unit test is unusable (every code then passes 0 of its cases). */
  ut_status: string;
  /** |U| (cases counted, malformed included). */
  cases: number;
  /** Well-formed generated cases the ground-truth code fails (invalid). */
  invalid_cases: number;
  /** Per code sample: generated cases passed, ground-truth cases passed. */
  gen_passed: number[];
  gt_passed: number[];
  gt_total: number;
  /** Code samples without a usable program (counted; they pass nothing). */
  no_code: number;
}

export interface EvalResult {
  tasks: RlTask[];
  /** Left-out tasks by reason. */
  skipped: Record<string, number>;
  pairs: Map<string, PairResult[]>;
  utModels: string[];
  codeModels: string[];
}

export const pairKey = (ut: string, code: string) => `${ut}\u0000${code}`;

interface Sample {
  texts: string[];
  finishReasons: string[];
  error?: string;
}

/** Sample, execute and store every (UT model, code model, task) result that is missing. */
export async function evaluatePairs(ctx: CommandContext, cfg: EvalConfig): Promise<EvalResult> {
  const rl = parseRlConfig(ctx.root.rl);
  const file = path.resolve(cfg.tasks ?? taskFile(ctx.runDir, "test"));
  const flagLimit = ctx.flags.limit === undefined ? undefined : Number(ctx.flags.limit);
  const all = await loadTasks(file, { limit: cfg.limit ?? (Number.isInteger(flagLimit) && flagLimit! > 0 ? flagLimit : undefined) });
  const skipped: Record<string, number> = {};
  const tasks = all.filter((t) => {
    if (t.gt_cases?.length) return true;
    skipped.no_gt_cases = (skipped.no_gt_cases ?? 0) + 1;
    return false;
  });
  if (!tasks.length) throw new UserError(`${file}: no task has ground-truth cases (gt_cases); evaluate on a test split built by rl-tasks`);
  const defaultModel = String((ctx.root[ctx.name]?.llm?.model as string | undefined) ?? ctx.root.llm?.model ?? "");
  const utModels = cfg.ut_models.length ? cfg.ut_models : defaultModel ? [defaultModel] : [];
  const codeModels = cfg.code_models.length ? cfg.code_models : defaultModel ? [defaultModel] : [];
  if (!utModels.length || !codeModels.length) throw new UserError(`${ctx.name} needs models: set ${ctx.name}.ut_models and ${ctx.name}.code_models (names at llm.base_urls) or llm.model`);
  const t = await loadUtrlTemplates();
  const semantics = rlSemantics(rl);
  const keyOf = (task: RlTask, ut: string, code: string) =>
    hashValue({ v: EVAL_VERSION, task, ut, code, n: cfg.n, us: cfg.ut_sampling, cs: cfg.code_sampling, extra: cfg.extra_body, templates: t.hash, rl: semantics, filter: cfg.filter_invalid, num_cases: rl.num_cases }).slice(0, 24);
  const fileOf = (key: string) => path.join(ctx.runDir, "rl-eval", key.slice(0, 2), `${key}.json`);
  const pairs = new Map<string, PairResult[]>();
  const missing = new Set<number>();
  for (const ut of utModels)
    for (const code of codeModels) {
      const list: PairResult[] = new Array(tasks.length);
      for (let i = 0; i < tasks.length; i++) {
        const hit = await readJson<PairResult>(fileOf(keyOf(tasks[i], ut, code)));
        if (hit) list[i] = hit;
        else missing.add(i);
      }
      pairs.set(pairKey(ut, code), list);
    }
  ctx.counters.add("results_reused", utModels.length * codeModels.length * tasks.length - [...pairs.values()].reduce((a, l) => a + l.filter((x) => !x).length, 0));
  if (missing.size) {
    const todo = [...missing].sort((a, b) => a - b).map((i) => tasks[i]);
    ctx.log.info(`${ctx.name}: ${todo.length} task(s) to sample and execute (${utModels.length} UT model(s), ${codeModels.length} code model(s) × ${cfg.n} samples)`);
    const llm = await ctx.getLlm();
    if (llm.backend !== "openai") throw new UserError(`${ctx.name} samples models: set llm.backend: openai (or ${ctx.name}.llm.backend) and llm.base_urls to the endpoint serving ${[...utModels, ...codeModels].join(", ")}`);
    const target = (m: string): ModelTarget => ({ request: m, base: m, adapters: [], identity: { model: m } });
    const uts = new Map<string, Sample[]>();
    for (const m of utModels) uts.set(m, await sampleAll(ctx, llm, target(m), todo.map((x) => promptFor(t, "tester", x, rl.num_cases)), 1, { ...cfg.ut_sampling, extra: cfg.extra_body }, t.hash, cfg.concurrency));
    const codes = new Map<string, Sample[]>();
    for (const m of codeModels) codes.set(m, await sampleAll(ctx, llm, target(m), todo.map((x) => promptFor(t, "coder", x, rl.num_cases)), cfg.n, { ...cfg.code_sampling, extra: cfg.extra_body }, t.hash, cfg.concurrency));
    const engine = new RewardEngine(await ctx.getExecutor(), rl);
    for (let start = 0; start < todo.length; start += cfg.tasks_per_batch) {
      const chunk = todo.slice(start, start + cfg.tasks_per_batch).map((task, j) => ({ task, j: start + j }));
      const results = await executeChunk(engine, rl, cfg, chunk, utModels, codeModels, uts, codes);
      for (const [k, r] of results) {
        const [ut, code, idx] = k.split("\u0000");
        const i = tasks.indexOf(todo[Number(idx)]);
        pairs.get(pairKey(ut, code))![i] = r;
        await writeJson(fileOf(keyOf(tasks[i], ut, code)), r);
      }
      ctx.log.info(`${ctx.name}: ${Math.min(start + cfg.tasks_per_batch, todo.length)}/${todo.length} task(s) executed`);
    }
  }
  return { tasks, skipped, pairs, utModels, codeModels };
}

/** Sample errors count as unusable outputs (an empty unit test, codes without a program). */
function textsOf(s: Sample | undefined, n: number): { texts: string[]; finish: (string | undefined)[] } {
  if (!s || s.error) return { texts: new Array(n).fill(""), finish: new Array(n).fill(undefined) };
  return { texts: s.texts, finish: s.finishReasons };
}

async function executeChunk(
  engine: RewardEngine,
  rl: RlConfig,
  cfg: EvalConfig,
  chunk: { task: RlTask; j: number }[],
  utModels: string[],
  codeModels: string[],
  uts: Map<string, Sample[]>,
  codes: Map<string, Sample[]>,
): Promise<Map<string, PairResult>> {
  const reqs: ExecRequest[] = [];
  const slot = (task: RlTask, program: string, c: Case) => {
    reqs.push({ kind: task.kind, program, entryPoint: task.entry_point, input: c.input! });
    return reqs.length - 1;
  };
  interface Plan {
    task: RlTask;
    j: number;
    gt: Case[];
    gen: Map<string, { status: string; cases: Case[]; gtSlots: (number | undefined)[] }>;
    progs: Map<string, { programs: (string | undefined)[]; gtSlots: (number | undefined)[][]; genSlots: Map<string, (number | undefined)[][]> }>;
  }
  const plans: Plan[] = chunk.map(({ task, j }) => {
    const gt = task.gt_cases!.map((c) => toCase(task.kind, c, task.entry_point));
    const gen = new Map<string, { status: string; cases: Case[]; gtSlots: (number | undefined)[] }>();
    for (const m of utModels) {
      const s = textsOf(uts.get(m)![j], 1);
      const p = prepareRow({ id: task.id, kind: task.kind, gt_code: task.gt_code, entry_point: task.entry_point, ut_text: s.texts[0], finish_reason: s.finish[0], cases: undefined, codes: [], code_texts: undefined }, rl);
      // The ground truth on the generated cases: their validity (reported; used with filter_invalid).
      const gtSlots = p.cases.map((c) => (c.status === "ok" ? slot(task, task.gt_code, c) : undefined));
      gen.set(m, { status: p.status, cases: p.cases, gtSlots });
    }
    const progs = new Map<string, { programs: (string | undefined)[]; gtSlots: (number | undefined)[][]; genSlots: Map<string, (number | undefined)[][]> }>();
    for (const m of codeModels) {
      const s = textsOf(codes.get(m)![j], cfg.n);
      const programs = s.texts.map((x) => {
        const e = extractCode(x);
        return e.ok ? e.code : undefined;
      });
      const gtSlots = programs.map((pr) => gt.map((c) => (pr !== undefined && c.status === "ok" ? slot(task, pr, c) : undefined)));
      const genSlots = new Map<string, (number | undefined)[][]>();
      for (const [um, g] of gen) genSlots.set(um, programs.map((pr) => g.cases.map((c) => (pr !== undefined && c.status === "ok" ? slot(task, pr, c) : undefined))));
      progs.set(m, { programs, gtSlots, genSlots });
    }
    return { task, j, gt, gen, progs };
  });
  const res = await engine.execute(reqs);
  const pass = (task: RlTask, s: number | undefined, c: Case) => s !== undefined && engine.judge(task.kind, res[s], c.expected!) === "pass";
  const out = new Map<string, PairResult>();
  for (const p of plans) {
    for (const [um, g] of p.gen) {
      const gtOk = g.cases.map((c, k) => pass(p.task, g.gtSlots[k], c));
      const valid = cfg.filter_invalid ? gtOk : g.cases.map(() => true);
      const invalid = g.cases.filter((c, k) => c.status === "ok" && !gtOk[k]).length;
      for (const [cm, pr] of p.progs) {
        const genSlots = pr.genSlots.get(um)!;
        out.set(`${um}\u0000${cm}\u0000${p.j}`, {
          task: p.task.id,
          ut_status: g.status,
          cases: cfg.filter_invalid ? valid.filter(Boolean).length : g.cases.length,
          invalid_cases: invalid,
          gen_passed: pr.programs.map((_, i) => g.cases.filter((c, k) => valid[k] && pass(p.task, genSlots[i][k], c)).length),
          gt_passed: pr.programs.map((_, i) => p.gt.filter((c, k) => pass(p.task, pr.gtSlots[i][k], c)).length),
          gt_total: p.gt.length,
          no_code: pr.programs.filter((x) => x === undefined).length,
        });
      }
    }
  }
  return out;
}

/** An evaluation stage's report section (report.md) and summary (summary.json) in its stage folder. */
export async function writeReport(ctx: CommandContext, md: string, summary: unknown): Promise<string> {
  await atomicWrite(path.join(ctx.stageDir, "report.md"), md);
  await writeJson(path.join(ctx.stageDir, "summary.json"), summary);
  return path.join(ctx.stageDir, "report.md");
}
