/**
 * The embedded heuristic backend as a unit-test generator, so `validate` and `select` (and the report) run
 * with no model: on the demo config, `--from filter --to select` goes end to end offline.
 *
 * It sees what a model sees — the task description and the buggy code, never gold — and writes responses in
 * the UTGen format, which validate parses and scores exactly like a model's. Its tests come from the
 * examples in the description (`assert f(3) == 14`, `f(3) returns 14`, `Input: … / Output: …`), parsed as
 * safe literals (nothing is evaluated in Node). Three kinds:
 *   - `random` (baseline-random, no code): a random example with its stated output;
 *   - `prompted` (baseline-prompted): a random example, with the output the buggy code gives on it (it
 *     trusts the code it was shown, so it never exposes the bug);
 *   - `checkpoint` of level k of L (the demo checkpoints `<train.name>-step<k>` written by `train` with
 *     `train.backend: heuristic`): for a share k/L of its samples it runs the buggy code on the examples in
 *     the sandbox, compares in Node with the stated outputs, and answers with an example the code fails (a
 *     random example when none fails); its other samples answer as `prompted`. A later step checks more
 *     often: the demo's "training curve" rises, and `select` has a real choice to make.
 * A description without a usable example gets a response without a test (scored as `no_arguments`).
 * Samples are drawn with a seeded RNG keyed by model, problem, run and sample: results are reproducible.
 */
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import type { Executor, CallArgs, PyValue } from "../../pipeline/executor/types.ts";
import { formatCall, formatPyValue, outputsMatch, parseCallLiteral, parseLiteral } from "../../pipeline/executor/index.ts";
import { UserError } from "../../pipeline/errors.ts";
import { readJson, writeJson } from "../../pipeline/util.ts";
import type { CheckpointEntry, CheckpointRegistryFile } from "../../trainers/registry.ts";
import { Rng, sourceHash } from "../common.ts";
import { utgenAssistantMessage } from "../heuristic/llm-io.ts";
import type { Problem } from "./datasets.ts";

/** What a heuristic checkpoint folder holds (instead of LoRA weights). */
export const HEURISTIC_CHECKPOINT_FILE = "heuristic_ut.json";

export type HeuristicModel = { kind: "random" } | { kind: "prompted" } | { kind: "checkpoint"; level: number; of: number };

/** Identity of the generator's code: joins validate's result keys, so a change re-scores. */
export function heuristicFingerprint(m: HeuristicModel): Record<string, unknown> {
  return { heuristic: m, source: sourceHash("validation/heuristic.ts") };
}

/** The heuristic model behind a validate model: baselines by name, checkpoints by their folder's file. */
export async function heuristicModelOf(m: { kind: string; name: string; path?: string }): Promise<HeuristicModel> {
  if (m.kind === "baseline") return m.name.endsWith("random") ? { kind: "random" } : { kind: "prompted" };
  if (m.kind === "checkpoint" && m.path) {
    const f = await readJson<{ level?: unknown; of?: unknown }>(path.join(m.path, HEURISTIC_CHECKPOINT_FILE)).catch(() => undefined);
    const level = Number(f?.level);
    const of = Number(f?.of);
    if (Number.isInteger(level) && Number.isInteger(of) && level > 0 && of >= level) return { kind: "checkpoint", level, of };
    throw new UserError(`checkpoint ${m.name}: ${path.join(m.path, HEURISTIC_CHECKPOINT_FILE)} is not a valid heuristic checkpoint; re-run train`);
  }
  throw new UserError(`${m.name} is not a heuristic model`);
}

/** Is this checkpoint folder a heuristic one? */
export async function isHeuristicCheckpoint(dir: string): Promise<boolean> {
  return (await readJson(path.join(dir, HEURISTIC_CHECKPOINT_FILE)).catch(() => undefined)) !== undefined;
}

export interface Example {
  args: CallArgs;
  argsText: string;
  expected: PyValue;
  expectedText: string;
}

