/**
 * The reference's text rules as UTDebug applies them (stages/debug/text.ts, problems.ts, config.ts,
 * buildut.ts): code and output extraction, str() formatting of the feedback turn, the No-UT decision rule,
 * the prompt turns byte for byte (the expected strings are the released scripts' templates formatted with
 * Python's str.format), the vote threshold and the vote tally, and the lock-step barrier.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { parquetWriteBuffer } from "hyparquet-writer";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../pipeline/config.ts";
import { tallyVotes } from "../stages/debug/buildut.ts";
import { voteThreshold } from "../stages/debug/config.ts";
import { exampleOf } from "../stages/debug/debugger.ts";
import { codeGenerationTurn, heDataLines, loadDatasetFlag, loadDebugTemplates, readDebugProblems, renderDebug, testFormat, type DebugProblem } from "../stages/debug/problems.ts";
import { RoundBarrier } from "../stages/debug/run.ts";
import { argsStr, execOutputStr, extractCode, extractOutputText, noUtSaysCorrect, pyStr, upToOutput, voteValue } from "../stages/debug/text.ts";

const MINI = path.resolve(__dirname, "fixtures/utdebug/mini.jsonl");

describe("extract_code", () => {
  it("takes the first ```python block, then the first ``` block, else the text before the first ```", () => {
    expect(extractCode("Fix:\n```python\ndef f():\n    return 1\n```\nand\n```python\nx = 2\n```")).toBe("\ndef f():\n    return 1\n");
    expect(extractCode("```py\ndef f(): pass\n```")).toBe("py\ndef f(): pass\n"); // the tag stays, as in the reference
    expect(extractCode("```\ndef g(): pass\n```")).toBe("\ndef g(): pass\n");
    expect(extractCode("def h(): pass\n```python\nunclosed")).toBe("def h(): pass\n");
    expect(extractCode("no fences at all")).toBe("no fences at all");
  });
});

describe("extract_output and votes", () => {
  it("reads the last ``` span after the last 'utput', else the last `…` span", () => {
    expect(extractOutputText("### Output\nreasoning `x`\nOutput: ```\n[1, 2]\n```")).toBe("[1, 2]");
    expect(extractOutputText("Output: `True`")).toBe("True");
    expect(extractOutputText("Output: ```3``` then Output: ```4```")).toBe("4");
    expect(extractOutputText("Output: 5")).toBeUndefined();
    expect(voteValue("Output: ```'ab'```")).toEqual({ value: "ab", text: "'ab'" });
    expect(voteValue("Output: ```sorted([2, 1])```")).toBeUndefined(); // an expression is not a literal: no vote
  });

  it("cuts the generator's turn before its output section (the reference's split('### Output', 1)[0])", () => {
    expect(upToOutput("## Unit Test\nArguments: ```f(1)```\n### Output\nOutput: ```2```")).toBe("## Unit Test\nArguments: ```f(1)```\n");
    expect(upToOutput("Arguments: f(1)\nOutput: 2")).toBe("Arguments: f(1)\nOutput: 2");
  });

  it("counts a vote threshold as share × k, ceil (paper) or Python's round half to even (reference)", () => {
    expect(voteThreshold(0.5, 8, "ceil")).toBe(4);
    expect(voteThreshold(0.5, 8, "python_round")).toBe(4);
    expect(voteThreshold(0.5, 5, "ceil")).toBe(3);
    expect(voteThreshold(0.5, 5, "python_round")).toBe(2);
    expect(voteThreshold(0.5, 7, "python_round")).toBe(4);
    expect(voteThreshold(0.6, 8, "ceil")).toBe(5);
  });

  it("groups votes by the comparison or by str(), biggest first, ties by first appearance", () => {
    const v = [1, { $float: "1.0" }, 2, 2, "1"];
    expect(tallyVotes(v, "compare", false)).toMatchObject({ winner: 1, winnerVotes: 2, tally: [["1", 2], ["2", 2], ["'1'", 1]] });
    // str() keys: 1 and '1' print alike (the reference's quirk), 1.0 does not.
    expect(tallyVotes(v, "str", false)).toMatchObject({ winner: 1, winnerVotes: 2, tally: [["1", 2], ["2", 2], ["1.0", 1]] });
    expect(tallyVotes([[1, 2], [2, 1]], "compare", true).winnerVotes).toBe(2);
    expect(tallyVotes([[1, 2], [2, 1]], "compare", false).winnerVotes).toBe(1);
    expect(tallyVotes([], "compare", false)).toEqual({ winnerVotes: 0, tally: [] });
  });
});

describe("feedback formatting (Python str())", () => {
  it("prints values as str() does and errors as 'Error: ' + str(e)", () => {
    expect(argsStr({ args: [1, "a", [2.5]] as any })).toBe("[1, 'a', [2.5]]");
    expect(argsStr({ args: [{ $tuple: [1] }, null, true] })).toBe("[(1,), None, True]");
    expect(pyStr("abc")).toBe("abc");
    expect(pyStr(["abc"])).toBe("['abc']");
    expect(pyStr({ $float: "inf" })).toBe("inf");
    expect(pyStr([{ $float: "-inf" }, { $float: "1e+20" }])).toBe("[-inf, 1e+20]");
    expect(pyStr({ $dict: [["k", { $set: [1] }]] })).toBe("{'k': {1}}");
    expect(execOutputStr({ status: "ok", value: "x", ms: 1 }, "f")).toBe("x");
    expect(execOutputStr({ status: "error", errorType: "ZeroDivisionError", message: "division by zero", ms: 1 }, "f")).toBe("Error: division by zero");
    expect(execOutputStr({ status: "error", errorType: "SyntaxError", message: "module level: expected ':' (<program>, line 2)", ms: 1 }, "f")).toBe("Error: expected ':' (<string>, line 2)");
    expect(execOutputStr({ status: "timeout", message: "call exceeded 2s", ms: 2000 }, "f")).toBe("Error: Timed out!");
    expect(execOutputStr({ status: "crash", message: "child killed", ms: 0 }, "f")).toBe("Execution of f crashed");
  });
});

describe("the No-UT decision rule", () => {
  it("is correct when the text after 'Feedback: ' says 'code is correct' or never says 'code is wrong'", () => {
    expect(noUtSaysCorrect("Feedback: fine. The above code is correct.")).toBe(true);
    expect(noUtSaysCorrect("Feedback: broken. The above code is wrong, please fix it.")).toBe(false);
    expect(noUtSaysCorrect("I think the code is wrong.\nFeedback: actually it is fine.")).toBe(true);
    expect(noUtSaysCorrect("The above code is wrong, please fix it.")).toBe(false);
    expect(noUtSaysCorrect("No verdict given.")).toBe(true);
  });
});

const problem: DebugProblem = {
  taskId: "t1",
  prompt: "Write a function to add one.",
  signature: "add_one(x: int)",
  entryPoint: "add_one",
  gold: "def add_one(x):\n    return x + 1\n",
  buggy: "def add_one(x):\n    return x\n",
  test: "",
  testList: ["assert add_one(1) == 2", "assert add_one(2) == 3"],
  useSet: false,
};

describe("the reference's prompt turns, byte for byte", () => {
  it("code generation (MBPP with the first test_list example; HumanEval), UT feedback, No-UT critique, output-only question", async () => {
    const t = await loadDebugTemplates();
    expect(codeGenerationTurn(t, problem, "auto")).toBe(
      '\nWrite Python code to solve the task.\nWrite a Python function `add_one(x: int)` to solve the following problem: Present code in ```python```\n```python\n"""\nWrite a function to add one.\n>>> assert add_one(1) == 2\n"""\n```\n',
    );
    expect(codeGenerationTurn(t, { ...problem, testList: [], prompt: "def add_one(x):\n    \"\"\"Add one.\"\"\"\n" }, "auto")).toBe(
      '\nWrite Python code to solve the task.\nWrite a Python function `add_one(x: int)` to solve the following problem: Present code in ```python```\n```python\ndef add_one(x):\n    """Add one."""\n\n```\n',
    );
    expect(renderDebug(t.ut_feedback, { wrong_testcase_input: "[1]", wrong_testcase_output: "1", wrong_testcase_expected: "2" })).toBe(
      "The above code is incorrect and does not pass the testcase.\nInput: [1]\nOutput: 1\nExpected: 2\n\n",
    );
    expect(renderDebug(t.no_ut_feedback, { prompt: "Add one.", code: "\ndef f(x):\n    return x\n" })).toBe(
      '\n# Your Task\n\n## Task\nAdd one.\n\n## Code:\n```\n\ndef f(x):\n    return x\n\n```\n\nBased on given task and code, generate feedback that decides whether the code is correct or wrong in the format ```Feedback: <your feedback>```.\nAlways end your feedback with the line "The above code is correct." if it is correct, otherwise the feedback should end with "The above code is wrong, please fix it."\n',
    );
    expect(renderDebug(t.unit_output, { signature: "f(x)", description: "Add one.", entry_point: "f", unit_input: "1" })).toBe(
      "\nQuestion: \n\nAssume there exists a python function `f(x)` to solve the task: Add one.\n\nA user calls this functions with the input: f(1).\nBased on the task objective of the function and the user's input, what is the output of the function if implemented **correctly**?\n\nMake sure your data type of the final answer matches the expected output type of the function.\nFirst explain your reasoning and in the end format your final answer as:\n\nOutput: ```<your final answer>```\n",
    );
  });
});

describe("private tests and the prompt's example", () => {
  it("recognises MBPP+ and HumanEval+ test texts and takes HE's two data lines after the last check()", () => {
    expect(testFormat("inputs = [[1]]\nresults = [2]\nfor i, (inp, exp) in enumerate(zip(inputs, results)):\n    assertion(f(*inp), exp, 0)\n")).toBe("mbpp");
    const he = "def helper():\n    pass\n\ndef check(candidate):\n    inputs = [[1]]\n    results = [2]\n    for i, (inp, exp) in enumerate(zip(inputs, results)):\n        assertion(candidate(*inp), exp, 0)\n";
    expect(testFormat(he)).toBe("humaneval");
    expect(heDataLines(he)).toBe("inputs = [[1]]\nresults = [2]");
    expect(testFormat("assert f(1) == 2")).toBeUndefined();
  });

  it("parses the MBPP example assertion the heuristic critic checks", () => {
    expect(exampleOf(problem)).toEqual({ args: { args: [1] }, expected: 2 });
    expect(exampleOf({ ...problem, testList: ["assert add_one('a)') == 'b'"] })).toEqual({ args: { args: ["a)"] }, expected: "b" });
    expect(exampleOf({ ...problem, testList: ["assert math.isclose(add_one(1), 2)"] })).toBeUndefined();
    expect(exampleOf({ ...problem, testList: [] })).toBeUndefined();
  });
});

describe("reading sets", () => {
  it("reads the Hub's parquet files as the JSONL rows (int64 task ids as numbers)", async () => {
    const rows = readFileSync(MINI, "utf8").trim().split("\n").map((l) => JSON.parse(l));
    const cols = ["prompt", "signature", "entry_point", "canonical_solution", "code", "test"];
    const buf = parquetWriteBuffer({
      columnData: [
        { name: "task_id", data: rows.map((_, i) => BigInt(100 + i)), type: "INT64" },
        ...cols.map((c) => ({ name: c, data: rows.map((r) => r[c]), type: "STRING" as const })),
      ],
    });
    const dir = mkdtempSync(path.join(tmpdir(), "utdebug-parquet-"));
    try {
      const file = path.join(dir, "mbpp_plus_fix_hard-00000-of-00001.parquet");
      writeFileSync(file, Buffer.from(buf));
      const set = await loadDatasetFlag(file);
      expect(set.name).toBe("mbpp_plus_fix_hard");
      expect(set.problems.map((p) => p.taskId)).toEqual(["100", "101", "102", "103"]);
      const fromJsonl = await readDebugProblems(MINI);
      expect(set.problems.map((p) => ({ ...p, taskId: "", testList: [] }))).toEqual(fromJsonl.map((p) => ({ ...p, taskId: "", testList: [] })));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("names what is wrong with a row in one line", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "utdebug-rows-"));
    try {
      const file = path.join(dir, "bad.jsonl");
      writeFileSync(file, JSON.stringify({ task_id: 1, prompt: "p", signature: "f(x)", entry_point: "f", canonical_solution: "def f(x): return x", code: "def f(x): return 0" }) + "\n");
      await expect(readDebugProblems(file)).rejects.toThrow(/bad\.jsonl:1: field "test" is missing or empty/);
      await expect(readDebugProblems(path.join(dir, "none.jsonl"))).rejects.toThrow(/not found/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the shipped configs", () => {
  it("configs/paper/utdebug-*.yaml and bon-*.yaml and the demo config validate", async () => {
    const dir = path.resolve(__dirname, "../configs/paper");
    const files = readdirSync(dir).filter((f) => /^(utdebug|bon)-.*\.yaml$/.test(f));
    expect(files.length).toBeGreaterThanOrEqual(4);
    for (const f of [...files.map((x) => path.join(dir, x)), path.resolve(__dirname, "../configs/demo.yaml")]) {
      const { root } = await loadConfig(f);
      expect(root.utdebug.sets.length + root.rerank.sets.length, f).toBeGreaterThan(0);
    }
  });
});

describe("the lock-step barrier", () => {
  it("opens a round when every running job has arrived or left", async () => {
    const b = new RoundBarrier(3);
    const seen: string[] = [];
    const job = async (name: string, rounds: number) => {
      for (let r = 0; r < rounds; r++) {
        await b.arrive(r);
        seen.push(`${name}${r}`);
        await new Promise((res) => setTimeout(res, name === "a" ? 5 : 1));
      }
      b.leave();
    };
    await Promise.all([job("a", 3), job("b", 1), job("c", 3)]);
    // Nobody starts round 1 before everyone has finished round 0; b leaves after round 0.
    const firstR1 = seen.findIndex((x) => x.endsWith("1"));
    expect(seen.slice(0, firstR1).sort()).toEqual(["a0", "b0", "c0"]);
    expect(seen.filter((x) => x.endsWith("2")).sort()).toEqual(["a2", "c2"]);
  });
});
