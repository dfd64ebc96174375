/**
 * `utdebug`: debugging with generated unit tests (UTGen paper §3.3, §5.2, §5.4; Alg. 1–2) and the No-UT
 * baseline, scored by pass@1 on each problem's private tests. For every set (MBPP+Fix, MBPP+Fix (Hard),
 * HE+Fix rows, or `--dataset FILE`) and every method — each UT generator in `utdebug.generators` (a model or
 * LoRA adapter name asked with the UTGen prompt), the baselines (`no-ut`, `random`, `prompted`) and the
 * Table 4 ablations — every problem is debugged for `rounds` rounds by the `debugger` model (stages/debug/
 * loop.ts), concurrently under the LLM client's limit, each round's sandbox runs of all problems batched
 * into shared runPrograms calls. Each problem's trace (every UT, vote tally, feedback, reply, validation,
 * decision, pass@1 per round) is written atomically to `results/<set>/<method>/<task>.json` under a content
 * key: a re-run reuses finished problems and makes no model calls; after kill -9 the rest resume, their
 * earlier model calls answered by the response cache. Writes summary.json, summary.md and report.html;
 * with --json the last stdout line is `{"sets": {SET: {METHOD: {"problems", "pass_at_1", …}}}}`.
 * On the heuristic backend (no model) the generator is `heuristic` (fuzzed inputs labelled by the canonical
 * solution, failing ones first), `random` takes them in fuzzing order, and the debugger is a repair search
 * over the mutation operators (stages/debug/debugger.ts).
 */
import * as path from "node:path";
import PQueue from "p-queue";
import type { CommandContext, CommandStage } from "../pipeline/stage.ts";
import { UserError } from "../pipeline/errors.ts";
import { llmConfigForStage } from "../pipeline/config.ts";
import { executorConfigSchema } from "../pipeline/executor/index.ts";
import type { LlmClient } from "../pipeline/llm/types.ts";
import { atomicWrite, hashValue, writeJson } from "../pipeline/util.ts";
import { isHeuristic, sourceHash } from "./common.ts";
import { loadTemplate } from "./prompts/index.ts";
import { HeuristicUts, type BuildUtDeps } from "./debug/buildut.ts";
import { utdebugConfigSchema, type UtdebugConfig } from "./debug/config.ts";
import { heuristicDebugger, llmDebugger, type Debugger } from "./debug/debugger.ts";
import { GoldEvaluator, ProgramBatcher } from "./debug/exec.ts";
import { debugLoop, methodKey, type LoopDeps, type MethodSpec, type ProblemTrace } from "./debug/loop.ts";
import { loadDebugTemplates, type DebugSet } from "./debug/problems.ts";
import { renderHtml, renderMarkdown, summarize, type MethodSummary, type SetResult } from "./debug/report.ts";
import { noBarrier, prepareSet, resolveSets, resultFile, RoundBarrier, stageClient, storedResult, type Prepared } from "./debug/run.ts";
import { pct } from "./debug/stats.ts";

/** Bump when the debugging logic changes results: every stored problem result is recomputed. */
export const UTDEBUG_VERSION = "1";

/** The methods of this config, in report order: generators, baselines, then ablations. */
export async function resolveMethods(cfg: UtdebugConfig, heuristic: boolean, baseModel: string | undefined): Promise<MethodSpec[]> {
  const utgen = await loadTemplate("utgen_ut");
  const random = await loadTemplate("random_joint_ut");
  const out: MethodSpec[] = [];
  const add = (m: MethodSpec) => {
    if (out.some((x) => x.name === m.name)) throw new UserError(`utdebug: two methods are named "${m.name}" (a generator name repeats a baseline or another generator): rename one`);
    out.push(m);
  };
  for (const g of cfg.generators) {
    if (heuristic && g !== "heuristic")
      throw new UserError(`utdebug.generators lists the model "${g}", but llm.backend is heuristic (no model): use generators: [heuristic], or set llm.backend: openai`);
    add({ name: g, backtrack: cfg.backtrack, generator: heuristic ? { kind: "heuristic", targeted: true } : { kind: "llm", model: g, template: utgen, sc: cfg.sc } });
  }
  for (const b of cfg.baselines) {
    if (b === "no-ut") {
      add({ name: "no-ut", backtrack: false });
      continue;
    }
    if (!heuristic && !baseModel) throw new UserError(`utdebug.baselines ${b} needs a model: set utdebug.base_model (or utdebug.debugger / llm.model)`);
    const gen = heuristic ? { kind: "heuristic" as const, targeted: b === "prompted" } : { kind: "llm" as const, model: baseModel!, template: b === "random" ? random : utgen, sc: cfg.sc };
    add({ name: b, backtrack: cfg.backtrack, generator: gen });
  }
  const utMethods = out.filter((m) => m.generator);
  for (const a of cfg.ablations)
    for (const m of utMethods) {
      if (a === "no-sc" && (m.generator!.kind !== "llm" || !m.generator!.sc)) continue;
      if (a === "no-backtrack" && !m.backtrack) continue;
      const g = m.generator!;
      add({
        name: `${m.name}-${a}`,
        base: m.name,
        ablation: a,
        backtrack: a === "no-backtrack" ? false : m.backtrack,
        generator: a === "no-sc" && g.kind === "llm" ? { ...g, sc: false } : g,
      });
    }
  if (!out.length) throw new UserError("utdebug has no method to run: list utdebug.generators and/or utdebug.baselines");
  return out;
}

