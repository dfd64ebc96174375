/**
 * A toy dataflow stage and a minimal StageContext for engine tests: deterministic outputs, some drops,
 * ordered de-duplication, optional per-record delay, and a call counter (how many records really ran).
 */
import { z } from "zod";
import type { DataflowStage, Rec, StageContext } from "../../pipeline/stage.ts";

export interface ToyOptions {
  delayMs?: number;
  calls?: { n: number };
  dedupe?: boolean;
  /** Slice source records by this key under a shard (the stage's shardKey). */
  shardKey?: (rec: Rec) => string;
}

export function toyStage(opts: ToyOptions = {}): DataflowStage<{ factor: number; concurrency: number }> {
  return {
    kind: "dataflow",
    name: "toy",
    version: "1",
    description: "toy",
    input: "source",
    inputFields: ["n"],
    outputFields: ["v"],
    configSchema: z.strictObject({ factor: z.number().default(3), concurrency: z.number().default(4) }),
    perfKeys: ["concurrency"],
    ...(opts.dedupe ? { dedupeKey: (o: Rec) => String(o.v) } : {}),
    ...(opts.shardKey ? { shardKey: opts.shardKey } : {}),
    async open(ctx) {
      return {
        concurrency: ctx.config.concurrency ?? 4,
        async process(rec) {
          if (opts.calls) opts.calls.n++;
          if (opts.delayMs) await new Promise((r) => setTimeout(r, opts.delayMs));
          const n = rec.n as number;
          if (n % 7 === 0) return { out: [], drop: [{ id: rec.id, reason: "multiple_of_seven" }] };
          const out = [{ id: `${rec.id}/a`, source: rec.source, v: (n * (ctx.config.factor ?? 3)) % 50 }];
          if (n % 3 === 0) out.push({ id: `${rec.id}/b`, source: rec.source, v: n });
          return { out, drop: [] };
        },
      };
    },
  };
}

export function toyRows(from: number, to: number): Rec[] {
  const rows: Rec[] = [];
  for (let n = from; n < to; n++) rows.push({ id: `row${n}`, n, source: n % 2 ? "odd" : "even" });
  return rows;
}

export function toyContext(runDir: string, config: Record<string, unknown>): StageContext {
  return {
    name: "toy",
    config,
    root: { toy: config },
    runDir,
    stageDir: `${runDir}/toy`,
    cacheDir: `${runDir}/cache`,
    log: { info: () => {}, warn: () => {} },
    counters: { add: () => {} },
    getExecutor: () => Promise.reject(new Error("no executor in toy tests")),
    getLlm: () => Promise.reject(new Error("no llm in toy tests")),
    signal: new AbortController().signal,
  };
}
