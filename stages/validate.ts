/**
 * `validate`: scores unit-test generators — every checkpoint of a training run (LoRA adapters served by an
 * OpenAI-compatible endpoint and requested by adapter name), explicit model names, and the Table 1 baselines
 * (`random`: description-only prompt; `prompted`: the base model with the UTGen prompt) — on one or more
 * validation sets. Per (model, set, run) it samples `n` unit tests per problem, parses them with the safe
 * parsers, executes them in the sandbox and computes attack rate, output accuracy and Acc∩Attack
 * (stages/validation/metrics.ts) with a bootstrap CI over problems. Each (model, set, run) result is stored
 * under a content hash of everything that determines it, so a new checkpoint computes only its own results
 * and an unchanged re-run makes no model calls. Writes `<runDir>/validate/<model>.json`, `summary.md` and a
 * self-contained `report.html`.
 *
 * The heuristic demo checkpoints `train.backend: heuristic` registers, and baselines whose base model is
 * `heuristic` (the default for that registry), are answered by the embedded heuristic generator
 * (stages/validation/heuristic.ts) through the same parsing and scoring: no server, no model call.
 */
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import PQueue from "p-queue";
import { z } from "zod";
import type { CommandContext, CommandStage } from "../pipeline/stage.ts";
import { UserError } from "../pipeline/errors.ts";
import { atomicWrite, exists, fileSha256, hashValue, readJson, writeJson } from "../pipeline/util.ts";
import { llmConfigForStage } from "../pipeline/config.ts";
import { createLlmClient, llmConfigSchema, type ChatMessage } from "../pipeline/llm/client.ts";
import { buggyTimeoutFor, executorConfigSchema } from "../pipeline/executor/index.ts";
import { loadTemplate } from "./prompts/index.ts";
import { llmOverrideSchema } from "./common.ts";
import { loadSets, setSchema, type LoadedSet, type Problem } from "./validation/datasets.ts";
import { evaluateProblem, failureReasons, type Response, type TestRecord } from "./validation/evaluate.ts";
import { summarize, tallyProblem, pct, type ProblemTally } from "./validation/metrics.ts";
import { renderHtml, renderMarkdown, type ModelInfo, type ModelResult, type ProblemResult } from "./validation/report.ts";
import { ensureAdapters, serverSchema, startServer, type Adapter, type RunningServer } from "./validation/server.ts";
import { heuristicFingerprint, heuristicModelOf, heuristicResponses, isHeuristicCheckpoint, type HeuristicModel } from "./validation/heuristic.ts";

/** Bump when scoring logic changes: invalidates every stored (model, set, run) result. */
export const VALIDATE_VERSION = "2";

export const validateConfigSchema = z.strictObject({
  sets: z.array(setSchema).min(1).default([{ name: "heldout" }]),
  /** Unit tests sampled per problem and run. */
  n: z.int().positive().default(3),
  runs: z.int().positive().default(3),
  temperature: z.number().min(0).max(2).default(0.8),
  top_p: z.number().gt(0).max(1).default(0.9),
  /** The released evaluation script allows 2048 + 512 new tokens. */
  max_tokens: z.int().positive().default(2560),
  stop: z.array(z.string().min(1)).optional(),
  /**
   * Sent in every request so the server's generation_config.json cannot change sampling (vLLM applies the
   * model's own defaults otherwise): top_k −1 and min_p 0 disable those filters, repetition_penalty 1 is none.
   */
  extra_body: z.record(z.string(), z.unknown()).default({ top_k: -1, min_p: 0, repetition_penalty: 1 }),
  /**
   * System message sent first in every request (default: emit-sft.system_prompt, so checkpoints see the
   * prompt they were trained on; none otherwise, as the reference script). `""` sends none.
   */
  system_prompt: z.string().optional(),
  /** Explicit model names on the endpoint (validated with the UTGen prompt, no step). */
  models: z.array(z.string().min(1)).default([]),
  /** A train name: validate every checkpoint in `<runDir>/train/<name>/checkpoints.json`. */
  checkpoints_from: z.string().min(1).optional(),
  baselines: z.array(z.enum(["random", "prompted"])).default(["random", "prompted"]),
  /** Base model for the baselines (default: the registry's base_model, then llm.model). */
  base_model: z.string().min(1).optional(),
  server: serverSchema.default(serverSchema.parse({})),
  bootstrap: z.strictObject({ samples: z.int().positive().default(1000), seed: z.int().default(0) }).default({ samples: 1000, seed: 0 }),
  /** Validate only the first `limit` problems of each set. */
  limit: z.int().positive().optional(),
  /** Problems in flight at once (performance only). */
  concurrency: z.int().positive().default(16),
  llm: llmOverrideSchema,
});
export type ValidateConfig = z.infer<typeof validateConfigSchema>;

