/**
 * Response parsers on realistic model answers in every variant the prompts produce: the harness format,
 * single backticks, no fences, python tags, multi-line arguments, extra prose, several attempts, echoed
 * placeholders, wrong function, truncation; corrupted-code blocks with and without fences; rationales with
 * and without the header, code-only ones, and stated answers. Extracted texts go through the executor's
 * safe literal parser, as the stages do.
 */
import { describe, expect, it } from "vitest";
import { parseCorruptedCode, parseRationale, parseUnitTest } from "../stages/parsers.ts";
import { parseCallLiteral, parseLiteral } from "../pipeline/executor/literals.ts";

const HARNESS = `## Hypothesis
The code only checks divisibility by 10, so palindromes that are not multiples of 10 are mishandled.
When the number is just below a palindrome the loop starts at the wrong place.

Error Pattern: inputs that are not multiples of 10, such as 123

## Unit Test

### Input Arguments
The input 123 is not a multiple of 10 and is a valid positive integer.
Arguments: \`\`\`next_smallest_pld(123)\`\`\`

### Output
The next palindrome after 123 is 131: 124..130 are not palindromes.
Output: \`\`\`131\`\`\``;

function ut(text: string, entry = "next_smallest_pld", opts = {}) {
  const r = parseUnitTest(text, entry, opts);
  if (!r.ok) throw new Error(`expected ok, got ${r.reason}: ${r.detail}`);
  return r;
}

