/**
 * Loopback OpenAI-compatible server for tests and benches: `POST /v1/chat/completions` answers from a
 * script (per request: choices, 429 with Retry-After, any HTTP error, slow replies, malformed JSON,
 * truncated choices, dropped connections) and `GET /v1/models` lists the configured models/adapters.
 * Scripts see the parsed body, so tests can answer per adapter name (`model`) or per prompt content.
 */
import * as http from "node:http";
import type { AddressInfo } from "node:net";

export interface ScriptRequest {
  /** The parsed JSON body as received. */
  body: any;
  model: string;
  messages: { role: string; content: string }[];
  /** The `n` the client asked for (1 when absent). */
  n: number;
  /** 0-based count of chat-completion requests received so far (this one included). */
  index: number;
}

export type ScriptedReply =
  /** n texts (normally `choices.length === n`; fewer imitates servers that ignore `n`). */
  | { choices: string[]; finishReasons?: string[]; truncated?: boolean; delayMs?: number }
  /** finish_reason "length" on every choice (default text: a cut-off UT answer). */
  | { truncated: true; choices?: string[]; delayMs?: number }
  /** An HTTP error; 429 sends `Retry-After` when `retryAfterS` is given. */
  | { status: number; retryAfterS?: number; message?: string; delayMs?: number }
  /** Slow reply: waits `delayMs` (e.g. past the client timeout), then answers `then` (default one "slow" text per n). */
  | { delayMs: number; then?: ScriptedReply }
  /** 200 with a body that is not JSON. */
  | { malformed: true; delayMs?: number }
  /** Closes the socket without answering (a connection error for the client). */
  | { drop: true };

export interface OpenAIServerOptions {
  script: (req: ScriptRequest) => ScriptedReply | Promise<ScriptedReply>;
  /** Latency added to every chat-completion request, milliseconds. */
  latencyMs?: number;
  /** Ids listed by `GET /v1/models` (default ["test-model"]); `parent` marks LoRA adapters as vLLM does. */
  models?: { id: string; parent?: string }[];
}

export interface OpenAIServer {
  /** Base URL: http://127.0.0.1:PORT/v1 */
  url: string;
  /** Parsed bodies of the chat-completion requests received, in order. */
  requests: any[];
  /** Request headers (lower-case names) of the chat-completion requests, in order. */
  headers: http.IncomingHttpHeaders[];
  /** Most chat-completion requests in progress at once so far (reset with `resetMaxInFlight`). */
  readonly maxInFlight: number;
  resetMaxInFlight(): void;
  /**
   * How busy the server was since `from` (performance.now() ms; default: the start): the time integral of
   * min(requests in progress, capacity), and the span from the first request's arrival to the last answer.
   * busyMs / (capacity × spanMs) is the share of its concurrency the server was kept busy.
   */
  busy(capacity: number, from?: number): { busyMs: number; spanMs: number; requests: number };
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const words = (s: string) => (s.match(/\S+/g) ?? []).length;

export async function startOpenAIServer(opts: OpenAIServerOptions): Promise<OpenAIServer> {
  const requests: any[] = [];
  const headers: http.IncomingHttpHeaders[] = [];
  const models = opts.models ?? [{ id: "test-model" }];
  let count = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  /** In-flight changes: [time (performance.now()), +1 | -1]. */
  const changes: [number, number][] = [];

  const server = http.createServer(async (req, res) => {
    try {
      const url = req.url ?? "";
      if (req.method === "GET" && url === "/v1/models") {
        const data = models.map((m) => ({ id: m.id, object: "model", created: 0, owned_by: "loopback", root: m.id, parent: m.parent ?? null }));
        return sendJson(res, 200, { object: "list", data });
      }
      if (req.method !== "POST" || url !== "/v1/chat/completions") {
        return sendJson(res, 404, { error: { message: `no route ${req.method} ${url}`, type: "not_found" } });
      }
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      let body: any;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch {
        return sendJson(res, 400, { error: { message: "request body is not JSON", type: "invalid_request_error" } });
      }
      const index = count++;
      maxInFlight = Math.max(maxInFlight, ++inFlight);
      changes.push([performance.now(), 1]);
      res.once("close", () => {
        inFlight--;
        changes.push([performance.now(), -1]);
      });
      requests.push(body);
      headers.push(req.headers);
      const n = Number.isInteger(body.n) && body.n > 0 ? body.n : 1;
      const messages = Array.isArray(body.messages) ? body.messages : [];
      if (opts.latencyMs) await sleep(opts.latencyMs);
      let reply = await opts.script({ body, model: String(body.model ?? ""), messages, n, index });
      for (;;) {
        if ("delayMs" in reply && reply.delayMs) await sleep(reply.delayMs);
        if ("then" in reply || (!("choices" in reply) && !("status" in reply) && !("malformed" in reply) && !("drop" in reply) && !("truncated" in reply))) {
          reply = ("then" in reply && reply.then) || { choices: Array.from({ length: n }, () => "slow") };
          continue;
        }
        break;
      }
      if (res.destroyed) return;
      if ("drop" in reply) {
        req.socket.destroy();
        return;
      }
      if ("malformed" in reply) {
        res.writeHead(200, { "content-type": "application/json" });
        res.end('{"id": "chatcmpl-x", "choices": [{"index": 0, "message": {"content": "unterminated');
        return;
      }
      if ("status" in reply) {
        const h: Record<string, string> = {};
        if (reply.retryAfterS !== undefined) h["retry-after"] = String(reply.retryAfterS);
        return sendJson(res, reply.status, { error: { message: reply.message ?? `scripted ${reply.status}`, type: "scripted" } }, h);
      }
      const texts = reply.choices ?? Array.from({ length: n }, () => "## Unit Test\n### Input Arguments\nArguments: ```f([1, 2,");
      const promptTokens = messages.reduce((a: number, m: any) => a + words(String(m?.content ?? "")), 0);
      const choices = texts.map((text, i) => ({
        index: i,
        message: { role: "assistant", content: text },
        logprobs: null,
        finish_reason: reply.truncated ? "length" : ("finishReasons" in reply && reply.finishReasons?.[i]) || "stop",
      }));
      const completionTokens = texts.reduce((a, t) => a + words(t), 0);
      sendJson(res, 200, {
        id: `chatcmpl-${index}`,
        object: "chat.completion",
        created: Math.floor(Date.now() / 1000),
        model: body.model,
        choices,
        usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens },
      });
    } catch (e) {
      if (!res.headersSent) sendJson(res, 500, { error: { message: `script threw: ${(e as Error).message}`, type: "script_error" } });
      else res.destroy();
    }
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    requests,
    headers,
    get maxInFlight() {
      return maxInFlight;
    },
    resetMaxInFlight: () => (maxInFlight = inFlight),
    busy(capacity: number, from = 0) {
      let level = 0;
      let busyMs = 0;
      let last = 0;
      let first: number | undefined;
      let end = 0;
      let requests = 0;
      for (const [t, d] of changes) {
        if (t >= from && level > 0) busyMs += Math.min(level, capacity) * (t - Math.max(last, from));
        level += d;
        last = t;
        if (t >= from) {
          if (d > 0) {
            requests++;
            first ??= t;
          }
          end = t;
        }
      }
      return { busyMs, spanMs: first === undefined ? 0 : end - first, requests };
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function sendJson(res: http.ServerResponse, status: number, value: unknown, extra: Record<string, string> = {}) {
  const data = JSON.stringify(value);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(data), ...extra });
  res.end(data);
}
