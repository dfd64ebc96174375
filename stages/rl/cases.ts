/**
 * Reward rows and their test cases.
 *
 * A reward row (the batch file's line, the service's request item) is
 *   {"id", "kind": "stdio"|"function", "gt_code", "entry_point" (function tasks),
 *    "cases": [{"input", "output"}] | "ut_text" (the UT generator's raw response; "finish_reason" optional),
 *    "codes": [code, …] | "code_texts": [the code generator's raw responses, …]}
 * Test case texts: stdio — `input` is the stdin text, `output` the expected stdout; function tasks —
 * `input` is a call literal `f(1, [2, 3])`, `output` a Python literal `6`. Literals are parsed with the
 * executor's safe parser (never evaluated); a case that does not parse is malformed: it counts in |U| and
 * is never valid.
 */
import { z } from "zod";
import { UserError } from "../../pipeline/errors.ts";
import { parseCallLiteral, parseLiteral } from "../../pipeline/executor/literals.ts";
import type { CallArgs, PyValue } from "../../pipeline/executor/types.ts";
import type { RlConfig } from "./config.ts";
import { extractCode, parseUtText, type RawCase } from "./ut-parser.ts";

export type TaskKind = "stdio" | "function";

export const caseSchema = z.strictObject({ input: z.string(), output: z.string() });
export type CaseText = z.infer<typeof caseSchema>;

export const rewardRowSchema = z
  .looseObject({
    id: z.union([z.string().min(1), z.number()]).transform(String),
    kind: z.enum(["stdio", "function"]),
    gt_code: z.string(),
    // null is accepted for absent fields (Python clients send None).
    entry_point: z.string().min(1).nullish().transform((v) => v ?? undefined),
    cases: z.array(caseSchema).nullish().transform((v) => v ?? undefined),
    ut_text: z.string().nullish().transform((v) => v ?? undefined),
    finish_reason: z.string().nullish().transform((v) => v ?? undefined),
    codes: z.array(z.string()).nullish().transform((v) => v ?? undefined),
    code_texts: z.array(z.string()).nullish().transform((v) => v ?? undefined),
  })
  .superRefine((r, ctx) => {
    if ((r.cases === undefined) === (r.ut_text === undefined))
      ctx.addIssue({ code: "custom", message: 'needs exactly one of "cases" (a list of {input, output}) or "ut_text" (the UT generator\'s response)' });
    if (r.codes !== undefined && r.code_texts !== undefined)
      ctx.addIssue({ code: "custom", message: 'give "codes" (programs) or "code_texts" (raw responses), not both' });
    if (r.kind === "function" && !r.entry_point) ctx.addIssue({ code: "custom", message: 'a function task needs "entry_point"' });
  });
export type RewardRow = z.output<typeof rewardRowSchema>;

/** Check one row; the message names the field and the fix (for batch files and HTTP 400 answers). */
export function parseRewardRow(raw: unknown, where: string): RewardRow {
  const r = rewardRowSchema.safeParse(raw);
  if (r.success) return r.data;
  const i = r.error.issues[0];
  const at = i.path.length ? `field "${i.path.join(".")}": ` : "";
  throw new UserError(`${where}: ${at}${i.message}`);
}

/** One test case ready to run: the program input and the expected value, or why it cannot be used. */
export interface Case {
  status: "ok" | string;
  /** stdio: stdin text (with a final newline); function: call arguments. */
  input?: string | CallArgs;
  /** stdio: expected stdout text; function: the expected value. */
  expected?: string | PyValue;
  /** The texts as written (for reports). */
  inputText: string;
  outputText: string;
}

/** stdin as a judge feeds it: the case's text ending with a newline. */
export function stdinOf(text: string): string {
  return text === "" || text.endsWith("\n") ? text : text + "\n";
}

/** A stdio or function case from its texts (generated cases are also checked against max_case_chars). */
export function toCase(kind: TaskKind, c: { input: string; output: string; status?: string }, entryPoint: string | undefined, maxChars?: number): Case {
  const base = { inputText: c.input, outputText: c.output };
  if (c.status && c.status !== "ok") return { ...base, status: c.status };
  if (maxChars !== undefined && (c.input.length > maxChars || c.output.length > maxChars)) return { ...base, status: "case_too_long" };
  if (kind === "stdio") return { ...base, status: "ok", input: stdinOf(c.input), expected: c.output };
  const call = parseCallLiteral(stripLabel(c.input.trim()), entryPoint);
  if (!call.ok) return { ...base, status: /calls '/.test(call.detail ?? "") ? "wrong_function" : "unparsable_input" };
  const out = parseLiteral(stripLabel(c.output.trim()));
  if (!out.ok) return { ...base, status: "unparsable_output" };
  return { ...base, status: "ok", input: call.args, expected: out.value };
}

/** `Arguments: f(1)` / `Output: 3` written inside the block: drop the label. */
function stripLabel(s: string): string {
  return s.replace(/^(?:arguments|input|output|expected(?: output)?)\s*:\s*/i, "");
}

export interface PreparedRow {
  row: RewardRow;
  /** "ok", or why the unit test is unusable as a whole (reward 0). */
  status: string;
  /** The cases in |U| (at most max_cases). */
  cases: Case[];
  /** Cases left out beyond max_cases. */
  overCap: number;
  /** Programs to score: one per code (a code that could not be extracted is `undefined`: it passes nothing). */
  codes: (string | undefined)[];
  /** Why each missing code is missing. */
  codeReasons: (string | undefined)[];
}

/** Parse a row's unit test and codes (no execution). */
export function prepareRow(row: RewardRow, cfg: Pick<RlConfig, "max_cases" | "max_case_chars">): PreparedRow {
  let status = "ok";
  let raw: RawCase[] = [];
  if (row.cases) raw = row.cases.map((c) => ({ status: "ok", input: c.input, output: c.output }));
  else {
    const p = parseUtText(row.ut_text ?? "", { finishReason: row.finish_reason });
    if (p.ok) raw = p.cases;
    else status = p.reason;
  }
  if (status === "ok" && raw.length === 0) status = "no_cases";
  const overCap = Math.max(0, raw.length - cfg.max_cases);
  const cases = raw.slice(0, cfg.max_cases).map((c) => toCase(row.kind, c, row.entry_point, cfg.max_case_chars));
  const codes: (string | undefined)[] = [];
  const codeReasons: (string | undefined)[] = [];
  if (row.code_texts) {
    for (const t of row.code_texts) {
      const e = extractCode(t);
      codes.push(e.ok ? e.code : undefined);
      codeReasons.push(e.ok ? undefined : e.reason);
    }
  } else
    for (const c of row.codes ?? []) {
      codes.push(c.trim() ? c : undefined);
      codeReasons.push(c.trim() ? undefined : "no_code");
    }
  return { row, status, cases: status === "ok" ? cases : [], overCap, codes, codeReasons };
}
