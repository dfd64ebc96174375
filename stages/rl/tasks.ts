/**
 * UTRL tasks and the `rl-tasks` command that builds them.
 *
 * A task (one JSONL row of `<run>/rl-tasks/{train,valid,test}.jsonl`):
 *   {"id", "kind": "stdio"|"function", "question", "gt_code", "entry_point" (function tasks),
 *    "gt_cases": [{"input", "output"}] (the ground-truth unit test; evaluation sets), "source", …}
 * Training needs no ground-truth unit test (UTRL's rewards use only the ground-truth *code*); best-of-N and
 * fidelity score against `gt_cases`.
 *
 * Sources (`rl-tasks.source`):
 *  - `taco` — the TACO dataset (BAAI/TACO) from the Hub at a pinned revision (or a local copy of its files),
 *    filtered as App. A.3 says: a ground-truth solution present and stdio tests (rows whose tests name a
 *    function, `fn_name`, are function-call tasks and are dropped). Train split → train + `valid_tasks` held
 *    out for validation (App. A.3: 1,000); test split → test (the paper evaluates on 945 of its 1,000 tasks).
 *  - `tasks` — local JSONL files already in the task format.
 *  - `mbppfix` — MBPP+Fix-format rows (gold-check's format): function tasks whose ground-truth cases are read
 *    from each row's test text inside the sandbox (gold-check's extraction).
 *  - `filter` — this run's filter-stage output (the Tulu-3 function tasks): function tasks without cases.
 * Every dropped row is counted under a named reason (stats.json). The output is rebuilt only when the source
 * or a setting that decides it changes.
 */
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { z } from "zod";
import { UserError } from "../../pipeline/errors.ts";
import type { CommandContext, CommandStage } from "../../pipeline/stage.ts";
import { exists, hashValue, readJson, readJsonl, sha256, writeJson, writeJsonl } from "../../pipeline/util.ts";
import { formatCall, formatPyValue } from "../../pipeline/executor/literals.ts";
import { caseSchema, type CaseText, type TaskKind } from "./cases.ts";
import { parseRlConfig } from "./config.ts";
import { RewardEngine } from "./engine.ts";

export const TACO_REPO = "BAAI/TACO";
/**
 * BAAI/TACO at "Convert dataset to Parquet (#2)" — the first commit with the data as parquet files
 * (`ALL/train-*.parquet`, 25,443 rows; `ALL/test-*.parquet`, 1,000 rows). Read from the Hub's commit
 * history (huggingface.co/datasets/BAAI/TACO/commits, 1257571…); earlier commits hold a loading script and
 * Arrow files only.
 */
export const TACO_REVISION = "1257571d3ae21509282a69a0e34d85cb6d85b594";

export const taskSchema = z.looseObject({
  id: z.union([z.string().min(1), z.number()]).transform(String),
  kind: z.enum(["stdio", "function"]),
  question: z.string().min(1),
  gt_code: z.string().min(1),
  entry_point: z.string().min(1).nullish().transform((v) => v ?? undefined),
  gt_cases: z.array(caseSchema).nullish().transform((v) => v ?? undefined),
  source: z.string().nullish().transform((v) => v ?? undefined),
});
export type RlTask = z.output<typeof taskSchema>;

const splitFiles = z.strictObject({ train: z.string().min(1), test: z.string().min(1).optional() });

