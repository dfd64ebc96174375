/**
 * The debugger side of UTDebug and the No-UT baseline: a model asked with the debugging chat (and, for No-UT,
 * the self-critique prompt), or — on the embedded heuristic backend, with no model — a repair search:
 *  - fix: the single-edit variants of the code that the mutation operators of stages/heuristic/ast_tools.py
 *    produce (each operator's own inverse among them: `<` ↔ `<=`, `+` ↔ `-`, constants ±1, range and slice
 *    bounds ±1, swapped calls …), in a seeded order, all run on the failing input the feedback names (one
 *    batch); the first whose result the comparison accepts against the feedback's expected output is the
 *    reply. No variant fixes it: the code comes back unchanged. It sees exactly what a model sees in the
 *    chat — the code and the failing unit test — never the private tests or the canonical solution.
 *  - critique (No-UT): the code is run on the one example the debugging prompt shows (MBPP's first
 *    `test_list` assertion); it is "correct" when it matches, or when the prompt shows no parsable example.
 */
import type { CallArgs, PyValue } from "../../pipeline/executor/types.ts";
import { judgeCall, parseCallLiteral, parseLiteral } from "../../pipeline/executor/index.ts";
import type { ChatMessage } from "../../pipeline/llm/types.ts";
import { runAstTool } from "../common.ts";
import { orderMutants, type Mutant } from "../heuristic/mutate.ts";
import type { ProgramBatcher } from "./exec.ts";
import { askOne, type Asker, type CallTally, type SampleIndex } from "./llm.ts";
import { renderDebug, type DebugProblem, type DebugTemplates } from "./problems.ts";
import { argsStr, execOutputStr, noUtSaysCorrect, pyStr } from "./text.ts";

/** A failing input and the output it should give (what the feedback turn says). */
export interface Hint {
  args: CallArgs;
  expected: PyValue;
}

export interface Reply {
  text: string;
  sample?: number;
  error?: string;
  /** Heuristic: the edit it made. */
  repair?: string;
}

export interface Critique {
  text: string;
  saysCorrect: boolean;
  sample?: number;
  error?: string;
  hint?: Hint;
}

export interface Debugger {
  fix(p: DebugProblem, messages: ChatMessage[], hint: Hint | undefined, code: string, idx: SampleIndex, tally: CallTally): Promise<Reply>;
  critique(p: DebugProblem, code: string, idx: SampleIndex, tally: CallTally): Promise<Critique>;
}

export interface DebugSampling {
  temperature: number;
  top_p: number;
  max_tokens: number;
}

/** A model on the OpenAI-compatible endpoint. */
export function llmDebugger(asker: Asker, model: string, tpl: DebugTemplates, sampling: DebugSampling, extraBody: Record<string, unknown>): Debugger {
  const s = { ...sampling, extra: extraBody };
  const chatHash = tpl.code_generation.hash + tpl.he_code_generation.hash + tpl.ut_feedback.hash;
  return {
    async fix(_p, messages, _hint, _code, idx, tally) {
      const i = idx.next(model, messages, s);
      const r = await askOne(asker, { messages, sampling: s, model, templateHash: chatHash + tpl.no_ut_feedback.hash }, i, tally);
      return { text: r.text, sample: r.sample, ...(r.error ? { error: r.error } : {}) };
    },
    async critique(p, code, idx, tally) {
      const messages: ChatMessage[] = [{ role: "user", content: renderDebug(tpl.no_ut_feedback, { prompt: p.prompt, code }) }];
      const i = idx.next(model, messages, s);
      const r = await askOne(asker, { messages, sampling: s, model, templateHash: tpl.no_ut_feedback.hash }, i, tally);
      return { text: r.text, saysCorrect: noUtSaysCorrect(r.text), sample: r.sample, ...(r.error ? { error: r.error } : {}) };
    },
  };
}

/** Operators whose edits can undo a bug (the ones that only delete code cannot). */
export const REPAIR_OPERATORS = [
  "comparison_swap",
  "arithmetic_swap",
  "constant_off_by_one",
  "range_bounds",
  "slice_bounds",
  "boolean_swap",
  "negate_condition",
  "call_swap",
  "argument_swap",
  "return_value",
  "string_constant",
] as const;

