/**
 * UTRL rewards (seed 002 Eq. 1–4) on hand-computed cases, the UT generator's output parser (malformed output
 * is a counted reason, never a crash), the reward rows' checks, and the evaluation statistics (Spearman with
 * ties, best-of-N tie rule). Pure functions: no sandbox here (test/rl-service.test.ts runs the programs).
 */
import { describe, expect, it } from "vitest";
import { computeRewards, spearman, averageRanks, bestOf, zeroRewards } from "../stages/rl/rewards.ts";
import { extractCode, fencedBlocks, parseUtText, stripThinking } from "../stages/rl/ut-parser.ts";
import { parseRewardRow, prepareRow, toCase } from "../stages/rl/cases.ts";
import { parseRlConfig } from "../stages/rl/config.ts";
import { loadTemplate } from "../stages/prompts/index.ts";
import { UserError } from "../pipeline/errors.ts";

const S = { tau: 12, lambda: 0.85 };
const T = true;
const F = false;

describe("rewards (Eq. 1–4)", () => {
  it("validity is clipped by τ: few cases earn in proportion to their number, many by their share", () => {
    // 3 cases, all valid: 3 / max(3, 12) = 0.25 (not 1: clipping stops "one trivial case" from scoring high)
    expect(computeRewards([T, T, T], [], S).r_valid).toBe(0.25);
    // 1 valid case of 1: 1/12
    expect(computeRewards([T], [], S).r_valid).toBeCloseTo(1 / 12, 12);
    // 16 cases, 12 valid: 12 / max(16, 12) = 0.75
    expect(computeRewards([...Array(12).fill(T), ...Array(4).fill(F)], [], S).r_valid).toBe(0.75);
    // exactly τ cases, all valid: 1
    expect(computeRewards(Array(12).fill(T), [], S).r_valid).toBe(1);
    // without clipping (τ = 1) one valid case of one would score 1
    expect(computeRewards([T], [], { tau: 1, lambda: 0.85 }).r_valid).toBe(1);
  });

  it("invalid cases neither count as valid nor catch a code (discrimination looks at valid cases only)", () => {
    // cases: 0 valid, 1 invalid (gt fails it), 2 valid
    const gt = [T, F, T];
    const codes = [
      [T, F, T], // fails only the invalid case: NOT caught
      [T, T, F], // fails valid case 2: caught
      [F, F, F], // caught
      [T, T, T], // passes everything: not caught
    ];
    const r = computeRewards(gt, codes, S);
    expect(r.valid_cases).toBe(2);
    expect(r.r_disc).toBe(2 / 4);
    expect(r.r_valid).toBe(2 / 12);
    expect(r.code_rewards).toEqual([1, 1 / 2, 0, 1]);
  });

  it("the training reward is λ·R_disc + (1 − λ)·R_valid", () => {
    const r = computeRewards([T, T, T], [[T, T, F], [T, T, T]], S);
    expect(r.r_disc).toBe(0.5);
    expect(r.r_valid).toBe(0.25);
    expect(r.reward).toBeCloseTo(0.85 * 0.5 + 0.15 * 0.25, 12); // 0.4625
    expect(computeRewards([T, T, T], [[T, T, F], [T, T, T]], { tau: 12, lambda: 0 }).reward).toBe(0.25);
    expect(computeRewards([T, T, T], [[T, T, F], [T, T, T]], { tau: 12, lambda: 1 }).reward).toBe(0.5);
  });

  it("no valid case: discrimination 0, every code reward 0; no codes: discrimination 0", () => {
    const r = computeRewards([F, F], [[F, F], [T, T]], S);
    expect(r).toMatchObject({ r_valid: 0, r_disc: 0, reward: 0, code_rewards: [0, 0], valid_cases: 0 });
    expect(computeRewards([T], [], S).r_disc).toBe(0);
    expect(zeroRewards(3)).toEqual({ r_valid: 0, r_disc: 0, reward: 0, code_rewards: [0, 0, 0], valid_cases: 0 });
  });

  it("malformed cases count in |U| (passed as nCases) and are never valid", () => {
    // 2 well-formed valid cases + 14 malformed: 2 / max(16, 12)
    expect(computeRewards([T, T, ...Array(14).fill(F)], [], S, 16).r_valid).toBe(2 / 16);
  });
});