export interface Registry {
  train_name: string;
  base_model?: string;
  checkpoints: { name: string; step: number; epoch: number | null; path: string; adapter?: boolean; heuristic?: boolean; registered_at?: string }[];
}

export function registryPath(runDir: string, trainName: string): string {
  return path.join(runDir, "train", trainName, "checkpoints.json");
}

export async function readRegistry(runDir: string, trainName: string): Promise<Registry> {
  const file = registryPath(runDir, trainName);
  const reg = await readJson<Registry>(file).catch(() => {
    throw new UserError(`checkpoint registry ${file} is not valid JSON: re-run train or fix the file`);
  });
  if (!reg) throw new UserError(`no checkpoint registry at ${file}: run train (train.name: ${trainName}) first, or fix validate.checkpoints_from`);
  if (!Array.isArray(reg.checkpoints))
    throw new UserError(`checkpoint registry ${file} has no "checkpoints" list: re-run train`);
  for (const c of reg.checkpoints)
    if (typeof c?.name !== "string" || typeof c?.path !== "string")
      throw new UserError(`checkpoint registry ${file} has an entry without name/path: re-run train`);
  return reg;
}

/** The train run whose checkpoints compete: validate.checkpoints_from, else an explicit train.name. */
export function defaultTrainName(cfg: ValidateConfig, root: Record<string, any>): string | undefined {
  return cfg.checkpoints_from ?? (typeof root.train?.name === "string" ? root.train.name : undefined);
}

/** File-system-safe model name for `<runDir>/validate/<name>.json`. */
export function safeName(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^\.+/, "_");
}

/** The models this config validates, in report order (baselines, checkpoints, explicit models). */
export async function resolveModels(
  cfg: ValidateConfig,
  root: Record<string, any>,
  runDir: string,
  warn?: (m: string) => void,
): Promise<ModelInfo[]> {
  const out: ModelInfo[] = [];
  let reg: Registry | undefined;
  const trainName = defaultTrainName(cfg, root);
  if (cfg.checkpoints_from) reg = await readRegistry(runDir, cfg.checkpoints_from);
  else if (trainName && (await exists(registryPath(runDir, trainName)))) reg = await readRegistry(runDir, trainName);
  const base = cfg.base_model ?? reg?.base_model ?? (root.validate?.llm?.model as string | undefined) ?? (root.llm?.model as string | undefined);
  for (const b of cfg.baselines) {
    if (!base)
      throw new UserError(`validate.baselines needs a base model: set validate.base_model (or llm.model), or set validate.baselines: []`);
    out.push({
      name: `baseline-${b}`,
      kind: "baseline",
      step: null,
      epoch: null,
      requestModel: base,
      template: b === "random" ? "random_joint_ut" : "utgen_ut",
    });
  }
  for (const c of reg?.checkpoints ?? []) {
    if (c.adapter === false && !c.heuristic) {
      warn?.(`checkpoint ${c.name} has no adapter_config.json (not a LoRA adapter): left out; serve it as a model and list it under validate.models`);
      continue;
    }
    out.push({
      name: c.name,
      kind: "checkpoint",
      step: typeof c.step === "number" ? c.step : null,
      epoch: typeof c.epoch === "number" ? c.epoch : null,
      path: c.path,
      requestModel: c.name,
      template: "utgen_ut",
      trainName: reg!.train_name ?? trainName,
    });
  }
  for (const m of cfg.models)
    out.push({ name: m, kind: "model", step: null, epoch: null, requestModel: m, template: "utgen_ut" });
  const seen = new Map<string, string>();
  for (const m of out) {
    const s = safeName(m.name);
    if (seen.has(s)) throw new UserError(`models "${seen.get(s)}" and "${m.name}" map to the same report file ${s}.json: rename one`);
    seen.set(s, m.name);
  }
  if (out.length === 0)
    throw new UserError("validate has nothing to score: set validate.checkpoints_from, validate.models or validate.baselines");
  return out;
}

