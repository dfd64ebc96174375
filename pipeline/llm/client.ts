/**
 * OpenAI-compatible chat-completions client (vLLM, SGLang, TGI, llama.cpp, Ollama, OpenAI) with:
 *  - the YAML `llm:` schema (a stage may override it under `<stage>.llm:`),
 *  - a persistent raw-response cache per sample index (pipeline/llm/cache.ts), checked before any call,
 *  - load spread over several base URLs (least in flight), bounded concurrency and an optional request
 *    rate (p-queue), a per-request timeout, retries with exponential backoff and jitter on 429 / 5xx /
 *    timeouts / connection errors (429 cools the server down for its Retry-After), then a counted failure,
 *  - per-stage counters (requests, cache hits, retries, failures, tokens, latency).
 * The "heuristic" backend is the embedded no-model default: its chat() always throws, and stages branch
 * on `client.backend` to use their built-in generators instead.
 */
import PQueue from "p-queue";
import { z } from "zod";
import { UserError } from "../errors.ts";
import { fetchTransport, nodeTransport, TransportError, type Transport } from "./http.ts";
import { ResponseCache, requestKey, sampleKey, type CacheEntry, type RequestIdentity } from "./cache.ts";
import type { ChatRequest, ChatResult, LlmClient, LlmStats } from "./types.ts";

export type { ChatMessage, ChatRequest, ChatResult, LlmClient, LlmStats, Sampling } from "./types.ts";

export const llmConfigSchema = z
  .strictObject({
    backend: z.enum(["openai", "heuristic"]).default("heuristic"),
    base_urls: z.array(z.url({ protocol: /^https?$/ })).default(["http://127.0.0.1:8000/v1"]),
    api_key_env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "an environment variable name").default("OPENAI_API_KEY"),
    model: z.string().default(""),
    temperature: z.number().min(0).max(2).default(0.7),
    top_p: z.number().gt(0).max(1).default(0.9),
    max_tokens: z.int().positive().default(1024),
    seed: z.int().optional(),
    stop: z.array(z.string().min(1)).optional(),
    extra_body: z.record(z.string(), z.unknown()).optional(),
    concurrency: z.int().positive().default(32),
    requests_per_second: z.number().positive().optional(),
    timeout_s: z.number().positive().default(120),
    max_retries: z.int().min(0).default(6),
  });

export type LlmConfig = z.output<typeof llmConfigSchema>;

/** Config keys that change speed, never results: left out of fingerprints. */
export const LLM_PERF_KEYS: string[] = ["base_urls", "api_key_env", "concurrency", "requests_per_second", "timeout_s", "max_retries"];

/** One-line failure of the LLM backend. `code` 2 for configuration/request problems, 1 for server trouble. */
export class LlmError extends UserError {
  constructor(
    message: string,
    readonly kind: "heuristic" | "http" | "timeout" | "connection" | "malformed" | "closed" | "request",
    readonly url?: string,
    readonly status?: number,
    code = 1,
  ) {
    super(message, code);
    this.name = "LlmError";
  }
}

export interface LlmClientOptions {
  /** Root cache folder: responses go to <cacheDir>/llm/. */
  cacheDir: string;
  /** Stage name, for the counters and messages. */
  stage: string;
  /** Use this fetch instead of the built-in node:http transport (tests, proxies). */
  fetch?: typeof fetch;
  log?: (m: string) => void;
  /** Backoff shape (not results-relevant): delay = min(maxMs, baseMs·2^attempt) · (0.5 … 1). */
  retry?: { baseMs?: number; maxMs?: number };
  /** Upper bound on an honoured Retry-After, seconds (default 600). */
  maxRetryAfterS?: number;
}

interface UrlState {
  url: string;
  inFlight: number;
  coolUntil: number;
}

type Attempt =
  | { ok: true; json: any; url: string; ms: number }
  | { ok: false; retryable: boolean; kind: LlmError["kind"]; url: string; status?: number; retryAfterMs?: number; detail: string };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function createLlmClient(cfg: LlmConfig, opts: LlmClientOptions): LlmClient {
  if (cfg.backend === "heuristic") return heuristicClient();
  // Checked here, not in the schema, so a stage may supply the model under `<stage>.llm:`.
  if (!cfg.model) throw new UserError(`${opts.stage}: llm.model is required with llm.backend openai (the served model or adapter name)`);
  if (cfg.base_urls.length === 0) throw new UserError(`${opts.stage}: llm.base_urls needs at least one URL like http://127.0.0.1:8000/v1`);
  return new OpenAIClient(cfg, opts);
}

