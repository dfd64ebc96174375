/**
 * What `utdebug` and `rerank` share around their loops: the sets to run (`--dataset FILE` or the config's
 * `sets`), each problem's private tests (problems without extractable tests are left out, with the reason),
 * the LLM client on the right model (or the heuristic backend), per-problem result files written atomically
 * under a content key (a re-run reuses them; after kill -9 only unfinished problems run again, their model
 * calls answered by the response cache), the lock-step barrier, and progress.
 */
import * as path from "node:path";
import { UserError } from "../../pipeline/errors.ts";
import { llmConfigForStage } from "../../pipeline/config.ts";
import { createLlmClient, llmConfigSchema, type LlmClient } from "../../pipeline/llm/client.ts";
import type { Executor } from "../../pipeline/executor/types.ts";
import type { CommandContext } from "../../pipeline/stage.ts";
import { readJson, writeJson } from "../../pipeline/util.ts";
import type { GoldTests } from "../gold-check.ts";
import type { SetSpec } from "../validation/datasets.ts";
import { safeName } from "../validate.ts";
import { goldTestsOf, loadDatasetFlag, loadDebugSet, type DebugProblem, type DebugSet } from "./problems.ts";

/** The sets of this run: `--dataset FILE` (one set named after the file) or the config's `sets`. */
export async function resolveSets(ctx: CommandContext, specs: SetSpec[], limitCfg: number | undefined, stage: string): Promise<DebugSet[]> {
  const flagLimit = ctx.flags.limit === undefined ? undefined : Number(ctx.flags.limit);
  const limit = limitCfg ?? (flagLimit && Number.isInteger(flagLimit) && flagLimit > 0 ? flagLimit : undefined);
  const file = ctx.flags.dataset;
  if (typeof file === "string" && file) return [await loadDatasetFlag(file, limit)];
  if (!specs.length) throw new UserError(`${stage} has no problems to run: pass --dataset <file.jsonl> (UTGenDebug rows) or set ${stage}.sets`);
  const sets: DebugSet[] = [];
  for (const s of specs) sets.push(await loadDebugSet(s, { runDir: ctx.runDir, limit }));
  if (new Set(sets.map((s) => s.name)).size !== sets.length) throw new UserError(`${stage}.sets has two sets with the same name: give each a unique name`);
  return sets;
}

export interface Prepared {
  problem: DebugProblem;
  tests: GoldTests;
}

/** Each problem's private tests (in parallel; cached in the cache folder); the others are left out with the reason. */
export async function prepareSet(ex: Executor, set: DebugSet, cacheDir: string): Promise<{ ready: Prepared[]; dropped: { taskId: string; reason: string; detail?: string }[] }> {
  const got = await Promise.all(set.problems.map((p) => goldTestsOf(ex, p, cacheDir)));
  const ready: Prepared[] = [];
  const dropped: { taskId: string; reason: string; detail?: string }[] = [];
  got.forEach((g, i) => {
    if ("tests" in g) ready.push({ problem: set.problems[i], tests: g.tests });
    else dropped.push({ taskId: set.problems[i].taskId, reason: "gold_tests_unextractable", detail: g.error.slice(0, 300) });
  });
  return { ready, dropped };
}

/** The stage's LLM client (openai backend), on `model` unless llm.model names one. */
export async function stageClient(ctx: CommandContext, stage: string, model: string | undefined): Promise<LlmClient> {
  const cfg = await llmConfigForStage(ctx.root, stage);
  const m = cfg.model || model;
  if (!m) throw new UserError(`${stage}: set ${stage === "utdebug" ? "utdebug.debugger" : "rerank.code_model"} (or llm.model) to the model the endpoint serves`);
  return createLlmClient(llmConfigSchema.parse({ ...cfg, backend: "openai", model: m }), { cacheDir: ctx.cacheDir, stage, log: (x) => ctx.log.info(x) });
}

/** Where one problem's result lives: `<stageDir>/results/<set>/<method>/<task>.json` (its key inside). */
export function resultFile(stageDir: string, set: string, method: string, taskId: string): string {
  return path.join(stageDir, "results", safeName(set), safeName(method), `${safeName(taskId)}.json`);
}

/** A stored result when it was computed under the same key. */
export async function storedResult<T extends { key: string }>(file: string, key: string): Promise<T | undefined> {
  const r = await readJson<T>(file).catch(() => undefined);
  return r && r.key === key ? r : undefined;
}

export const storeResult = writeJson;

/**
 * Lock-step rounds: `arrive(r)` resolves when every job still running has arrived at round r (or finished).
 * A job must `leave()` when it ends. The concurrent schedule uses `noBarrier`.
 */
export class RoundBarrier {
  private waiting = new Map<number, { count: number; release: (() => void)[] }>();
  constructor(private active: number) {}

  arrive(r: number): Promise<void> {
    const w = this.waiting.get(r) ?? { count: 0, release: [] };
    this.waiting.set(r, w);
    w.count++;
    const p = new Promise<void>((res) => w.release.push(res));
    this.check();
    return p;
  }

  leave(): void {
    this.active--;
    this.check();
  }

  private check(): void {
    for (const [r, w] of [...this.waiting].sort((a, b) => a[0] - b[0])) {
      if (w.count >= this.active) {
        this.waiting.delete(r);
        w.release.forEach((f) => f());
      }
      break; // rounds open in order
    }
  }
}

export const noBarrier = { arrive: async (_r: number) => {}, leave: () => {} };
