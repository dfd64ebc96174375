/**
 * `rl-rewards`: UTRL rewards for a file of rollouts (the batch mode scripts rely on).
 *
 *   npx zx pipeline/run.mjs --stage rl-rewards --dataset rows.jsonl [--json] [--details]
 *
 * Each JSONL row is a reward row (stages/rl/cases.ts): {"id", "kind": "stdio"|"function", "gt_code",
 * "entry_point" (function tasks), "cases": [{"input", "output"}] or "ut_text" (parsed), "codes": [...] or
 * "code_texts": [...]}. For each row it writes `r_valid`, `r_disc`, `reward` (λ-mix) and `code_rewards`
 * (one per code), with τ and λ from `rl.tau` / `rl.lambda`, plus the parse status and counts, to
 * `<run>/rl-rewards/<dataset name>/rewards.jsonl` (in input order) and `summary.json`. With `--json` the last
 * stdout line is `{"rows": N, "mean_reward": x, "mean_disc": x, "mean_valid": x}`.
 *
 * Rows are scored in batches of `rl-rewards.batch_rows` (one sandbox request per batch, identical
 * executions once: stages/rl/engine.ts). Each batch's results are written atomically under a content key
 * (the rows and every setting that decides a number), so a re-run after a kill -9 redoes only the batches in
 * flight and an unchanged re-run executes nothing. The HTTP service (`rl-serve`) computes the same numbers.
 */
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import PQueue from "p-queue";
import { z } from "zod";
import { UserError } from "../pipeline/errors.ts";
import type { CommandContext, CommandStage } from "../pipeline/stage.ts";
import { atomicWrite, exists, hashValue, readJsonl, writeJson } from "../pipeline/util.ts";
import { parseRlConfig, rlSemantics } from "./rl/config.ts";
import { parseRewardRow, type RewardRow } from "./rl/cases.ts";
import { RewardEngine, type RowResult } from "./rl/engine.ts";

/** Bump when scoring changes: every stored batch result is recomputed. */
export const RL_REWARDS_VERSION = "1";

export const rlRewardsConfigSchema = z.strictObject({
  /** Rows per sandbox request (performance only). */
  batch_rows: z.int().positive().default(64),
  /** Batches in flight (performance only: the next batch is prepared while one runs). */
  concurrency: z.int().positive().default(2),
});
export type RlRewardsConfig = z.infer<typeof rlRewardsConfigSchema>;

export interface RewardSummary {
  rows: number;
  mean_reward: number;
  mean_disc: number;
  mean_valid: number;
}

/** The fields written per row (the row's id first). */
export function outputRow(r: RowResult): Record<string, unknown> {
  const { id, r_valid, r_disc, reward, code_rewards, status, cases, valid_cases, case_reasons, over_cap, code_reasons, gt_failed_all, verdicts } = r;
  return {
    id,
    r_valid,
    r_disc,
    reward,
    code_rewards,
    status,
    cases,
    valid_cases,
    ...(Object.keys(case_reasons).length ? { case_reasons } : {}),
    ...(over_cap ? { over_cap } : {}),
    ...(Object.keys(code_reasons).length ? { code_reasons } : {}),
    ...(gt_failed_all ? { gt_failed_all } : {}),
    ...(verdicts ? { verdicts } : {}),
  };
}

export function summarizeRewards(rs: Pick<RowResult, "reward" | "r_disc" | "r_valid">[]): RewardSummary {
  const mean = (f: (r: (typeof rs)[number]) => number) => (rs.length ? rs.reduce((a, r) => a + f(r), 0) / rs.length : 0);
  return { rows: rs.length, mean_reward: mean((r) => r.reward), mean_disc: mean((r) => r.r_disc), mean_valid: mean((r) => r.r_valid) };
}

/** Read and check a reward-row file; a bad line stops with one line naming file:line and the field. */
export async function loadRewardRows(file: string): Promise<RewardRow[]> {
  if (!(await exists(file))) throw new UserError(`--dataset ${file}: file not found (expected a JSONL file of reward rows, see docs/utrl.md)`);
  const rows: RewardRow[] = [];
  const seen = new Set<string>();
  let line = 0;
  try {
    for await (const raw of readJsonl(file)) {
      line++;
      const r = parseRewardRow(raw, `${file}:${line}`);
      if (seen.has(r.id)) throw new UserError(`${file}:${line}: duplicate id ${r.id}; row ids must be unique`);
      seen.add(r.id);
      rows.push(r);
    }
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`${(e as Error).message.split("\n")[0]}; fix the file`);
  }
  if (!rows.length) throw new UserError(`--dataset ${file}: no rows in the file`);
  return rows;
}

