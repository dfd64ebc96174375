// rationalize: the execution-grounded template rationale on the heuristic backend, and on the OpenAI
// backend (loopback server) the keep / empty / code-only / contradicting cases, the prompt's content
// (gold's output, not the model's) and a re-run answered from the cache.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inputText, paramNames, proseOf, rationalizeStage } from "../stages/rationalize.ts";
import type { TestRec } from "../stages/attack.ts";
import { runStage, scratchDirs, standaloneContext } from "../stages/heuristic/context.ts";
import { startOpenAIServer, type OpenAIServer, type ScriptRequest, type ScriptedReply } from "./servers/openai.ts";

const scratch = scratchDirs("utgen-rat-");
const tmp = () => scratch.make();
afterAll(() => {
  scratch.removeAll();
});

function testRec(id: string, args: any[], gold: any, goldText: string): TestRec {
  return {
    id: `${id}/bug1/ut1`,
    parent_id: `${id}/bug1`,
    problem_id: id,
    source: "test",
    prompt: "Return the last n items of xs, sorted.",
    code: "def tail(xs: list[int], n: int) -> list[int]:\n    return sorted(xs[-n:])\n",
    entry_point: "tail",
    signature: "tail(xs: list[int], n: int) -> list[int]",
    buggy_code: "def tail(xs: list[int], n: int) -> list[int]:\n    return sorted(xs[-n + 1:])\n",
    bug: { origin: "mutation", operator: "slice_bounds" },
    test: {
      args_text: `tail(${args.map((a) => JSON.stringify(a)).join(", ")})`,
      args: { args },
      gold_output: gold,
      gold_output_text: goldText,
      buggy_status: "ok",
      sampler: "fuzz",
    },
  };
}

describe("helpers", () => {
  it("reads parameter names, the Input line and prose", () => {
    expect(paramNames("f(a: int, b: Dict[str, int] = {}, *args, c=3, **kw) -> int")).toEqual(["a", "b", "*args", "c"]);
    expect(paramNames("tail(xs: list[int], n: int) -> list[int]")).toEqual(["xs", "n"]);
    expect(inputText({ args: [[3, 1], "a", { $tuple: [1] }] })).toBe("[3, 1], 'a', (1,)");
    expect(proseOf("Because:\n```python\nx = 1\n```\nso it is 1.")).toBe("Because: so it is 1.");
  });
});

describe("rationalize, heuristic backend", () => {
  it("writes an execution-grounded template rationale with gold's intermediate values", async () => {
    const s = standaloneContext(rationalizeStage, { root: { llm: { backend: "heuristic" } }, runDir: tmp() });
    const looped = {
      ...testRec("p2", [[5, 1, 4], 2], [1, 4], "[1, 4]"),
      code: "def tail(xs: list[int], n: int) -> list[int]:\n    out = []\n    for x in xs[-n:]:\n        out.append(x)\n    out.sort()\n    return out\n",
    };
    // an argument the trace helper cannot rebuild (a repr-only value): the plain template is used
    const untraceable = { ...testRec("p3", [{ $repr: "<Node 1>", type: "Node" }, 1], [1], "[1]"), code: "def tail(xs, n):\n    out = [1]\n    return out\n" };
    // gold may rely on the UTGen prelude (math without an import), as in runCalls
    const prelude = { ...testRec("p4", [[2], 3], [1], "[1]"), code: "def tail(xs, n):\n    half = math.floor(n / 2)\n    return [half]\n" };
    const r = await runStage(rationalizeStage, s.ctx, [testRec("p1", [[5, 1, 4], 2], [1, 4], "[1, 4]"), looped, untraceable, prelude]);
    await s.close();
    expect(r.drop).toEqual([]);
    expect(r.out).toHaveLength(4);
    expect(r.out.every((x) => x.rationale_source === "template")).toBe(true);
    const [plain, traced, fallback, withPrelude] = r.out.map((x) => x.rationale);
    expect(withPrelude).toContain("  - `half` is `1`");
    expect(plain).toContain("`xs` = `[5, 1, 4]` (a list of 3 elements)");
    expect(plain).toContain("`n` = `2` (an integer)");
    expect(plain).toContain("returns `[1, 4]`");
    expect(plain).not.toContain("step by step:"); // no local variables to show
    expect(traced).toContain("  - `out` goes `[]` → `[1]` → `[1, 4]`");
    expect(traced).toContain("  - `x` goes `1` → `4`");
    expect(fallback).toContain("(a Node object)");
    expect(fallback).toContain("returns `[1]`");
    expect(fallback).not.toContain("step by step:");
    expect(r.out[0].test).toEqual(testRec("p1", [[5, 1, 4], 2], [1, 4], "[1, 4]").test);
  });
});

