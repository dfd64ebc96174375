/**
 * The `train:` YAML block: a strict zod schema, the UTGen recipe defaults, profile layering and the
 * resolved launch plan (every number the renderers and preflight need, computed once).
 *
 * Precedence: recipe defaults < profile (`lora-7b-1gpu`, `qlora-32b-8gpu`) < the user's `train:` keys.
 * The effective batch is micro-batch × gradient accumulation × GPUs (all nodes); give `batch_size`
 * (effective, default 16) and the accumulation is derived, or give `gradient_accumulation` and the two
 * must agree.
 */
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { UserError } from "../pipeline/errors.ts";
import { PRESETS, PRESET_KEYS, PROFILES, PROFILE_NAMES, type ModelPreset, type ProfileName } from "./presets.ts";

const posInt = z.number().int().positive();

export const trainConfigSchema = z.strictObject({
  /**
   * `trl` (default): fine-tune with TRL + PEFT. `heuristic`: train nothing; register three demo checkpoints of
   * the embedded heuristic unit-test generator (stages/validation/heuristic.ts), so validate and select run
   * with no model or GPU (configs/demo.yaml).
   */
  backend: z.enum(["trl", "heuristic"]).optional(),
  /** Names the output folder `<runDir>/train/<name>/` and the checkpoints (`<name>-step<N>`). */
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, "use letters, digits, . _ -").optional(),
  profile: z.enum(PROFILE_NAMES).optional(),
  base_model: z.enum(PRESET_KEYS).optional(),
  /** Load weights from here instead of the preset's Hub id (local folder or another Hub id). */
  model_path: z.string().min(1).optional(),
  /** Folder with the emit-sft files; default `<runDir>/emit-sft/sft`. */
  data_dir: z.string().min(1).optional(),
  data_format: z.enum(["prompt_completion", "messages"]).optional(),
  method: z.enum(["lora", "qlora"]).optional(),
  epochs: z.number().positive().optional(),
  batch_size: posInt.optional(),
  micro_batch_size: posInt.optional(),
  gradient_accumulation: posInt.optional(),
  learning_rate: z.number().positive().optional(),
  lr_scheduler: z.string().min(1).optional(),
  warmup_ratio: z.number().min(0).max(1).optional(),
  weight_decay: z.number().min(0).optional(),
  max_length: posInt.optional(),
  /** Rows longer than max_length are truncated by TRL; refused unless this is true. */
  allow_truncation: z.boolean().optional(),
  lora: z
    .strictObject({
      r: posInt.optional(),
      alpha: z.number().positive().optional(),
      dropout: z.number().min(0).max(1).optional(),
      target_modules: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
    })
    .optional(),
  bf16: z.boolean().optional(),
  gradient_checkpointing: z.boolean().optional(),
  attn_implementation: z.string().min(1).optional(),
  save: z
    .strictObject({
      strategy: z.enum(["epoch", "steps"]).optional(),
      steps: posInt.optional(),
      total_limit: posInt.nullable().optional(),
    })
    .optional(),
  logging_steps: posInt.optional(),
  /** Evaluate on the valid file at every save (costs GPU time; checkpoint selection is the validate stage's job). */
  eval: z.boolean().optional(),
  seed: z.number().int().optional(),
  launcher: z.enum(["accelerate", "torchrun", "python"]).optional(),
  distributed: z.enum(["none", "ddp", "zero2", "zero3", "fsdp"]).optional(),
  gpus_per_node: posInt.optional(),
  nodes: posInt.optional(),
  main_process_ip: z.string().min(1).optional(),
  main_process_port: z.number().int().min(1).max(65535).optional(),
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
      /** Extra `#SBATCH` lines, without the prefix (e.g. `--exclusive`). */
      extra: z.array(z.string().min(1)).optional(),
      /** Shell lines run before the launch (module load …). */
      setup: z.array(z.string()).optional(),
    })
    .optional(),
  /** Python interpreter of each trainer's own virtualenv (they cannot share one, see docs/training.md). */
  python: z
    .strictObject({
      trl: z.string().min(1).optional(),
      axolotl: z.string().min(1).optional(),
      llamafactory: z.string().min(1).optional(),
    })
    .optional(),
  /** Extra environment for the training process. */
  env: z.record(z.string(), z.string()).optional(),
  /** Extra SFTConfig / TrainingArguments keys, passed through verbatim (escape hatch). */
  sft_args: z.record(z.string(), z.unknown()).optional(),
  /** Probe the Python environment and GPUs before launching (default true). */
  preflight: z.boolean().optional(),
  /** GPU memory assumed by --dry-run estimates when no GPU is probed. */
  gpu_memory_gb: z.number().positive().optional(),
  /** Seconds between Ctrl-C (SIGINT to the trainer) and SIGTERM. */
  stop_grace_s: z.number().min(0).optional(),
});

export type TrainConfig = z.infer<typeof trainConfigSchema>;

export type Method = "lora" | "qlora";
export type Launcher = "accelerate" | "torchrun" | "python";
export type Distributed = "none" | "ddp" | "zero2" | "zero3" | "fsdp";
export type DataFormat = "prompt_completion" | "messages";