function heuristicClient(): LlmClient {
  const zero: LlmStats = { requests: 0, cacheHits: 0, retries: 0, failures: 0, promptTokens: 0, completionTokens: 0, latencyMsTotal: 0 };
  return {
    backend: "heuristic",
    model: "heuristic",
    async chat() {
      throw new LlmError("llm.backend is heuristic: this stage uses its built-in generator (set llm.backend: openai to call a model)", "heuristic", undefined, undefined, 2);
    },
    fingerprint: () => ({ backend: "heuristic" }),
    stats: () => ({ ...zero }),
    close: async () => {},
  };
}

class OpenAIClient implements LlmClient {
  readonly backend = "openai" as const;
  readonly model: string;
  private readonly cache: ResponseCache;
  private readonly queue: PQueue;
  private readonly urls: UrlState[];
  private readonly transport: Transport;
  private readonly counters: LlmStats = { requests: 0, cacheHits: 0, retries: 0, failures: 0, promptTokens: 0, completionTokens: 0, latencyMsTotal: 0 };
  private readonly inflight = new Map<string, Promise<unknown>>();
  private rr = 0;
  private closed = false;

  constructor(private readonly cfg: LlmConfig, private readonly opts: LlmClientOptions) {
    this.model = cfg.model;
    this.cache = new ResponseCache(opts.cacheDir, opts.log);
    this.transport = opts.fetch ? fetchTransport(opts.fetch) : nodeTransport();
    this.urls = cfg.base_urls.map((u) => ({ url: u.replace(/\/+$/, ""), inFlight: 0, coolUntil: 0 }));
    const rate = cfg.requests_per_second;
    const cap = rate ? Math.max(1, Math.round(rate)) : undefined;
    this.queue = new PQueue({
      concurrency: cfg.concurrency,
      ...(rate && cap ? { intervalCap: cap, interval: Math.round((1000 * cap) / rate), strict: true } : {}),
    });
  }

  fingerprint(): Record<string, unknown> {
    const c = this.cfg;
    return { backend: "openai", model: c.model, temperature: c.temperature, top_p: c.top_p, max_tokens: c.max_tokens, seed: c.seed, stop: c.stop, extra_body: c.extra_body };
  }

  stats(): LlmStats {
    return { ...this.counters };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue.onIdle();
    while (this.inflight.size) await Promise.allSettled([...this.inflight.values()]);
    this.transport.close();
    await this.cache.close();
    const s = this.counters;
    if (s.requests || s.cacheHits || s.failures)
      this.opts.log?.(
        `llm[${this.opts.stage}]: ${s.requests} requests, ${s.cacheHits} cached samples, ${s.retries} retries, ${s.failures} failures, ` +
          `${s.promptTokens}+${s.completionTokens} tokens, mean latency ${s.requests ? Math.round(s.latencyMsTotal / s.requests) : 0} ms`,
      );
  }

  async chat(req: ChatRequest): Promise<ChatResult> {
    if (this.closed) throw new LlmError(`llm client for stage ${this.opts.stage} is closed`, "closed");
    const n = req.n ?? 1;
    if (!Number.isInteger(n) || n < 1) throw new LlmError(`llm request n must be a positive integer, got ${n}`, "request", undefined, undefined, 2);
    const first = req.first ?? 0;
    if (!Number.isInteger(first) || first < 0 || first >= n) throw new LlmError(`llm request first must be an integer in [0, n), got ${first} (n = ${n})`, "request", undefined, undefined, 2);
    if (!Array.isArray(req.messages) || req.messages.length === 0) throw new LlmError("llm request has no messages", "request", undefined, undefined, 2);
    const s = req.sampling ?? {};
    const extra = { ...(this.cfg.extra_body ?? {}), ...(s.extra ?? {}) };
    const id: RequestIdentity = {
      model: req.model ?? this.cfg.model,
      messages: req.messages.map((m) => ({ role: m.role, content: m.content })),
      temperature: s.temperature ?? this.cfg.temperature,
      top_p: s.top_p ?? this.cfg.top_p,
      max_tokens: s.max_tokens ?? this.cfg.max_tokens,
      seed: s.seed ?? this.cfg.seed,
      stop: s.stop ?? this.cfg.stop,
      extra: Object.keys(extra).length ? extra : undefined,
      templateHash: req.templateHash,
    };
    const rk = requestKey(id);
    // The same request already in flight (duplicate prompts): wait for it, then read its answers from the cache.
    while (this.inflight.has(rk)) await this.inflight.get(rk)!.catch(() => {});
    const p = this.fill(rk, id, n, first);
    this.inflight.set(rk, p);
    try {
      return await p;
    } finally {
      this.inflight.delete(rk);
    }
  }

