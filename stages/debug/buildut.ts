/**
 * BuildUT (UTGen paper, Alg. 1): a suite of up to n unit tests for a problem description d and a code f.
 *
 * Model generators: UT inputs are sampled from the generator's prompt (utgen_ut: UTGen / prompted failing
 * UTs, with the code; random_joint_ut: randomly-sampled UTs, description only) — n at a time, at most
 * `ut_attempts_factor` × n in all (sample indices 0, 1, … of one request, so a re-run reads the same samples
 * from the cache). For each parsed input, k outputs are sampled by continuing the generator's own turn up to
 * "### Output" (or the reference's separate output prompt); each vote is read with the reference's
 * extract_output and the safe literal parser; votes are grouped by the project's output comparison (or the
 * reference's str() keys); the biggest group wins (ties: the first seen) and the UT is kept when the winner
 * has at least the threshold of the k votes. Inputs equal to one already tried are skipped. The suite stops at
 * n UTs. Without self-consistency the sample's own output is used.
 *
 * Heuristic generator (no model): fuzzed inputs (stages/heuristic/fuzz.ts) labelled by the canonical
 * solution's output — the reference's `*_oracle` unit modes; `targeted` puts inputs on which the code
 * disagrees with the label first (a stand-in for UTGen), otherwise they come in fuzzing order (random UTs).
 */
import type { CallArgs, PyValue } from "../../pipeline/executor/types.ts";
import { formatCall, formatPyValue, judgeCall, outputsMatch, parseCallLiteral, parseLiteral } from "../../pipeline/executor/index.ts";
import { hashValue, stableStringify } from "../../pipeline/util.ts";
import type { ChatMessage } from "../../pipeline/llm/types.ts";
import { Rng } from "../common.ts";
import { callKey, entryParams, exampleCallTexts, fuzzInputs, planFuzz } from "../heuristic/fuzz.ts";
import { parseUnitTest } from "../parsers.ts";
import type { PromptTemplate } from "../prompts/index.ts";
import { voteThreshold, type BuildUtSettings } from "./config.ts";
import { goldOutputs, type ProgramBatcher } from "./exec.ts";
import { ask, type Asker, type CallTally, type SampleIndex } from "./llm.ts";
import { renderDebug, type DebugProblem } from "./problems.ts";
import { innerArgs, pyStr, upToOutput, voteValue } from "./text.ts";

export interface UnitTest {
  args: CallArgs;
  /** The call as parsed: `f(1, [2])`. */
  call: string;
  output: PyValue;
  /** Python literal of the output. */
  outputText: string;
  /** Sample index of the generator response it came from. */
  sample: number;
  /** The vote (self-consistency): the winner's votes, the parsable votes, k, and the tally (answer, votes). */
  votes?: { winner: number; valid: number; k: number; tally: [string, number][] };
  /** Diagnostics (utdebug.diagnose_uts): gold's output on the input and whether the UT's output equals it. */
  gold?: { status: string; value?: string; outputCorrect: boolean };
  /** Labelled by the canonical solution (heuristic generator). */
  oracle?: boolean;
}

export type AttemptStatus = "accepted" | "unparsable_input" | "no_output" | "duplicate_input" | "no_votes" | "below_threshold" | "llm_error" | "suite_full";

export interface UtAttempt {
  sample: number;
  status: AttemptStatus;
  detail?: string;
  call?: string;
  output?: string;
  tally?: [string, number][];
  validVotes?: number;
}

export interface Suite {
  uts: UnitTest[];
  attempts: UtAttempt[];
  /** Diagnostics still running (they fill `uts[i].gold`; nothing in the loop waits for them). */
  pending?: Promise<void>;
}

export type GeneratorSpec =
  | { kind: "llm"; model: string; template: PromptTemplate; sc: boolean }
  | { kind: "heuristic"; targeted: boolean };

export interface BuildUtDeps {
  asker?: Asker;
  batcher: ProgramBatcher;
  settings: BuildUtSettings;
  /** The separate output prompt (sc_prompt: separate). */
  unitOutput: PromptTemplate;
  executor: Record<string, unknown>;
  diagnose: boolean;
  /** Per-call limit of the code on fuzzed inputs (heuristic, targeted). */
  utTimeoutS: number;
  seed: number;
  heuristic: HeuristicUts;
}

