/**
 * The UTRL training schedule (seed 002 §3, App. A.3) as data: the `utrl:` YAML block, GRPO profiles, the
 * resolved per-phase plans, and pure renderers (the GRPO script's JSON config, the accelerate config, each
 * phase's launch script, the schedule driver `schedule.sh` and a SLURM `sbatch.sh`).
 *
 * A schedule is a list of phases, each training one role for a number of GRPO steps:
 *   tester 50 steps (lr 1e-6) → coder 370 steps (lr 1e-6) → tester 100 steps (lr 5e-6)   (Qwen3-4B, App. A.3)
 * Each phase starts from the selected checkpoint (`train/<phase>/best`, written by `select`) of the previous
 * phase of its role (the base model for the first), and its reward uses the current model of the other role:
 * a tester phase scores unit tests against codes sampled from the current coder; a coder phase scores codes
 * against unit tests sampled from the current tester. Per phase the driver runs
 *   rl-rollouts (sample the counterpart) → utrl --phase k (reward service + GRPO) → rl-validate → select.
 *
 * Hyper-parameters from App. A.3 Table 4: AdamW, LR 1e-6 (iteration 1) → 5e-6 (iteration 2), batch 128,
 * warmup 1e-2, KL coefficient 1e-3, sampling temperature 1.0; 8 code samples per task for R_disc; τ = 12,
 * λ = 0.85 (the `rl:` block). What the paper leaves open is a documented default here (docs/utrl.md).
 */
import * as path from "node:path";
import { stringify as yamlStringify } from "yaml";
import { z } from "zod";
import { UserError } from "../pipeline/errors.ts";
import { REPO_ROOT } from "./config.ts";
import { shQuote } from "./render.ts";

export const GRPO_SCRIPT = path.join(REPO_ROOT, "trainers", "grpo_train.py");
export const REWARD_CLIENT = path.join(REPO_ROOT, "trainers", "utrl_reward.py");

export interface RlModelPreset {
  key: string;
  hfId: string;
  params: number;
  layers: number;
  hidden: number;
  intermediate: number;
  heads: number;
  kvHeads: number;
  vocab: number;
  tiedEmbeddings: boolean;
  decoderLayer: string;
}

/** Base models for UTRL (the paper trains Qwen3-4B / Qwen3-14B; Qwen2.5-7B-Instruct for the CURE comparison). */
export const RL_MODELS: Record<string, RlModelPreset> = {
  "qwen3-4b": { key: "qwen3-4b", hfId: "Qwen/Qwen3-4B", params: 4.02e9, layers: 36, hidden: 2560, intermediate: 9728, heads: 32, kvHeads: 8, vocab: 151936, tiedEmbeddings: true, decoderLayer: "Qwen3DecoderLayer" },
  "qwen3-8b": { key: "qwen3-8b", hfId: "Qwen/Qwen3-8B", params: 8.19e9, layers: 36, hidden: 4096, intermediate: 12288, heads: 32, kvHeads: 8, vocab: 151936, tiedEmbeddings: false, decoderLayer: "Qwen3DecoderLayer" },
  "qwen3-14b": { key: "qwen3-14b", hfId: "Qwen/Qwen3-14B", params: 14.8e9, layers: 40, hidden: 5120, intermediate: 17408, heads: 40, kvHeads: 8, vocab: 151936, tiedEmbeddings: false, decoderLayer: "Qwen3DecoderLayer" },
  "qwen2.5-7b-instruct": { key: "qwen2.5-7b-instruct", hfId: "Qwen/Qwen2.5-7B-Instruct", params: 7.62e9, layers: 28, hidden: 3584, intermediate: 18944, heads: 28, kvHeads: 4, vocab: 152064, tiedEmbeddings: false, decoderLayer: "Qwen2DecoderLayer" },
};

/** GRPO set-ups. Values are `utrl:` keys (snake_case, as in the YAML). */
export const GRPO_PROFILES = {
  /** Full fine-tuning on one 8-GPU node, generation by vLLM inside the training processes. */
  "grpo-full-8gpu": { method: "full", gpus_per_node: 8, nodes: 1, generation: "colocate", distributed: "zero3", per_device_batch_size: 8, vllm_gpu_memory_utilization: 0.3, gpu_memory_gb: 80 },
  /** Full fine-tuning on 7 GPUs, generation by `trl vllm-serve` on the node's 8th GPU. */
  "grpo-full-8gpu-server": { method: "full", gpus_per_node: 8, nodes: 1, generation: "server", vllm_gpus: 1, distributed: "zero3", per_device_batch_size: 8, gpu_memory_gb: 80 },
  /** LoRA on one GPU, colocated vLLM (a small-scale or debugging set-up). */
  "grpo-lora-1gpu": { method: "lora", gpus_per_node: 1, nodes: 1, generation: "colocate", distributed: "none", per_device_batch_size: 8, vllm_gpu_memory_utilization: 0.35, gpu_memory_gb: 80 },
} as const;
export type GrpoProfileName = keyof typeof GRPO_PROFILES;
export const GRPO_PROFILE_NAMES = Object.keys(GRPO_PROFILES) as [GrpoProfileName, ...GrpoProfileName[]];