/** What identifies an adapter's weights without reading them: config hash and weight files' size + mtime. */
async function adapterFingerprint(dir: string): Promise<Record<string, unknown>> {
  const fp: Record<string, unknown> = { path: dir };
  const cfgFile = path.join(dir, "adapter_config.json");
  if (await exists(cfgFile)) fp.config = await fileSha256(cfgFile);
  for (const f of ["adapter_model.safetensors", "adapter_model.bin"]) {
    const st = await fsp.stat(path.join(dir, f)).catch(() => undefined);
    if (st) fp[f] = { size: st.size, mtime: st.mtimeMs };
  }
  return fp;
}

interface RunSlot {
  run: number;
  key: string;
  file: string;
}

interface Job {
  model: ModelInfo;
  set: LoadedSet;
  runs: RunSlot[];
  /** Adapter identity (checkpoints): joins the response-cache key, so retrained weights are re-sampled. */
  adapterFp?: Record<string, unknown>;
}

interface RunFile {
  v: string;
  key: string;
  model: string;
  set: string;
  run: number;
  problems: ProblemResult[];
}

function runFilePath(stageDir: string, model: string, set: string, run: number, key: string): string {
  return path.join(stageDir, "runs", safeName(model), safeName(set), `run${run}-${key.slice(0, 16)}.json`);
}

/** Prompt messages for one problem with one template (the same rendering emit-sft trains on). */
export function messagesFor(tpl: { render(v: Record<string, string>): string }, p: Problem, system?: string): ChatMessage[] {
  const user: ChatMessage = {
    role: "user",
    content: tpl.render({ signature: p.signature, description: p.description, code: p.buggy, entry_point: p.entryPoint }),
  };
  return system ? [{ role: "system", content: system }, user] : [user];
}

/** The system message in effect: validate.system_prompt, else emit-sft's. */
export function systemPromptOf(cfg: ValidateConfig, root: Record<string, any>): string | undefined {
  const s = cfg.system_prompt ?? root["emit-sft"]?.system_prompt;
  return typeof s === "string" && s !== "" ? s : undefined;
}

/** Assemble a model's result on one set from its per-run files. */
export function assembleSet(
  set: LoadedSet,
  runs: RunFile[],
  boot: { samples: number; seed: number },
): ModelResult["sets"][string] {
  const byTask = new Map<string, ProblemResult>();
  const runTallies: ProblemTally[][] = [];
  const all: TestRecord[] = [];
  for (const rf of runs) {
    const tallies: ProblemTally[] = [];
    for (const p of rf.problems) {
      tallies.push(tallyProblem(p.taskId, p.tests));
      const cur = byTask.get(p.taskId) ?? { taskId: p.taskId, entryPoint: p.entryPoint, tests: [] };
      cur.tests.push(...p.tests);
      byTask.set(p.taskId, cur);
      all.push(...p.tests);
    }
    runTallies.push(tallies);
  }
  const summary = summarize(
    runTallies,
    { validInputs: all.filter((t) => t.goldValid).length, failures: failureReasons(all) },
    boot,
  );
  const problems = set.problems.map((p) => byTask.get(p.taskId)!).filter(Boolean);
  return {
    set: set.name,
    source: set.source,
    ...(set.scoring === "he" ? { scoring: "he" as const } : {}),
    summary,
    tallies: problems.map((p) => tallyProblem(p.taskId, p.tests)),
    problems,
  };
}

