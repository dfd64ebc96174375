/**
 * `utrl`: the UTRL GRPO schedule (trainers/utrl.ts) — render it, validate it without GPUs, launch a phase.
 *
 *   npx zx pipeline/run.mjs --config cfg.yaml --stage utrl --dry-run            # render + validate everything
 *   npx zx pipeline/run.mjs --config cfg.yaml --stage utrl --render slurm|all   # write and print the scripts
 *   npx zx pipeline/run.mjs --config cfg.yaml --stage utrl --phase 2 [--resume] # launch phase 2 (one node); --resume
 *                                       continues from its last checkpoint (or starts it); a finished phase is skipped
 *   bash <run>/utrl/<name>/schedule.sh                                          # the whole schedule, resumable
 *
 * Writes `<run>/utrl/<name>/`: plan.json, pipeline-config.yaml (the resolved config the scripts use),
 * schedule.sh, sbatch.sh, and per phase `p<k>-<role>/` with configs/grpo_config.json, configs/accelerate.yaml,
 * launch.sh and (from rl-rollouts) data/{train,valid}.jsonl. A phase trains into `<run>/train/<phase>/`
 * (train.log, metrics.jsonl, output/checkpoint-N, checkpoints.json), like the SFT `train` stage, so
 * `rl-validate` and `select` find its checkpoints.
 *
 * The dry run renders every file, checks the batch arithmetic and the phase chain, runs the GRPO script's own
 * config check for every phase (stdlib Python), and does a reward round trip: it starts the reward service,
 * and the GRPO script calls each role's reward function through the Python client on built-in samples and
 * compares the numbers with Eq. 1–4 — the trainer ↔ sandbox path, without a GPU.
 * A launch runs the preflight (Python packages, GPUs, bf16), checks the phase's data and starting checkpoint,
 * starts the reward service in-process, and supervises the phase's launch script (trainers/supervise.ts).
 */
import { execFile, execFileSync } from "node:child_process";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { promisify } from "node:util";
import { stringify as yamlStringify } from "yaml";
import { UserError } from "../../pipeline/errors.ts";
import type { CommandContext, CommandStage } from "../../pipeline/stage.ts";
import { atomicWrite, exists, fileSha256, readJson, writeJson } from "../../pipeline/util.ts";
import { REPO_ROOT } from "../../trainers/config.ts";
import { pipFreeze, probeEnvironment, versionAtLeast, type EnvReport } from "../../trainers/preflight.ts";
import { CheckpointRegistry, listCheckpoints } from "../../trainers/registry.ts";
import { shQuote } from "../../trainers/render.ts";
import { supervise } from "../../trainers/supervise.ts";
import {
  GRPO_SCRIPT,
  estimateGrpoMemory,
  phaseOf,
  renderGrpoAccelerate,
  renderGrpoConfig,
  renderPhaseLaunch,
  renderSchedule,
  renderUtrlSlurm,
  resolveUtrlPlan,
  utrlConfigSchema,
  yamlOut,
  type PhasePlan,
  type UtrlConfig,
  type UtrlPlan,
} from "../../trainers/utrl.ts";
import { parseRlConfig } from "./config.ts";
import { RewardEngine } from "./engine.ts";
import { runProbes } from "./probes.ts";
import { startRewardService, type RewardService } from "./service.ts";

const execFileP = promisify(execFile);

export interface UtrlFiles {
  plan: string;
  pipelineConfig: string;
  schedule: string;
  sbatch: string;
  phases: { config: string; accelerate: string; launch: string }[];
}

export const rewardUrlOf = (p: UtrlPlan) => `http://127.0.0.1:${p.rewardPort}`;

