/**
 * `rl-rollouts --phase k`: the training and validation data of one UTRL phase, sampled from the other role's
 * current model (seed 002 Alg. 1: the unit-test generator is rewarded against codes of the *current* code
 * generator, and the code generator against unit tests of the *current* unit-test generator).
 *
 *   tester phase: `utrl.num_codes` (8) code samples per task from the coder → rows {prompt (UT prompt), codes}
 *   coder phase:  one unit test per task from the tester                 → rows {prompt (code prompt), ut_text}
 *
 * Rows also carry task_id, kind, gt_code, entry_point (the reward function's columns). The phase uses
 * steps × prompts_per_step training prompts: tasks in a seeded order, repeated when there are fewer (one
 * sample set per task). Validation rows cover the held-out tasks (rl-validate.tasks of them). The other
 * model is served with `utrl.server.command` (vLLM; adapters by name) or reached at a running endpoint.
 * Unchanged inputs are not sampled again (manifest key + the LLM response cache).
 */
import * as path from "node:path";
import { z } from "zod";
import { UserError } from "../../pipeline/errors.ts";
import type { CommandContext, CommandStage } from "../../pipeline/stage.ts";
import { exists, hashValue, readJson, sha256, writeJson, writeJsonl } from "../../pipeline/util.ts";
import { phaseOf, resolveUtrlPlan, type PhasePlan, type UtrlPlan } from "../../trainers/utrl.ts";
import { parseRlConfig } from "./config.ts";
import { extractCode } from "./ut-parser.ts";
import { loadTasks, type RlTask } from "./tasks.ts";
import { loadUtrlTemplates, promptFor, sampleAll, targetOf, withModels, type Templates } from "./sampling.ts";

export const rlRolloutsConfigSchema = z.strictObject({
  /** Requests in flight (performance only). */
  concurrency: z.int().positive().default(64),
});

/** The phase's training prompts: tasks in a seeded order (per phase), cycled to `needed`. */
export function phaseTasks(tasks: RlTask[], needed: number, seed: string): RlTask[] {
  const rank = new Map(tasks.map((t) => [t.id, sha256(`${seed}\u0000${t.id}`)]));
  const order = [...tasks].sort((a, b) => (rank.get(a.id)! < rank.get(b.id)! ? -1 : 1));
  return Array.from({ length: needed }, (_, i) => order[i % order.length]);
}

interface Built {
  rows: Record<string, unknown>[];
  failed: number;
  noCode: number;
}

/** Sample the other role for `tasks` and build the phase's rows. */
async function build(ctx: CommandContext, p: UtrlPlan, ph: PhasePlan, t: Templates, tasks: RlTask[], llm: Parameters<typeof sampleAll>[1], target: Parameters<typeof sampleAll>[2], concurrency: number): Promise<Built> {
  const rl = parseRlConfig(ctx.root.rl);
  const unique = [...new Map(tasks.map((x) => [x.id, x])).values()];
  const otherRole = ph.counterpart;
  const n = otherRole === "coder" ? p.cfg.num_codes : 1;
  const sampled = await sampleAll(ctx, llm, target, unique.map((x) => promptFor(t, otherRole, x, rl.num_cases)), n, { ...p.cfg.sampling, extra: p.cfg.sampling.extra_body }, t.hash, concurrency);
  const byId = new Map(unique.map((x, i) => [x.id, sampled[i]]));
  let failed = 0;
  let noCode = 0;
  const rows: Record<string, unknown>[] = [];
  for (const task of tasks) {
    const s = byId.get(task.id)!;
    if (s.error || s.texts.length < n) {
      failed++;
      continue;
    }
    const base = { prompt: promptFor(t, ph.role, task, rl.num_cases), task_id: task.id, kind: task.kind, gt_code: task.gt_code, entry_point: task.entry_point ?? null };
    if (otherRole === "coder") {
      const codes = s.texts.map((x) => {
        const e = extractCode(x);
        if (!e.ok) noCode++;
        return e.ok ? e.code : "";
      });
      rows.push({ ...base, codes });
    } else rows.push({ ...base, ut_text: s.texts[0], finish_reason: s.finishReasons[0] ?? null });
  }
  return { rows, failed, noCode };
}

