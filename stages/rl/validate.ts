/**
 * `rl-validate --phase k`: the validation metric between UTRL phases (App. A.3) for every checkpoint of a
 * phase and for its starting model — on the held-out tasks, with the same rewards as training:
 *   tester phase: one unit test per task from the checkpoint, scored λ·R_disc + (1 − λ)·R_valid against the
 *                 phase's validation codes (sampled from the current coder by rl-rollouts);
 *   coder phase:  one program per task from the checkpoint, scored by the share of the current tester's
 *                 valid cases it passes (Eq. 4).
 * Results: `<run>/rl-validate/<phase>/<model>.json` (per task, mean with a bootstrap 95% CI), `summary.md`.
 * `select` with `select.source: rl-validate` picks the phase's best checkpoint from them. Each result is
 * stored under a content key (checkpoint identity, validation data, sampling, reward settings), so a new
 * checkpoint computes only itself and an unchanged re-run samples and executes nothing.
 */
import * as path from "node:path";
import { z } from "zod";
import { UserError } from "../../pipeline/errors.ts";
import type { CommandContext, CommandStage } from "../../pipeline/stage.ts";
import { atomicWrite, exists, hashValue, readJson, readJsonlAll, writeJson } from "../../pipeline/util.ts";
import { CheckpointRegistry } from "../../trainers/registry.ts";
import { phaseOf, resolveUtrlPlan, type PhasePlan, type UtrlPlan } from "../../trainers/utrl.ts";
import { parseRlConfig, rlSemantics } from "./config.ts";
import { parseRewardRow } from "./cases.ts";
import { RewardEngine } from "./engine.ts";
import { folderIdentity, sampleAll, targetOf, withModels, type ModelTarget } from "./sampling.ts";
import { bootstrapMean, type MeanCI } from "./stats.ts";
import { phaseRegistry } from "./utrl.ts";

export const RL_VALIDATE_VERSION = "1";

export const rlValidateConfigSchema = z.strictObject({
  /** Held-out tasks to score (App. A.3: 1,000); null: every task of the phase's validation data. */
  tasks: z.int().positive().nullable().default(null),
  /** Sampling of the checkpoints (default: utrl.sampling). */
  temperature: z.number().min(0).optional(),
  bootstrap: z.strictObject({ samples: z.int().positive().default(1000), seed: z.int().default(0) }).default({ samples: 1000, seed: 0 }),
  /** Also score the phase's starting model (step 0), the reference the checkpoints should beat. */
  include_start: z.boolean().default(true),
  concurrency: z.int().positive().default(64),
});
export type RlValidateConfig = z.infer<typeof rlValidateConfigSchema>;

export interface RlValidation {
  v: string;
  key: string;
  phase: string;
  role: "tester" | "coder";
  model: string;
  step: number;
  path: string | null;
  /** Per task: the score (tester: λ-mix reward; coder: code reward) and the parts. */
  tasks: { id: string; score: number; r_disc?: number; r_valid?: number; status?: string }[];
  summary: MeanCI & { tasks: number; mean_disc?: number; mean_valid?: number; failed_samples: number };
}

export const safeName = (n: string) => n.replace(/[^A-Za-z0-9._-]+/g, "_");
export const resultDir = (runDir: string, phase: string) => path.join(runDir, "rl-validate", phase);

interface Candidate {
  name: string;
  step: number;
  path: string | null;
  target: ModelTarget;
}

async function candidates(p: UtrlPlan, ph: PhasePlan, includeStart: boolean): Promise<Candidate[]> {
  const out: Candidate[] = [];
  if (includeStart) out.push({ name: `${ph.name}-start`, step: 0, path: ph.init.adapter ?? null, target: await targetOf(ph.init, `${ph.name}-start`) });
  // Register what the output folder holds (a multi-node phase is not supervised by `utrl --phase`).
  await new CheckpointRegistry(path.join(ph.trainDir, "checkpoints.json"), ph.name, ph.init.base, undefined, p.method === "lora").sync(ph.outputDir);
  const reg = await phaseRegistry(p.runDir, ph.name);
  for (const c of reg?.checkpoints ?? []) {
    const target: ModelTarget =
      p.method === "lora"
        ? { request: c.name, base: ph.init.base, adapters: [{ name: c.name, path: c.path }], identity: { base: ph.init.base, adapter: await folderIdentity(c.path) } }
        : { request: c.path, base: c.path, adapters: [], identity: { model: await folderIdentity(c.path) } };
    out.push({ name: c.name, step: c.step, path: c.path, target });
  }
  return out;
}