/** Everything a launch needs, resolved. Paths are absolute. */
export interface TrainPlan {
  name: string;
  profile: ProfileName | null;
  preset: ModelPreset;
  model: string;
  method: Method;
  dataFormat: DataFormat;
  dataDir: string;
  trainFile: string;
  validFile: string;
  /** The `messages` files, used by the axolotl / LLaMA-Factory renders. */
  messagesTrainFile: string;
  trainDir: string;
  outputDir: string;
  configDir: string;
  epochs: number;
  microBatch: number;
  gradAccum: number;
  gpusPerNode: number;
  nodes: number;
  worldSize: number;
  effectiveBatch: number;
  learningRate: number;
  lrScheduler: string;
  warmupRatio: number;
  weightDecay: number;
  maxLength: number;
  allowTruncation: boolean;
  lora: { r: number; alpha: number; dropout: number; targetModules: string | string[] };
  bf16: boolean;
  gradientCheckpointing: boolean;
  attnImplementation: string;
  save: { strategy: "epoch" | "steps"; steps: number | null; totalLimit: number | null };
  loggingSteps: number;
  eval: boolean;
  seed: number;
  launcher: Launcher;
  distributed: Distributed;
  mainProcessIp: string;
  mainProcessPort: number;
  slurm: NonNullable<TrainConfig["slurm"]>;
  python: { trl: string; axolotl: string; llamafactory: string };
  env: Record<string, string>;
  sftArgs: Record<string, unknown>;
  preflight: boolean;
  gpuMemoryGb: number | null;
  stopGraceS: number;
}

/** The UTGen paper's recipe (Sec. 4 "Training Hyperparameters") and the wrapper's own defaults. */
export const RECIPE = {
  epochs: 10,
  batch_size: 16,
  learning_rate: 5e-6,
  lr_scheduler: "cosine",
  lora: { r: 16, alpha: 32, dropout: 0.05, target_modules: "all-linear" },
  bf16: true,
  gradient_checkpointing: true,
  save: { strategy: "epoch" as const, total_limit: null },
} as const;

/** TRL's LoRA SFT guidance (peft_integration.md); the recipe's rate is far below it. */
export const USUAL_LORA_LR = 2e-4;

export function parseTrainConfig(raw: unknown): TrainConfig {
  const r = trainConfigSchema.safeParse(raw ?? {});
  if (!r.success) {
    const issue = r.error.issues[0];
    const where = issue.path.length ? `train.${issue.path.join(".")}` : "train";
    throw new UserError(`${where}: ${issue.message}; fix the train: block of the config`);
  }
  return r.data;
}