const answers: Record<string, string> = {
  "[1, 4]": "### Reasoning\nLet's think step by step.\n- The last 2 items of [5, 1, 4] are 1 and 4.\n- Sorted, they stay [1, 4].\nTherefore the output is `[1, 4]`.",
  "[4]": "",
  "[9]": "### Reasoning\n```python\nprint(tail([9], 1))\n```",
  "[2, 3]": "### Reasoning\nThe last two items are 3 and 2; sorting gives them in order.\nSo the output is `[3, 2]`.",
  "[7]": "### Reasoning\nOnly one item is requested and the list holds 7, so the function returns it as a one-element list.",
  "'error 1'": "### Reasoning\nThe input is odd, so the message names remainder one.\nSo the output is `'error 1'`.",
};

function script(req: ScriptRequest): ScriptedReply {
  // the template's worked example has its own "Output:" line: the test problem's is the last one
  const key = [...req.messages.at(-1)!.content.matchAll(/^Output: (.*)$/gm)].at(-1)?.[1] ?? "";
  if (key === "[0]") return { status: 500, message: "boom" };
  return { choices: [answers[key] ?? "no idea"] };
}

describe("rationalize, OpenAI backend (loopback server)", () => {
  let server: OpenAIServer;
  beforeAll(async () => {
    server = await startOpenAIServer({ script });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("keeps grounded reasoning and drops empty, code-only and contradicting rationales", async () => {
    const runDir = tmp();
    const root = { llm: { backend: "openai", base_urls: [server.url], model: "m", max_retries: 0 } };
    const recs = [
      testRec("ok", [[5, 1, 4], 2], [1, 4], "[1, 4]"),
      testRec("empty", [[4], 1], [4], "[4]"),
      testRec("code", [[9], 1], [9], "[9]"),
      testRec("contra", [[1, 3, 2], 2], [2, 3], "[2, 3]"),
      testRec("noanswer", [[7], 1], [7], "[7]"),
      testRec("fail", [[0], 1], [0], "[0]"),
      // UTGen's comparison calls any string containing "error" different, even from itself
      testRec("errstr", [[1], 1], "error 1", "'error 1'"),
    ];
    const s = standaloneContext(rationalizeStage, { root, runDir });
    const r = await runStage(rationalizeStage, s.ctx, recs);
    await s.close();
    expect(r.out.map((x) => [x.id, x.rationale_source])).toEqual([
      ["ok/bug1/ut1", "llm"],
      ["noanswer/bug1/ut1", "llm"],
      ["errstr/bug1/ut1", "llm"],
    ]);
    expect(r.out[0].rationale).toMatch(/^Let's think step by step\./);
    expect(r.out[0].rationale).not.toContain("### Reasoning");
    expect(r.drop.map((d) => [d.id, d.reason])).toEqual([
      ["empty/bug1/ut1", "empty_rationale"],
      ["code/bug1/ut1", "code_only_rationale"],
      ["contra/bug1/ut1", "rationale_contradicts_output"],
      ["fail/bug1/ut1", "llm_failed"],
    ]);
    // the prompt carries gold's output and the input without the function name
    const prompt = server.requests[0].messages.at(-1).content as string;
    expect(prompt).toContain("Input: [5, 1, 4], 2\nOutput: [1, 4]\n");

    const sent = server.requests.length;
    const again = standaloneContext(rationalizeStage, { root, runDir });
    const r2 = await runStage(rationalizeStage, again.ctx, recs.filter((x) => !x.id.startsWith("fail/")));
    await again.close();
    expect(server.requests.length).toBe(sent);
    expect(r2.out).toEqual(r.out);
  });
});
