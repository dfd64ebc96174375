/**
 * Template texts of the heuristic backend: the fuzz sampler's hypothesis / error pattern / input reasoning
 * (grounded in the mutation that made the bug and in the sandbox's run of the buggy code) and the template
 * rationale (grounded in gold's executed output). Everything here states only facts the pipeline verified.
 */
import type { PyValue } from "../../pipeline/executor/types.ts";

const PATTERNS: Record<string, string> = {
  comparison_swap: "inputs where the compared values are equal or sit exactly on the boundary of the comparison",
  arithmetic_swap: "inputs that make the faulty arithmetic run with values where the two operators give different results",
  constant_off_by_one: "inputs whose result depends on the exact value of that constant",
  range_bounds: "inputs where the first or the last element visited by the loop matters for the result",
  slice_bounds: "inputs where the first or the last element of the slice (or the indexed element) matters for the result",
  boolean_swap: "inputs where exactly one of the combined conditions holds",
  negate_condition: "inputs that reach the condition, which now takes the wrong branch",
  drop_statement: "inputs whose result needs the effect of the missing statement",
  drop_branch: "inputs that should take the missing branch",
  return_value: "inputs that reach the faulty return statement",
  call_swap: "inputs where the two functions disagree (e.g. several different values)",
  argument_swap: "inputs where the two swapped arguments are not interchangeable",
  string_constant: "inputs whose result depends on that exact string (separators, characters or case)",
};

export interface BugLike {
  origin: "llm" | "mutation";
  operator?: string;
  reasoning?: string;
  line?: number;
  function?: string;
}

/** Hypothesis and error pattern of the fuzz sampler. */
export function fuzzHypothesis(bug: BugLike, entryPoint: string): { hypothesis: string; error_pattern: string } {
  if (bug.origin === "mutation" && bug.operator) {
    const where = bug.line && !/\bline \d+/.test(bug.reasoning ?? "") ? ` (line ${bug.line})` : "";
    return {
      hypothesis:
        `Let's compare the code with the task step by step. In \`${bug.function ?? entryPoint}\`${where}, ${bug.reasoning ?? "one step differs from what the task asks"}. ` +
        `A correct solution would not do this, so any input whose result depends on that step will come out wrong.`,
      error_pattern: PATTERNS[bug.operator] ?? "inputs that exercise the faulty step",
    };
  }
  return {
    hypothesis:
      `Let's compare the code with the task step by step. The implementation of \`${entryPoint}\` departs from the task description` +
      (bug.reasoning ? `: ${firstSentence(bug.reasoning)}` : "") +
      `. Inputs that exercise the differing logic should expose the mistake.`,
    error_pattern: "inputs that exercise the logic where the code departs from the task description",
  };
}

/** Input reasoning of the fuzz sampler: what the buggy code was seen to do on this input. */
export function fuzzInputReasoning(argsText: string, buggy: { status: string; outputText?: string; errorType?: string }): string {
  const what =
    buggy.status === "ok"
      ? `returns \`${buggy.outputText}\``
      : buggy.status === "timeout"
        ? "does not finish (it runs past the time limit)"
        : `raises ${buggy.errorType ?? "an error"}`;
  return `I pick an input that fits this pattern and is valid for the task: \`${argsText}\`. Tracing the given code on it, the code ${what}, which is not what a correct implementation produces.`;
}

function firstSentence(s: string): string {
  const one = s.replace(/\s+/g, " ").trim();
  const m = one.match(/^(.{20,240}?[.!?])(\s|$)/);
  return (m ? m[1] : one.slice(0, 240)).replace(/[.!?]$/, "");
}

/** "a list of 3 ints", "a string of length 5", "True" … for the template rationale. */
export function describeValue(v: PyValue): string {
  if (v === null) return "None";
  if (typeof v === "boolean") return `the boolean ${v ? "True" : "False"}`;
  if (typeof v === "number") return "an integer";
  if (typeof v === "string") return v.length ? `a string of length ${[...v].length}` : "the empty string";
  if (Array.isArray(v)) return v.length ? `a list of ${v.length} element${v.length === 1 ? "" : "s"}` : "an empty list";
  if ("$int" in v) return "an integer";
  if ("$float" in v) return "a float";
  if ("$tuple" in v) return `a tuple of ${v.$tuple.length} element${v.$tuple.length === 1 ? "" : "s"}`;
  if ("$set" in v) return v.$set.length ? `a set of ${v.$set.length} element${v.$set.length === 1 ? "" : "s"}` : "an empty set";
  if ("$frozenset" in v) return `a frozenset of ${v.$frozenset.length} elements`;
  if ("$dict" in v) return v.$dict.length ? `a dict with ${v.$dict.length} key${v.$dict.length === 1 ? "" : "s"}` : "an empty dict";
  if ("$bytes" in v) return "a bytes value";
  if ("$ndarray" in v) return `a numpy array (${v.dtype})`;
  return `a ${v.type} object`;
}

/** Successive values of one local variable of the gold function on the input (stages/heuristic/trace.py). */
export interface TracedVar {
  name: string;
  values: string[];
  changes: number;
}

/** The execution-grounded template rationale (rationale_source: template). */
export function templateRationale(opts: {
  entryPoint: string;
  params: string[];
  args: PyValue[];
  argTexts: string[];
  goldOutput: PyValue;
  goldOutputText: string;
  trace?: TracedVar[];
}): string {
  const lines = ["Let's think step by step."];
  const named = opts.argTexts.map((t, i) => {
    const name = opts.params[i] ?? `argument ${i + 1}`;
    return `\`${name}\` = \`${t}\` (${describeValue(opts.args[i])})`;
  });
  lines.push(named.length ? `- The function \`${opts.entryPoint}\` is called with ${named.join(", ")}.` : `- The function \`${opts.entryPoint}\` is called with no arguments.`);
  const steps = (opts.trace ?? []).filter((v) => v.values.length > 0);
  if (steps.length) {
    lines.push(`- Working through the task on these arguments, step by step:`);
    for (const v of steps)
      lines.push(
        v.values.length === 1
          ? `  - \`${v.name}\` is \`${v.values[0]}\``
          : `  - \`${v.name}\` goes ${v.values.map((x) => (x === "…" ? "…" : `\`${x}\``)).join(" → ")}`,
      );
  }
  lines.push(`- Following the task description for exactly these arguments, a correct \`${opts.entryPoint}\` produces ${describeValue(opts.goldOutput)}.`);
  lines.push(`- Therefore the function returns \`${opts.goldOutputText}\`.`);
  return lines.join("\n");
}
