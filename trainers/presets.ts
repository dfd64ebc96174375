/**
 * Base-model presets and the paper's two training set-ups (profiles).
 *
 * A preset names the Hugging Face model, the numbers the memory estimate needs (parameter count,
 * layers, hidden/intermediate sizes, vocabulary), its chat template under each trainer's naming
 * (TRL uses the tokenizer's own template; axolotl and LLaMA-Factory name theirs), how we render that
 * template to count tokens, and which SFT data variant trains on it (see `dataFormat`).
 *
 * Profiles are partial `train:` settings layered under the user's YAML: the UTGen recipe itself
 * (10 epochs, batch 16, lr 5e-6 cosine, LoRA r16/α32/0.05 all-linear, bf16, gradient checkpointing,
 * a checkpoint per epoch) is the default for every profile (see config.ts).
 */

export type ChatTemplateKind = "qwen2.5" | "llama3" | "llama3.1";

export interface ModelPreset {
  key: string;
  hfId: string;
  /** Total parameters (for the memory estimate). */
  params: number;
  layers: number;
  hidden: number;
  intermediate: number;
  heads: number;
  kvHeads: number;
  vocab: number;
  tiedEmbeddings: boolean;
  /** Our rendering of the model's chat template (token-length check) and the tokenizer family for it. */
  template: ChatTemplateKind;
  tokenizerFamily: "qwen" | "llama3";
  /** axolotl `chat_template:` value and LLaMA-Factory `template:` value. */
  axolotlTemplate: string;
  llamafactoryTemplate: string;
  /** FSDP wrap class. */
  decoderLayer: string;
  /**
   * SFT data variant trained with TRL. We train every preset on conversational prompt/completion rows:
   * TRL then masks the loss to the completion (the paper: "loss over the completions only") without
   * needing `{% generation %}` markers in the chat template. `messages` + `assistant_only_loss` is
   * allowed where TRL ships a patched training template (Qwen2.5, Llama-3.0) and refused for
   * Llama-3.1, whose template TRL does not recognise (it raises at start-up).
   */
  messagesAllowed: boolean;
  /** A line printed with renders for trainers that bring their own templates. */
  templateNote?: string;
}

const qwenCommon = {
  template: "qwen2.5" as const,
  tokenizerFamily: "qwen" as const,
  axolotlTemplate: "qwen_25",
  llamafactoryTemplate: "qwen",
  decoderLayer: "Qwen2DecoderLayer",
  messagesAllowed: true,
  templateNote:
    "LLaMA-Factory's `qwen` template and Qwen's own template insert Qwen's default system prompt when a row has none; keep an explicit system message in every row so training matches serving.",
};

const llamaCommon = {
  tokenizerFamily: "llama3" as const,
  axolotlTemplate: "llama3",
  llamafactoryTemplate: "llama3",
  decoderLayer: "LlamaDecoderLayer",
  params: 8.03e9,
  layers: 32,
  hidden: 4096,
  intermediate: 14336,
  heads: 32,
  kvHeads: 8,
  vocab: 128256,
  tiedEmbeddings: false,
};

export const PRESETS: Record<string, ModelPreset> = {
  "qwen2.5-coder-7b-instruct": {
    key: "qwen2.5-coder-7b-instruct",
    hfId: "Qwen/Qwen2.5-Coder-7B-Instruct",
    params: 7.62e9,
    layers: 28,
    hidden: 3584,
    intermediate: 18944,
    heads: 28,
    kvHeads: 4,
    vocab: 152064,
    tiedEmbeddings: false,
    ...qwenCommon,
  },
  "qwen2.5-coder-32b-instruct": {
    key: "qwen2.5-coder-32b-instruct",
    hfId: "Qwen/Qwen2.5-Coder-32B-Instruct",
    params: 32.76e9,
    layers: 64,
    hidden: 5120,
    intermediate: 27648,
    heads: 40,
    kvHeads: 8,
    vocab: 152064,
    tiedEmbeddings: false,
    ...qwenCommon,
  },
  "llama-3-8b-instruct": {
    key: "llama-3-8b-instruct",
    hfId: "meta-llama/Meta-Llama-3-8B-Instruct",
    template: "llama3",
    messagesAllowed: true,
    ...llamaCommon,
  },
  "llama-3.1-8b-instruct": {
    key: "llama-3.1-8b-instruct",
    hfId: "meta-llama/Llama-3.1-8B-Instruct",
    template: "llama3.1",
    messagesAllowed: false,
    templateNote:
      "LLaMA-Factory's `llama3` template omits the 'Cutting Knowledge Date' system header that the Hugging Face Llama-3.1 template (and vLLM) emit; training with it differs from serving unless every row carries an explicit system message.",
    ...llamaCommon,
  },
};

export const PRESET_KEYS = Object.keys(PRESETS) as [string, ...string[]];

/** The paper's two set-ups. Values are `train:` settings (snake_case, as in the YAML). */
export const PROFILES = {
  "lora-7b-1gpu": {
    base_model: "qwen2.5-coder-7b-instruct",
    method: "lora",
    gpus_per_node: 1,
    nodes: 1,
    micro_batch_size: 2,
    launcher: "accelerate",
    distributed: "none",
    // The paper's A6000 (48 GB); used for dry-run estimates when no GPU can be probed.
    gpu_memory_gb: 48,
  },
  "qlora-32b-8gpu": {
    base_model: "qwen2.5-coder-32b-instruct",
    method: "qlora",
    gpus_per_node: 8,
    nodes: 1,
    micro_batch_size: 2,
    launcher: "accelerate",
    // 4-bit 32B weights (~20 GB) fit on every GPU: plain data parallel, no sharding needed.
    distributed: "ddp",
    gpu_memory_gb: 80,
  },
} as const;

export type ProfileName = keyof typeof PROFILES;
export const PROFILE_NAMES = Object.keys(PROFILES) as [ProfileName, ...ProfileName[]];
