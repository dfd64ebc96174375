/**
 * Parsers for the two UTRL generators' outputs (prompts: stages/prompts/utrl_ut_*.v1.md, utrl_code_*.v1.md).
 * Pure text functions: nothing is evaluated. Function-task literals are parsed afterwards with the
 * executor's safe literal parser (stages/rl/cases.ts).
 *
 * A unit test is a list of test cases, each an input block and an output block:
 *
 *   ## Test Case 1
 *   Reasoning: …
 *   ### Input
 *   ```
 *   3
 *   1 2 3
 *   ```
 *   ### Output
 *   ```
 *   6
 *   ```
 *
 * Tolerated: `<think>…</think>` blocks (removed first: Qwen3 thinks before answering), any heading
 * style (`## Test Case 3`, `**Test case 3:**`, `Test Case #3`), bold or plain `Input:` / `Output:` /
 * `Expected Output` labels, language tags on fences (```text, ```plaintext …), one-line fences
 * (```5 3```), an unfenced one-line output after an `Output:` label, prose between blocks, and answers
 * without any "Test Case" heading (input/output pairs in
 * order). A case announced by a heading whose blocks are missing, or cut off by the length limit, is
 * returned as a malformed case with a named reason, so it counts in |U| and cannot be valid.
 *
 * Whole-response failures (reward 0): `empty_response`, `unclosed_think` (the answer never left the
 * thinking block), `truncated` (cut off before the first case), `no_cases`.
 * Per-case reasons: `missing_input`, `missing_output`, `truncated_case`.
 */

export interface RawCase {
  /** "ok", or why this case is malformed (it then counts as an invalid case). */
  status: "ok" | "missing_input" | "missing_output" | "truncated_case";
  /** The input block's text (stdio: stdin as written; function: the call literal). */
  input: string;
  /** The output block's text (stdio: expected stdout; function: the value literal). */
  output: string;
}

export type UtParse = { ok: true; cases: RawCase[] } | { ok: false; reason: "empty_response" | "unclosed_think" | "truncated" | "no_cases"; detail?: string };

export interface UtParseOptions {
  /** The choice's finish_reason: "length" marks a cut-off answer. */
  finishReason?: string;
}

/** Remove `<think>…</think>` blocks. `unclosed` when a block never closes (the rest was all thinking). */
export function stripThinking(text: string): { text: string; unclosed: boolean } {
  let out = "";
  let i = 0;
  const open = /<think>/gi;
  for (;;) {
    open.lastIndex = i;
    const m = open.exec(text);
    if (!m) {
      out += text.slice(i);
      return { text: out, unclosed: false };
    }
    out += text.slice(i, m.index);
    const close = text.toLowerCase().indexOf("</think>", m.index + m[0].length);
    if (close < 0) return { text: out, unclosed: true };
    i = close + "</think>".length;
  }
}

/** A stray `</think>` with no opener (templates that put the opener in the prompt): keep what follows it. */
function afterStrayClose(text: string): string {
  const lower = text.toLowerCase();
  const close = lower.lastIndexOf("</think>");
  if (close >= 0 && lower.lastIndexOf("<think>", close) < 0) return text.slice(close + "</think>".length);
  return text;
}

interface Block {
  /** Index of the opening fence and just past the closing one (text.length when unclosed). */
  start: number;
  end: number;
  body: string;
  lang: string;
  closed: boolean;
}

/** Words that, alone after an opening ``` on its line, are a language tag rather than content. */
const LANG_TAGS = new Set([
  "text", "txt", "plaintext", "plain", "python", "python3", "py", "input", "output", "stdin", "stdout", "in", "out",
  "bash", "sh", "shell", "console", "json", "none", "cpp", "c++", "java", "javascript", "js",
]);

