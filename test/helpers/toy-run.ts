/** Runs the toy stage through the real engine (used in-process by tests and as a child for kill -9 tests). */
import { runDataflowStage, stageMaterial } from "../../pipeline/engine.ts";
import { hashValue } from "../../pipeline/util.ts";
import { toyContext, toyRows, toyStage, type ToyOptions } from "./toy-stage.ts";
import type { Rec } from "../../pipeline/stage.ts";

export async function runToy(runDir: string, rows: Rec[], config: { factor?: number; concurrency?: number } = {}, opts: ToyOptions & { shardSize?: number; force?: boolean; compress?: boolean; shard?: { index: number; count: number }; inputSliced?: boolean } = {}) {
  const stage = toyStage(opts);
  const cfg = { factor: 3, concurrency: 4, ...config };
  const { material, fingerprint } = await stageMaterial(stage, cfg, { toy: cfg }, "source");
  return runDataflowStage({
    runDir,
    stage,
    ctx: toyContext(runDir, cfg),
    fingerprint,
    material,
    input: async function* () {
      yield* rows;
    },
    inputDigest: hashValue(rows).slice(0, 16),
    shardSize: opts.shardSize ?? 10,
    compress: opts.compress ?? false,
    shard: opts.shard ?? null,
    inputSliced: opts.inputSliced,
    limit: null,
    force: opts.force ?? false,
    config: cfg,
    meta: { package: { name: "t", version: "0" }, gitSha: null },
  });
}

// Child mode: `tsx test/helpers/toy-run.ts <runDir> <rows> <delayMs>`
if (process.argv[1]?.endsWith("toy-run.ts") && process.argv[2]) {
  const [runDir, rows, delay] = process.argv.slice(2);
  await runToy(runDir, toyRows(0, Number(rows)), {}, { delayMs: Number(delay), dedupe: true, shardSize: 7 });
  process.stdout.write("done\n");
}
