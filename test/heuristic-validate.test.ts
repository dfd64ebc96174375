// The heuristic backend as a unit-test generator: validate and select run offline. The description's examples
// are read as safe literals, gold is never looked at, and `--from filter --to select` on configs/demo.yaml
// goes end to end with no model and writes the report (README "Try everything offline").
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, readFileSync, readlinkSync } from "node:fs";
import * as path from "node:path";
import { main } from "../pipeline/cli.ts";
import { createExecutor, type SandboxExecutor } from "../pipeline/executor/index.ts";
import { scratchDirs } from "../stages/heuristic/context.ts";
import { descriptionExamples, heuristicResponses } from "../stages/validation/heuristic.ts";
import { parseUnitTest } from "../stages/parsers.ts";

const ROOT = path.resolve(__dirname, "..");
const scratch = scratchDirs("utgen-hval-");
let ex: SandboxExecutor;
beforeAll(async () => {
  ex = await createExecutor({ workers: 1 });
});
afterAll(async () => {
  await ex?.close();
  scratch.removeAll();
});

describe("description examples", () => {
  it("reads assert / returns / >>> / Input-Output examples as literals, skipping the def line and prose", () => {
    const d = [
      "Write `def add(a: int, b: list) -> int:` that adds.",
      "```python\nassert add(1, [2, 3]) == 6\n```",
      "For instance add(2, []) returns 2.",
      ">>> add(0, [1])\n1",
      "Calling add(x, y) is easy.", // not literals: skipped
      "assert add(9, [__import__('os')]) == 1", // not a literal: skipped, never evaluated
    ].join("\n");
    const ex = descriptionExamples(d, "add");
    expect(ex.map((e) => [e.argsText, e.expectedText])).toEqual([
      ["add(1, [2, 3])", "6"],
      ["add(2, [])", "2"],
      ["add(0, [1])", "1"],
    ]);
    const io = descriptionExamples("def best(nums):\n\nInput: [-3, -1]\nOutput: -1\n\nInput: nums = [1, 2]\nOutput: 3\n", "best");
    expect(io.map((e) => [e.argsText, e.expectedText])).toEqual([
      ["best([-3, -1])", "-1"],
      ["best([1, 2])", "3"],
    ]);
  });

  it("never uses gold: the same answers whatever gold is; a later step exposes the bug more often", async () => {
    const p = {
      taskId: "t1",
      prompt: "",
      description: "Write `def sq(n: int) -> int` returning n squared.\nassert sq(3) == 9\nassert sq(0) == 0\nassert sq(-2) == 4",
      signature: "def sq(n: int) -> int",
      entryPoint: "sq",
      gold: "def sq(n):\n    return n * n\n",
      buggy: "def sq(n):\n    return n * abs(n) if n > 0 else n\n", // wrong for -2 only
      useSet: false,
    };
    const deps = { executor: ex, timeoutS: 2 };
    const model = { kind: "checkpoint" as const, level: 3, of: 3 };
    const a = await heuristicResponses(deps, model, "m", p, 6, 3);
    const b = await heuristicResponses(deps, model, "m", { ...p, gold: "raise SystemExit" }, 6, 3);
    expect(b).toEqual(a);
    // the fully checking step answers with the one example the buggy code fails, stated output
    for (const t of a) {
      const u = parseUnitTest(t, "sq");
      expect(u.ok && [u.argsText, u.outputText]).toEqual(["sq(-2)", "4"]);
    }
    // prompted trusts the code: its output is the buggy code's
    const pr = await heuristicResponses(deps, { kind: "prompted" }, "m", p, 12, 3);
    for (const t of pr) {
      const u = parseUnitTest(t, "sq");
      expect(u.ok).toBe(true);
      if (u.ok && u.argsText === "sq(-2)") expect(u.outputText).toBe("-2");
    }
    // no example in the description: a response without a test
    const none = await heuristicResponses(deps, { kind: "random" }, "m", { ...p, description: "square it" }, 2, 1);
    expect(none.every((t) => !parseUnitTest(t, "sq").ok)).toBe(true);
  });
});

describe("the demo config end to end offline", () => {
  it("--from filter --to select: heuristic checkpoints, validate, select and the report, no model", async () => {
    const runDir = path.join(scratch.make(), "run");
    const out: string[] = [];
    const err: string[] = [];
    const code = await main(["--config", path.join(ROOT, "configs/demo.yaml"), "--run-dir", runDir, "--from", "filter", "--to", "select"], {
      stdout: (l) => out.push(l),
      stderr: (l) => err.push(l),
    });
    expect(code, err.join("\n")).toBe(0);
    const reg = JSON.parse(readFileSync(path.join(runDir, "train/demo/checkpoints.json"), "utf8"));
    expect(reg.checkpoints.map((c: any) => c.name)).toEqual(["demo-step1", "demo-step2", "demo-step3"]);
    const rate = (m: string) => JSON.parse(readFileSync(path.join(runDir, "validate", `${m}.json`), "utf8")).sets.heldout.summary.metrics.both.value;
    const steps = ["demo-step1", "demo-step2", "demo-step3"].map(rate);
    expect(steps[0]).toBeLessThanOrEqual(steps[1]);
    expect(steps[1]).toBeLessThanOrEqual(steps[2]);
    expect(steps[2]).toBeGreaterThan(steps[0]);
    expect(rate("baseline-prompted")).toBeLessThan(steps[2]);
    const sel = JSON.parse(readFileSync(path.join(runDir, "validate/selection.json"), "utf8"));
    expect(sel.best.name).toBe("demo-step3");
    expect(readlinkSync(path.join(runDir, "train/demo/best"))).toBe("output/checkpoint-3");
    const html = readFileSync(path.join(runDir, "validate/report.html"), "utf8");
    expect(html).toContain("demo-step3");
    expect(existsSync(path.join(runDir, "validate/summary.md"))).toBe(true);
    expect(err.join("\n")).toMatch(/heuristic generator, no model/);
    expect(existsSync(path.join(runDir, "validate/server.log"))).toBe(false); // no server was started
    // a re-run reuses every result
    const err2: string[] = [];
    expect(await main(["--config", path.join(ROOT, "configs/demo.yaml"), "--run-dir", runDir, "--from", "train", "--to", "select"], { stdout: () => {}, stderr: (l) => err2.push(l) })).toBe(0);
    expect(err2.join("\n")).toMatch(/validate: all 15 \(model, set, run\) results reused; no model calls/);
  });
});
