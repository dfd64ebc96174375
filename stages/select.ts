/**
 * `select`: picks the best checkpoint of a training run from the validate results — highest Acc∩Attack on
 * the selection set, ties broken by output accuracy, then attack rate, then the earlier step — writes
 * `<runDir>/validate/selection.json` (reason, ranking, runner-up margin with a paired bootstrap interval and
 * whether the margin is inside it, baselines for reference), points the relative symlink
 * `<runDir>/train/<name>/best` at the chosen checkpoint folder, and re-renders summary.md / report.html
 * with the choice marked.
 */
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { randomBytes } from "node:crypto";
import { z } from "zod";
import type { CommandContext, CommandStage } from "../pipeline/stage.ts";
import { UserError } from "../pipeline/errors.ts";
import { atomicWrite, readJson, writeJson } from "../pipeline/util.ts";
import { defaultTrainName, readRegistry, safeName, validateConfigSchema } from "./validate.ts";
import { renderHtml, renderMarkdown, type ModelResult } from "./validation/report.ts";
import { selectBest, type Scored } from "./validation/selection.ts";

export const selectConfigSchema = z.strictObject({
  /** Validation set to select on (default: the first of validate.sets — prefer the held-out split). */
  set: z.string().min(1).optional(),
  /** Train name whose checkpoints compete (default: validate.checkpoints_from; UTRL: the phase name). */
  train: z.string().min(1).optional(),
  /**
   * Results to select on: `validate` (UTGen: Acc∩Attack) or `rl-validate` (UTRL: a phase's validation
   * metric, the λ-weighted reward on held-out tasks; stages/rl/select.ts).
   */
  source: z.enum(["validate", "rl-validate"]).default("validate"),
});
export type SelectConfig = z.infer<typeof selectConfigSchema>;