describe("parseUnitTest", () => {
  it("reads the released harness format with every section", () => {
    const r = ut(HARNESS);
    expect(r.argsText).toBe("next_smallest_pld(123)");
    expect(r.outputText).toBe("131");
    expect(r.hypothesis).toMatch(/^The code only checks divisibility by 10.*\n.*wrong place\.$/);
    expect(r.errorPattern).toBe("inputs that are not multiples of 10, such as 123");
    expect(r.inputReasoning).toBe("The input 123 is not a multiple of 10 and is a valid positive integer.");
    expect(r.outputReasoning).toBe("The next palindrome after 123 is 131: 124..130 are not palindromes.");
    const call = parseCallLiteral(r.argsText, "next_smallest_pld");
    expect(call).toEqual({ ok: true, fn: "next_smallest_pld", args: { args: [123] } });
    expect(parseLiteral(r.outputText!)).toEqual({ ok: true, value: 131 });
  });

  it("accepts single backticks, bold labels and no fences", () => {
    const single = "### Input Arguments\nPick an empty list.\nArguments: `max_sub([], 2)`\n\n### Output\nNothing to sum.\nOutput: `0`";
    expect(ut(single, "max_sub")).toMatchObject({ argsText: "max_sub([], 2)", outputText: "0", inputReasoning: "Pick an empty list.", outputReasoning: "Nothing to sum." });
    const bold = "**Arguments:** `max_sub([1, -2], 1)`\n**Output:** `1`";
    expect(ut(bold, "max_sub")).toMatchObject({ argsText: "max_sub([1, -2], 1)", outputText: "1" });
    const bare = "Arguments: max_sub([3, 4], 2)\nOutput: 7.";
    expect(ut(bare, "max_sub")).toMatchObject({ argsText: "max_sub([3, 4], 2)", outputText: "7" });
    const floatDot = "Arguments: half(3)\nOutput: 1.5";
    expect(ut(floatDot, "half").outputText).toBe("1.5");
    const strDot = "Arguments: f('a')\nOutput: 'b'.";
    expect(ut(strDot, "f").outputText).toBe("'b'");
    expect(ut("Arguments: odd(5)\nOutput: True (since 5 is odd)", "odd").outputText).toBe("True");
    expect(ut("Arguments: pair(5)\nOutput: 5, 6", "pair").outputText).toBe("5, 6");
  });

  it("accepts python-tagged fenced blocks and multi-line arguments", () => {
    const text = `## Unit Test
### Input Arguments
A matrix with a negative entry in the last row.
Arguments:
\`\`\`python
min_path([[1, 2, 3],
          [4, 5, 6],
          [7, 8, -9]], "a)b")
\`\`\`
### Output
Output:
\`\`\`python
-3
\`\`\``;
    const r = ut(text, "min_path");
    expect(r.argsText).toBe('min_path([[1, 2, 3],\n          [4, 5, 6],\n          [7, 8, -9]], "a)b")');
    expect(parseCallLiteral(r.argsText, "min_path").ok).toBe(true);
    expect(r.outputText).toBe("-3");
    expect(parseLiteral(r.outputText!)).toEqual({ ok: true, value: -3 });
  });

  it("takes the last attempt when the model revises itself, with extra prose around", () => {
    const text = `Let me think. A first idea: Arguments: \`\`\`f(1)\`\`\` but that passes.
Actually a better one:
Arguments: \`\`\`f(2, "x")\`\`\`
Output: \`\`\`"xx"\`\`\`
I hope this helps! Let me know if you need more tests.`;
    expect(ut(text, "f")).toMatchObject({ argsText: 'f(2, "x")', outputText: '"xx"' });
  });

  it("handles labels glued to text, assertions and 'f(x) == y' outputs", () => {
    expect(ut("reasoning here>Arguments: ```g(5)```\nOutput: ```g(5) == 25```", "g")).toMatchObject({ argsText: "g(5)", outputText: "25" });
    expect(ut("```python\nassert g(4) == 16\n```", "g")).toMatchObject({ argsText: "g(4)", outputText: "16" });
  });

  it("random-UT answers have no output and that is fine when not expected", () => {
    const text = "```\nThe code fails for negative numbers.\n\nArguments: is_even(-2)\n```";
    const r = ut(text, "is_even", { expectOutput: false });
    expect(r.argsText).toBe("is_even(-2)");
    expect(r.outputText).toBeUndefined();
    expect(parseUnitTest(text, "is_even")).toMatchObject({ ok: false, reason: "no_output" });
  });

  it("keeps strings with brackets, quotes and backticks inside the arguments intact", () => {
    const r = ut("Arguments: ```fmt('a)b', \"c`d\", {'k': [1, (2, 3)]})```\nOutput: ```'x'```", "fmt");
    expect(r.argsText).toBe("fmt('a)b', \"c`d\", {'k': [1, (2, 3)]})");
    expect(parseCallLiteral(r.argsText, "fmt").ok).toBe(true);
  });

  it("names the failure", () => {
    expect(parseUnitTest("", "f")).toMatchObject({ ok: false, reason: "empty_response" });
    expect(parseUnitTest("I cannot find a failing test for this code.", "f")).toMatchObject({ ok: false, reason: "no_arguments" });
    expect(parseUnitTest("Arguments: ```solve(3)```\nOutput: ```4```", "f")).toMatchObject({ ok: false, reason: "wrong_function" });
    expect(parseUnitTest("Arguments: ```f(<all arguments>)```\nOutput: ```<your final answer>```", "f")).toMatchObject({ ok: false, reason: "placeholder_arguments" });
    expect(parseUnitTest("Arguments: ```f(1)```\nOutput: ```<your final answer>```", "f")).toMatchObject({ ok: false, reason: "no_output" });
    expect(parseUnitTest("Arguments: ```f([1, 2)```\nOutput: ```3```", "f")).toMatchObject({ ok: false, reason: "unbalanced_arguments" });
    expect(parseUnitTest("## Unit Test\n### Input Arguments\nArguments: ```f([1, 2,", "f", { finishReason: "length" })).toMatchObject({ ok: false, reason: "truncated" });
    expect(parseUnitTest("Arguments: ```f(1)```\n### Output\nThe answer is surely", "f", { finishReason: "length" })).toMatchObject({ ok: false, reason: "truncated" });
    expect(parseUnitTest("Arguments: ```f(1)```\nOutput: ```[1, 2", "f")).toMatchObject({ ok: false, reason: "truncated" });
    expect(parseUnitTest("## Hypothesis\nThe loop is off by one and", "f", { finishReason: "length" })).toMatchObject({ ok: false, reason: "truncated" });
  });

  it("accepts other label spellings: Input:, Input Arguments:, Expected Output:", () => {
    expect(ut("Input: `f('abc', 2)`\nExpected Output: `'ab'`", "f")).toMatchObject({ argsText: "f('abc', 2)", outputText: "'ab'" });
    expect(ut("**Input Arguments:** f(None)\n**Output:** None", "f")).toMatchObject({ argsText: "f(None)", outputText: "None" });
  });

  it("ignores the function definition when looking for the call", () => {
    const text = "```python\ndef f(x):\n    return x\n```\nArguments: f(3)\nOutput: 3";
    expect(ut(text, "f")).toMatchObject({ argsText: "f(3)", outputText: "3" });
  });

  it("falls back to the last code span under an Output heading", () => {
    const text = "Arguments: ```f(2)```\n\n### Output\nDoubling gives `4`, so the answer is:\n```\n4\n```";
    expect(ut(text, "f").outputText).toBe("4");
  });
});

