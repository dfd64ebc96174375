/**
 * Preflight, before any GPU time is spent:
 *  - the data: format validated by the training script itself (`--check-data`, stdlib only) and token
 *    lengths against max_length, counted here with the model family's tokenizer over our rendering of
 *    its chat template (rows whose UTF-8 size is already ≤ max_length cannot exceed it — byte-level BPE
 *    never yields more tokens than bytes — and are not tokenized; the others are counted line by line
 *    with a cache, exactly, see LineTokenCounter);
 *  - the environment: Python and package versions (`--env-report`), CUDA devices, bf16;
 *  - memory: an estimate of what one GPU needs at the chosen precision, refused when it cannot fit.
 * Every failure is one line naming what is wrong and how to fix it.
 */
import { execFile } from "node:child_process";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { promisify } from "node:util";
import { UserError } from "../pipeline/errors.ts";
import { getTokenCounter } from "../pipeline/tokenize.ts";
import { readJsonl } from "../pipeline/util.ts";
import { REPO_ROOT, type TrainPlan } from "./config.ts";
import type { ChatTemplateKind } from "./presets.ts";
import { SFT_SCRIPT } from "./render.ts";

const execFileP = promisify(execFile);
const GiB = 1024 ** 3;

// ---------------------------------------------------------------- data

type Msg = { role: string; content: string };

const QWEN_DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

/** Our rendering of each preset's chat template (the whole conversation, as trained). */
export function renderChat(kind: ChatTemplateKind, messages: Msg[]): string {
  if (kind === "qwen2.5") {
    const msgs = messages[0]?.role === "system" ? messages : [{ role: "system", content: QWEN_DEFAULT_SYSTEM }, ...messages];
    return msgs.map((m) => `<|im_start|>${m.role}\n${m.content}<|im_end|>\n`).join("");
  }
  const turn = (m: Msg) => `<|start_header_id|>${m.role}<|end_header_id|>\n\n${m.content.trim()}<|eot_id|>`;
  if (kind === "llama3") return "<|begin_of_text|>" + messages.map(turn).join("");
  // llama3.1: the system turn always carries the knowledge-date header.
  const [first, ...rest] = messages;
  const system = first?.role === "system" ? first.content.trim() : "";
  const others = first?.role === "system" ? rest : messages;
  const header = `Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n${system}`;
  return "<|begin_of_text|>" + turn({ role: "system", content: header }) + others.map(turn).join("");
}

export interface LengthReport {
  file: string;
  rows: number;
  /** Rows that had to be tokenized (UTF-8 size above max_length). */
  tokenized: number;
  /** Longest exact token count among tokenized rows; null when none needed tokenizing. */
  longestTokens: number | null;
  longestRow: number | null;
  /** Largest UTF-8 size (an upper bound on tokens for rows not tokenized). */
  maxBytes: number;
  over: number;
}

function conversation(row: any, file: string, line: number): Msg[] {
  const turns = Array.isArray(row?.messages) ? row.messages : Array.isArray(row?.prompt) && Array.isArray(row?.completion) ? [...row.prompt, ...row.completion] : null;
  if (!turns || !turns.every((m: any) => m && typeof m.role === "string" && typeof m.content === "string")) {
    throw new UserError(`${file}:${line}: expected "messages" or "prompt"/"completion" lists of {role, content}; re-run the emit-sft stage`);
  }
  return turns;
}

/**
 * Exact token counts with a per-line cache. A split right after a "\n" whose next line has a
 * non-whitespace character before any \r or \n lands on a boundary of the Qwen2 / Llama-3 pre-tokenizer
 * regex: the match holding that newline (`\s*[\r\n]+` or `…[\r\n]*`) cannot reach past it, and no
 * alternative looks behind. (A whitespace-only next line is different: `\s*[\r\n]+` spans it.) BPE never
 * merges across pre-tokens, special tokens hold no newline, and NFC is local, so the count of a text is
 * the sum of its pieces' counts.
 * SFT rows share many lines (system prompt, instructions, the same problem and code across its buggy
 * versions and tests), which are then tokenized once.
 */