/** Fenced blocks in order. The body keeps its text verbatim except the newline before the closing fence. */
export function fencedBlocks(text: string): Block[] {
  const out: Block[] = [];
  let i = 0;
  for (;;) {
    const start = text.indexOf("```", i);
    if (start < 0) return out;
    let p = start + 3;
    while (text[p] === "`") p++; // ```` fences
    const fence = text.slice(start, p);
    const eol = text.indexOf("\n", p);
    const lineRest = text.slice(p, eol < 0 ? text.length : eol);
    const sameLineClose = lineRest.indexOf(fence);
    if (sameLineClose >= 0) {
      // One-line block: ```5 3```
      out.push({ start, end: p + sameLineClose + fence.length, body: lineRest.slice(0, sameLineClose).trim(), lang: "", closed: true });
      i = p + sameLineClose + fence.length;
      continue;
    }
    let lang = "";
    let bodyStart = p;
    const tag = lineRest.trim().toLowerCase();
    if (tag === "" || LANG_TAGS.has(tag)) {
      lang = tag;
      bodyStart = eol < 0 ? text.length : eol + 1;
    }
    // The closing fence: the same run of backticks at the start of a line (or anywhere after the body).
    const closeAt = findClose(text, fence, bodyStart);
    if (closeAt < 0) {
      out.push({ start, end: text.length, body: text.slice(bodyStart), lang, closed: false });
      return out;
    }
    let body = text.slice(bodyStart, closeAt);
    if (body.endsWith("\n")) body = body.slice(0, -1);
    if (body.endsWith("\r")) body = body.slice(0, -1);
    out.push({ start, end: closeAt + fence.length, body, lang, closed: true });
    i = closeAt + fence.length;
  }
}

function findClose(text: string, fence: string, from: number): number {
  // Prefer a fence at a line start; fall back to the first occurrence.
  let j = from;
  let first = -1;
  for (;;) {
    const k = text.indexOf(fence, j);
    if (k < 0) return first;
    if (text[k + fence.length] === "`") {
      j = k + fence.length + 1;
      continue;
    }
    if (first < 0) first = k;
    const ls = text.lastIndexOf("\n", k - 1) + 1;
    if (/^[ \t]*$/.test(text.slice(ls, k))) return k;
    j = k + fence.length;
  }
}