describe("parseCorruptedCode", () => {
  const ANSWER = `The student forgot that the range end is exclusive, so the last element is never compared.

## Incorrect Code Solution
\`\`\`python
import math

def find_max(nums):
    best = nums[0]
    for i in range(1, len(nums) - 1):
        if nums[i] > best:
            best = nums[i]
    return best
\`\`\``;

  it("takes the fenced block that defines the entry point and keeps the prose as reasoning", () => {
    const r = parseCorruptedCode(ANSWER, "find_max");
    expect(r).toMatchObject({ ok: true });
    if (!r.ok) return;
    expect(r.code.startsWith("import math\n\ndef find_max(nums):")).toBe(true);
    expect(r.code.endsWith("return best")).toBe(true);
    expect(r.reasoning).toBe("The student forgot that the range end is exclusive, so the last element is never compared.");
  });

  it("prefers the last defining block (the model repeated the original first)", () => {
    const text = "Original:\n```\ndef f(x):\n    return x + 1\n```\nCorrupted:\n```py\ndef f(x):\n    return x - 1\n```\nThe sign is flipped.";
    const r = parseCorruptedCode(text, "f");
    expect(r.ok && r.code).toBe("def f(x):\n    return x - 1");
    expect(r.ok && r.reasoning).toContain("The sign is flipped.");
  });

  it("finds unfenced code among prose", () => {
    const text = "Here the comparison is reversed.\n\nIncorrect Code Solution\nfrom typing import List\ndef is_sorted(xs: List[int]) -> bool:\n    for a, b in zip(xs, xs[1:]):\n        if a < b:\n            return False\n    return True\n\nThis fails on [1, 2].";
    const r = parseCorruptedCode(text, "is_sorted");
    expect(r.ok && r.code).toBe("from typing import List\ndef is_sorted(xs: List[int]) -> bool:\n    for a, b in zip(xs, xs[1:]):\n        if a < b:\n            return False\n    return True");
    expect(r.ok && r.reasoning).toContain("Here the comparison is reversed.");
    expect(r.ok && r.reasoning).toContain("This fails on [1, 2].");
  });

  it("accepts a missing closing fence when the model simply stopped", () => {
    const r = parseCorruptedCode("Bug: off by one.\n```python\ndef g(n):\n    return n\n", "g");
    expect(r.ok && r.code).toBe("def g(n):\n    return n");
  });

  it("names the failure", () => {
    expect(parseCorruptedCode("  ", "f")).toMatchObject({ ok: false, reason: "empty_response" });
    expect(parseCorruptedCode("I would change the loop bound.", "f")).toMatchObject({ ok: false, reason: "no_code_block" });
    expect(parseCorruptedCode("```python\ndef helper(x):\n    return x\n```", "f")).toMatchObject({ ok: false, reason: "missing_entry_point" });
    expect(parseCorruptedCode("Reason.\n```python\ndef f(x):\n    return [x,", "f", { finishReason: "length" })).toMatchObject({ ok: false, reason: "truncated" });
  });
});