/** The embedded no-model debugger (see the module comment). */
export function heuristicDebugger(batcher: ProgramBatcher, opts: { seed: number; utTimeoutS: number }): Debugger {
  return {
    async fix(p, _messages, hint, code, idx) {
      // Each attempt at the same state gets the next variant that passes (a fresh "sample").
      const attempt = idx.next("heuristic", [{ role: "user", content: code }, { role: "user", content: JSON.stringify(hint ?? null) }], {});
      if (!hint) return { text: fenced(code) };
      let mutants: Mutant[];
      try {
        const res = await runAstTool<{ mutants: Mutant[] }>(batcher.executor, { op: "mutants", code, entry_point: p.entryPoint, operators: REPAIR_OPERATORS, max_per_operator: 40 });
        mutants = orderMutants(res.mutants, p.taskId, opts.seed);
      } catch {
        return { text: fenced(code), repair: "no repair: the code does not parse" };
      }
      const runs = await Promise.all(
        mutants.map((m) => batcher.run({ program: m.code, entryPoint: p.entryPoint, inputs: [hint.args], timeoutS: opts.utTimeoutS, loadTimeoutS: opts.utTimeoutS })),
      );
      const fixes = mutants.filter((_, i) => judgeCall(runs[i][0], hint.expected, { mode: "utgen", useSet: p.useSet }) === "pass");
      const m = fixes[attempt % Math.max(1, fixes.length)];
      if (!m) return { text: fenced(code), repair: `no single edit makes ${argsStr(hint.args)} give ${pyStr(hint.expected)}` };
      return { text: fenced(m.code), repair: `${m.operator} at line ${m.line}: ${m.description}` };
    },
    async critique(p, code) {
      const ex = exampleOf(p);
      if (!ex) return { text: "Feedback: The task shows no example to check.\nThe above code is correct.", saysCorrect: true };
      const [r] = await batcher.run({ program: code, entryPoint: p.entryPoint, inputs: [ex.args], timeoutS: opts.utTimeoutS, loadTimeoutS: opts.utTimeoutS });
      if (judgeCall(r, ex.expected, { mode: "utgen", useSet: p.useSet }) === "pass")
        return { text: "Feedback: The code gives the expected result on the task's example.\nThe above code is correct.", saysCorrect: true };
      return {
        text: `Feedback: On the task's example input ${argsStr(ex.args)} the code gives ${execOutputStr(r, p.entryPoint)} instead of ${pyStr(ex.expected)}.\nThe above code is wrong, please fix it.`,
        saysCorrect: false,
        hint: ex,
      };
    },
  };
}

/** A code as a reply the reference's extract_code reads back (the body of a ```python block). */
function fenced(code: string): string {
  return "```python\n" + code.replace(/^\n+/, "").replace(/\s+$/, "") + "\n```";
}

/** The example the MBPP debugging prompt shows: `assert fn(args) == expected` (test_list[0]). */
export function exampleOf(p: DebugProblem): Hint | undefined {
  const t = p.testList[0];
  if (!t) return undefined;
  const m = /^\s*assert\s+/.exec(t);
  if (!m) return undefined;
  const body = t.slice(m[0].length);
  const start = body.indexOf(p.entryPoint + "(");
  if (start !== 0) return undefined;
  const end = closingParen(body, p.entryPoint.length);
  if (end < 0) return undefined;
  const rest = /^\s*==\s*([\s\S]+?)\s*$/.exec(body.slice(end + 1));
  if (!rest) return undefined;
  const call = parseCallLiteral(body.slice(0, end + 1), p.entryPoint);
  const exp = parseLiteral(rest[1]);
  return call.ok && exp.ok ? { args: call.args, expected: exp.value } : undefined;
}

/** Index of the `)` that closes the `(` at `open` (string literals skipped), or -1. */
function closingParen(s: string, open: number): number {
  let depth = 0;
  for (let i = open; i < s.length; i++) {
    const c = s[i];
    if (c === "'" || c === '"') {
      const j = s.indexOf(c, i + 1);
      let k = j;
      while (k > 0 && s[k - 1] === "\\") k = s.indexOf(c, k + 1);
      if (k < 0) return -1;
      i = k;
    } else if (c === "(" || c === "[" || c === "{") depth++;
    else if (c === ")" || c === "]" || c === "}") {
      depth--;
      if (depth === 0) return c === ")" ? i : -1;
    }
  }
  return -1;
}