const posInt = z.int().positive();
const role = z.enum(["tester", "coder"]);
export type Role = z.infer<typeof role>;

const modelSchema = z.strictObject({
  /** A preset (qwen3-4b, qwen3-8b, qwen3-14b, qwen2.5-7b-instruct) or a Hugging Face model id. */
  model: z.string().min(1),
  /** Load the weights from here instead (local folder or another Hub id). */
  model_path: z.string().min(1).optional(),
});

export const phaseSchema = z.strictObject({
  role,
  steps: posInt,
  learning_rate: z.number().positive().optional(),
  /** Phase name (default `<utrl.name>-p<k>-<role>`); names train/<name>/ and its checkpoints. */
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/).optional(),
});

/** The paper's Qwen3-4B schedule (App. A.3). */
export const PAPER_SCHEDULE = [
  { role: "tester" as const, steps: 50, learning_rate: 1e-6 },
  { role: "coder" as const, steps: 370, learning_rate: 1e-6 },
  { role: "tester" as const, steps: 100, learning_rate: 5e-6 },
];

const serverSchema = z.strictObject({
  /**
   * vLLM command started to sample the counterpart and to validate checkpoints (placeholders as
   * validate.server: {base_model} {adapters} {port} {max_lora_rank}); null: use the running endpoint at base_url.
   */
  command: z
    .string()
    .min(1)
    .nullable()
    .default("vllm serve {base_model} --enable-lora --max-lora-rank {max_lora_rank} --max-loras 4 --lora-modules {adapters} --generation-config vllm --port {port} --host 127.0.0.1"),
  base_url: z.url().default("http://127.0.0.1:8000/v1"),
  health_timeout_s: z.number().positive().default(1800),
  max_lora_rank: posInt.default(64),
  load_adapters: z.boolean().default(true),
  stop_timeout_s: z.number().positive().default(60),
});

export const utrlConfigSchema = z.strictObject({
  /** Names the schedule: `<run>/utrl/<name>/` and the phase names. */
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/).default("utrl"),
  profile: z.enum(GRPO_PROFILE_NAMES).default("grpo-full-8gpu"),
  /** The two base models: the unit-test generator and the code generator. */
  tester: modelSchema.default({ model: "qwen3-4b" }),
  coder: modelSchema.default({ model: "qwen3-4b" }),
  schedule: z.array(phaseSchema).min(1).default(PAPER_SCHEDULE),
  /** Tasks (rl-tasks output by default). */
  tasks: z.strictObject({ train: z.string().min(1).optional(), valid: z.string().min(1).optional() }).default({}),
  /** Prompts (tasks) per optimizer step (Table 4: batch 128). */
  prompts_per_step: posInt.default(128),
  /** GRPO group size: completions per prompt. */
  num_generations: posInt.default(8),
  /** Code samples per task that define R_disc (App. A.3: 8). */
  num_codes: posInt.default(8),
  method: z.enum(["full", "lora"]).optional(),
  lora: z.strictObject({ r: posInt.default(64), alpha: z.number().positive().default(128), dropout: z.number().min(0).max(1).default(0.05), target_modules: z.union([z.string(), z.array(z.string())]).default("all-linear") }).default({ r: 64, alpha: 128, dropout: 0.05, target_modules: "all-linear" }),
  learning_rate: z.number().positive().default(1e-6),
  lr_scheduler: z.string().min(1).default("constant_with_warmup"),
  warmup_ratio: z.number().min(0).max(1).default(0.01),
  /** KL coefficient (TRL's beta; Table 4: 1e-3). */
  beta: z.number().min(0).default(1e-3),
  /**
   * TRL's loss normalisation: `grpo` — per-sequence mean, App. A.1's Eq. 6 (TRL's own default is `dapo`);
   * rewards are standardised within each group (TRL `scale_rewards: group`), as App. A.1 describes.
   */
  loss_type: z.enum(["grpo", "dapo", "dr_grpo", "bnpo"]).default("grpo"),
  temperature: z.number().positive().default(1.0),
  top_p: z.number().gt(0).max(1).default(1.0),
  max_prompt_length: posInt.optional(),
  max_completion_length: posInt.default(4096),
  weight_decay: z.number().min(0).default(0),
  optimizer: z.string().min(1).default("adamw_torch"),
  bf16: z.boolean().default(true),
  gradient_checkpointing: z.boolean().default(true),
  per_device_batch_size: posInt.optional(),
  save_steps: posInt.default(10),
  save_total_limit: posInt.nullable().default(null),
  logging_steps: posInt.default(1),
  seed: z.int().default(42),
  generation: z.enum(["colocate", "server"]).optional(),
  vllm_gpu_memory_utilization: z.number().gt(0).lt(1).optional(),
  /** Server mode: GPUs of the node given to `trl vllm-serve` (the first ones). */
  vllm_gpus: posInt.optional(),
  vllm_tensor_parallel_size: posInt.default(1),
  vllm_port: z.int().min(1).max(65535).default(8001),
  gpus_per_node: posInt.optional(),
  nodes: posInt.optional(),
  distributed: z.enum(["none", "ddp", "zero2", "zero3", "fsdp"]).optional(),
  main_process_port: z.int().min(1).max(65535).default(29500),
  /** The reward service (rl-serve) the trainer calls. */
  reward: z.strictObject({ host: z.string().min(1).optional(), port: z.int().min(1).max(65535).default(8787) }).default({ port: 8787 }),
  /** Sampling of the counterpart (rollouts) and of checkpoints (validation). */
  sampling: z
    .strictObject({
      temperature: z.number().min(0).default(1.0),
      top_p: z.number().gt(0).max(1).default(1.0),
      max_tokens: posInt.default(4096),
      /** Sent in every request (e.g. {chat_template_kwargs: {enable_thinking: false}}, top_k …). */
      extra_body: z.record(z.string(), z.unknown()).default({}),
    })
    .default({ temperature: 1.0, top_p: 1.0, max_tokens: 4096, extra_body: {} }),
  server: serverSchema.default(serverSchema.parse({})),
  slurm: z
    .strictObject({
      job_name: z.string().min(1).optional(),
      partition: z.string().min(1).optional(),
      account: z.string().min(1).optional(),
      qos: z.string().min(1).optional(),
      time: z.string().min(1).optional(),
      cpus_per_task: posInt.optional(),
      mem: z.string().min(1).optional(),
      constraint: z.string().min(1).optional(),
      extra: z.array(z.string().min(1)).optional(),
      setup: z.array(z.string()).optional(),
    })
    .default({}),
  python: z.strictObject({ trl: z.string().min(1).optional() }).default({}),
  env: z.record(z.string(), z.string()).default({}),
  /** Extra GRPOConfig keys, passed through verbatim (escape hatch; e.g. chat_template_kwargs, loss_type). */
  grpo_args: z.record(z.string(), z.unknown()).default({}),
  preflight: z.boolean().default(true),
  gpu_memory_gb: z.number().positive().optional(),
  stop_grace_s: z.number().min(0).default(60),
});
export type UtrlConfig = z.infer<typeof utrlConfigSchema>;

