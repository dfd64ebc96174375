/**
 * `select` with `select.source: rl-validate`: the UTRL phase's best checkpoint by its validation metric
 * (App. A.3: the λ-weighted reward on the held-out tasks for a tester phase; the code reward for a coder
 * phase). Highest mean wins; ties go to the earlier step. The runner-up margin comes with a paired bootstrap
 * interval over the same tasks. Writes `<run>/rl-validate/<phase>/selection.json`, points the relative
 * symlink `<run>/train/<phase>/best` at the chosen checkpoint (the next phases start from / sample it) and
 * re-renders the phase's summary.md with the choice marked.
 */
import * as path from "node:path";
import { UserError } from "../../pipeline/errors.ts";
import type { CommandContext } from "../../pipeline/stage.ts";
import { atomicWrite, readJson, writeJson } from "../../pipeline/util.ts";
import { phaseOf, resolveUtrlPlan } from "../../trainers/utrl.ts";
import { pointLink } from "../select.ts";
import { pairedDiff } from "./stats.ts";
import { phaseRegistry } from "./utrl.ts";
import { renderValidationMd, resultDir, safeName, type RlValidation } from "./validate.ts";

export async function selectRl(ctx: CommandContext, cfg: { train?: string; bootstrap?: { samples: number; seed: number } }): Promise<number> {
  const p = resolveUtrlPlan(ctx.root.utrl, ctx.runDir);
  const name = cfg.train ?? p.phases.at(-1)?.name;
  if (!name) throw new UserError("select with source rl-validate needs select.train: the UTRL phase name (e.g. utrl-p1-tester)");
  const ph = phaseOf(p, name);
  const reg = await phaseRegistry(ctx.runDir, ph.name);
  if (!reg?.checkpoints?.length) throw new UserError(`no checkpoints registered for ${ph.name} (train/${ph.name}/checkpoints.json): train the phase first`);
  const dir = resultDir(ctx.runDir, ph.name);
  const scored: { r: RlValidation; ck: (typeof reg.checkpoints)[number] }[] = [];
  const missing: string[] = [];
  for (const ck of reg.checkpoints) {
    const r = await readJson<RlValidation>(path.join(dir, `${safeName(ck.name)}.json`));
    if (r) scored.push({ r, ck });
    else missing.push(ck.name);
  }
  if (!scored.length) throw new UserError(`no rl-validate results for the checkpoints of ${ph.name}: run --stage rl-validate --phase ${ph.index} first`);
  if (missing.length) ctx.log.warn(`select: ${missing.length} checkpoint(s) of ${ph.name} not validated and left out: ${missing.join(", ")}`);
  const ranking = [...scored].sort((a, b) => b.r.summary.mean - a.r.summary.mean || a.r.step - b.r.step);
  const best = ranking[0];
  const runner = ranking[1];
  const boot = cfg.bootstrap ?? { samples: 1000, seed: 0 };
  const byTask = (r: RlValidation) => new Map(r.tasks.map((t) => [t.id, t.score]));
  const margin = runner ? pairedDiff(byTask(best.r), byTask(runner.r), boot) : null;
  const start = await readJson<RlValidation>(path.join(dir, `${safeName(`${ph.name}-start`)}.json`));
  const f = (x: number) => x.toFixed(4);
  const metric = ph.role === "tester" ? "λ-weighted reward" : "code reward";
  const reason =
    `${best.r.model} (step ${best.r.step}) chosen by the highest ${metric} on ${best.r.summary.tasks} held-out tasks: ${f(best.r.summary.mean)} [${f(best.r.summary.lo)}, ${f(best.r.summary.hi)}]` +
    (runner ? `; runner-up ${runner.r.model} at ${f(runner.r.summary.mean)} (margin ${f(margin!.mean)}, paired 95% CI [${f(margin!.lo)}, ${f(margin!.hi)}]${margin!.lo <= 0 ? ", within noise" : ""})` : "") +
    (start ? `; the starting model scored ${f(start.summary.mean)}` : "");
  if (start && start.summary.mean > best.r.summary.mean) ctx.log.warn(`select: no checkpoint of ${ph.name} beats its starting model (${f(start.summary.mean)} > ${f(best.r.summary.mean)})`);
  const link = path.join(ctx.runDir, "train", ph.name, "best");
  const rel = await pointLink(link, best.ck.path);
  await writeJson(path.join(dir, "selection.json"), {
    phase: ph.name,
    role: ph.role,
    metric,
    rule: `max mean ${metric} over the held-out tasks; ties: the earlier step`,
    best: { name: best.r.model, step: best.r.step, path: best.ck.path, ...best.r.summary },
    runner_up: runner ? { name: runner.r.model, step: runner.r.step, ...runner.r.summary } : null,
    margin: margin ? { ...margin, inside_ci: margin.lo <= 0 } : null,
    start: start ? { name: start.model, ...start.summary } : null,
    ranking: ranking.map((x) => ({ name: x.r.model, step: x.r.step, mean: x.r.summary.mean })),
    not_validated: missing,
    reason,
    best_link: { path: link, target: rel },
    selected_at: new Date().toISOString(),
  });
  const results: RlValidation[] = [...(start ? [start] : []), ...scored.map((s) => s.r)];
  await atomicWrite(path.join(dir, "summary.md"), renderValidationMd(ph, results, best.r.model));
  ctx.stdout(reason);
  ctx.stdout(`best → ${rel} (${link}); wrote ${path.join(dir, "selection.json")}`);
  return 0;
}
