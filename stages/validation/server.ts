/**
 * Model server management for validation. Checkpoints are LoRA adapters served by an OpenAI-compatible
 * endpoint that supports adapters (vLLM `--enable-lora --lora-modules name=path …`, or run-time loading via
 * `POST /v1/load_lora_adapter`) and are requested by adapter name.
 *  - start-and-stop mode: `server.command` (placeholders `{adapters}`, `{port}`, `{max_lora_rank}`,
 *    `{base_model}`) is started in its own process group, polled until `GET <base_url>/models` lists every
 *    adapter (or `health_timeout_s` passes), and stopped afterwards (SIGTERM, then SIGKILL).
 *  - existing-endpoint mode: adapters the endpoint does not list are loaded at run time when it allows it.
 * Adapters whose LoRA rank is above the server's maximum (vLLM's default is 16) raise `{max_lora_rank}`.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, promises as fsp } from "node:fs";
import * as path from "node:path";
import { z } from "zod";
import { UserError } from "../../pipeline/errors.ts";
import { readJson } from "../../pipeline/util.ts";
import { listModels } from "../../pipeline/llm/client.ts";

export const serverSchema = z.strictObject({
  /** Shell command that starts the server; omit to use a running endpoint at base_url. */
  command: z.string().min(1).optional(),
  base_url: z.string().url().default("http://127.0.0.1:8000/v1"),
  health_timeout_s: z.number().positive().default(900),
  /** Lower bound for `{max_lora_rank}`; raised automatically to the largest adapter rank. */
  max_lora_rank: z.number().int().positive().default(16),
  /** Load adapters the running endpoint lacks through `/load_lora_adapter` (vLLM runtime LoRA updating). */
  load_adapters: z.boolean().default(true),
  /** Seconds to wait after SIGTERM before SIGKILL. */
  stop_timeout_s: z.number().positive().default(30),
});
export type ServerConfig = z.infer<typeof serverSchema>;

export interface Adapter {
  name: string;
  path: string;
}

/** vLLM's accepted `max_lora_rank` values. */
export const LORA_RANKS = [1, 8, 16, 32, 64, 128, 256, 320, 512];

/** LoRA rank `r` from a PEFT adapter folder (`adapter_config.json`), undefined when absent. */
export async function adapterRank(dir: string): Promise<number | undefined> {
  const cfg = await readJson<{ r?: number }>(path.join(dir, "adapter_config.json")).catch(() => undefined);
  return typeof cfg?.r === "number" ? cfg.r : undefined;
}

/** The `max_lora_rank` to start the server with: ≥ configured, ≥ every adapter, rounded up to an allowed value. */
export function requiredLoraRank(ranks: (number | undefined)[], configured = 16): number {
  const need = Math.max(configured, ...ranks.filter((r): r is number => typeof r === "number"));
  const allowed = LORA_RANKS.find((r) => r >= need);
  if (allowed === undefined) throw new UserError(`LoRA rank ${need} is above the largest rank vLLM serves (512)`);
  return allowed;
}

const shq = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

export function renderCommand(
  cmd: string,
  v: { adapters: Adapter[]; port: string; maxLoraRank: number; baseModel?: string },
): string {
  let out = cmd;
  if (v.adapters.length === 0) out = out.replace(/--lora-modules\s+\{adapters\}/g, "");
  const vars: Record<string, string> = {
    adapters: v.adapters.map((a) => shq(`${a.name}=${a.path}`)).join(" "),
    port: v.port,
    max_lora_rank: String(v.maxLoraRank),
    base_model: v.baseModel ? shq(v.baseModel) : "",
  };
  return out.replace(/\{(adapters|port|max_lora_rank|base_model)\}/g, (_, k: string) => vars[k]);
}

export function portOf(baseUrl: string): string {
  const u = new URL(baseUrl);
  return u.port || (u.protocol === "https:" ? "443" : "80");
}

/** Names the endpoint serves (`GET /models`), or undefined when it is not answering (yet). */
export async function servedModels(baseUrl: string, f?: typeof fetch): Promise<string[] | undefined> {
  try {
    return (await listModels(baseUrl, { timeoutS: 5, fetch: f })).map((m) => m.id);
  } catch {
    return undefined;
  }
}

/** Make sure every adapter is served by a running endpoint, loading missing ones at run time if allowed. */
export async function ensureAdapters(
  cfg: Pick<ServerConfig, "base_url" | "load_adapters">,
  adapters: Adapter[],
  f: typeof fetch = fetch,
): Promise<void> {
  const models = await servedModels(cfg.base_url, f);
  if (!models)
    throw new UserError(
      `no OpenAI-compatible server answers at ${cfg.base_url}/models: start it, fix validate.server.base_url, or set validate.server.command`,
    );
  const root = cfg.base_url.replace(/\/v1\/?$/, "");
  for (const a of adapters) {
    if (models.includes(a.name)) continue;
    if (!cfg.load_adapters)
      throw new UserError(
        `the server at ${cfg.base_url} does not serve adapter ${a.name}: add --lora-modules ${a.name}=${a.path} or set validate.server.load_adapters: true`,
      );
    const res = await f(`${root}/v1/load_lora_adapter`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ lora_name: a.name, lora_path: a.path }),
    }).catch(() => undefined);
    if (!res || !res.ok)
      throw new UserError(
        `could not load adapter ${a.name} on ${cfg.base_url} (HTTP ${res?.status ?? "error"}): start vLLM with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True or list it in --lora-modules`,
      );
  }
}