describe("UT generator output parser", () => {
  const stdioUt = (n: number) =>
    Array.from({ length: n }, (_, k) => `## Test Case ${k + 1}\nReasoning: case ${k + 1}.\n### Input\n\`\`\`\n${k}\n1 2\n\`\`\`\n### Output\n\`\`\`\n${k + 3}\n\`\`\`\n`).join("\n");

  it("reads the prompt's format: one case per heading, input and output blocks verbatim", async () => {
    const p = parseUtText(stdioUt(12));
    expect(p.ok).toBe(true);
    if (!p.ok) return;
    expect(p.cases).toHaveLength(12);
    expect(p.cases[3]).toEqual({ status: "ok", input: "3\n1 2", output: "6" });
    // The shipped prompt's own example parses into the placeholder case (the format is the parser's).
    const tpl = await loadTemplate("utrl_ut_stdio");
    expect(tpl.placeholders.sort()).toEqual(["num_cases", "question"]);
    const shown = parseUtText(tpl.text.slice(tpl.text.indexOf("## Test Case 1")));
    expect(shown.ok && shown.cases[0]).toEqual({ status: "ok", input: "<the exact text given on standard input>", output: "<the exact text a correct solution prints>" });
  });

  it("drops <think> blocks, tolerates bold headings, labels, language tags and one-line blocks", () => {
    const text = [
      "<think>Let me think. ## Test Case 9\n### Input\n```\n99\n```\n### Output\n```\n0\n```</think>",
      "**Test case 1:**",
      "Input:",
      "```text",
      "5",
      "```",
      "Expected Output: ```25```",
      "",
      "Test Case #2",
      "The input below has output smaller than input.",
      "**Input**",
      "```plaintext",
      "-3",
      "```",
      "**Output**",
      "```",
      "9",
      "```",
    ].join("\n");
    const p = parseUtText(text);
    expect(p).toEqual({
      ok: true,
      cases: [
        { status: "ok", input: "5", output: "25" },
        { status: "ok", input: "-3", output: "9" },
      ],
    });
    expect(stripThinking("a<think>x</think>b<THINK>y</think>c")).toEqual({ text: "abc", unclosed: false });
  });

  it("an unfenced one-line output after an Output label is read; a missing one stays malformed", () => {
    const p = parseUtText("## Test Case 1\n**Input:**\n```\n2\n1 2\n```\n**Output:** `3`\n\n## Test Case 2\nInput:\n```\n1\n```\nOutput:\n\n## Test Case 3\n### Input\n```\n4\n```\nExpected output: 16\n");
    expect(p.ok && p.cases).toEqual([
      { status: "ok", input: "2\n1 2", output: "3" },
      { status: "missing_output", input: "1", output: "" },
      { status: "ok", input: "4", output: "16" },
    ]);
  });

  it("answers without headings: input/output pairs in order; a dangling input is a malformed case", () => {
    const p = parseUtText("Input:\n```\n1\n```\nOutput:\n```\n2\n```\nInput:\n```\n3\n```\nOutput:\n```\n4\n```\nInput:\n```\n5\n```\n");
    expect(p.ok && p.cases.map((c) => c.status)).toEqual(["ok", "ok", "missing_output"]);
  });

  it("malformed output is a named reason, never a crash", () => {
    const bad: [string, string | undefined, string][] = [
      ["", undefined, "empty_response"],
      ["   \n", undefined, "empty_response"],
      ["I am not sure what to test.", undefined, "no_cases"],
      ["<think>still thinking about case 1", undefined, "unclosed_think"],
      ["<think>still thinking about case 1", "length", "truncated"],
      ["```\n```", undefined, "no_cases"],
    ];
    for (const [text, finishReason, reason] of bad) expect(parseUtText(text, { finishReason })).toEqual({ ok: false, reason });
    // Hostile inputs: deep nesting, thousands of fences, unterminated everything — still a result.
    for (const t of ["`".repeat(10_000), "```\n".repeat(5001), "## Test Case 1\n".repeat(2000), "<think>".repeat(1000), "\u0000\uffff```\u0000"]) {
      const r = parseUtText(t);
      expect(typeof r.ok).toBe("boolean");
    }
  });

  it("a heading without blocks, and the case cut off by the length limit, are malformed cases", () => {
    const cut = stdioUt(2) + "\n## Test Case 3\n### Input\n```\n7\n";
    const p = parseUtText(cut, { finishReason: "length" });
    expect(p.ok && p.cases.map((c) => c.status)).toEqual(["ok", "ok", "truncated_case"]);
    const missing = parseUtText(stdioUt(1) + "\n## Test Case 2\nReasoning: I forgot the blocks.\n");
    expect(missing.ok && missing.cases.map((c) => c.status)).toEqual(["ok", "missing_input"]);
    const noOut = parseUtText("## Test Case 1\n### Input\n```\n1\n```\nno output here\n");
    expect(noOut.ok && noOut.cases.map((c) => c.status)).toEqual(["missing_output"]);
  });

  it("fenced blocks: body verbatim, closing fence at a line start preferred, 4-backtick fences", () => {
    expect(fencedBlocks("```\na ``` b\n```").map((b) => b.body)).toEqual(["a ``` b"]);
    expect(fencedBlocks("````\nx\n```\ny\n````").map((b) => b.body)).toEqual(["x\n```\ny"]);
    expect(fencedBlocks("```\n  indented\n\ttab\n```")[0].body).toBe("  indented\n\ttab");
  });

  it("code extraction: the last python block, else the last block, else the text", () => {
    expect(extractCode("plan\n```python\nprint(1)\n```\nfinal:\n```python\nprint(2)\n```")).toEqual({ ok: true, code: "print(2)" });
    expect(extractCode("```\nprint(3)\n```")).toEqual({ ok: true, code: "print(3)" });
    expect(extractCode("<think>```python\nprint(0)\n```</think>print(4)")).toEqual({ ok: true, code: "print(4)" });
    expect(extractCode("")).toEqual({ ok: false, reason: "empty_response" });
    expect(extractCode("<think>hmm")).toEqual({ ok: false, reason: "unclosed_think" });
    expect(extractCode("```python\n```")).toEqual({ ok: false, reason: "no_code" });
  });
});