export interface ModelRef {
  /** What the weights are loaded from: a Hub id, a local folder, or (LoRA continuation) the base model. */
  base: string;
  /** LoRA: an adapter folder to continue from (null: a fresh adapter). */
  adapter: string | null;
  /** Where this reference comes from, for summaries. */
  from: string;
}

export interface PhasePlan {
  index: number;
  name: string;
  role: Role;
  counterpart: Role;
  steps: number;
  learningRate: number;
  /** The policy's starting point. */
  init: ModelRef;
  /** The other role's current model (rollouts for this phase's reward). */
  other: ModelRef;
  /** The phase that produced `init` / `other` (null: the base model). */
  initPhase: string | null;
  otherPhase: string | null;
  dir: string;
  trainDir: string;
  outputDir: string;
  dataDir: string;
  trainData: string;
  validData: string;
  configFile: string;
  accelerateFile: string | null;
  launchScript: string;
  rewardFunction: "utrl_tester_reward" | "utrl_coder_reward";
  /** Training tasks this phase uses: steps × prompts_per_step (cycled when the task file has fewer). */
  tasksNeeded: number;
}

export interface UtrlPlan {
  cfg: UtrlConfig;
  name: string;
  profile: GrpoProfileName;
  method: "full" | "lora";
  generation: "colocate" | "server";
  distributed: "none" | "ddp" | "zero2" | "zero3" | "fsdp";
  gpusPerNode: number;
  nodes: number;
  vllmGpus: number;
  /** Training processes (all nodes, minus the server-mode vLLM GPUs). */
  world: number;
  perDevice: number;
  gradAccum: number;
  completionsPerStep: number;
  vllmMemory: number;
  gpuMemoryGb: number | null;
  python: string;
  tester: { preset: RlModelPreset | null; model: string };
  coder: { preset: RlModelPreset | null; model: string };
  runDir: string;
  dir: string;
  tasksTrain: string;
  tasksValid: string;
  rewardHost: string;
  rewardPort: number;
  phases: PhasePlan[];
}

function modelOf(m: { model: string; model_path?: string }): { preset: RlModelPreset | null; model: string } {
  const preset = RL_MODELS[m.model] ?? null;
  return { preset, model: m.model_path ?? preset?.hfId ?? m.model };
}

export function parseUtrlConfig(raw: unknown): UtrlConfig {
  const r = utrlConfigSchema.safeParse(raw ?? {});
  if (!r.success) {
    const i = r.error.issues[0];
    throw new UserError(`utrl.${i.path.join(".")}: ${i.message}; fix the utrl: block of the config`);
  }
  return r.data;
}

