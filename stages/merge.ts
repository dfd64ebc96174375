/**
 * `merge`: combine the outputs of `--shard i/N` runs (SLURM array tasks, Kubernetes indexed jobs) that share
 * one run folder. For every data stage whose N slice manifests are all present with one fingerprint, it writes
 * the stage's merged manifest (shards in slice order), summed stats, and runs the stage's whole-output step
 * (e.g. emit-sft's train/valid files). Every stage is checked first: when any slice is missing or stale,
 * all of them are reported in one line and nothing is merged.
 */
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { z } from "zod";
import type { CommandStage, DataflowStage } from "../pipeline/stage.ts";
import { DATA_STAGES, loadRegistry } from "../pipeline/registry.ts";
import { addStats, emptyStats, readManifest, writeManifest, type StageManifest } from "../pipeline/store.ts";
import { finalizeStage } from "../pipeline/engine.ts";
import { hashValue, writeJson } from "../pipeline/util.ts";
import { UserError } from "../pipeline/errors.ts";

export const mergeStage: CommandStage<Record<string, never>> = {
  kind: "command",
  name: "merge",
  description: "combine the outputs of --shard i/N runs",
  configSchema: z.strictObject({}),
  async run(ctx) {
    const registry = await loadRegistry();
    // Check every stage before writing anything: a half-merged run folder would make a resubmitted slice
    // read a merged upstream instead of its own slice.
    const plans: { name: string; dir: string; n: number; parts: StageManifest[] }[] = [];
    const problems: string[] = [];
    let sliceCount = 0;
    for (const name of DATA_STAGES) {
      const dir = path.join(ctx.runDir, name);
      let files: string[];
      try {
        files = await fsp.readdir(dir);
      } catch {
        continue;
      }
      const slices = files.map((f) => /^manifest\.shard-(\d+)-of-(\d+)\.json$/.exec(f)).filter((m): m is RegExpExecArray => !!m);
      if (!slices.length) continue;
      const counts = [...new Set(slices.map((m) => Number(m[2])))];
      if (counts.length > 1) throw new UserError(`${name}: slice manifests for different shard counts (${counts.join(", ")}) in ${dir}; remove the stale ones`);
      const n = (sliceCount = counts[0]);
      const parts: StageManifest[] = [];
      const missing: number[] = [];
      for (let i = 0; i < n; i++) {
        const m = await readManifest(ctx.runDir, name, { index: i, count: n });
        if (m) parts.push(m);
        else missing.push(i);
      }
      if (missing.length) {
        problems.push(`${name}: shard(s) ${missing.join(", ")} of ${n} have not finished`);
        continue;
      }
      const fps = new Set(parts.map((p) => p.fingerprint));
      if (fps.size > 1) {
        problems.push(`${name}: the ${n} slices were built with different settings (fingerprints ${[...fps].join(", ")}); re-run the stale slices`);
        continue;
      }
      plans.push({ name, dir, n, parts });
    }
    if (problems.length) throw new UserError(`${problems.join("; ")}; run them (--shard i/${sliceCount}) before merge — nothing was merged`);
    let merged = 0;
    for (const { name, dir, n, parts } of plans) {
      const counts2 = parts.reduce((acc, p) => addStats(acc, p.counts), emptyStats());
      const m: StageManifest = {
        ...parts[0],
        inputDigest: hashValue(parts.map((p) => p.inputDigest)).slice(0, 16),
        outputDigest: hashValue(parts.map((p) => p.outputDigest)).slice(0, 16),
        shards: parts.flatMap((p) => p.shards),
        shard: null,
        counts: counts2,
        finalizedFor: undefined,
        extra: { ...(parts[0].extra ?? {}), mergedFrom: n },
      };
      await writeJson(path.join(dir, "stats.json"), { stage: name, ...counts2, mergedFrom: n });
      await writeManifest(ctx.runDir, m);
      const stage = registry.find((s) => s.name === name);
      if (stage?.kind === "dataflow") {
        const sctx = { ...ctx, name, config: ctx.root[name] ?? {}, stageDir: dir };
        await finalizeStage(stage as DataflowStage, sctx, ctx.runDir, m, true);
      }
      ctx.stdout(`${name}: merged ${n} slices — ${counts2.in} in → ${counts2.out} out`);
      merged++;
    }
    if (!merged) throw new UserError(`nothing to merge in ${ctx.runDir}: no stage has --shard slice manifests`);
    return 0;
  },
};
