// attack with the real sandboxed executor: the fuzz sampler finds failing inputs whose label is gold's
// executed output, separates errors and timeouts, names equivalent mutants and invalid-only items; the
// OpenAI path parses the model's `Arguments:` from scripted UTGen responses (malformed ones included),
// keeps only valid failing inputs, and a re-run makes no new request.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createExecutor, formatPyValue, outputsMatch, parseCallLiteral, type Executor } from "../pipeline/executor/index.ts";
import { attackStage } from "../stages/attack.ts";
import type { BugRec } from "../stages/perturb.ts";
import { runStage, scratchDirs, standaloneContext } from "../stages/heuristic/context.ts";
import { startOpenAIServer, type OpenAIServer, type ScriptRequest, type ScriptedReply } from "./servers/openai.ts";

let executor: Executor;
const scratch = scratchDirs("utgen-attack-");
const tmp = () => scratch.make();
beforeAll(async () => {
  executor = await createExecutor({});
});
afterAll(async () => {
  await executor?.close();
  scratch.removeAll();
});

const SUMSQ = "def sum_of_squares(n: int) -> int:\n    total = 0\n    for i in range(1, n + 1):\n        total += i * i\n    return total\n";
function bug(id: string, code: string, buggy: string, entry: string, prompt = `Implement ${entry}.`, operator = "range_bounds"): BugRec {
  return {
    id: `${id}/bug1`,
    parent_id: id,
    problem_id: id,
    source: "test",
    prompt,
    code,
    entry_point: entry,
    signature: `${entry}(...)`,
    buggy_code: buggy,
    bug: { origin: "mutation", operator, reasoning: "the loop stops one step early", line: 3 },
  };
}

const OFF_BY_ONE = bug("p/sumsq", SUMSQ, SUMSQ.replace("range(1, n + 1)", "range(1, n)"), "sum_of_squares", "Sum of squares.\nassert sum_of_squares(3) == 14");
const EQUIV = bug("p/double", "def double(x: int) -> int:\n    return x * 2\n", "def double(x: int) -> int:\n    return x + x\n", "double");
const ALWAYS_RAISES = bug("p/raise", "def f(x):\n    raise ValueError('never valid')\n", "def f(x):\n    return 1\n", "f");
// no annotations, no examples: types are probed on gold (only strings work)
const PROBED = bug("p/upper", "def shout(s):\n    return s.upper() + '!'\n", "def shout(s):\n    return s.upper()[:-1] + '!'\n", "shout");
// a required keyword-only parameter, probed on gold
const KWONLY = bug("p/kw", "def scale(a: int, *, by: int) -> int:\n    return a * by\n", "def scale(a: int, *, by: int) -> int:\n    return a + by\n", "scale");
const HANGS = bug("p/hang", "def g(n: int) -> int:\n    return n + 1\n", "def g(n: int) -> int:\n    while n > 3:\n        pass\n    return n + 1\n", "g");