export class LineTokenCounter {
  private readonly cache = new Map<string, number>();
  constructor(private readonly count: (text: string) => number, private readonly maxEntries = 500_000) {}
  tokens(text: string): number {
    let n = 0;
    for (const line of text.split(LINE_BOUNDARY)) {
      let c = this.cache.get(line);
      if (c === undefined) {
        c = this.count(line);
        if (this.cache.size >= this.maxEntries) this.cache.clear();
        this.cache.set(line, c);
      }
      n += c;
    }
    return n;
  }
}
const LINE_BOUNDARY = /(?<=\n)(?=[^\S\r\n]*\S)/;

/**
 * Token lengths of one SFT file against max_length. `prune: false` tokenizes every row, `cache: false`
 * tokenizes each row whole (together: the baseline the bench compares against).
 */
export async function measureLengths(
  file: string,
  template: ChatTemplateKind,
  family: "qwen" | "llama3",
  maxLength: number,
  opts: { prune?: boolean; cache?: boolean } = {},
): Promise<LengthReport> {
  const prune = opts.prune ?? true;
  const raw = await getTokenCounter(family);
  const lines = new LineTokenCounter(raw);
  const count = opts.cache === false ? raw : (t: string) => lines.tokens(t);
  const r: LengthReport = { file, rows: 0, tokenized: 0, longestTokens: null, longestRow: null, maxBytes: 0, over: 0 };
  let line = 0;
  for await (const row of readJsonl(file)) {
    line++;
    r.rows++;
    const text = renderChat(template, conversation(row, file, line));
    const bytes = Buffer.byteLength(text, "utf8");
    r.maxBytes = Math.max(r.maxBytes, bytes);
    if (prune && bytes <= maxLength) continue;
    r.tokenized++;
    const n = count(text);
    if (r.longestTokens === null || n > r.longestTokens) {
      r.longestTokens = n;
      r.longestRow = line;
    }
    if (n > maxLength) r.over++;
  }
  return r;
}

export interface DataReport {
  format: string;
  train: { rows: number; file: string };
  eval?: { rows: number; file: string };
  lengths: LengthReport;
}

/** Run the training script's own data check (stdlib json only) with `python`. */
export async function scriptCheckData(python: string, sftConfigFile: string): Promise<{ format: string; train: { rows: number; file: string }; eval?: { rows: number; file: string } }> {
  try {
    const { stdout } = await execFileP(python, [SFT_SCRIPT, "--config", sftConfigFile, "--check-data"], { cwd: REPO_ROOT, maxBuffer: 16 << 20 });
    return JSON.parse(stdout.trim().split("\n").pop()!);
  } catch (e) {
    const err = e as { code?: unknown; stderr?: string };
    const line = (err.stderr ?? "").trim().split("\n").filter(Boolean).pop();
    if (err.code === "ENOENT") throw new UserError(`python interpreter ${python} not found; install Python 3.10+ or set train.python.trl`);
    throw new UserError(line?.replace(/^error: /, "") ?? `the data check failed (${python} ${SFT_SCRIPT} --check-data)`);
  }
}

export function lengthProblem(p: TrainPlan, l: LengthReport): string | null {
  if (!l.over) return null;
  const pct = ((100 * l.over) / l.rows).toFixed(2);
  const suggest = Math.ceil(((l.longestTokens ?? p.maxLength) + 1) / 256) * 256;
  return `${l.over} of ${l.rows} rows (${pct}%) of ${path.basename(l.file)} exceed max_length ${p.maxLength} tokens (longest ${l.longestTokens}, line ${l.longestRow}) and would be truncated; raise train.max_length to ${suggest} or set train.allow_truncation: true`;
}

// ---------------------------------------------------------------- memory

export interface MemoryEstimate {
  perGpuGiB: number;
  parts: Record<"weights" | "lora" | "activations" | "logits" | "overhead", number>;
}

/**
 * Rough per-GPU memory (GiB) for LoRA/QLoRA SFT with gradient checkpointing. Weights: bf16 = 2 bytes
 * per parameter; 4-bit NF4 with double quantisation ≈ 0.53 bytes for the quantized linears, embeddings
 * and head stay bf16. ZeRO-3/FSDP divide the weights over all GPUs. LoRA: fp32 weights + grads + Adam
 * (16 bytes per adapter parameter). Activations: the layer inputs kept by checkpointing plus one layer
 * being recomputed; logits: one fp32 copy over the vocabulary. Overhead: CUDA context and
 * fragmentation. An estimate for refusing hopeless launches, not a measurement.
 */