  private async fill(rk: string, id: RequestIdentity, n: number, first: number): Promise<ChatResult> {
    const entries: (CacheEntry | undefined)[] = await Promise.all(Array.from({ length: n }, (_, i) => (i < first ? undefined : this.cache.get(sampleKey(rk, i)))));
    const cached = entries.filter(Boolean).length;
    this.counters.cacheHits += cached;
    const usage = { prompt_tokens: 0, completion_tokens: 0 };
    let missing = entries.flatMap((e, i) => (e || i < first ? [] : [i]));
    const requested = missing.length;
    while (missing.length) {
      const lo = missing[0];
      const body: Record<string, unknown> = {
        ...(id.extra ?? {}),
        model: id.model,
        messages: id.messages,
        n: missing.length,
        temperature: id.temperature,
        top_p: id.top_p,
        max_tokens: id.max_tokens,
        // A seeded top-up must not replay the samples already cached: shift the seed by the first new index.
        ...(id.seed !== undefined ? { seed: id.seed + lo } : {}),
        ...(id.stop ? { stop: id.stop } : {}),
        stream: false,
      };
      const { json, url } = await this.send(body);
      let choices: any[];
      try {
        choices = checkChoices(json, url, id.model);
      } catch (e) {
        this.counters.failures++;
        throw e;
      }
      const u = json.usage ?? {};
      const pt = Number(u.prompt_tokens) || 0;
      const ct = Number(u.completion_tokens) || 0;
      usage.prompt_tokens += pt;
      usage.completion_tokens += ct;
      this.counters.promptTokens += pt;
      this.counters.completionTokens += ct;
      const got = choices.slice(0, missing.length);
      const now = new Date().toISOString();
      const fresh: CacheEntry[] = got.map((c, j) => ({
        v: 1,
        key: sampleKey(rk, missing[j]),
        index: missing[j],
        model: id.model,
        text: typeof c.message?.content === "string" ? c.message.content : "",
        finish_reason: String(c.finish_reason ?? "unknown"),
        choice: c,
        usage: { prompt_tokens: pt, completion_tokens: ct },
        request_n: got.length,
        server: url,
        created: now,
      }));
      await Promise.all(fresh.map((e) => this.cache.put(e)));
      for (const e of fresh) entries[e.index] = e;
      // Servers that ignore `n` (llama.cpp, Ollama) answer fewer choices: ask again for the rest.
      missing = missing.slice(got.length);
    }
    return {
      texts: entries.map((e) => e?.text ?? ""),
      finishReasons: entries.map((e) => e?.finish_reason ?? "skipped"),
      cached,
      requested,
      usage,
    };
  }

  /** One logical request: retries with backoff until success, a non-retryable answer or max_retries. */
  private async send(body: Record<string, unknown>): Promise<{ json: any; url: string }> {
    const max = this.cfg.max_retries;
    for (let attempt = 0; ; attempt++) {
      const r = (await this.queue.add(() => this.attempt(body))) as Attempt;
      if (r.ok) {
        this.counters.requests++;
        this.counters.latencyMsTotal += r.ms;
        return { json: r.json, url: r.url };
      }
      if (!r.retryable || attempt >= max) {
        this.counters.failures++;
        throw failure(r, attempt + 1, this.cfg, String(body.model));
      }
      this.counters.retries++;
      const base = this.opts.retry?.baseMs ?? 500;
      const cap = this.opts.retry?.maxMs ?? 30_000;
      const backoff = Math.min(cap, base * 2 ** attempt) * (0.5 + Math.random() * 0.5);
      // A 429 cooled its server down (pickUrl skips it); the retry waits for the backoff and a ready server.
      const wait = Math.max(backoff, this.readyInMs());
      this.opts.log?.(`llm[${this.opts.stage}]: ${r.url} ${r.detail}; retry ${attempt + 1}/${max} in ${(wait / 1000).toFixed(1)} s`);
      await sleep(wait);
    }
  }

