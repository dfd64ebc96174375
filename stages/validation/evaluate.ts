/**
 * Scores generated unit tests for one problem: parse each response with the safe parsers, run gold on every
 * parsed input (the reference's 1 s validity limit), run the buggy code on the inputs gold accepted (limit
 * calibrated on gold's time), compare with `outputsMatch` in `utgen` mode, and produce one record per test.
 * All generated code runs inside the sandboxed executor; nothing is evaluated in Node.
 */
import type { CallArgs, CallResult, Executor, PyValue } from "../../pipeline/executor/types.ts";
import { formatCall, formatPyValue, outputsMatch, parseCallLiteral, parseLiteral } from "../../pipeline/executor/index.ts";
import { parseUnitTest } from "../parsers.ts";
import type { Problem, Scoring } from "./datasets.ts";
import { scoreTest } from "./metrics.ts";

export interface Response {
  run: number;
  sample: number;
  text: string;
  finishReason?: string;
}

export interface ExecOutcome {
  status: CallResult["status"] | "skipped";
  /** Python literal text of the returned value. */
  value?: string;
  error?: string;
  ms?: number;
}

export interface TestRecord {
  run: number;
  sample: number;
  /** "ok", or why the arguments could not be parsed (all three metrics fail). */
  parse: string;
  parseDetail?: string;
  /** The call as parsed: `f(1, [2])`. */
  input?: string;
  /** "ok", "no_output" or "unparsable_output" (output accuracy fails, attack still counts). */
  outputParse?: string;
  predicted?: string;
  gold?: ExecOutcome;
  buggy?: ExecOutcome & { timeoutS?: number };
  goldValid: boolean;
  attack: boolean;
  outputCorrect: boolean;
  both: boolean;
  /** false: left out of the output-accuracy and Acc∩Attack denominators ("he" scoring, unparsable arguments). */
  outputScored?: boolean;
  /** The raw response, kept (truncated) when it could not be parsed, for diagnosis. */
  raw?: string;
}

export interface EvalDeps {
  executor: Executor;
  goldTimeoutS: number;
  /** Per-call limit for the buggy code given gold's measured time on that input. */
  buggyTimeout(goldMs: number): number;
}

const RAW_KEEP = 2000;
/** Literal texts kept in the records (comparisons use the full values; huge ones are shortened for reports). */
const VALUE_KEEP = 2000;
const clip = (s: string) => (s.length > VALUE_KEEP ? `${s.slice(0, VALUE_KEEP)}… (${s.length} chars)` : s);

function describeResult(r: CallResult): ExecOutcome {
  const o: ExecOutcome = { status: r.status, ms: Math.round(r.ms * 10) / 10 };
  if (r.status === "ok") o.value = clip(formatPyValue(r.value as PyValue));
  else o.error = clip([r.errorType, r.message].filter(Boolean).join(": ") || r.status);
  return o;
}

interface Parsed {
  rec: TestRecord;
  args?: CallArgs;
  predicted?: PyValue;
}

export function parseResponse(problem: Problem, resp: Response): Parsed {
  const rec: TestRecord = {
    run: resp.run,
    sample: resp.sample,
    parse: "ok",
    goldValid: false,
    attack: false,
    outputCorrect: false,
    both: false,
  };
  // Output not required here: as in the reference, a test whose output is missing still counts for attack.
  const pu = parseUnitTest(resp.text, problem.entryPoint, { expectOutput: false, finishReason: resp.finishReason });
  if (!pu.ok) {
    rec.parse = pu.reason;
    if (pu.detail) rec.parseDetail = pu.detail;
    rec.raw = resp.text.slice(0, RAW_KEEP);
    return { rec };
  }
  const call = parseCallLiteral(pu.argsText, problem.entryPoint);
  if (!call.ok) {
    rec.parse = "unparsable_arguments";
    rec.parseDetail = call.detail;
    rec.raw = resp.text.slice(0, RAW_KEEP);
    return { rec };
  }
  rec.input = clip(formatCall(problem.entryPoint, call.args));
  let predicted: PyValue | undefined;
  if (pu.outputText === undefined) {
    rec.outputParse = resp.finishReason === "length" ? "truncated_output" : "no_output";
  } else {
    const lit = parseLiteral(pu.outputText);
    if (lit.ok) {
      rec.outputParse = "ok";
      predicted = lit.value;
      rec.predicted = clip(formatPyValue(lit.value));
    } else {
      rec.outputParse = "unparsable_output";
      rec.predicted = pu.outputText.slice(0, RAW_KEEP);
    }
  }
  return { rec, args: call.args, predicted };
}

/**
 * Evaluate every response of one problem (batched executor calls: one for gold, one for buggy), scored the
 * way the set says (metrics.ts: "mbpp", the default, or "he").
 */
export async function evaluateProblem(deps: EvalDeps, problem: Problem, responses: Response[], scoring: Scoring = "mbpp"): Promise<TestRecord[]> {
  const parsed = responses.map((r) => parseResponse(problem, r));
  if (scoring === "he") for (const p of parsed) if (p.rec.parse !== "ok") p.rec.outputScored = false;
  const runnable = parsed.filter((p) => p.args !== undefined);
  if (runnable.length > 0) {
    const gold = await deps.executor.runCalls({
      program: problem.gold,
      entryPoint: problem.entryPoint,
      inputs: runnable.map((p) => p.args!),
      timeoutS: deps.goldTimeoutS,
    });
    runnable.forEach((p, i) => (p.rec.gold = describeResult(gold[i])));
    const valid = runnable.map((p, i) => ({ p, g: gold[i] })).filter((x) => x.g.status === "ok");
    for (const { p } of runnable.map((p, i) => ({ p, g: gold[i] })).filter((x) => x.g.status !== "ok"))
      p.rec.buggy = { status: "skipped" };
    if (valid.length > 0) {
      const timeoutS = Math.max(...valid.map((x) => deps.buggyTimeout(x.g.ms)));
      const buggy = await deps.executor.runCalls({
        program: problem.buggy,
        entryPoint: problem.entryPoint,
        inputs: valid.map((x) => x.p.args!),
        timeoutS,
      });
      valid.forEach(({ p, g }, i) => {
        const b = buggy[i];
        p.rec.buggy = { ...describeResult(b), timeoutS };
        const flags = scoreTest({
          parse: "ok",
          goldIsNone: g.value === null,
          goldStatus: g.status,
          buggyStatus: b.status,
          buggyMatchesGold:
            b.status === "ok" && outputsMatch(b.value as PyValue, g.value as PyValue, { mode: "utgen", useSet: problem.useSet }),
          predictedParsed: p.predicted !== undefined,
          predictedMatchesGold:
            p.predicted !== undefined &&
            outputsMatch(g.value as PyValue, p.predicted, { mode: "utgen", useSet: problem.useSet }),
        }, scoring);
        Object.assign(p.rec, flags);
      });
    }
  }
  return parsed.map((p) => p.rec);
}

/** Failure tally of a list of records: argument-level reasons and output-level reasons. */
export function failureReasons(recs: TestRecord[]): Record<string, number> {
  const out: Record<string, number> = {};
  const bump = (k: string) => (out[k] = (out[k] ?? 0) + 1);
  for (const r of recs) {
    if (r.parse !== "ok") bump(r.parse);
    else if (r.outputParse && r.outputParse !== "ok") bump(r.outputParse);
  }
  return out;
}
