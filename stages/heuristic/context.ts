/**
 * A StageContext for running one generation stage outside the CLI (tests, benches, notebooks): the real
 * sandboxed executor and the real LLM client (root `llm:` merged with `<stage>.llm:`), counters in a plain
 * object, and the stage config parsed by the stage's own schema.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import type { DataflowStage, Outcome, Rec, StageContext } from "../../pipeline/stage.ts";
import type { Executor } from "../../pipeline/executor/types.ts";
import type { LlmClient } from "../../pipeline/llm/types.ts";
import { createExecutor } from "../../pipeline/executor/index.ts";
import { createLlmClient } from "../../pipeline/llm/client.ts";
import { llmConfigForStage } from "../../pipeline/config.ts";

export interface StandaloneOptions {
  root: Record<string, any>;
  runDir: string;
  /** Shared executor (tests start one per file); started from `root.executor` when absent. */
  executor?: Executor;
  log?: (m: string) => void;
}

export interface Standalone<C> {
  ctx: StageContext<C>;
  counters: Record<string, number>;
  /** The LLM client if one was opened (its stats and close()). */
  llm(): LlmClient | undefined;
  close(): Promise<void>;
}

export function standaloneContext<C>(stage: DataflowStage<C, any, any>, o: StandaloneOptions): Standalone<C> {
  const counters: Record<string, number> = {};
  const config = stage.configSchema.parse(o.root[stage.name] ?? {}) as C;
  let executorP: Promise<Executor> | undefined;
  let llm: LlmClient | undefined;
  const ownExecutor = !o.executor;
  const log = o.log ?? (() => {});
  const ctx: StageContext<C> = {
    name: stage.name,
    config,
    root: o.root,
    runDir: o.runDir,
    stageDir: path.join(o.runDir, stage.name),
    cacheDir: path.join(o.runDir, "cache"),
    log: { info: log, warn: log },
    counters: { add: (k, n = 1) => void (counters[k] = (counters[k] ?? 0) + n) },
    getExecutor: () => (executorP ??= o.executor ? Promise.resolve(o.executor) : createExecutor(o.root.executor ?? {})),
    getLlm: async () => {
      if (!llm) {
        const cfg = await llmConfigForStage(o.root, stage.name);
        llm = createLlmClient(cfg as any, { cacheDir: path.join(o.runDir, "cache"), stage: stage.name });
      }
      return llm;
    },
    signal: new AbortController().signal,
  };
  return {
    ctx,
    counters,
    llm: () => llm,
    async close() {
      await llm?.close();
      if (ownExecutor && executorP) await (await executorP).close();
    },
  };
}

/** Open the stage and run `process` over the records (in order, concurrently up to the stage's limit). */
export async function runStage<I extends Rec, O extends Rec>(stage: DataflowStage<any, I, O>, ctx: StageContext, recs: I[]): Promise<Outcome<O>> {
  const rt = await stage.open(ctx);
  const results: Outcome<O>[] = new Array(recs.length);
  let next = 0;
  const worker = async () => {
    while (next < recs.length) {
      const i = next++;
      results[i] = await rt.process(recs[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(rt.concurrency, recs.length) }, worker));
  await rt.close?.();
  return { out: results.flatMap((r) => r.out), drop: results.flatMap((r) => r.drop) };
}

/** Temporary run folders (tests, benches): `make()` a fresh one, `removeAll()` at the end. */
export function scratchDirs(prefix: string): { make(): string; removeAll(): void } {
  const dirs: string[] = [];
  return {
    make() {
      const d = mkdtempSync(path.join(tmpdir(), prefix));
      dirs.push(d);
      return d;
    },
    removeAll() {
      for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
    },
  };
}