export function estimateMemory(p: TrainPlan): MemoryEstimate {
  const m = p.preset;
  const embed = m.vocab * m.hidden * (m.tiedEmbeddings ? 1 : 2);
  const body = m.params - embed;
  let weights = p.method === "qlora" ? body * 0.53 + embed * 2 : m.params * 2;
  if (p.distributed === "zero3" || p.distributed === "fsdp") weights /= p.worldSize;
  const kv = (m.hidden / m.heads) * m.kvHeads;
  const perLayerLora = p.lora.r * (2 * (m.hidden + m.hidden) + 2 * (m.hidden + kv) + 3 * (m.hidden + m.intermediate));
  let lora = perLayerLora * m.layers * 16;
  if (p.distributed === "zero2" || p.distributed === "zero3" || p.distributed === "fsdp") lora /= p.worldSize;
  const tokens = p.microBatch * p.maxLength;
  const ckpt = p.gradientCheckpointing ? tokens * m.hidden * 2 * m.layers : tokens * (16 * m.hidden + 6 * m.intermediate) * 2 * m.layers;
  const working = tokens * (16 * m.hidden + 6 * m.intermediate) * 2;
  const activations = ckpt + (p.gradientCheckpointing ? working : 0);
  const logits = tokens * m.vocab * 4;
  const overhead = 1.5 * GiB;
  const parts = {
    weights: weights / GiB,
    lora: lora / GiB,
    activations: activations / GiB,
    logits: logits / GiB,
    overhead: overhead / GiB,
  };
  const perGpuGiB = Object.values(parts).reduce((a, b) => a + b, 0);
  return { perGpuGiB, parts };
}

export function describeMemory(e: MemoryEstimate): string {
  const f = (x: number) => x.toFixed(1);
  return `${f(e.perGpuGiB)} GiB per GPU (weights ${f(e.parts.weights)}, LoRA+optimizer ${f(e.parts.lora)}, activations ${f(e.parts.activations)}, logits ${f(e.parts.logits)}, overhead ${f(e.parts.overhead)})`;
}

/** Refusal line when the estimate does not fit in `availableGiB` (95% usable). */
export function memoryProblem(p: TrainPlan, e: MemoryEstimate, availableGiB: number, where: string): string | null {
  if (e.perGpuGiB <= availableGiB * 0.95) return null;
  const fixes = [
    p.microBatch > 1 ? "a smaller train.micro_batch_size" : null,
    "a smaller train.max_length",
    p.method === "lora" ? "method: qlora" : null,
    p.distributed !== "zero3" && p.distributed !== "fsdp" && p.worldSize > 1 ? "distributed: zero3 or fsdp" : null,
    p.worldSize === 1 ? "more GPUs with distributed: zero3" : null,
  ].filter(Boolean);
  return `estimated ${e.perGpuGiB.toFixed(1)} GiB per GPU for ${p.preset.hfId} (${p.method}, ${p.bf16 ? "bf16" : "fp16"}, micro-batch ${p.microBatch} × ${p.maxLength} tokens) exceeds the ${availableGiB.toFixed(1)} GiB of ${where}; use ${fixes.join(", or ")}`;
}

// ---------------------------------------------------------------- environment

export interface EnvReport {
  python: string;
  executable: string;
  packages: Record<string, string | null>;
  cuda: { available: boolean; version: string | null; device_count: number; bf16: boolean } | null;
  gpus: { index: number; name: string; total_bytes: number; capability: string }[];
  torch_error: string | null;
}

const venvHint = "python3 -m venv .venv-trl && .venv-trl/bin/pip install -r trainers/requirements.txt (or point train.python.trl at such an env)";

export async function probeEnvironment(python: string): Promise<EnvReport> {
  try {
    const { stdout } = await execFileP(python, [SFT_SCRIPT, "--env-report"], { cwd: REPO_ROOT, timeout: 120_000, maxBuffer: 4 << 20 });
    return JSON.parse(stdout.trim().split("\n").pop()!);
  } catch (e) {
    const err = e as { code?: unknown; stderr?: string; message: string };
    if (err.code === "ENOENT") throw new UserError(`the trainer's python ${python} does not exist; create it: ${venvHint}`);
    const last = (err.stderr ?? err.message).trim().split("\n").pop();
    throw new UserError(`${python} ${path.basename(SFT_SCRIPT)} --env-report failed (${last}); check the trainer env`);
  }
}