/** Score one candidate's samples on the validation rows (one sandbox batch). */
async function score(engine: RewardEngine, ph: PhasePlan, rows: any[], samples: { texts: string[]; finishReasons: string[]; error?: string }[], boot: { samples: number; seed: number }) {
  const reward = rows.map((r, i) => {
    const s = samples[i];
    const text = s.error ? "" : s.texts[0] ?? "";
    return ph.role === "tester"
      ? parseRewardRow({ id: r.task_id, kind: r.kind, gt_code: r.gt_code, entry_point: r.entry_point, ut_text: text, finish_reason: s.finishReasons[0] ?? null, codes: r.codes }, `valid ${r.task_id}`)
      : parseRewardRow({ id: r.task_id, kind: r.kind, gt_code: r.gt_code, entry_point: r.entry_point, ut_text: r.ut_text, finish_reason: r.finish_reason ?? null, cases: r.ut_text == null ? r.cases : undefined, code_texts: [text] }, `valid ${r.task_id}`);
  });
  const res = await engine.score(reward);
  const tasks = res.map((r) => (ph.role === "tester" ? { id: r.id, score: r.reward, r_disc: r.r_disc, r_valid: r.r_valid, status: r.status } : { id: r.id, score: r.code_rewards[0] ?? 0 }));
  const ci = bootstrapMean(tasks.map((t) => t.score), boot);
  const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
  return {
    tasks,
    summary: {
      ...ci,
      tasks: tasks.length,
      failed_samples: samples.filter((s) => s.error).length,
      ...(ph.role === "tester" ? { mean_disc: mean(tasks.map((t) => t.r_disc ?? 0)), mean_valid: mean(tasks.map((t) => t.r_valid ?? 0)) } : {}),
    },
  };
}

export function renderValidationMd(ph: PhasePlan, results: RlValidation[], selected?: string): string {
  const f = (x: number) => x.toFixed(4);
  const metric = ph.role === "tester" ? "λ·R_disc + (1−λ)·R_valid" : "code reward (share of valid cases passed)";
  const lines = [`## UTRL validation — ${ph.name} (${ph.role})`, "", `Metric: ${metric}, mean over ${results[0]?.summary.tasks ?? 0} held-out tasks, 95% bootstrap CI over tasks.`, ""];
  lines.push(ph.role === "tester" ? "| model | step | reward | 95% CI | R_disc | R_valid |" : "| model | step | code reward | 95% CI |", ph.role === "tester" ? "|---|---:|---:|---|---:|---:|" : "|---|---:|---:|---|");
  for (const r of [...results].sort((a, b) => a.step - b.step)) {
    const name = r.model === selected ? `${r.model} ★` : r.model;
    const base = `| ${name} | ${r.step} | ${f(r.summary.mean)} | [${f(r.summary.lo)}, ${f(r.summary.hi)}]`;
    lines.push(ph.role === "tester" ? `${base} | ${f(r.summary.mean_disc ?? 0)} | ${f(r.summary.mean_valid ?? 0)} |` : `${base} |`);
  }
  return lines.join("\n") + "\n";
}

