/**
 * Best-of-N and unit-test fidelity on tasks with ground-truth unit tests, with models behind the loopback
 * OpenAI-compatible server and programs in the real sandbox: the pick, base, Δ and upper bound computed by
 * hand; Spearman per task averaged, an unusable unit test's constant vector left out and counted; the two
 * stages share sampled outputs and executions (a second stage makes no model call); `--json` summaries.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../pipeline/cli.ts";
import { bonOfTask } from "../stages/rl/bon.ts";
import { taskRho } from "../stages/rl/fidelity.ts";
import { startOpenAIServer, type OpenAIServer } from "./servers/openai.ts";

const GT = "n = int(input())\nprint(2 * n)\n";
const RIGHT = "```python\nimport sys\nprint(int(sys.stdin.read()) * 2)\n```";
const WRONG = "```python\nn = int(input())\nprint(2 * n if n < 100 else n)\n```";
const ut = (cases: [string, string][]) => cases.map(([i, o], k) => `## Test Case ${k + 1}\n### Input\n\`\`\`\n${i}\n\`\`\`\n### Output\n\`\`\`\n${o}\n\`\`\`\n`).join("\n");

let tmp: string;
let llm: OpenAIServer;

beforeAll(async () => {
  tmp = mkdtempSync(path.join(tmpdir(), "utrl-eval-"));
  llm = await startOpenAIServer({
    script: ({ model, messages, n }) => {
      const prompt = messages.at(-1)?.content ?? "";
      if (prompt.startsWith("Solve the following programming problem")) return { choices: [WRONG, WRONG, RIGHT, "I give up."].slice(0, n) };
      if (model === "strong-ut") return { choices: [ut([["3", "6"], ["500", "1000"]])] };
      if (model === "weak-ut") return { choices: [ut([["3", "6"], ["4", "8"], ["5", "11"]])] }; // the third case is invalid
      return { choices: ["I cannot write tests."] };
    },
  });
});
afterAll(async () => {
  await llm?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

async function run(yaml: string, stage: string) {
  const cfg = path.join(tmp, `c-${stage}.yaml`);
  writeFileSync(cfg, yaml);
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(["--config", cfg, "--stage", stage, "--json"], { stdout: (l) => out.push(l), stderr: (l) => err.push(l) });
  return { code, out, err };
}

describe("best-of-N and fidelity (hand-computed)", () => {
  it("per task: the unit test's pick, the one-sample base, the upper bound; ρ of the two score vectors", () => {
    const r = { task: "t", ut_status: "ok", cases: 2, invalid_cases: 0, gen_passed: [1, 1, 2, 0], gt_passed: [2, 2, 4, 0], gt_total: 4, no_code: 1 };
    expect(bonOfTask(r)).toEqual({ score: 1, acc: 1, base: 0.5, baseAcc: 0.25, upper: 1, upperAcc: 1 });
    // Ties go to the earliest sample.
    expect(bonOfTask({ ...r, gen_passed: [2, 2, 2, 0] })).toMatchObject({ score: 0.5, acc: 0 });
    expect(taskRho([r])).toBeCloseTo(1, 12);
    // gen [1, 1, 1, 0] vs gt [.5, .5, 1, 0]: average ranks [3, 3, 3, 1] vs [2.5, 2.5, 4, 1] → 3 / √13.5
    expect(taskRho([{ ...r, cases: 2, gen_passed: [2, 2, 2, 0] }])).toBeCloseTo(3 / Math.sqrt(13.5), 12);
    expect(taskRho([{ ...r, gen_passed: [0, 0, 0, 0] }])).toBeNull();
  });

  it("rl-bon and rl-fidelity on real executions; the second stage makes no model call", async () => {
    const tasks = path.join(tmp, "test.jsonl");
    const gtCases = [
      { input: "3\n", output: "6\n" },
      { input: "500\n", output: "1000\n" },
      { input: "7\n", output: "14\n" },
      { input: "1000\n", output: "2000\n" },
    ];
    writeFileSync(tasks, ["a", "b"].map((id) => JSON.stringify({ id, kind: "stdio", question: `Print twice n (${id}).`, gt_code: GT, gt_cases: gtCases })).join("\n") + "\n" + JSON.stringify({ id: "c", kind: "stdio", question: "No tests.", gt_code: GT }) + "\n");
    const common = `run: {dir: ${path.join(tmp, "run")}}\nexecutor: {workers: 2}\nrl: {timeout_s: 2}\nllm: {backend: openai, base_urls: ["${llm.url}"], model: unused, max_retries: 0}\n`;
    const models = `{tasks: ${tasks}, n: 4, ut_models: [strong-ut, weak-ut, no-ut], code_models: [coder], bootstrap: {samples: 200, seed: 1}}`;
    const bon = await run(`${common}rl-bon: ${models}\n`, "rl-bon");
    expect(bon.err.filter((l) => l.startsWith("error"))).toEqual([]);
    expect(bon.code).toBe(0);
    const s = JSON.parse(bon.out.at(-1)!);
    expect(s.tasks).toBe(2);
    const row = (m: string) => s.rows.find((r: any) => r.ut_model === m);
    // Samples: WRONG, WRONG, RIGHT, no program. GT: RIGHT 4/4, WRONG 2/4 (it fails n ≥ 100).
    expect(row("strong-ut")).toMatchObject({ code_model: "coder", score: 1, accuracy: 1, base_score: 0.5, base_accuracy: 0.25, upper_score: 1, upper_accuracy: 1 });
    expect(row("weak-ut")).toMatchObject({ score: 0.5, accuracy: 0 }); // every program passes the valid cases: tie → first sample
    expect(row("no-ut")).toMatchObject({ score: 0.5, accuracy: 0 });
    const report = readFileSync(path.join(tmp, "run", "rl-bon", "report.md"), "utf8");
    expect(report).toContain("| strong-ut | coder | 1.000 [1.000, 1.000] | +0.500 | 100.0 [100.0, 100.0] | +75.0 |");
    expect(report).toContain("(left out: no_gt_cases 1)");
    const summary = JSON.parse(readFileSync(path.join(tmp, "run", "rl-bon", "summary.json"), "utf8"));
    expect(summary.rows.find((r: any) => r.ut_model === "no-ut").unusable_uts).toBe(2);

    const calls = llm.requests.length;
    const fid = await run(`${common}rl-fidelity: ${models}\n`, "rl-fidelity");
    expect(fid.code).toBe(0);
    expect(llm.requests.length).toBe(calls);
    const f = JSON.parse(fid.out.at(-1)!);
    const frow = (m: string) => f.rows.find((r: any) => r.ut_model === m);
    expect(frow("strong-ut").fidelity).toBeCloseTo(1, 12);
    // weak: gen scores [2/3, 2/3, 2/3, 0] (3 cases, one invalid: nobody passes it) vs gt [.5, .5, 1, 0]
    expect(frow("weak-ut").fidelity).toBeCloseTo(3 / Math.sqrt(13.5), 12);
    expect(frow("no-ut")).toMatchObject({ defined: 0, undefined_rho: 2, fidelity: 0 });
    expect(readFileSync(path.join(tmp, "run", "rl-fidelity", "report.md"), "utf8")).toContain("| strong-ut | 1.000 | [1.000, 1.000] | 2 | 0 |");
  });
});
