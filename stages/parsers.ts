/**
 * Parsers for model responses to the App. E prompts (stages/prompts/*.v1.md). Pure text functions:
 * they return the raw literal *text* (`f(1, [2])`, `3`); the stage then parses it with the executor's
 * safe literal parser (parseCallLiteral / parseLiteral in pipeline/executor/literals.ts; used here only to
 * trim prose after an unfenced output). Nothing is evaluated.
 *
 * Tolerated variants: fenced / single-backtick / bare answers, language tags, bold labels, labels glued to
 * text, multi-line arguments, extra prose before and after, several attempts (the last answer wins),
 * `f(x) == y` assertions. Failures return `{ok: false, reason, detail?}` with a named reason:
 *   parseCorruptedCode: empty_response · no_code_block · missing_entry_point · truncated
 *   parseUnitTest:      empty_response · no_arguments · wrong_function · placeholder_arguments ·
 *                       unbalanced_arguments · truncated · no_output
 *   parseRationale:     empty_rationale · code_only_rationale
 */
import { parseLiteral } from "../pipeline/executor/literals.ts";

export type ParseFailure = { ok: false; reason: string; detail?: string };

export interface ParseOptions {
  /** finish_reason of the choice: "length" turns a cut-off answer into `truncated`. */
  finishReason?: string;
}

// ------------------------------------------------------------------------------- shared scanning ----

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

interface Fence {
  /** Index of the opening ``` and just past the closing ``` (text.length when unclosed). */
  start: number;
  end: number;
  lang: string;
  bodyStart: number;
  bodyEnd: number;
  closed: boolean;
}

/** Triple-backtick spans in order (openers and closers paired left to right). */
function findFences(text: string): Fence[] {
  const marks: number[] = [];
  const re = /```/g;
  for (let m; (m = re.exec(text)); ) marks.push(m.index);
  const out: Fence[] = [];
  for (let i = 0; i < marks.length; i += 2) {
    const start = marks[i];
    let bodyStart = start + 3;
    let lang = "";
    const tag = /^([A-Za-z0-9_+-]*)[ \t]*\r?\n/.exec(text.slice(bodyStart));
    if (tag) {
      lang = tag[1];
      bodyStart += tag[0].length;
    } else {
      const inline = /^(python3?|py)[ \t]+/i.exec(text.slice(bodyStart));
      if (inline) {
        lang = inline[1];
        bodyStart += inline[0].length;
      }
    }
    const closed = i + 1 < marks.length;
    const bodyEnd = closed ? marks[i + 1] : text.length;
    out.push({ start, end: closed ? bodyEnd + 3 : text.length, lang, bodyStart: Math.min(bodyStart, bodyEnd), bodyEnd, closed });
  }
  return out;
}

const inFence = (fences: Fence[], pos: number) => fences.find((f) => pos >= f.bodyStart && pos < f.bodyEnd);

type Scan = { end: number; why?: "eof" | "stopped" };

/**
 * From `open` (an opening bracket), the index just past its matching closer. Python-aware: skips string
 * literals (all quote styles, escapes) and comments. Stops (unbalanced) at ``` or a blank line outside
 * strings; `eof` when the text ends first.
 */
function scanBalanced(text: string, open: number): Scan {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    const c = text[i];
    if (c === "(" || c === "[" || c === "{") depth++;
    else if (c === ")" || c === "]" || c === "}") {
      depth--;
      if (depth === 0) return { end: i + 1 };
    } else if (c === "'" || c === '"') {
      const triple = text.startsWith(c.repeat(3), i);
      const q = triple ? c.repeat(3) : c;
      let j = i + q.length;
      for (; j < text.length; j++) {
        if (text[j] === "\\") {
          j++;
          continue;
        }
        if (!triple && text[j] === "\n") break;
        if (text.startsWith(q, j)) break;
      }
      if (j >= text.length) return { end: -1, why: "eof" };
      if (!triple && text[j] === "\n") return { end: -1, why: "stopped" };
      i = j + q.length - 1;
    } else if (c === "#") {
      while (i < text.length && text[i] !== "\n") i++;
      i--;
    } else if (c === "`" && text.startsWith("```", i)) return { end: -1, why: "stopped" };
    else if (c === "\n" && /^\n[ \t]*\n/.test(text.slice(i, i + 80))) return { end: -1, why: "stopped" };
  }
  return { end: -1, why: "eof" };
}