/** The index just past the bracket that closes the one at `open` (quotes respected), or -1. */
function closing(text: string, open: number): number {
  const pairs: Record<string, string> = { "(": ")", "[": "]", "{": "}" };
  const stack: string[] = [];
  let quote: string | undefined;
  for (let i = open; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === "\\") i++;
      else if (c === quote) quote = undefined;
      continue;
    }
    if (c === "'" || c === '"') quote = c;
    else if (pairs[c]) stack.push(pairs[c]);
    else if (c === stack[stack.length - 1]) {
      stack.pop();
      if (!stack.length) return i + 1;
    } else if (c === "\n" && stack.length > 3) return -1;
  }
  return -1;
}

/** A literal at the start of `text` (to the end of the line, trailing prose and punctuation trimmed). */
function leadingLiteral(text: string): { value: PyValue; text: string } | undefined {
  const line = text.split("\n")[0].replace(/`/g, "").trim();
  for (let end = line.length; end > 0; end--) {
    const t = line.slice(0, end).trim().replace(/[.,;:]+$/, "");
    if (!t) break;
    const r = parseLiteral(t);
    if (r.ok) return { value: r.value, text: t };
    if (end < line.length - 80) break; // prose: stop looking
  }
  return undefined;
}

/** Example calls of `entryPoint` with their stated outputs in a task description, in order, deduplicated. */
export function descriptionExamples(description: string, entryPoint: string): Example[] {
  const out: Example[] = [];
  const seen = new Set<string>();
  const add = (callText: string, after: string) => {
    const call = parseCallLiteral(callText, entryPoint);
    const lit = leadingLiteral(after);
    if (!call.ok || !lit) return;
    const argsText = formatCall(entryPoint, call.args);
    if (seen.has(argsText)) return;
    seen.add(argsText);
    out.push({ args: call.args, argsText, expected: lit.value, expectedText: formatPyValue(lit.value) });
  };
  const esc = entryPoint.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const re = new RegExp(`(^|[^A-Za-z0-9_.])${esc}\\s*\\(`, "g");
  for (const m of description.matchAll(re)) {
    const start = m.index! + m[1].length;
    if (/def\s*$/.test(description.slice(Math.max(0, start - 6), start))) continue;
    const end = closing(description, m.index! + m[0].length - 1);
    if (end < 0) continue;
    const rest = description.slice(end);
    const link = /^\s*(?:==|->|→|=>|returns?|should return|gives|is)\s*/.exec(rest) ?? /^\s*\n\s*(?=\S)/.exec(rest); // `>>> f(1)` then the value
    if (link) add(description.slice(start, end), rest.slice(link[0].length));
  }
  // "Input: [1, 2]" / "Output: 3" pairs (several arguments as "a = 1, b = [2]")
  for (const m of description.matchAll(/^\s*(?:\*\*)?Input(?:\*\*)?\s*:\s*(.+)\n(?:\s*\n)?\s*(?:\*\*)?Output(?:\*\*)?\s*:\s*(.+)$/gim)) {
    const body = m[1].replace(/`/g, "").trim().replace(/(^|,\s*)[A-Za-z_][A-Za-z_0-9]*\s*=\s*(?!=)/g, "$1");
    add(`${entryPoint}(${body})`, m[2]);
  }
  return out;
}

export interface HeuristicDeps {
  executor: Executor;
  /** Per-call limit for the buggy code on an example. */
  timeoutS: number;
}

/**
 * `count` response texts of a heuristic model for one problem; sample i is run ⌊i / n⌋, sample i mod n, as
 * validate splits the choices of one request.
 */