export const rlTasksConfigSchema = z.strictObject({
  source: z
    .discriminatedUnion("kind", [
      z.strictObject({
        kind: z.literal("taco"),
        repo: z.string().regex(/^[\w.-]+\/[\w.-]+$/).default(TACO_REPO),
        /** A 40-hex commit of the dataset repo (required for reproducible data). */
        revision: z.string().regex(/^[0-9a-f]{40}$/, "a 40-hex commit id").default(TACO_REVISION),
        train_files: z.string().min(1).default("ALL/train-*.parquet"),
        test_files: z.string().min(1).default("ALL/test-*.parquet"),
        /** A local folder holding the repo's files (same layout): read instead of the Hub. */
        path: z.string().min(1).optional(),
      }),
      z.strictObject({ kind: z.literal("tasks"), ...splitFiles.shape }),
      z.strictObject({ kind: z.literal("mbppfix"), ...splitFiles.shape }),
      z.strictObject({ kind: z.literal("filter") }),
    ])
    .default({ kind: "taco", repo: TACO_REPO, revision: TACO_REVISION, train_files: "ALL/train-*.parquet", test_files: "ALL/test-*.parquet" }),
  /** Tasks of the (filtered) train split held out for validation between phases (App. A.3: 1,000). */
  valid_tasks: z.int().min(0).default(1000),
  /** Seed of the held-out choice (tasks are ranked by sha256(seed, id)). */
  seed: z.int().default(0),
  /** Ground-truth cases kept per train / valid task (training needs none; null: all). */
  train_gt_cases: z.int().min(0).nullable().default(0),
  /** Ground-truth cases kept per test task (null: all — best-of-N and fidelity score on them). */
  test_gt_cases: z.int().min(0).nullable().default(null),
  /**
   * Run each candidate ground-truth solution on up to this many of its own cases and keep the first that
   * passes them all (tasks where none does are dropped as `gt_fails_own_tests`). 0: off — the first
   * solution is the ground truth, as given.
   */
  verify_gt_cases: z.int().min(0).default(0),
  /** Solutions tried by the verification, in dataset order. */
  verify_solutions: z.int().positive().default(3),
});
export type RlTasksConfig = z.infer<typeof rlTasksConfigSchema>;

export type Drop = { drop: string };
export const isDrop = (r: unknown): r is Drop => !!r && typeof (r as Drop).drop === "string" && !("id" in (r as object));

/** One TACO output/input: a string, or a list of lines. */
function ioText(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (Array.isArray(v) && v.every((x) => typeof x === "string")) return v.join("\n");
  return undefined;
}

/** A TACO row as a stdio task, or the App. A.3 reason it is left out. */
export function tacoRowToTask(row: Record<string, unknown>, split: string, index: number): (RlTask & { solutions: string[] }) | Drop {
  const question = typeof row.question === "string" ? row.question.trim() : "";
  if (!question) return { drop: "no_question" };
  let solutions: unknown;
  try {
    solutions = JSON.parse(typeof row.solutions === "string" ? row.solutions : "[]");
  } catch {
    return { drop: "bad_solutions_json" };
  }
  const sols = Array.isArray(solutions) ? solutions.filter((s): s is string => typeof s === "string" && s.trim() !== "") : [];
  if (!sols.length) return { drop: "no_solution" };
  let io: any;
  try {
    io = JSON.parse(typeof row.input_output === "string" ? row.input_output : "");
  } catch {
    return { drop: "bad_tests_json" };
  }
  if (!io || typeof io !== "object") return { drop: "bad_tests_json" };
  if (typeof io.fn_name === "string" && io.fn_name) return { drop: "not_stdio" };
  const inputs = Array.isArray(io.inputs) ? io.inputs : [];
  const outputs = Array.isArray(io.outputs) ? io.outputs : [];
  if (!inputs.length) return { drop: "no_tests" };
  if (inputs.length !== outputs.length) return { drop: "tests_unpaired" };
  const cases: CaseText[] = [];
  for (let k = 0; k < inputs.length; k++) {
    const i = ioText(inputs[k]);
    const o = ioText(outputs[k]);
    if (i === undefined || o === undefined) return { drop: "tests_not_text" };
    cases.push({ input: i, output: o });
  }
  const meta: Record<string, unknown> = {};
  for (const k of ["difficulty", "url", "time_limit", "memory_limit", "name"]) if (typeof row[k] === "string" && row[k]) meta[k] = row[k];
  return {
    id: `taco-${split}-${index}`,
    kind: "stdio",
    question,
    gt_code: sols[0],
    entry_point: undefined,
    gt_cases: cases,
    source: typeof row.source === "string" && row.source ? `taco/${row.source}` : "taco",
    ...meta,
    solutions: sols,
  };
}

/** Read a task JSONL file (one-line errors name file:line and the field). */
export async function loadTasks(file: string, opts: { limit?: number } = {}): Promise<RlTask[]> {
  if (!(await exists(file))) throw new UserError(`task file ${file} not found; build it with --stage rl-tasks or fix the path`);
  const out: RlTask[] = [];
  const seen = new Set<string>();
  let line = 0;
  try {
    for await (const raw of readJsonl(file)) {
      line++;
      const r = taskSchema.safeParse(raw);
      if (!r.success) {
        const i = r.error.issues[0];
        throw new UserError(`${file}:${line}: field "${i.path.join(".")}" ${i.message.toLowerCase()} (task rows need id, kind, question, gt_code)`);
      }
      if (r.data.kind === "function" && !r.data.entry_point) throw new UserError(`${file}:${line}: a function task needs "entry_point"`);
      if (seen.has(r.data.id)) throw new UserError(`${file}:${line}: duplicate task id ${r.data.id}`);
      seen.add(r.data.id);
      out.push(r.data);
      if (opts.limit !== undefined && out.length >= opts.limit) break;
    }
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`${(e as Error).message.split("\n")[0]}; fix the file`);
  }
  if (!out.length) throw new UserError(`task file ${file} has no tasks`);
  return out;
}

