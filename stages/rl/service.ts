/**
 * The UTRL reward service: an HTTP endpoint in front of one executor pool, for trainers that live in their
 * own (Python) ecosystem — TRL's GRPOTrainer `reward_funcs` and verl call it through trainers/utrl_reward.py.
 *
 *   POST /v1/rewards   {"rows": [reward row, …], "details"?: bool}
 *                      → {"results": [{id, r_valid, r_disc, reward, code_rewards, status, …}, …], "summary": {…}}
 *   GET  /v1/health    → {"ok": true, "version", "settings": {tau, lambda, timeout_s, checker, …}}
 *   GET  /v1/stats     → requests, rows, latency percentiles, executions and cache counters
 *
 * A request's rows are scored together (one sandbox request, identical executions once, a content-keyed
 * cache across requests): send every rollout of a training step in one call. Rows are the batch mode's rows
 * and the numbers are the batch mode's (both use stages/rl/engine.ts with the same `rl:` settings; the
 * settings are fixed when the service starts, a request cannot change them). Errors are JSON
 * `{"error": "<one line>"}` with status 400 (bad JSON, a bad row: its index and field), 401 (token), 404,
 * 413 (body over the limit) or 500. Binds to 127.0.0.1 unless told otherwise; with a token set, every
 * request must send `Authorization: Bearer <token>`.
 */
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { timingSafeEqual } from "node:crypto";
import { UserError } from "../../pipeline/errors.ts";
import { rlSemantics } from "./config.ts";
import { parseRewardRow, type RewardRow } from "./cases.ts";
import type { RewardEngine } from "./engine.ts";
import { outputRow, summarizeRewards } from "../rl-rewards.ts";

export const SERVICE_VERSION = "1";

export interface RewardServiceOptions {
  engine: RewardEngine;
  host?: string;
  port?: number;
  /** Largest request body, MiB. */
  maxBodyMb?: number;
  /** Required bearer token (none: no authentication). */
  token?: string;
  log?: (m: string) => void;
}

export interface RewardService {
  url: string;
  host: string;
  port: number;
  stats(): ServiceStats;
  close(): Promise<void>;
}

export interface ServiceStats {
  requests: number;
  errors: number;
  rows: number;
  in_flight: number;
  /** Latency of POST /v1/rewards requests, milliseconds. */
  latency_ms: { p50: number; p99: number; max: number; count: number };
  engine: ReturnType<RewardEngine["stats"]>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function quantile(sorted: number[], q: number): number {
  if (!sorted.length) return 0;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

async function readBody(req: http.IncomingMessage, max: number): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req) {
    n += (c as Buffer).length;
    if (n > max) throw new HttpError(413, `request body over ${Math.round(max / 1024 / 1024)} MiB; send fewer rows per request or raise rl-serve.max_body_mb`);
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** Parse a POST /v1/rewards body into rows (a bad row: HTTP 400 naming its index and field). */
export function parseRewardsRequest(text: string): { rows: RewardRow[]; details: boolean } {
  let body: any;
  try {
    body = JSON.parse(text);
  } catch {
    throw new HttpError(400, "the request body is not JSON; send {\"rows\": [...]}");
  }
  if (!body || typeof body !== "object" || !Array.isArray(body.rows)) throw new HttpError(400, 'the request body must be {"rows": [reward row, ...]}');
  const rows: RewardRow[] = [];
  body.rows.forEach((r: unknown, i: number) => {
    try {
      rows.push(parseRewardRow(r, `rows[${i}]`));
    } catch (e) {
      throw new HttpError(400, (e as Error).message);
    }
  });
  return { rows, details: body.details === true };
}

export async function startRewardService(o: RewardServiceOptions): Promise<RewardService> {
  const host = o.host ?? "127.0.0.1";
  const maxBody = (o.maxBodyMb ?? 256) * 1024 * 1024;
  const latencies: number[] = [];
  const st = { requests: 0, errors: 0, rows: 0, inFlight: 0 };
  const token = o.token ? Buffer.from(o.token) : undefined;

  const send = (res: http.ServerResponse, status: number, value: unknown) => {
    const data = JSON.stringify(value);
    res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(data) });
    res.end(data);
  };

  const server = http.createServer(async (req, res) => {
    st.requests++;
    try {
      if (token) {
        const got = Buffer.from(String(req.headers.authorization ?? "").replace(/^Bearer\s+/i, ""));
        if (got.length !== token.length || !timingSafeEqual(got, token)) throw new HttpError(401, "missing or wrong bearer token (set UTRL_REWARD_TOKEN for the client)");
      }
      const url = (req.url ?? "").split("?")[0];
      if (req.method === "GET" && url === "/v1/health") {
        return send(res, 200, { ok: true, version: SERVICE_VERSION, settings: rlSemantics(o.engine.cfg) });
      }
      if (req.method === "GET" && url === "/v1/stats") return send(res, 200, stats());
      if (req.method === "POST" && url === "/v1/rewards") {
        const t0 = performance.now();
        st.inFlight++;
        try {
          const { rows, details } = parseRewardsRequest(await readBody(req, maxBody));
          const results = await o.engine.score(rows, { details });
          st.rows += rows.length;
          const out = results.map(outputRow);
          send(res, 200, { results: out, summary: summarizeRewards(results) });
        } finally {
          st.inFlight--;
          latencies.push(performance.now() - t0);
          if (latencies.length > 100_000) latencies.splice(0, latencies.length - 50_000);
        }
        return;
      }
      throw new HttpError(404, `no route ${req.method} ${url}; use POST /v1/rewards, GET /v1/health or GET /v1/stats`);
    } catch (e) {
      st.errors++;
      const status = e instanceof HttpError ? e.status : 500;
      const msg = e instanceof HttpError || e instanceof UserError ? e.message : `internal error: ${(e as Error).message.split("\n")[0]}`;
      if (status === 500) o.log?.(`rl-serve: ${msg}`);
      if (!res.headersSent) send(res, status, { error: msg });
      else res.destroy();
    }
  });
  server.keepAliveTimeout = 65_000;
  server.requestTimeout = 0; // a large batch may take minutes
  await new Promise<void>((resolve, reject) => {
    server.once("error", (e: NodeJS.ErrnoException) =>
      reject(new UserError(e.code === "EADDRINUSE" ? `rl-serve: port ${o.port} on ${host} is in use; choose another with --port or rl-serve.port` : `rl-serve: cannot listen on ${host}:${o.port} (${e.message})`)),
    );
    server.listen(o.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const shownHost = host.includes(":") ? `[${host}]` : host;

  function stats(): ServiceStats {
    const sorted = [...latencies].sort((a, b) => a - b);
    return {
      requests: st.requests,
      errors: st.errors,
      rows: st.rows,
      in_flight: st.inFlight,
      latency_ms: { p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99), max: sorted.at(-1) ?? 0, count: sorted.length },
      engine: o.engine.stats(),
    };
  }

  return {
    url: `http://${shownHost}:${port}`,
    host,
    port,
    stats,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