export const rlRewardsStage: CommandStage<RlRewardsConfig> = {
  kind: "command",
  name: "rl-rewards",
  description: "UTRL rewards (validity, discrimination, code) for a JSONL file of rollouts, in the sandbox",
  configSchema: rlRewardsConfigSchema,
  flags: {
    dataset: { type: "string", help: "JSONL file of reward rows (docs/utrl.md)" },
    json: { type: "boolean", help: "print the summary as one JSON object (last stdout line)" },
    details: { type: "boolean", help: "add per-case verdict letters to each output row" },
  },
  async run(ctx: CommandContext<RlRewardsConfig>): Promise<number> {
    const file = ctx.flags.dataset;
    if (typeof file !== "string" || !file) throw new UserError("rl-rewards needs --dataset <rows.jsonl> (reward rows, see docs/utrl.md)");
    const cfg = rlRewardsConfigSchema.parse(ctx.config ?? {});
    const rl = parseRlConfig(ctx.root.rl);
    const details = ctx.flags.details === true;
    const rows = await loadRewardRows(path.resolve(file));
    const name = path.basename(file).replace(/\.jsonl(\.gz)?$/, "").replace(/[^A-Za-z0-9._-]+/g, "_") || "rows";
    const outDir = path.join(ctx.stageDir, name);
    const chunkDir = path.join(outDir, "chunks");
    await fsp.mkdir(chunkDir, { recursive: true });

    const settings = { v: RL_REWARDS_VERSION, rl: rlSemantics(rl), details };
    const batches: { rows: RewardRow[]; key: string; file: string }[] = [];
    for (let i = 0; i < rows.length; i += cfg.batch_rows) {
      const part = rows.slice(i, i + cfg.batch_rows);
      const key = hashValue({ settings, rows: part }).slice(0, 24);
      batches.push({ rows: part, key, file: path.join(chunkDir, `${key}.jsonl`) });
    }
    const results: Record<string, unknown>[][] = new Array(batches.length);
    let engine: RewardEngine | undefined;
    let reused = 0;
    const queue = new PQueue({ concurrency: cfg.concurrency });
    let done = 0;
    await Promise.all(
      batches.map((b, i) =>
        queue.add(async () => {
          if (await exists(b.file)) {
            const text = await fsp.readFile(b.file, "utf8");
            const parsed = text.split("\n").filter(Boolean).map((l) => JSON.parse(l));
            if (parsed.length === b.rows.length) {
              results[i] = parsed;
              reused++;
              return;
            }
          }
          engine ??= new RewardEngine(await ctx.getExecutor(), rl);
          const scored = (await engine.score(b.rows, { details })).map(outputRow);
          await atomicWrite(b.file, scored.map((r) => JSON.stringify(r)).join("\n") + "\n");
          results[i] = scored;
          done += b.rows.length;
          if (ctx.flags.json !== true) ctx.log.info(`rl-rewards: ${done} row(s) scored`);
        }),
      ),
    );
    // Batches of earlier versions of this file are no longer needed.
    const keep = new Set(batches.map((b) => `${b.key}.jsonl`));
    for (const f of await fsp.readdir(chunkDir)) if (!keep.has(f) && f.endsWith(".jsonl")) await fsp.rm(path.join(chunkDir, f), { force: true });

    const all = results.flat() as unknown as RowResult[];
    const summary = summarizeRewards(all);
    const statuses: Record<string, number> = {};
    const caseReasons: Record<string, number> = {};
    for (const r of all) {
      statuses[r.status] = (statuses[r.status] ?? 0) + 1;
      for (const [k, v] of Object.entries(r.case_reasons ?? {})) caseReasons[k] = (caseReasons[k] ?? 0) + v;
    }
    const outFile = path.join(outDir, "rewards.jsonl");
    await atomicWrite(outFile, all.map((r) => JSON.stringify(r)).join("\n") + "\n");
    const st = engine?.stats();
    await writeJson(path.join(outDir, "summary.json"), {
      dataset: path.resolve(file),
      ...summary,
      tau: rl.tau,
      lambda: rl.lambda,
      statuses,
      case_reasons: caseReasons,
      gt_failed_all: all.filter((r) => r.gt_failed_all).length,
      batches: { total: batches.length, reused },
      executions: st ? { requested: st.requested, executed: st.executed, cache_hits: st.cacheHits, deduplicated: st.deduplicated } : null,
      settings: rlSemantics(rl),
    });
    ctx.counters.add("rows", all.length);
    ctx.counters.add("batches_reused", reused);
    if (ctx.flags.json === true) {
      ctx.stdout(JSON.stringify(summary));
      return 0;
    }
    const f4 = (x: number) => x.toFixed(4);
    ctx.stdout(`rl-rewards ${file}: ${summary.rows} rows (τ ${rl.tau}, λ ${rl.lambda}); ${reused} of ${batches.length} batch(es) reused`);
    ctx.stdout(`mean reward ${f4(summary.mean_reward)}, mean R_disc ${f4(summary.mean_disc)}, mean R_valid ${f4(summary.mean_valid)}`);
    ctx.stdout(`unit tests: ${Object.entries(statuses).map(([k, v]) => `${k} ${v}`).join(", ")}`);
    if (Object.keys(caseReasons).length) ctx.stdout(`malformed cases: ${Object.entries(caseReasons).map(([k, v]) => `${k} ${v}`).join(", ")}`);
    const broken = all.filter((r) => r.gt_failed_all).length;
    if (broken) ctx.log.warn(`rl-rewards: in ${broken} row(s) the ground truth failed every case (check gt_code if that is frequent)`);
    ctx.stdout(`wrote ${outFile}`);
    return 0;
  },
};