/** Write every rendered file of the schedule. */
export async function writeUtrlRenders(p: UtrlPlan, root: Record<string, any>, opts: { resumeFrom?: Record<number, string | null> } = {}): Promise<UtrlFiles> {
  await fsp.mkdir(p.dir, { recursive: true });
  // The scripts run the pipeline with exactly this config (overrides included, paths absolute).
  const pipelineConfig = path.join(p.dir, "pipeline-config.yaml");
  const resolved = JSON.parse(JSON.stringify(root));
  resolved.run = { ...resolved.run, dir: p.runDir, cache_dir: path.resolve(root.run?.cache_dir ?? path.join(p.runDir, "cache")) };
  await atomicWrite(pipelineConfig, `# The resolved pipeline config of UTRL schedule ${p.name} (written by the utrl stage; the scripts use it)\n${yamlStringify(resolved, { lineWidth: 0 })}`);
  const phases = [];
  for (const ph of p.phases) {
    await writeJson(ph.configFile, renderGrpoConfig(p, ph));
    await atomicWrite(ph.accelerateFile!, yamlOut(`accelerate launch --config_file (utrl ${ph.name})`, renderGrpoAccelerate(p)));
    await atomicWrite(ph.launchScript, renderPhaseLaunch(p, ph, rewardUrlOf(p), { resumeFrom: opts.resumeFrom?.[ph.index] }));
    await fsp.chmod(ph.launchScript, 0o755);
    phases.push({ config: ph.configFile, accelerate: ph.accelerateFile!, launch: ph.launchScript });
  }
  const schedule = path.join(p.dir, "schedule.sh");
  await atomicWrite(schedule, renderSchedule(p, pipelineConfig, { multiNode: p.nodes > 1 }));
  await fsp.chmod(schedule, 0o755);
  const sbatch = path.join(p.dir, "sbatch.sh");
  await atomicWrite(sbatch, renderUtrlSlurm(p, pipelineConfig, schedule));
  await fsp.chmod(sbatch, 0o755);
  const plan = path.join(p.dir, "plan.json");
  await writeJson(plan, {
    name: p.name,
    profile: p.profile,
    method: p.method,
    generation: p.generation,
    distributed: p.distributed,
    gpus: { per_node: p.gpusPerNode, nodes: p.nodes, training: p.world, vllm_server: p.vllmGpus },
    batch: { prompts_per_step: p.cfg.prompts_per_step, num_generations: p.cfg.num_generations, completions_per_step: p.completionsPerStep, per_device: p.perDevice, grad_accum: p.gradAccum },
    models: { tester: p.tester.model, coder: p.coder.model },
    tasks: { train: p.tasksTrain, valid: p.tasksValid },
    phases: p.phases.map((ph) => ({ index: ph.index, name: ph.name, role: ph.role, steps: ph.steps, learning_rate: ph.learningRate, init: ph.init, counterpart: ph.other, init_phase: ph.initPhase, counterpart_phase: ph.otherPhase, reward: ph.rewardFunction, tasks_needed: ph.tasksNeeded })),
  });
  return { plan, pipelineConfig, schedule, sbatch, phases };
}

/** The interpreter the checks use: the trainer env's when it exists, else python3 (the checks are stdlib-only). */
async function checkPython(p: UtrlPlan): Promise<string> {
  return (await exists(p.python)) ? p.python : "python3";
}

async function grpoScript(python: string, args: string[], env: Record<string, string> = {}): Promise<any> {
  try {
    const { stdout } = await execFileP(python, [GRPO_SCRIPT, ...args], { cwd: REPO_ROOT, env: { ...process.env, ...env }, maxBuffer: 16 << 20, timeout: 600_000 });
    return JSON.parse(stdout.trim().split("\n").pop()!);
  } catch (e) {
    const err = e as { code?: unknown; stderr?: string; stdout?: string };
    if (err.code === "ENOENT") throw new UserError(`python interpreter ${python} not found; install Python 3.10+ or set utrl.python.trl`);
    const line = (err.stderr ?? "").trim().split("\n").filter(Boolean).pop();
    if (err.stdout?.trim()) {
      try {
        return JSON.parse(err.stdout.trim().split("\n").pop()!);
      } catch {
        /* fall through */
      }
    }
    throw new UserError(line?.replace(/^error: /, "") ?? `${path.basename(GRPO_SCRIPT)} ${args.join(" ")} failed`);
  }
}

