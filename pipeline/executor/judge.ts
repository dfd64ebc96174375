/**
 * Verdicts, decided outside the sandbox. The child that ran a program only reports raw results (a value,
 * an exception type, its stdout); whether that result passes is decided here, in Node, against expected
 * values the program's process never held. This is what makes a verdict unforgeable: a program can only
 * choose the value it reports, which is no more than returning it.
 *
 *   judgeCall(result, expected, match)     function tasks: the reference's eval_exact_match (compare.ts)
 *   judgeStdout(result, expected, opts)    stdio tasks: a competitive-programming token checker
 *
 * Verdicts follow the reference's `unsafe_execute` statuses, kept apart for reports: "pass" (the value
 * matches), "fail" (it does not), and the non-values "error" / "timeout" / "crash" / "invalid_input",
 * which the reference lumps into its `timeout` status. Only "pass" passes.
 */
import { outputsMatch, type MatchOptions } from "./compare.ts";
import type { CallResult, PyValue } from "./types.ts";

export type Verdict = "pass" | "fail" | "error" | "timeout" | "crash" | "invalid_input";

/** Verdict of one function call against the expected value (the reference compares `out` first, `exp` second). */
export function judgeCall(r: CallResult, expected: PyValue, match: MatchOptions = {}): Verdict {
  if (r.status !== "ok") return r.status;
  return outputsMatch(r.value as PyValue, expected, match) ? "pass" : "fail";
}

export interface StdoutMatchOptions {
  /**
   * "tokens" (default): the usual competitive-programming checker — both texts split on whitespace, equal
   * token counts, each pair equal as text or, where either token is a decimal/exponent number, equal
   * within `abs_tol` / `rel_tol`. "lines": line by line after stripping trailing whitespace of each line
   * and trailing empty lines (tokens inside a line must be equal text). "exact": byte equality.
   */
  mode?: "tokens" | "lines" | "exact";
  abs_tol?: number;
  rel_tol?: number;
}

const INT = /^[+-]?\d+$/;
const NUM = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

function tokenEq(a: string, b: string, absTol: number, relTol: number): boolean {
  if (a === b) return true;
  if (!NUM.test(a) || !NUM.test(b)) return false;
  if (INT.test(a) && INT.test(b)) return false; // integers compare as written (after sign/format) exactly
  const x = Number(a);
  const y = Number(b);
  if (!Number.isFinite(x) || !Number.isFinite(y)) return false;
  return Math.abs(x - y) <= Math.max(absTol, relTol * Math.abs(y));
}

/** Does a program's stdout match the expected output text? See StdoutMatchOptions. */
export function stdoutMatches(actual: string, expected: string, opts: StdoutMatchOptions = {}): boolean {
  const mode = opts.mode ?? "tokens";
  if (mode === "exact") return actual === expected;
  const absTol = opts.abs_tol ?? 1e-6;
  const relTol = opts.rel_tol ?? 1e-6;
  if (mode === "lines") {
    const lines = (s: string) => {
      const ls = s.replace(/\r\n?/g, "\n").split("\n").map((l) => l.replace(/\s+$/, ""));
      while (ls.length && ls[ls.length - 1] === "") ls.pop();
      return ls;
    };
    const x = lines(actual);
    const y = lines(expected);
    return x.length === y.length && x.every((l, i) => l === y[i]);
  }
  const x = actual.split(/\s+/).filter(Boolean);
  const y = expected.split(/\s+/).filter(Boolean);
  return x.length === y.length && x.every((t, i) => tokenEq(t, y[i], absTol, relTol));
}

/** Verdict of one stdio run against the expected output text. */
export function judgeStdout(r: CallResult, expected: string, opts: StdoutMatchOptions = {}): Verdict {
  if (r.status !== "ok") return r.status;
  if (typeof r.value !== "string") return "fail";
  return stdoutMatches(r.value, expected, opts) ? "pass" : "fail";
}
