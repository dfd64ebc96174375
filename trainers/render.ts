/**
 * Pure renderers from one TrainPlan: the training script's JSON config (TRL SFTConfig + PEFT LoRA +
 * bitsandbytes), the accelerate config (single GPU, DDP, DeepSpeed ZeRO-2/3, FSDP), the DeepSpeed JSON
 * (torchrun), the launch command and environment, a SLURM sbatch script, and the equivalent axolotl and
 * LLaMA-Factory YAML. `writeRenders` writes them all under `<trainDir>/configs/`.
 *
 * QLoRA and sharding: ZeRO-3 and FSDP get `bnb_4bit_quant_storage: bfloat16` (the model dtype) and no
 * per-rank device_map; FSDP + QLoRA uses the FSDP1 settings PEFT documents (use_orig_params: false,
 * cpu_ram_efficient_loading: true). DDP and ZeRO-2 keep a full 4-bit copy per GPU.
 */
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { stringify as yamlStringify } from "yaml";
import { UserError } from "../pipeline/errors.ts";
import { atomicWrite, writeJson } from "../pipeline/util.ts";
import { REPO_ROOT, type TrainPlan } from "./config.ts";

export const SFT_SCRIPT = path.join(REPO_ROOT, "trainers", "sft_train.py");

export const RENDER_KINDS = ["slurm", "axolotl", "llamafactory"] as const;
export type RenderKind = (typeof RENDER_KINDS)[number];

const dtypeName = (p: TrainPlan) => (p.bf16 ? "bfloat16" : "float16");
const sharded = (p: TrainPlan) => p.distributed === "zero3" || p.distributed === "fsdp";

/** transformers TrainingArguments shared by our SFTConfig and LLaMA-Factory's YAML (same names). */
function trainingArgs(p: TrainPlan): Record<string, unknown> {
  return {
    num_train_epochs: p.epochs,
    per_device_train_batch_size: p.microBatch,
    gradient_accumulation_steps: p.gradAccum,
    learning_rate: p.learningRate,
    lr_scheduler_type: p.lrScheduler,
    bf16: p.bf16,
    fp16: !p.bf16,
    gradient_checkpointing: p.gradientCheckpointing,
    save_strategy: p.save.strategy,
    ...(p.save.strategy === "steps" ? { save_steps: p.save.steps } : {}),
    logging_steps: p.loggingSteps,
    report_to: "none",
    seed: p.seed,
  };
}

/** The training script's config: model loading, quantization, LoRA, data and SFTConfig kwargs. */
export function renderSftConfig(p: TrainPlan, files: { deepspeed?: string } = {}): Record<string, any> {
  const quantization =
    p.method === "qlora"
      ? {
          load_in_4bit: true,
          bnb_4bit_quant_type: "nf4",
          bnb_4bit_use_double_quant: true,
          bnb_4bit_compute_dtype: dtypeName(p),
          // ZeRO-3 / FSDP shard the 4-bit weights: storage must match the model dtype (PEFT docs).
          ...(sharded(p) ? { bnb_4bit_quant_storage: dtypeName(p) } : {}),
        }
      : null;
  const optim = p.sftArgs["optim"];
  if (p.method === "qlora" && p.distributed === "fsdp" && typeof optim === "string" && optim.startsWith("paged_adamw_8bit")) {
    throw new UserError("train.sft_args.optim: paged_adamw_8bit breaks checkpoint saving under FSDP + QLoRA; use adamw_torch");
  }
  const evalStrategy = p.eval ? p.save.strategy : "no";
  const sft: Record<string, unknown> = {
    output_dir: p.outputDir,
    ...trainingArgs(p),
    // transformers 5 removed warmup_ratio: a float warmup_steps < 1 is the ratio (sft_train.py maps it back on 4.x).
    warmup_steps: p.warmupRatio,
    weight_decay: p.weightDecay,
    // PEFT + ZeRO-3 needs reentrant checkpointing (TRL forces it); elsewhere the non-reentrant variant.
    gradient_checkpointing_kwargs: { use_reentrant: p.distributed === "zero3" },
    max_length: p.maxLength,
    packing: false,
    // Loss on the completion / assistant turn only.
    ...(p.dataFormat === "prompt_completion" ? { completion_only_loss: true } : { assistant_only_loss: true }),
    save_total_limit: p.save.totalLimit,
    logging_first_step: true,
    eval_strategy: evalStrategy,
    ...(p.eval && p.save.strategy === "steps" ? { eval_steps: p.save.steps } : {}),
    per_device_eval_batch_size: p.microBatch,
    ...(p.distributed === "ddp" ? { ddp_find_unused_parameters: false } : {}),
    ...(files.deepspeed ? { deepspeed: files.deepspeed } : {}),
    ...p.sftArgs,
  };
  return {
    model: {
      name_or_path: p.model,
      dtype: dtypeName(p),
      attn_implementation: p.attnImplementation,
      sharded: sharded(p),
    },
    quantization,
    lora: {
      r: p.lora.r,
      lora_alpha: p.lora.alpha,
      lora_dropout: p.lora.dropout,
      target_modules: p.lora.targetModules,
      bias: "none",
      task_type: "CAUSAL_LM",
    },
    data: {
      format: p.dataFormat,
      train_file: p.trainFile,
      ...(p.eval ? { eval_file: p.validFile } : {}),
    },
    sft,
  };
}

