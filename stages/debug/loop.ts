/**
 * UTDebug (UTGen paper, Alg. 2) and the No-UT baseline for one problem and one method, with a trace of every
 * step (suite, votes, feedback, reply, validation, decision) and pass@1 after every round.
 *
 * The debugger chat is the reference's: the code-generation prompt as the first user turn, the code to debug
 * as the assistant turn ("```\n<code>\n```"), then per round the feedback turn (ut_feedback: "The above code
 * is incorrect and does not pass the testcase." with Input / Output / Expected of the first failing UT) and
 * the debugger's reply; the code is taken from a reply with the reference's extract_code.
 *
 * flow "paper" (Alg. 2): each round with an accepted edit (and the first) builds the suite U for the current
 * code and runs the code on it; no failing UT (or no UT at all) ends the debugging; otherwise the debugger is
 * asked for a fix, the fix runs on U, and it replaces the code when its pass rate rises (`accept: rises`; or
 * does not fall: `not_falls`) — else it is discarded (backtracking): the chat keeps only accepted exchanges,
 * and the next round asks again for a fresh sample on the same suite. Without backtracking every fix is kept.
 *
 * flow "reference" (mbpp_utdebug.py --backtrack): turn 0 builds the suite for the starting code and gives
 * feedback; each later turn takes the debugger's reply, builds the suite for that new code (when the last
 * turn kept its edit), validates it on the previous turn's suite (kept unless its rate falls — `not_falls`),
 * then runs the (possibly restored) code on the suite for the next feedback. The chat repeats the starting
 * assistant turn, keeps discarded replies without a feedback turn after them, and a problem without any UT
 * is asked again without feedback and its next code kept unvalidated — all as the reference does.
 *
 * No-UT (no_ut_mbpp.py): each turn the debugger critiques the current code with the No-UT feedback prompt;
 * "correct" (its decision rule) ends the debugging, otherwise the critique becomes the next user turn.
 */
import type { ChatMessage } from "../../pipeline/llm/types.ts";
import { hashValue, sha256 } from "../../pipeline/util.ts";
import type { GoldTests } from "../gold-check.ts";
import { buildUt, type BuildUtDeps, type GeneratorSpec, type Suite, type UnitTest } from "./buildut.ts";
import type { Critique, Debugger, Hint } from "./debugger.ts";
import { evalCode, type GoldEvaluator, type ProgramBatcher, type UtRun } from "./exec.ts";
import { newTally, SampleIndex, type CallTally } from "./llm.ts";
import { codeGenerationTurn, renderDebug, startingReply, type DebugProblem, type DebugTemplates } from "./problems.ts";
import { argsStr, execOutputStr, extractCode, pyStr } from "./text.ts";

export interface MethodSpec {
  /** The method's name in reports and JSON (a generator model, `random`, `no-ut`, `<m>-no-sc` …). */
  name: string;
  /** The method it ablates (Table 4), if any. */
  base?: string;
  ablation?: "no-sc" | "no-backtrack";
  /** UT generator; none for No-UT. */
  generator?: GeneratorSpec;
  backtrack: boolean;
}

export interface LoopSettings {
  rounds: number;
  flow: "paper" | "reference";
  accept: "rises" | "not_falls";
  codePrompt: "auto" | "mbpp" | "humaneval";
  utTimeoutS: number;
}

export interface LoopDeps {
  batcher: ProgramBatcher;
  gold: GoldEvaluator;
  debugger: Debugger;
  templates: DebugTemplates;
  buildUt: BuildUtDeps;
  settings: LoopSettings;
  /** Lock-step schedule: resolves when every problem has reached round `r` (no-op when concurrent). */
  sync(r: number): Promise<void>;
}

export interface TraceUt {
  call: string;
  output: string;
  sample: number;
  votes?: UnitTest["votes"];
  gold?: UnitTest["gold"];
  oracle?: boolean;
}

export interface SuiteTrace {
  /** Which code it was built for: the current code, or (reference flow) the new candidate. */
  for: "current" | "candidate";
  uts: TraceUt[];
  attempts: Suite["attempts"];
}

export interface RunTrace {
  passed: number;
  total: number;
  /** Per UT: verdict and what the code gave (str(), as the feedback shows it). */
  results: { verdict: string; output: string }[];
}

