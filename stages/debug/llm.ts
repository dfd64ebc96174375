/**
 * Model calls of UTDebug and best-of-N: every call goes through the project's LLM client (raw-response cache,
 * retries, concurrency) via countedChat, so a re-run is answered from the cache. A request that fails on its
 * own after the client's retries (a timeout, a 5xx, a prompt the server rejects) comes back as `error` and
 * is treated as an empty reply by the caller (and counted); errors every request would hit abort the stage.
 *
 * The same request asked again — a discarded edit asked for anew, a problem regenerated without new feedback,
 * the same code critiqued twice — must get a fresh sample, as the reference's vLLM sampling does: `SampleIndex`
 * numbers identical requests, and the n-th asking reads sample n of that request (the client caches samples
 * per index, so earlier samples are never requested again).
 */
import type { StageContext } from "../../pipeline/stage.ts";
import type { ChatMessage, ChatRequest, LlmClient, Sampling } from "../../pipeline/llm/types.ts";
import { hashValue } from "../../pipeline/util.ts";
import { countedChat } from "../common.ts";

export interface CallTally {
  /** Samples the server produced for this job (not from the cache). */
  requests: number;
  /** Samples answered from the cache. */
  cached: number;
  /** Requests that failed after the client's retries (treated as empty replies). */
  failures: number;
}

export const newTally = (): CallTally => ({ requests: 0, cached: 0, failures: 0 });

export interface Asker {
  ctx: StageContext;
  llm: LlmClient;
}

export interface AskResult {
  texts: string[];
  finishReasons: string[];
  error?: string;
}

/** One chat request with n samples; on a per-request failure, n empty texts and the error. */
export async function ask(a: Asker, req: ChatRequest, tally: CallTally): Promise<AskResult> {
  const n = req.n ?? 1;
  const r = await countedChat(a.ctx, a.llm, req);
  if (!r.result) {
    tally.failures++;
    return { texts: Array(n).fill(""), finishReasons: Array(n).fill("error"), error: r.error };
  }
  tally.cached += r.result.cached;
  tally.requests += r.result.requested;
  return { texts: r.result.texts, finishReasons: r.result.finishReasons };
}

/** Numbers identical requests of one job (see the module comment). */
export class SampleIndex {
  private readonly seen = new Map<string, number>();
  next(model: string, messages: ChatMessage[], sampling: Partial<Sampling>): number {
    const key = hashValue({ model, messages, sampling });
    const i = this.seen.get(key) ?? 0;
    this.seen.set(key, i + 1);
    return i;
  }
}

/** One fresh sample of a chat: the `index`-th sample of that request. */
export async function askOne(a: Asker, req: Omit<ChatRequest, "n">, index: number, tally: CallTally): Promise<{ text: string; finishReason: string; sample: number; error?: string }> {
  const r = await ask(a, { ...req, n: index + 1 }, tally);
  return { text: r.texts[index] ?? "", finishReason: r.finishReasons[index] ?? "error", sample: index, ...(r.error ? { error: r.error } : {}) };
}