/** Resolve the schedule: every number, path and model reference the renderers and checks need. */
export function resolveUtrlPlan(raw: unknown, runDir: string): UtrlPlan {
  const cfg = parseUtrlConfig(raw);
  const prof = GRPO_PROFILES[cfg.profile] as Record<string, unknown>;
  const pick = <T>(k: keyof UtrlConfig, fallback: T): T => ((cfg as Record<string, unknown>)[k] ?? prof[k] ?? fallback) as T;
  const method = pick<"full" | "lora">("method", "full");
  const generation = pick<"colocate" | "server">("generation", "colocate");
  const gpusPerNode = pick<number>("gpus_per_node", 1);
  const nodes = pick<number>("nodes", 1);
  const vllmGpus = generation === "server" ? pick<number>("vllm_gpus", 1) : 0;
  if (generation === "server" && nodes > 1)
    throw new UserError("utrl.generation: server runs `trl vllm-serve` on GPUs of the one node; with utrl.nodes > 1 use generation: colocate");
  if (generation === "server" && vllmGpus >= gpusPerNode)
    throw new UserError(`utrl.vllm_gpus ${vllmGpus} leaves no GPU to train on (gpus_per_node ${gpusPerNode}); lower vllm_gpus or add GPUs`);
  const world = gpusPerNode * nodes - vllmGpus;
  let distributed = pick<UtrlPlan["distributed"]>("distributed", world > 1 ? "ddp" : "none");
  if (world > 1 && distributed === "none") distributed = "ddp";
  if (world === 1 && distributed !== "none" && cfg.distributed === undefined) distributed = "none";
  const perDevice = pick<number>("per_device_batch_size", 8);
  const completions = cfg.prompts_per_step * cfg.num_generations;
  if ((perDevice * world) % cfg.num_generations !== 0)
    throw new UserError(
      `utrl: per_device_batch_size ${perDevice} × ${world} training GPU(s) = ${perDevice * world} completions per micro-step is not a multiple of num_generations ${cfg.num_generations} (TRL needs whole groups); change per_device_batch_size`,
    );
  if (completions % (perDevice * world) !== 0)
    throw new UserError(
      `utrl: prompts_per_step ${cfg.prompts_per_step} × num_generations ${cfg.num_generations} = ${completions} completions per step is not a multiple of per_device_batch_size ${perDevice} × ${world} GPU(s) = ${perDevice * world}; change per_device_batch_size or prompts_per_step`,
    );
  const gradAccum = completions / (perDevice * world);
  const name = cfg.name;
  const dir = path.join(runDir, "utrl", name);
  const tester = modelOf(cfg.tester);
  const coder = modelOf(cfg.coder);
  const base = (r: Role): ModelRef => ({ base: (r === "tester" ? tester : coder).model, adapter: null, from: `base ${r} model` });
  const python = cfg.python.trl ? (cfg.python.trl.includes("/") ? path.resolve(cfg.python.trl) : cfg.python.trl) : path.join(REPO_ROOT, ".venv-trl", "bin", "python");

  // Each role's current model: the base, then the selected checkpoint of its last phase.
  const latest: Record<Role, { ref: ModelRef; phase: string | null }> = { tester: { ref: base("tester"), phase: null }, coder: { ref: base("coder"), phase: null } };
  const names = new Set<string>();
  const phases: PhasePlan[] = cfg.schedule.map((ph, i) => {
    const k = i + 1;
    const pname = ph.name ?? `${name}-p${k}-${ph.role}`;
    if (names.has(pname)) throw new UserError(`utrl.schedule: two phases are named ${pname}; give each a unique name`);
    names.add(pname);
    const counterpart: Role = ph.role === "tester" ? "coder" : "tester";
    const pdir = path.join(dir, `p${k}-${ph.role}`);
    const trainDir = path.join(runDir, "train", pname);
    const plan: PhasePlan = {
      index: k,
      name: pname,
      role: ph.role,
      counterpart,
      steps: ph.steps,
      learningRate: ph.learning_rate ?? cfg.learning_rate,
      init: latest[ph.role].ref,
      other: latest[counterpart].ref,
      initPhase: latest[ph.role].phase,
      otherPhase: latest[counterpart].phase,
      dir: pdir,
      trainDir,
      outputDir: path.join(trainDir, "output"),
      dataDir: path.join(pdir, "data"),
      trainData: path.join(pdir, "data", "train.jsonl"),
      validData: path.join(pdir, "data", "valid.jsonl"),
      configFile: path.join(pdir, "configs", "grpo_config.json"),
      accelerateFile: path.join(pdir, "configs", "accelerate.yaml"),
      launchScript: path.join(pdir, "launch.sh"),
      rewardFunction: ph.role === "tester" ? "utrl_tester_reward" : "utrl_coder_reward",
      tasksNeeded: ph.steps * cfg.prompts_per_step,
    };
    // After this phase, its role's current model is its selected checkpoint.
    const best = path.join(trainDir, "best");
    const baseModel = (ph.role === "tester" ? tester : coder).model;
    latest[ph.role] = {
      ref: method === "lora" ? { base: baseModel, adapter: best, from: `${pname} (selected checkpoint)` } : { base: best, adapter: null, from: `${pname} (selected checkpoint)` },
      phase: pname,
    };
    return plan;
  });
  return {
    cfg,
    name,
    profile: cfg.profile,
    method,
    generation,
    distributed,
    gpusPerNode,
    nodes,
    vllmGpus,
    world,
    perDevice,
    gradAccum,
    completionsPerStep: completions,
    vllmMemory: pick<number>("vllm_gpu_memory_utilization", 0.3),
    gpuMemoryGb: pick<number | null>("gpu_memory_gb", null),
    python,
    tester,
    coder,
    runDir,
    dir,
    tasksTrain: path.resolve(cfg.tasks.train ?? path.join(runDir, "rl-tasks", "train.jsonl")),
    tasksValid: path.resolve(cfg.tasks.valid ?? path.join(runDir, "rl-tasks", "valid.jsonl")),
    rewardHost: cfg.reward.host ?? (nodes > 1 ? "0.0.0.0" : "127.0.0.1"),
    rewardPort: cfg.reward.port,
    phases,
  };
}