/** accelerate config (mirrors TRL's examples/accelerate_configs templates). */
export function renderAccelerateConfig(p: TrainPlan): Record<string, unknown> {
  const base: Record<string, unknown> = {
    compute_environment: "LOCAL_MACHINE",
    debug: false,
    machine_rank: 0,
    num_machines: p.nodes,
    num_processes: p.worldSize,
    mixed_precision: p.bf16 ? "bf16" : "fp16",
    main_training_function: "main",
    rdzv_backend: p.nodes > 1 ? "c10d" : "static",
    same_network: true,
    use_cpu: false,
    downcast_bf16: "no",
    ...(p.nodes > 1 ? { main_process_ip: p.mainProcessIp, main_process_port: p.mainProcessPort } : {}),
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
        deepspeed_config: {
          deepspeed_multinode_launcher: "standard",
          offload_optimizer_device: "none",
          offload_param_device: "none",
          zero3_init_flag: z3,
          ...(z3 ? { zero3_save_16bit_model: true } : {}),
          zero_stage: z3 ? 3 : 2,
        },
      };
    }
    case "fsdp": {
      const common = {
        fsdp_auto_wrap_policy: "TRANSFORMER_BASED_WRAP",
        fsdp_transformer_layer_cls_to_wrap: p.preset.decoderLayer,
        fsdp_cpu_ram_efficient_loading: true,
        fsdp_offload_params: false,
        fsdp_state_dict_type: "FULL_STATE_DICT",
      };
      const fsdp_config =
        p.method === "qlora"
          ? // PEFT's FSDP + QLoRA recipe (FSDP1): original params off, rank-0 loading synced to the others.
            { ...common, fsdp_version: 1, fsdp_sharding_strategy: "FULL_SHARD", fsdp_use_orig_params: false, fsdp_sync_module_states: true, fsdp_backward_prefetch: "BACKWARD_PRE", fsdp_forward_prefetch: false }
          : { ...common, fsdp_version: 2, fsdp_reshard_after_forward: true };
      return { ...base, distributed_type: "FSDP", fsdp_config };
    }
  }
}

/** DeepSpeed JSON for torchrun launches ("auto" values are filled from the SFTConfig by transformers). */
export function renderDeepspeedJson(p: TrainPlan): Record<string, unknown> | null {
  if (p.distributed !== "zero2" && p.distributed !== "zero3") return null;
  const z3 = p.distributed === "zero3";
  return {
    bf16: { enabled: "auto" },
    fp16: { enabled: "auto" },
    zero_optimization: {
      stage: z3 ? 3 : 2,
      overlap_comm: true,
      contiguous_gradients: true,
      reduce_bucket_size: "auto",
      ...(z3
        ? { stage3_prefetch_bucket_size: "auto", stage3_param_persistence_threshold: "auto", stage3_gather_16bit_weights_on_model_save: true }
        : { allgather_bucket_size: 5e8 }),
    },
    gradient_accumulation_steps: "auto",
    gradient_clipping: "auto",
    train_batch_size: "auto",
    train_micro_batch_size_per_gpu: "auto",
  };
}