/** Point `link` at `target` with a relative symlink, replacing an existing link atomically. */
export async function pointLink(link: string, target: string): Promise<string> {
  const rel = path.relative(path.dirname(link), target) || ".";
  const st = await fsp.lstat(link).catch(() => undefined);
  if (st && !st.isSymbolicLink())
    throw new UserError(`${link} exists and is not a symlink: move it away so select can point it at the best checkpoint`);
  const tmp = `${link}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
  await fsp.symlink(rel, tmp);
  await fsp.rename(tmp, link);
  return rel;
}

const metricsOf = (s: Scored) => ({
  acc_attack: s.both,
  output_accuracy: s.outputCorrect,
  attack_rate: s.attack,
});

export const selectStage: CommandStage<SelectConfig> = {
  kind: "command",
  name: "select",
  description: "pick the best checkpoint (Acc∩Attack, or UTRL's validation reward); write selection.json and the best link",
  configSchema: selectConfigSchema,
  after: ["validate"],
  async run(ctx: CommandContext<SelectConfig>): Promise<number> {
    const cfg = selectConfigSchema.parse(ctx.config ?? {});
    if (cfg.source === "rl-validate") {
      const { selectRl } = await import("./rl/select.ts");
      return selectRl(ctx, { train: cfg.train, bootstrap: ctx.root["rl-validate"]?.bootstrap });
    }
    const vcfg = validateConfigSchema.parse(ctx.root.validate ?? {});
    const trainName = cfg.train ?? defaultTrainName(vcfg, ctx.root);
    if (!trainName)
      throw new UserError("select needs a training run: set validate.checkpoints_from (or select.train, or train.name) to the train name");
    const setName = cfg.set ?? vcfg.sets[0].name;
    const reg = await readRegistry(ctx.runDir, trainName);
    const validateDir = path.join(ctx.runDir, "validate");
    const candidates = [];
    const missing: string[] = [];
    for (const c of reg.checkpoints) {
      const r = await readJson<ModelResult>(path.join(validateDir, `${safeName(c.name)}.json`));
      const s = r?.sets[setName];
      if (!r || !s) {
        missing.push(c.name);
        continue;
      }
      candidates.push({ name: c.name, step: typeof c.step === "number" ? c.step : null, tallies: s.tallies, ci: s.summary.metrics, result: r, ck: c });
    }
    if (candidates.length === 0)
      throw new UserError(
        `no validation results on set "${setName}" for the checkpoints of ${trainName}: run validate first (or set select.set to a validated set)`,
      );
    if (missing.length) ctx.log.warn(`select: ${missing.length} checkpoint(s) not validated on ${setName} and left out: ${missing.join(", ")}`);
    const settings = new Set(candidates.map((c) => JSON.stringify(c.result.settings)));
    if (settings.size > 1) ctx.log.warn("select: checkpoints were validated with different settings (n, runs, sampling); re-run validate for a fair comparison");

    const sel = selectBest(candidates, vcfg.bootstrap);
    const chosen = candidates.find((c) => c.name === sel.best.name)!;
    const baselines = [];
    for (const b of vcfg.baselines) {
      const r = await readJson<ModelResult>(path.join(validateDir, `${safeName(`baseline-${b}`)}.json`));
      const s = r?.sets[setName]?.summary;
      if (s)
        baselines.push({
          name: `baseline-${b}`,
          acc_attack: s.metrics.both.value,
          output_accuracy: s.metrics.outputCorrect.value,
          attack_rate: s.metrics.attack.value,
          best_minus_baseline_acc_attack: sel.best.both - s.metrics.both.value,
        });
    }
    const linkPath = path.join(ctx.runDir, "train", trainName, "best");
    if (!(await fsp.stat(chosen.ck.path).catch(() => undefined)))
      throw new UserError(`chosen checkpoint folder ${chosen.ck.path} does not exist: check the registry ${trainName}/checkpoints.json`);
    const rel = await pointLink(linkPath, chosen.ck.path);
    const selection = {
      train_name: trainName,
      set: setName,
      rule: "max Acc∩Attack; ties: output accuracy, then attack rate, then the earlier step",
      best: {
        name: chosen.name,
        step: chosen.step,
        epoch: chosen.ck.epoch ?? null,
        path: chosen.ck.path,
        ...metricsOf(sel.best),
        ci: chosen.ci,
      },
      runner_up: sel.runnerUp ? { name: sel.runnerUp.name, step: sel.runnerUp.step, ...metricsOf(sel.runnerUp) } : null,
      decided_by: sel.decidedBy,
      margin: sel.margin
        ? {
            metric: "acc_attack",
            value: sel.margin.value,
            paired_ci_95: sel.margin.ci,
            inside_ci: sel.margin.withinCi,
            note: sel.margin.withinCi
              ? "the runner-up's difference is inside the 95% confidence interval: the choice is within noise"
              : "the margin is outside the 95% confidence interval",
          }
        : null,
      reason: sel.reason,
      ranking: sel.ranking.map((s) => ({ name: s.name, step: s.step, ...metricsOf(s) })),
      baselines,
      not_validated: missing,
      settings: chosen.result.settings,
      best_link: { path: linkPath, target: rel },
      selected_at: new Date().toISOString(),
    };
    await writeJson(path.join(validateDir, "selection.json"), selection);
    // Re-render the reports with the choice marked (every configured model that has results).
    const results: ModelResult[] = [];
    const names = new Set([...vcfg.baselines.map((b) => `baseline-${b}`), ...reg.checkpoints.map((c) => c.name), ...vcfg.models]);
    for (const name of names) {
      const r = await readJson<ModelResult>(path.join(validateDir, `${safeName(name)}.json`));
      if (r) results.push(r);
    }
    const ro = { bootstrapSamples: vcfg.bootstrap.samples, seed: vcfg.bootstrap.seed, selection: { name: chosen.name, reason: sel.reason } };
    await atomicWrite(path.join(validateDir, "summary.md"), renderMarkdown(results, ro));
    await atomicWrite(path.join(validateDir, "report.html"), renderHtml(results, ro));
    ctx.stdout(sel.reason);
    ctx.stdout(`best → ${rel} (${linkPath}); wrote ${path.join(validateDir, "selection.json")}`);
    return 0;
  },
};