export const rlRolloutsStage: CommandStage<z.infer<typeof rlRolloutsConfigSchema>> = {
  kind: "command",
  name: "rl-rollouts",
  description: "sample the other role's current model for a UTRL phase's training and validation data",
  configSchema: rlRolloutsConfigSchema,
  after: ["rl-tasks"],
  flags: { phase: { type: "string", help: "the schedule phase (1-based index or name)" } },
  async run(ctx: CommandContext<z.infer<typeof rlRolloutsConfigSchema>>): Promise<number> {
    const cfg = rlRolloutsConfigSchema.parse(ctx.config ?? {});
    if (ctx.flags.phase === undefined) throw new UserError("rl-rollouts needs --phase <k> (a phase of utrl.schedule)");
    const p = resolveUtrlPlan(ctx.root.utrl, ctx.runDir);
    const ph = phaseOf(p, ctx.flags.phase);
    const rl = parseRlConfig(ctx.root.rl);
    const validLimit = (ctx.root["rl-validate"]?.tasks as number | undefined) ?? undefined;
    const train = await loadTasks(p.tasksTrain);
    const valid = (await exists(p.tasksValid)) ? await loadTasks(p.tasksValid, { limit: validLimit }) : [];
    const t = await loadUtrlTemplates();
    for (const ref of [ph.other]) {
      const local = ref.adapter ?? (ref.base.startsWith("/") ? ref.base : null);
      if (local && !(await exists(local)))
        throw new UserError(`${local} does not exist: phase ${ph.index} samples ${ref.from}; run rl-validate --phase and select for that phase first`);
    }
    const target = await targetOf(ph.other, `${ph.otherPhase ?? "base"}-${ph.counterpart}`);
    const trainTasks = phaseTasks(train, ph.tasksNeeded, `${p.cfg.seed}:${ph.name}`);
    const key = hashValue({
      v: 1,
      tasks: trainTasks.map((x) => x.id),
      taskContent: hashValue(train),
      valid: hashValue(valid),
      model: target.identity,
      sampling: p.cfg.sampling,
      n: p.cfg.num_codes,
      num_cases: rl.num_cases,
      templates: t.hash,
    }).slice(0, 16);
    const manifest = path.join(ph.dataDir, "manifest.json");
    const prev = await readJson<{ key: string; counts: Record<string, number> }>(manifest);
    if (prev?.key === key && (await exists(ph.trainData)) && (await exists(ph.validData))) {
      ctx.stdout(`rl-rollouts phase ${ph.index}: up to date (${prev.counts.train_rows} train rows, ${prev.counts.valid_rows} valid rows) in ${ph.dataDir}`);
      return 0;
    }
    ctx.stdout(`rl-rollouts phase ${ph.index} (${ph.name}): sampling ${ph.counterpart} ${target.request} (${ph.other.from}) for ${new Set(trainTasks.map((x) => x.id)).size} train + ${valid.length} valid task(s)`);
    const { tr, va } = await withModels(ctx, p.cfg.server, [target], async (llm) => ({
      tr: await build(ctx, p, ph, t, trainTasks, llm, target, cfg.concurrency),
      va: await build(ctx, p, ph, t, valid, llm, target, cfg.concurrency),
    }));
    if (!tr.rows.length) throw new UserError(`rl-rollouts phase ${ph.index}: every sampling request failed (${tr.failed}); check the model server (utrl.server)`);
    await writeJsonl(ph.trainData, tr.rows);
    await writeJsonl(ph.validData, va.rows);
    const counts = { train_rows: tr.rows.length, train_failed: tr.failed, valid_rows: va.rows.length, valid_failed: va.failed, codes_without_code_block: tr.noCode + va.noCode };
    await writeJson(manifest, { key, phase: ph.name, counterpart: target.request, counterpart_identity: target.identity, counts, built_at: new Date().toISOString() });
    ctx.stdout(`rl-rollouts phase ${ph.index}: ${tr.rows.length} train rows${tr.failed ? ` (${tr.failed} dropped: sampling failed)` : ""}, ${va.rows.length} valid rows${tr.noCode + va.noCode ? `; ${tr.noCode + va.noCode} code sample(s) without a code block (they pass nothing)` : ""}`);
    ctx.stdout(`wrote ${ph.trainData} and ${ph.validData}`);
    return 0;
  },
};