describe("reward rows and cases", () => {
  const rl = parseRlConfig({});

  it("function cases parse as safe literals; a wrong callee or a non-literal is malformed", () => {
    expect(toCase("function", { input: "f(1, [2, 3], key='x')", output: "(1, 2)" }, "f")).toMatchObject({
      status: "ok",
      input: { args: [1, [2, 3]], kwargs: { key: "x" } },
      expected: { $tuple: [1, 2] },
    });
    expect(toCase("function", { input: "Arguments: f(1)", output: "Output: 2" }, "f").status).toBe("ok");
    expect(toCase("function", { input: "g(1)", output: "1" }, "f").status).toBe("wrong_function");
    expect(toCase("function", { input: "f(__import__('os'))", output: "1" }, "f").status).toBe("unparsable_input");
    expect(toCase("function", { input: "f(1)", output: "1 +" }, "f").status).toBe("unparsable_output");
    expect(toCase("stdio", { input: "1 2", output: "3" }, undefined)).toMatchObject({ status: "ok", input: "1 2\n", expected: "3" });
    expect(toCase("stdio", { input: "x".repeat(11), output: "" }, undefined, 10).status).toBe("case_too_long");
  });

  it("max_cases: cases beyond the cap are not in |U| and are counted", () => {
    const row = parseRewardRow({ id: 1, kind: "stdio", gt_code: "", cases: Array.from({ length: 40 }, (_, i) => ({ input: `${i}`, output: `${i}` })), codes: ["a", " "] }, "t");
    const p = prepareRow(row, rl);
    expect(p.cases).toHaveLength(32);
    expect(p.overCap).toBe(8);
    expect(p.codes).toEqual(["a", undefined]);
    expect(p.codeReasons).toEqual([undefined, "no_code"]);
    expect(row.id).toBe("1");
  });

  it("a bad row is one line naming the field", () => {
    const err = (raw: unknown) => {
      try {
        parseRewardRow(raw, "rows.jsonl:3");
      } catch (e) {
        expect(e).toBeInstanceOf(UserError);
        return (e as Error).message;
      }
      return "no error";
    };
    expect(err({ id: "a", kind: "stdio", gt_code: "x" })).toBe('rows.jsonl:3: needs exactly one of "cases" (a list of {input, output}) or "ut_text" (the UT generator\'s response)');
    expect(err({ id: "a", kind: "function", gt_code: "x", cases: [] })).toBe('rows.jsonl:3: a function task needs "entry_point"');
    expect(err({ id: "a", kind: "cpp", gt_code: "x", cases: [] })).toMatch(/^rows\.jsonl:3: field "kind": /);
    expect(err({ id: "a", kind: "stdio", gt_code: "x", cases: [{ input: 1, output: "2" }] })).toMatch(/^rows\.jsonl:3: field "cases\.0\.input": /);
    // Python clients send None for absent fields.
    expect(parseRewardRow({ id: "a", kind: "stdio", gt_code: "x", entry_point: null, ut_text: "u", cases: null, codes: ["c"] }, "t").entry_point).toBeUndefined();
  });
});

describe("evaluation statistics", () => {
  it("Spearman: ranks with ties averaged, undefined for a constant vector", () => {
    expect(spearman([1, 2, 3, 4], [1, 3, 2, 4])).toBeCloseTo(0.8, 12);
    expect(spearman([1, 2, 3], [3, 2, 1])).toBeCloseTo(-1, 12);
    expect(averageRanks([0.5, 0.5, 1])).toEqual([1.5, 1.5, 3]);
    // scipy.stats.spearmanr([1, 1, 2], [1, 2, 3]) = 0.8660254
    expect(spearman([1, 1, 2], [1, 2, 3])).toBeCloseTo(0.8660254, 6);
    expect(spearman([1, 1, 1], [1, 2, 3])).toBeNull();
    expect(spearman([1], [1])).toBeNull();
  });

  it("best-of-N picks the most cases passed; ties go to the earliest sample", () => {
    expect(bestOf([2, 5, 5, 1])).toBe(1);
    expect(bestOf([0, 0, 0])).toBe(0);
    expect(bestOf([])).toBe(-1);
  });
});
