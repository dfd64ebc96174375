/**
 * The train stage end to end with a stand-in for the trainer's python (test/fixtures/train/fake_python.py):
 * the real launch path (argv, env, preflight, launch record), supervision of a real child process
 * (log, metrics, checkpoints appearing, exit codes, signals), resume and dry-run.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { promises as fsp } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { trainStage } from "../stages/train.ts";
import { UserError } from "../pipeline/errors.ts";
import type { CommandContext } from "../pipeline/stage.ts";
import { readJson, readJsonlAll } from "../pipeline/util.ts";
import type { CheckpointRegistryFile } from "../trainers/registry.ts";

const FIX = path.resolve(__dirname, "fixtures/train");
let tmp: string;
let fake: string;

beforeEach(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), "train-stage-"));
  fake = path.join(tmp, "fake-python");
  await fsp.copyFile(path.join(FIX, "fake_python.py"), fake);
  await fsp.chmod(fake, 0o755);
  delete process.env.FAKE_MODE;
  delete process.env.FAKE_ENV_REPORT;
  delete process.env.FAKE_ARGV_FILE;
});
afterEach(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

function makeCtx(config: Record<string, unknown>, flags: Record<string, string | boolean> = {}, opts: { signal?: AbortSignal; onLine?: (l: string) => void } = {}) {
  const lines: string[] = [];
  const runDir = path.join(tmp, "run");
  const ctx: CommandContext = {
    name: "train",
    config: trainStage.configSchema.parse(config),
    root: {},
    runDir,
    stageDir: path.join(runDir, "train"),
    cacheDir: path.join(tmp, "cache"),
    log: { info: (m) => lines.push(m), warn: (m) => lines.push(m) },
    counters: { add: () => {} },
    getExecutor: () => Promise.reject(new Error("not used")),
    getLlm: () => Promise.reject(new Error("not used")),
    signal: opts.signal ?? new AbortController().signal,
    flags,
    stdout: (l) => {
      lines.push(l);
      opts.onLine?.(l);
    },
  };
  return { ctx, lines, runDir };
}

const base = (extra: Record<string, unknown> = {}) => ({
  name: "t1",
  data_dir: path.join(FIX, "sft"),
  epochs: 2,
  python: { trl: fake },
  // Long enough never to expire while a child handles SIGINT, however loaded the machine.
  stop_grace_s: 120,
  ...extra,
});

describe("train stage: launch and supervision", () => {
  it("launches through accelerate, records the launch, streams metrics and registers every checkpoint", async () => {
    process.env.FAKE_ARGV_FILE = path.join(tmp, "argv.json");
    const { ctx, lines, runDir } = makeCtx(base());
    const code = await trainStage.run(ctx);
    expect(code, lines.join("\n")).toBe(0);
    const dir = path.join(runDir, "train", "t1");

    // The child got the accelerate launch of our script with the rendered configs, unbuffered.
    const { argv, unbuffered } = (await readJson<{ argv: string[]; unbuffered: string }>(process.env.FAKE_ARGV_FILE))!;
    expect(argv.slice(0, 3)).toEqual(["-m", "accelerate.commands.launch", "--config_file"]);
    expect(argv[3]).toBe(path.join(dir, "configs", "accelerate.yaml"));
    expect(argv[4]).toMatch(/trainers\/sft_train\.py$/);
    expect(argv.slice(5)).toEqual(["--config", path.join(dir, "configs", "sft_config.json")]);
    expect(unbuffered).toBe("1");

    // Registry: one adapter checkpoint per epoch, named <train.name>-step<N>, absolute paths.
    const reg = (await readJson<CheckpointRegistryFile>(path.join(dir, "checkpoints.json")))!;
    expect(reg.train_name).toBe("t1");
    expect(reg.base_model).toBe("Qwen/Qwen2.5-Coder-7B-Instruct");
    expect(reg.checkpoints.map((c) => [c.name, c.step, c.epoch, c.adapter])).toEqual([
      ["t1-step2", 2, 1, true],
      ["t1-step4", 4, 2, true],
    ]);
    expect(reg.checkpoints[0].path).toBe(path.join(dir, "output", "checkpoint-2"));

    // Metrics: one row per logged step from the callback; transformers' duplicate dict lines not recorded.
    const metrics = await readJsonlAll(path.join(dir, "metrics.jsonl"));
    expect(metrics.map((m) => m.step)).toEqual([1, 2, 3, 4]);
    expect(metrics.every((m) => m.source === "callback")).toBe(true);
    expect(metrics[3]).toMatchObject({ max_steps: 4, epoch: 2, loss: 1.6, grad_norm: 0.5, num_tokens: 4000 });

    // The log holds the child's whole output (tqdm redraws included).
    const log = await fsp.readFile(path.join(dir, "train.log"), "utf8");
    expect(log).toContain("4/4 [");
    expect(log).toContain("'train_loss': 1.8");

    // The launch record: command, recorded env, config hashes, versions, data fingerprint.
    const launch = (await readJson<any>(path.join(dir, "launch.json")))!;
    expect(launch.argv[0]).toBe(fake);
    expect(launch.env.PYTHONUNBUFFERED).toBe("1");
    expect(launch.versions).toMatchObject({ trl: "1.16.0", peft: "0.21.2" });
    expect(launch.data).toMatchObject({ format: "prompt_completion", train_rows: 4 });
    expect(launch.data.train_sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(launch.configs.sftConfig.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(launch.exit_code).toBe(0);
    expect(launch.checkpoints).toEqual(["t1-step2", "t1-step4"]);
    expect(await fsp.readFile(path.join(dir, "pip-freeze.txt"), "utf8")).toContain("trl==1.16.0");
    const sh = await fsp.readFile(path.join(dir, "launch.sh"), "utf8");
    expect(sh).toContain(`exec ${fake} -m accelerate.commands.launch`);

    // The summary shows the batch arithmetic and says once that the learning rate is the paper's.
    expect(lines).toContain("batch: effective 16 = 2 micro × 8 grad-accum × 1 GPU; 2 epochs × 1 = 2 optimizer steps");
    expect(lines.filter((l) => l.startsWith("note: lr 5e-6 is the UTGen paper's rate, ~40x below TRL's usual LoRA guidance (2e-4)"))).toHaveLength(1);
    expect(lines.some((l) => l.startsWith("data: prompt_completion (completion-only loss), 4 train rows"))).toBe(true);
    expect(lines).toContainEqual(expect.stringMatching(/^lengths: train\.prompt_completion\.jsonl: all ≤ \d+ bytes, so ≤ \d+ tokens vs max_length 4096$/));
    // Not a TTY: plain progress lines, the last one with the final state.
    expect(lines).toContain("train: step 4/4 (100.0%) | epoch 2.00 | loss 1.6000 | lr 1.00e-6 | grad 0.500 | 1.25 s/step");
  });

  it("a failing trainer: exit code passed on, last log lines and the likely cause printed", async () => {
    process.env.FAKE_MODE = "oom";
    const { ctx, lines, runDir } = makeCtx(base({ launcher: "python" }));
    const code = await trainStage.run(ctx);
    expect(code).toBe(1);
    expect(lines.some((l) => l.includes("| torch.OutOfMemoryError: CUDA out of memory"))).toBe(true);
    expect(lines.find((l) => l.startsWith("likely cause:"))).toMatch(/GPU out of memory: lower train.micro_batch_size/);
    const launch = (await readJson<any>(path.join(runDir, "train", "t1", "launch.json")))!;
    expect(launch.exit_code).toBe(1);
    expect(launch.argv.slice(1, 2)[0]).toMatch(/sft_train\.py$/); // plain python launcher
  });

  it("a child killed by SIGKILL is reported with the OOM-killer hint; its checkpoint stays registered", async () => {
    process.env.FAKE_MODE = "kill";
    const { ctx, lines, runDir } = makeCtx(base());
    const code = await trainStage.run(ctx);
    expect(code).toBe(1);
    expect(lines.find((l) => l.startsWith("train: the trainer failed"))).toContain("signal SIGKILL");
    expect(lines.find((l) => l.startsWith("likely cause:"))).toMatch(/OOM killer/);
    const reg = (await readJson<CheckpointRegistryFile>(path.join(runDir, "train", "t1", "checkpoints.json")))!;
    expect(reg.checkpoints.map((c) => c.step)).toEqual([2]);
  });

  it("Ctrl-C (abort) stops the child with SIGINT, then --resume continues from the last checkpoint", async () => {
    process.env.FAKE_MODE = "sigint";
    const ac = new AbortController();
    const { ctx, lines, runDir } = makeCtx(base(), {}, { signal: ac.signal, onLine: (l) => l.includes("registered") && ac.abort() });
    const code = await trainStage.run(ctx);
    expect(code).toBe(130);
    expect(lines.some((l) => l.includes("stopping the trainer (SIGINT)"))).toBe(true);
    expect(lines.some((l) => l.includes("SIGTERM"))).toBe(false);
    expect(lines).toContain("train: stopped at step 2; continue from t1-step2 with --resume");
    const dir = path.join(runDir, "train", "t1");
    expect(await fsp.readFile(path.join(dir, "train.log"), "utf8")).toContain("KeyboardInterrupt: training stopped by the user");

    // A new launch without --resume refuses to overwrite; --resume passes the checkpoint on.
    delete process.env.FAKE_MODE;
    const again = makeCtx(base());
    await expect(trainStage.run(again.ctx)).rejects.toThrow(/already holds checkpoint-2 .*--resume/);
    process.env.FAKE_ARGV_FILE = path.join(tmp, "argv.json");
    const resumed = makeCtx(base(), { resume: true });
    expect(await trainStage.run(resumed.ctx)).toBe(0);
    expect(resumed.lines.some((l) => l.includes("changed since the launch being resumed"))).toBe(false);
    const { argv } = (await readJson<{ argv: string[] }>(process.env.FAKE_ARGV_FILE))!;
    expect(argv.slice(-2)).toEqual(["--resume-from-checkpoint", path.join(dir, "output", "checkpoint-2")]);
    const reg = (await readJson<CheckpointRegistryFile>(path.join(dir, "checkpoints.json")))!;
    expect(reg.checkpoints.map((c) => c.step)).toEqual([2, 4]);
    const metrics = await readJsonlAll(path.join(dir, "metrics.jsonl"));
    expect(metrics.map((m) => m.step)).toEqual([1, 2, 3, 4]);
    expect((await fsp.readFile(path.join(dir, "launches.jsonl"), "utf8")).trim().split("\n")).toHaveLength(2);
  });

  it("a child that ignores SIGINT gets SIGTERM after the grace period", async () => {
    process.env.FAKE_MODE = "ignore-sigint";
    const ac = new AbortController();
    const { ctx, lines } = makeCtx(base({ stop_grace_s: 0.3 }), {}, { signal: ac.signal, onLine: (l) => l.includes("registered") && ac.abort() });
    const code = await trainStage.run(ctx);
    expect(code).toBe(130);
    expect(lines.some((l) => l.includes("sending SIGTERM"))).toBe(true);
  });

  it("--resume without a checkpoint is refused with one line", async () => {
    const { ctx } = makeCtx(base(), { resume: true });
    await expect(trainStage.run(ctx)).rejects.toThrow(/--resume: .* holds no complete checkpoint; start without --resume/);
  });
});

describe("train stage: dry run, renders and preflight refusals", () => {
  it("--dry-run writes every config and prints the exact command and environment without launching", async () => {
    process.env.FAKE_ARGV_FILE = path.join(tmp, "argv.json");
    const { ctx, lines, runDir } = makeCtx(base({ profile: "qlora-32b-8gpu", gpu_memory_gb: 40 }), { "dry-run": true });
    expect(await trainStage.run(ctx)).toBe(0);
    const dir = path.join(runDir, "train", "t1");
    for (const f of ["sft_config.json", "accelerate.yaml", "sbatch.sh", "axolotl.yaml", "llamafactory.yaml", "llamafactory/dataset_info.json"]) {
      expect(await fsp.stat(path.join(dir, "configs", f))).toBeTruthy();
    }
    const cmd = lines[lines.indexOf(lines.find((l) => l.startsWith("command (cwd"))!) + 1];
    expect(cmd.trim()).toBe(`${fake} -m accelerate.commands.launch --config_file ${path.join(dir, "configs", "accelerate.yaml")} ${path.resolve(__dirname, "../trainers/sft_train.py")} --config ${path.join(dir, "configs", "sft_config.json")}`);
    expect(lines).toContain("  PYTHONUNBUFFERED=1");
    expect(lines).toContain("batch: effective 16 = 2 micro × 1 grad-accum × 8 GPUs; 2 epochs × 1 = 2 optimizer steps");
    expect(lines.some((l) => l.startsWith("warning: a launch would be refused: estimated"))).toBe(false); // 32B QLoRA fits 40 GB
    await expect(fsp.stat(process.env.FAKE_ARGV_FILE)).rejects.toThrow(); // nothing launched
    await expect(fsp.stat(path.join(dir, "output"))).rejects.toThrow();
  });

  it("--render slurm|axolotl|llamafactory prints the files and their commands, and launches nothing", async () => {
    const { ctx, lines } = makeCtx(base({ base_model: "llama-3.1-8b-instruct" }), { render: "all" });
    expect(await trainStage.run(ctx)).toBe(0);
    expect(lines.find((l) => l.startsWith("slurm:"))).toMatch(/sbatch .*sbatch\.sh/);
    // each file itself is printed, under a header naming it (not only its path)
    const at = lines.findIndex((l) => /^# ---- .*sbatch\.sh$/.test(l));
    expect(at).toBeGreaterThanOrEqual(0);
    const file = lines[at].slice("# ---- ".length);
    const text = (await fsp.readFile(file, "utf8")).trimEnd().split("\n");
    expect(lines.slice(at + 1, at + 1 + text.length)).toEqual(text);
    expect(text[0]).toMatch(/^#!/);
    expect(lines.some((l) => /^# ---- .*axolotl\.yaml$/.test(l))).toBe(true);
    expect(lines.find((l) => l.startsWith("axolotl:"))).toMatch(/\.venv-axolotl\/bin\/axolotl train .*axolotl\.yaml/);
    expect(lines.find((l) => l.startsWith("llamafactory:"))).toMatch(/llamafactory-cli train/);
    expect(lines.some((l) => l.includes("Cutting Knowledge Date"))).toBe(true);
    const bad = makeCtx(base(), { render: "k8s" });
    await expect(trainStage.run(bad.ctx)).rejects.toThrow("--render k8s: expected one of slurm, axolotl, llamafactory, all");
  });

  it("preflight refuses a model that cannot fit before launching anything", async () => {
    process.env.FAKE_ARGV_FILE = path.join(tmp, "argv.json");
    const { ctx, lines } = makeCtx(base({ base_model: "qwen2.5-coder-32b-instruct", method: "lora" }));
    const err = await trainStage.run(ctx).catch((e) => e);
    expect(err).toBeInstanceOf(UserError);
    expect(err.message).toMatch(/^estimated \d+\.\d GiB per GPU for Qwen\/Qwen2\.5-Coder-32B-Instruct .* exceeds the 48\.0 GiB of GPU 0 \(NVIDIA RTX A6000\); use .*method: qlora/);
    expect(err.message).not.toContain("\n");
    await expect(fsp.stat(process.env.FAKE_ARGV_FILE)).rejects.toThrow();
    expect(lines.some((l) => l.startsWith("launch:"))).toBe(false);
  });

  it("preflight refuses missing packages, each on its own line", async () => {
    process.env.FAKE_ENV_REPORT = JSON.stringify({
      python: "3.11.9", executable: fake,
      packages: { torch: "2.15.0", transformers: "5.23.0", trl: null, peft: "0.21.2", accelerate: "1.15.0", datasets: "5.2.0", bitsandbytes: null, deepspeed: null },
      cuda: { available: true, version: "12.8", device_count: 1, bf16: true },
      gpus: [{ index: 0, name: "NVIDIA A100-SXM4-80GB", total_bytes: 85e9, capability: "8.0" }],
      torch_error: null,
    });
    const { ctx, lines } = makeCtx(base({ profile: "qlora-32b-8gpu" }));
    const err = await trainStage.run(ctx).catch((e) => e);
    expect(err.message).toMatch(/^trl is not installed in .*fake-python; python3 -m venv \.venv-trl .* \(and 1 more above\)$/);
    expect(lines).toContainEqual(expect.stringMatching(/^preflight: bitsandbytes is not installed/));
  });

  it("missing data and over-long rows are refused with one line each", async () => {
    const none = makeCtx(base({ data_dir: path.join(tmp, "nowhere") }));
    await expect(trainStage.run(none.ctx)).rejects.toThrow(/train\.prompt_completion\.jsonl does not exist; run the emit-sft stage first/);
    const short = makeCtx(base({ max_length: 64 }));
    await expect(trainStage.run(short.ctx)).rejects.toThrow(/^4 of 4 rows \(100\.00%\) of train\.prompt_completion\.jsonl exceed max_length 64 tokens \(longest \d+, line \d\) .*raise train\.max_length to \d+ or set train\.allow_truncation: true$/);
    // The eval file is checked too when evaluation is on; allow_truncation turns the refusal into a warning.
    const allowed = makeCtx(base({ max_length: 64, allow_truncation: true, eval: true }), { "dry-run": true });
    expect(await trainStage.run(allowed.ctx)).toBe(0);
    expect(allowed.lines.filter((l) => l.startsWith("warning: ") && l.endsWith("(allowed by train.allow_truncation)")).map((l) => l.split(" of ")[2]?.split(" ")[0])).toEqual([
      "train.prompt_completion.jsonl",
      "valid.prompt_completion.jsonl",
    ]);
  });

  it("a malformed data row is reported by the training script's own loader, with file:line", async () => {
    const data = path.join(tmp, "bad");
    await fsp.mkdir(data);
    const good = await fsp.readFile(path.join(FIX, "sft", "train.prompt_completion.jsonl"), "utf8");
    await fsp.writeFile(path.join(data, "train.prompt_completion.jsonl"), good + JSON.stringify({ prompt: [{ role: "user", content: "x" }], completion: [] }) + "\n");
    const { ctx } = makeCtx(base({ data_dir: data }));
    await expect(trainStage.run(ctx)).rejects.toThrow(/train\.prompt_completion\.jsonl:5: 'completion' must be a non-empty list/);
  });

  it("multi-node launches go through SLURM", async () => {
    const { ctx } = makeCtx(base({ profile: "qlora-32b-8gpu", nodes: 2, micro_batch_size: 1 }));
    await expect(trainStage.run(ctx)).rejects.toThrow("train.nodes is 2: multi-node runs start on every node at once; use --render slurm and submit the sbatch script");
  });
});

/** Start the driver; `onOut` sees the accumulated output and may signal the driver. */
async function runDriver(mode: string, onOut: (out: string, drv: import("node:child_process").ChildProcess) => void) {
  const dir = path.join(tmp, "drv");
  await fsp.mkdir(dir, { recursive: true });
  const cfg = path.join(dir, "cfg.json");
  await fsp.writeFile(cfg, JSON.stringify({ sft: { output_dir: path.join(dir, "output"), num_train_epochs: 3 }, lora: { r: 16, lora_alpha: 32 } }));
  const { spawn } = await import("node:child_process");
  const drv = spawn(process.execPath, ["--import", "tsx", path.join(FIX, "sigint_driver.ts"), fake, cfg, dir], {
    cwd: path.resolve(__dirname, ".."),
    env: { ...process.env, FAKE_MODE: mode },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  drv.stdout!.setEncoding("utf8").on("data", (c: string) => {
    out += c;
    onOut(out, drv);
  });
  drv.stderr!.setEncoding("utf8").on("data", (c: string) => (out += c));
  const code = await new Promise<number | null>((r) => drv.on("close", (c) => r(c)));
  const line = out.split("\n").find((l) => l.startsWith("RESULT "));
  return { code, out, dir, result: line ? JSON.parse(line.slice(7)) : null };
}

describe("Ctrl-C on the supervising process", () => {
  it("SIGINT to the supervisor is forwarded to the trainer, which exits cleanly; the supervisor then exits by itself", async () => {
    let sent = false;
    const { code, out, dir, result } = await runDriver("sigint", (o, drv) => {
      if (!sent && o.includes("registered")) {
        sent = true;
        drv.kill("SIGINT");
      }
    });
    expect(code, out).toBe(0);
    expect(result).toEqual({ exitCode: 130, signal: null, interrupted: true, step: 2 });
    expect(await fsp.readFile(path.join(dir, "train.log"), "utf8")).toContain("KeyboardInterrupt: training stopped by the user");
    const reg = (await readJson<CheckpointRegistryFile>(path.join(dir, "checkpoints.json")))!;
    expect(reg.checkpoints.map((c) => c.name)).toEqual(["drv-step2"]);
  });

  it("a second Ctrl-C terminates a trainer that ignores the first at once, without waiting for the grace period", async () => {
    let sent = 0;
    const { code, out, result } = await runDriver("ignore-sigint", (o, drv) => {
      if (sent === 0 && o.includes("registered")) {
        sent = 1;
        drv.kill("SIGINT");
      } else if (sent === 1 && o.includes("Ctrl-C again")) {
        sent = 2;
        drv.kill("SIGINT");
      }
    });
    expect(code, out).toBe(0);
    expect(result).toMatchObject({ exitCode: null, signal: "SIGTERM", interrupted: true });
    expect(out).toContain("train: stopping now (SIGTERM)");
    expect(out).not.toContain("still running after"); // the 120 s grace period was not waited for
  });
});