async function countLines(file: string): Promise<number | null> {
  if (!(await exists(file))) return null;
  const text = await fsp.readFile(file, "utf8");
  return text.split("\n").filter((l) => l.trim()).length;
}

/** 5e-6 rather than 0.000005. */
const fmtRate = (x: number) => (x < 1e-3 ? x.toExponential() : String(x));

function phaseLines(p: UtrlPlan, ph: PhasePlan): string[] {
  const init = ph.init.adapter ? `${ph.init.base} + adapter ${ph.init.adapter}` : ph.init.base;
  const other = ph.other.adapter ? `${ph.other.base} + adapter ${ph.other.adapter}` : ph.other.base;
  return [
    `phase ${ph.index} ${ph.name}: ${ph.role}, ${ph.steps} steps, lr ${fmtRate(ph.learningRate)}, reward ${ph.rewardFunction}`,
    `  starts from: ${init} (${ph.init.from})`,
    `  reward from the ${ph.counterpart}: ${other} (${ph.other.from}); ${ph.role === "tester" ? `${p.cfg.num_codes} code samples per task` : "one unit test per task"}`,
    `  tasks: ${ph.tasksNeeded} prompts (${ph.steps} steps × ${p.cfg.prompts_per_step}); data ${ph.trainData}`,
  ];
}

/** Packages a phase launch needs, by the plan. */
export function grpoPackages(p: UtrlPlan): string[] {
  return ["torch", "transformers", "trl", "accelerate", "datasets", "vllm", ...(p.method === "lora" ? ["peft"] : []), ...(p.distributed === "zero2" || p.distributed === "zero3" ? ["deepspeed"] : [])];
}

const GRPO_MIN: Record<string, string> = { torch: "2.2.0", transformers: "4.56.0", trl: "0.23.0", accelerate: "1.0.1", datasets: "2.20.0", vllm: "0.10.0", peft: "0.13.0", deepspeed: "0.14.0" };

/** Preflight verdicts for a GRPO launch (one line each). */
export function checkGrpoEnvironment(p: UtrlPlan, r: EnvReport): string[] {
  const errors: string[] = [];
  const hint = "create it: python3 -m venv .venv-trl && .venv-trl/bin/pip install -r trainers/requirements.txt vllm (or set utrl.python.trl)";
  if (!versionAtLeast(r.python, "3.10.0")) errors.push(`Python ${r.python} at ${r.executable} is too old (3.10+ needed); ${hint}`);
  for (const pkg of grpoPackages(p)) {
    const v = r.packages[pkg];
    if (!v) errors.push(`${pkg} is not installed in ${r.executable}; ${hint}`);
    else if (GRPO_MIN[pkg] && !versionAtLeast(v, GRPO_MIN[pkg])) errors.push(`${pkg} ${v} is older than the ${GRPO_MIN[pkg]} GRPO with vLLM ${p.generation} mode needs; upgrade it in ${r.executable}`);
  }
  if (errors.length) return errors;
  if (r.torch_error) errors.push(`torch cannot initialise CUDA (${r.torch_error}); check the NVIDIA driver and the torch build`);
  else if (!r.cuda?.available || r.gpus.length === 0) errors.push(`no CUDA GPU is visible to ${r.executable}; run on a GPU machine (check nvidia-smi and CUDA_VISIBLE_DEVICES)`);
  else {
    if (r.gpus.length < p.gpusPerNode) errors.push(`utrl.gpus_per_node is ${p.gpusPerNode} but only ${r.gpus.length} GPU(s) are visible; lower it (per_device_batch_size × GPUs × grad-accum must still give ${p.completionsPerStep} completions) or free GPUs`);
    if (p.cfg.bf16 && !r.cuda.bf16) errors.push(`GPU ${r.gpus[0].name} has no bf16 support; set utrl.bf16: false or use an Ampere-or-newer GPU`);
  }
  return errors;
}