  /** Milliseconds until some server is out of its 429 cool-down (0 when one is ready). */
  private readyInMs(): number {
    return Math.max(0, Math.min(...this.urls.map((u) => u.coolUntil)) - Date.now());
  }

  /** Least-loaded server that is not cooling down (waits for the earliest one when all are). */
  private async pickUrl(): Promise<UrlState> {
    for (;;) {
      const now = Date.now();
      const ready = this.urls.filter((u) => u.coolUntil <= now);
      if (ready.length) {
        const start = this.rr++ % ready.length;
        let best = ready[start];
        for (let k = 1; k < ready.length; k++) {
          const u = ready[(start + k) % ready.length];
          if (u.inFlight < best.inFlight) best = u;
        }
        return best;
      }
      await sleep(Math.min(...this.urls.map((u) => u.coolUntil)) - now);
    }
  }

  private async attempt(body: Record<string, unknown>): Promise<Attempt> {
    const u = await this.pickUrl();
    u.inFlight++;
    const t0 = performance.now();
    const headers: Record<string, string> = { "content-type": "application/json" };
    const key = process.env[this.cfg.api_key_env];
    if (key) headers.authorization = `Bearer ${key}`;
    try {
      const res = await this.transport.post(`${u.url}/chat/completions`, headers, JSON.stringify(body), this.cfg.timeout_s * 1000);
      const text = res.text;
      if (res.status < 200 || res.status >= 300) {
        const detail = `answered ${res.status}${errorDetail(text)}`;
        if (res.status === 429) {
          const ra = retryAfterMs(res.retryAfter, this.opts.maxRetryAfterS ?? 600);
          // Cool this server down: no request goes to it before Retry-After (or the backoff) has passed.
          u.coolUntil = Math.max(u.coolUntil, Date.now() + (ra ?? 0));
          const cool = ra !== undefined ? ` (Retry-After ${(ra / 1000).toFixed(1)} s: server cooling down)` : "";
          return { ok: false, retryable: true, kind: "http", url: u.url, status: 429, retryAfterMs: ra, detail: detail + cool };
        }
        const retryable = res.status >= 500 || res.status === 408;
        return { ok: false, retryable, kind: "http", url: u.url, status: res.status, detail };
      }
      let json: any;
      try {
        json = JSON.parse(text);
      } catch {
        return { ok: false, retryable: false, kind: "malformed", url: u.url, detail: `sent a body that is not JSON (${JSON.stringify(text.slice(0, 60))}…)` };
      }
      return { ok: true, json, url: u.url, ms: performance.now() - t0 };
    } catch (e) {
      if (!(e instanceof TransportError)) throw e;
      if (e.kind === "timeout") return { ok: false, retryable: true, kind: "timeout", url: u.url, detail: `did not answer within ${this.cfg.timeout_s} s` };
      return { ok: false, retryable: true, kind: "connection", url: u.url, detail: `connection failed (${e.code})` };
    } finally {
      u.inFlight--;
    }
  }
}

function checkChoices(json: any, url: string, model: string): any[] {
  if (!json || typeof json !== "object" || !Array.isArray(json.choices) || json.choices.length === 0)
    throw new LlmError(
      `LLM server ${url} sent a response without choices for model "${model}": check that llm.base_urls points to an OpenAI-compatible /v1 endpoint`,
      "malformed",
      url,
    );
  const choices = [...json.choices].sort((a, b) => (Number(a?.index) || 0) - (Number(b?.index) || 0));
  for (const c of choices)
    if (!c || typeof c !== "object" || !c.message || (c.message.content != null && typeof c.message.content !== "string"))
      throw new LlmError(`LLM server ${url} sent a choice without message.content: check that llm.base_urls points to an OpenAI-compatible /v1 endpoint`, "malformed", url);
  return choices;
}