/** Alg. 1 for one code. `buildIndex` numbers the suites a job builds (the heuristic random generator rotates by it). */
export async function buildUt(p: DebugProblem, code: string, gen: GeneratorSpec, deps: BuildUtDeps, tally: CallTally, buildIndex = 0, idx?: SampleIndex): Promise<Suite> {
  const suite = gen.kind === "llm" ? await buildUtLlm(p, code, gen, deps, tally, idx) : await deps.heuristic.suite(p, code, gen.targeted, deps, buildIndex);
  if (deps.diagnose && suite.uts.length && !suite.uts[0].oracle) {
    // Gold's outputs only annotate the trace: the suite is returned at once, the caller awaits `pending` at the end.
    suite.pending = goldOutputs(deps.batcher, p, suite.uts.map((u) => u.args), deps.executor).then((gold) =>
      suite.uts.forEach((u, i) => {
        const g = gold[i];
        u.gold = {
          status: g.status,
          ...(g.status === "ok" ? { value: clip(formatPyValue(g.value as PyValue)) } : {}),
          outputCorrect: g.status === "ok" && outputsMatch(g.value as PyValue, u.output, { mode: "utgen", useSet: p.useSet }),
        };
      }),
    );
  }
  return suite;
}

const clip = (s: string, n = 2000) => (s.length > n ? `${s.slice(0, n)}… (${s.length} chars)` : s);

interface Parsed {
  sample: number;
  text: string;
  args?: CallArgs;
  call?: string;
  /** Without SC: the response's own output. */
  output?: PyValue;
  failure?: { status: AttemptStatus; detail?: string };
}

async function buildUtLlm(p: DebugProblem, code: string, gen: Extract<GeneratorSpec, { kind: "llm" }>, deps: BuildUtDeps, tally: CallTally, idx?: SampleIndex): Promise<Suite> {
  const s = deps.settings;
  const a = deps.asker;
  if (!a) throw new Error("BuildUT: a model generator needs the LLM client");
  const user: ChatMessage = { role: "user", content: gen.template.render({ signature: p.signature, description: p.prompt, code, entry_point: p.entryPoint }) };
  const utSampling = { ...s.sampling.ut, extra: s.extra_body };
  const budget = s.ut_attempts_factor * s.n;
  // The same prompt asked again in one job (a prompt without the code — the Random and Prompted baselines —
  // for every rebuild and every code of a best-of-N pool, or the same code rebuilt) gets fresh samples, as the
  // reference's sampling does: each asking reserves its own range of `budget` sample indices.
  const offset = idx ? idx.next(gen.model ?? "", [user], utSampling) * budget : 0;
  const uts: UnitTest[] = [];
  const attempts: UtAttempt[] = [];
  const tried = new Set<string>();
  let used = 0;
  while (uts.length < s.n && used < budget) {
    const want = Math.min(budget - used, s.n - uts.length);
    const res = await ask(a, { messages: [user], n: offset + used + want, first: offset + used, sampling: utSampling, templateHash: gen.template.hash, model: gen.model }, tally);
    const wave: Parsed[] = [];
    for (let i = offset + used; i < offset + used + want; i++) {
      const text = res.texts[i] ?? "";
      if (res.error) {
        wave.push({ sample: i, text, failure: { status: "llm_error", detail: res.error } });
        continue;
      }
      wave.push(parseSample(p, i, text, res.finishReasons[i], gen.sc));
    }
    used += want;
    // Duplicates of inputs already tried are skipped before any vote is asked for.
    for (const w of wave) {
      if (w.failure || !w.args) continue;
      const key = stableStringify(w.args);
      if (tried.has(key)) w.failure = { status: "duplicate_input" };
      else tried.add(key);
    }
    const voted = await Promise.all(wave.map((w) => (w.failure || !gen.sc ? undefined : vote(p, user, w, gen, deps, tally))));
    wave.forEach((w, j) => {
      const at: UtAttempt = { sample: w.sample, status: "accepted", ...(w.call ? { call: w.call } : {}) };
      if (w.failure) {
        at.status = w.failure.status;
        if (w.failure.detail) at.detail = w.failure.detail;
        attempts.push(at);
        return;
      }
      let output: PyValue | undefined;
      let votes: UnitTest["votes"];
      if (gen.sc) {
        const v = voted[j]!;
        at.tally = v.tally;
        at.validVotes = v.valid;
        if (v.error) {
          at.status = "llm_error";
          at.detail = v.error;
        } else if (v.winner === undefined) at.status = "no_votes";
        else if (v.winnerVotes < voteThreshold(s.sc_threshold, s.k, s.sc_threshold_rounding)) at.status = "below_threshold";
        else {
          output = v.winner;
          votes = { winner: v.winnerVotes, valid: v.valid, k: s.k, tally: v.tally };
        }
      } else output = w.output;
      if (at.status === "accepted" && uts.length >= s.n) at.status = "suite_full";
      if (at.status === "accepted" && output !== undefined) {
        at.output = clip(formatPyValue(output));
        uts.push({ args: w.args!, call: w.call!, output, outputText: at.output, sample: w.sample, ...(votes ? { votes } : {}) });
      }
      attempts.push(at);
    });
    if (res.error) break;
  }
  return { uts, attempts };
}