/** The task files a run's rl-tasks stage wrote. */
export function taskFile(runDir: string, split: "train" | "valid" | "test"): string {
  return path.join(runDir, "rl-tasks", `${split}.jsonl`);
}

/** Deterministic held-out choice: the `n` tasks with the smallest sha256(seed, id). */
export function holdOut<T extends { id: string }>(tasks: T[], n: number, seed: number): { kept: T[]; held: T[] } {
  const rank = new Map(tasks.map((t) => [t.id, sha256(`${seed}\u0000${t.id}`)]));
  const held = new Set([...tasks].sort((a, b) => (rank.get(a.id)! < rank.get(b.id)! ? -1 : 1)).slice(0, n).map((t) => t.id));
  return { kept: tasks.filter((t) => !held.has(t.id)), held: tasks.filter((t) => held.has(t.id)) };
}

const capCases = (t: RlTask, n: number | null): RlTask => (n === null || !t.gt_cases ? t : { ...t, gt_cases: t.gt_cases.slice(0, n) });

interface Counts {
  rows: number;
  kept: number;
  reasons: Record<string, number>;
}

/** Rows of the source, per split, as task candidates (TACO rows still carry their solutions). */
async function* sourceRows(ctx: CommandContext, cfg: RlTasksConfig, split: "train" | "test"): AsyncGenerator<(RlTask & { solutions?: string[] }) | Drop> {
  const src = cfg.source;
  if (src.kind === "filter") {
    if (split === "test") return;
    const { readUsableManifest, readStageRecords } = await import("../../pipeline/store.ts");
    const m = await readUsableManifest(ctx.runDir, "filter", null);
    if (!m) throw new UserError(`rl-tasks.source kind filter reads this run's filter output, which is missing in ${ctx.runDir}; run --stage filter first`);
    for await (const r of readStageRecords(ctx.runDir, "filter", { manifest: m }) as AsyncIterable<any>) {
      if (typeof r.prompt !== "string" || typeof r.code !== "string" || typeof r.entry_point !== "string") yield { drop: "incomplete_row" };
      else yield { id: r.id, kind: "function", question: r.prompt, gt_code: r.code, entry_point: r.entry_point, gt_cases: undefined, source: r.source };
    }
    return;
  }
  if (src.kind === "taco") {
    const { readFileRows, formatOf } = await import("../../pipeline/sources/local.ts");
    const glob = split === "train" ? src.train_files : src.test_files;
    const { globToRegExp } = await import("../../pipeline/sources/hub.ts");
    const re = globToRegExp(glob);
    let files: string[];
    if (src.path) {
      const { listLocalFiles } = await import("../../pipeline/sources/local.ts");
      const root = path.resolve(src.path);
      files = (await listLocalFiles(root)).files.filter((f) => re.test(f.rel)).map((f) => f.file);
    } else {
      const hub = await import("../../pipeline/sources/hub.ts");
      const hp = { repo: src.repo, repoType: "dataset" as const, revision: src.revision };
      const listed = (await hub.hubListFiles(hp)).filter((f) => re.test(f.path));
      files = [];
      for (const f of listed) files.push(await hub.hubDownload({ ...hp, path: f.path, expectedSize: f.size, log: (m) => ctx.log.info(m) }));
    }
    if (!files.length) throw new UserError(`rl-tasks: no files match "${glob}" in ${src.path ?? `${src.repo}@${src.revision}`}; check rl-tasks.source`);
    let index = 0;
    for (const f of files) {
      const fmt = formatOf(f);
      if (!fmt) throw new UserError(`rl-tasks: cannot tell the format of ${f}; use .parquet or .jsonl files`);
      for await (const row of readFileRows(f, fmt)) yield tacoRowToTask(row, split, index++);
    }
    return;
  }
  const file = split === "train" ? src.train : src.test;
  if (!file) return;
  if (src.kind === "tasks") {
    for (const t of await loadTasks(path.resolve(file))) yield t;
    return;
  }
  // mbppfix: MBPP+Fix rows; the cases come from each row's test text (gold-check's sandboxed extraction).
  const { loadGoldProblems, extractGoldTests } = await import("../gold-check.ts");
  const ex = await ctx.getExecutor();
  for (const p of await loadGoldProblems(path.resolve(file))) {
    const entry = p.entry_point ?? (/^def\s+(\w+)/m.exec(p.canonical_solution)?.[1] ?? "");
    const prompt = typeof (p as any).prompt === "string" ? (p as any).prompt : "";
    if (!entry || !prompt) {
      yield { drop: "incomplete_row" };
      continue;
    }
    let gold;
    try {
      gold = await extractGoldTests(ex, p, { cacheDir: ctx.cacheDir });
    } catch {
      yield { drop: "tests_not_extractable" };
      continue;
    }
    const fn = entry;
    yield {
      id: String(p.task_id),
      kind: "function",
      question: prompt,
      gt_code: p.canonical_solution,
      entry_point: fn,
      gt_cases: gold.inputs.map((a, k) => ({ input: formatCall(fn, a), output: formatPyValue(gold.results[k]) })),
      source: "mbppfix",
    };
  }
}