/** The repository root (the venv defaults and the training script live beside this file). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

export function resolvePlan(raw: unknown, runDir: string): TrainPlan {
  const user = parseTrainConfig(raw);
  const profileName = user.profile ?? (user.base_model ? null : "lora-7b-1gpu");
  const profile: Partial<TrainConfig> = profileName ? (PROFILES[profileName] as Partial<TrainConfig>) : {};
  const pick = <K extends keyof TrainConfig>(k: K): TrainConfig[K] | undefined => user[k] ?? profile[k];

  const preset = PRESETS[pick("base_model") ?? "qwen2.5-coder-7b-instruct"];
  const method = pick("method") ?? "lora";
  const dataFormat = pick("data_format") ?? "prompt_completion";
  if (dataFormat === "messages" && !preset.messagesAllowed) {
    throw new UserError(
      `train.data_format: messages needs TRL's assistant_only_loss, which fails for ${preset.hfId}'s chat template; use data_format: prompt_completion (completion-only loss, same masking)`,
    );
  }

  const launcher = pick("launcher") ?? "accelerate";
  const gpusPerNode = pick("gpus_per_node") ?? 1;
  const nodes = pick("nodes") ?? 1;
  const worldSize = gpusPerNode * nodes;
  if (user.distributed === "none" && worldSize > 1) {
    throw new UserError(`train.distributed: none runs one process, but ${worldSize} GPUs are configured; use ddp, zero2, zero3 or fsdp`);
  }
  let distributed = pick("distributed") ?? (worldSize > 1 ? "ddp" : "none");
  // A single-GPU profile scaled up by the user's gpus_per_node / nodes becomes data parallel.
  if (worldSize > 1 && distributed === "none") distributed = "ddp";
  if (launcher === "python" && worldSize > 1) {
    throw new UserError(
      `train.launcher: python runs one process, but ${worldSize} GPUs are configured; use launcher: accelerate or torchrun`,
    );
  }
  if (launcher === "python" && distributed !== "none") {
    throw new UserError(`train.distributed: ${distributed} needs a distributed launcher; use launcher: accelerate or torchrun`);
  }
  if (distributed === "fsdp" && launcher !== "accelerate") {
    throw new UserError("train.distributed: fsdp is rendered as an accelerate config; use launcher: accelerate");
  }

  const microBatch = pick("micro_batch_size") ?? 2;
  const { gradAccum, effectiveBatch } = effectiveBatchOf(user.batch_size, user.gradient_accumulation, microBatch, worldSize);

  const save = { ...RECIPE.save, ...(user.save ?? {}) };
  if (save.strategy === "steps" && !save.steps) {
    throw new UserError("train.save.strategy: steps needs train.save.steps (a positive number of optimizer steps)");
  }
  const name = user.name ?? profileName ?? preset.key;
  const trainDir = path.join(runDir, "train", name);
  const dataDir = path.resolve(user.data_dir ?? path.join(runDir, "emit-sft", "sft"));
  const venv = (t: string) => path.join(REPO_ROOT, `.venv-${t}`, "bin", "python");
  const py = user.python ?? {};

  return {
    name,
    profile: profileName,
    preset,
    model: user.model_path ?? preset.hfId,
    method,
    dataFormat,
    dataDir,
    trainFile: path.join(dataDir, `train.${dataFormat}.jsonl`),
    validFile: path.join(dataDir, `valid.${dataFormat}.jsonl`),
    messagesTrainFile: path.join(dataDir, "train.messages.jsonl"),
    trainDir,
    outputDir: path.join(trainDir, "output"),
    configDir: path.join(trainDir, "configs"),
    epochs: user.epochs ?? RECIPE.epochs,
    microBatch,
    gradAccum,
    gpusPerNode,
    nodes,
    worldSize,
    effectiveBatch,
    learningRate: user.learning_rate ?? RECIPE.learning_rate,
    lrScheduler: user.lr_scheduler ?? RECIPE.lr_scheduler,
    warmupRatio: user.warmup_ratio ?? 0,
    weightDecay: user.weight_decay ?? 0,
    maxLength: user.max_length ?? 4096,
    allowTruncation: user.allow_truncation ?? false,
    lora: {
      r: user.lora?.r ?? RECIPE.lora.r,
      alpha: user.lora?.alpha ?? RECIPE.lora.alpha,
      dropout: user.lora?.dropout ?? RECIPE.lora.dropout,
      targetModules: user.lora?.target_modules ?? RECIPE.lora.target_modules,
    },
    bf16: user.bf16 ?? RECIPE.bf16,
    gradientCheckpointing: user.gradient_checkpointing ?? RECIPE.gradient_checkpointing,
    attnImplementation: user.attn_implementation ?? "sdpa",
    save: { strategy: save.strategy, steps: save.steps ?? null, totalLimit: save.total_limit ?? null },
    loggingSteps: user.logging_steps ?? 5,
    eval: user.eval ?? false,
    seed: user.seed ?? 42,
    launcher,
    distributed,
    mainProcessIp: user.main_process_ip ?? "127.0.0.1",
    mainProcessPort: user.main_process_port ?? 29500,
    slurm: user.slurm ?? {},
    python: {
      trl: interpreter(py.trl ?? venv("trl")),
      axolotl: interpreter(py.axolotl ?? venv("axolotl")),
      llamafactory: interpreter(py.llamafactory ?? venv("llamafactory")),
    },
    env: user.env ?? {},
    sftArgs: user.sft_args ?? {},
    preflight: user.preflight ?? true,
    gpuMemoryGb: pick("gpu_memory_gb") ?? null,
    stopGraceS: user.stop_grace_s ?? 60,
  };
}

/** A path is made absolute; a bare command name (`python3`) is left to PATH. */
const interpreter = (p: string) => (p.includes("/") ? path.resolve(p) : p);

/**
 * effective batch = micro-batch × gradient accumulation × world size. Given the effective batch, derive
 * the accumulation (it must divide evenly); given both, they must agree.
 */
export function effectiveBatchOf(
  batchSize: number | undefined,
  gradientAccumulation: number | undefined,
  microBatch: number,
  worldSize: number,
): { gradAccum: number; effectiveBatch: number } {
  const perStep = microBatch * worldSize;
  if (gradientAccumulation !== undefined) {
    const eff = perStep * gradientAccumulation;
    if (batchSize !== undefined && batchSize !== eff) {
      throw new UserError(
        `train.batch_size ${batchSize} disagrees with micro_batch_size ${microBatch} × gradient_accumulation ${gradientAccumulation} × ${worldSize} GPU(s) = ${eff}; drop one of them`,
      );
    }
    return { gradAccum: gradientAccumulation, effectiveBatch: eff };
  }
  const target = batchSize ?? RECIPE.batch_size;
  if (target % perStep !== 0) {
    throw new UserError(
      `train.batch_size ${target} is not a multiple of micro_batch_size ${microBatch} × ${worldSize} GPU(s) = ${perStep}; change micro_batch_size or the GPU count`,
    );
  }
  return { gradAccum: target / perStep, effectiveBatch: target };
}

/** "16 = 2 micro × 8 grad-accum × 1 GPU" */
export function describeBatch(p: Pick<TrainPlan, "effectiveBatch" | "microBatch" | "gradAccum" | "worldSize" | "nodes">): string {
  const gpus = p.nodes > 1 ? `${p.worldSize} GPUs (${p.nodes} nodes)` : `${p.worldSize} GPU${p.worldSize > 1 ? "s" : ""}`;
  return `${p.effectiveBatch} = ${p.microBatch} micro × ${p.gradAccum} grad-accum × ${gpus}`;
}
