/**
 * `rl-serve`: run the UTRL reward service (stages/rl/service.ts) until SIGINT / SIGTERM.
 *
 *   npx zx pipeline/run.mjs --config cfg.yaml --stage rl-serve [--host 0.0.0.0] [--port 8787]
 *
 * Runs the reward-hacking self-test first (rl-serve.self_test), then prints `rl-serve: listening on <url>` once it accepts requests and writes `<run>/rl-serve/service.json`
 * (url, pid, settings) for scripts; on exit prints the request / latency / execution counters.
 */
import * as path from "node:path";
import { promises as fsp } from "node:fs";
import { z } from "zod";
import { UserError } from "../../pipeline/errors.ts";
import type { CommandContext, CommandStage } from "../../pipeline/stage.ts";
import { writeJson } from "../../pipeline/util.ts";
import { parseRlConfig, rlSemantics } from "./config.ts";
import { RewardEngine } from "./engine.ts";
import { runProbes } from "./probes.ts";
import { startRewardService } from "./service.ts";

export const rlServeConfigSchema = z.strictObject({
  /** Address to bind: 127.0.0.1 (loopback, the default) or e.g. 0.0.0.0 for trainers on other nodes. */
  host: z.string().min(1).default("127.0.0.1"),
  port: z.int().min(0).max(65535).default(8787),
  max_body_mb: z.int().positive().default(256),
  /** Environment variable holding a bearer token every request must send (unset variable: no token). */
  token_env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/).default("UTRL_REWARD_TOKEN"),
  /**
   * Before listening, score the fast reward-hacking probes (stages/rl/probes.ts) and two correct controls:
   * a service whose verdicts can be forged (or whose sandbox cannot run a correct program) refuses to start.
   */
  self_test: z.boolean().default(true),
});
export type RlServeConfig = z.infer<typeof rlServeConfigSchema>;

export const rlServeStage: CommandStage<RlServeConfig> = {
  kind: "command",
  name: "rl-serve",
  service: true,
  description: "UTRL reward service over HTTP (for TRL GRPOTrainer / verl reward functions), sandboxed",
  configSchema: rlServeConfigSchema,
  flags: {
    host: { type: "string", help: "address to bind (default 127.0.0.1)" },
    port: { type: "string", help: "port (default 8787; 0 = any free port)" },
  },
  async run(ctx: CommandContext<RlServeConfig>): Promise<number> {
    const cfg = rlServeConfigSchema.parse(ctx.config ?? {});
    const host = typeof ctx.flags.host === "string" ? ctx.flags.host : cfg.host;
    const port = typeof ctx.flags.port === "string" ? Number(ctx.flags.port) : cfg.port;
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UserError(`--port ${String(ctx.flags.port)}: expected a port number 0-65535`);
    const rl = parseRlConfig(ctx.root.rl);
    const token = process.env[cfg.token_env] || undefined;
    if (host !== "127.0.0.1" && host !== "localhost" && host !== "::1" && !token)
      ctx.log.warn(`rl-serve: listening on ${host} without a token: anyone who reaches this port can run code in the sandbox; set ${cfg.token_env}`);
    const executor = await ctx.getExecutor();
    if (cfg.self_test) {
      const rep = await runProbes(new RewardEngine(executor, rl), { slow: false });
      if (rep.brokenControls.length)
        throw new UserError(`rl-serve: self-test: a correct program did not pass its cases (${rep.brokenControls.join(", ")}); check the executor (python, memory_mb) before training on these rewards`);
      if (rep.leaks.length)
        throw new UserError(`rl-serve: self-test: reward-hacking probe(s) earned a reward: ${rep.leaks.map((l) => `"${l.probe}" (${l.code_reward})`).join(", ")}; do not train on these verdicts`);
      ctx.log.info(`rl-serve: self-test passed (${rep.results.length} reward-hacking probes earn 0, controls earn 1)`);
    }
    const engine = new RewardEngine(executor, rl);
    const svc = await startRewardService({ engine, host, port, maxBodyMb: cfg.max_body_mb, token, log: (m) => ctx.log.warn(m) });
    const info = path.join(ctx.stageDir, "service.json");
    await writeJson(info, { url: svc.url, pid: process.pid, started_at: new Date().toISOString(), settings: rlSemantics(rl), token: token ? `from $${cfg.token_env}` : null });
    ctx.stdout(`rl-serve: listening on ${svc.url} (τ ${rl.tau}, λ ${rl.lambda}, timeout ${rl.timeout_s} s, checker ${rl.checker}); POST ${svc.url}/v1/rewards`);
    await new Promise<void>((resolve) => {
      const stop = () => resolve();
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
      ctx.signal.addEventListener("abort", stop, { once: true });
    });
    await svc.close();
    await fsp.rm(info, { force: true });
    const s = svc.stats();
    ctx.stdout(
      `rl-serve: stopped — ${s.requests} request(s), ${s.rows} row(s), latency p50 ${s.latency_ms.p50.toFixed(0)} ms / p99 ${s.latency_ms.p99.toFixed(0)} ms; ` +
        `${s.engine.executed} execution(s), ${s.engine.cacheHits} cache hit(s), ${s.engine.deduplicated} de-duplicated`,
    );
    return 0;
  },
};