/** Verify candidate solutions on their own cases; the first that passes them all becomes gt_code. */
async function verifyGt(engine: RewardEngine, tasks: (RlTask & { solutions?: string[] })[], cfg: RlTasksConfig): Promise<(RlTask | Drop)[]> {
  const n = cfg.verify_gt_cases;
  const out: (RlTask | Drop)[] = tasks.map((t) => t);
  const pending = tasks.map((t, i) => ({ t, i, sols: (t.solutions ?? [t.gt_code]).slice(0, cfg.verify_solutions), k: 0 }));
  let round = pending.filter((p) => (p.t.gt_cases?.length ?? 0) > 0);
  for (const p of pending) if (!p.t.gt_cases?.length) out[p.i] = { drop: "no_tests_to_verify" };
  while (round.length) {
    const reqs = round.flatMap((p) =>
      p.t.gt_cases!.slice(0, n).map((c) => ({ p, c })),
    );
    const { toCase } = await import("./cases.ts");
    const execs = reqs.map(({ p, c }) => {
      const cs = toCase(p.t.kind, c, p.t.entry_point);
      return { p, cs, req: cs.status === "ok" ? { kind: p.t.kind, program: p.sols[p.k], entryPoint: p.t.entry_point, input: cs.input! } : undefined };
    });
    const results = await engine.execute(execs.filter((e) => e.req).map((e) => e.req!));
    const failed = new Set<number>();
    let j = 0;
    for (const e of execs) {
      if (!e.req) {
        failed.add(e.p.i);
        continue;
      }
      if (engine.judge(e.p.t.kind, results[j++], e.cs.expected!) !== "pass") failed.add(e.p.i);
    }
    const next = [];
    for (const p of round) {
      if (!failed.has(p.i)) out[p.i] = { ...p.t, gt_code: p.sols[p.k] };
      else if (++p.k < p.sols.length) next.push(p);
      else out[p.i] = { drop: "gt_fails_own_tests" };
    }
    round = next;
  }
  return out;
}

function strip(t: RlTask & { solutions?: string[] }): RlTask {
  const { solutions: _s, ...rest } = t;
  return rest as RlTask;
}