describe("attack, heuristic fuzz sampler", () => {
  it("keeps failing inputs labelled with gold's executed output", async () => {
    const s = standaloneContext(attackStage, { root: { llm: { backend: "heuristic" }, attack: { max_failing: 3 } }, runDir: tmp(), executor });
    const r = await runStage(attackStage, s.ctx, [OFF_BY_ONE, PROBED, KWONLY]);
    expect(r.drop).toEqual([]);
    const kw = r.out.filter((t) => t.parent_id === "p/kw/bug1");
    expect(kw).toHaveLength(3);
    expect(kw[0].test.args_text).toMatch(/^scale\(-?\d+, by=-?\d+\)$/);
    r.out = r.out.filter((t) => t.parent_id !== "p/kw/bug1");
    const ids = r.out.map((x) => x.id);
    expect(ids).toEqual(["p/sumsq/bug1/ut1", "p/sumsq/bug1/ut2", "p/sumsq/bug1/ut3", "p/upper/bug1/ut1", "p/upper/bug1/ut2", "p/upper/bug1/ut3"]);
    expect(new Set(r.out.map((x) => x.test.args_text)).size).toBe(6); // distinct inputs
    for (const t of r.out) {
      expect(t.parent_id).toBe(t.id.replace(/\/ut\d+$/, ""));
      expect(t.test.sampler).toBe("fuzz");
      const call = parseCallLiteral(t.test.args_text, t.entry_point);
      expect(call.ok && call.args).toEqual(t.test.args);
      // independent re-execution: gold's output is the label and the buggy code disagrees
      const [g] = await executor.runCalls({ program: t.code, entryPoint: t.entry_point, inputs: [t.test.args], timeoutS: 1 });
      const [b] = await executor.runCalls({ program: t.buggy_code, entryPoint: t.entry_point, inputs: [t.test.args], timeoutS: 1 });
      expect(g.status).toBe("ok");
      expect(t.test.gold_output).toEqual(g.value);
      expect(t.test.gold_output_text).toBe(formatPyValue(g.value!));
      expect(b.status !== "ok" || !outputsMatch(b.value!, g.value!)).toBe(true);
      expect(t.test.hypothesis).toContain("stops one step early");
      expect(t.test.error_pattern).toBeTruthy();
      expect(t.test.input_reasoning).toContain(t.test.args_text);
    }
    // the example call of the description is a seed: sum_of_squares(3) fails the off-by-one code
    expect(r.out[0].test.args_text).toBe("sum_of_squares(3)");
    expect(r.out[0].test.gold_output).toBe(14);
    expect(r.out[0].test.buggy_output).toBe(5);
    expect(s.counters.fuzz_typed_by_probe).toBe(1);

    const again = await runStage(attackStage, s.ctx, [OFF_BY_ONE, PROBED]);
    expect(again).toEqual(r); // deterministic
  });

  it("counts errors and timeouts of the buggy code as failing", async () => {
    const s = standaloneContext(attackStage, { root: { llm: { backend: "heuristic" }, executor: { buggy_timeout_s: 0.3 } }, runDir: tmp(), executor });
    const r = await runStage(attackStage, s.ctx, [HANGS]);
    expect(r.out).toHaveLength(1);
    expect(r.out[0].test.buggy_status).toBe("timeout");
    expect((r.out[0].test.args.args[0] as number) > 3).toBe(true);
  });

  it("keeps only real disagreements: equal 'error' strings and NaNs are not failures, random gold is no label", async () => {
    const errs = bug("p/errs", "def e(x: int) -> str:\n    return 'error ' + str(x % 2)\n", "def e(x: int) -> str:\n    return 'error ' + str(x % 3)\n", "e");
    const nans = bug("p/nan", "def m(x: int) -> float:\n    return float('nan') if x < 5 else float(x)\n", "def m(x: int) -> float:\n    return float('nan') if x < 5 else float(x + 1)\n", "m");
    const rand = bug("p/rand", "import random\ndef r(x: int) -> int:\n    return x + random.randint(0, 10**9)\n", "def r(x: int) -> int:\n    return x - 1\n", "r");
    const s = standaloneContext(attackStage, { root: { llm: { backend: "heuristic" }, attack: { max_failing: 64 } }, runDir: tmp(), executor });
    const r = await runStage(attackStage, s.ctx, [errs, nans, rand]);
    const kept = (p: string) => r.out.filter((t) => t.parent_id === `${p}/bug1`);
    expect(kept("p/errs").length).toBeGreaterThan(0);
    for (const t of kept("p/errs")) expect(t.test.buggy_output).not.toEqual(t.test.gold_output); // 'error 0' vs 'error 0' is no failure
    expect(kept("p/nan").length).toBeGreaterThan(0);
    for (const t of kept("p/nan")) expect((t.test.args.args[0] as number) >= 5).toBe(true); // nan vs nan is no failure
    expect(kept("p/rand")).toEqual([]);
    expect(r.drop.map((d) => [d.id, d.reason])).toEqual([["p/rand/bug1", "nondeterministic_gold"]]);
    expect(s.counters.inputs_nondeterministic).toBeGreaterThan(0);

    const unchecked = standaloneContext(attackStage, { root: { llm: { backend: "heuristic" }, attack: { check_determinism: false } }, runDir: tmp(), executor });
    expect((await runStage(attackStage, unchecked.ctx, [rand])).out).toHaveLength(1);
  });

  it("a gold whose output depends on earlier calls in the batch (mutable default) gives no polluted label", async () => {
    // Standalone, acc(x) == x + 1; inside one process the hidden list grows with every call.
    const acc = bug("p/acc", "def acc(x: int, seen=[]) -> int:\n    seen.append(x)\n    return x + len(seen)\n", "def acc(x: int, seen=[]) -> int:\n    return x\n", "acc");
    const s = standaloneContext(attackStage, { root: { llm: { backend: "heuristic" }, attack: { max_failing: 64 } }, runDir: tmp(), executor });
    const r = await runStage(attackStage, s.ctx, [acc]);
    for (const t of r.out) expect(t.test.gold_output, t.test.args_text).toEqual((t.test.args.args[0] as number) + 1);
    expect(s.counters.inputs_nondeterministic).toBeGreaterThan(0);
  });

  it("drops equivalent mutants and items without any valid input", async () => {
    const s = standaloneContext(attackStage, { root: { llm: { backend: "heuristic" } }, runDir: tmp(), executor });
    const r = await runStage(attackStage, s.ctx, [EQUIV, ALWAYS_RAISES]);
    expect(r.out).toEqual([]);
    expect(r.drop.map((d) => [d.id, d.reason])).toEqual([
      ["p/double/bug1", "equivalent_mutant"],
      ["p/raise/bug1", "no_failing_input"],
    ]);
    expect(r.drop[0].detail).toMatch(/all \d+ valid inputs gave matching outputs/);
    expect(r.drop[1].detail).toMatch(/gold rejected all/);
  });
});