export const validateStage: CommandStage<ValidateConfig> = {
  kind: "command",
  name: "validate",
  description: "score checkpoints and baselines: attack rate, output accuracy, Acc∩Attack (with bootstrap CIs)",
  configSchema: validateConfigSchema,
  after: ["train"],
  flags: {
    checkpoint: { type: "string", help: "validate only this checkpoint (or model) name" },
    "report-only": { type: "boolean", help: "rebuild summary.md and report.html from stored results; no model calls" },
  },
  async run(ctx: CommandContext<ValidateConfig>): Promise<number> {
    const cfg = validateConfigSchema.parse(ctx.config ?? {});
    const stageDir = ctx.stageDir;
    const boot = cfg.bootstrap;
    const settings = { n: cfg.n, runs: cfg.runs, temperature: cfg.temperature, top_p: cfg.top_p, max_tokens: cfg.max_tokens };
    const allModels = await resolveModels(cfg, ctx.root, ctx.runDir, (m) => ctx.log.warn(m));
    const only = typeof ctx.flags.checkpoint === "string" ? ctx.flags.checkpoint : undefined;
    if (only && !allModels.some((m) => m.name === only))
      throw new UserError(
        `--checkpoint ${only} is not among the configured models (${allModels.map((m) => m.name).join(", ")})`,
      );
    const reportOnly = ctx.flags["report-only"] === true;
    // The runner's global --limit N caps the problems per set too (validate.limit wins when set).
    const flagLimit = ctx.flags.limit === undefined ? undefined : Number(ctx.flags.limit);
    const limit = cfg.limit ?? (flagLimit && Number.isInteger(flagLimit) && flagLimit > 0 ? flagLimit : undefined);
    const targets = reportOnly ? [] : allModels.filter((m) => !only || m.name === only);

    if (targets.length) {
      const sets: LoadedSet[] = await loadSets(cfg.sets, { runDir: ctx.runDir, limit, cacheDir: ctx.cacheDir });
      const execCfg = executorConfigSchema.parse(ctx.root.executor ?? {});
      const semantics = Object.fromEntries(
        Object.entries(execCfg).filter(([k]) => /timeout|calibrat|memory/.test(k)),
      );
      const templates = new Map<string, Awaited<ReturnType<typeof loadTemplate>>>();
      for (const m of targets) if (!templates.has(m.template)) templates.set(m.template, await loadTemplate(m.template as any));
      const sampling = { temperature: cfg.temperature, top_p: cfg.top_p, max_tokens: cfg.max_tokens, stop: cfg.stop, extra: cfg.extra_body };
      // Root/stage llm settings that still reach the request (seed, extra_body) join the key too.
      const stageLlm = await llmConfigForStage(ctx.root, "validate");
      const llmExtra = { seed: stageLlm.seed, extra_body: stageLlm.extra_body };

      // Plan: every (model, set, run) result's key; compute only the missing ones.
      const planned = new Map<string, Map<string, RunSlot[]>>();
      const jobs: Job[] = [];
      let reused = 0;
      for (const m of targets) {
        const adapterFp = (await servedByHeuristic(m))
          ? heuristicFingerprint(await heuristicModelOf(m))
          : m.kind === "checkpoint" && m.path
            ? await adapterFingerprint(m.path)
            : undefined;
        const perSet = new Map<string, RunSlot[]>();
        planned.set(m.name, perSet);
        for (const set of sets) {
          const slots: RunSlot[] = [];
          for (let run = 0; run < cfg.runs; run++) {
            const key = hashValue({
              v: VALIDATE_VERSION,
              model: m.requestModel,
              adapter: adapterFp,
              template: templates.get(m.template)!.hash,
              set: set.hash,
              scoring: set.scoring,
              run,
              n: cfg.n,
              sampling,
              llm: llmExtra,
              system: systemPromptOf(cfg, ctx.root),
              semantics,
            });
            slots.push({ run, key, file: runFilePath(stageDir, m.name, set.name, run, key) });
          }
          perSet.set(set.name, slots);
          const missing: RunSlot[] = [];
          for (const sl of slots) if (await exists(sl.file)) reused++; else missing.push(sl);
          if (missing.length) jobs.push({ model: m, set, runs: missing, adapterFp });
        }
      }
      ctx.counters.add("results_reused", reused);
      const toCompute = jobs.reduce((a, j) => a + j.runs.length, 0);
      ctx.counters.add("results_computed", toCompute);
      if (jobs.length) {
        ctx.log.info(`validate: ${toCompute} (model, set, run) results to compute, ${reused} reused`);
        const byHeuristic: Job[] = [];
        const byServer: Job[] = [];
        for (const j of jobs) ((await servedByHeuristic(j.model)) ? byHeuristic : byServer).push(j);
        if (byHeuristic.length) await computeHeuristicJobs(ctx, cfg, byHeuristic, execCfg);
        if (byServer.length) await computeJobs(ctx, cfg, byServer, templates, sampling, execCfg);
      } else ctx.log.info(`validate: all ${reused} (model, set, run) results reused; no model calls`);

      for (const m of targets) {
        const result: ModelResult = { model: m, settings, sets: {} };
        for (const set of sets) {
          const runs: RunFile[] = [];
          for (const sl of planned.get(m.name)!.get(set.name)!) {
            const rf = await readJson<RunFile>(sl.file);
            if (!rf) throw new Error(`validate: missing result file ${sl.file}`);
            runs.push(rf);
          }
          result.sets[set.name] = assembleSet(set, runs, boot);
        }
        await writeJson(path.join(stageDir, `${safeName(m.name)}.json`), result);
      }
    }

    // Report over every configured model that has results.
    const results: ModelResult[] = [];
    for (const m of allModels) {
      const r = await readJson<ModelResult>(path.join(stageDir, `${safeName(m.name)}.json`));
      if (r) results.push(r);
    }
    if (results.length === 0) throw new UserError(`no validation results under ${stageDir}: run validate without --report-only first`);
    await atomicWrite(path.join(stageDir, "summary.md"), renderMarkdown(results, { bootstrapSamples: boot.samples, seed: boot.seed }));
    await atomicWrite(path.join(stageDir, "report.html"), renderHtml(results, { bootstrapSamples: boot.samples, seed: boot.seed }));
    for (const r of results)
      for (const [set, s] of Object.entries(r.sets))
        ctx.stdout(
          `${r.model.name}\t${set}\tattack ${pct(s.summary.metrics.attack.value)}\toutput ${pct(s.summary.metrics.outputCorrect.value)}\tacc∩attack ${pct(s.summary.metrics.both.value)}`,
        );
    ctx.stdout(`wrote ${path.join(stageDir, "summary.md")} and ${path.join(stageDir, "report.html")}`);
    return 0;
  },
};