/** Minimal versions the script's API use needs (SFTConfig max_length/completion_only_loss, dtype=…). */
const MIN_VERSIONS: Record<string, string> = {
  torch: "2.2.0",
  transformers: "4.56.0",
  trl: "0.20.0",
  peft: "0.13.0",
  accelerate: "1.0.1",
  datasets: "2.20.0",
  bitsandbytes: "0.43.3",
  deepspeed: "0.14.0",
};

function versionTuple(v: string): number[] {
  return v.split(/[.+-]/).slice(0, 3).map((x) => parseInt(x, 10) || 0);
}

export function versionAtLeast(v: string, min: string): boolean {
  const a = versionTuple(v);
  const b = versionTuple(min);
  for (let i = 0; i < 3; i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
  return true;
}

/** `name==version` pins of trainers/requirements.txt. */
export async function readPins(file = path.join(REPO_ROOT, "trainers", "requirements.txt")): Promise<Record<string, string>> {
  const pins: Record<string, string> = {};
  for (const line of (await fsp.readFile(file, "utf8")).split("\n")) {
    const m = /^\s*([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^\s#;]+)/.exec(line);
    if (m) pins[m[1].toLowerCase()] = m[2];
  }
  return pins;
}

export function requiredPackages(p: TrainPlan): string[] {
  return [
    "torch",
    "transformers",
    "trl",
    "peft",
    "datasets",
    ...(p.launcher === "accelerate" || p.distributed !== "none" || p.method === "qlora" ? ["accelerate"] : []),
    ...(p.method === "qlora" ? ["bitsandbytes"] : []),
    ...(p.distributed === "zero2" || p.distributed === "zero3" ? ["deepspeed"] : []),
  ];
}

export function checkEnvironment(
  p: TrainPlan,
  r: EnvReport,
  pins: Record<string, string> = {},
): { errors: string[]; warnings: string[] } {
  const errors: string[] = [];
  const warnings: string[] = [];
  if (!versionAtLeast(r.python, "3.10.0")) errors.push(`Python ${r.python} at ${r.executable} is too old (3.10+ needed); ${venvHint}`);
  for (const pkg of requiredPackages(p)) {
    const v = r.packages[pkg];
    if (!v) errors.push(`${pkg} is not installed in ${r.executable}; ${venvHint}`);
    else if (MIN_VERSIONS[pkg] && !versionAtLeast(v, MIN_VERSIONS[pkg]))
      errors.push(`${pkg} ${v} is older than the ${MIN_VERSIONS[pkg]} this trainer needs; install trainers/requirements.txt (${pkg}==${pins[pkg] ?? MIN_VERSIONS[pkg]})`);
    else if (pins[pkg] && pins[pkg] !== v.split("+")[0]) warnings.push(`${pkg} ${v} differs from the pinned ${pins[pkg]} (trainers/requirements.txt)`);
  }
  if (errors.length) return { errors, warnings };
  if (r.torch_error) errors.push(`torch cannot initialise CUDA (${r.torch_error}); check the NVIDIA driver and the torch build`);
  else if (!r.cuda?.available || r.gpus.length === 0)
    errors.push(`no CUDA GPU is visible to ${r.executable}; run on a GPU machine (check nvidia-smi and CUDA_VISIBLE_DEVICES)`);
  else {
    if (r.gpus.length < p.gpusPerNode)
      errors.push(`train.gpus_per_node is ${p.gpusPerNode} but only ${r.gpus.length} GPU(s) are visible; lower gpus_per_node (the accumulation grows to keep batch ${p.effectiveBatch}) or free GPUs`);
    if (p.bf16 && !r.cuda.bf16) errors.push(`GPU ${r.gpus[0].name} has no bf16 support; set train.bf16: false (fp16) or use an Ampere-or-newer GPU`);
    const used = r.gpus.slice(0, p.gpusPerNode);
    const smallest = used.reduce((a, b) => (b.total_bytes < a.total_bytes ? b : a));
    const mem = memoryProblem(p, estimateMemory(p), smallest.total_bytes / GiB, `GPU ${smallest.index} (${smallest.name})`);
    if (mem) errors.push(mem);
  }
  return { errors, warnings };
}

/** `pip freeze` of the trainer env, recorded with the launch (null when pip is unavailable). */
export async function pipFreeze(python: string): Promise<string | null> {
  try {
    const { stdout } = await execFileP(python, ["-m", "pip", "freeze"], { timeout: 120_000, maxBuffer: 16 << 20 });
    return stdout;
  } catch {
    return null;
  }
}