/** The phase with this 1-based index (a one-line error names the valid ones). */
export function phaseOf(plan: UtrlPlan, flag: unknown): PhasePlan {
  const k = Number(flag);
  const p = plan.phases.find((x) => x.index === k || x.name === flag);
  if (!p) throw new UserError(`--phase ${String(flag)}: the schedule has phases ${plan.phases.map((x) => `${x.index} (${x.name})`).join(", ")}`);
  return p;
}

// ------------------------------------------------------------------ renders

/** The GRPO script's config (trainers/grpo_train.py): model, LoRA, data, reward function and GRPOConfig. */
export function renderGrpoConfig(p: UtrlPlan, ph: PhasePlan): Record<string, unknown> {
  const c = p.cfg;
  const grpo: Record<string, unknown> = {
    output_dir: ph.outputDir,
    max_steps: ph.steps,
    learning_rate: ph.learningRate,
    lr_scheduler_type: c.lr_scheduler,
    // transformers 5: a float warmup_steps < 1 is a ratio (grpo_train.py maps it to warmup_ratio on 4.x).
    warmup_steps: c.warmup_ratio,
    optim: c.optimizer,
    weight_decay: c.weight_decay,
    beta: c.beta,
    loss_type: c.loss_type,
    scale_rewards: "group",
    temperature: c.temperature,
    top_p: c.top_p,
    num_generations: c.num_generations,
    per_device_train_batch_size: p.perDevice,
    gradient_accumulation_steps: p.gradAccum,
    max_completion_length: c.max_completion_length,
    ...(c.max_prompt_length ? { max_prompt_length: c.max_prompt_length } : {}),
    bf16: c.bf16,
    fp16: !c.bf16,
    gradient_checkpointing: c.gradient_checkpointing,
    save_strategy: "steps",
    save_steps: c.save_steps,
    save_total_limit: c.save_total_limit,
    logging_steps: c.logging_steps,
    log_completions: false,
    report_to: "none",
    seed: c.seed,
    // Reward columns (task_id, kind, gt_code, codes | ut_text …) must reach the reward function.
    remove_unused_columns: false,
    use_vllm: true,
    vllm_mode: p.generation,
    ...(p.generation === "colocate"
      ? { vllm_gpu_memory_utilization: p.vllmMemory, vllm_tensor_parallel_size: c.vllm_tensor_parallel_size }
      : { vllm_server_host: "127.0.0.1", vllm_server_port: c.vllm_port }),
    ...(p.distributed === "ddp" ? { ddp_find_unused_parameters: false } : {}),
    ...c.grpo_args,
  };
  return {
    role: ph.role,
    phase: ph.name,
    model: {
      name_or_path: ph.init.base,
      init_adapter: ph.init.adapter,
      dtype: c.bf16 ? "bfloat16" : "float16",
      attn_implementation: "sdpa",
    },
    lora: p.method === "lora" ? { r: c.lora.r, lora_alpha: c.lora.alpha, lora_dropout: c.lora.dropout, target_modules: c.lora.target_modules, bias: "none", task_type: "CAUSAL_LM" } : null,
    data: { train_file: ph.trainData },
    reward: { module: "utrl_reward", function: ph.rewardFunction, url_env: "UTRL_REWARD_URL" },
    grpo,
  };
}