export interface RunningServer {
  baseUrl: string;
  stop(): Promise<void>;
}

async function tail(file: string): Promise<string> {
  const text = await fsp.readFile(file, "utf8").catch(() => "");
  const lines = text.trim().split("\n").filter(Boolean);
  return (lines.at(-1) ?? "").slice(0, 300);
}

/** Start the configured server, wait until it lists every adapter, return a handle that stops it. */
export async function startServer(
  cfg: ServerConfig,
  adapters: Adapter[],
  opts: { logFile: string; baseModel?: string; log?: (m: string) => void; fetch?: typeof fetch; signal?: AbortSignal },
): Promise<RunningServer> {
  if (!cfg.command) throw new Error("startServer: no command");
  const ranks = await Promise.all(adapters.map((a) => adapterRank(a.path)));
  const maxLoraRank = requiredLoraRank(ranks, cfg.max_lora_rank);
  if (maxLoraRank > 16 && !cfg.command.includes("{max_lora_rank}") && !/--max-lora-rank/.test(cfg.command))
    throw new UserError(
      `an adapter has LoRA rank above vLLM's default maximum 16 (needs ${maxLoraRank}): add --max-lora-rank {max_lora_rank} to validate.server.command`,
    );
  const cmd = renderCommand(cfg.command, {
    adapters,
    port: portOf(cfg.base_url),
    maxLoraRank,
    baseModel: opts.baseModel,
  });
  if (await servedModels(cfg.base_url, opts.fetch))
    throw new UserError(
      `something already answers at ${cfg.base_url}; stop it, change the port, or drop validate.server.command to use it`,
    );
  await fsp.mkdir(path.dirname(opts.logFile), { recursive: true });
  const logStream = createWriteStream(opts.logFile, { flags: "a" });
  await new Promise((r) => logStream.once("open", r));
  opts.log?.(`starting model server: ${cmd} (log: ${opts.logFile})`);
  const child: ChildProcess = spawn("/bin/sh", ["-c", cmd], {
    detached: true,
    stdio: ["ignore", logStream, logStream],
  });
  let exited: number | null | undefined;
  const exitP = new Promise<void>((resolve) =>
    child.once("exit", (code, sig) => {
      exited = code ?? (sig ? 128 : 1);
      resolve();
    }),
  );
  const kill = (sig: NodeJS.Signals) => {
    try {
      if (child.pid) process.kill(-child.pid, sig);
    } catch {
      /* already gone */
    }
  };
  // If this process dies without stopping it, do not leave a GPU server behind.
  const onExit = () => kill("SIGKILL");
  process.once("exit", onExit);
  /** Whether any process of the server's group is still alive (the shell exits before the server it ran). */
  const groupAlive = () => {
    try {
      if (child.pid) process.kill(-child.pid, 0);
      return !!child.pid;
    } catch {
      return false;
    }
  };
  const stop = async () => {
    process.removeListener("exit", onExit);
    if (exited === undefined || groupAlive()) {
      kill("SIGTERM");
      const t = setTimeout(() => kill("SIGKILL"), cfg.stop_timeout_s * 1000);
      await exitP;
      // `sh -c` dies at once on SIGTERM; the server it started may still be shutting down (GPU memory, port)
      const until = Date.now() + (cfg.stop_timeout_s + 5) * 1000; // past the SIGKILL: only an unreaped zombie is left
      while (groupAlive() && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      clearTimeout(t);
    }
    logStream.end();
  };
  const deadline = Date.now() + cfg.health_timeout_s * 1000;
  try {
    for (;;) {
      if (exited !== undefined)
        throw new UserError(
          `model server exited with code ${exited} before becoming healthy: ${(await tail(opts.logFile)) || "no output"} (full log: ${opts.logFile})`,
        );
      if (opts.signal?.aborted) throw new UserError("validation interrupted while the model server was starting");
      const models = await servedModels(cfg.base_url, opts.fetch);
      if (models && adapters.every((a) => models.includes(a.name))) break;
      if (Date.now() > deadline)
        throw new UserError(
          `model server did not become healthy at ${cfg.base_url} within ${cfg.health_timeout_s} s (validate.server.health_timeout_s); see ${opts.logFile}`,
        );
      await new Promise((r) => setTimeout(r, 250));
    }
  } catch (e) {
    await stop();
    throw e;
  }
  opts.log?.(`model server healthy at ${cfg.base_url} with ${adapters.length} adapter(s)`);
  return { baseUrl: cfg.base_url, stop };
}