export interface RoundTrace {
  /** 0: the starting code (reference flow and No-UT: its suite / critique); 1..m: debugging rounds. */
  round: number;
  suite?: SuiteTrace;
  /** The current code on the suite (before the fix). */
  before?: RunTrace;
  feedback?: { ut: number; input: string; output: string; expected: string; text: string };
  critique?: { text: string; saysCorrect: boolean; sample?: number; error?: string };
  reply?: { text: string; code: string; sample?: number; error?: string; repair?: string };
  /** The reply's code on the validating suite. */
  after?: RunTrace;
  decision?: "accepted" | "backtracked" | "kept_unvalidated";
  stop?: "no_failing_ut" | "no_ut" | "says_correct";
  /** pass@1 of the code at the end of this round. */
  pass: boolean;
  goldPassed: number;
  goldTotal: number;
  codeHash: string;
}

export interface ProblemTrace {
  v: string;
  key: string;
  set: string;
  method: string;
  taskId: string;
  entryPoint: string;
  /** pass@1 after round 0 (the starting code) … m. */
  curve: boolean[];
  pass: boolean;
  initialPass: boolean;
  /** Round after which nothing changed any more (early stop), if any. */
  stoppedAt?: number;
  edits: { accepted: number; backtracked: number; unvalidated: number };
  uts: { suites: number; built: number };
  llm: CallTally;
  finalCode: string;
  rounds: RoundTrace[];
}

const short = (s: string, n = 4000) => (s.length > n ? `${s.slice(0, n)}… (${s.length} chars)` : s);
const codeHash = (c: string) => sha256(c).slice(0, 12);

/** The trace of a suite; its UT diagnostics (gold's outputs) are filled in when they arrive. */
function traceSuite(j: Job, s: Suite, forWhat: SuiteTrace["for"]): SuiteTrace {
  const t: SuiteTrace = {
    for: forWhat,
    uts: s.uts.map((u) => ({ call: u.call, output: u.outputText, sample: u.sample, ...(u.votes ? { votes: u.votes } : {}), ...(u.gold ? { gold: u.gold } : {}), ...(u.oracle ? { oracle: true } : {}) })),
    attempts: s.attempts,
  };
  if (s.pending) defer(j, s.pending.then(() => s.uts.forEach((u, i) => u.gold && (t.uts[i].gold = u.gold))));
  return t;
}

/** Keep a trace annotation to await when the loop ends (handled now, so an early failure is not unhandled). */
function defer(j: Job, p: Promise<unknown>): void {
  p.catch(() => {});
  j.pending.push(p);
}

function traceRun(r: UtRun, p: DebugProblem): RunTrace {
  return { passed: r.passed, total: r.verdicts.length, results: r.results.map((x, i) => ({ verdict: r.verdicts[i], output: short(execOutputStr(x, p.entryPoint), 500) })) };
}

/** The feedback turn for the first failing UT of a run (the reference's get_unit + unit_regenerate_prompt). */
function feedbackFor(p: DebugProblem, tpl: DebugTemplates, suite: Suite, run: UtRun): { idx: number; text: string; hint: Hint; trace: RoundTrace["feedback"] } | undefined {
  const idx = run.verdicts.findIndex((v) => v !== "pass");
  if (idx < 0) return undefined;
  const ut = suite.uts[idx];
  const input = argsStr(ut.args);
  const output = execOutputStr(run.results[idx], p.entryPoint);
  const expected = pyStr(ut.output);
  const text = renderDebug(tpl.ut_feedback, { wrong_testcase_input: input, wrong_testcase_output: output, wrong_testcase_expected: expected });
  return { idx, text, hint: { args: ut.args, expected: ut.output }, trace: { ut: idx, input: short(input, 1000), output: short(output, 1000), expected: short(expected, 1000), text: short(text) } };
}

interface Job {
  p: DebugProblem;
  tests: GoldTests;
  method: MethodSpec;
  deps: LoopDeps;
  tally: CallTally;
  idx: SampleIndex;
  rounds: RoundTrace[];
  suites: number;
  built: number;
  edits: ProblemTrace["edits"];
  /** Work that only annotates the trace (pass@1 per round, UT diagnostics): awaited when the problem ends. */
  pending: Promise<unknown>[];
}

