/**
 * `train` command stage: LoRA / QLoRA fine-tuning of the emit-sft output through the real Python stack
 * (TRL SFTTrainer + PEFT + bitsandbytes, launched with accelerate / torchrun / python).
 *
 *   npx zx pipeline/run.mjs --stage train [--dry-run] [--resume] [--render slurm|axolotl|llamafactory|all]
 *
 * Writes `<runDir>/train/<name>/`: configs/ (sft_config.json, accelerate.yaml, deepspeed.json, sbatch.sh,
 * axolotl.yaml, llamafactory.yaml), launch.json + launch.sh (the exact launch), pip-freeze.txt, train.log,
 * metrics.jsonl, output/checkpoint-N/ and checkpoints.json (the registry the validate stage reads).
 * The pieces live in trainers/: config.ts (settings → plan), render.ts, preflight.ts, supervise.ts.
 */
import { execFileSync } from "node:child_process";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { UserError } from "../pipeline/errors.ts";
import type { CommandContext, CommandStage } from "../pipeline/stage.ts";
import { atomicWrite, exists, fileSha256, readJson, writeJson } from "../pipeline/util.ts";
import { REPO_ROOT, USUAL_LORA_LR, describeBatch, resolvePlan, trainConfigSchema, type TrainConfig, type TrainPlan } from "../trainers/config.ts";
import {
  checkEnvironment,
  describeMemory,
  estimateMemory,
  lengthProblem,
  measureLengths,
  memoryProblem,
  pipFreeze,
  probeEnvironment,
  readPins,
  scriptCheckData,
  type EnvReport,
} from "../trainers/preflight.ts";
import { CheckpointRegistry, listCheckpoints } from "../trainers/registry.ts";
import {
  RENDER_KINDS,
  SFT_SCRIPT,
  launchArgv,
  launchEnv,
  otherTrainerCommand,
  renderLaunchScript,
  shQuote,
  writeRenders,
  type WrittenRenders,
} from "../trainers/render.ts";
import { supervise } from "../trainers/supervise.ts";
import { writeHeuristicCheckpoints } from "./validation/heuristic.ts";

/** Demo checkpoints the heuristic backend registers (levels 1…3). */
const HEURISTIC_LEVELS = 3;

/** Inherited variables worth recording with a launch (values of secret-looking names are redacted). */
const RECORDED_ENV = /^(CUDA_VISIBLE_DEVICES|HF_HOME|HF_HUB_CACHE|HF_HUB_OFFLINE|TRANSFORMERS_CACHE|HF_TOKEN|OMP_NUM_THREADS|PYTORCH_CUDA_ALLOC_CONF|NCCL_.*|TORCH_.*|ACCELERATE_.*)$/;
const SECRET = /TOKEN|KEY|SECRET|PASSWORD/i;

export function recordedEnv(added: Record<string, string>, inherited: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(inherited)) if (v !== undefined && RECORDED_ENV.test(k)) out[k] = v;
  Object.assign(out, added);
  for (const k of Object.keys(out)) if (SECRET.test(k)) out[k] = "<redacted>";
  return out;
}

function gitSha(): string | null {
  try {
    return execFileSync("git", ["rev-parse", "HEAD"], { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "ignore"] }).toString().trim();
  } catch {
    return null;
  }
}

/** 5e-6 rather than 0.000005. */
const fmtRate = (x: number) => (x < 1e-3 ? x.toExponential() : String(x));

function summaryLines(p: TrainPlan, stepsPerEpoch: number | null): string[] {
  const lora = `LoRA r${p.lora.r} α${p.lora.alpha} dropout ${p.lora.dropout} on ${[p.lora.targetModules].flat().join(",")}`;
  const quant = p.method === "qlora" ? "QLoRA (4-bit NF4, double quantisation, bf16 compute)" : p.bf16 ? "bf16 weights" : "fp16 weights";
  const steps = stepsPerEpoch ? `; ${p.epochs} epochs × ${stepsPerEpoch} = ${Math.ceil(stepsPerEpoch * p.epochs)} optimizer steps` : `; ${p.epochs} epochs`;
  const lines = [
    `train ${p.name}: ${p.model}${p.profile ? ` (profile ${p.profile})` : ""}, ${lora}, ${quant}`,
    `batch: effective ${describeBatch(p)}${steps}`,
    `schedule: lr ${fmtRate(p.learningRate)} ${p.lrScheduler}, warmup ${p.warmupRatio}, max_length ${p.maxLength}, gradient checkpointing ${p.gradientCheckpointing ? "on" : "off"}, checkpoint every ${p.save.strategy === "epoch" ? "epoch" : `${p.save.steps} steps`}`,
    `launcher: ${p.launcher}, distributed: ${p.distributed}, ${p.nodes} node(s) × ${p.gpusPerNode} GPU(s)`,
  ];
  if (p.learningRate < USUAL_LORA_LR / 10)
    lines.push(
      `note: lr ${fmtRate(p.learningRate)} is the UTGen paper's rate, ~${Math.round(USUAL_LORA_LR / p.learningRate)}x below TRL's usual LoRA guidance (${fmtRate(USUAL_LORA_LR)}); reproduced as specified — expect small loss movement per epoch`,
    );
  return lines;
}

