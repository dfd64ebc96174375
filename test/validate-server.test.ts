/**
 * Model-server management: command rendering, LoRA rank, start-and-stop mode against a stand-in server
 * process (test/fixtures/validate/fake-vllm.ts, which serves the project's loopback OpenAI server), health
 * timeout and early-exit errors, and run-time adapter loading on an existing endpoint.
 */
import { existsSync, promises as fsp } from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createExecutor } from "../pipeline/executor/index.ts";
import type { Executor } from "../pipeline/executor/types.ts";
import { validateStage } from "../stages/validate.ts";
import type { ModelResult } from "../stages/validation/report.ts";
import { ensureAdapters, renderCommand, requiredLoraRank, serverSchema, startServer } from "../stages/validation/server.ts";
import { startOpenAIServer } from "./servers/openai.ts";
import { makeCtx, writeRegistry } from "./fixtures/validate/context.ts";

const MINI = path.resolve(__dirname, "fixtures/validate/mini.jsonl");
const FAKE = path.resolve(__dirname, "fixtures/validate/fake-vllm.ts");
let tmp: string;

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

beforeAll(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), "validate-server-"));
});
afterAll(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

describe("server command and LoRA rank", () => {
  it("fills placeholders, quotes paths and drops an empty --lora-modules", () => {
    const cmd = "vllm serve {base_model} --enable-lora --max-lora-rank {max_lora_rank} --lora-modules {adapters} --port {port}";
    expect(renderCommand(cmd, { adapters: [{ name: "r-step10", path: "/runs/a b/checkpoint-10" }, { name: "r-step20", path: "/runs/c/checkpoint-20" }], port: "8011", maxLoraRank: 32, baseModel: "Qwen/Qwen2.5-Coder-7B-Instruct" }))
      .toBe("vllm serve Qwen/Qwen2.5-Coder-7B-Instruct --enable-lora --max-lora-rank 32 --lora-modules 'r-step10=/runs/a b/checkpoint-10' r-step20=/runs/c/checkpoint-20 --port 8011");
    expect(renderCommand(cmd, { adapters: [], port: "1", maxLoraRank: 16 })).not.toContain("--lora-modules");
  });
  it("raises the maximum rank to the largest adapter's, rounded to a value vLLM accepts", () => {
    expect(requiredLoraRank([8, 16])).toBe(16);
    expect(requiredLoraRank([undefined, 64])).toBe(64);
    expect(requiredLoraRank([48])).toBe(64);
    expect(requiredLoraRank([], 32)).toBe(32);
    expect(() => requiredLoraRank([1024])).toThrow(/above the largest rank/);
  });
});

describe("start-and-stop mode", () => {
  let executor: Executor;
  beforeAll(async () => {
    executor = await createExecutor({});
  });
  afterAll(async () => executor?.close());

  it("starts the configured server with every adapter and the raised rank, validates, then stops it", async () => {
    const runDir = path.join(tmp, "run1");
    await writeRegistry(runDir, "r1", [10, 20], (s) => (s === 20 ? 64 : 16));
    const port = await freePort();
    const argvOut = path.join(tmp, "argv1.json");
    const root = {
      run: { dir: runDir },
      executor: {},
      llm: { timeout_s: 20, max_retries: 0 },
      validate: {
        sets: [{ name: "mini", path: MINI }],
        n: 1,
        runs: 1,
        checkpoints_from: "r1",
        baselines: [],
        server: {
          command: `node --import tsx ${FAKE} --model base-model --port {port} --max-lora-rank {max_lora_rank} --lora-modules {adapters} --argv-out ${argvOut}`,
          base_url: `http://127.0.0.1:${port}/v1`,
          health_timeout_s: 60,
          stop_timeout_s: 5,
        },
        bootstrap: { samples: 50, seed: 0 },
      },
    };
    const c = makeCtx("validate", runDir, root, executor);
    expect(await validateStage.run(c.ctx)).toBe(0);
    const seen = JSON.parse(await fsp.readFile(argvOut, "utf8"));
    expect(seen.maxLoraRank).toBe("64");
    expect(seen.adapters.map((a: any) => a.name)).toEqual(["r1-step10", "r1-step20"]);
    expect(seen.adapters[1].path).toBe(path.join(runDir, "train", "r1", "checkpoint-20"));
    // Stopped after use: the process recorded its SIGTERM and nothing answers on the port.
    expect(existsSync(argvOut + ".stopped")).toBe(true);
    await expect(fetch(`http://127.0.0.1:${port}/v1/models`)).rejects.toThrow();
    const r20 = JSON.parse(await fsp.readFile(path.join(runDir, "validate", "r1-step20.json"), "utf8")) as ModelResult;
    expect(r20.sets.mini.summary.metrics.both.value).toBe(1);

    // Nothing changed: no server is started at all.
    await fsp.rm(argvOut);
    const again = makeCtx("validate", runDir, root, executor);
    expect(await validateStage.run(again.ctx)).toBe(0);
    expect(existsSync(argvOut)).toBe(false);
  });

  it("refuses a high-rank adapter when the command cannot raise the rank", async () => {
    const dir = path.join(tmp, "ck64");
    await fsp.mkdir(dir, { recursive: true });
    await fsp.writeFile(path.join(dir, "adapter_config.json"), JSON.stringify({ r: 64 }));
    const cfg = serverSchema.parse({ command: "vllm serve base --enable-lora --lora-modules {adapters}", base_url: "http://127.0.0.1:9/v1" });
    await expect(startServer(cfg, [{ name: "x", path: dir }], { logFile: path.join(tmp, "s.log") })).rejects.toThrow(/--max-lora-rank \{max_lora_rank\}/);
  });

  it("reports a server that exits early, with its last log line, and one that never gets healthy", async () => {
    const port = await freePort();
    const early = serverSchema.parse({
      command: `node --import tsx ${FAKE} --port {port} --fail 1`,
      base_url: `http://127.0.0.1:${port}/v1`,
      health_timeout_s: 60,
    });
    await expect(startServer(early, [], { logFile: path.join(tmp, "early.log") })).rejects.toThrow(/exited with code 3 .*CUDA out of memory/);
    const slow = serverSchema.parse({ command: "sleep 30", base_url: `http://127.0.0.1:${port}/v1`, health_timeout_s: 0.5, stop_timeout_s: 2 });
    const t0 = Date.now();
    await expect(startServer(slow, [], { logFile: path.join(tmp, "slow.log") })).rejects.toThrow(/did not become healthy .*health_timeout_s/);
    expect(Date.now() - t0).toBeLessThan(20_000);
  });
});

describe("existing endpoint", () => {
  it("loads missing adapters at run time, and says what to do when it cannot", async () => {
    const s = await startOpenAIServer({ models: [{ id: "base" }, { id: "have", parent: "base" }], script: () => ({ choices: ["x"] }) });
    try {
      await ensureAdapters({ base_url: s.url, load_adapters: true }, [{ name: "have", path: "/x" }]);
      // The loopback server has no /v1/load_lora_adapter route (404): a one-line error naming the fix.
      await expect(ensureAdapters({ base_url: s.url, load_adapters: true }, [{ name: "new", path: "/ck" }])).rejects.toThrow(/VLLM_ALLOW_RUNTIME_LORA_UPDATING/);
      await expect(ensureAdapters({ base_url: s.url, load_adapters: false }, [{ name: "new", path: "/ck" }])).rejects.toThrow(/--lora-modules new=\/ck/);
    } finally {
      await s.close();
    }
    await expect(ensureAdapters({ base_url: "http://127.0.0.1:9/v1", load_adapters: true }, [])).rejects.toThrow(/no OpenAI-compatible server answers/);
  });
});