function parseSample(p: DebugProblem, sample: number, text: string, finishReason: string | undefined, sc: boolean): Parsed {
  // With SC only the input matters here (votes give the output); without, the response's own output too.
  const pu = parseUnitTest(text, p.entryPoint, { expectOutput: false, finishReason });
  if (!pu.ok) return { sample, text, failure: { status: "unparsable_input", detail: pu.reason + (pu.detail ? `: ${pu.detail}` : "") } };
  const call = parseCallLiteral(pu.argsText, p.entryPoint);
  if (!call.ok) return { sample, text, failure: { status: "unparsable_input", detail: `unparsable_arguments: ${call.detail ?? ""}` } };
  const out: Parsed = { sample, text, args: call.args, call: clip(formatCall(p.entryPoint, call.args)) };
  if (!sc) {
    const lit = pu.outputText === undefined ? undefined : parseLiteral(pu.outputText);
    if (!lit || !lit.ok) return { ...out, failure: { status: "no_output", detail: lit && !lit.ok ? `unparsable_output: ${lit.detail ?? ""}` : "no_output" } };
    out.output = lit.value;
  }
  return out;
}

interface VoteResult {
  winner?: PyValue;
  winnerVotes: number;
  valid: number;
  tally: [string, number][];
  error?: string;
}

/** k output samples for one UT input, grouped and counted. */
async function vote(p: DebugProblem, user: ChatMessage, w: Parsed, gen: Extract<GeneratorSpec, { kind: "llm" }>, deps: BuildUtDeps, tally: CallTally): Promise<VoteResult> {
  const s = deps.settings;
  const a = deps.asker!;
  const sampling = { ...s.sampling.sc, extra: s.extra_body };
  const req =
    s.sc_prompt === "continue"
      ? {
          messages: [user, { role: "assistant" as const, content: upToOutput(w.text) }],
          sampling: { ...sampling, extra: { ...s.extra_body, continue_final_message: true, add_generation_prompt: false } },
          templateHash: gen.template.hash,
        }
      : {
          messages: [{ role: "user" as const, content: renderDebug(deps.unitOutput, { signature: p.signature, description: p.prompt, entry_point: p.entryPoint, unit_input: innerArgs(w.call!) }) }],
          sampling,
          templateHash: deps.unitOutput.hash,
        };
  const res = await ask(a, { ...req, n: s.k, model: gen.model }, tally);
  if (res.error) return { winnerVotes: 0, valid: 0, tally: [], error: res.error };
  const values = res.texts.map((t) => voteValue(t)).filter((v): v is NonNullable<typeof v> => v !== undefined).map((v) => v.value);
  return { ...tallyVotes(values, s.sc_vote_match, p.useSet), valid: values.length };
}

/** Group votes (first seen value represents its group), biggest group first, ties in order of first appearance. */
export function tallyVotes(values: PyValue[], match: "compare" | "str", useSet: boolean): { winner?: PyValue; winnerVotes: number; tally: [string, number][] } {
  const groups: { rep: PyValue; key: string; count: number }[] = [];
  for (const v of values) {
    const key = pyStr(v);
    const g = groups.find((x) => (match === "str" ? x.key === key : outputsMatch(v, x.rep, { mode: "utgen", useSet })));
    if (g) g.count++;
    else groups.push({ rep: v, key, count: 1 });
  }
  const sorted = groups.map((g, i) => ({ ...g, i })).sort((x, y) => y.count - x.count || x.i - y.i);
  const tally: [string, number][] = sorted.map((g) => [clip(formatPyValue(g.rep), 200), g.count]);
  return sorted.length ? { winner: sorted[0].rep, winnerVotes: sorted[0].count, tally } : { winnerVotes: 0, tally };
}

