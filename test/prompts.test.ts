/**
 * Prompt templates: every App. E prompt is word-for-word the seed's text once formatting (fences,
 * headings, bold, backticks, spacing) is set aside; placeholders are the paper's; rendering fills them
 * in one pass and a missing variable is a one-line error; the hash is the file's sha256.
 */
import { describe, expect, it } from "vitest";
import { existsSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { createHash } from "node:crypto";
import { loadTemplate, makeTemplate, PROMPTS_DIR, TEMPLATE_NAMES } from "../stages/prompts/index.ts";

const SEED = path.resolve(__dirname, "../../shared/seeds/001_fe410f98eabf4e22.txt");

/** Formatting-insensitive form: drop fences (with language tag), #, *, backticks, colons and all whitespace. */
function words(s: string): string {
  return s.replace(/```[a-z]*/g, "").replace(/[#*`:\s]/g, "");
}

function seedSection(seed: string, title: string, next?: string): string {
  const start = seed.indexOf(title);
  expect(start, `seed section "${title}"`).toBeGreaterThan(0);
  const from = start + title.length;
  const end = next ? seed.indexOf(next, from) : seed.length;
  expect(end, `end of seed section "${title}"`).toBeGreaterThan(from);
  return seed.slice(from, end);
}

describe("prompt templates", () => {
  it("load with name, version, file hash and the paper's placeholders", async () => {
    const expected: Record<string, string[]> = {
      utgen_ut: ["signature", "description", "code", "entry_point"],
      random_ut: ["signature", "description", "code", "entry_point"],
      random_joint_ut: ["signature", "description", "entry_point"],
      corrupt_code: ["signature", "description", "code", "entry_point"],
      rationalize_output: ["description", "signature", "unit_input", "unit_output", "entry_point"],
    };
    for (const name of TEMPLATE_NAMES) {
      const t = await loadTemplate(name);
      expect(t.name).toBe(name);
      expect(t.version).toBe("v1");
      const file = readFileSync(path.join(PROMPTS_DIR, `${name}.v1.md`));
      expect(t.hash).toBe(createHash("sha256").update(file).digest("hex"));
      expect([...t.placeholders].sort()).toEqual([...expected[name]].sort());
      expect(t.text.startsWith("<!--")).toBe(false);
      expect(t.text).not.toContain("-->");
      expect((await loadTemplate(`${name}.v1`)).hash).toBe(t.hash);
    }
  });

  it("match the seed's App. E text word for word (formatting aside)", async (ctx) => {
    void ctx;
    expect(existsSync(SEED), `${SEED} is absent: ../shared (papers and data) must sit beside the repository`).toBe(true);
    const seed = readFileSync(SEED, "utf8");
    const cases: [string, string, string | undefined][] = [
      ["utgen_ut", "Prompted and UTGen Prompt for UT generation", "No UT Feedback Prompt"],
      ["random_ut", "UT Generation Prompt for Randomly-sampled UTs", "UT Feedback Prompt"],
      ["corrupt_code", "Training UT Gen – Code Corruption Prompt", "Output Rationalization Prompt"],
      ["rationalize_output", "Output Rationalization Prompt", undefined],
    ];
    for (const [name, title, next] of cases) {
      const t = await loadTemplate(name);
      expect(words(t.text), name).toBe(words(seedSection(seed, title, next)));
    }
  });

  it("keep the released harness's answer format for unit tests", async () => {
    const t = await loadTemplate("utgen_ut");
    for (const h of ["## Hypothesis", "## Unit Test", "### Input Arguments", "### Output", "Arguments: ```{entry_point}(<all arguments>)```", "Output: ```<your final answer>```"])
      expect(t.text).toContain(h);
    expect((await loadTemplate("rationalize_output")).text).toContain("### Reasoning");
  });

  it("render fills every placeholder once and never re-scans values", async () => {
    const t = await loadTemplate("utgen_ut");
    const out = t.render({ signature: "f(x: int) -> int", description: "Return {code} literally.", code: "def f(x):\n    return {x}", entry_point: "f" });
    expect(out).toContain("You are given a Python function `f(x: int) -> int` to solve");
    expect(out).toContain("Return {code} literally.");
    expect(out).toContain("```\ndef f(x):\n    return {x}\n```");
    expect(out).toContain("Arguments: ```f(<all arguments>)```");
    expect(out).not.toMatch(/\{(signature|description|entry_point)\}/);
  });

  it("render throws a one-line error naming the missing variables", async () => {
    const t = await loadTemplate("rationalize_output");
    expect(() => t.render({ signature: "f(x)", description: "d" })).toThrow(/^prompt template rationalize_output\.v1 needs \{unit_input\}, \{unit_output\}, \{entry_point\}: pass unit_input, unit_output, entry_point to render\(\)$/);
  });

  it("unknown templates and versions are one-line errors listing what exists", async () => {
    await expect(loadTemplate("nope")).rejects.toThrow(/prompt template "nope" not found in .*: available are .*utgen_ut\.v1/);
    await expect(loadTemplate("utgen_ut.v9")).rejects.toThrow(/not found/);
    await expect(loadTemplate("../etc/passwd")).rejects.toThrow(/is not valid/);
  });

  it("a file without a header comment is all prompt; the hash covers the header too", () => {
    const a = makeTemplate("x", "v1", "Hi {name}\n");
    const b = makeTemplate("x", "v1", "<!-- provenance -->\nHi {name}\n");
    expect(a.text).toBe("Hi {name}");
    expect(b.text).toBe("Hi {name}");
    expect(a.hash).not.toBe(b.hash);
    expect(b.render({ name: "Ann" })).toBe("Hi Ann");
  });
});
