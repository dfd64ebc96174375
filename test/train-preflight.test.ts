/**
 * Preflight failure paths: environment reports (packages, versions, CUDA, GPU count, bf16, memory), the
 * memory estimate's verdicts for the paper's set-ups, token lengths against max_length (pruned and full
 * counting agree), and the probe of a real interpreter.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { promises as fsp } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { getTokenCounter } from "../pipeline/tokenize.ts";
import { UserError } from "../pipeline/errors.ts";
import { resolvePlan } from "../trainers/config.ts";
import {
  checkEnvironment,
  estimateMemory,
  lengthProblem,
  LineTokenCounter,
  measureLengths,
  memoryProblem,
  probeEnvironment,
  readPins,
  renderChat,
  requiredPackages,
  versionAtLeast,
  type EnvReport,
} from "../trainers/preflight.ts";

let tmp: string;
beforeAll(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), "train-preflight-"));
});
afterAll(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

const plan = (cfg: Record<string, unknown> = {}) => resolvePlan(cfg, "/runs/r");
const GB = (n: number) => Math.round(n * 1024 ** 3);

function report(over: Partial<EnvReport> = {}, gpus = 1, gib = 48): EnvReport {
  return {
    python: "3.11.9",
    executable: "/venv/bin/python",
    packages: { torch: "2.15.0+cu128", transformers: "5.23.0", trl: "1.16.0", peft: "0.21.2", accelerate: "1.15.0", datasets: "5.2.0", bitsandbytes: "0.50.2", deepspeed: "0.19.8" },
    cuda: { available: true, version: "12.8", device_count: gpus, bf16: true },
    gpus: Array.from({ length: gpus }, (_, i) => ({ index: i, name: "NVIDIA A100-SXM4-80GB", total_bytes: GB(gib), capability: "8.0" })),
    torch_error: null,
    ...over,
  };
}

describe("environment checks", () => {
  it("a complete environment passes; drift from the pins is only a warning", async () => {
    const pins = await readPins();
    expect(pins).toMatchObject({ trl: expect.any(String), transformers: expect.any(String), peft: expect.any(String), bitsandbytes: expect.any(String), accelerate: expect.any(String), torch: expect.any(String) });
    const ok = checkEnvironment(plan(), report(), pins);
    expect(ok.errors).toEqual([]);
    expect(ok.warnings).toEqual([]);
    const drift = checkEnvironment(plan(), report({ packages: { ...report().packages, trl: "1.12.0" } }), pins);
    expect(drift.errors).toEqual([]);
    expect(drift.warnings).toEqual([`trl 1.12.0 differs from the pinned ${pins.trl} (trainers/requirements.txt)`]);
  });

  it("which packages a launch needs depends on method and distribution", () => {
    expect(requiredPackages(plan({ launcher: "python" }))).toEqual(["torch", "transformers", "trl", "peft", "datasets"]);
    expect(requiredPackages(plan({ profile: "qlora-32b-8gpu" }))).toEqual(["torch", "transformers", "trl", "peft", "datasets", "accelerate", "bitsandbytes"]);
    expect(requiredPackages(plan({ profile: "qlora-32b-8gpu", distributed: "zero3" }))).toContain("deepspeed");
  });

  it.each([
    ["missing trl", { packages: { ...report().packages, trl: null } }, /^trl is not installed in \/venv\/bin\/python; python3 -m venv \.venv-trl && \.venv-trl\/bin\/pip install -r trainers\/requirements\.txt/],
    ["old transformers", { packages: { ...report().packages, transformers: "4.46.3" } }, /^transformers 4\.46\.3 is older than the 4\.56\.0 this trainer needs; install trainers\/requirements\.txt \(transformers==/],
    ["old python", { python: "3.9.18" }, /^Python 3\.9\.18 at \/venv\/bin\/python is too old \(3\.10\+ needed\)/],
    ["no CUDA", { cuda: { available: false, version: null, device_count: 0, bf16: false }, gpus: [] }, /^no CUDA GPU is visible to \/venv\/bin\/python; run on a GPU machine/],
    ["broken torch", { torch_error: "RuntimeError: CUDA driver version is insufficient" }, /^torch cannot initialise CUDA \(RuntimeError: CUDA driver version is insufficient\)/],
    ["no bf16", { cuda: { available: true, version: "12.8", device_count: 1, bf16: false } }, /has no bf16 support; set train\.bf16: false/],
  ])("%s → one line with the fix", (_name, over, want) => {
    const { errors } = checkEnvironment(plan(), report(over as Partial<EnvReport>));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(want);
    expect(errors[0]).not.toContain("\n");
  });

  it("too few GPUs for the profile", () => {
    const { errors } = checkEnvironment(plan({ profile: "qlora-32b-8gpu" }), report({}, 4, 80));
    expect(errors).toEqual(["train.gpus_per_node is 8 but only 4 GPU(s) are visible; lower gpus_per_node (the accumulation grows to keep batch 16) or free GPUs"]);
  });

  it("memory: the smallest of the used GPUs decides", () => {
    const r = report({}, 2, 80);
    r.gpus[1] = { ...r.gpus[1], name: "NVIDIA RTX 4090", total_bytes: GB(24) };
    const { errors } = checkEnvironment(plan({ gpus_per_node: 2, micro_batch_size: 2, batch_size: 16 }), r);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/exceeds the 24\.0 GiB of GPU 1 \(NVIDIA RTX 4090\)/);
  });
});

describe("memory estimate", () => {
  it("gives the expected verdicts for the paper's set-ups", () => {
    const seven = estimateMemory(plan());
    expect(memoryProblem(plan(), seven, 48, "A6000")).toBeNull(); // the paper's 7B LoRA on one A6000
    expect(memoryProblem(plan(), seven, 16, "a 16 GB card")).toMatch(/^estimated .* exceeds the 16\.0 GiB of a 16 GB card; use a smaller train\.micro_batch_size, or a smaller train\.max_length, or method: qlora, or more GPUs with distributed: zero3$/);
    const q32 = plan({ profile: "qlora-32b-8gpu" });
    expect(memoryProblem(q32, estimateMemory(q32), 80, "A100")).toBeNull(); // the paper's 32B QLoRA on A100s
    const l32 = plan({ profile: "qlora-32b-8gpu", method: "lora" });
    expect(memoryProblem(l32, estimateMemory(l32), 80, "A100")).toMatch(/use .*method: qlora, or distributed: zero3 or fsdp/);
    // 4-bit weights are about a quarter of bf16; ZeRO-3 shards them over the 8 GPUs.
    expect(estimateMemory(q32).parts.weights / estimateMemory(l32).parts.weights).toBeGreaterThan(0.25);
    expect(estimateMemory(q32).parts.weights / estimateMemory(l32).parts.weights).toBeLessThan(0.35);
    const z3 = plan({ profile: "qlora-32b-8gpu", method: "lora", distributed: "zero3" });
    expect(estimateMemory(z3).parts.weights).toBeCloseTo(estimateMemory(l32).parts.weights / 8, 5);
    expect(memoryProblem(z3, estimateMemory(z3), 80, "A100")).toBeNull();
  });

  it("grows with micro-batch and max_length, not with gradient accumulation", () => {
    const a = estimateMemory(plan({ micro_batch_size: 1 }));
    const b = estimateMemory(plan({ micro_batch_size: 2 }));
    const c = estimateMemory(plan({ micro_batch_size: 2, max_length: 8192 }));
    expect(b.perGpuGiB).toBeGreaterThan(a.perGpuGiB);
    expect(c.parts.activations).toBeCloseTo(2 * b.parts.activations, 5);
    expect(estimateMemory(plan({ micro_batch_size: 1, batch_size: 32 })).perGpuGiB).toBeCloseTo(a.perGpuGiB, 5);
  });
});

describe("versions", () => {
  it.each([
    ["2.15.0+cu128", "2.2.0", true],
    ["4.56.0", "4.56.0", true],
    ["4.55.4", "4.56.0", false],
    ["0.9.5.post1", "0.9.5", true],
    ["1.0.0rc1", "1.0.0", true],
    ["0.43.2", "0.43.3", false],
  ])("%s ≥ %s is %s", (v, min, want) => {
    expect(versionAtLeast(v, min)).toBe(want);
  });
});

describe("token lengths against max_length", () => {
  it("renders each preset's chat template as the model does", () => {
    const msgs = [{ role: "user", content: "hi" }, { role: "assistant", content: "yo" }];
    expect(renderChat("qwen2.5", msgs)).toBe(
      "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nyo<|im_end|>\n",
    );
    expect(renderChat("llama3", msgs)).toBe("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nyo<|eot_id|>");
    expect(renderChat("llama3.1", [{ role: "system", content: "S" }, ...msgs])).toBe(
      "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nS<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nyo<|eot_id|>",
    );
  });

  it.each(["qwen", "llama3"] as const)("line-by-line counts with the cache equal whole-text counts (%s)", async (family) => {
    const count = await getTokenCounter(family);
    const lines = new LineTokenCounter(count);
    const fixture = (await fsp.readFile(path.resolve(__dirname, "fixtures/train/sft/train.messages.jsonl"), "utf8"))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l).messages);
    const texts = [
      ...fixture.map((m: { role: string; content: string }[]) => renderChat(family === "qwen" ? "qwen2.5" : "llama3.1", m)),
      "def f(x):\n    if x:\n\n        return 1\n\t\treturn 2  \n  \n# done\n",
      "crlf line\r\nnext line\r\n\r\nlast",
      "123456\n7890 apples\n42\n's it\n's\n",
      "e\u0301 combining\n\u0301 starts a line\nnaïve café 日本語\n😀 emoji\n",
      "  leading\n   \n\n\n  x = [1, 2]  # trailing  \n):\n\n    pass\n",
      "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
      "a\n  \rb\n\u00a0\nc\n \t\n\ty\n\u000b\nz",
    ];
    // Random texts over the characters where pre-tokenization is delicate (deterministic).
    const alphabet = [" ", "  ", "\n", "\r", "\t", "a", "Ab", "1", "123", "'s", ":", "):", "é", "\u0301", "日本", "\u00a0", "<|im_end|>", "<|eot_id|>", "#"];
    for (let i = 0; i < 300; i++) {
      const len = 1 + (Math.imul(i + 1, 2654435761) >>> 0) % 40;
      let t = "";
      for (let k = 0; k < len; k++) t += alphabet[(Math.imul(i * 97 + k + 7, 2246822519) >>> 0) % alphabet.length];
      texts.push(t);
    }
    for (const t of texts) expect(lines.tokens(t), JSON.stringify(t)).toBe(count(t));
    // Cached lines give the same answer again.
    for (const t of texts) expect(lines.tokens(t)).toBe(count(t));
  });

  it("skipping rows whose byte size already fits gives the same verdict as tokenizing every row", async () => {
    const file = path.join(tmp, "train.prompt_completion.jsonl");
    const rows = [5, 40, 300, 900, 2500].map((n, i) => ({
      prompt: [{ role: "user", content: `Row ${i}: ` + "def f(x):\n    return x + 1\n".repeat(n / 5) }],
      completion: [{ role: "assistant", content: "assert f(1) == 2" }],
    }));
    await fsp.writeFile(file, rows.map((r) => JSON.stringify(r)).join("\n") + "\n");
    const count = await getTokenCounter("qwen");
    const exact = rows.map((r) => count(renderChat("qwen2.5", [...r.prompt, ...r.completion])));
    for (const maxLength of [128, 1024, 4096]) {
      const pruned = await measureLengths(file, "qwen2.5", "qwen", maxLength);
      const full = await measureLengths(file, "qwen2.5", "qwen", maxLength, { prune: false, cache: false });
      const over = exact.filter((n) => n > maxLength).length;
      expect(pruned.over).toBe(over);
      expect(full.over).toBe(over);
      expect(full.tokenized).toBe(5);
      expect(pruned.tokenized).toBeLessThanOrEqual(5);
      expect(full.longestTokens).toBe(Math.max(...exact));
      if (over) expect(pruned.longestTokens).toBe(Math.max(...exact));
    }
    const p = plan({ max_length: 1024 });
    const r = await measureLengths(file, "qwen2.5", "qwen", 1024);
    expect(lengthProblem(p, r)).toMatch(/^2 of 5 rows \(40\.00%\) of train\.prompt_completion\.jsonl exceed max_length 1024 tokens \(longest \d+, line 5\) and would be truncated; raise train\.max_length to \d+ or set train\.allow_truncation: true$/);
    expect(lengthProblem(plan(), await measureLengths(file, "qwen2.5", "qwen", 100_000))).toBeNull();
  });

  it("a row of another shape is refused with file:line", async () => {
    const file = path.join(tmp, "bad.jsonl");
    await fsp.writeFile(file, JSON.stringify({ text: "plain" }) + "\n");
    await expect(measureLengths(file, "llama3", "llama3", 10)).rejects.toThrow(/bad\.jsonl:1: expected "messages" or "prompt"\/"completion" lists/);
  });
});

describe("probing a real interpreter", () => {
  it("a missing interpreter is one line naming how to create the env", async () => {
    const err = await probeEnvironment(path.join(tmp, "no-venv", "bin", "python")).catch((e) => e);
    expect(err).toBeInstanceOf(UserError);
    expect(err.message).toMatch(/^the trainer's python .*no-venv\/bin\/python does not exist; create it: python3 -m venv \.venv-trl/);
  });

  it("this machine's python3 reports itself; without torch the check says what to install", async () => {
    const rep = await probeEnvironment("python3");
    expect(rep.python).toMatch(/^3\./);
    if (rep.packages.torch) {
      console.warn("train-preflight: torch is installed here; skipping the missing-package verdict");
      return;
    }
    const { errors } = checkEnvironment(plan(), rep);
    expect(errors[0]).toMatch(/^torch is not installed in .*; python3 -m venv \.venv-trl/);
  });
});