interface ResultFile extends ProblemTrace {}

export const utdebugStage: CommandStage<UtdebugConfig> = {
  kind: "command",
  name: "utdebug",
  description: "UTDebug: debug with generated UTs (self-consistency + backtracking), No-UT baseline, pass@1",
  configSchema: utdebugConfigSchema,
  flags: {
    dataset: { type: "string", help: "run on this UTGenDebug-format .jsonl or .parquet file instead of the config's sets (one set named after the file)" },
    json: { type: "boolean", help: "print the summary as one JSON object (last stdout line)" },
  },
  async run(ctx: CommandContext<UtdebugConfig>): Promise<number> {
    const cfg = utdebugConfigSchema.parse(ctx.config ?? {});
    const heuristic = await isHeuristic(ctx.root, "utdebug");
    const stageLlm = await llmConfigForStage(ctx.root, "utdebug");
    const debuggerModel = heuristic ? "heuristic" : (cfg.debugger ?? (stageLlm.model || undefined));
    if (!heuristic && !debuggerModel) throw new UserError("utdebug needs a debugger model: set utdebug.debugger (or llm.model)");
    const baseModel = cfg.base_model ?? debuggerModel;
    const methods = await resolveMethods(cfg, heuristic, baseModel);
    const sets = await resolveSets(ctx, cfg.sets, cfg.limit, "utdebug");
    const json = ctx.flags.json === true;
    const ex = await ctx.getExecutor();
    const execCfg = executorConfigSchema.parse(ctx.root.executor ?? {});
    const batcher = new ProgramBatcher(ex);
    const gold = new GoldEvaluator(batcher, { limits: cfg.pass_limits, executor: ctx.root.executor ?? {}, cacheDir: ctx.cacheDir });
    const templates = await loadDebugTemplates();
    const semantics = Object.fromEntries(Object.entries(execCfg).filter(([k]) => /timeout|calibrat|memory/.test(k)));
    // Everything that decides a problem's result, except the problem and the method (added per job).
    const common = {
      v: UTDEBUG_VERSION,
      debugger: debuggerModel,
      templates: Object.fromEntries(Object.entries(templates).map(([k, t]) => [k, t.hash])),
      settings: {
        rounds: cfg.rounds,
        flow: cfg.flow,
        accept: cfg.accept,
        code_prompt: cfg.code_prompt,
        n: cfg.n,
        k: cfg.k,
        sc_threshold: cfg.sc_threshold,
        sc_threshold_rounding: cfg.sc_threshold_rounding,
        sc_vote_match: cfg.sc_vote_match,
        sc_prompt: cfg.sc_prompt,
        ut_attempts_factor: cfg.ut_attempts_factor,
        sampling: cfg.sampling,
        extra_body: cfg.extra_body,
        ut_timeout_s: cfg.ut_timeout_s,
        pass_limits: cfg.pass_limits,
        diagnose_uts: cfg.diagnose_uts,
      },
      llm: heuristic ? { backend: "heuristic", seed: cfg.seed, source: sourceHash("debug/debugger.ts", "debug/buildut.ts", "heuristic/fuzz.ts", "heuristic/mutate.ts", "heuristic/ast_tools.py") } : { seed: stageLlm.seed, extra_body: stageLlm.extra_body },
      semantics,
    };

    let llm: LlmClient | undefined;
    const results: SetResult[] = [];
    try {
      if (!heuristic) llm = await stageClient(ctx, "utdebug", debuggerModel);
      const asker = llm ? { ctx, llm } : undefined;
      const dbg: Debugger = llm ? llmDebugger(asker!, debuggerModel!, templates, cfg.sampling.debug, cfg.extra_body) : heuristicDebugger(batcher, { seed: cfg.seed, utTimeoutS: cfg.ut_timeout_s });
      const buildDeps: BuildUtDeps = {
        asker,
        batcher,
        settings: cfg,
        unitOutput: templates.unit_output,
        executor: ctx.root.executor ?? {},
        diagnose: cfg.diagnose_uts,
        utTimeoutS: cfg.ut_timeout_s,
        seed: cfg.seed,
        heuristic: new HeuristicUts(),
      };

      // Plan: every (set, method, problem); reuse the stored results with the same key.
      interface Todo {
        set: DebugSet;
        method: MethodSpec;
        prep: Prepared;
        key: string;
        file: string;
      }
      const todo: Todo[] = [];
      const prepared = new Map<string, { ready: Prepared[]; dropped: SetResult["dropped"] }>();
      const done = new Map<string, ProblemTrace>();
      let reused = 0;
      for (const set of sets) {
        const prep = await prepareSet(ex, set, ctx.cacheDir);
        prepared.set(set.name, prep);
        for (const d of prep.dropped) ctx.counters.add(`dropped_${d.reason}`, 1);
        if (prep.dropped.length) ctx.log.warn(`utdebug: ${set.name}: ${prep.dropped.length} problem(s) left out (private tests not extractable): ${prep.dropped.map((d) => d.taskId).join(", ")}`);
        for (const method of methods)
          for (const pr of prep.ready) {
            const key = hashValue({ ...common, problem: hashValue(pr.problem), tests: hashValue(pr.tests), method: methodKey(method) });
            const file = resultFile(ctx.stageDir, set.name, method.name, pr.problem.taskId);
            const hit = await storedResult<ResultFile>(file, key);
            if (hit) {
              reused++;
              done.set(file, hit);
            } else todo.push({ set, method, prep: pr, key, file });
          }
      }
      ctx.counters.add("problems_reused", reused);
      ctx.counters.add("problems_debugged", todo.length);
      if (todo.length) ctx.log.info(`utdebug: ${todo.length} (set, method, problem) run(s) to compute, ${reused} reused`);
      else ctx.log.info(`utdebug: all ${reused} (set, method, problem) results reused; no model calls`);

      const t0 = performance.now();
      const lockstep = cfg.schedule === "lockstep";
      const barrier = lockstep ? new RoundBarrier(todo.length) : noBarrier;
      const width = lockstep ? Math.max(1, todo.length) : (cfg.concurrency ?? (heuristic ? 8 : 4 * (stageLlm.concurrency ?? 32)));
      const queue = new PQueue({ concurrency: width });
      const deps: LoopDeps = {
        batcher,
        gold,
        debugger: dbg,
        templates,
        buildUt: buildDeps,
        settings: { rounds: cfg.rounds, flow: cfg.flow, accept: cfg.accept, codePrompt: cfg.code_prompt, utTimeoutS: cfg.ut_timeout_s },
        sync: (r) => barrier.arrive(r),
      };
      let finished = 0;
      let loops = todo.length;
      // A queue slot is held for a problem's rounds only; its pass@1 runs complete outside the queue, so the
      // next problem's model calls start while they run.
      const runOne = async (t: Todo): Promise<{ done: Promise<void> }> => {
        let trace: Promise<Omit<ProblemTrace, "v" | "key" | "set">>;
        try {
          if (ctx.signal.aborted) throw new UserError("utdebug interrupted");
          trace = (await debugLoop(t.prep.problem, t.prep.tests, t.method, deps)).trace;
        } finally {
          barrier.leave();
          // No loop left to wait on urgent sandbox work: pass@1 runs may use every worker.
          if (--loops === 0) {
            batcher.setBackgroundSlots(batcher.workers);
            ctx.log.info(`utdebug: every round done after ${((performance.now() - t0) / 1000).toFixed(1)} s; completing pass@1 on the private tests`);
          }
        }
        const complete = trace.then(async (tr) => {
          const rec: ResultFile = { v: UTDEBUG_VERSION, key: t.key, set: t.set.name, ...tr };
          await writeJson(t.file, rec);
          done.set(t.file, rec);
          finished++;
          if (!json && (finished % 10 === 0 || finished === todo.length)) ctx.log.info(`utdebug: ${finished}/${todo.length} problem runs done`);
        });
        return { done: complete };
      };
      const completions: Promise<void>[] = [];
      try {
        await Promise.all(
          todo.map((t) =>
            queue.add(async () => {
              const { done: d } = await runOne(t);
              d.catch(() => {}); // awaited below; a failure must not go unhandled meanwhile
              completions.push(d);
            }),
          ),
        );
        await Promise.all(completions);
      } catch (e) {
        queue.clear();
        await queue.onIdle();
        await Promise.allSettled(completions);
        throw e;
      }
      ctx.counters.add("executor_requests", batcher.stats.requests);
      ctx.counters.add("executor_programs", batcher.stats.programs);
      ctx.counters.add("executor_urgent_programs", batcher.stats.urgentPrograms);
      ctx.counters.add("executor_urgent_wait_ms", Math.round(batcher.stats.urgentWaitMs));

      for (const set of sets) {
        const prep = prepared.get(set.name)!;
        const sr: SetResult = { name: set.name, source: set.source, rows: set.problems.length, dropped: prep.dropped, methods: [] };
        for (const m of methods) {
          const traces = prep.ready.map((pr) => done.get(resultFile(ctx.stageDir, set.name, m.name, pr.problem.taskId))!);
          sr.methods.push({ info: { name: m.name, ...(m.base ? { base: m.base, ablation: m.ablation } : {}) }, summary: summarize(traces, cfg.rounds, cfg.bootstrap), traces });
        }
        results.push(sr);
      }
    } finally {
      if (llm) {
        const st = llm.stats();
        ctx.counters.add("llm_requests", st.requests);
        ctx.counters.add("llm_cached_samples", st.cacheHits);
        await llm.close();
      }
    }

    const out: Record<string, Record<string, MethodSummary & { dropped: Record<string, number> }>> = {};
    for (const s of results) {
      const dropped: Record<string, number> = {};
      for (const d of s.dropped) dropped[d.reason] = (dropped[d.reason] ?? 0) + 1;
      out[s.name] = Object.fromEntries(s.methods.map((m) => [m.info.name, { ...m.summary, dropped }]));
    }
    const settings =
      `Debugger ${debuggerModel}; ${cfg.rounds} round(s), flow ${cfg.flow}, accept ${cfg.accept}, backtracking ${cfg.backtrack ? "on" : "off"}; ` +
      (heuristic
        ? `n = ${cfg.n} UTs per suite: fuzzed inputs labelled by the canonical solution; `
        : `n = ${cfg.n} UTs per suite (at most ${cfg.ut_attempts_factor}·n sampled), self-consistency ${cfg.sc ? `k = ${cfg.k}, winner ≥ ${cfg.sc_threshold} of the votes (${cfg.sc_threshold_rounding}), votes matched by ${cfg.sc_vote_match}, ${cfg.sc_prompt} prompt` : "off"}; `) +
      `pass@1 on the private tests with ${cfg.pass_limits} limits.`;
    await writeJson(path.join(ctx.stageDir, "summary.json"), { sets: out, settings });
    await atomicWrite(path.join(ctx.stageDir, "summary.md"), renderMarkdown(results, { rounds: cfg.rounds, boot: cfg.bootstrap, settings }));
    await atomicWrite(path.join(ctx.stageDir, "report.html"), renderHtml(results, { rounds: cfg.rounds, boot: cfg.bootstrap, settings }));
    if (json) {
      ctx.stdout(JSON.stringify({ sets: out }));
      return 0;
    }
    for (const s of results)
      for (const m of s.methods)
        ctx.stdout(`${s.name}\t${m.info.name}\tpass@1 ${pct(m.summary.pass_at_1)} [${pct(m.summary.ci[0])}, ${pct(m.summary.ci[1])}]\tby round ${m.summary.per_round.map(pct).join(" → ")}\t(${m.summary.problems} problems)`);
    ctx.stdout(`wrote ${path.join(ctx.stageDir, "summary.md")} and ${path.join(ctx.stageDir, "report.html")}`);
    return 0;
  },
};