function failure(r: Extract<Attempt, { ok: false }>, attempts: number, cfg: LlmConfig, model: string): LlmError {
  const after = attempts > 1 ? ` after ${attempts} attempts` : "";
  const at = `LLM server ${r.url}`;
  switch (r.kind) {
    case "timeout":
      return new LlmError(`${at} ${r.detail}${after}: raise llm.timeout_s, lower llm.concurrency or check the server`, "timeout", r.url);
    case "connection":
      return new LlmError(`${at}: ${r.detail}${after}: start the server or fix llm.base_urls`, "connection", r.url);
    case "malformed":
      return new LlmError(`${at} ${r.detail}: check that llm.base_urls points to an OpenAI-compatible /v1 endpoint`, "malformed", r.url);
    default:
      break;
  }
  const s = r.status ?? 0;
  let what: string;
  if (s === 401 || s === 403) what = `set a valid API key in $${cfg.api_key_env} (llm.api_key_env)`;
  else if (s === 404) what = `check llm.model / the adapter name "${model}" (GET ${r.url}/models lists them) and the /v1 suffix of llm.base_urls`;
  else if (s === 429) what = "the server keeps rate-limiting: lower llm.concurrency or set llm.requests_per_second";
  else if (s >= 500 || s === 408) what = "check the server log, or raise llm.max_retries";
  else what = "check the llm sampling settings (max_tokens against the context length, stop, extra_body)";
  return new LlmError(`${at} ${r.detail}${after}: ${what}`, "http", r.url, s, s >= 400 && s < 500 && s !== 429 && s !== 408 ? 2 : 1);
}

/** Server error message, shortened to stay on one line. */
function errorDetail(text: string): string {
  let msg = text;
  try {
    const j = JSON.parse(text);
    msg = j?.error?.message ?? j?.message ?? j?.detail ?? text;
    if (typeof msg !== "string") msg = JSON.stringify(msg);
  } catch {
    /* not JSON: keep the text */
  }
  msg = msg.replace(/\s+/g, " ").trim();
  if (!msg) return "";
  return ` (${msg.length > 160 ? msg.slice(0, 160) + "…" : msg})`;
}

/** Retry-After: delta-seconds or an HTTP date; capped. */
export function retryAfterMs(value: string | null, capS: number): number | undefined {
  if (!value) return undefined;
  const v = value.trim();
  let ms: number;
  if (/^\d+(\.\d+)?$/.test(v)) ms = parseFloat(v) * 1000;
  else {
    const t = Date.parse(v);
    if (Number.isNaN(t)) return undefined;
    ms = t - Date.now();
  }
  return Math.max(0, Math.min(ms, capS * 1000));
}

/** GET <base_url>/models: the served model and adapter ids (vLLM lists LoRA adapters with `parent`). */
export async function listModels(baseUrl: string, opts: { apiKeyEnv?: string; timeoutS?: number; fetch?: typeof fetch } = {}): Promise<{ id: string; parent?: string }[]> {
  const url = baseUrl.replace(/\/+$/, "");
  const headers: Record<string, string> = {};
  const key = process.env[opts.apiKeyEnv ?? "OPENAI_API_KEY"];
  if (key) headers.authorization = `Bearer ${key}`;
  let res: Response;
  try {
    res = await (opts.fetch ?? fetch)(`${url}/models`, { headers, signal: AbortSignal.timeout((opts.timeoutS ?? 30) * 1000) });
  } catch (e) {
    const err = e as Error & { cause?: { code?: string } };
    throw new LlmError(`cannot list models at ${url}/models (${err.cause?.code ?? err.message}): start the server or fix llm.base_urls`, "connection", url);
  }
  const text = await res.text();
  if (!res.ok) throw new LlmError(`LLM server ${url} answered ${res.status} to GET /models${errorDetail(text)}: check the server and llm.base_urls`, "http", url, res.status);
  try {
    const j = JSON.parse(text);
    if (!Array.isArray(j?.data)) throw new Error("no data");
    return j.data.map((m: any) => ({ id: String(m.id), ...(m.parent ? { parent: String(m.parent) } : {}) }));
  } catch {
    throw new LlmError(`LLM server ${url} sent a malformed model list: check that llm.base_urls points to an OpenAI-compatible /v1 endpoint`, "malformed", url);
  }
}