const CASE_HEADING = /^[ \t]*(?:#{1,6}[ \t]*)?(?:\*\*|__)?[ \t]*Test[ \t]*Case[ \t]*#?[ \t]*(\d+)\b[^\n]*$/gim;

const LABEL_WORD = /\b(input|stdin|arguments?|output|stdout)\b/gi;
const kindOf = (w: string): "input" | "output" => (/^(output|stdout)$/i.test(w) ? "output" : "input");

function lastWord(s: string): "input" | "output" | undefined {
  let last: string | undefined;
  LABEL_WORD.lastIndex = 0;
  for (let m; (m = LABEL_WORD.exec(s)); ) last = m[1];
  return last ? kindOf(last) : undefined;
}

/** A short label line: `### Input`, `**Expected Output:**`, `Standard input`, `Input 1:` … */
const LABEL_LINE = /^(?:expected|sample|standard|the)?\s*(input|stdin|arguments?|output|stdout)\s*(?:\d+)?$/i;

/**
 * Which label the prose before a block gives it: a label on the block's own line (`Input: ```5````), else
 * the last label line (a heading), else the last "input"/"output" word.
 */
function labelOf(prose: string): "input" | "output" | "other" {
  const nl = prose.lastIndexOf("\n");
  const sameLine = lastWord(prose.slice(nl + 1));
  if (sameLine) return sameLine;
  const lines = prose.split("\n");
  for (let k = lines.length - 1; k >= 0; k--) {
    const t = lines[k].replace(/[#*_:`>\-]/g, " ").replace(/\s+/g, " ").trim();
    const m = LABEL_LINE.exec(t);
    if (m) return kindOf(m[1]);
  }
  return lastWord(prose) ?? "other";
}

interface Labeled extends Block {
  label: "input" | "output" | "other";
}

function labeledBlocks(region: string): Labeled[] {
  const blocks = fencedBlocks(region);
  const out: Labeled[] = [];
  let prev = 0;
  for (const b of blocks) {
    out.push({ ...b, label: labelOf(region.slice(prev, b.start)) });
    prev = b.end;
  }
  return out;
}

/** Input/output pairs of one region, in order; an unpaired or cut-off block becomes a malformed case. */
function pairsOf(region: string, oneCase: boolean): RawCase[] {
  const blocks = labeledBlocks(region).filter((b) => b.label !== "other");
  const cases: RawCase[] = [];
  let pending: Labeled | undefined;
  for (const b of blocks) {
    if (b.label === "input") {
      if (pending && !oneCase) cases.push({ status: pending.closed ? "missing_output" : "truncated_case", input: pending.body, output: "" });
      if (pending && oneCase) continue; // a second input block in one case: keep the first
      pending = b;
    } else if (pending) {
      const status = pending.closed && b.closed ? "ok" : "truncated_case";
      cases.push({ status, input: pending.body, output: b.body });
      pending = undefined;
      if (oneCase) return cases;
    } else if (oneCase) {
      return [{ status: "missing_input", input: "", output: b.body }];
    } else {
      cases.push({ status: b.closed ? "missing_input" : "truncated_case", input: "", output: b.body });
    }
  }
  if (pending) cases.push({ status: pending.closed ? "missing_output" : "truncated_case", input: pending.body, output: "" });
  return cases;
}

/** The text after the last `Output:` label line of a case that has no output block (a one-line answer). */
function inlineOutput(region: string): string | undefined {
  const blocks = fencedBlocks(region);
  const after = blocks.length ? region.slice(blocks[blocks.length - 1].end) : region;
  const m = /^[ \t>*_#-]*(?:expected\s+)?(?:output|stdout)[ \t*_]*:[ \t*_]*(.+?)[ \t*_]*$/im.exec(after);
  if (!m) return undefined;
  const v = m[1].replace(/^`+|`+$/g, "").trim();
  return v === "" ? undefined : v;
}

/** Parse a UT generator's response into raw test cases (see the module comment). */
export function parseUtText(text: string, opts: UtParseOptions = {}): UtParse {
  const cut = opts.finishReason === "length";
  if (!text || !text.trim()) return { ok: false, reason: cut ? "truncated" : "empty_response" };
  const th = stripThinking(text);
  if (th.unclosed && !th.text.trim()) return { ok: false, reason: cut ? "truncated" : "unclosed_think" };
  const body = afterStrayClose(th.text);
  if (!body.trim()) return { ok: false, reason: cut ? "truncated" : "empty_response" };

  const heads: { at: number; lineEnd: number }[] = [];
  CASE_HEADING.lastIndex = 0;
  for (let m; (m = CASE_HEADING.exec(body)); ) heads.push({ at: m.index, lineEnd: m.index + m[0].length });
  let cases: RawCase[] = [];
  if (heads.length) {
    for (let k = 0; k < heads.length; k++) {
      const region = body.slice(heads[k].lineEnd, k + 1 < heads.length ? heads[k + 1].at : body.length);
      const got = pairsOf(region, true);
      if (got.length && got[0].status === "missing_output") {
        // An unfenced one-line answer after the input block: `**Output:** 15`.
        const inline = inlineOutput(region);
        cases.push(inline === undefined ? got[0] : { status: "ok", input: got[0].input, output: inline });
      } else if (got.length) cases.push(got[0]);
      else {
        const last = k === heads.length - 1;
        cases.push({ status: last && cut ? "truncated_case" : "missing_input", input: "", output: "" });
      }
    }
  } else {
    cases = pairsOf(body, false);
  }
  // A cut-off answer's last case is incomplete even when its blocks happen to be closed.
  if (cut && cases.length && cases[cases.length - 1].status === "ok") {
    const lastBlock = fencedBlocks(body).at(-1);
    if (lastBlock && !lastBlock.closed) cases[cases.length - 1] = { ...cases[cases.length - 1], status: "truncated_case" };
  }
  if (!cases.length) return { ok: false, reason: cut ? "truncated" : "no_cases" };
  return { ok: true, cases };
}

export type CodeExtract = { ok: true; code: string } | { ok: false; reason: "empty_response" | "unclosed_think" | "no_code" };

/**
 * The program in a code generator's response: the last ```python block, else the last closed fenced block,
 * else the whole answer (thinking removed). What does not build fails every case (Pass = 0).
 */
export function extractCode(text: string): CodeExtract {
  if (!text || !text.trim()) return { ok: false, reason: "empty_response" };
  const th = stripThinking(text);
  if (th.unclosed && !th.text.trim()) return { ok: false, reason: "unclosed_think" };
  const body = afterStrayClose(th.text);
  const blocks = fencedBlocks(body);
  const py = blocks.filter((b) => b.closed && /^(python3?|py)$/.test(b.lang));
  const closed = blocks.filter((b) => b.closed && b.body.trim());
  const pick = py.at(-1) ?? closed.at(-1);
  if (pick) return pick.body.trim() ? { ok: true, code: pick.body } : { ok: false, reason: "no_code" };
  const open = blocks.find((b) => !b.closed);
  const code = (open ? open.body : body).trim();
  return code ? { ok: true, code } : { ok: false, reason: "no_code" };
}
