/**
 * Shared helpers of the generation stages (perturb, attack, rationalize, emit-sft): the per-stage LLM
 * settings, the heuristic-backend switch, a seeded PRNG keyed by record id (never Math.random), counted
 * chat calls, and access to the sandbox helper scripts under stages/heuristic/.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import * as path from "node:path";
import { z } from "zod";
import type { StageContext } from "../pipeline/stage.ts";
import type { ChatRequest, ChatResult, LlmClient } from "../pipeline/llm/types.ts";
import type { Executor, PyValue } from "../pipeline/executor/types.ts";
import { outputsMatch } from "../pipeline/executor/compare.ts";
import { UserError } from "../pipeline/errors.ts";
import { sha256 } from "../pipeline/util.ts";
import { llmConfigForStage, llmFingerprintForStage } from "../pipeline/config.ts";
import { LlmError } from "../pipeline/llm/client.ts";

const HERE = path.dirname(fileURLToPath(import.meta.url));

/** Per-stage LLM overrides (`<stage>.llm:`), merged over the root `llm:` block and validated by the LLM schema. */
export const llmOverrideSchema = z.record(z.string(), z.unknown()).optional();

/** True when this stage runs on the embedded no-model backend (`llm.backend: heuristic`). */
export async function isHeuristic(root: Record<string, any>, stage: string): Promise<boolean> {
  const cfg = await llmConfigForStage(root, stage);
  return (cfg.backend ?? "heuristic") === "heuristic";
}

/**
 * Records a generation stage keeps in flight: the stage's own `concurrency` when set, else enough to fill
 * the LLM client's request slots (`llm.concurrency`, so a vLLM/SGLang server is kept busy), or 8 on the
 * heuristic backend (where the sandbox's workers are the bound).
 */
export async function recordConcurrency(root: Record<string, any>, stage: string, configured: number | undefined): Promise<number> {
  if (configured) return configured;
  const cfg = await llmConfigForStage(root, stage);
  return (cfg.backend ?? "heuristic") === "heuristic" ? 8 : Math.max(8, cfg.concurrency ?? 8);
}

/** Fingerprint material of a stage's LLM: model + sampling, or just the heuristic backend. */
export async function stageLlmFingerprint(root: Record<string, any>, stage: string): Promise<Record<string, unknown>> {
  if (await isHeuristic(root, stage)) return { backend: "heuristic" };
  return llmFingerprintForStage(root, stage);
}

/** A small deterministic PRNG (sfc32) keyed by any strings: same keys → same sequence, on every run. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  constructor(...keys: (string | number)[]) {
    const h = sha256(keys.map(String).join("\u0000"));
    this.a = parseInt(h.slice(0, 8), 16) | 0;
    this.b = parseInt(h.slice(8, 16), 16) | 0;
    this.c = parseInt(h.slice(16, 24), 16) | 0;
    this.d = parseInt(h.slice(24, 32), 16) | 0;
    for (let i = 0; i < 12; i++) this.next();
  }
  /** Uniform in [0, 1). */
  next(): number {
    this.a |= 0; this.b |= 0; this.c |= 0; this.d |= 0;
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return (t >>> 0) / 4294967296;
  }
  /** Integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)];
  }
  shuffle<T>(xs: readonly T[]): T[] {
    const out = [...xs];
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  }
}

/** Source of a sandbox helper script (stages/heuristic/<name>), read once. */
const scripts = new Map<string, string>();
export function helperScript(name: string): string {
  let s = scripts.get(name);
  if (s === undefined) {
    s = readFileSync(path.join(HERE, "heuristic", name), "utf8");
    scripts.set(name, s);
  }
  return s;
}

/**
 * Content hash of generator sources under stages/ (e.g. "heuristic/fuzz.ts"): part of the fingerprint of
 * the stages whose results they decide, so editing a generator rebuilds exactly what it produced.
 */