type Template = Awaited<ReturnType<typeof loadTemplate>>;

/** Start (or check) the model server, then sample, execute and store every missing (model, set, run). */
async function computeJobs(
  ctx: CommandContext<ValidateConfig>,
  cfg: ValidateConfig,
  jobs: Job[],
  templates: Map<string, Template>,
  sampling: { temperature: number; top_p: number; max_tokens: number; stop?: string[]; extra: Record<string, unknown> },
  execCfg: ReturnType<typeof executorConfigSchema.parse>,
): Promise<void> {
  const adapters: Adapter[] = [];
  for (const j of jobs)
    if (j.model.kind === "checkpoint" && j.model.path && !adapters.some((a) => a.name === j.model.name))
      adapters.push({ name: j.model.name, path: j.model.path });
  const baseModel = jobs.find((j) => j.model.kind === "baseline")?.model.requestModel ?? cfg.base_model;
  let server: RunningServer | undefined;
  if (cfg.server.command)
    server = await startServer(cfg.server, adapters, {
      logFile: path.join(ctx.stageDir, "server.log"),
      baseModel,
      log: (m) => ctx.log.info(m),
      signal: ctx.signal,
    });
  else await ensureAdapters(cfg.server, adapters);
  const stageLlm = await llmConfigForStage(ctx.root, "validate");
  const llm = createLlmClient(
    llmConfigSchema.parse({
      ...stageLlm,
      backend: "openai",
      base_urls: [cfg.server.base_url],
      model: baseModel ?? jobs[0].model.requestModel,
    }),
    { cacheDir: ctx.cacheDir, stage: "validate", log: (m) => ctx.log.info(m) },
  );
  try {
    const executor = await ctx.getExecutor();
    const deps = {
      executor,
      goldTimeoutS: execCfg.gold_timeout_s,
      buggyTimeout: (goldMs: number) => buggyTimeoutFor(goldMs, execCfg),
    };
    const queue = new PQueue({ concurrency: cfg.concurrency });
    const system = systemPromptOf(cfg, ctx.root);
    // All jobs share one queue, so the server sees requests for several adapters at once.
    const runJob = async (job: Job) => {
      const tpl = templates.get(job.model.template)!;
      const maxRun = Math.max(...job.runs.map((r) => r.run));
      const wanted = new Set(job.runs.map((r) => r.run));
      const perProblem = await Promise.all(
        job.set.problems.map((p) =>
          queue.add(async () => {
            if (ctx.signal.aborted) throw new UserError("validation interrupted");
            const res = await llm.chat({
              messages: messagesFor(tpl, p, system),
              n: cfg.n * (maxRun + 1),
              sampling,
              templateHash: job.adapterFp ? hashValue({ template: tpl.hash, adapter: job.adapterFp }) : tpl.hash,
              model: job.model.requestModel,
            });
            const responses: Response[] = [];
            res.texts.forEach((text, i) => {
              const run = Math.floor(i / cfg.n);
              if (wanted.has(run)) responses.push({ run, sample: i % cfg.n, text, finishReason: res.finishReasons[i] });
            });
            const recs = await evaluateProblem(deps, p, responses, job.set.scoring);
            ctx.counters.add("tests", recs.length);
            return { p, recs };
          }),
        ),
      );
      for (const slot of job.runs) {
        const rf: RunFile = {
          v: VALIDATE_VERSION,
          key: slot.key,
          model: job.model.name,
          set: job.set.name,
          run: slot.run,
          problems: perProblem.map(({ p, recs }) => ({
            taskId: p.taskId,
            entryPoint: p.entryPoint,
            tests: recs.filter((r) => r.run === slot.run),
          })),
        };
        await writeJson(slot.file, rf);
      }
      ctx.log.info(`validate: ${job.model.name} on ${job.set.name}: ${job.runs.length} run(s) done`);
    };
    try {
      await Promise.all(jobs.map(runJob));
    } catch (e) {
      queue.clear();
      await queue.onIdle();
      throw e;
    }
  } finally {
    const st = llm.stats();
    ctx.counters.add("llm_requests", st.requests);
    ctx.counters.add("llm_cached_samples", st.cacheHits);
    await llm.close();
    await server?.stop();
  }
}