// ------------------------------------------------------------------------------- heuristic (oracle) ----

interface Candidate {
  args: CallArgs;
  output: PyValue;
}

/** Fuzzed inputs with the canonical solution's outputs, per problem (memoised). */
export class HeuristicUts {
  private readonly memo = new Map<string, Promise<Candidate[]>>();

  constructor(private readonly count = 40) {}

  candidates(p: DebugProblem, deps: BuildUtDeps): Promise<Candidate[]> {
    const key = hashValue([p.taskId, p.gold, p.entryPoint, p.prompt, p.testList]);
    let m = this.memo.get(key);
    if (!m) {
      m = this.fuzz(p, deps);
      this.memo.set(key, m);
    }
    return m;
  }

  private async fuzz(p: DebugProblem, deps: BuildUtDeps): Promise<Candidate[]> {
    const ex = deps.batcher.executor;
    const goldTimeout = Number(deps.executor.gold_timeout_s ?? 1);
    const params = await entryParams(ex, p.gold, p.entryPoint, 5);
    if (!params) return [];
    const rng = new Rng(deps.seed, "utdebug-fuzz", p.taskId);
    const seeds: CallArgs[] = [];
    for (const t of exampleCallTexts([p.prompt, ...p.testList].join("\n"), p.entryPoint)) {
      const c = parseCallLiteral(t, p.entryPoint);
      if (c.ok) seeds.push(c.args);
    }
    const probe = async (calls: CallArgs[]) => (await deps.batcher.run({ program: p.gold, entryPoint: p.entryPoint, inputs: calls, timeoutS: goldTimeout })).map((r) => r.status === "ok");
    const plan = await planFuzz({ params, seeds, rng, probe });
    const inputs = fuzzInputs(plan, rng, this.count);
    const gold = await deps.batcher.run({ program: p.gold, entryPoint: p.entryPoint, inputs, timeoutS: goldTimeout });
    const seen = new Set<string>();
    const out: Candidate[] = [];
    inputs.forEach((args, i) => {
      if (gold[i].status !== "ok" || seen.has(callKey(args))) return;
      seen.add(callKey(args));
      out.push({ args, output: gold[i].value as PyValue });
    });
    return out;
  }

  /** n labelled inputs: failing ones first when targeted, else a window of the fuzzing order rotated by `buildIndex`. */
  async suite(p: DebugProblem, code: string, targeted: boolean, deps: BuildUtDeps, buildIndex: number): Promise<Suite> {
    const cands = await this.candidates(p, deps);
    const n = deps.settings.n;
    let picked: Candidate[];
    if (targeted) {
      const res = await deps.batcher.run({ program: code, entryPoint: p.entryPoint, inputs: cands.map((c) => c.args), timeoutS: deps.utTimeoutS, loadTimeoutS: deps.utTimeoutS });
      const failing = cands.filter((c, i) => judgeCall(res[i], c.output, { mode: "utgen", useSet: p.useSet }) !== "pass");
      const passing = cands.filter((c, i) => judgeCall(res[i], c.output, { mode: "utgen", useSet: p.useSet }) === "pass");
      picked = [...failing, ...passing].slice(0, n);
    } else {
      picked = [];
      for (let j = 0; j < Math.min(n, cands.length); j++) picked.push(cands[(buildIndex * n + j) % cands.length]);
    }
    const uts: UnitTest[] = picked.map((c, i) => {
      const outputText = clip(formatPyValue(c.output));
      return { args: c.args, call: clip(formatCall(p.entryPoint, c.args)), output: c.output, outputText, sample: i, oracle: true, gold: { status: "ok", value: outputText, outputCorrect: true } };
    });
    return { uts, attempts: uts.map((u) => ({ sample: u.sample, status: "accepted" as const, call: u.call, output: u.outputText, detail: "labelled by the canonical solution" })) };
  }
}