/**
 * Close a round: the trace entry now, its pass@1 when the private tests have run. The loop never waits for
 * pass@1 (nothing it decides depends on it), so the model calls of the next round are not held up by it.
 */
function endRound(j: Job, r: Omit<RoundTrace, "pass" | "goldPassed" | "goldTotal" | "codeHash">, code: string): void {
  const t: RoundTrace = { ...r, pass: false, goldPassed: 0, goldTotal: 0, codeHash: codeHash(code) };
  j.rounds.push(t);
  defer(
    j,
    j.deps.gold.evaluate(j.p, j.tests, code).then((g) => {
      t.pass = g.pass;
      t.goldPassed = g.passed;
      t.goldTotal = g.total;
    }),
  );
}

async function suiteFor(j: Job, code: string): Promise<Suite> {
  const s = await buildUt(j.p, code, j.method.generator!, j.deps.buildUt, j.tally, j.suites, j.idx);
  j.suites++;
  j.built += s.uts.length;
  return s;
}

const keeps = (accept: LoopSettings["accept"], post: number, pre: number) => (accept === "rises" ? post > pre : post >= pre);

/** Debug one problem with one method; returns its trace (without set / key, which the stage adds). */
export async function debugProblem(p: DebugProblem, tests: GoldTests, method: MethodSpec, deps: LoopDeps): Promise<Omit<ProblemTrace, "v" | "key" | "set">> {
  return (await debugLoop(p, tests, method, deps)).trace;
}

/**
 * Run the rounds; resolves when the loop is over (no more model calls or urgent sandbox runs) with the trace
 * still to complete — its pass@1 runs and diagnostics — so a scheduler can start the next problem meanwhile.
 */
export async function debugLoop(p: DebugProblem, tests: GoldTests, method: MethodSpec, deps: LoopDeps): Promise<{ trace: Promise<Omit<ProblemTrace, "v" | "key" | "set">> }> {
  const j: Job = { p, tests, method, deps, tally: newTally(), idx: new SampleIndex(), rounds: [], suites: 0, built: 0, edits: { accepted: 0, backtracked: 0, unvalidated: 0 }, pending: [] };
  const start = startingReply(p.buggy);
  const code0 = extractCode(start);
  let final: string;
  if (!method.generator) final = await noUt(j, start, code0);
  else if (deps.settings.flow === "paper") final = await paperFlow(j, start, code0);
  else final = await referenceFlow(j, start, code0);
  return { trace: Promise.all(j.pending).then(() => finishTrace(j, final)) };
}

function finishTrace(j: Job, final: string): Omit<ProblemTrace, "v" | "key" | "set"> {
  const { deps, method, p } = j;
  // Rounds after an early stop keep the code: the curve repeats the last value.
  const m = deps.settings.rounds;
  const curve: boolean[] = [];
  let last = j.rounds[0];
  for (let r = 0; r <= m; r++) {
    const t = j.rounds.find((x) => x.round === r);
    if (t) last = t;
    curve.push(last.pass);
  }
  const lastRound = j.rounds[j.rounds.length - 1];
  return {
    method: method.name,
    taskId: p.taskId,
    entryPoint: p.entryPoint,
    curve,
    pass: curve[m],
    initialPass: curve[0],
    ...(lastRound.round < m ? { stoppedAt: lastRound.round } : {}),
    edits: j.edits,
    uts: { suites: j.suites, built: j.built },
    llm: j.tally,
    finalCode: final,
    rounds: j.rounds,
  };
}

function firstChat(j: Job, start: string): ChatMessage[] {
  return [
    { role: "user", content: codeGenerationTurn(j.deps.templates, j.p, j.deps.settings.codePrompt) },
    { role: "assistant", content: start },
  ];
}

