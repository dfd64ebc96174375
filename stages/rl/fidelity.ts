/**
 * `rl-fidelity`: unit-test fidelity (seed 002 §4.1, App. A.4) — how closely a generated unit test reproduces
 * the code evaluation of the ground-truth unit test. Per task, the code samples of every code model (the paper:
 * 32 each from four models, 128 codes) are scored twice — the share of the generated unit test's cases they
 * pass, and the share of ground-truth cases — and Spearman's ρ of the two score vectors is taken (ties get
 * average ranks). Fidelity is ρ averaged over tasks, with a 95% bootstrap interval over tasks. Where either
 * vector is constant ρ is undefined; those tasks are left out of the mean and counted (scipy's spearmanr gives
 * NaN there), or — `constant: zero` — counted as ρ = 0. Writes `<run>/rl-fidelity/report.md` and
 * `summary.json`; with `--json` the last stdout line is the summary (one row per UT model).
 */
import { z } from "zod";
import type { CommandContext, CommandStage } from "../../pipeline/stage.ts";
import { evalConfigSchema, evaluatePairs, pairKey, writeReport, type PairResult } from "./evaluate.ts";
import { spearman } from "./rewards.ts";
import { bootstrapMean, type MeanCI } from "./stats.ts";

export const fidelityConfigSchema = evalConfigSchema.extend({
  /** Tasks whose score vectors are constant: `skip` (left out, counted) or `zero` (ρ = 0). */
  constant: z.enum(["skip", "zero"]).default("skip"),
});
export type FidelityConfig = z.infer<typeof fidelityConfigSchema>;

export interface FidelityRow {
  ut_model: string;
  code_models: string[];
  tasks: number;
  codes_per_task: number;
  fidelity: MeanCI;
  /** Tasks in the mean, and tasks with an undefined ρ (constant vectors). */
  defined: number;
  undefined_rho: number;
}

/** ρ of one task from the per-code-model results of one UT model (codes concatenated in code-model order). */
export function taskRho(parts: PairResult[]): number | null {
  const gen: number[] = [];
  const gt: number[] = [];
  for (const r of parts) {
    r.gen_passed.forEach((p) => gen.push(r.cases ? p / r.cases : 0));
    r.gt_passed.forEach((p) => gt.push(r.gt_total ? p / r.gt_total : 0));
  }
  return spearman(gen, gt);
}

export function fidelityRow(ut: string, codeModels: string[], perModel: PairResult[][], constant: "skip" | "zero", boot: { samples: number; seed: number }): FidelityRow {
  const tasks = perModel[0]?.length ?? 0;
  const rhos: number[] = [];
  let undef = 0;
  for (let i = 0; i < tasks; i++) {
    const rho = taskRho(perModel.map((l) => l[i]));
    if (rho === null) {
      undef++;
      if (constant === "zero") rhos.push(0);
    } else rhos.push(rho);
  }
  return {
    ut_model: ut,
    code_models: codeModels,
    tasks,
    codes_per_task: perModel.reduce((a, l) => a + (l[0]?.gen_passed.length ?? 0), 0),
    fidelity: bootstrapMean(rhos, boot),
    defined: tasks - undef,
    undefined_rho: undef,
  };
}

export function renderFidelityMd(rows: FidelityRow[], meta: { file: string; constant: string; skipped: Record<string, number>; boot: { samples: number; seed: number } }): string {
  const lines = [
    "## UTRL unit-test fidelity",
    "",
    `${rows[0]?.tasks ?? 0} tasks from ${meta.file}; ${rows[0]?.codes_per_task ?? 0} code samples per task from ${rows[0]?.code_models.join(", ") ?? ""}.`,
    `Spearman's ρ between the generated-UT and the ground-truth-UT code scores, per task, averaged; tasks with a constant score vector: ${meta.constant === "skip" ? "left out (counted)" : "ρ = 0"}. 95% bootstrap intervals over tasks (${meta.boot.samples} resamples, seed ${meta.boot.seed}).`,
    "",
    "| UT model | fidelity (mean ρ) | 95% CI | tasks in the mean | undefined ρ |",
    "|---|---:|---|---:|---:|",
  ];
  for (const r of rows) lines.push(`| ${r.ut_model} | ${r.fidelity.mean.toFixed(3)} | [${r.fidelity.lo.toFixed(3)}, ${r.fidelity.hi.toFixed(3)}] | ${r.defined} | ${r.undefined_rho} |`);
  return lines.join("\n") + "\n";
}

export const rlFidelityStage: CommandStage<FidelityConfig> = {
  kind: "command",
  name: "rl-fidelity",
  description: "unit-test fidelity: Spearman of generated-UT vs GT-UT code scores, per task, averaged",
  configSchema: fidelityConfigSchema,
  after: ["rl-tasks"],
  flags: { json: { type: "boolean", help: "print the summary as one JSON object (last stdout line)" } },
  async run(ctx: CommandContext<FidelityConfig>): Promise<number> {
    const cfg = fidelityConfigSchema.parse(ctx.config ?? {});
    const ev = await evaluatePairs(ctx, cfg);
    const rows = ev.utModels.map((ut) => fidelityRow(ut, ev.codeModels, ev.codeModels.map((c) => ev.pairs.get(pairKey(ut, c))!), cfg.constant, cfg.bootstrap));
    const md = renderFidelityMd(rows, { file: cfg.tasks ?? "rl-tasks/test.jsonl", constant: cfg.constant, skipped: ev.skipped, boot: cfg.bootstrap });
    const report = await writeReport(ctx, md, { stage: "rl-fidelity", tasks: ev.tasks.length, skipped: ev.skipped, constant: cfg.constant, rows });
    if (ctx.flags.json === true) {
      ctx.stdout(JSON.stringify({ tasks: ev.tasks.length, rows: rows.map((r) => ({ ut_model: r.ut_model, fidelity: r.fidelity.mean, lo: r.fidelity.lo, hi: r.fidelity.hi, defined: r.defined, undefined_rho: r.undefined_rho })) }));
      return 0;
    }
    for (const l of md.trim().split("\n")) ctx.stdout(l);
    ctx.stdout(`wrote ${report}`);
    return 0;
  },
};
