/**
 * Rendered configs for each profile and launcher: TRL script config, accelerate (single GPU, DDP,
 * ZeRO-2/3, FSDP), DeepSpeed JSON, torchrun, SLURM (executed with stand-in srun/scontrol to prove each
 * task expands its own rank), axolotl and LLaMA-Factory; the recipe defaults and the batch arithmetic.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { promises as fsp } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import { parse as yamlParse } from "yaml";
import { UserError } from "../pipeline/errors.ts";
import { describeBatch, effectiveBatchOf, resolvePlan } from "../trainers/config.ts";
import {
  SFT_SCRIPT,
  launchArgv,
  renderAccelerateConfig,
  renderAxolotl,
  renderDeepspeedJson,
  renderLaunchScript,
  renderLlamaFactory,
  renderSftConfig,
  writeRenders,
} from "../trainers/render.ts";

const execFileP = promisify(execFile);
let tmp: string;
beforeAll(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), "train-render-"));
});
afterAll(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

const RUN = "/runs/r1";
const plan = (cfg: Record<string, unknown> = {}) => resolvePlan(cfg, RUN);

describe("recipe defaults and profiles", () => {
  it("lora-7b-1gpu (the default profile) carries the paper's recipe into the TRL script config", () => {
    const p = plan();
    expect(p.profile).toBe("lora-7b-1gpu");
    const c = renderSftConfig(p);
    expect(c.model).toEqual({ name_or_path: "Qwen/Qwen2.5-Coder-7B-Instruct", dtype: "bfloat16", attn_implementation: "sdpa", sharded: false });
    expect(c.quantization).toBeNull();
    expect(c.lora).toEqual({ r: 16, lora_alpha: 32, lora_dropout: 0.05, target_modules: "all-linear", bias: "none", task_type: "CAUSAL_LM" });
    expect(c.data).toEqual({ format: "prompt_completion", train_file: "/runs/r1/emit-sft/sft/train.prompt_completion.jsonl" });
    expect(c.sft).toMatchObject({
      output_dir: "/runs/r1/train/lora-7b-1gpu/output",
      num_train_epochs: 10,
      per_device_train_batch_size: 2,
      gradient_accumulation_steps: 8,
      learning_rate: 5e-6,
      lr_scheduler_type: "cosine",
      bf16: true,
      fp16: false,
      gradient_checkpointing: true,
      completion_only_loss: true,
      save_strategy: "epoch",
      save_total_limit: null,
      eval_strategy: "no",
      report_to: "none",
      max_length: 4096,
    });
    expect(c.sft).not.toHaveProperty("assistant_only_loss");
    expect(c.sft.per_device_train_batch_size * c.sft.gradient_accumulation_steps * p.worldSize).toBe(16);
    expect(renderAccelerateConfig(p)).toMatchObject({ distributed_type: "NO", num_processes: 1, num_machines: 1, mixed_precision: "bf16" });
    expect(launchArgv(p)).toEqual([
      path.resolve(__dirname, "../.venv-trl/bin/python"), "-m", "accelerate.commands.launch",
      "--config_file", "/runs/r1/train/lora-7b-1gpu/configs/accelerate.yaml",
      SFT_SCRIPT, "--config", "/runs/r1/train/lora-7b-1gpu/configs/sft_config.json",
    ]);
  });

  it("qlora-32b-8gpu: 4-bit NF4 with double quantisation and bf16 compute, DDP over 8 GPUs, 2 × 1 × 8 = 16", () => {
    const p = plan({ profile: "qlora-32b-8gpu" });
    const c = renderSftConfig(p);
    expect(c.model.name_or_path).toBe("Qwen/Qwen2.5-Coder-32B-Instruct");
    expect(c.quantization).toEqual({ load_in_4bit: true, bnb_4bit_quant_type: "nf4", bnb_4bit_use_double_quant: true, bnb_4bit_compute_dtype: "bfloat16" });
    expect(c.sft).toMatchObject({ per_device_train_batch_size: 2, gradient_accumulation_steps: 1, ddp_find_unused_parameters: false });
    expect(renderAccelerateConfig(p)).toMatchObject({ distributed_type: "MULTI_GPU", num_processes: 8, num_machines: 1 });
    expect(describeBatch(p)).toBe("16 = 2 micro × 1 grad-accum × 8 GPUs");
  });

  it("ZeRO-3 and FSDP with QLoRA store the 4-bit weights in bf16 and skip the per-rank device map", () => {
    for (const distributed of ["zero3", "fsdp"] as const) {
      const c = renderSftConfig(plan({ profile: "qlora-32b-8gpu", distributed }));
      expect(c.quantization.bnb_4bit_quant_storage).toBe("bfloat16");
      expect(c.model.sharded).toBe(true);
    }
    const z3 = plan({ profile: "qlora-32b-8gpu", distributed: "zero3" });
    expect(renderSftConfig(z3).sft.gradient_checkpointing_kwargs).toEqual({ use_reentrant: true });
    expect(renderAccelerateConfig(z3)).toMatchObject({
      distributed_type: "DEEPSPEED",
      deepspeed_config: { zero_stage: 3, zero3_init_flag: true, zero3_save_16bit_model: true, deepspeed_multinode_launcher: "standard" },
    });
    const z2 = plan({ profile: "qlora-32b-8gpu", distributed: "zero2" });
    expect(renderAccelerateConfig(z2)).toMatchObject({ distributed_type: "DEEPSPEED", deepspeed_config: { zero_stage: 2, zero3_init_flag: false } });
    expect(renderSftConfig(z2).quantization).not.toHaveProperty("bnb_4bit_quant_storage");
  });

  it("FSDP: FSDP2 for LoRA, PEFT's FSDP1 QLoRA settings for QLoRA; paged 8-bit Adam refused there", () => {
    const lora = renderAccelerateConfig(plan({ gpus_per_node: 8, micro_batch_size: 2, distributed: "fsdp" })) as any;
    expect(lora.distributed_type).toBe("FSDP");
    expect(lora.fsdp_config).toMatchObject({ fsdp_version: 2, fsdp_auto_wrap_policy: "TRANSFORMER_BASED_WRAP", fsdp_transformer_layer_cls_to_wrap: "Qwen2DecoderLayer" });
    const q = renderAccelerateConfig(plan({ profile: "qlora-32b-8gpu", distributed: "fsdp" })) as any;
    expect(q.fsdp_config).toMatchObject({ fsdp_version: 1, fsdp_use_orig_params: false, fsdp_cpu_ram_efficient_loading: true, fsdp_sync_module_states: true });
    expect(() => renderSftConfig(plan({ profile: "qlora-32b-8gpu", distributed: "fsdp", sft_args: { optim: "paged_adamw_8bit" } }))).toThrow(
      /paged_adamw_8bit breaks checkpoint saving under FSDP \+ QLoRA/,
    );
    expect(() => plan({ distributed: "fsdp", launcher: "torchrun", gpus_per_node: 8, micro_batch_size: 2 })).toThrow(/fsdp .* use launcher: accelerate/);
  });

  it("torchrun: DeepSpeed JSON referenced from the SFT config, standalone single node", () => {
    const p = plan({ profile: "qlora-32b-8gpu", launcher: "torchrun", distributed: "zero2" });
    const ds = renderDeepspeedJson(p)!;
    expect(ds).toMatchObject({ zero_optimization: { stage: 2 }, train_micro_batch_size_per_gpu: "auto", gradient_accumulation_steps: "auto", bf16: { enabled: "auto" } });
    expect(renderSftConfig(p, { deepspeed: "/x/deepspeed.json" }).sft.deepspeed).toBe("/x/deepspeed.json");
    const argv = launchArgv(p);
    expect(argv.slice(1, 7)).toEqual(["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "8", SFT_SCRIPT]);
    expect(renderDeepspeedJson(plan())).toBeNull();
  });

  it("data variants: messages train with assistant_only_loss; Llama-3.1 is refused there", () => {
    const p = plan({ base_model: "llama-3-8b-instruct", data_format: "messages" });
    const c = renderSftConfig(p);
    expect(c.sft.assistant_only_loss).toBe(true);
    expect(c.sft).not.toHaveProperty("completion_only_loss");
    expect(c.data.train_file).toBe("/runs/r1/emit-sft/sft/train.messages.jsonl");
    expect(() => plan({ base_model: "llama-3.1-8b-instruct", data_format: "messages" })).toThrow(
      /assistant_only_loss, which fails for meta-llama\/Llama-3\.1-8B-Instruct's chat template; use data_format: prompt_completion/,
    );
    expect(plan({ base_model: "llama-3.1-8b-instruct" }).dataFormat).toBe("prompt_completion");
  });

  it("user keys override the profile, which overrides the recipe; the schema is strict", () => {
    const p = plan({ profile: "qlora-32b-8gpu", epochs: 3, learning_rate: 1e-5, lora: { r: 8 }, save: { strategy: "steps", steps: 50, total_limit: 4 } });
    const c = renderSftConfig(p);
    expect(c.sft).toMatchObject({ num_train_epochs: 3, learning_rate: 1e-5, save_strategy: "steps", save_steps: 50, save_total_limit: 4 });
    expect(c.lora).toMatchObject({ r: 8, lora_alpha: 32 });
    expect(() => plan({ epochz: 3 })).toThrow(UserError);
    expect(() => plan({ epochz: 3 })).toThrow(/^train: Unrecognized key: "epochz"; fix the train: block/);
    expect(() => plan({ lora: { rank: 4 } })).toThrow(/^train\.lora: Unrecognized key/);
    expect(() => plan({ save: { strategy: "steps" } })).toThrow(/save\.strategy: steps needs train\.save\.steps/);
    expect(() => plan({ launcher: "python", gpus_per_node: 2, micro_batch_size: 1 })).toThrow(/launcher: python runs one process/);
    expect(() => plan({ distributed: "none", gpus_per_node: 2, micro_batch_size: 1 })).toThrow(/distributed: none runs one process, but 2 GPUs/);
    expect(plan({ gpus_per_node: 2, micro_batch_size: 1 }).distributed).toBe("ddp"); // the 1-GPU profile scaled up
  });
});

describe("effective batch arithmetic", () => {
  it.each([
    [16, undefined, 2, 1, 8],
    [16, undefined, 1, 1, 16],
    [16, undefined, 2, 8, 1],
    [16, undefined, 1, 16, 1],
    [32, undefined, 4, 2, 4],
    [undefined, undefined, 2, 4, 2],
    [undefined, 4, 2, 2, 4],
  ])("batch %s, accumulation %s, micro %s, %s GPUs → accumulation %s", (batch, ga, micro, world, want) => {
    const r = effectiveBatchOf(batch, ga, micro, world);
    expect(r.gradAccum).toBe(want);
    expect(r.effectiveBatch).toBe(micro * world * want);
  });

  it("refuses what does not divide or disagrees, with one line", () => {
    expect(() => effectiveBatchOf(16, undefined, 3, 1)).toThrow("train.batch_size 16 is not a multiple of micro_batch_size 3 × 1 GPU(s) = 3; change micro_batch_size or the GPU count");
    expect(() => effectiveBatchOf(16, 4, 2, 1)).toThrow("train.batch_size 16 disagrees with micro_batch_size 2 × gradient_accumulation 4 × 1 GPU(s) = 8; drop one of them");
    expect(() => plan({ profile: "qlora-32b-8gpu", micro_batch_size: 4 })).toThrow(/not a multiple of micro_batch_size 4 × 8 GPU\(s\) = 32/);
  });
});

describe("axolotl and LLaMA-Factory from the same settings", () => {
  it("axolotl: qlora adapter, chat_template rows with loss on assistant turns, same numbers", () => {
    const p = plan({ profile: "qlora-32b-8gpu" });
    const a = renderAxolotl(p) as any;
    expect(a).toMatchObject({
      base_model: "Qwen/Qwen2.5-Coder-32B-Instruct",
      adapter: "qlora",
      load_in_4bit: true,
      chat_template: "qwen_25",
      lora_r: 16,
      lora_alpha: 32,
      lora_dropout: 0.05,
      lora_target_linear: true,
      num_epochs: 10,
      micro_batch_size: 2,
      gradient_accumulation_steps: 1,
      learning_rate: 5e-6,
      lr_scheduler: "cosine",
      bf16: true,
      gradient_checkpointing: true,
      saves_per_epoch: 1,
      sequence_len: 4096,
      train_on_inputs: false,
    });
    expect(a.datasets[0]).toEqual({
      path: "/runs/r1/emit-sft/sft/train.messages.jsonl",
      ds_type: "json",
      type: "chat_template",
      field_messages: "messages",
      roles_to_train: ["assistant"],
      train_on_eos: "turn",
    });
  });

  it("LLaMA-Factory: sharegpt dataset_info with OpenAI role tags, lora_target all, 4-bit, its own template name", () => {
    const p = plan({ base_model: "llama-3.1-8b-instruct", method: "qlora" });
    const { yaml, datasetInfo } = renderLlamaFactory(p, { datasetDir: "/d" });
    expect(yaml).toMatchObject({
      model_name_or_path: "meta-llama/Llama-3.1-8B-Instruct",
      stage: "sft",
      finetuning_type: "lora",
      lora_rank: 16,
      lora_alpha: 32,
      lora_dropout: 0.05,
      lora_target: "all",
      quantization_bit: 4,
      template: "llama3",
      cutoff_len: 4096,
      num_train_epochs: 10,
      per_device_train_batch_size: 2,
      gradient_accumulation_steps: 8,
      learning_rate: 5e-6,
      lr_scheduler_type: "cosine",
      save_strategy: "epoch",
      dataset: "utgen_sft",
      dataset_dir: "/d",
    });
    expect(datasetInfo.utgen_sft).toMatchObject({
      file_name: "/runs/r1/emit-sft/sft/train.messages.jsonl",
      formatting: "sharegpt",
      columns: { messages: "messages" },
      tags: { role_tag: "role", content_tag: "content", user_tag: "user", assistant_tag: "assistant", system_tag: "system" },
    });
  });

  it("writeRenders writes files that parse back to the rendered values", async () => {
    const p = resolvePlan({ profile: "qlora-32b-8gpu", distributed: "zero2", name: "w" }, tmp);
    const r = await writeRenders(p);
    expect(JSON.parse(await fsp.readFile(r.sftConfig, "utf8"))).toEqual(renderSftConfig(p));
    expect(yamlParse(await fsp.readFile(r.accelerate!, "utf8"))).toEqual(renderAccelerateConfig(p));
    expect(yamlParse(await fsp.readFile(r.axolotl, "utf8"))).toEqual(renderAxolotl(p, { deepspeed: r.deepspeed }));
    expect((yamlParse(await fsp.readFile(r.axolotl, "utf8")) as any).deepspeed).toBe(path.join(p.configDir, "deepspeed.json"));
    expect(JSON.parse(await fsp.readFile(r.deepspeed!, "utf8"))).toEqual(renderDeepspeedJson(p));
    const lf = renderLlamaFactory(p, { deepspeed: r.deepspeed, datasetDir: path.dirname(r.llamafactoryDatasetInfo) });
    expect(yamlParse(await fsp.readFile(r.llamafactory, "utf8"))).toEqual(lf.yaml);
    expect(JSON.parse(await fsp.readFile(r.llamafactoryDatasetInfo, "utf8"))).toEqual(lf.datasetInfo);
  });
});

/** A stand-in interpreter that appends its argv and a few env values to $REC_FILE (one JSON line per call). */
async function recorder(dir: string): Promise<string> {
  const f = path.join(dir, "rec-python");
  await fsp.writeFile(
    f,
    `#!/usr/bin/env python3\nimport json, os, sys\nwith open(os.environ["REC_FILE"], "a") as f:\n    f.write(json.dumps({"argv": sys.argv[1:], "procid": os.environ.get("SLURM_PROCID"), "extra": os.environ.get("EXTRA")}) + "\\n")\n`,
  );
  await fsp.chmod(f, 0o755);
  return f;
}