async function checkData(ctx: CommandContext, p: TrainPlan, sftConfig: string) {
  for (const f of [p.trainFile, ...(p.eval ? [p.validFile] : [])]) {
    if (!(await exists(f))) {
      throw new UserError(`${f} does not exist; run the emit-sft stage first (--stage emit-sft) or point train.data_dir at its sft/ folder`);
    }
  }
  // Format: the training script's own loader (stdlib json), with the trainer env's python when it exists.
  const py = (await exists(p.python.trl)) ? p.python.trl : "python3";
  const data = await scriptCheckData(py, sftConfig);
  const loss = p.dataFormat === "prompt_completion" ? "completion-only loss" : "assistant-only loss";
  ctx.stdout(`data: ${p.dataFormat} (${loss}), ${data.train.rows} train${data.eval ? ` / ${data.eval.rows} eval` : ""} rows from ${p.dataDir}`);
  for (const file of [p.trainFile, ...(p.eval ? [p.validFile] : [])]) {
    const lengths = await measureLengths(file, p.preset.template, p.preset.tokenizerFamily, p.maxLength);
    const longest = lengths.longestTokens !== null ? `longest ${lengths.longestTokens} tokens` : `all ≤ ${lengths.maxBytes} bytes, so ≤ ${lengths.maxBytes} tokens`;
    ctx.stdout(`lengths: ${path.basename(file)}: ${longest} vs max_length ${p.maxLength}`);
    const problem = lengthProblem(p, lengths);
    if (problem && !p.allowTruncation) throw new UserError(problem);
    if (problem) ctx.stdout(`warning: ${problem.replace(/; raise .*$/, "")} (allowed by train.allow_truncation)`);
  }
  return { rows: data.train.rows, evalRows: data.eval?.rows ?? null };
}

/** Prints each rendered file (`# ---- <path>`, then its text), then the line naming it and its command. */
async function printRenders(ctx: CommandContext, p: TrainPlan, r: WrittenRenders, kind: string) {
  const kinds = kind === "all" ? RENDER_KINDS : [kind];
  for (const k of kinds) {
    const files = k === "slurm" ? [r.slurm] : k === "axolotl" ? [r.axolotl] : [r.llamafactory, r.llamafactoryDatasetInfo];
    for (const f of files) {
      ctx.stdout(`# ---- ${f}`);
      for (const line of (await fsp.readFile(f, "utf8")).trimEnd().split("\n")) ctx.stdout(line);
    }
    if (k === "slurm") ctx.stdout(`slurm: ${r.slurm}  (submit: sbatch ${shQuote(r.slurm)})`);
    if (k === "axolotl") ctx.stdout(`axolotl: ${r.axolotl}  (run: ${otherTrainerCommand(p, "axolotl", r.axolotl)})`);
    if (k === "llamafactory")
      ctx.stdout(`llamafactory: ${r.llamafactory} + ${r.llamafactoryDatasetInfo}  (run: ${otherTrainerCommand(p, "llamafactory", r.llamafactory)})`);
  }
  if (kinds.some((k) => k !== "slurm") && p.preset.templateNote) ctx.stdout(`note: ${p.preset.templateNote}`);
  if (kinds.some((k) => k !== "slurm"))
    ctx.stdout("note: axolotl and LLaMA-Factory train on train.messages.jsonl with their own chat templates, each in its own virtualenv (train.python.*)");
}

