/**
 * Text rules of the UTDebug reference (archiki/UTGenDebug: utils.py, mbpp_utdebug.py, no_ut_mbpp.py), as
 * pure functions: code extraction from a debugger reply, the output extraction of a self-consistency vote,
 * Python's str() of values for the feedback turn, the feedback text of a failing unit test, and the No-UT
 * baseline's decision rule. Nothing here evaluates text: values come from the safe literal parser.
 */
import { formatPyValue, parseLiteral, pyFloatRepr, pyStrRepr } from "../../pipeline/executor/literals.ts";
import type { CallArgs, CallResult, PyValue } from "../../pipeline/executor/types.ts";

/**
 * The reference's `extract_code`: the body of the first ```python block (what follows "```python" up to the
 * next ```, so it keeps the newline after the tag), else of the first ``` block (a language tag other than
 * "python" stays in the code, as in the reference), else the text before the first ```.
 */
export function extractCode(text: string): string {
  const py = /```python([\s\S]*?)```/.exec(text);
  if (py) return py[1];
  const any = /```([\s\S]*?)```/.exec(text);
  if (any) return any[1];
  return text.split("```")[0];
}

/**
 * The reference's `extract_output`: the text after the last "utput", then the last ```…``` span in it
 * (newlines stripped at both ends), else the last `…` span (newlines stripped, leading spaces removed),
 * else undefined. The caller parses the result with the safe literal parser (the reference `eval`s it).
 */
export function extractOutputText(text: string): string | undefined {
  const at = text.lastIndexOf("utput");
  const t = at >= 0 ? text.slice(at + "utput".length) : text;
  const fenced = [...t.matchAll(/```([\s\S]*?)```/g)];
  if (fenced.length) return stripNewlines(fenced[fenced.length - 1][1]);
  const ticked = [...t.matchAll(/`([\s\S]*?)`/g)];
  if (ticked.length) return stripNewlines(ticked[ticked.length - 1][1]).replace(/^ +/, "");
  return undefined;
}

const stripNewlines = (s: string) => s.replace(/^\n+/, "").replace(/\n+$/, "");

/** A vote's value: extract_output, then the safe literal parser (undefined: the vote does not count). */
export function voteValue(text: string): { value: PyValue; text: string } | undefined {
  const raw = extractOutputText(text);
  if (raw === undefined) return undefined;
  const lit = parseLiteral(raw.trim());
  return lit.ok ? { value: lit.value, text: raw.trim() } : undefined;
}

/** Python's repr() of a value (non-finite floats as `inf`/`nan`, as repr prints them inside containers). */
export function pyRepr(v: PyValue): string {
  if (v === null) return "None";
  if (v === true) return "True";
  if (v === false) return "False";
  if (typeof v === "number") return Number.isInteger(v) ? BigInt(v).toString() : pyFloatRepr(v);
  if (typeof v === "string") return pyStrRepr(v);
  if (Array.isArray(v)) return "[" + v.map(pyRepr).join(", ") + "]";
  if ("$int" in v) return v.$int;
  if ("$float" in v) return v.$float;
  if ("$tuple" in v) return v.$tuple.length === 1 ? `(${pyRepr(v.$tuple[0])},)` : "(" + v.$tuple.map(pyRepr).join(", ") + ")";
  if ("$set" in v) return v.$set.length ? "{" + v.$set.map(pyRepr).join(", ") + "}" : "set()";
  if ("$frozenset" in v) return v.$frozenset.length ? "frozenset({" + v.$frozenset.map(pyRepr).join(", ") + "})" : "frozenset()";
  if ("$dict" in v) return "{" + v.$dict.map(([k, x]) => `${pyRepr(k)}: ${pyRepr(x)}`).join(", ") + "}";
  if ("$bytes" in v) return formatPyValue(v);
  if ("$ndarray" in v) return `array(${pyRepr(v.$ndarray)})`;
  if ("$repr" in v) return v.$repr;
  return String(v);
}

/** Python's str(): a str as its text, anything else as its repr. */
export function pyStr(v: PyValue): string {
  return typeof v === "string" ? v : pyRepr(v);
}

/** str() of the reference's argument list (`list(eval(args))`): `[1, 'a']`; keyword arguments as `k=v` items. */
export function argsStr(args: CallArgs): string {
  const parts = args.args.map(pyRepr);
  for (const [k, v] of Object.entries(args.kwargs ?? {})) parts.push(`${k}=${pyRepr(v)}`);
  return "[" + parts.join(", ") + "]";
}

/**
 * What the reference's `unsafe_execute` reports as the code's output on one unit test: str() of the value,
 * or "Error: " + str(exception). A timeout is the reference's TimeoutException ("Timed out!"); a crash of the
 * whole run is its "Execution of <fn> crashed".
 */
export function execOutputStr(r: CallResult, entryPoint: string): string {
  if (r.status === "ok") return pyStr(r.value as PyValue);
  if (r.status === "timeout") return "Error: Timed out!";
  if (r.status === "crash") return `Execution of ${entryPoint} crashed`;
  const msg = (r.message ?? "").replace(/^module level: /, "").replace(/\(<program>, line /g, "(<string>, line ");
  return `Error: ${msg}`;
}

/**
 * The No-UT baseline's decision (no_ut_mbpp.py): the text after the first "Feedback: " (the whole reply when
 * there is none) says the code is correct when it contains "code is correct" or does not contain "code is wrong".
 */
export function noUtSaysCorrect(feedback: string): boolean {
  const at = feedback.indexOf("Feedback: ");
  const decide = at >= 0 ? feedback.slice(at + "Feedback: ".length) : feedback;
  return decide.includes("code is correct") || !decide.includes("code is wrong");
}

/** The reference's `reply.split('### Output', 1)[0]`: the generator's turn up to its output section. */
export function upToOutput(response: string): string {
  const at = response.indexOf("### Output");
  return at >= 0 ? response.slice(0, at) : response;
}

/** The arguments inside `f(…)` of a call text (for the separate output prompt's `{entry_point}({unit_input})`). */
export function innerArgs(callText: string): string {
  const open = callText.indexOf("(");
  const close = callText.lastIndexOf(")");
  return open >= 0 && close > open ? callText.slice(open + 1, close) : callText;
}