describe("launch scripts run as written", () => {
  it("launch.sh re-runs the exact argv and environment (quoting of spaces and quotes)", async () => {
    const dir = await fsp.mkdtemp(path.join(tmp, "sh-"));
    const py = await recorder(dir);
    const argv = [py, "a b", "it's", "$HOME", "--x=1"];
    const script = path.join(dir, "launch.sh");
    await fsp.writeFile(script, renderLaunchScript(argv, { EXTRA: "v w 'q'" }, dir));
    const rec = path.join(dir, "rec.jsonl");
    await execFileP("bash", [script], { env: { ...process.env, REC_FILE: rec } });
    const got = JSON.parse((await fsp.readFile(rec, "utf8")).trim());
    expect(got.argv).toEqual(argv.slice(1));
    expect(got.extra).toBe("v w 'q'");
  });

  it.each(["accelerate", "torchrun"] as const)("sbatch (%s): every node's task expands its own rank variables and the head node", async (launcher) => {
    const dir = await fsp.mkdtemp(path.join(tmp, "slurm-"));
    const bin = path.join(dir, "bin");
    await fsp.mkdir(bin);
    await fsp.writeFile(path.join(bin, "scontrol"), `#!/bin/bash\n[ "$1 $2" = "show hostnames" ] && printf 'gpu-node-a\\ngpu-node-b\\n'\n`);
    // srun: one task per node, each with its own SLURM_PROCID, like `--ntasks-per-node=1`.
    await fsp.writeFile(path.join(bin, "srun"), `#!/bin/bash\nwhile [[ "$1" == --* ]]; do shift; done\nfor i in 0 1; do SLURM_PROCID=$i "$@"; done\n`);
    await fsp.chmod(path.join(bin, "scontrol"), 0o755);
    await fsp.chmod(path.join(bin, "srun"), 0o755);
    const py = await recorder(dir);
    const p = resolvePlan(
      { profile: "qlora-32b-8gpu", nodes: 2, micro_batch_size: 1, launcher, python: { trl: py }, name: "mn", slurm: { partition: "gpu", time: "48:00:00", setup: ["export EXTRA=from-setup"] } },
      dir,
    );
    const r = await writeRenders(p);
    const text = await fsp.readFile(r.slurm, "utf8");
    expect(text).toContain("#SBATCH --nodes=2");
    expect(text).toContain("#SBATCH --ntasks-per-node=1");
    expect(text).toContain("#SBATCH --gres=gpu:8");
    expect(text).toContain("#SBATCH --partition=gpu");
    // The per-task variables stay inside the single-quoted script (torchrun's c10d rendezvous assigns node ranks).
    const perTask = launcher === "accelerate" ? "\\$SLURM_PROCID" : "\\$HEAD_NODE:29500";
    expect(text).toMatch(new RegExp(`srun --kill-on-bad-exit=1 bash -c '[^\\n]*${perTask}[^\\n]*'\\n$`));
    const rec = path.join(dir, "rec.jsonl");
    await execFileP("bash", [r.slurm], {
      env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, REC_FILE: rec, SLURM_JOB_NODELIST: "gpu-node-[a-b]", SLURM_JOB_ID: "4242", SLURM_NNODES: "2" },
    });
    const calls = (await fsp.readFile(rec, "utf8")).trim().split("\n").map((l) => JSON.parse(l));
    expect(calls).toHaveLength(2);
    for (const [i, c] of calls.entries()) {
      expect(c.procid).toBe(String(i));
      expect(c.extra).toBe("from-setup");
      const a: string[] = c.argv;
      if (launcher === "accelerate") {
        expect(a.slice(0, 4)).toEqual(["-m", "accelerate.commands.launch", "--config_file", r.accelerate]);
        const opt = (k: string) => a[a.indexOf(k) + 1];
        expect([opt("--num_machines"), opt("--num_processes"), opt("--machine_rank"), opt("--main_process_ip"), opt("--main_process_port")]).toEqual([
          "2", "16", String(i), "gpu-node-a", "29500",
        ]);
      } else {
        expect(a.slice(0, 2)).toEqual(["-m", "torch.distributed.run"]);
        const opt = (k: string) => a[a.indexOf(k) + 1];
        expect([opt("--nnodes"), opt("--nproc_per_node"), opt("--rdzv_id"), opt("--rdzv_endpoint")]).toEqual(["2", "8", "4242", "gpu-node-a:29500"]);
      }
      expect(a.slice(-3)).toEqual([SFT_SCRIPT, "--config", r.sftConfig]);
    }
  });
});
