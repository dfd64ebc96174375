// perturb with the real sandboxed executor: heuristic mutants (ids, compile, determinism, drops) and the
// OpenAI path against the loopback server (corruptions scripted by prompt content, malformed responses,
// n > 1, server errors, mutation extras) with a re-run answered entirely from the response cache.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createExecutor, type Executor } from "../pipeline/executor/index.ts";
import { normalizePrograms } from "../stages/common.ts";
import { MUTATION_OPERATORS, orderedMutants, perturbStage, type GoldRec } from "../stages/perturb.ts";
import { runStage, scratchDirs, standaloneContext } from "../stages/heuristic/context.ts";
import { startOpenAIServer, type OpenAIServer, type ScriptRequest, type ScriptedReply } from "./servers/openai.ts";

let executor: Executor;
const scratch = scratchDirs("utgen-perturb-");
const tmp = () => scratch.make();
beforeAll(async () => {
  executor = await createExecutor({});
});
afterAll(async () => {
  await executor?.close();
  scratch.removeAll();
});

const gold = (id: string, entry: string, code: string, prompt = `Implement ${entry}.`): GoldRec => ({
  id,
  source: "test",
  prompt,
  code,
  entry_point: entry,
  signature: `${entry}(...)`,
});

const SUMSQ = gold("p/sumsq", "sum_of_squares", "def sum_of_squares(n: int) -> int:\n    total = 0  # running sum\n    for i in range(1, n + 1):\n        total += i * i\n    return total\n");
const VOWELS = gold("p/vowels", "count_vowels", 'def count_vowels(s: str) -> int:\n    count = 0\n    for ch in s.lower():\n        if ch in "aeiou":\n            count += 1\n    return count\n');
const CONST = gold("p/const", "nothing", "def nothing():\n    pass\n");
const BROKEN = gold("p/broken", "f", "def f(:\n    return 1\n");

describe("perturb, heuristic backend", () => {
  it("emits n_bugs compiled mutants per item with lineage ids, deterministically", async () => {
    const root = { llm: { backend: "heuristic" }, perturb: { n_bugs: 3 } };
    const s = standaloneContext(perturbStage, { root, runDir: tmp(), executor });
    const a = await runStage(perturbStage, s.ctx, [SUMSQ, VOWELS]);
    expect(a.drop).toEqual([]);
    expect(a.out.map((r) => r.id)).toEqual(["p/sumsq/bug1", "p/sumsq/bug2", "p/sumsq/bug3", "p/vowels/bug1", "p/vowels/bug2", "p/vowels/bug3"]);
    for (const r of a.out) {
      const g = r.parent_id === SUMSQ.id ? SUMSQ : VOWELS;
      expect(r.problem_id).toBe(g.id);
      expect(r.code).toBe(g.code);
      expect(r.bug.origin).toBe("mutation");
      expect(r.bug.operator).toBeTruthy();
      expect(r.bug.reasoning).toBeTruthy();
      const chk = await executor.checkProgram(r.buggy_code, { timeoutS: 5 });
      expect(chk.status).toBe("ok");
      expect(chk.functions.map((f) => f.name)).toContain(g.entry_point);
    }
    // versions of one item differ from gold and from each other
    const norms = await normalizePrograms(executor, [SUMSQ.code, ...a.out.slice(0, 3).map((r) => r.buggy_code)]);
    expect(new Set(norms).size).toBe(4);
    // operators are diversified round-robin
    expect(new Set(a.out.slice(0, 3).map((r) => r.bug.operator)).size).toBe(3);

    const b = await runStage(perturbStage, s.ctx, [SUMSQ, VOWELS]);
    expect(b).toEqual(a);
    const other = standaloneContext(perturbStage, { root: { ...root, perturb: { n_bugs: 3, seed: 7 } }, runDir: tmp(), executor });
    const c = await runStage(perturbStage, other.ctx, [SUMSQ, VOWELS]);
    expect(c.out.map((r) => r.buggy_code)).not.toEqual(a.out.map((r) => r.buggy_code));
  });

  it("drops items with nothing to mutate or unparsable gold, with named reasons", async () => {
    const s = standaloneContext(perturbStage, { root: { llm: { backend: "heuristic" } }, runDir: tmp(), executor });
    const r = await runStage(perturbStage, s.ctx, [CONST, BROKEN]);
    expect(r.out).toEqual([]);
    expect(r.drop.map((d) => [d.id, d.reason])).toEqual([
      ["p/const", "no_mutation_site"],
      ["p/broken", "gold_error"],
    ]);
  });

  it("restricts mutants to the configured operators", async () => {
    const root = { llm: { backend: "heuristic" }, perturb: { n_bugs: 2, mutation: { operators: ["range_bounds"] } } };
    const s = standaloneContext(perturbStage, { root, runDir: tmp(), executor });
    const r = await runStage(perturbStage, s.ctx, [SUMSQ]);
    expect(r.out).toHaveLength(2);
    expect(r.out.every((x) => x.bug.operator === "range_bounds")).toBe(true);
  });
});

const fence = (code: string) => "```python\n" + code + "```";
const corruption = (reasoning: string, code: string) => `${reasoning}\n\n## Incorrect Code Solution\n${fence(code)}\n`;