export interface ConfigFiles {
  sftConfig: string;
  accelerate?: string;
  deepspeed?: string;
}

export function configFiles(p: TrainPlan): ConfigFiles {
  return {
    sftConfig: path.join(p.configDir, "sft_config.json"),
    ...(p.launcher === "accelerate" ? { accelerate: path.join(p.configDir, "accelerate.yaml") } : {}),
    ...(p.launcher === "torchrun" && renderDeepspeedJson(p) ? { deepspeed: path.join(p.configDir, "deepspeed.json") } : {}),
  };
}

/**
 * How the launcher is told about the nodes: fixed values for a local launch, shell expressions for
 * SLURM (expanded per task inside `srun bash -c '…'`).
 */
interface NodeArgs {
  machineRank: string;
  headIp: string;
  jobId: string;
}

/** argv of the launch (`python -m accelerate.commands.launch …` keeps the trainer's virtualenv). */
export function launchArgv(p: TrainPlan, opts: { resumeFrom?: string | null; nodeArgs?: NodeArgs } = {}): string[] {
  const f = configFiles(p);
  const script = [SFT_SCRIPT, "--config", f.sftConfig, ...(opts.resumeFrom ? ["--resume-from-checkpoint", opts.resumeFrom] : [])];
  const n = opts.nodeArgs;
  switch (p.launcher) {
    case "python":
      return [p.python.trl, ...script];
    case "accelerate": {
      const multi =
        p.nodes > 1 && n
          ? ["--num_machines", String(p.nodes), "--num_processes", String(p.worldSize), "--machine_rank", n.machineRank,
             "--main_process_ip", n.headIp, "--main_process_port", String(p.mainProcessPort), "--rdzv_backend", "c10d"]
          : [];
      return [p.python.trl, "-m", "accelerate.commands.launch", "--config_file", f.accelerate!, ...multi, ...script];
    }
    case "torchrun": {
      const nodes =
        p.nodes > 1
          ? ["--nnodes", String(p.nodes), "--rdzv_id", n?.jobId ?? p.name, "--rdzv_backend", "c10d",
             "--rdzv_endpoint", `${n?.headIp ?? p.mainProcessIp}:${p.mainProcessPort}`]
          : ["--standalone"];
      return [p.python.trl, "-m", "torch.distributed.run", ...nodes, "--nproc_per_node", String(p.gpusPerNode), ...script];
    }
  }
}

/** Environment added to the child's (the rest is inherited). */
export function launchEnv(p: TrainPlan): Record<string, string> {
  return {
    PYTHONUNBUFFERED: "1",
    TOKENIZERS_PARALLELISM: "false",
    ...p.env,
  };
}

