/**
 * `rl-bon`: best-of-N with generated unit tests (seed 002 §4.1, App. A.4). For every task and code model,
 * N (32) code samples; the generated unit test picks the sample passing most of its cases (ties: the earliest
 * sample); the pick is scored on the ground-truth unit test:
 *   code score    = share of ground-truth cases the pick passes;   code accuracy = it passes all of them.
 * Beside it: base — the expected score / accuracy of one sample (the mean over the N samples, the unbiased
 * estimate of "one sample"), Δ = pick − base, and the upper bound — the best of the N (any sample passing all).
 * Means over tasks with 95% bootstrap intervals. Writes `<run>/rl-bon/report.md` and `summary.json`; with
 * `--json` the last stdout line is the summary (one row per UT model × code model).
 */
import type { CommandContext, CommandStage } from "../../pipeline/stage.ts";
import { evalConfigSchema, evaluatePairs, pairKey, writeReport, type EvalConfig, type PairResult } from "./evaluate.ts";
import { bestOf } from "./rewards.ts";
import { bootstrapMean, type MeanCI } from "./stats.ts";

export interface BonRow {
  ut_model: string;
  code_model: string;
  tasks: number;
  n: number;
  score: MeanCI;
  accuracy: MeanCI;
  base_score: MeanCI;
  base_accuracy: MeanCI;
  delta_score: MeanCI;
  delta_accuracy: MeanCI;
  upper_score: MeanCI;
  upper_accuracy: MeanCI;
  /** Tasks whose generated unit test was unusable (the pick is then the first sample). */
  unusable_uts: number;
}

/** Per-task best-of-N numbers from one pair's results. */
export function bonOfTask(r: PairResult): { score: number; acc: number; base: number; baseAcc: number; upper: number; upperAcc: number } {
  const scores = r.gt_passed.map((p) => (r.gt_total ? p / r.gt_total : 0));
  const accs = r.gt_passed.map((p) => (r.gt_total > 0 && p === r.gt_total ? 1 : 0));
  const pick = bestOf(r.gen_passed);
  const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
  return {
    score: pick >= 0 ? scores[pick] : 0,
    acc: pick >= 0 ? accs[pick] : 0,
    base: mean(scores),
    baseAcc: mean(accs),
    upper: scores.length ? Math.max(...scores) : 0,
    upperAcc: accs.some((a) => a === 1) ? 1 : 0,
  };
}

export function bonRow(ut: string, code: string, n: number, results: PairResult[], boot: { samples: number; seed: number }): BonRow {
  const per = results.map(bonOfTask);
  const ci = (f: (x: (typeof per)[number]) => number) => bootstrapMean(per.map(f), boot);
  return {
    ut_model: ut,
    code_model: code,
    tasks: results.length,
    n,
    score: ci((x) => x.score),
    accuracy: ci((x) => x.acc),
    base_score: ci((x) => x.base),
    base_accuracy: ci((x) => x.baseAcc),
    delta_score: ci((x) => x.score - x.base),
    delta_accuracy: ci((x) => x.acc - x.baseAcc),
    upper_score: ci((x) => x.upper),
    upper_accuracy: ci((x) => x.upperAcc),
    unusable_uts: results.filter((r) => r.ut_status !== "ok").length,
  };
}

const f3 = (c: MeanCI) => `${c.mean.toFixed(3)} [${c.lo.toFixed(3)}, ${c.hi.toFixed(3)}]`;
const p1 = (c: MeanCI) => `${(100 * c.mean).toFixed(1)} [${(100 * c.lo).toFixed(1)}, ${(100 * c.hi).toFixed(1)}]`;
const sign = (c: MeanCI, pct = false) => `${c.mean >= 0 ? "+" : ""}${pct ? (100 * c.mean).toFixed(1) : c.mean.toFixed(3)}`;

export function renderBonMd(rows: BonRow[], meta: { file: string; skipped: Record<string, number>; boot: { samples: number; seed: number } }): string {
  const lines = [
    "## UTRL best-of-N",
    "",
    `${rows[0]?.tasks ?? 0} tasks from ${meta.file}${Object.keys(meta.skipped).length ? ` (left out: ${Object.entries(meta.skipped).map(([k, v]) => `${k} ${v}`).join(", ")})` : ""}; N = ${rows[0]?.n ?? 0} code samples per task.`,
    "The generated unit test picks the sample passing most of its cases (ties: the earliest); the pick is scored on the ground-truth unit test.",
    `Base = the mean over the N samples (one sample's expectation); upper bound = the best of N. 95% bootstrap intervals over tasks (${meta.boot.samples} resamples, seed ${meta.boot.seed}).`,
    "",
    "| UT model | code model | score | Δ score | acc (%) | Δ acc (%p) | base score | base acc (%) | upper score | upper acc (%) | unusable UTs |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ];
  for (const r of rows)
    lines.push(
      `| ${r.ut_model} | ${r.code_model} | ${f3(r.score)} | ${sign(r.delta_score)} | ${p1(r.accuracy)} | ${sign(r.delta_accuracy, true)} | ${r.base_score.mean.toFixed(3)} | ${(100 * r.base_accuracy.mean).toFixed(1)} | ${r.upper_score.mean.toFixed(3)} | ${(100 * r.upper_accuracy.mean).toFixed(1)} | ${r.unusable_uts} |`,
    );
  return lines.join("\n") + "\n";
}

export const rlBonStage: CommandStage<EvalConfig> = {
  kind: "command",
  name: "rl-bon",
  description: "best-of-N (N = 32) with generated unit tests: code score / accuracy with CIs",
  configSchema: evalConfigSchema,
  after: ["rl-tasks"],
  flags: { json: { type: "boolean", help: "print the summary as one JSON object (last stdout line)" } },
  async run(ctx: CommandContext<EvalConfig>): Promise<number> {
    const cfg = evalConfigSchema.parse(ctx.config ?? {});
    const ev = await evaluatePairs(ctx, cfg);
    const rows: BonRow[] = [];
    for (const ut of ev.utModels) for (const code of ev.codeModels) rows.push(bonRow(ut, code, cfg.n, ev.pairs.get(pairKey(ut, code))!, cfg.bootstrap));
    const file = cfg.tasks ?? "rl-tasks/test.jsonl";
    const md = renderBonMd(rows, { file, skipped: ev.skipped, boot: cfg.bootstrap });
    const summary = { stage: "rl-bon", tasks: ev.tasks.length, n: cfg.n, skipped: ev.skipped, rows };
    const report = await writeReport(ctx, md, summary);
    if (ctx.flags.json === true) {
      ctx.stdout(JSON.stringify({ tasks: ev.tasks.length, n: cfg.n, rows: rows.map((r) => ({ ut_model: r.ut_model, code_model: r.code_model, score: r.score.mean, accuracy: r.accuracy.mean, base_score: r.base_score.mean, base_accuracy: r.base_accuracy.mean, upper_score: r.upper_score.mean, upper_accuracy: r.upper_accuracy.mean })) }));
      return 0;
    }
    for (const l of md.trim().split("\n")) ctx.stdout(l);
    ctx.stdout(`wrote ${report}`);
    return 0;
  },
};