export const rlTasksStage: CommandStage<RlTasksConfig> = {
  kind: "command",
  name: "rl-tasks",
  description: "UTRL tasks: TACO from the Hub (App. A.3 filter) or local rows → train / valid / test JSONL",
  configSchema: rlTasksConfigSchema,
  after: ["filter"],
  async run(ctx: CommandContext<RlTasksConfig>): Promise<number> {
    const cfg = rlTasksConfigSchema.parse(ctx.config ?? {});
    const rl = parseRlConfig(ctx.root.rl);
    const limit = ctx.flags.limit === undefined ? undefined : Number(ctx.flags.limit);
    const settings = { v: 1, cfg, limit, verify: cfg.verify_gt_cases ? { timeout_s: rl.timeout_s, checker: rl.checker, compare: rl.compare } : null };
    const key = hashValue(settings).slice(0, 16);
    const manifestFile = path.join(ctx.stageDir, "manifest.json");
    const prev = await readJson<{ key: string; counts: Record<string, Counts> }>(manifestFile);
    // Local sources can change under the same settings: include their content hash.
    const localFiles = [cfg.source.kind === "tasks" || cfg.source.kind === "mbppfix" ? [cfg.source.train, cfg.source.test] : []].flat().filter((f): f is string => !!f);
    const fileHashes: string[] = [];
    for (const f of localFiles) fileHashes.push(sha256(await fsp.readFile(path.resolve(f)).catch(() => Buffer.from(""))));
    const fullKey = hashValue({ key, fileHashes }).slice(0, 16);
    const outputs = (["train", "valid", "test"] as const).map((s) => taskFile(ctx.runDir, s));
    if (cfg.source.kind !== "filter" && prev?.key === fullKey && (await Promise.all(outputs.map(exists))).every(Boolean)) {
      ctx.stdout(`rl-tasks: up to date (${Object.entries(prev.counts).map(([s, c]) => `${s} ${c.kept}`).join(", ")}) in ${ctx.stageDir}`);
      return 0;
    }
    const engine = cfg.verify_gt_cases ? new RewardEngine(await ctx.getExecutor(), rl) : undefined;
    const counts: Record<string, Counts> = {};
    const build = async (split: "train" | "test") => {
      const c: Counts = { rows: 0, kept: 0, reasons: {} };
      const kept: (RlTask & { solutions?: string[] })[] = [];
      // Keep in memory only the cases and solutions the output or the verification needs.
      const cap = split === "train" ? cfg.train_gt_cases : cfg.test_gt_cases;
      const need = cap === null ? Infinity : Math.max(cap, cfg.verify_gt_cases);
      for await (const r of sourceRows(ctx, cfg, split)) {
        if (limit !== undefined && c.rows >= limit) break;
        c.rows++;
        if (isDrop(r)) c.reasons[r.drop] = (c.reasons[r.drop] ?? 0) + 1;
        else
          kept.push({
            ...r,
            gt_cases: r.gt_cases && need !== Infinity ? r.gt_cases.slice(0, need) : r.gt_cases,
            ...(r.solutions ? { solutions: r.solutions.slice(0, cfg.verify_gt_cases ? cfg.verify_solutions : 1) } : {}),
          });
      }
      let tasks: RlTask[] = kept.map(strip);
      if (engine && kept.length) {
        tasks = [];
        const BATCH = 64;
        for (let i = 0; i < kept.length; i += BATCH) {
          for (const r of await verifyGt(engine, kept.slice(i, i + BATCH), cfg)) {
            if (isDrop(r)) c.reasons[r.drop] = (c.reasons[r.drop] ?? 0) + 1;
            else tasks.push(strip(r));
          }
        }
      }
      c.kept = tasks.length;
      return { tasks, c };
    };
    const train = await build("train");
    const { kept, held } = holdOut(train.tasks, cfg.valid_tasks, cfg.seed);
    if (cfg.valid_tasks && held.length < cfg.valid_tasks) ctx.log.warn(`rl-tasks: only ${held.length} task(s) for validation (rl-tasks.valid_tasks is ${cfg.valid_tasks})`);
    const test = await build("test");
    await writeJsonl(outputs[0], kept.map((t) => capCases(t, cfg.train_gt_cases)));
    await writeJsonl(outputs[1], held.map((t) => capCases(t, cfg.train_gt_cases)));
    await writeJsonl(outputs[2], test.tasks.map((t) => capCases(t, cfg.test_gt_cases)));
    counts.train = { ...train.c, kept: kept.length };
    counts.valid = { rows: held.length, kept: held.length, reasons: {} };
    counts.test = test.c;
    await writeJson(path.join(ctx.stageDir, "stats.json"), { source: cfg.source, counts });
    await writeJson(manifestFile, { key: fullKey, settings, counts, built_at: new Date().toISOString() });
    for (const [s, cnt] of Object.entries(counts)) {
      const reasons = Object.entries(cnt.reasons).map(([k, v]) => `${k} ${v}`).join(", ");
      ctx.stdout(`rl-tasks ${s}: ${cnt.kept} task(s)${s !== "valid" ? ` of ${cnt.rows} row(s)` : ""}${reasons ? ` — dropped: ${reasons}` : ""}`);
    }
    ctx.stdout(`wrote ${outputs.join(", ")}`);
    return 0;
  },
};