/** accelerate config of the training processes. */
export function renderGrpoAccelerate(p: UtrlPlan): Record<string, unknown> {
  const base: Record<string, unknown> = {
    compute_environment: "LOCAL_MACHINE",
    debug: false,
    machine_rank: 0,
    num_machines: p.nodes,
    num_processes: p.world,
    mixed_precision: p.cfg.bf16 ? "bf16" : "fp16",
    rdzv_backend: p.nodes > 1 ? "c10d" : "static",
    same_network: true,
    use_cpu: false,
    downcast_bf16: "no",
  };
  switch (p.distributed) {
    case "none":
      return { ...base, distributed_type: "NO" };
    case "ddp":
      return { ...base, distributed_type: "MULTI_GPU" };
    case "zero2":
    case "zero3": {
      const z3 = p.distributed === "zero3";
      return {
        ...base,
        distributed_type: "DEEPSPEED",
        deepspeed_config: { deepspeed_multinode_launcher: "standard", offload_optimizer_device: "none", offload_param_device: "none", zero3_init_flag: z3, ...(z3 ? { zero3_save_16bit_model: true } : {}), zero_stage: z3 ? 3 : 2 },
      };
    }
    case "fsdp": {
      const layer = (p.phases[0].role === "tester" ? p.tester : p.coder).preset?.decoderLayer ?? "Qwen3DecoderLayer";
      return {
        ...base,
        distributed_type: "FSDP",
        fsdp_config: { fsdp_version: 2, fsdp_auto_wrap_policy: "TRANSFORMER_BASED_WRAP", fsdp_transformer_layer_cls_to_wrap: layer, fsdp_cpu_ram_efficient_loading: true, fsdp_offload_params: false, fsdp_state_dict_type: "FULL_STATE_DICT", fsdp_reshard_after_forward: true },
      };
    }
  }
}

/** Environment of the trainer: the reward service's URL, the client on PYTHONPATH. */
export function grpoEnv(p: UtrlPlan, rewardUrl: string): Record<string, string> {
  return {
    PYTHONUNBUFFERED: "1",
    TOKENIZERS_PARALLELISM: "false",
    UTRL_REWARD_URL: rewardUrl,
    PYTHONPATH: path.join(REPO_ROOT, "trainers"),
    ...(p.generation === "server" ? { CUDA_VISIBLE_DEVICES: range(p.vllmGpus, p.gpusPerNode).join(",") } : {}),
    ...p.cfg.env,
  };
}

const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);

/** argv of one phase's GRPO launch (single node; SLURM multi-node expands the node variables per task). */
export function grpoArgv(p: UtrlPlan, ph: PhasePlan, opts: { resumeFrom?: string | null; nodeArgs?: { machineRank: string; headIp: string } } = {}): string[] {
  const script = [GRPO_SCRIPT, "--config", ph.configFile, ...(opts.resumeFrom ? ["--resume-from-checkpoint", opts.resumeFrom] : [])];
  const multi =
    p.nodes > 1 && opts.nodeArgs
      ? ["--num_machines", String(p.nodes), "--num_processes", String(p.world), "--machine_rank", opts.nodeArgs.machineRank, "--main_process_ip", opts.nodeArgs.headIp, "--main_process_port", String(p.cfg.main_process_port), "--rdzv_backend", "c10d"]
      : [];
  return [p.python, "-m", "accelerate.commands.launch", "--config_file", ph.accelerateFile!, ...multi, ...script];
}

/** `trl vllm-serve` for server mode, on the node's first `vllm_gpus` GPUs. */
export function vllmServeArgv(p: UtrlPlan, ph: PhasePlan): string[] {
  const trl = path.join(path.dirname(p.python), "trl");
  return [trl, "vllm-serve", "--model", ph.init.base, "--tensor-parallel-size", String(p.cfg.vllm_tensor_parallel_size), "--port", String(p.cfg.vllm_port), "--host", "127.0.0.1"];
}

/**
 * One phase's launch script: starts `trl vllm-serve` first in server mode, then the GRPO training. The
 * reward service must be running at $UTRL_REWARD_URL (`--stage utrl --phase k` starts one in-process;
 * schedule.sh starts `rl-serve`).
 */