describe("parseRationale", () => {
  it("takes the text under ### Reasoning and the stated answer", () => {
    const text = `### Reasoning
Let's think step by step.
- The task asks for the sum of the even numbers.
- The input [1, 2, 4] has even numbers 2 and 4.
- Therefore, the output of the function is 6.`;
    const r = parseRationale(text);
    expect(r).toMatchObject({ ok: true, statedAnswer: "6" });
    expect(r.ok && r.reasoning.startsWith("Let's think step by step.")).toBe(true);
  });

  it("uses the whole text when the header is missing; prose answers are not literals", () => {
    const r = parseRationale("The string lacks the vowels a, i, o and u.\nTherefore, the output of the function is not accepted.");
    expect(r).toMatchObject({ ok: true });
    expect(r.ok && r.statedAnswer).toBeUndefined();
    expect(r.ok && r.reasoning).toContain("lacks the vowels");
  });

  it("reads 'returns X', 'Output: X' and backticked answers (the last statement wins)", () => {
    expect(parseRationale("**Reasoning**\nIt should return True if all match. One is missing, so `check` returns False.")).toMatchObject({ statedAnswer: "False" });
    expect(parseRationale("## Reasoning:\nCounting gives three pairs.\nOutput: [(1, 2), (2, 3), (3, 4)]")).toMatchObject({ statedAnswer: "[(1, 2), (2, 3), (3, 4)]" });
    expect(parseRationale("### Reasoning\nSplitting on spaces, the result is `['a', 'b']` as required.")).toMatchObject({ statedAnswer: "['a', 'b']" });
    expect(parseRationale("### Reasoning\nThe answer is 'abc'. Reversing gives the final output: \"cba\".")).toMatchObject({ statedAnswer: '"cba"' });
    const stated = parseRationale("### Reasoning\nSo the function returns -2.5 for this input.");
    expect(stated.ok && parseLiteral(stated.statedAnswer!)).toEqual({ ok: true, value: { $float: "-2.5" } });
  });

  it("names empty and code-only rationales", () => {
    expect(parseRationale("")).toMatchObject({ ok: false, reason: "empty_rationale" });
    expect(parseRationale("### Reasoning\n   \n")).toMatchObject({ ok: false, reason: "empty_rationale" });
    expect(parseRationale("### Reasoning\n```python\ndef check(s):\n    return all(v in s.lower() for v in 'aeiou')\n```")).toMatchObject({ ok: false, reason: "code_only_rationale" });
    expect(parseRationale("def check(s):\n    vowels = set('aeiou')\n    return vowels <= set(s.lower())")).toMatchObject({ ok: false, reason: "code_only_rationale" });
  });

  it("keeps rationales that quote a little code inside real prose", () => {
    const r = parseRationale("### Reasoning\nThe description says to count vowels, so for \"BCDEFG\" only `e` counts.\n```\ncount = 1\n```\nHence the output is 1.");
    expect(r).toMatchObject({ ok: true, statedAnswer: "1" });
  });
});

describe("pathological inputs", () => {
  it("long runs of spaces, brackets and markers give named failures (linear-time scanning)", () => {
    expect(parseUnitTest("# " + " ".repeat(50_000) + "x", "f")).toMatchObject({ ok: false, reason: "no_arguments" });
    expect(parseUnitTest("Arguments: f(" + "[".repeat(20_000), "f")).toMatchObject({ ok: false, reason: "truncated" });
    expect(parseUnitTest("Arguments: f(1)\nOutput: " + " ".repeat(50_000) + "!", "f")).toMatchObject({ ok: true, outputText: "!" });
    expect(parseCorruptedCode("**" + "a".repeat(50_000), "f")).toMatchObject({ ok: false, reason: "no_code_block" });
    expect(parseRationale("### " + " ".repeat(50_000) + "Reasoning")).toMatchObject({ ok: false, reason: "empty_rationale" });
    expect(parseRationale("Reasoning" + " ".repeat(50_000) + ":\nIt is 3.")).toMatchObject({ ok: true, reasoning: "It is 3." });
  });
});