/** Corruption responses keyed by the gold item they were asked about. */
const llmAnswers = new Map<string, string>();
function script(req: ScriptRequest): ScriptedReply {
  const text = req.messages.at(-1)!.content;
  for (const [k, v] of llmAnswers) if (text.includes(k)) return { choices: Array.from({ length: req.n }, () => v) };
  if (text.includes("def sum_of_squares")) {
    return {
      choices: [
        corruption("The loop stops before n, so the last square is missing.", SUMSQ.code.replace("range(1, n + 1):", "range(1, n):  # BUG: stops early")),
        "I would rather not write any code for this.",
      ].slice(0, req.n),
    };
  }
  if (text.includes("def count_vowels")) {
    return {
      choices: [
        // same program as gold after normalisation (comment and docstring only)
        corruption("Looks different.", '"""Doc."""\n' + VOWELS.code.replace("count = 0", "count = 0  # start")),
        corruption("Broken syntax.", "def count_vowels(s: str) -> int\n    return 0\n"),
        corruption("Renamed it.", VOWELS.code.replace("def count_vowels", "def count_vowel")),
        corruption("Raises at import.", "raise ValueError('boom')\n" + VOWELS.code),
      ].slice(0, req.n),
    };
  }
  return { status: 500, message: "boom" };
}

describe("perturb, OpenAI backend (loopback server)", () => {
  let server: OpenAIServer;
  beforeAll(async () => {
    server = await startOpenAIServer({ script });
  });
  afterAll(async () => {
    await server?.close();
  });

  const rootFor = (n: number, extra = 0) => ({
    llm: { backend: "openai", base_urls: [server.url], model: "test-model", max_retries: 0, temperature: 0.8 },
    perturb: { n_bugs: n, mutation: { extra } },
  });

  it("keeps valid corruptions, drops each bad one with its reason, and re-runs from the cache", async () => {
    const runDir = tmp();
    const s = standaloneContext(perturbStage, { root: rootFor(2), runDir, executor });
    const r = await runStage(perturbStage, s.ctx, [SUMSQ]);
    await s.close();
    expect(r.out.map((x) => x.id)).toEqual(["p/sumsq/bug1"]);
    expect(r.out[0].buggy_code).toContain("range(1, n):\n"); // the comment naming the bug is gone
    expect(r.out[0].buggy_code).toContain("total = 0  # running sum"); // gold's own comment stays
    expect(s.counters.comments_stripped).toBe(1);
    expect(r.out[0].bug).toEqual({ origin: "llm", reasoning: expect.stringContaining("last square is missing") });
    expect(r.drop).toHaveLength(1);
    expect(r.drop[0].id).toBe("p/sumsq/bug2");
    expect(r.drop[0].reason).toMatch(/no_code|unparsable/);
    expect(server.requests.at(-1).n).toBe(2);
    expect(s.counters.requests).toBe(2);

    const sent = server.requests.length;
    const again = standaloneContext(perturbStage, { root: rootFor(2), runDir, executor });
    const r2 = await runStage(perturbStage, again.ctx, [SUMSQ]);
    await again.close();
    expect(server.requests.length).toBe(sent); // every sample came from the cache
    expect(again.counters.cache_hits).toBe(2);
    expect(r2).toEqual(r);
  });

  it("names identical, non-compiling, entry-less and crashing versions", async () => {
    const s = standaloneContext(perturbStage, { root: rootFor(4), runDir: tmp(), executor });
    const r = await runStage(perturbStage, s.ctx, [VOWELS]);
    await s.close();
    expect(r.out).toEqual([]);
    expect(r.drop.map((d) => [d.id, d.reason])).toEqual([
      ["p/vowels/bug1", "identical_to_gold"],
      ["p/vowels/bug2", "compile_error"],
      ["p/vowels/bug3", "missing_entry_point"],
      ["p/vowels/bug4", "compile_error"],
    ]);
    expect(r.drop[3].detail).toMatch(/ValueError/);
  });

  it("mutation extras never repeat a bug the model already wrote", async () => {
    const tri = gold("p/tri", "tri", "def tri(n):\n    return n * (n + 1) // 2\n");
    const [firstMutant] = await orderedMutants(executor, tri, MUTATION_OPERATORS, 0);
    llmAnswers.set("def tri(n)", corruption("Same as the first mutant.", firstMutant.code));
    const s = standaloneContext(perturbStage, { root: rootFor(1, 1), runDir: tmp(), executor });
    const r = await runStage(perturbStage, s.ctx, [tri]);
    await s.close();
    expect(r.out.map((x) => [x.id, x.bug.origin])).toEqual([
      ["p/tri/bug1", "llm"],
      ["p/tri/bug2", "mutation"],
    ]);
    expect(r.out[0].buggy_code.trim()).toBe(firstMutant.code.trim());
    expect(r.out[1].buggy_code.trim()).not.toBe(firstMutant.code.trim());
  });

  it("server errors drop with llm_failed; mutation extras still add bugs", async () => {
    const other = gold("p/other", "double", "def double(x):\n    return x * 2\n");
    const s = standaloneContext(perturbStage, { root: rootFor(2, 1), runDir: tmp(), executor });
    const r = await runStage(perturbStage, s.ctx, [other]);
    await s.close();
    expect(r.drop.map((d) => [d.id, d.reason])).toEqual([
      ["p/other/bug1", "llm_failed"],
      ["p/other/bug2", "llm_failed"],
    ]);
    expect(r.out.map((x) => [x.id, x.bug.origin])).toEqual([["p/other/bug3", "mutation"]]);
    expect(s.counters.failures).toBe(1);
  });
});