/** Alg. 2. */
async function paperFlow(j: Job, start: string, code0: string): Promise<string> {
  const { settings: s, debugger: dbg, batcher } = j.deps;
  const chat = firstChat(j, start);
  let code = code0;
  await j.deps.sync(0);
  endRound(j, { round: 0 }, code);
  let rebuild = true;
  let suite: Suite = { uts: [], attempts: [] };
  let before: UtRun | undefined;
  for (let r = 1; r <= s.rounds; r++) {
    await j.deps.sync(r);
    const rt: Omit<RoundTrace, "pass" | "goldPassed" | "goldTotal" | "codeHash"> = { round: r };
    if (rebuild) {
      suite = await suiteFor(j, code);
      rt.suite = traceSuite(j, suite, "current");
      before = await evalCode(batcher, j.p, code, suite.uts, s.utTimeoutS);
    }
    if (before && suite.uts.length) rt.before = traceRun(before, j.p);
    const fb = before && suite.uts.length ? feedbackFor(j.p, j.deps.templates, suite, before) : undefined;
    if (!fb) {
      rt.stop = suite.uts.length ? "no_failing_ut" : "no_ut";
      endRound(j, rt, code);
      return code;
    }
    rt.feedback = fb.trace;
    const ask: ChatMessage[] = [...chat, { role: "user", content: fb.text }];
    const reply = await dbg.fix(j.p, ask, fb.hint, code, j.idx, j.tally);
    const cand = extractCode(reply.text);
    rt.reply = { text: short(reply.text), code: short(cand), ...(reply.sample !== undefined ? { sample: reply.sample } : {}), ...(reply.error ? { error: reply.error } : {}), ...(reply.repair ? { repair: reply.repair } : {}) };
    const after = await evalCode(batcher, j.p, cand, suite.uts, s.utTimeoutS);
    rt.after = traceRun(after, j.p);
    if (!j.method.backtrack || keeps(s.accept, after.rate, before!.rate)) {
      rt.decision = j.method.backtrack ? "accepted" : "kept_unvalidated";
      if (j.method.backtrack) j.edits.accepted++;
      else j.edits.unvalidated++;
      code = cand;
      chat.push({ role: "user", content: fb.text }, { role: "assistant", content: reply.text });
      rebuild = true;
    } else {
      rt.decision = "backtracked";
      j.edits.backtracked++;
      rebuild = false;
    }
    endRound(j, rt, code);
  }
  return code;
}

/** mbpp_utdebug.py's turn structure (see the module comment). */
async function referenceFlow(j: Job, start: string, code0: string): Promise<string> {
  const { settings: s, debugger: dbg, batcher } = j.deps;
  const chat = firstChat(j, start);
  let current = code0;
  let suite: Suite | undefined;
  let tracker: { suite: Suite; rate: number } | undefined;
  let edited = true;
  let done = false;
  let hint: Hint | undefined;

  /** Run the current code on the suite; feedback (or the early stop) for the next turn. */
  const evaluate = async (rt: Omit<RoundTrace, "pass" | "goldPassed" | "goldTotal" | "codeHash">, op: string, toBacktrack: boolean) => {
    if (!suite || !suite.uts.length) {
      tracker = undefined;
      rt.stop = "no_ut";
      return;
    }
    const run = await evalCode(batcher, j.p, current, suite.uts, s.utTimeoutS);
    rt.before = traceRun(run, j.p);
    const fb = feedbackFor(j.p, j.deps.templates, suite, run);
    if (!fb) {
      done = true;
      tracker = undefined;
      rt.stop = "no_failing_ut";
      return;
    }
    chat.push({ role: "assistant", content: op });
    if (!toBacktrack) {
      chat.push({ role: "user", content: fb.text });
      rt.feedback = fb.trace;
    }
    tracker = { suite, rate: run.rate };
    hint = fb.hint;
  };

  await j.deps.sync(0);
  const rt0: Omit<RoundTrace, "pass" | "goldPassed" | "goldTotal" | "codeHash"> = { round: 0 };
  if (s.rounds > 0) {
    suite = await suiteFor(j, current);
    rt0.suite = traceSuite(j, suite, "current");
    await evaluate(rt0, start, false);
  }
  endRound(j, rt0, current);
  for (let t = 1; t <= s.rounds && !done; t++) {
    await j.deps.sync(t);
    const rt: Omit<RoundTrace, "pass" | "goldPassed" | "goldTotal" | "codeHash"> = { round: t };
    const reply = await dbg.fix(j.p, [...chat], hint, current, j.idx, j.tally);
    const cand = extractCode(reply.text);
    rt.reply = { text: short(reply.text), code: short(cand), ...(reply.sample !== undefined ? { sample: reply.sample } : {}), ...(reply.error ? { error: reply.error } : {}), ...(reply.repair ? { repair: reply.repair } : {}) };
    // The suite of the next feedback is built for the new code before it is validated (not after the
    // last turn, whose feedback nobody reads).
    if (edited && t < s.rounds) {
      suite = await suiteFor(j, cand);
      rt.suite = traceSuite(j, suite, "candidate");
    }
    let toBacktrack = false;
    if (tracker) {
      const after = await evalCode(batcher, j.p, cand, tracker.suite.uts, s.utTimeoutS);
      rt.after = traceRun(after, j.p);
      if (j.method.backtrack && !keeps(s.accept, after.rate, tracker.rate)) {
        toBacktrack = true;
        edited = false;
        rt.decision = "backtracked";
        j.edits.backtracked++;
      } else {
        current = cand;
        edited = true;
        rt.decision = j.method.backtrack ? "accepted" : "kept_unvalidated";
        if (j.method.backtrack) j.edits.accepted++;
        else j.edits.unvalidated++;
      }
    } else {
      current = cand;
      rt.decision = "kept_unvalidated";
      j.edits.unvalidated++;
    }
    if (t < s.rounds) await evaluate(rt, reply.text, toBacktrack);
    endRound(j, rt, current);
  }
  return current;
}