async function startService(ctx: CommandContext, host: string, port: number): Promise<RewardService> {
  const rl = parseRlConfig(ctx.root.rl);
  const ex = await ctx.getExecutor();
  const rep = await runProbes(new RewardEngine(ex, rl), { slow: false });
  if (rep.leaks.length || rep.brokenControls.length)
    throw new UserError(`reward service self-test failed (probes earning a reward: ${rep.leaks.map((l) => l.probe).join(", ") || "none"}; broken controls: ${rep.brokenControls.join(", ") || "none"}); do not train on these verdicts`);
  return startRewardService({ engine: new RewardEngine(ex, rl), host, port, token: process.env.UTRL_REWARD_TOKEN || undefined, log: (m) => ctx.log.warn(m) });
}

async function dryRun(ctx: CommandContext<UtrlConfig>, p: UtrlPlan, files: UtrlFiles): Promise<number> {
  const python = await checkPython(p);
  ctx.stdout(`utrl ${p.name}: ${p.phases.map((ph) => `${ph.role} ${ph.steps}`).join(" → ")} steps; profile ${p.profile}, ${p.method} fine-tuning, vLLM ${p.generation}${p.generation === "server" ? ` (${p.vllmGpus} GPU)` : ""}, ${p.distributed}`);
  ctx.stdout(`models: tester ${p.tester.model}, coder ${p.coder.model}`);
  ctx.stdout(
    `batch: ${p.cfg.prompts_per_step} prompts × ${p.cfg.num_generations} generations = ${p.completionsPerStep} completions per step = ${p.perDevice} per device × ${p.world} GPU(s) × ${p.gradAccum} grad-accum; KL β ${p.cfg.beta}, temperature ${p.cfg.temperature}, warmup ${p.cfg.warmup_ratio}, ${p.cfg.optimizer}`,
  );
  const rl = parseRlConfig(ctx.root.rl);
  ctx.stdout(`rewards: τ ${rl.tau}, λ ${rl.lambda}, ${p.cfg.num_codes} code samples per task, Pass() limit ${rl.timeout_s} s, checker ${rl.checker}; service ${rewardUrlOf(p)}`);
  const trainN = await countLines(p.tasksTrain);
  const validN = await countLines(p.tasksValid);
  if (trainN === null) ctx.stdout(`warning: training tasks ${p.tasksTrain} do not exist yet; build them with --stage rl-tasks (schedule.sh does it first)`);
  else ctx.stdout(`tasks: ${trainN} train (${p.tasksTrain}), ${validN ?? "missing"} valid (${p.tasksValid})`);
  for (const ph of p.phases) {
    for (const l of phaseLines(p, ph)) ctx.stdout(l);
    if (trainN !== null && trainN < ph.tasksNeeded) ctx.stdout(`  note: ${trainN} training tasks < ${ph.tasksNeeded} needed: tasks repeat (${(ph.tasksNeeded / trainN).toFixed(2)} epochs)`);
    const check = await grpoScript(python, ["--config", ph.configFile, "--check-config"]);
    if (check.role !== ph.role || check.max_steps !== ph.steps) throw new UserError(`the rendered config ${ph.configFile} does not match the plan; re-render`);
    const preset = (ph.role === "tester" ? p.tester : p.coder).preset;
    if (preset && p.gpuMemoryGb) {
      const m = estimateGrpoMemory(p, preset, p.gpuMemoryGb);
      const line = `  memory: ~${m.perGpuGiB.toFixed(0)} GiB per GPU of ${p.gpuMemoryGb} (model+optimizer ${m.parts.model.toFixed(1)}, reference ${m.parts.reference.toFixed(1)}, activations ${m.parts.activations.toFixed(1)}, logits ${m.parts.logits.toFixed(1)}, vLLM ${m.parts.vllm.toFixed(1)}); a rough estimate`;
      ctx.stdout(m.perGpuGiB > p.gpuMemoryGb * 0.95 ? `${line} — warning: likely out of memory; lower per_device_batch_size or max_completion_length, or shard (zero3)` : line);
    }
    ctx.stdout(`  config check: ok (${python} ${path.basename(GRPO_SCRIPT)} --check-config)`);
  }
  // Reward round trip: the real service, the real client, each role's function, numbers checked.
  const svc = await startService(ctx, "127.0.0.1", 0);
  try {
    for (const role of ["tester", "coder"] as const) {
      const ph = p.phases.find((x) => x.role === role);
      if (!ph) continue;
      const r = await grpoScript(python, ["--config", ph.configFile, "--check-reward"], { UTRL_REWARD_URL: svc.url, PYTHONPATH: path.join(REPO_ROOT, "trainers") });
      if (!r.ok) throw new UserError(`reward round trip for the ${role} failed: ${r.function} returned ${JSON.stringify(r.rewards)}, expected ${JSON.stringify(r.expected)}`);
      ctx.stdout(`reward round trip (${role}): ok — ${r.function} through ${svc.url} returned ${r.rewards.map((x: number) => x.toFixed(4)).join(", ")} as Eq. 1–4 give`);
    }
  } finally {
    await svc.close();
  }
  ctx.stdout(`files: ${[files.plan, files.pipelineConfig, files.schedule, files.sbatch, ...files.phases.flatMap((f) => [f.config, f.accelerate, f.launch])].join(" ")}`);
  ctx.stdout(`run the schedule: bash ${shQuote(files.schedule)}   (SLURM: sbatch ${shQuote(files.sbatch)})`);
  ctx.stdout("dry run: nothing launched");
  return 0;
}

