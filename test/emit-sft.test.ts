// emit-sft: the example format (the validate stage's parser reads back exactly the input and gold output),
// messages and prompt-completion files, the deterministic split by problem (never a problem on both
// sides), valid.problems.jsonl in the UTGenDebug format, and the data card.
import { afterAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { parseCallLiteral, parseLiteral } from "../pipeline/executor/index.ts";
import { parseUnitTest } from "../stages/parsers.ts";
import { emitSftStage, splitPoint, validProblems, type SftRec } from "../stages/emit-sft.ts";
import type { RationaleRec } from "../stages/rationalize.ts";
import { runStage, scratchDirs, standaloneContext } from "../stages/heuristic/context.ts";

const scratch = scratchDirs("utgen-emit-");
const tmp = () => scratch.make();
afterAll(() => {
  scratch.removeAll();
});

function rec(problem: number, bug: number, ut: number, source = "src/a"): RationaleRec {
  const id = `org/ds_${problem}`; // filter ids may contain slashes
  const args = [[problem, 2, 3], "x y"];
  return {
    id: `${id}/bug${bug}/ut${ut}`,
    parent_id: `${id}/bug${bug}`,
    problem_id: id,
    source,
    prompt: `Task ${problem}: count things.`,
    code: `def f(xs, s):\n    return len(xs) + ${problem}\n`,
    entry_point: "f",
    signature: "f(xs, s)",
    buggy_code: `def f(xs, s):\n    return len(xs) + ${problem + bug}\n`,
    bug: { origin: "mutation", operator: "constant_off_by_one", reasoning: "the constant is off by one" },
    test: {
      args_text: `f([${problem}, 2, 3], 'x y')`,
      args: { args },
      gold_output: { $tuple: [problem + 3, "a```b"] },
      gold_output_text: `(${problem + 3}, 'a\`\`\`b')`,
      buggy_status: "ok",
      sampler: "fuzz",
      hypothesis: "The constant is wrong.",
      error_pattern: "any input",
      input_reasoning: "Any list works.",
    },
    rationale: "Let's think step by step.\n- It counts 3 items.",
    rationale_source: "template",
  };
}

function readJsonl(file: string): any[] {
  return readFileSync(file, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
}

describe("split", () => {
  it("is a deterministic function of problem id and seed, with both sides non-empty", () => {
    const ids = Array.from({ length: 200 }, (_, i) => `p${i}`);
    const a = validProblems(ids, 0.1, 0);
    expect(validProblems([...ids].reverse(), 0.1, 0)).toEqual(a);
    expect(a.size).toBeGreaterThan(8);
    expect(a.size).toBeLessThan(35);
    for (const id of ids) expect(a.has(id)).toBe(splitPoint(id, 0) < 0.1);
    expect(validProblems(ids, 0.1, 1)).not.toEqual(a);
    // tiny sets still get one held-out problem and keep one for training
    expect(validProblems(["a", "b"], 0.1, 0).size).toBe(1);
    expect(validProblems(["a", "b"], 1, 0).size).toBe(1);
    expect(validProblems(["a"], 0.1, 0).size).toBe(0);
    expect(validProblems(["a", "b"], 0, 0).size).toBe(0);
  });
});

describe("emit-sft", () => {
  it("writes parseable chat and prompt-completion examples, split by problem, and a data card", async () => {
    const runDir = tmp();
    const recs = [];
    for (let p = 0; p < 12; p++) for (let b = 1; b <= 2; b++) recs.push(rec(p, b, 1, p % 3 ? "src/a" : "src/b"));
    recs.push(rec(0, 1, 2));
    // a model sample without hypothesis / error pattern: filled from the templates, and marked
    const bare = rec(0, 2, 2);
    bare.test = { ...bare.test, sampler: "llm", hypothesis: undefined, error_pattern: "  " };
    recs.push(bare);
    const root = { "emit-sft": { valid_fraction: 0.25, system_prompt: "You write unit tests." } };
    const s = standaloneContext(emitSftStage, { root, runDir });
    const r = await runStage(emitSftStage, s.ctx, recs);
    expect(r.drop).toEqual([]);
    expect(r.out.map((x) => x.id)).toEqual(recs.map((x) => x.id));
    await emitSftStage.finalize!(s.ctx, async function* () {
      yield* r.out as SftRec[];
    });

    const dir = path.join(runDir, "emit-sft", "sft");
    const train = readJsonl(path.join(dir, "train.messages.jsonl"));
    const valid = readJsonl(path.join(dir, "valid.messages.jsonl"));
    expect(train.length + valid.length).toBe(recs.length);
    expect(valid.length).toBeGreaterThan(0);
    const tp = new Set(train.map((x) => x.metadata.problem_id));
    for (const v of valid) expect(tp.has(v.metadata.problem_id)).toBe(false);

    for (const ex of [...train, ...valid]) {
      expect(ex.messages.map((m: any) => m.role)).toEqual(["system", "user", "assistant"]);
      const user = ex.messages[1].content as string;
      expect(user).toContain("You are given a Python function `f(xs, s)`");
      expect(user).toMatch(/return len\(xs\) \+ \d+/);
      const src = recs.find((x) => x.id === ex.metadata.id)!;
      expect(user).toContain(src.buggy_code.trim());
      expect(user).not.toContain(src.code.trim());
      const a = ex.messages[2].content as string;
      const pu = parseUnitTest(a, "f");
      expect(pu.ok).toBe(true);
      if (!pu.ok) continue;
      if (ex.metadata.id === bare.id) {
        expect(ex.metadata.template_filled).toEqual(["hypothesis", "error_pattern"]);
        expect(pu.hypothesis).toContain("the constant is off by one");
        expect(pu.errorPattern).toBe("inputs whose result depends on the exact value of that constant");
        expect(pu.inputReasoning).toBe("Any list works.");
      } else {
        expect(a).toMatch(/^## Hypothesis\nThe constant is wrong\.\n\nError Pattern: any input\n/);
        expect(pu.hypothesis).toBe("The constant is wrong.");
        expect(pu.errorPattern).toBe("any input");
        expect(ex.metadata.template_filled).toBeUndefined();
      }
      const call = parseCallLiteral(pu.argsText, "f");
      expect(call.ok && call.args).toEqual(src.test.args);
      const out = parseLiteral(pu.outputText!);
      expect(out.ok && out.value).toEqual(src.test.gold_output);
      expect(ex.metadata).toMatchObject({ bug_id: src.parent_id, problem_id: src.problem_id, source: src.source, sampler: src.test.sampler, rationale_source: "template", bug_origin: "mutation" });
    }

    const pc = readJsonl(path.join(dir, "train.prompt_completion.jsonl"));
    expect(pc.map((x) => x.metadata.id)).toEqual(train.map((x) => x.metadata.id));
    expect(pc[0].prompt.map((m: any) => m.role)).toEqual(["system", "user"]);
    expect(pc[0].completion).toEqual([train[0].messages[2]]);

    const problems = readJsonl(path.join(dir, "valid.problems.jsonl"));
    expect(problems.map((p) => p.task_id).sort()).toEqual([...new Set(valid.map((v) => v.metadata.bug_id))].sort());
    for (const p of problems) {
      const src = recs.find((x) => x.parent_id === p.task_id)!;
      expect(p).toEqual({ task_id: src.parent_id, prompt: src.prompt, signature: "f(xs, s)", entry_point: "f", canonical_solution: src.code, code: src.buggy_code });
    }

    const card = readFileSync(path.join(dir, "data_card.md"), "utf8");
    expect(card).toContain(`| train | ${train.length} |`);
    expect(card).toContain(`| valid | ${valid.length} |`);
    expect(card).toMatch(/\| src\/a \| \d+ \| \d+ \|/);
    expect(card).toContain("mutation operators: constant_off_by_one 26");
    expect(card).toContain("Generation setting: heuristic backend (no model wrote the data).");
  });

  it("warns when the set is distilled (what --set llm.model alone makes of a self-generation config), not when self-generated", async () => {
    const recs: RationaleRec[] = [];
    for (let p = 0; p < 4; p++) recs.push(rec(p, 1, 1));
    const emit = async (generator: string) => {
      const runDir = tmp();
      const root = { llm: { backend: "openai", model: generator }, train: { name: "t", model_path: "Qwen/Qwen2.5-Coder-7B-Instruct" }, "emit-sft": { valid_fraction: 0.25 } };
      const logs: string[] = [];
      const s = standaloneContext(emitSftStage, { root, runDir, log: (l: string) => logs.push(l) });
      const r = await runStage(emitSftStage, s.ctx, recs);
      await emitSftStage.finalize!(s.ctx, async function* () {
        yield* r.out as SftRec[];
      });
      return { logs, card: readFileSync(path.join(runDir, "emit-sft", "sft", "data_card.md"), "utf8") };
    };
    const distilled = await emit("Qwen/Qwen2.5-Coder-32B-Instruct");
    expect(distilled.card).toContain("Generation setting: distilled: Qwen/Qwen2.5-Coder-32B-Instruct wrote the data");
    expect(distilled.logs.filter((l) => l.includes("distilled"))).toEqual([
      "emit-sft: the set is distilled: Qwen/Qwen2.5-Coder-32B-Instruct wrote the data; train fine-tunes Qwen/Qwen2.5-Coder-7B-Instruct (App. B has the trained model write its own). For the paper's recipe set llm.model and train.model_path to the same model.",
    ]);
    const own = await emit("Qwen/Qwen2.5-Coder-7B-Instruct");
    expect(own.card).toContain("Generation setting: self-generated (App. B)");
    expect(own.logs.filter((l) => l.includes("distilled"))).toEqual([]);
  });
});