/** A baseline on the base model `heuristic`, or a heuristic demo checkpoint: no server needed. */
async function servedByHeuristic(m: ModelInfo): Promise<boolean> {
  if (m.kind === "baseline") return m.requestModel === "heuristic";
  return m.kind === "checkpoint" && !!m.path && (await isHeuristicCheckpoint(m.path));
}

/** computeJobs for the heuristic models: no server, no model calls; the heuristic generator answers. */
async function computeHeuristicJobs(
  ctx: CommandContext<ValidateConfig>,
  cfg: ValidateConfig,
  jobs: Job[],
  execCfg: ReturnType<typeof executorConfigSchema.parse>,
): Promise<void> {
  const executor = await ctx.getExecutor();
  const deps = { executor, goldTimeoutS: execCfg.gold_timeout_s, buggyTimeout: (goldMs: number) => buggyTimeoutFor(goldMs, execCfg) };
  const queue = new PQueue({ concurrency: cfg.concurrency });
  for (const job of jobs) {
    const model: HeuristicModel = await heuristicModelOf(job.model);
    const maxRun = Math.max(...job.runs.map((r) => r.run));
    const wanted = new Set(job.runs.map((r) => r.run));
    const perProblem = await Promise.all(
      job.set.problems.map((p) =>
        queue.add(async () => {
          if (ctx.signal.aborted) throw new UserError("validation interrupted");
          const texts = await heuristicResponses({ executor, timeoutS: execCfg.buggy_timeout_s }, model, job.model.name, p, cfg.n * (maxRun + 1), cfg.n);
          const responses: Response[] = [];
          texts.forEach((text, i) => {
            const run = Math.floor(i / cfg.n);
            if (wanted.has(run)) responses.push({ run, sample: i % cfg.n, text, finishReason: "stop" });
          });
          const recs = await evaluateProblem(deps, p, responses);
          ctx.counters.add("tests", recs.length);
          return { p, recs };
        }),
      ),
    );
    for (const slot of job.runs) {
      const rf: RunFile = {
        v: VALIDATE_VERSION,
        key: slot.key,
        model: job.model.name,
        set: job.set.name,
        run: slot.run,
        problems: perProblem.map(({ p, recs }) => ({ taskId: p.taskId, entryPoint: p.entryPoint, tests: recs.filter((r) => r.run === slot.run) })),
      };
      await writeJson(slot.file, rf);
    }
    ctx.log.info(`validate: ${job.model.name} on ${job.set.name}: ${job.runs.length} run(s) done (heuristic generator, no model)`);
  }
}
