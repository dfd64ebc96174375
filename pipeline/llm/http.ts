/**
 * HTTP transport for the LLM client: a JSON POST returning status, Retry-After and body text, with a
 * whole-request timeout. The default uses node:http(s) with a keep-alive agent (about a third of the CPU
 * per request of global fetch, which matters at hundreds of requests/s); a `fetch` function can be
 * plugged in instead (tests, proxies). Failures are TransportError: "timeout" or "connection" (+ code).
 */
import * as http from "node:http";
import * as https from "node:https";

export interface PostReply {
  status: number;
  retryAfter: string | null;
  text: string;
}

export class TransportError extends Error {
  constructor(
    readonly kind: "timeout" | "connection",
    readonly code: string,
  ) {
    super(`${kind}: ${code}`);
  }
}

export interface Transport {
  post(url: string, headers: Record<string, string>, body: string, timeoutMs: number): Promise<PostReply>;
  close(): void;
}

export function nodeTransport(): Transport {
  const agents = { http: new http.Agent({ keepAlive: true }), https: new https.Agent({ keepAlive: true }) };
  return {
    post(url, headers, body, timeoutMs) {
      return new Promise<PostReply>((resolve, reject) => {
        const u = new URL(url);
        const mod = u.protocol === "https:" ? https : http;
        const data = Buffer.from(body, "utf8");
        let done = false;
        const finish = (f: () => void) => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          f();
        };
        const req = mod.request(
          u,
          { method: "POST", agent: u.protocol === "https:" ? agents.https : agents.http, headers: { ...headers, "content-length": String(data.length) } },
          (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () =>
              finish(() => {
                const ra = res.headers["retry-after"];
                resolve({ status: res.statusCode ?? 0, retryAfter: ra === undefined ? null : String(ra), text: Buffer.concat(chunks).toString("utf8") });
              }),
            );
            res.on("error", (e: NodeJS.ErrnoException) => finish(() => reject(new TransportError("connection", e.code ?? e.message))));
            res.on("aborted", () => finish(() => reject(new TransportError("connection", "ECONNRESET"))));
          },
        );
        const timer = setTimeout(() => {
          finish(() => reject(new TransportError("timeout", "ETIMEDOUT")));
          req.destroy();
        }, Math.min(timeoutMs, 2 ** 31 - 1));
        req.on("error", (e: NodeJS.ErrnoException) => finish(() => reject(new TransportError("connection", e.code ?? e.message))));
        req.end(data);
      });
    },
    close() {
      agents.http.destroy();
      agents.https.destroy();
    },
  };
}

export function fetchTransport(fetchFn: typeof fetch): Transport {
  return {
    async post(url, headers, body, timeoutMs) {
      try {
        const res = await fetchFn(url, { method: "POST", headers, body, signal: AbortSignal.timeout(Math.min(timeoutMs, 2 ** 31 - 1)) });
        return { status: res.status, retryAfter: res.headers.get("retry-after"), text: await res.text() };
      } catch (e) {
        const err = e as Error & { cause?: { code?: string; message?: string } };
        if (err.name === "TimeoutError" || err.name === "AbortError") throw new TransportError("timeout", "ETIMEDOUT");
        throw new TransportError("connection", err.cause?.code ?? err.cause?.message ?? err.message);
      }
    },
    close() {},
  };
}