export async function heuristicResponses(deps: HeuristicDeps, model: HeuristicModel, modelName: string, p: Problem, count: number, n: number): Promise<string[]> {
  const examples = descriptionExamples(p.description, p.entryPoint);
  if (!examples.length) return Array.from({ length: count }, () => noTest(p));
  // The buggy code on the examples (random never looks at the code): the sandbox runs it, the verdict is Node's.
  const buggy = model.kind === "random" ? [] : await deps.executor.runCalls({ program: p.buggy, entryPoint: p.entryPoint, inputs: examples.map((e) => e.args), timeoutS: deps.timeoutS });
  const failing = examples.filter((e, i) => buggy.length && (buggy[i].status !== "ok" || !outputsMatch(buggy[i].value!, e.expected, { mode: "utgen", useSet: p.useSet })));
  const texts: string[] = [];
  for (let i = 0; i < count; i++) {
    const rng = new Rng("heuristic-ut", modelName, p.taskId, Math.floor(i / n), i % n);
    const checks = model.kind === "checkpoint" && rng.next() < model.level / model.of;
    if (model.kind === "prompted" || (model.kind === "checkpoint" && !checks)) {
      // trusts the code it was shown: the output is what the buggy code gives (the stated one if it fails to run)
      const k = Math.floor(rng.next() * examples.length);
      const b = buggy[k];
      if (b.status === "ok") texts.push(response(examples[k].argsText, formatPyValue(b.value!), "none found: the code looks right", `running the code as written on this input gives ${formatPyValue(b.value!)}`));
      else texts.push(response(examples[k].argsText, examples[k].expectedText, "the code does not run on this example", "the task description states this output for this input"));
    } else if (checks && failing.length) {
      const e = rng.pick(failing);
      texts.push(response(e.argsText, e.expectedText, `the code disagrees with the task's example ${e.argsText}`, "the task description states this output for this input"));
    } else {
      const e = rng.pick(examples);
      texts.push(response(e.argsText, e.expectedText, "one of the task's own examples", "the task description states this output for this input"));
    }
  }
  return texts;
}

function response(argsText: string, outputText: string, pattern: string, why: string): string {
  return utgenAssistantMessage({
    hypothesis: "Heuristic generator (no model): tests are taken from the examples in the task description.",
    error_pattern: pattern,
    input_reasoning: "An input the task description itself uses.",
    args_text: argsText,
    rationale: why,
    gold_output_text: outputText,
  });
}

function noTest(p: Problem): string {
  return `## Hypothesis\nHeuristic generator (no model): the description of ${p.entryPoint} has no example to build a test from.\n\n## Unit Test\nNo test.`;
}

/**
 * `train` with `train.backend: heuristic`: writes `levels` heuristic checkpoints `checkpoint-<k>` (level k)
 * under `<trainDir>/output` and registers them in `<trainDir>/checkpoints.json`, as a real run registers
 * LoRA adapters. Nothing is trained; it stands in for training so the demo reaches validate and select.
 */
export async function writeHeuristicCheckpoints(o: { trainDir: string; outputDir: string; name: string; levels: number; stdout: (l: string) => void }): Promise<void> {
  for (let k = 1; k <= o.levels; k++) {
    const dir = path.join(o.outputDir, `checkpoint-${k}`);
    await fsp.mkdir(dir, { recursive: true });
    await writeJson(path.join(dir, HEURISTIC_CHECKPOINT_FILE), { level: k, of: o.levels, note: "heuristic unit-test generator (no weights): checks the description's examples against the code for k of `of` samples" });
    await writeJson(path.join(dir, "trainer_state.json"), { global_step: k, epoch: k / o.levels });
  }
  // The registry validate reads; `adapter: false` (these are no LoRA adapters), `heuristic: true`.
  const now = new Date().toISOString();
  const reg: CheckpointRegistryFile & { checkpoints: (CheckpointEntry & { heuristic: true })[] } = {
    train_name: o.name,
    base_model: "heuristic",
    checkpoints: Array.from({ length: o.levels }, (_, i) => ({
      name: `${o.name}-step${i + 1}`,
      step: i + 1,
      epoch: (i + 1) / o.levels,
      path: path.resolve(o.outputDir, `checkpoint-${i + 1}`),
      adapter: false,
      heuristic: true as const,
      registered_at: now,
    })),
  };
  await writeJson(path.join(o.trainDir, "checkpoints.json"), reg);
  o.stdout(`train ${o.name}: heuristic backend — ${o.levels} demo checkpoint(s) (no model, nothing trained) registered in ${path.join(o.trainDir, "checkpoints.json")}`);
}
