/**
 * Sampling for the UTRL commands: the two generators' prompts (stages/prompts/utrl_*.v1.md), serving a
 * model (a base model, a LoRA adapter of a phase, or a full checkpoint folder) with the configured vLLM command
 * or using a running OpenAI-compatible endpoint, and sampling through the project's LLM client (response
 * cache, retries, counted failures).
 */
import * as path from "node:path";
import PQueue from "p-queue";
import { promises as fsp } from "node:fs";
import { llmConfigForStage } from "../../pipeline/config.ts";
import { createLlmClient, llmConfigSchema, type ChatMessage, type LlmClient } from "../../pipeline/llm/client.ts";
import type { StageContext } from "../../pipeline/stage.ts";
import { exists, fileSha256, hashValue } from "../../pipeline/util.ts";
import { countedChat } from "../common.ts";
import { loadTemplate, type PromptTemplate } from "../prompts/index.ts";
import { ensureAdapters, startServer, type Adapter, type RunningServer, type ServerConfig } from "../validation/server.ts";
import type { Role } from "../../trainers/utrl.ts";
import type { RlTask } from "./tasks.ts";

export const UTRL_TEMPLATES = ["utrl_ut_stdio", "utrl_ut_function", "utrl_code_stdio", "utrl_code_function"] as const;

export interface Templates {
  ut: Record<"stdio" | "function", PromptTemplate>;
  code: Record<"stdio" | "function", PromptTemplate>;
  /** Hash of the four templates (joins cache and result keys). */
  hash: string;
}

export async function loadUtrlTemplates(): Promise<Templates> {
  const [us, uf, cs, cf] = await Promise.all(UTRL_TEMPLATES.map((n) => loadTemplate(n)));
  return { ut: { stdio: us, function: uf }, code: { stdio: cs, function: cf }, hash: hashValue([us.hash, uf.hash, cs.hash, cf.hash]) };
}

/** The prompt of the generator of `role` for a task (one user message, as the paper's prompts are). */
export function promptFor(t: Templates, role: Role, task: RlTask, numCases: number): ChatMessage[] {
  const vars = { question: task.question, entry_point: task.entry_point ?? "", num_cases: String(numCases) };
  const tpl = role === "tester" ? t.ut[task.kind] : t.code[task.kind];
  return [{ role: "user", content: tpl.render(vars) }];
}

/** A model to sample from: the name requests use, and how to serve it. */
export interface ModelTarget {
  /** `model` of the requests (adapter name, or the served model's name). */
  request: string;
  /** What the server loads ({base_model} of the command). */
  base: string;
  adapters: Adapter[];
  /** Joins the response-cache key, so retrained weights under the same name are sampled again. */
  identity: Record<string, unknown>;
}

/** Identity of a local checkpoint or adapter folder without reading its weights: config hash, weight sizes and mtimes. */
export async function folderIdentity(dir: string): Promise<Record<string, unknown>> {
  const real = await fsp.realpath(dir).catch(() => dir);
  const id: Record<string, unknown> = { path: real };
  for (const f of ["adapter_config.json", "config.json"]) if (await exists(path.join(real, f))) id[f] = await fileSha256(path.join(real, f));
  for (const f of await fsp.readdir(real).catch(() => [] as string[]))
    if (/\.(safetensors|bin)$/.test(f)) {
      const st = await fsp.stat(path.join(real, f));
      id[f] = { size: st.size, mtime: st.mtimeMs };
    }
  return id;
}

/** A model reference of the schedule (base + optional adapter) as something to serve and request. */
export async function targetOf(ref: { base: string; adapter: string | null }, adapterName: string): Promise<ModelTarget> {
  if (ref.adapter) {
    const real = await fsp.realpath(ref.adapter).catch(() => ref.adapter!);
    return { request: adapterName, base: ref.base, adapters: [{ name: adapterName, path: real }], identity: { base: ref.base, adapter: await folderIdentity(real) } };
  }
  const local = ref.base.startsWith("/") || ref.base.startsWith(".");
  return { request: ref.base, base: ref.base, adapters: [], identity: local ? { model: await folderIdentity(ref.base) } : { model: ref.base } };
}

export interface SamplingSettings {
  temperature: number;
  top_p: number;
  max_tokens: number;
  extra?: Record<string, unknown>;
}

/**
 * Serve `targets` (one server: every adapter on one base, or one model) for the time of `fn`, with a client
 * pointed at it. `server.command: null` uses the running endpoint at `server.base_url`.
 */
export async function withModels<T>(
  ctx: StageContext,
  server: Omit<ServerConfig, "command"> & { command?: string | null },
  targets: ModelTarget[],
  fn: (llm: LlmClient) => Promise<T>,
): Promise<T> {
  const adapters = targets.flatMap((t) => t.adapters);
  const bases = [...new Set(targets.map((t) => t.base))];
  let running: RunningServer | undefined;
  if (server.command) {
    if (bases.length > 1) throw new Error(`withModels: one server serves one base model (got ${bases.join(", ")})`);
    running = await startServer({ ...server, command: server.command }, adapters, { logFile: path.join(ctx.stageDir, "server.log"), baseModel: bases[0], log: (m) => ctx.log.info(m), signal: ctx.signal });
  } else if (adapters.length) await ensureAdapters(server, adapters);
  const stageLlm = await llmConfigForStage(ctx.root, ctx.name);
  const llm = createLlmClient(llmConfigSchema.parse({ ...stageLlm, backend: "openai", base_urls: [server.base_url], model: targets[0]?.request ?? "model" }), {
    cacheDir: ctx.cacheDir,
    stage: ctx.name,
    log: (m) => ctx.log.info(m),
  });
  try {
    return await fn(llm);
  } finally {
    const st = llm.stats();
    ctx.counters.add("llm_requests", st.requests);
    ctx.counters.add("llm_cached_samples", st.cacheHits);
    await llm.close();
    await running?.stop();
  }
}

export interface Sampled {
  texts: string[];
  finishReasons: string[];
  error?: string;
}

/** `n` samples per prompt (in input order); a request the client gave up on is `{error}`, counted by the caller. */
export async function sampleAll(
  ctx: StageContext,
  llm: LlmClient,
  target: ModelTarget,
  prompts: ChatMessage[][],
  n: number,
  sampling: SamplingSettings,
  templateHash: string,
  concurrency = 64,
): Promise<Sampled[]> {
  const q = new PQueue({ concurrency });
  const key = hashValue({ template: templateHash, model: target.identity });
  return Promise.all(
    prompts.map((messages) =>
      q.add(async (): Promise<Sampled> => {
        if (ctx.signal.aborted) throw new Error("interrupted");
        const r = await countedChat(ctx, llm, { messages, n, sampling: { temperature: sampling.temperature, top_p: sampling.top_p, max_tokens: sampling.max_tokens, extra: sampling.extra }, model: target.request, templateHash: key });
        return r.result ? { texts: r.result.texts, finishReasons: r.result.finishReasons } : { texts: [], finishReasons: [], error: r.error };
      }),
    ),
  );
}
