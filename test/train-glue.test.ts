/**
 * The training function of trainers/sft_train.py, run for real through the train stage (python launcher,
 * python3) with stand-ins for torch / transformers / trl / peft / datasets / accelerate on PYTHONPATH
 * (test/fixtures/train/stubs): how the model, quantization, LoRA, SFTConfig and trainer are built, and our
 * progress callback driving metrics and checkpoint registration. The libraries themselves are not tested.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { promises as fsp } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { trainStage } from "../stages/train.ts";
import type { CommandContext } from "../pipeline/stage.ts";
import { readJson, readJsonlAll } from "../pipeline/util.ts";
import type { CheckpointRegistryFile } from "../trainers/registry.ts";

const FIX = path.resolve(__dirname, "fixtures/train");
let tmp: string;
beforeEach(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), "train-glue-"));
});
afterEach(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

async function launch(cfg: Record<string, unknown>, flags: Record<string, boolean> = {}, extraEnv: Record<string, string> = {}) {
  const record = path.join(tmp, "calls.jsonl");
  await fsp.rm(record, { force: true });
  const lines: string[] = [];
  const runDir = path.join(tmp, "run");
  const ctx: CommandContext = {
    name: "train",
    config: trainStage.configSchema.parse({
      name: "g",
      data_dir: path.join(FIX, "sft"),
      epochs: 2,
      launcher: "python",
      preflight: false,
      python: { trl: "python3" },
      env: { PYTHONPATH: path.join(FIX, "stubs"), STUB_RECORD: record, ...extraEnv },
      ...cfg,
    }),
    root: {},
    runDir,
    stageDir: path.join(runDir, "train"),
    cacheDir: path.join(tmp, "cache"),
    log: { info: () => {}, warn: () => {} },
    counters: { add: () => {} },
    getExecutor: () => Promise.reject(new Error("not used")),
    getLlm: () => Promise.reject(new Error("not used")),
    signal: new AbortController().signal,
    flags,
    stdout: (l) => lines.push(l),
  };
  const code = await trainStage.run(ctx);
  const calls = await readJsonlAll<{ call: string; [k: string]: any }>(record);
  return { code, lines, calls, dir: path.join(runDir, "train", "g") };
}

const find = (calls: { call: string }[], name: string) => calls.filter((c) => c.call === name) as any[];

describe("sft_train.py train() with stand-in libraries", () => {
  it("LoRA: data columns, SFTConfig before the model, bf16 model, LoRA config, trainer wiring, callback-driven registry", async () => {
    const { code, lines, calls, dir } = await launch({ eval: true });
    expect(code, lines.join("\n")).toBe(0);
    expect(calls.map((c) => c.call)).toEqual([
      "Dataset.from_list",
      "Dataset.from_list",
      "SFTConfig",
      "AutoModelForCausalLM.from_pretrained",
      "AutoTokenizer.from_pretrained",
      "LoraConfig",
      "SFTTrainer",
      "SFTTrainer.train",
      "SFTTrainer.save_model",
    ]);
    expect(find(calls, "Dataset.from_list").map((c) => [c.rows, c.columns])).toEqual([
      [4, ["completion", "prompt"]], // metadata dropped
      [2, ["completion", "prompt"]],
    ]);
    expect(find(calls, "SFTConfig")[0].kwargs).toMatchObject({
      output_dir: path.join(dir, "output"),
      num_train_epochs: 2,
      per_device_train_batch_size: 2,
      gradient_accumulation_steps: 8,
      learning_rate: 5e-6,
      lr_scheduler_type: "cosine",
      bf16: true,
      completion_only_loss: true,
      eval_strategy: "epoch",
      warmup_steps: 0,
    });
    const load = find(calls, "AutoModelForCausalLM.from_pretrained")[0];
    expect(load.name).toBe("Qwen/Qwen2.5-Coder-7B-Instruct");
    expect(load.kwargs).toEqual({ dtype: "torch.bfloat16", attn_implementation: "'sdpa'" });
    expect(find(calls, "LoraConfig")[0].kwargs).toEqual({ r: 16, lora_alpha: 32, lora_dropout: 0.05, target_modules: "all-linear", bias: "none", task_type: "CAUSAL_LM" });
    expect(find(calls, "SFTTrainer")[0]).toMatchObject({ args_is_config: true, train_rows: 4, eval_rows: 2, tokenizer_pad: "<|endoftext|>", callbacks: ["UtgenProgress"] });
    expect(find(calls, "SFTTrainer.train")[0].resume_from_checkpoint).toBeNull();
    expect(find(calls, "SFTTrainer.save_model")[0].output_dir).toBe(path.join(dir, "output"));

    // The callback's lines drove metrics (NaN grad_norm → null) and the registry.
    const metrics = await readJsonlAll(path.join(dir, "metrics.jsonl"));
    expect(metrics.map((m) => [m.step, m.epoch, m.source, m.grad_norm])).toEqual([
      [1, 1, "callback", null],
      [2, 2, "callback", null],
    ]);
    const reg = (await readJson<CheckpointRegistryFile>(path.join(dir, "checkpoints.json")))!;
    expect(reg.checkpoints.map((c) => c.name)).toEqual(["g-step1", "g-step2"]);

    // --resume hands the last checkpoint to trainer.train().
    const again = await launch({ eval: true }, { resume: true });
    expect(again.code).toBe(0);
    expect(find(again.calls, "SFTTrainer.train")[0].resume_from_checkpoint).toBe(path.join(dir, "output", "checkpoint-2"));
  });

  it("QLoRA: 4-bit NF4 with double quantisation and bf16 compute, one full copy on this rank's GPU", async () => {
    const { code, calls } = await launch({ method: "qlora" });
    expect(code).toBe(0);
    const load = find(calls, "AutoModelForCausalLM.from_pretrained")[0];
    expect(load.kwargs.quantization_config).toBe(
      "BitsAndBytesConfig(bnb_4bit_compute_dtype=torch.bfloat16, bnb_4bit_quant_type='nf4', bnb_4bit_use_double_quant=True, load_in_4bit=True)",
    );
    expect(load.kwargs.device_map).toBe("{'': 0}");
    expect(load.kwargs.dtype).toBe("torch.bfloat16");
  });

  it("fp16 precision and transformers 4.x: float16 everywhere, warmup as warmup_ratio", async () => {
    const { code, calls } = await launch({ method: "qlora", bf16: false, warmup_ratio: 0.1 }, {}, { STUB_TRANSFORMERS_VERSION: "4.57.1" });
    expect(code).toBe(0);
    const kw = find(calls, "SFTConfig")[0].kwargs;
    expect(kw).toMatchObject({ warmup_ratio: 0.1, bf16: false, fp16: true });
    expect(kw).not.toHaveProperty("warmup_steps");
    const load = find(calls, "AutoModelForCausalLM.from_pretrained")[0];
    expect(load.kwargs.dtype).toBe("torch.float16");
    expect(load.kwargs.quantization_config).toContain("bnb_4bit_compute_dtype=torch.float16");
  });
});