export const rlValidateStage: CommandStage<RlValidateConfig> = {
  kind: "command",
  name: "rl-validate",
  description: "UTRL validation between phases: λ-weighted reward of a phase's checkpoints on held-out tasks",
  configSchema: rlValidateConfigSchema,
  after: ["utrl"],
  flags: { phase: { type: "string", help: "the schedule phase (1-based index or name)" } },
  async run(ctx: CommandContext<RlValidateConfig>): Promise<number> {
    const cfg = rlValidateConfigSchema.parse(ctx.config ?? {});
    if (ctx.flags.phase === undefined) throw new UserError("rl-validate needs --phase <k> (a phase of utrl.schedule)");
    const p = resolveUtrlPlan(ctx.root.utrl, ctx.runDir);
    const ph = phaseOf(p, ctx.flags.phase);
    const rl = parseRlConfig(ctx.root.rl);
    if (!(await exists(ph.validData))) throw new UserError(`${ph.validData} is missing: run --stage rl-rollouts --phase ${ph.index} first (it samples the validation data)`);
    let rows = await readJsonlAll<any>(ph.validData);
    if (cfg.tasks !== null) rows = rows.slice(0, cfg.tasks);
    if (!rows.length) throw new UserError(`${ph.validData} has no rows: rl-tasks.valid_tasks must be > 0 for validation between phases`);
    const cands = await candidates(p, ph, cfg.include_start);
    if (cands.length <= (cfg.include_start ? 1 : 0)) ctx.log.warn(`rl-validate: phase ${ph.name} has no registered checkpoint yet (train/${ph.name}/checkpoints.json)`);
    const sampling = { ...p.cfg.sampling, ...(cfg.temperature !== undefined ? { temperature: cfg.temperature } : {}), extra: p.cfg.sampling.extra_body };
    const dir = resultDir(ctx.runDir, ph.name);
    const dataKey = hashValue(rows);
    const keyOf = (c: Candidate) => hashValue({ v: RL_VALIDATE_VERSION, model: c.target.identity, data: dataKey, sampling, rl: rlSemantics(rl), role: ph.role, boot: cfg.bootstrap }).slice(0, 16);
    const todo: Candidate[] = [];
    for (const c of cands) {
      const prev = await readJson<RlValidation>(path.join(dir, `${safeName(c.name)}.json`));
      if (prev?.key !== keyOf(c)) todo.push(c);
    }
    ctx.counters.add("results_reused", cands.length - todo.length);
    if (todo.length) {
      const engine = new RewardEngine(await ctx.getExecutor(), rl);
      const prompts = rows.map((r) => r.prompt);
      const score1 = async (c: Candidate, llm: Parameters<typeof sampleAll>[1]) => {
        const samples = await sampleAll(ctx, llm, c.target, prompts, 1, sampling, hashValue(prompts), cfg.concurrency);
        const s = await score(engine, ph, rows, samples, cfg.bootstrap);
        const out: RlValidation = { v: RL_VALIDATE_VERSION, key: keyOf(c), phase: ph.name, role: ph.role, model: c.name, step: c.step, path: c.path, ...s };
        await writeJson(path.join(dir, `${safeName(c.name)}.json`), out);
        ctx.log.info(`rl-validate: ${c.name} (step ${c.step}): ${s.summary.mean.toFixed(4)}`);
      };
      // LoRA checkpoints share one server (adapters by name); full checkpoints are served one at a time.
      const groups = new Map<string, Candidate[]>();
      for (const c of todo) groups.set(c.target.base, [...(groups.get(c.target.base) ?? []), c]);
      for (const group of groups.values())
        await withModels(ctx, p.cfg.server, group.map((c) => c.target), async (llm) => {
          for (const c of group) await score1(c, llm);
        });
    }
    const results: RlValidation[] = [];
    for (const c of cands) {
      const r = await readJson<RlValidation>(path.join(dir, `${safeName(c.name)}.json`));
      if (r) results.push(r);
    }
    const sel = await readJson<{ best?: { name: string } }>(path.join(dir, "selection.json"));
    await atomicWrite(path.join(dir, "summary.md"), renderValidationMd(ph, results, sel?.best?.name));
    for (const r of results.sort((a, b) => a.step - b.step)) ctx.stdout(`${r.model}\tstep ${r.step}\t${ph.role === "tester" ? "reward" : "code reward"} ${r.summary.mean.toFixed(4)} [${r.summary.lo.toFixed(4)}, ${r.summary.hi.toFixed(4)}]`);
    ctx.stdout(`wrote ${path.join(dir, "summary.md")}; next: --stage select --set select.train=${ph.name} --set select.source=rl-validate`);
    return 0;
  },
};