/** A literal at the start of `s` (number, string, bracketed value, True/False/None/inf/nan), or undefined. */
function leadingLiteral(s: string): string | undefined {
  const t = s.replace(/^\s+/, "");
  const c = t[0];
  if (c === undefined) return undefined;
  if ("([{".includes(c)) {
    const r = scanBalanced(t, 0);
    return r.end > 0 ? t.slice(0, r.end) : undefined;
  }
  const str = /^[rbuRBU]{0,2}(?='|")/.exec(t);
  if (str) {
    const at = str[0].length;
    const q = t[at];
    const triple = t.startsWith(q.repeat(3), at);
    const close = triple ? t.indexOf(q.repeat(3), at + 3) : findClosingQuote(t, at);
    return close < 0 ? undefined : t.slice(0, close + (triple ? 3 : 1));
  }
  const m = /^(?:-\s*)?(?:\d[\d_]*(?:\.\d+)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|True\b|False\b|None\b|inf\b|nan\b|float\(\s*['"]-?(?:inf|nan)['"]\s*\))/.exec(t);
  return m ? m[0] : undefined;
}

function findClosingQuote(t: string, open: number): number {
  const q = t[open];
  for (let j = open + 1; j < t.length; j++) {
    if (t[j] === "\\") j++;
    else if (t[j] === q) return j;
    else if (t[j] === "\n") return -1;
  }
  return -1;
}

interface Line {
  start: number;
  /** Index of the line's end (its "\n" or the text's end). */
  end: number;
  /** The line without surrounding whitespace. */
  text: string;
}

/** Lines with offsets (string methods only: no regex backtracking on long lines). */
function linesOf(text: string): Line[] {
  const out: Line[] = [];
  for (let start = 0; start <= text.length; ) {
    let end = text.indexOf("\n", start);
    if (end < 0) end = text.length;
    out.push({ start, end, text: text.slice(start, end).trim() });
    start = end + 1;
  }
  return out;
}

/** A heading's title: `## Title ##`, `**Title**`, `**Title:**` (null when the line is not a heading). */
function headingTitle(line: string): string | null {
  let t: string;
  if (line.startsWith("#")) {
    let i = 0;
    while (line[i] === "#") i++;
    if (i > 6) return null;
    t = line.slice(i);
    let j = t.length;
    while (j > 0 && t[j - 1] === "#") j--;
    t = t.slice(0, j);
  } else if (line.startsWith("**") && (line.endsWith("**") || line.endsWith("**:")) && line.length > 4) {
    t = line.slice(2, line.endsWith(":") ? -3 : -2);
    if (t.includes("*")) return null;
  } else return null;
  t = t.replace(/[*_:`]/g, "").trim();
  return t ? t : null;
}

function headings(text: string): { start: number; end: number; title: string }[] {
  const out: { start: number; end: number; title: string }[] = [];
  for (const l of linesOf(text)) {
    const title = headingTitle(l.text);
    if (title !== null) out.push({ start: l.start, end: l.end, title });
  }
  return out;
}

const lineStartOf = (text: string, pos: number) => text.lastIndexOf("\n", pos - 1) + 1;
const isHeadingLine = (text: string, pos: number) => /^[ \t]*#/.test(text.slice(lineStartOf(text, pos), pos + 1));
const clean = (s: string | undefined) => {
  const t = (s ?? "").replace(/^[ \t]*(?:[-*]{3,})[ \t]*$/gm, "").trim();
  return t ? t : undefined;
};

// ------------------------------------------------------------------------------- corrupted code ----

export type CorruptedCodeResult = { ok: true; code: string; reasoning: string } | ParseFailure;

const CODE_START =
  /^(?:def |async def |class |@|import |from \S+ import |if |elif |else\s*:|for |while |try\s*:|except\b|finally\s*:|with |return\b|raise\b|pass\b|#|[A-Za-z_][\w.]*(?:\[[^\]]*\])?\s*(?:[-+*/%|&^]|\/\/|\*\*)?=(?!=)|[A-Za-z_][\w.]*\(.*\)\s*$)/;

/**
 * The code block that defines `entryPoint` (the last such block wins), with the prose around it as
 * reasoning. Without fences, the unfenced code region around `def entryPoint(` is taken.
 */
export function parseCorruptedCode(text: string, entryPoint: string, opts: ParseOptions = {}): CorruptedCodeResult {
  if (!text || !text.trim()) return { ok: false, reason: "empty_response" };
  const defRe = new RegExp(`(?:^|\\n)[ \\t]*(?:async[ \\t]+)?def[ \\t]+${esc(entryPoint)}[ \\t]*\\(`);
  const anyDef = /(?:^|\n)[ \t]*(?:async[ \t]+)?def[ \t]+[A-Za-z_]\w*[ \t]*\(/;
  const fences = findFences(text);
  const withDef = fences.filter((f) => defRe.test(text.slice(f.bodyStart, f.bodyEnd)));
  let span: { start: number; end: number; code: string } | undefined;
  if (withDef.length) {
    const f = withDef[withDef.length - 1];
    if (!f.closed && opts.finishReason === "length") return { ok: false, reason: "truncated", detail: "the code block was cut off (finish_reason length)" };
    span = { start: f.start, end: f.end, code: text.slice(f.bodyStart, f.bodyEnd) };
  } else if (fences.length) {
    const prose = removeSpans(text, fences.map((f) => [f.start, f.end]));
    if (!defRe.test(prose)) {
      const other = fences.some((f) => anyDef.test(text.slice(f.bodyStart, f.bodyEnd)));
      return other
        ? { ok: false, reason: "missing_entry_point", detail: `no code block defines ${entryPoint}()` }
        : fences.some((f) => !f.closed) && opts.finishReason === "length"
          ? { ok: false, reason: "truncated", detail: "the response was cut off (finish_reason length)" }
          : { ok: false, reason: "no_code_block", detail: `no code block defines a function` };
    }
  }
  if (!span) {
    const region = bareCodeRegion(text, defRe);
    if (!region) return anyDef.test(text) ? { ok: false, reason: "missing_entry_point", detail: `no code defines ${entryPoint}()` } : { ok: false, reason: "no_code_block" };
    span = region;
  }
  const code = span.code.replace(/^(?:[ \t]*\r?\n)+/, "").replace(/\s+$/, "");
  if (!defRe.test("\n" + code)) return { ok: false, reason: "missing_entry_point", detail: `no code defines ${entryPoint}()` };
  const rest = text.slice(0, span.start) + "\n" + text.slice(span.end);
  const reasoning = rest
    .split("\n")
    .filter((l) => !/^(?:(?:incorrect|corrupted|buggy)\s+)?code(?:\s+solution)?$/i.test(bareTitle(l)))
    .join("\n")
    .replace(/\n{3,}/g, "\n\n")
    .trim();
  return { ok: true, code, reasoning };
}

/** A line reduced to its words: heading marks, bold and a trailing colon removed. */
function bareTitle(line: string): string {
  return (headingTitle(line.trim()) ?? line.replace(/[*_:`]/g, "")).trim();
}

function removeSpans(text: string, spans: [number, number][]): string {
  let out = "";
  let at = 0;
  for (const [s, e] of spans) {
    out += text.slice(at, s) + "\n";
    at = e;
  }
  return out + text.slice(at);
}

/** Unfenced code: from `def entryPoint(` walk out over code-looking lines (imports, helpers, indented body). */
function bareCodeRegion(text: string, defRe: RegExp): { start: number; end: number; code: string } | undefined {
  const lines = text.split("\n");
  let d = -1;
  for (let i = lines.length - 1; i >= 0; i--)
    if (defRe.test("\n" + lines[i])) {
      d = i;
      break;
    }
  if (d < 0) return undefined;
  const codeish = (l: string) => /^\s*$/.test(l) || /^[ \t]+\S/.test(l) || CODE_START.test(l);
  let a = d;
  while (a > 0 && codeish(lines[a - 1])) a--;
  let b = d;
  while (b + 1 < lines.length && codeish(lines[b + 1])) b++;
  while (a < d && !lines[a].trim()) a++;
  while (b > d && !lines[b].trim()) b--;
  const offs = (i: number) => lines.slice(0, i).reduce((n, l) => n + l.length + 1, 0);
  return { start: offs(a), end: offs(b + 1), code: lines.slice(a, b + 1).join("\n") };
}

// ------------------------------------------------------------------------------------ unit test ----

export type UnitTestResult =
  | {
      ok: true;
      hypothesis?: string;
      errorPattern?: string;
      inputReasoning?: string;
      /** The call as written: `f(1, [2, 3])` — give it to parseCallLiteral(argsText, entryPoint). */
      argsText: string;
      outputReasoning?: string;
      /** The expected output literal as written — give it to parseLiteral. Absent when not asked for. */
      outputText?: string;
    }
  | ParseFailure;

export interface UnitTestOptions extends ParseOptions {
  /** The prompt asked for an output (utgen_ut, random_joint_ut); false for random_ut. Default true. */
  expectOutput?: boolean;
}

const ARGS_LABEL = /(?:\b(?:input\s+)?arguments?|\b(?:test\s+)?input)(?:\*\*|__)?[ \t]?:(?:\*\*|__)?/gi;
const OUTPUT_LABEL = /\b(?:expected\s+|final\s+)?output(?:\*\*|__)?[ \t]?:(?:\*\*|__)?/gi;

/** `Arguments: ```f(...)```` etc.: the call, the expected output and the reasoning sections. */
export function parseUnitTest(text: string, entryPoint: string, opts: UnitTestOptions = {}): UnitTestResult {
  if (!text || !text.trim()) return { ok: false, reason: "empty_response" };
  const expectOutput = opts.expectOutput ?? true;
  const fences = findFences(text);
  const callRe = new RegExp(`(?<![\\w.])${esc(entryPoint)}[ \\t]*\\(`, "g");
  const cut = opts.finishReason === "length";

  // 1. The call: after the last "Arguments:" label that has one (then "Input:"); else the last call written as
  //    code (in a fence or backticks, at a line start, after `assert` or `>>>`).
  let callStart = -1;
  let labelPos = -1;
  let wrongFn: string | undefined;
  let placeholder = false;
  const labels = [...text.matchAll(ARGS_LABEL)].filter((m) => !isHeadingLine(text, m.index!));
  const primary = labels.filter((m) => /argument/i.test(m[0]));
  for (const group of [primary, labels.filter((m) => !/argument/i.test(m[0]))]) {
    for (let k = group.length - 1; k >= 0 && callStart < 0; k--) {
      const m = group[k];
      const from = m.index! + m[0].length;
      const win = text.slice(from, from + 4096); // only prefixes are tested below
      const head = /^[\s`*]*(?:(?:python3?|py)[ \t]*\n)?[\s`]*/i.exec(win)![0];
      const at = from + head.length;
      const rest = win.slice(head.length);
      if (new RegExp(`^${esc(entryPoint)}[ \\t]*\\(`).test(rest)) {
        callStart = at;
        labelPos = m.index!;
      } else if (/^<\s*all arguments\s*>|^\w+\(\s*<\s*all arguments/i.test(rest)) placeholder = true;
      else {
        const other = /^([A-Za-z_][\w.]*)[ \t]*\(/.exec(rest);
        if (other && other[1] !== "def" && !wrongFn) wrongFn = other[1];
      }
    }
    if (callStart >= 0) break;
  }
  if (callStart < 0) {
    const calls = [...text.matchAll(callRe)].map((m) => m.index!).filter((i) => !/def[ \t]+$/.test(text.slice(Math.max(0, i - 8), i)));
    const inCode = calls.filter((i) => inFence(fences, i) || text[i - 1] === "`" || /^[ \t]*(?:>>>\s*|assert\s+)?$/.test(text.slice(lineStartOf(text, i), i)));
    const pick = inCode.length ? inCode[inCode.length - 1] : undefined;
    if (pick === undefined) {
      if (placeholder) return { ok: false, reason: "placeholder_arguments", detail: "the answer repeats the template's <all arguments>" };
      if (wrongFn) return { ok: false, reason: "wrong_function", detail: `the test calls ${wrongFn}(), expected ${entryPoint}()` };
      if (cut && fences.some((f) => !f.closed)) return { ok: false, reason: "truncated", detail: "cut off before the arguments (finish_reason length)" };
      return { ok: false, reason: cut ? "truncated" : "no_arguments", detail: cut ? "cut off before the arguments (finish_reason length)" : `no ${entryPoint}(...) call found` };
    }
    callStart = pick;
  }
  const open = text.indexOf("(", callStart);
  const scan = scanBalanced(text, open);
  if (scan.end < 0) {
    if (scan.why === "eof") return { ok: false, reason: "truncated", detail: `the ${entryPoint}(...) call is not closed before the end${cut ? " (finish_reason length)" : ""}` };
    return { ok: false, reason: "unbalanced_arguments", detail: `the brackets of ${entryPoint}(...) do not balance` };
  }
  const callEnd = scan.end;
  const argsText = text.slice(callStart, callEnd);
  if (/<\s*all arguments\s*>/i.test(argsText)) return { ok: false, reason: "placeholder_arguments", detail: "the answer repeats the template's <all arguments>" };

  // 2. The output: the last "Output:" label after the call; else `f(x) == y`; else the last code span under an Output heading.
  let outputText: string | undefined;
  let outputLabelPos = -1;
  let outputFailure: ParseFailure | undefined;
  const after = text.slice(callEnd);
  const assertForm = /^[ \t]*(?:==|->|→|=>)[ \t]*/.exec(after);
  const outLabels = [...text.slice(callEnd).matchAll(OUTPUT_LABEL)].filter((m) => !isHeadingLine(text, callEnd + m.index!));
  if (outLabels.length) {
    const m = outLabels[outLabels.length - 1];
    outputLabelPos = callEnd + m.index!;
    const v = valueAfter(text, outputLabelPos + m[0].length, entryPoint);
    if ("text" in v) outputText = v.text;
    else outputFailure = { ok: false, reason: v.reason === "cut" ? "truncated" : "no_output", detail: v.detail };
  }
  if (outputText === undefined && assertForm) {
    const v = valueAfter(text, callEnd + assertForm[0].length, entryPoint);
    if ("text" in v) {
      outputText = v.text;
      outputFailure = undefined;
    }
  }
  if (outputText === undefined && !outputFailure) {
    const h = headings(text).filter((x) => x.start > callEnd && /^output\b/i.test(x.title));
    if (h.length) {
      const tail = text.slice(h[h.length - 1].end);
      const spans = [...tail.matchAll(/```(?:[A-Za-z0-9_+-]*[ \t]*\n)?([\s\S]*?)```|`([^`\n]+)`/g)];
      const last = spans[spans.length - 1];
      if (last) outputText = (last[1] ?? last[2]).trim();
      if (last) outputLabelPos = h[h.length - 1].end + last.index!;
    }
  }
  if (outputText !== undefined && (/^<\s*your final answer\s*>$/i.test(outputText) || !outputText)) {
    outputFailure = { ok: false, reason: "no_output", detail: "the output repeats the template's placeholder or is empty" };
    outputText = undefined;
  }
  if (expectOutput && outputText === undefined) {
    if (outputFailure) return outputFailure;
    return cut ? { ok: false, reason: "truncated", detail: "cut off before the output (finish_reason length)" } : { ok: false, reason: "no_output", detail: "no Output: ```...``` after the arguments" };
  }

  // 3. Reasoning sections (all optional).
  const hs = headings(text);
  const hyp = hs.find((x) => /^hypothes/i.test(x.title) && x.start < callStart);
  const ep = /\berror[ \t]+pattern(?:\*\*)?[ \t]?:(?:\*\*)?/i.exec(text);
  const nextHeadingAfter = (pos: number) => hs.find((x) => x.start >= pos)?.start ?? text.length;
  let hypothesis: string | undefined;
  let errorPattern: string | undefined;
  if (hyp) hypothesis = clean(text.slice(hyp.end, Math.min(ep && ep.index > hyp.end ? ep.index : Infinity, nextHeadingAfter(hyp.end))));
  if (ep && ep.index < callStart) errorPattern = clean(text.slice(ep.index + ep[0].length, Math.min(nextHeadingAfter(ep.index), labelPos >= 0 ? labelPos : callStart)));
  const inH = [...hs].reverse().find((x) => x.end <= (labelPos >= 0 ? labelPos : callStart) && /^(?:input|unit test|test input|arguments)/i.test(x.title));
  const inputReasoning = inH ? clean(text.slice(inH.end, labelPos >= 0 ? labelPos : lineStartOf(text, callStart))) : undefined;
  const outH = [...hs].reverse().find((x) => x.start > callEnd && x.end <= (outputLabelPos >= 0 ? outputLabelPos : text.length) && /^output\b/i.test(x.title));
  const outputReasoning = outH && outputLabelPos >= 0 ? clean(text.slice(outH.end, outputLabelPos)) : undefined;

  return {
    ok: true,
    ...(hypothesis ? { hypothesis } : {}),
    ...(errorPattern ? { errorPattern } : {}),
    ...(inputReasoning ? { inputReasoning: stripFenceMarks(inputReasoning) } : {}),
    argsText,
    ...(outputReasoning ? { outputReasoning } : {}),
    ...(outputText !== undefined ? { outputText } : {}),
  };
}

const stripFenceMarks = (s: string) => s.replace(/^```[A-Za-z0-9_+-]*[ \t]*$/gm, "").trim();

/** The value after an `Output:` label: fenced, backticked or the rest of the line. */
function valueAfter(text: string, from: number, entryPoint: string): { text: string } | { reason: "cut" | "empty"; detail: string } {
  let i = from;
  while (i < text.length && /[ \t*_]/.test(text[i])) i++;
  let raw: string;
  if (text.startsWith("```", i) || (/^\r?\n[ \t]*```/.test(text.slice(i)) && (i = text.indexOf("```", i)) >= 0)) {
    const f = findFences(text.slice(i))[0];
    if (!f.closed) return { reason: "cut", detail: "the output's code fence is not closed" };
    raw = text.slice(i + f.bodyStart, i + f.bodyEnd);
  } else if (text[i] === "`") {
    const close = text.indexOf("`", i + 1);
    if (close < 0) return { reason: "cut", detail: "the output's backtick is not closed" };
    raw = text.slice(i + 1, close);
  } else {
    const nl = text.indexOf("\n", i);
    raw = text.slice(i, nl < 0 ? text.length : nl);
    if (!raw.trim()) {
      const next = /^\n[ \t]*(\S[^\n]*)/.exec(text.slice(nl));
      raw = next ? next[1] : "";
      if (next && next[1].startsWith("`")) return valueAfter(text, nl + next[0].length - next[1].length, entryPoint);
    }
    raw = raw.replace(/\*\*|__/g, "").replace(/[ \t]+$/, "");
    // An unfenced value ends the sentence: its final period is prose (models write floats as `3.0`).
    if (/[^.]\.$/.test(raw)) raw = raw.slice(0, -1);
    // `True (since 5 is odd)`: when the line is not a literal but begins with one, keep that literal.
    if (!parseLiteral(raw.trim()).ok) {
      const lead = leadingLiteral(raw);
      if (lead && parseLiteral(lead).ok) raw = lead;
    }
  }
  let v = raw.trim();
  // `f(1, 2) == 3` written as the output: keep the right-hand side.
  const call = new RegExp(`^(?:assert\\s+)?${esc(entryPoint)}[ \\t]*\\(`).exec(v);
  if (call) {
    const s = scanBalanced(v, call[0].length - 1);
    if (s.end > 0) {
      const rhs = /^\s*(?:==|->|→|=>|returns?)\s*/.exec(v.slice(s.end));
      if (rhs) v = v.slice(s.end + rhs[0].length).trim();
    }
  }
  return v ? { text: v } : { reason: "empty", detail: "the Output: label has no value" };
}

// ------------------------------------------------------------------------------------ rationale ----

export type RationaleResult = { ok: true; reasoning: string; statedAnswer?: string } | ParseFailure;

const CODE_LINE =
  /^\s*(?:def |class |return\b|import |from \S+ import|for .*:\s*$|while .*:\s*$|if .*:\s*$|elif .*:\s*$|else\s*:\s*$|try\s*:|except\b.*:\s*$|print\(|assert |[A-Za-z_][\w.[\]'"]*\s*(?:[-+*/%]|\/\/)?=(?!=)\s*\S|[A-Za-z_][\w.]*\(.*\)\s*$|[)\]}]\s*$)/;

/** The text under `### Reasoning` (whole text when the header is missing), and the answer it states. */
export function parseRationale(text: string): RationaleResult {
  if (!text || !text.trim()) return { ok: false, reason: "empty_rationale" };
  const heads = linesOf(text).filter((l) => /^reasoning$/i.test(bareTitle(l.text)));
  let body = heads.length ? text.slice(heads[heads.length - 1].end) : text;
  body = body.trim();
  if (!body) return { ok: false, reason: "empty_rationale", detail: "nothing under ### Reasoning" };
  const fences = findFences(body);
  const prose = removeSpans(body, fences.map((f) => [f.start, f.end]));
  const proseWords = (prose.match(/[A-Za-z]{2,}/g) ?? []).length;
  if (fences.length && proseWords < 5) return { ok: false, reason: "code_only_rationale", detail: "the rationale is a code block" };
  if (!fences.length) {
    const lines = body.split("\n").filter((l) => l.trim());
    const code = lines.filter((l) => CODE_LINE.test(l.trim())).length;
    if (lines.length >= 2 && code / lines.length >= 0.8) return { ok: false, reason: "code_only_rationale", detail: "the rationale is code" };
  }
  const statedAnswer = stated(prose);
  return { ok: true, reasoning: body, ...(statedAnswer !== undefined ? { statedAnswer } : {}) };
}

/** The final answer a rationale states ("the output is X", "returns X", "Output: X"), if it is a literal. */
function stated(prose: string): string | undefined {
  const patterns = [
    /(?:^|\n)[ \t>*-]*(?:\*\*)?(?:final\s+)?(?:output|answer|result)(?:\*\*)?[ \t]*:[ \t]*(?:\*\*)?(?=([^\n]{1,2000}))/gi,
    /\b(?:output|answer|result|return\s+value)(?:\s+of\s+(?:the\s+)?(?:function|`[^`\n]+`|[A-Za-z_]\w*(?:\([^)\n]*\))?))?(?:\s+(?:with|for|on)\s+(?:this|the\s+given|that)\s+input)?(?:[ \t]*[:=][ \t]*|\s+(?:is|would\s+be|will\s+be|should\s+be)\s+)(?:\*\*)?(?=([^\n]{1,2000}))/gi,
    /\b(?:returns|generates|outputs|evaluates\s+to|yields)\s+(?:\*\*)?(?=([^\n]{1,2000}))/gi,
  ];
  let best: { at: number; value: string } | undefined;
  for (const re of patterns)
    for (const m of prose.matchAll(re)) {
      const at = m.index! + m[0].length;
      if (!best || at > best.at) best = { at, value: m[1] };
    }
  if (!best) return undefined;
  const v = best.value.replace(/^\s*\*\*/, "").trim();
  if (v.startsWith("`")) {
    const close = v.indexOf("`", 1);
    const inner = close > 0 ? v.slice(1, close).trim() : undefined;
    return inner ? inner : undefined;
  }
  return leadingLiteral(v);
}