export function renderPhaseLaunch(p: UtrlPlan, ph: PhasePlan, rewardUrl: string, opts: { resumeFrom?: string | null } = {}): string {
  const lines = ["#!/usr/bin/env bash", `# ${ph.name}: GRPO ${ph.role} phase ${ph.index}, ${ph.steps} steps (written by the utrl stage)`, "set -euo pipefail", `cd ${shQuote(REPO_ROOT)}`];
  for (const [k, v] of Object.entries(grpoEnv(p, rewardUrl))) if (k !== "CUDA_VISIBLE_DEVICES") lines.push(`export ${k}=${shQuote(v)}`);
  lines.push(`${shQuote(p.python)} ${shQuote(REWARD_CLIENT)} --wait --timeout 600 >/dev/null   # the reward service must answer`);
  if (p.generation === "server") {
    const gpus = range(0, p.vllmGpus).join(",");
    lines.push(`CUDA_VISIBLE_DEVICES=${gpus} ${vllmServeArgv(p, ph).map(shQuote).join(" ")} > ${shQuote(path.join(ph.dir, "vllm-serve.log"))} 2>&1 &`);
    lines.push("VLLM_PID=$!", "trap 'kill $VLLM_PID 2>/dev/null || true' EXIT");
    const probe = `import urllib.request; urllib.request.urlopen('http://127.0.0.1:${p.cfg.vllm_port}/health/', timeout=5)`;
    lines.push(`until ${shQuote(p.python)} -c ${shQuote(probe)} 2>/dev/null; do kill -0 $VLLM_PID || { echo "trl vllm-serve exited; see ${path.join(ph.dir, "vllm-serve.log")}" >&2; exit 1; }; sleep 5; done`);
    lines.push(`export CUDA_VISIBLE_DEVICES=${range(p.vllmGpus, p.gpusPerNode).join(",")}`);
  }
  lines.push(`${p.generation === "server" ? "" : "exec "}${grpoArgv(p, ph, opts).map(shQuote).join(" ")}`);
  return lines.join("\n") + "\n";
}

/** The pipeline command a driver script runs for a stage of a phase. */
function pipe(configFile: string, args: string[]): string {
  return ["npx", "zx", "pipeline/run.mjs", "--config", configFile, ...args].map(shQuote).join(" ");
}

/**
 * The whole schedule as one bash script: per phase rl-rollouts → training → rl-validate → select. Every step
 * is resumable (finished work is skipped), so re-running the script after a failure continues where it stopped.
 */
export function renderSchedule(p: UtrlPlan, configFile: string, opts: { multiNode?: boolean } = {}): string {
  const L = [
    "#!/usr/bin/env bash",
    `# UTRL schedule ${p.name}: ${p.phases.map((ph) => `${ph.role} ${ph.steps}`).join(" → ")} (written by the utrl stage)`,
    "# Re-run to resume: each step skips finished work. Needs the GPUs of the profile and the model server command (utrl.server.command).",
    "set -euo pipefail",
    `cd ${shQuote(REPO_ROOT)}`,
  ];
  const tasksTrain = pipe(configFile, ["--stage", "rl-tasks"]);
  L.push("", "# Tasks (TACO, App. A.3 filter; skipped when up to date)", tasksTrain);
  for (const ph of p.phases) {
    L.push("", `# ---- phase ${ph.index}: ${ph.name} — ${ph.role}, ${ph.steps} steps, lr ${ph.learningRate.toExponential()}; starts from ${ph.init.from}; reward from the ${ph.counterpart} ${ph.other.from}`);
    L.push(pipe(configFile, ["--stage", "rl-rollouts", "--phase", String(ph.index)]));
    if (opts.multiNode) {
      L.push(`${pipe(configFile, ["--stage", "rl-serve", "--host", p.rewardHost, "--port", String(p.rewardPort)])} > ${shQuote(path.join(ph.dir, "rl-serve.log"))} 2>&1 &`);
      L.push("REWARD_PID=$!", "trap 'kill $REWARD_PID 2>/dev/null || true' EXIT");
      L.push(`export UTRL_REWARD_URL=http://$HEAD_NODE:${p.rewardPort}`);
      L.push(`${shQuote(p.python)} ${shQuote(REWARD_CLIENT)} --wait --timeout 900`);
      const argv = grpoArgv(p, ph, { nodeArgs: { machineRank: "$SLURM_PROCID", headIp: "$HEAD_NODE" } });
      const env = Object.entries(grpoEnv(p, `http://$HEAD_NODE:${p.rewardPort}`)).map(([k, v]) => `${k}=${k === "UTRL_REWARD_URL" ? v : shQuote(v)}`).join(" ");
      // $RESUME_ARGS (exported below) continues from the phase's last checkpoint after an interruption.
      const inner = `${env} ${argv.map((a) => (/^\$[A-Z_]+$/.test(a) ? a : shQuote(a))).join(" ")} $RESUME_ARGS`;
      const done = path.join(ph.trainDir, "phase.done");
      L.push(`if [ -f ${shQuote(done)} ]; then echo "phase ${ph.index} (${ph.name}) is done; skipping its training"; else`);
      L.push(`  LAST=$(ls -d ${shQuote(ph.outputDir)}/checkpoint-* 2>/dev/null | sort -V | tail -n1 || true)`);
      L.push('  export RESUME_ARGS="${LAST:+--resume-from-checkpoint $LAST}"');
      L.push(`  srun --kill-on-bad-exit=1 bash -c ${shQuote(inner)}`);
      L.push(`  mkdir -p ${shQuote(ph.trainDir)} && touch ${shQuote(done)}`);
      L.push("fi");
      L.push("kill $REWARD_PID; wait $REWARD_PID 2>/dev/null || true; trap - EXIT");
    } else {
      L.push(pipe(configFile, ["--stage", "utrl", "--phase", String(ph.index), "--resume"]));
    }
    L.push(pipe(configFile, ["--stage", "rl-validate", "--phase", String(ph.index)]));
    L.push(pipe(configFile, ["--stage", "select", "--set", `select.train=${ph.name}`, "--set", "select.source=rl-validate"]));
  }
  L.push("", `echo "UTRL schedule ${p.name} done: ${p.phases.map((ph) => path.join(ph.trainDir, "best")).join(", ")}"`);
  return L.join("\n") + "\n";
}