async function launchPhase(ctx: CommandContext<UtrlConfig>, p: UtrlPlan, ph: PhasePlan, resume: boolean): Promise<number> {
  if (p.nodes > 1) throw new UserError(`utrl.nodes is ${p.nodes}: multi-node phases run from the SLURM script; use --render slurm and sbatch it`);
  const existing = await listCheckpoints(ph.outputDir);
  // A finished phase is not trained again (schedule.sh re-runs every step to resume).
  const prevLaunch = await readJson<{ exit_code?: number; steps?: { done?: number } }>(path.join(ph.trainDir, "launch.json"));
  if (existing.length && prevLaunch?.exit_code === 0 && (prevLaunch.steps?.done ?? 0) >= ph.steps) {
    ctx.stdout(`utrl: phase ${ph.index} (${ph.name}) is done (${prevLaunch.steps?.done} steps, ${existing.length} checkpoint(s)); nothing to do`);
    return 0;
  }
  let resumeFrom: string | null = null;
  if (resume) {
    // --resume continues from the last complete checkpoint, or starts the phase when it has none yet.
    resumeFrom = existing.at(-1)?.path ?? null;
    if (!resumeFrom) ctx.stdout(`resume: ${ph.outputDir} holds no checkpoint yet; starting phase ${ph.index} from the beginning`);
  } else if (existing.length) {
    throw new UserError(`${ph.outputDir} already holds checkpoint-${existing.at(-1)!.step}; continue it with --resume, or rename the phase`);
  }
  for (const ref of [ph.init, ph.other]) {
    const local = ref.adapter ?? (ref.base.startsWith("/") ? ref.base : null);
    if (local && !(await exists(local))) throw new UserError(`${local} does not exist: phase ${ph.index} needs ${ref.from}; run rl-validate and select for that phase first`);
  }
  const files = await writeUtrlRenders(p, ctx.root, { resumeFrom: { [ph.index]: resumeFrom } });
  const python = p.python;
  if (!(await exists(python)) && python.includes("/")) throw new UserError(`the trainer's python ${python} does not exist; create it: python3 -m venv .venv-trl && .venv-trl/bin/pip install -r trainers/requirements.txt vllm (or set utrl.python.trl)`);
  const data = await grpoScript(python, ["--config", ph.configFile, "--check-data"]);
  ctx.stdout(`data: ${data.rows} rows, ${data.tasks} tasks from ${ph.trainData}`);
  let report: EnvReport | null = null;
  if (p.cfg.preflight) {
    report = await probeEnvironment(python);
    const vllm = await grpoScript(python, ["--env-report"]).catch(() => null);
    if (vllm?.packages) report.packages.vllm = vllm.packages.vllm ?? null;
    const errors = checkGrpoEnvironment(p, report);
    if (errors.length) {
      for (const e of errors.slice(1)) ctx.stdout(`preflight: ${e}`);
      throw new UserError(errors[0] + (errors.length > 1 ? ` (and ${errors.length - 1} more above)` : ""));
    }
    ctx.stdout(`preflight: ok — Python ${report.python}, torch ${report.packages.torch}, trl ${report.packages.trl}, vllm ${report.packages.vllm}; ${report.gpus.length} × ${report.gpus[0]?.name}`);
  } else ctx.stdout("preflight: skipped (utrl.preflight: false)");
  for (const l of phaseLines(p, ph)) ctx.stdout(l);

  const freeze = report ? await pipFreeze(python) : null;
  if (freeze !== null) await atomicWrite(path.join(ph.trainDir, "pip-freeze.txt"), freeze);
  const svc = await startService(ctx, p.rewardHost, p.rewardPort);
  ctx.stdout(`reward service: ${svc.url} (self-test passed)`);
  const argv = ["bash", ph.launchScript];
  const startedAt = new Date().toISOString();
  const launchJson = path.join(ph.trainDir, "launch.json");
  const record = {
    phase: ph.name,
    role: ph.role,
    started_at: startedAt,
    argv,
    launch_script: ph.launchScript,
    resume_from: resumeFrom,
    configs: { grpo: { path: ph.configFile, sha256: await fileSha256(ph.configFile) }, accelerate: { path: ph.accelerateFile, sha256: await fileSha256(ph.accelerateFile!) } },
    script: { path: GRPO_SCRIPT, sha256: await fileSha256(GRPO_SCRIPT) },
    data: { file: ph.trainData, sha256: await fileSha256(ph.trainData), rows: data.rows },
    init: ph.init,
    counterpart: ph.other,
    reward_service: { url: svc.url, settings: parseRlConfig(ctx.root.rl) },
    versions: report ? { python: report.python, ...report.packages } : null,
    gpus: report?.gpus ?? null,
    pip_freeze: freeze !== null ? path.join(ph.trainDir, "pip-freeze.txt") : null,
    git_sha: (() => {
      try {
        return execFileSync("git", ["rev-parse", "HEAD"], { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "ignore"] }).toString().trim();
      } catch {
        return null;
      }
    })(),
  };
  await writeJson(launchJson, record);
  await fsp.appendFile(path.join(ph.trainDir, "launches.jsonl"), JSON.stringify({ started_at: startedAt, command: argv.join(" "), resume_from: resumeFrom }) + "\n");
  ctx.stdout(`launch: ${argv.map(shQuote).join(" ")}`);
  ctx.stdout(`log: ${path.join(ph.trainDir, "train.log")}`);
  const registry = new CheckpointRegistry(path.join(ph.trainDir, "checkpoints.json"), ph.name, ph.init.base, undefined, p.method === "lora");
  let res;
  try {
    res = await supervise({
      argv,
      env: { ...process.env },
      cwd: REPO_ROOT,
      logFile: path.join(ph.trainDir, "train.log"),
      metricsFile: path.join(ph.trainDir, "metrics.jsonl"),
      outputDir: ph.outputDir,
      registry,
      effectiveBatch: p.completionsPerStep,
      stdout: ctx.stdout,
      signal: ctx.signal,
      handleProcessSignals: true,
      stopGraceMs: p.cfg.stop_grace_s * 1000,
      tty: process.stderr.isTTY === true && !process.env.CI,
    });
  } finally {
    await svc.close();
  }
  const s = svc.stats();
  const all = registry.list();
  await writeJson(launchJson, { ...record, finished_at: new Date().toISOString(), exit_code: res.exitCode, signal: res.signal, interrupted: res.interrupted, steps: { done: res.step, max: res.maxSteps }, checkpoints: all.map((c) => c.name), reward_service_stats: s });
  if (res.spawnError) throw new UserError(`${res.spawnError}; check utrl.python.trl`);
  ctx.stdout(`reward service: ${s.requests} request(s), ${s.rows} row(s), p50 ${s.latency_ms.p50.toFixed(0)} ms, p99 ${s.latency_ms.p99.toFixed(0)} ms`);
  ctx.stdout(`checkpoints: ${all.length} registered in ${path.join(ph.trainDir, "checkpoints.json")}`);
  if (res.interrupted) {
    ctx.stdout(`utrl: phase ${ph.index} stopped at step ${res.step}; continue with --phase ${ph.index} --resume`);
    return 130;
  }
  if (res.exitCode === 0) {
    ctx.stdout(`utrl: phase ${ph.index} (${ph.name}) done — ${res.step} steps; next: --stage rl-validate --phase ${ph.index}, then select`);
    return 0;
  }
  ctx.stdout(`utrl: the trainer failed (${res.signal ? `signal ${res.signal}` : `exit code ${res.exitCode}`}); last lines of ${path.join(ph.trainDir, "train.log")}:`);
  for (const l of res.tail.slice(-15)) ctx.stdout(`  | ${l}`);
  ctx.stdout(`likely cause: ${res.cause ?? "not recognised; read the log above"}`);
  return res.exitCode && res.exitCode > 0 ? res.exitCode : 1;
}

