/**
 * LLM client contract (implemented in pipeline/llm/client.ts): OpenAI-compatible chat completions
 * (vLLM, SGLang, TGI, llama.cpp server, Ollama, OpenAI) with a persistent raw-response cache.
 */
export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

export interface Sampling {
  temperature: number;
  top_p: number;
  max_tokens: number;
  seed?: number;
  stop?: string[];
  /** Sent verbatim in the body (vLLM extras: top_k, min_p, repetition_penalty …). */
  extra?: Record<string, unknown>;
}

export interface ChatRequest {
  messages: ChatMessage[];
  /** Number of samples (choices). Cached per sample index, so raising n only asks for the new ones. */
  n?: number;
  /**
   * Index of the first sample wanted (default 0): samples before it are neither read nor requested, and their
   * texts come back as "" (finish reason "skipped"). Lets a caller that asks the same prompt again reserve a
   * fresh range of sample indices without paying for the ones in between.
   */
  first?: number;
  sampling?: Partial<Sampling>;
  /** Content hash of the prompt template used: part of the cache key. */
  templateHash?: string;
  /** Model override for this request (e.g. a LoRA adapter name on vLLM). */
  model?: string;
}

export interface ChatResult {
  /** One text per sample, ordered by choice index; length n. */
  texts: string[];
  finishReasons: string[];
  /** How many of the samples wanted (n − first) came from the cache. */
  cached: number;
  /** How many were asked of the server (the others wanted: n − first − cached). */
  requested: number;
  usage: { prompt_tokens: number; completion_tokens: number };
}

export interface LlmStats {
  requests: number;
  cacheHits: number;
  retries: number;
  failures: number;
  promptTokens: number;
  completionTokens: number;
  latencyMsTotal: number;
}

export interface LlmClient {
  readonly backend: "openai" | "heuristic";
  readonly model: string;
  /** Throws LlmError (one-line message) after retries are exhausted; heuristic backend throws always. */
  chat(req: ChatRequest): Promise<ChatResult>;
  /** What determines results (model, sampling): joins stage fingerprints. No URLs, keys or concurrency. */
  fingerprint(): Record<string, unknown>;
  stats(): LlmStats;
  close(): Promise<void>;
}