const ut = (args: string, output: string) =>
  [
    "## Hypothesis",
    "The loop bound looks wrong.",
    "",
    "Error Pattern: inputs where the last term matters",
    "",
    "## Unit Test",
    "",
    "### Input Arguments",
    "Take a small n.",
    `Arguments: \`\`\`${args}\`\`\``,
    "",
    "### Output",
    "The sum of squares.",
    `Output: \`\`\`${output}\`\`\``,
  ].join("\n");

const given = new Map<string, number>();
function script(req: ScriptRequest): ScriptedReply {
  const text = req.messages.at(-1)!.content;
  if (text.includes("FIRST")) return { choices: Array.from({ length: req.n }, (_, i) => ut(`sum_of_squares(${i + 2})`, "0")) };
  if (text.includes("range(1, n)")) {
    // like a sampling server, a top-up request gets the next samples, not the first ones again
    const done = given.get(text) ?? 0;
    given.set(text, done + req.n);
    return {
      choices: [
        "I cannot find a bug.", // no Arguments line
        ut("sum_of_squares(-1, [)", "0"), // unparsable literal
        ut("sum_of_squares('a')", "0"), // gold raises: invalid
        ut("sum_of_squares(0)", "0"), // valid, buggy agrees
        ut("sum_of_squares(2)", "4"), // failing (the model's output guess is wrong: gold says 5)
      ].slice(done, done + req.n),
    };
  }
  return { status: 503, message: "overloaded" };
}

describe("attack, OpenAI backend (loopback server)", () => {
  let server: OpenAIServer;
  beforeAll(async () => {
    server = await startOpenAIServer({ script });
  });
  afterAll(async () => {
    await server?.close();
  });
  const root = () => ({ llm: { backend: "openai", base_urls: [server.url], model: "test-model", max_retries: 0 }, attack: { attempts: 5 } });

  it("keeps the model's valid failing input with gold's output as the label; re-run hits the cache", async () => {
    const runDir = tmp();
    const s = standaloneContext(attackStage, { root: root(), runDir, executor });
    const r = await runStage(attackStage, s.ctx, [OFF_BY_ONE]);
    await s.close();
    expect(r.drop).toEqual([]);
    expect(r.out).toHaveLength(1);
    const t = r.out[0].test;
    expect(t.args_text).toBe("sum_of_squares(2)");
    expect(t.gold_output).toBe(5);
    expect(t.predicted_output_text).toBe("4");
    expect(t.sampler).toBe("llm");
    expect(t.hypothesis).toContain("loop bound");
    expect(t.error_pattern).toBe("inputs where the last term matters");
    expect(t.input_reasoning).toContain("small n");
    // one attempt at a time: five top-up requests of one new sample each (the failing input came last)
    expect(server.requests.map((b) => b.n)).toEqual([1, 1, 1, 1, 1]);
    expect(s.counters.requests).toBe(5);
    expect(s.counters.unparsable_samples).toBe(2);

    const sent = server.requests.length;
    const again = standaloneContext(attackStage, { root: root(), runDir, executor });
    expect(await runStage(attackStage, again.ctx, [OFF_BY_ONE])).toEqual(r);
    await again.close();
    expect(server.requests.length).toBe(sent);
  });

  it("stops asking once a failing input is found; without early_stop all attempts go in one request", async () => {
    const first = { ...OFF_BY_ONE, id: "p/first/bug1", buggy_code: OFF_BY_ONE.buggy_code + "# v2\n" };
    const early = standaloneContext(attackStage, { root: { ...root(), attack: { attempts: 5 } }, runDir: tmp(), executor });
    const before = server.requests.length;
    const r = await runStage(attackStage, early.ctx, [{ ...first, prompt: "Sum of squares. FIRST" }]);
    await early.close();
    expect(r.out).toHaveLength(1);
    expect(server.requests.length - before).toBe(1); // the first sample already fails the buggy code
    const all = standaloneContext(attackStage, { root: { ...root(), attack: { attempts: 5, early_stop: false } }, runDir: tmp(), executor });
    const r2 = await runStage(attackStage, all.ctx, [{ ...first, prompt: "Sum of squares. FIRST" }]);
    await all.close();
    expect(server.requests.at(-1).n).toBe(5);
    expect(r2.out).toEqual(r.out);
  });

  it("a server error drops the version with llm_failed; fuzz.extra still attacks it", async () => {
    const other = bug("p/other", "def h(x: int) -> int:\n    return x % 7\n", "def h(x: int) -> int:\n    return x % 6\n", "h");
    const s = standaloneContext(attackStage, { root: root(), runDir: tmp(), executor });
    const r = await runStage(attackStage, s.ctx, [other]);
    await s.close();
    expect(r.drop.map((d) => d.reason)).toEqual(["llm_failed"]);
    const withFuzz = standaloneContext(attackStage, { root: { ...root(), attack: { fuzz: { extra: true } } }, runDir: tmp(), executor });
    const r2 = await runStage(attackStage, withFuzz.ctx, [other]);
    await withFuzz.close();
    expect(r2.out).toHaveLength(1);
    expect(r2.out[0].test.sampler).toBe("fuzz");
  });
});