/** POSIX shell quoting. */
export function shQuote(s: string): string {
  return /^[A-Za-z0-9_\/.:=@%+,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

export function renderLaunchScript(argv: string[], env: Record<string, string>, cwd: string): string {
  const lines = ["#!/usr/bin/env bash", "# Re-runs this training launch exactly (written by the train stage).", "set -euo pipefail", `cd ${shQuote(cwd)}`];
  for (const [k, v] of Object.entries(env)) lines.push(`export ${k}=${shQuote(v)}`);
  lines.push(`exec ${argv.map(shQuote).join(" ")}`);
  return lines.join("\n") + "\n";
}

/**
 * sbatch script for the same launch: one task per node, each expanding its own `$SLURM_PROCID` inside
 * `srun bash -c '…'` (expanding it in the batch shell would give every node rank 0).
 */
export function renderSlurm(p: TrainPlan, opts: { resumeFrom?: string | null } = {}): string {
  const s = p.slurm;
  const sb = (line: string) => `#SBATCH ${line}`;
  const head = [
    "#!/bin/bash",
    `# ${p.name}: ${p.preset.hfId} ${p.method}, ${p.nodes} node(s) × ${p.gpusPerNode} GPU(s) (written by the train stage)`,
    sb(`--job-name=${s.job_name ?? `utgen-${p.name}`}`),
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
    sb(`--output=${path.join(p.trainDir, "slurm-%j.out")}`),
    "set -euo pipefail",
    `cd ${shQuote(REPO_ROOT)}`,
    ...(s.setup ?? []),
  ];
  for (const [k, v] of Object.entries(launchEnv(p))) head.push(`export ${k}=${shQuote(v)}`);
  head.push('export HEAD_NODE=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)');
  const argv = launchArgv(p, {
    resumeFrom: opts.resumeFrom,
    nodeArgs: { machineRank: "$SLURM_PROCID", headIp: "$HEAD_NODE", jobId: "$SLURM_JOB_ID" },
  });
  // Inside the single-quoted bash -c script: the $VARs are kept unquoted so each task expands them.
  const inner = argv.map((a) => (/^\$[A-Z_]+$/.test(a) || /^\$[A-Z_]+:\d+$/.test(a) ? a : shQuote(a))).join(" ");
  head.push(`srun --kill-on-bad-exit=1 bash -c ${shQuote(inner)}`);
  return head.join("\n") + "\n";
}

/** axolotl YAML from the same settings (trains on the `messages` file: chat_template, assistant turns). */
export function renderAxolotl(p: TrainPlan, files: { deepspeed?: string } = {}): Record<string, unknown> {
  const q = p.method === "qlora";
  return {
    base_model: p.model,
    adapter: q ? "qlora" : "lora",
    load_in_4bit: q,
    load_in_8bit: false,
    chat_template: p.preset.axolotlTemplate,
    datasets: [
      {
        path: p.messagesTrainFile,
        ds_type: "json",
        type: "chat_template",
        field_messages: "messages",
        roles_to_train: ["assistant"],
        train_on_eos: "turn",
      },
    ],
    train_on_inputs: false,
    sequence_len: p.maxLength,
    sample_packing: false,
    lora_r: p.lora.r,
    lora_alpha: p.lora.alpha,
    lora_dropout: p.lora.dropout,
    ...(p.lora.targetModules === "all-linear" ? { lora_target_linear: true } : { lora_target_modules: p.lora.targetModules }),
    num_epochs: p.epochs,
    micro_batch_size: p.microBatch,
    gradient_accumulation_steps: p.gradAccum,
    learning_rate: p.learningRate,
    lr_scheduler: p.lrScheduler,
    warmup_ratio: p.warmupRatio,
    weight_decay: p.weightDecay,
    optimizer: "adamw_torch_fused",
    bf16: p.bf16 ? true : false,
    fp16: !p.bf16,
    gradient_checkpointing: p.gradientCheckpointing,
    ...(p.save.strategy === "epoch" ? { saves_per_epoch: 1 } : { save_steps: p.save.steps }),
    ...(p.save.totalLimit ? { save_total_limit: p.save.totalLimit } : {}),
    logging_steps: p.loggingSteps,
    seed: p.seed,
    output_dir: path.join(p.trainDir, "axolotl-output"),
    ...(files.deepspeed ? { deepspeed: files.deepspeed } : {}),
    ...(p.distributed === "fsdp"
      ? {
          fsdp_version: 2,
          fsdp_config: {
            offload_params: false,
            cpu_ram_efficient_loading: true,
            auto_wrap_policy: "TRANSFORMER_BASED_WRAP",
            transformer_layer_cls_to_wrap: p.preset.decoderLayer,
            state_dict_type: "FULL_STATE_DICT",
            reshard_after_forward: true,
          },
        }
      : {}),
  };
}

export const LLAMAFACTORY_DATASET = "utgen_sft";

/** LLaMA-Factory YAML + its dataset_info.json (sharegpt format with OpenAI-style role tags). */
export function renderLlamaFactory(p: TrainPlan, files: { deepspeed?: string; datasetDir: string }) {
  const yaml: Record<string, unknown> = {
    model_name_or_path: p.model,
    stage: "sft",
    do_train: true,
    finetuning_type: "lora",
    lora_rank: p.lora.r,
    lora_alpha: p.lora.alpha,
    lora_dropout: p.lora.dropout,
    lora_target: p.lora.targetModules === "all-linear" ? "all" : [p.lora.targetModules].flat().join(","),
    ...(p.method === "qlora" ? { quantization_bit: 4, quantization_method: "bnb", double_quantization: true } : {}),
    dataset: LLAMAFACTORY_DATASET,
    dataset_dir: files.datasetDir,
    template: p.preset.llamafactoryTemplate,
    cutoff_len: p.maxLength,
    train_on_prompt: false,
    output_dir: path.join(p.trainDir, "llamafactory-output"),
    ...trainingArgs(p),
    warmup_ratio: p.warmupRatio,
    ...(p.save.totalLimit ? { save_total_limit: p.save.totalLimit } : {}),
    ...(files.deepspeed ? { deepspeed: files.deepspeed } : {}),
  };
  const datasetInfo = {
    [LLAMAFACTORY_DATASET]: {
      file_name: p.messagesTrainFile,
      formatting: "sharegpt",
      columns: { messages: "messages" },
      tags: {
        role_tag: "role",
        content_tag: "content",
        user_tag: "user",
        assistant_tag: "assistant",
        system_tag: "system",
      },
    },
  };
  return { yaml, datasetInfo };
}

export interface WrittenRenders {
  sftConfig: string;
  accelerate?: string;
  deepspeed?: string;
  slurm: string;
  axolotl: string;
  llamafactory: string;
  llamafactoryDatasetInfo: string;
}

const yamlOut = (header: string, v: unknown) => `# ${header}\n${yamlStringify(v, { lineWidth: 0 })}`;

/** Write every rendered config under `<trainDir>/configs/`. */
export async function writeRenders(p: TrainPlan, opts: { resumeFrom?: string | null } = {}): Promise<WrittenRenders> {
  await fsp.mkdir(p.configDir, { recursive: true });
  const f = configFiles(p);
  const ds = renderDeepspeedJson(p);
  // The DeepSpeed JSON also serves axolotl and LLaMA-Factory (same transformers integration).
  const dsFile = ds ? path.join(p.configDir, "deepspeed.json") : undefined;
  if (ds) await writeJson(dsFile!, ds);
  await writeJson(f.sftConfig, renderSftConfig(p, { deepspeed: f.deepspeed }));
  if (f.accelerate) await atomicWrite(f.accelerate, yamlOut("accelerate launch --config_file (train stage)", renderAccelerateConfig(p)));
  const slurm = path.join(p.configDir, "sbatch.sh");
  await atomicWrite(slurm, renderSlurm(p, opts));
  await fsp.chmod(slurm, 0o755);
  const axolotl = path.join(p.configDir, "axolotl.yaml");
  await atomicWrite(
    axolotl,
    yamlOut(`axolotl train ${axolotl}  (python: ${p.python.axolotl})`, renderAxolotl(p, { deepspeed: dsFile })),
  );
  const lfDir = path.join(p.configDir, "llamafactory");
  const lf = renderLlamaFactory(p, { deepspeed: dsFile, datasetDir: lfDir });
  const llamafactory = path.join(p.configDir, "llamafactory.yaml");
  await atomicWrite(llamafactory, yamlOut(`llamafactory-cli train ${llamafactory}  (python: ${p.python.llamafactory})`, lf.yaml));
  const llamafactoryDatasetInfo = path.join(lfDir, "dataset_info.json");
  await writeJson(llamafactoryDatasetInfo, lf.datasetInfo);
  return { ...f, ...(dsFile ? { deepspeed: dsFile } : {}), slurm, axolotl, llamafactory, llamafactoryDatasetInfo };
}

/** The command a user runs for another trainer (its own virtualenv's entry point). */
export function otherTrainerCommand(p: TrainPlan, kind: "axolotl" | "llamafactory", file: string): string {
  const bin = path.dirname(kind === "axolotl" ? p.python.axolotl : p.python.llamafactory);
  if (kind === "axolotl") {
    const multi = p.worldSize > 1 ? " --launcher accelerate" : "";
    return `${shQuote(path.join(bin, "axolotl"))} train ${shQuote(file)}${multi}`;
  }
  return `${p.worldSize > 1 ? "FORCE_TORCHRUN=1 " : ""}${shQuote(path.join(bin, "llamafactory-cli"))} train ${shQuote(file)}`;
}