async function runTrain(ctx: CommandContext<TrainConfig>): Promise<number> {
  const p = resolvePlan(ctx.config, ctx.runDir);
  if (ctx.config?.backend === "heuristic") {
    await writeHeuristicCheckpoints({ trainDir: p.trainDir, outputDir: p.outputDir, name: p.name, levels: HEURISTIC_LEVELS, stdout: ctx.stdout });
    return 0;
  }
  const dryRun = ctx.flags["dry-run"] === true;
  const resume = ctx.flags["resume"] === true;
  const render = ctx.flags["render"];
  if (render !== undefined && (typeof render !== "string" || ![...RENDER_KINDS, "all"].includes(render))) {
    throw new UserError(`--render ${String(render)}: expected one of ${[...RENDER_KINDS, "all"].join(", ")}`);
  }
  const launching = !dryRun && render === undefined;
  if (launching && p.nodes > 1) {
    throw new UserError(`train.nodes is ${p.nodes}: multi-node runs start on every node at once; use --render slurm and submit the sbatch script`);
  }

  // Resume from the last complete checkpoint, or refuse to overwrite an earlier launch's checkpoints.
  const existing = await listCheckpoints(p.outputDir);
  let resumeFrom: string | null = null;
  if (resume) {
    const last = existing.filter((c) => c.adapter).pop();
    if (!last) throw new UserError(`--resume: ${p.outputDir} holds no complete checkpoint; start without --resume`);
    resumeFrom = last.path;
  } else if (launching && existing.length) {
    throw new UserError(
      `${p.outputDir} already holds checkpoint-${existing[existing.length - 1].step} from an earlier launch; continue it with --resume, or set another train.name`,
    );
  }

  const renders = await writeRenders(p, { resumeFrom });
  if (render !== undefined) {
    await printRenders(ctx, p, renders, render);
    return 0;
  }

  const data = await checkData(ctx, p, renders.sftConfig);
  // As transformers counts them: micro-batches per process, then optimizer steps (ceil, at least 1).
  const stepsPerEpoch = Math.max(1, Math.ceil(Math.ceil(data.rows / (p.microBatch * p.worldSize)) / p.gradAccum));
  for (const l of summaryLines(p, stepsPerEpoch)) ctx.stdout(l);
  const mem = estimateMemory(p);
  ctx.stdout(`memory: estimated ${describeMemory(mem)}`);
  if (resumeFrom) {
    ctx.stdout(`resume: from ${resumeFrom}`);
    const prev = await readJson<{ data?: { train_sha256?: string } }>(path.join(p.trainDir, "launch.json"));
    if (prev?.data?.train_sha256 && prev.data.train_sha256 !== (await fileSha256(p.trainFile)))
      ctx.stdout(`warning: ${path.basename(p.trainFile)} changed since the launch being resumed; the remaining epochs train on the new data`);
  }

  const argv = launchArgv(p, { resumeFrom });
  const env = launchEnv(p);
  const cwd = REPO_ROOT;
  const launchScript = path.join(p.trainDir, "launch.sh");
  await atomicWrite(launchScript, renderLaunchScript(argv, env, cwd));
  await fsp.chmod(launchScript, 0o755);

  if (dryRun) {
    if (p.gpuMemoryGb) {
      const problem = memoryProblem(p, mem, p.gpuMemoryGb, `the assumed ${p.gpuMemoryGb} GiB GPU (train.gpu_memory_gb)`);
      if (problem) ctx.stdout(`warning: a launch would be refused: ${problem}`);
    }
    ctx.stdout(`configs: ${Object.values(renders).join(" ")}`);
    ctx.stdout("environment (added to the inherited one):");
    for (const [k, v] of Object.entries(env)) ctx.stdout(`  ${k}=${shQuote(v)}`);
    ctx.stdout(`command (cwd ${cwd}):`);
    ctx.stdout(`  ${argv.map(shQuote).join(" ")}`);
    ctx.stdout(`dry run: nothing launched; ${launchScript} runs exactly this`);
    return 0;
  }

  let report: EnvReport | null = null;
  if (p.preflight) {
    report = await probeEnvironment(p.python.trl);
    const { errors, warnings } = checkEnvironment(p, report, await readPins());
    for (const w of warnings) ctx.stdout(`warning: ${w}`);
    if (errors.length) {
      for (const e of errors.slice(1)) ctx.stdout(`preflight: ${e}`);
      throw new UserError(errors[0] + (errors.length > 1 ? ` (and ${errors.length - 1} more above)` : ""));
    }
    const gpus = report.gpus.slice(0, p.gpusPerNode);
    ctx.stdout(`preflight: ok — Python ${report.python}, torch ${report.packages.torch}, transformers ${report.packages.transformers}, trl ${report.packages.trl}, peft ${report.packages.peft}; ${gpus.length} × ${gpus[0]?.name} (${((gpus[0]?.total_bytes ?? 0) / 1024 ** 3).toFixed(0)} GiB)`);
  } else ctx.stdout("preflight: skipped (train.preflight: false)");

  const freeze = report ? await pipFreeze(p.python.trl) : null;
  if (freeze !== null) await atomicWrite(path.join(p.trainDir, "pip-freeze.txt"), freeze);
  const configs: Record<string, { path: string; sha256: string }> = {};
  for (const [k, f] of Object.entries(renders)) configs[k] = { path: f, sha256: await fileSha256(f) };
  const startedAt = new Date().toISOString();
  const record = {
    train_name: p.name,
    started_at: startedAt,
    cwd,
    argv,
    command: argv.map(shQuote).join(" "),
    env: recordedEnv(env),
    launch_script: launchScript,
    resume_from: resumeFrom,
    configs,
    script: { path: SFT_SCRIPT, sha256: await fileSha256(SFT_SCRIPT) },
    versions: report ? { python: report.python, ...report.packages } : null,
    gpus: report?.gpus ?? null,
    pip_freeze: freeze !== null ? path.join(p.trainDir, "pip-freeze.txt") : null,
    data: {
      format: p.dataFormat,
      train_file: p.trainFile,
      train_sha256: await fileSha256(p.trainFile),
      train_rows: data.rows,
      ...(p.eval ? { eval_file: p.validFile, eval_sha256: await fileSha256(p.validFile), eval_rows: data.evalRows } : {}),
    },
    plan: { ...p, preset: p.preset.key, env: recordedEnv(p.env, {}) },
    git_sha: gitSha(),
  };
  const launchJson = path.join(p.trainDir, "launch.json");
  await writeJson(launchJson, record);
  await fsp.appendFile(path.join(p.trainDir, "launches.jsonl"), JSON.stringify({ started_at: startedAt, command: record.command, resume_from: resumeFrom }) + "\n");
  ctx.stdout(`launch: ${record.command}`);
  ctx.stdout(`log: ${path.join(p.trainDir, "train.log")}`);

  const registry = new CheckpointRegistry(path.join(p.trainDir, "checkpoints.json"), p.name, p.model);
  const res = await supervise({
    argv,
    env: { ...process.env, ...env },
    cwd,
    logFile: path.join(p.trainDir, "train.log"),
    metricsFile: path.join(p.trainDir, "metrics.jsonl"),
    outputDir: p.outputDir,
    registry,
    effectiveBatch: p.effectiveBatch,
    stdout: ctx.stdout,
    signal: ctx.signal,
    handleProcessSignals: true,
    stopGraceMs: p.stopGraceS * 1000,
    tty: process.stderr.isTTY === true && !process.env.CI,
  });
  const all = registry.list();
  await writeJson(launchJson, {
    ...record,
    finished_at: new Date().toISOString(),
    exit_code: res.exitCode,
    signal: res.signal,
    interrupted: res.interrupted,
    steps: { done: res.step, max: res.maxSteps },
    checkpoints: all.map((c) => c.name),
  });
  if (res.spawnError) throw new UserError(`${res.spawnError}; check train.python.trl`);
  ctx.stdout(`checkpoints: ${all.length} registered in ${path.join(p.trainDir, "checkpoints.json")}`);
  if (res.interrupted) {
    const last = all[all.length - 1];
    ctx.stdout(`train: stopped at step ${res.step}${last ? `; continue from ${last.name} with --resume` : ""}`);
    return 130;
  }
  if (res.exitCode === 0) {
    ctx.stdout(`train: done — ${res.step} steps${res.last.loss !== undefined ? `, last loss ${res.last.loss}` : ""}`);
    return 0;
  }
  ctx.stdout(`train: the trainer failed (${res.signal ? `signal ${res.signal}` : `exit code ${res.exitCode}`}); last lines of ${path.join(p.trainDir, "train.log")}:`);
  for (const l of res.tail.slice(-15)) ctx.stdout(`  | ${l}`);
  ctx.stdout(`likely cause: ${res.cause ?? "not recognised; read the log above"}`);
  return res.exitCode && res.exitCode > 0 ? res.exitCode : 1;
}

export const trainStage: CommandStage<TrainConfig> = {
  kind: "command",
  name: "train",
  description: "LoRA / QLoRA fine-tuning of the emit-sft output with TRL + PEFT (accelerate / torchrun / SLURM)",
  configSchema: trainConfigSchema,
  after: ["emit-sft"],
  flags: {
    "dry-run": { type: "boolean", help: "write every config and print the exact command and environment; launch nothing" },
    resume: { type: "boolean", help: "continue from the last complete checkpoint of this train.name" },
    render: { type: "string", help: "write a render for another launcher/trainer and print it with its path and command: slurm|axolotl|llamafactory|all (no launch)" },
  },
  run: runTrain,
};