/** The No-UT baseline (no_ut_mbpp.py): self-critique, then regenerate; no validation. */
async function noUt(j: Job, start: string, code0: string): Promise<string> {
  const { settings: s, debugger: dbg } = j.deps;
  const chat = firstChat(j, start);
  let current = code0;
  let done = false;
  let hint: Hint | undefined;
  const critique = async (rt: Omit<RoundTrace, "pass" | "goldPassed" | "goldTotal" | "codeHash">, op: string) => {
    const c: Critique = await dbg.critique(j.p, current, j.idx, j.tally);
    rt.critique = { text: short(c.text), saysCorrect: c.saysCorrect, ...(c.sample !== undefined ? { sample: c.sample } : {}), ...(c.error ? { error: c.error } : {}) };
    if (c.saysCorrect) {
      done = true;
      rt.stop = "says_correct";
      return;
    }
    // The reference's layout repeats the starting assistant turn; the paper flow does not.
    if (s.flow === "reference" || rt.round > 0) chat.push({ role: "assistant", content: op });
    chat.push({ role: "user", content: c.text });
    hint = c.hint;
  };
  await j.deps.sync(0);
  const rt0: Omit<RoundTrace, "pass" | "goldPassed" | "goldTotal" | "codeHash"> = { round: 0 };
  if (s.rounds > 0) await critique(rt0, start);
  endRound(j, rt0, current);
  for (let t = 1; t <= s.rounds && !done; t++) {
    await j.deps.sync(t);
    const rt: Omit<RoundTrace, "pass" | "goldPassed" | "goldTotal" | "codeHash"> = { round: t };
    const reply = await dbg.fix(j.p, [...chat], hint, current, j.idx, j.tally);
    current = extractCode(reply.text);
    rt.reply = { text: short(reply.text), code: short(current), ...(reply.sample !== undefined ? { sample: reply.sample } : {}), ...(reply.error ? { error: reply.error } : {}), ...(reply.repair ? { repair: reply.repair } : {}) };
    rt.decision = "kept_unvalidated";
    j.edits.unvalidated++;
    if (t < s.rounds) await critique(rt, reply.text);
    endRound(j, rt, current);
  }
  return current;
}

/** Content key of a method (what decides its results), for the result keys. */
export function methodKey(m: MethodSpec): unknown {
  const g = m.generator;
  return {
    name: m.name,
    backtrack: m.backtrack,
    generator: !g ? null : g.kind === "llm" ? { kind: "llm", model: g.model, template: g.template.hash, sc: g.sc } : { kind: "heuristic", targeted: g.targeted },
  };
}

export const traceHash = (t: unknown) => hashValue(t).slice(0, 16);