/** sbatch script running the whole schedule in one allocation (multi-node: the GRPO steps span every node). */
export function renderUtrlSlurm(p: UtrlPlan, configFile: string, scheduleFile: string): string {
  const s = p.cfg.slurm;
  const sb = (line: string) => `#SBATCH ${line}`;
  const lines = [
    "#!/bin/bash",
    `# UTRL ${p.name}: ${p.phases.map((ph) => `${ph.role} ${ph.steps}`).join(" → ")}, ${p.nodes} node(s) × ${p.gpusPerNode} GPU(s) (written by the utrl stage)`,
    sb(`--job-name=${s.job_name ?? `utrl-${p.name}`}`),
    sb(`--nodes=${p.nodes}`),
    sb("--ntasks-per-node=1"),
    sb(`--gres=gpu:${p.gpusPerNode}`),
    ...(s.cpus_per_task ? [sb(`--cpus-per-task=${s.cpus_per_task}`)] : []),
    ...(s.mem ? [sb(`--mem=${s.mem}`)] : []),
    ...(s.time ? [sb(`--time=${s.time}`)] : []),
    ...(s.partition ? [sb(`--partition=${s.partition}`)] : []),
    ...(s.account ? [sb(`--account=${s.account}`)] : []),
    ...(s.qos ? [sb(`--qos=${s.qos}`)] : []),
    ...(s.constraint ? [sb(`--constraint=${s.constraint}`)] : []),
    ...(s.extra ?? []).map(sb),
    sb(`--output=${path.join(p.dir, "slurm-%j.out")}`),
    "set -euo pipefail",
    `cd ${shQuote(REPO_ROOT)}`,
    ...(s.setup ?? []),
    'export HEAD_NODE=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)',
    `bash ${shQuote(scheduleFile)}`,
  ];
  void configFile;
  return lines.join("\n") + "\n";
}

export const yamlOut = (header: string, v: unknown) => `# ${header}\n${yamlStringify(v, { lineWidth: 0 })}`;

// ------------------------------------------------------------------ memory

/**
 * Rough per-GPU memory of a GRPO phase (GiB): weights and optimizer state (full: bf16 weights, fp32 grads
 * and AdamW moments with a fp32 master copy, 16 bytes/param, sharded by ZeRO-3/FSDP; ZeRO-2 shards the
 * 14 bytes of grads and optimizer; LoRA: bf16 base + small adapter state), a frozen reference model when
 * beta > 0 (full only: LoRA disables the adapter instead), checkpointed activations of one micro-batch of
 * prompt+completion tokens, one fp32 row of logits per token, and the colocated vLLM share of the GPU.
 * An estimate to warn about hopeless set-ups, not a measurement.
 */
export function estimateGrpoMemory(p: UtrlPlan, m: RlModelPreset, gpuGiB: number): { perGpuGiB: number; parts: Record<string, number> } {
  const GiB = 1024 ** 3;
  const shardAll = p.distributed === "zero3" || p.distributed === "fsdp" ? p.world : 1;
  const shardOpt = p.distributed === "zero2" ? p.world : shardAll;
  let model: number;
  if (p.method === "full") model = (m.params * 2) / shardAll + (m.params * 14) / shardOpt;
  else {
    const kv = (m.hidden / m.heads) * m.kvHeads;
    const lora = p.cfg.lora.r * (2 * (m.hidden + m.hidden) + 2 * (m.hidden + kv) + 3 * (m.hidden + m.intermediate)) * m.layers;
    model = m.params * 2 + lora * 16;
  }
  const ref = p.method === "full" && p.cfg.beta > 0 ? (m.params * 2) / shardAll : 0;
  const tokens = p.perDevice * ((p.cfg.max_prompt_length ?? 1024) + p.cfg.max_completion_length);
  const activations = tokens * m.hidden * 2 * m.layers + tokens * (16 * m.hidden + 6 * m.intermediate) * 2 / p.perDevice;
  const logits = ((p.cfg.max_prompt_length ?? 1024) + p.cfg.max_completion_length) * m.vocab * 4;
  const vllm = p.generation === "colocate" ? p.vllmMemory * gpuGiB * GiB : 0;
  const parts = { model: model / GiB, reference: ref / GiB, activations: activations / GiB, logits: logits / GiB, vllm: vllm / GiB, overhead: 2 };
  return { perGpuGiB: Object.values(parts).reduce((a, b) => a + b, 0), parts };
}