export const utrlStage: CommandStage<UtrlConfig> = {
  kind: "command",
  name: "utrl",
  description: "UTRL GRPO schedule (tester → coder → tester): render, dry run, launch a phase",
  configSchema: utrlConfigSchema,
  after: ["rl-tasks"],
  flags: {
    "dry-run": { type: "boolean", help: "render every file, check each phase's config and the reward round trip; launch nothing" },
    render: { type: "string", help: "write and print the schedule and SLURM scripts: slurm|all (no launch)" },
    phase: { type: "string", help: "the schedule phase (1-based index or name)" },
    resume: { type: "boolean", help: "continue the phase from its last complete checkpoint (or start it when it has none)" },
  },
  async run(ctx: CommandContext<UtrlConfig>): Promise<number> {
    const p = resolveUtrlPlan(ctx.config, ctx.runDir);
    const render = ctx.flags.render;
    if (render !== undefined && !["slurm", "all"].includes(String(render))) throw new UserError(`--render ${String(render)}: the utrl stage renders slurm or all`);
    const dry = ctx.flags["dry-run"] === true;
    if (ctx.flags.phase === undefined || dry || render !== undefined) {
      const files = await writeUtrlRenders(p, ctx.root);
      if (render !== undefined) {
        // The scripts themselves, then where they are: slurm = sbatch.sh + schedule.sh; all = also each phase's launch.
        const show = async (f: string) => {
          ctx.stdout(`==> ${f} <==`);
          for (const l of (await fsp.readFile(f, "utf8")).replace(/\n$/, "").split("\n")) ctx.stdout(l);
          ctx.stdout("");
        };
        for (const f of [files.sbatch, files.schedule, ...(render === "all" ? files.phases.map((x) => x.launch) : [])]) await show(f);
        ctx.stdout(`schedule: ${files.schedule}  (run: bash ${shQuote(files.schedule)})`);
        ctx.stdout(`slurm: ${files.sbatch}  (submit: sbatch ${shQuote(files.sbatch)})`);
        for (const f of files.phases) ctx.stdout(`phase: ${f.launch} (${f.config})`);
        return 0;
      }
      if (!dry) throw new UserError("utrl needs --dry-run, --render slurm|all, or --phase <k> (launch one phase)");
      return dryRun(ctx, p, files);
    }
    return launchPhase(ctx, p, phaseOf(p, ctx.flags.phase), ctx.flags.resume === true);
  },
};

/** Read a phase's registry (for rl-validate / select). */
export async function phaseRegistry(runDir: string, name: string) {
  return readJson<{ checkpoints: { name: string; step: number; path: string; adapter?: boolean }[] }>(path.join(runDir, "train", name, "checkpoints.json"));
}