export function sourceHash(...relPaths: string[]): string {
  return sha256(relPaths.map((p) => readFileSync(path.join(HERE, p), "utf8")).join("\u0000")).slice(0, 16);
}

/** Run the AST helper (stages/heuristic/ast_tools.py) inside the sandbox. */
export async function runAstTool<T>(executor: Executor, input: Record<string, unknown>, timeoutS = 20): Promise<T> {
  const res = await executor.runScript(helperScript("ast_tools.py"), input, { timeoutS, projectCode: true });
  if (res.status !== "ok" || !res.output || (res.output as any).ok === false) {
    const why = res.status !== "ok" ? `${res.status}: ${res.errorType ?? ""} ${res.message ?? ""}`.trim() : String((res.output as any)?.error);
    throw new Error(`AST helper (${String(input.op)}) failed: ${why}`);
  }
  return res.output as T;
}

/** Normalised form of each program (ast.dump without docstrings); undefined where it does not parse. */
export async function normalizePrograms(executor: Executor, codes: string[]): Promise<(string | undefined)[]> {
  if (!codes.length) return [];
  const out = await runAstTool<{ results: { ok: boolean; normalized?: string }[] }>(executor, { op: "normalize", codes });
  return out.results.map((r) => (r.ok ? r.normalized : undefined));
}

/**
 * Does this LLM error concern only this request (dropped as `llm_failed`, e.g. a 5xx after retries, a
 * timeout, a prompt the server rejects as too long)? Errors that would hit every request — server
 * unreachable, bad model name or key, a misconfigured request — abort the stage instead, so that a re-run
 * resumes rather than leaving a complete shard full of drops.
 */
export function isRecordFailure(e: unknown): boolean {
  if (!(e instanceof LlmError)) return !(e instanceof UserError);
  if (e.kind === "http") return !(e.status === 401 || e.status === 403 || e.status === 404);
  return e.kind === "timeout" || e.kind === "malformed";
}

/**
 * One chat call with the stage's counters bumped (requests actually sent, cache hits, tokens, failures).
 * Returns {error} when the client gave up on this request (see isRecordFailure): the caller drops with `llm_failed`.
 */
export async function countedChat(
  ctx: StageContext,
  llm: LlmClient,
  req: ChatRequest,
): Promise<{ result?: ChatResult; error?: string }> {
  try {
    const result = await llm.chat(req);
    ctx.counters.add("requests", result.requested);
    ctx.counters.add("cache_hits", result.cached);
    ctx.counters.add("prompt_tokens", result.usage.prompt_tokens);
    ctx.counters.add("completion_tokens", result.usage.completion_tokens);
    ctx.counters.add("tokens", result.usage.prompt_tokens + result.usage.completion_tokens);
    return { result };
  } catch (e) {
    if (!isRecordFailure(e)) throw e;
    ctx.counters.add("failures", 1);
    const msg = e instanceof Error ? e.message.split("\n")[0] : String(e);
    return { error: msg };
  }
}

/**
 * Do two outputs count as the same? UTGen's comparison (`outputsMatch` utgen mode: Python `==` plus float
 * tolerance) or, where its quirks would call equal values different (a string containing "error", NaN),
 * the strict mode. Stages keep a disagreement only when it is certain under both.
 */
export function sameOutput(actual: PyValue, expected: PyValue): boolean {
  return outputsMatch(actual, expected) || outputsMatch(actual, expected, { mode: "strict" });
}

/** Filter-level problem id of a derived record (`<problem>/bug<k>/ut<j>`). */
export function problemIdOf(rec: { id: string; problem_id?: unknown }): string {
  if (typeof rec.problem_id === "string" && rec.problem_id) return rec.problem_id;
  return rec.id.replace(/\/bug\d+(\/ut\d+)?$/, "");
}

/** Clip long text for a one-line drop detail. */
export function clip(s: string, n = 160): string {
  const one = s.replace(/\s+/g, " ").trim();
  return one.length > n ? one.slice(0, n - 1) + "…" : one;
}
