/**
 * The generation stages' side of the prompt templates (stages/prompts) and response parsers
 * (stages/parsers.ts): builds each stage's chat request and turns a response into the fields the stage
 * keeps, or a named drop reason. Also renders the SFT assistant message in the UTGen response format, so
 * that the parser the validate stage uses reads back exactly the arguments and output written here.
 */
import type { ChatRequest } from "../../pipeline/llm/types.ts";
import { loadTemplate } from "../prompts/index.ts";

/** The response parsers, loaded on first use (only LLM backends need them). */
let parsersP: Promise<typeof import("../parsers.ts")> | undefined;
const parsers = () => (parsersP ??= import("../parsers.ts"));

type TemplateName = Parameters<typeof loadTemplate>[0];

const cache = new Map<string, ReturnType<typeof loadTemplate>>();
function template(name: string) {
  let t = cache.get(name);
  if (!t) {
    t = loadTemplate(name as TemplateName);
    cache.set(name, t);
  }
  return t;
}

/** Hashes of the named templates (fingerprint material). */
export async function templateHashes(names: string[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const n of names) out[n] = (await template(n)).hash;
  return out;
}

async function request(name: string, vars: Record<string, string>): Promise<ChatRequest> {
  const t = await template(name);
  return { messages: [{ role: "user", content: t.render(vars) }], templateHash: t.hash };
}

interface ProblemFields {
  prompt: string;
  code: string;
  entry_point: string;
  signature: string;
}

/** The code-corruption prompt (App. E) for a gold item. */
export function corruptPrompt(rec: ProblemFields): Promise<ChatRequest> {
  return request("corrupt_code", { signature: rec.signature, description: rec.prompt, code: rec.code, entry_point: rec.entry_point });
}

/** The UTGen prompt (App. E) for a buggy version: also the SFT user message. */
export async function utgenUserMessage(rec: ProblemFields & { buggy_code: string }): Promise<string> {
  const t = await template("utgen_ut");
  return t.render({ signature: rec.signature, description: rec.prompt, code: rec.buggy_code, entry_point: rec.entry_point });
}

export async function utgenPrompt(rec: ProblemFields & { buggy_code: string }): Promise<ChatRequest> {
  const t = await template("utgen_ut");
  return { messages: [{ role: "user", content: await utgenUserMessage(rec) }], templateHash: t.hash };
}

/** The output-rationalization prompt (App. E) for one failing test. */
export function rationalizePrompt(rec: ProblemFields, unitInput: string, unitOutput: string): Promise<ChatRequest> {
  return request("rationalize_output", {
    signature: rec.signature,
    description: rec.prompt,
    entry_point: rec.entry_point,
    unit_input: unitInput,
    unit_output: unitOutput,
  });
}

export type Parsed<T> = T | { reason: string; detail?: string };

/** A corrupted-code response → the code and the reasoning given outside it. */
export async function parseCorruption(text: string, entryPoint: string, finishReason?: string): Promise<Parsed<{ code: string; reasoning?: string }>> {
  const r = (await parsers()).parseCorruptedCode(text, entryPoint, { finishReason });
  if (!r.ok) return { reason: r.reason, detail: r.detail };
  return { code: r.code, reasoning: r.reasoning || undefined };
}

/** A UTGen response → the argument text and the sampler's reasoning fields. */
export async function parseUt(
  text: string,
  entryPoint: string,
  finishReason?: string,
): Promise<Parsed<{ args_text: string; output_text?: string; hypothesis?: string; error_pattern?: string; input_reasoning?: string }>> {
  const r = (await parsers()).parseUnitTest(text, entryPoint, { finishReason });
  if (!r.ok) return { reason: r.reason, detail: r.detail };
  return {
    args_text: r.argsText,
    output_text: r.outputText ?? undefined,
    hypothesis: r.hypothesis || undefined,
    error_pattern: r.errorPattern || undefined,
    input_reasoning: r.inputReasoning || undefined,
  };
}

/** A rationalization response → the reasoning and the final answer it states, if any. */
export async function parseRat(text: string): Promise<Parsed<{ reasoning: string; final_answer?: string }>> {
  const r = (await parsers()).parseRationale(text);
  if (!r.ok) return { reason: r.reason, detail: r.detail };
  return { reasoning: r.reasoning, final_answer: r.statedAnswer };
}

/**
 * A Python literal that can sit inside a ``` fence: backtick runs can only occur inside string literals
 * of formatted values, where `\x60` denotes the same character.
 */
export function fenceSafe(literal: string): string {
  return literal.includes("``") ? literal.replace(/`/g, "\\x60") : literal;
}

/** The SFT assistant message in the UTGen response format (App. E). */
export function utgenAssistantMessage(t: {
  hypothesis?: string;
  error_pattern?: string;
  input_reasoning?: string;
  args_text: string;
  rationale: string;
  gold_output_text: string;
}): string {
  const parts = [
    "## Hypothesis",
    (t.hypothesis ?? "").trim(),
    "",
    `Error Pattern: ${(t.error_pattern ?? "").replace(/\s+/g, " ").trim()}`,
    "",
    "## Unit Test",
    "",
    "### Input Arguments",
    (t.input_reasoning ?? "").trim(),
    `Arguments: \`\`\`${fenceSafe(t.args_text)}\`\`\``,
    "",
    "### Output",
    t.rationale.trim(),
    `Output: \`\`\`${fenceSafe(t.gold_output_text)}\`\`\``,
  ];
  return parts.join("\n");
}
