/** Filter: code-block extraction and entry-point choice (pure parts; the full stage is in filter.test.ts). */
import { describe, expect, it } from "vitest";
import { codeBlocks, extractCode, pickEntryPoint } from "../stages/filter.ts";
import type { FunctionInfo } from "../pipeline/executor/types.ts";

const fn = (name: string): FunctionInfo => ({ name, params: [], lineno: 1, signature: `${name}()` });

describe("filter code extraction", () => {
  it("finds fenced blocks with their language, including an unterminated last fence", () => {
    const b = codeBlocks("Here:\n```python\ndef f(x):\n    return x\n```\nand\n```js\nlet a=1\n```\nthen\n```\nprint(1)");
    expect(b.map((x) => x.lang)).toEqual(["python", "js", ""]);
    expect(b[0].code).toBe("def f(x):\n    return x");
    expect(b[2].code).toBe("print(1)");
  });

  it("joins the function-defining blocks with imports from usage blocks, and skips usage code", () => {
    const text = "```python\nimport math\nprint(area(2))\n```\n```python\ndef area(r):\n    return math.pi * r * r\n```\n```python\ndef helper(x):\n    return x\n```";
    const r = extractCode(text);
    expect(r).toEqual({ code: "import math\n\ndef area(r):\n    return math.pi * r * r\n\ndef helper(x):\n    return x\n", blocks: 3 });
  });

  it("names the reason when there is nothing usable", () => {
    expect(extractCode("No code here, def is just a word.")).toEqual({ reason: "no_code_block", blocks: 0 });
    expect(extractCode("```javascript\nfunction f() {}\n```")).toEqual({ reason: "non_python_code", blocks: 1 });
    expect(extractCode("```python\nclass A:\n    def m(self):\n        pass\n```")).toEqual({ reason: "no_function", blocks: 1 });
  });

  it("picks the function the prompt names first, else the last one", () => {
    expect(pickEntryPoint("Write a python function `count_vowels` using helper is_vowel", [fn("is_vowel"), fn("count_vowels")]).name).toBe("count_vowels");
    expect(pickEntryPoint("Write a python function that sums", [fn("a"), fn("b")]).name).toBe("b");
  });
});
