/**
 * `rerank`: best-of-N code selection with generated unit tests (UTGen paper §5.3, Table 3; UTRL's BoN-32).
 * For every problem of a set (UTGenDebug rows: the task prompt, signature and private tests; HE+ and MBPP+
 * problems whose private tests can be extracted), N codes are sampled from the code model with the
 * debugging prompt (one request, n = N). For each UT method — every model in `rerank.generators` (UTGen
 * prompt), `random` (description-only prompt) and `prompted` (UTGen prompt on the base model) — BuildUT
 * (Alg. 1, with self-consistency) builds n UTs for each code; the suites are pooled and de-duplicated (same
 * input and output), every code runs on the pool, and the code passing the most pooled UTs is chosen (ties:
 * `tie_break` — a seeded random pick among the tied codes, or the lowest sample index). Reported per method:
 * the chosen code's accuracy on the private tests with a bootstrap interval, beside the base accuracy of one
 * sample (sample 0; and the mean over the N), and the oracle (any of the N correct). Results are stored per
 * (set, method, problem) under a content key, as utdebug's, so a re-run makes no model call.
 * On the heuristic backend the N "samples" are the canonical solution and its single-edit mutants in a
 * seeded order (a stand-in sampler), and the UT methods are `heuristic` and `random` (stages/debug/buildut.ts).
 */
import * as path from "node:path";
import PQueue from "p-queue";
import { z } from "zod";
import type { CommandContext, CommandStage } from "../pipeline/stage.ts";
import { UserError } from "../pipeline/errors.ts";
import { llmConfigForStage } from "../pipeline/config.ts";
import { executorConfigSchema } from "../pipeline/executor/index.ts";
import type { LlmClient } from "../pipeline/llm/types.ts";
import { atomicWrite, hashValue, sha256, stableStringify, writeJson } from "../pipeline/util.ts";
import { isHeuristic, llmOverrideSchema, Rng, runAstTool, sourceHash } from "./common.ts";
import { loadTemplate } from "./prompts/index.ts";
import { setSchema } from "./validation/datasets.ts";
import { MUTATION_OPERATORS, orderMutants, type Mutant } from "./heuristic/mutate.ts";
import { buildUt, HeuristicUts, type BuildUtDeps, type GeneratorSpec, type UnitTest } from "./debug/buildut.ts";
import { bootstrapSchema, buildUtShape, samplingSchema } from "./debug/config.ts";
import { evalCode, GoldEvaluator, ProgramBatcher } from "./debug/exec.ts";
import { ask, newTally, SampleIndex, type Asker, type CallTally } from "./debug/llm.ts";
import { codeGenerationTurn, loadDebugTemplates, type DebugProblem } from "./debug/problems.ts";
import { mdToHtml } from "./debug/report.ts";
import { prepareSet, resolveSets, resultFile, stageClient, storedResult, type Prepared } from "./debug/run.ts";
import { bootstrapMean, ciText, pairedDiff, pct, signed } from "./debug/stats.ts";
import { extractCode } from "./debug/text.ts";
import { GOLD_CHECK_CALIBRATION } from "./gold-check.ts";

/** Bump when the selection logic changes results. */
export const RERANK_VERSION = "1";

export const rerankConfigSchema = z.strictObject({
  sets: z.array(setSchema).default([]),
  /** The code model N codes are sampled from (default: llm.model). */
  code_model: z.string().min(1).optional(),
  /** Codes per problem (the paper: 10; UTRL: 32). */
  n_codes: z.int().positive().default(10),
  /** Sampling of the codes (the paper's temperature 0.7, top-p 0.9). */
  code_sampling: samplingSchema(0.7, 8192),
  /** UT generators: model (or LoRA adapter) names asked with the UTGen prompt. */
  generators: z.array(z.string().min(1)).default([]),
  baselines: z.array(z.enum(["random", "prompted"])).default(["random", "prompted"]),
  /** Model of the baselines (default: the code model). */
  base_model: z.string().min(1).optional(),
  code_prompt: z.enum(["auto", "mbpp", "humaneval"]).default("auto"),
  ...buildUtShape,
  /** Ties between codes passing as many pooled UTs: `random` (a seeded pick) or `first` (lowest sample index). */
  tie_break: z.enum(["random", "first"]).default("random"),
  seed: z.int().default(0),
  ut_timeout_s: z.number().positive().default(2),
  pass_limits: z.enum(["calibrated", "fixed"]).default("calibrated"),
  diagnose_uts: z.boolean().default(false),
  concurrency: z.int().positive().optional(),
  bootstrap: bootstrapSchema,
  limit: z.int().positive().optional(),
  llm: llmOverrideSchema,
});
export type RerankConfig = z.infer<typeof rerankConfigSchema>;

interface RerankMethod {
  name: string;
  generator: GeneratorSpec;
}

interface CodeSample {
  code: string;
  hash: string;
  pass: boolean;
  goldPassed: number;
  goldTotal: number;
}

export interface RerankTrace {
  v: string;
  key: string;
  set: string;
  method: string;
  taskId: string;
  codes: CodeSample[];
  /** Pooled, de-duplicated UTs: the call, the expected output and which code's suite it came from first. */
  pool: { call: string; output: string; from: number }[];
  /** Pooled UTs each code passes. */
  scores: number[];
  tied: number[];
  chosen: number;
  pass: boolean;
  /** Sample 0 correct; share of the N correct; any correct. */
  base: boolean;
  baseMean: number;
  oracle: boolean;
  llm: CallTally;
}

interface Summary {
  problems: number;
  accuracy: number;
  ci: [number, number];
  base_accuracy: number;
  base_mean_accuracy: number;
  oracle: number;
  mean_pool: number;
  mean_tied: number;
  llm: CallTally;
}

async function resolveRerankMethods(cfg: RerankConfig, heuristic: boolean, baseModel: string | undefined): Promise<RerankMethod[]> {
  const utgen = await loadTemplate("utgen_ut");
  const random = await loadTemplate("random_joint_ut");
  const out: RerankMethod[] = [];
  const add = (m: RerankMethod) => {
    if (out.some((x) => x.name === m.name)) throw new UserError(`rerank: two methods are named "${m.name}": rename one`);
    out.push(m);
  };
  for (const g of cfg.generators) {
    if (heuristic && g !== "heuristic") throw new UserError(`rerank.generators lists the model "${g}", but llm.backend is heuristic (no model): use generators: [heuristic], or set llm.backend: openai`);
    add({ name: g, generator: heuristic ? { kind: "heuristic", targeted: true } : { kind: "llm", model: g, template: utgen, sc: cfg.sc } });
  }
  for (const b of cfg.baselines) {
    if (!heuristic && !baseModel) throw new UserError(`rerank.baselines ${b} needs a model: set rerank.base_model (or rerank.code_model / llm.model)`);
    add({ name: b, generator: heuristic ? { kind: "heuristic", targeted: b === "prompted" } : { kind: "llm", model: baseModel!, template: b === "random" ? random : utgen, sc: cfg.sc } });
  }
  if (!out.length) throw new UserError("rerank has no UT method to run: list rerank.generators and/or rerank.baselines");
  return out;
}

/** The heuristic backend's stand-in sampler: the canonical solution and its single-edit mutants, seeded order. */
async function heuristicCodes(batcher: ProgramBatcher, p: DebugProblem, n: number, seed: number): Promise<string[]> {
  let mutants: Mutant[] = [];
  try {
    mutants = (await runAstTool<{ mutants: Mutant[] }>(batcher.executor, { op: "mutants", code: p.gold, entry_point: p.entryPoint, operators: MUTATION_OPERATORS, max_per_operator: 10 })).mutants;
  } catch {
    mutants = [];
  }
  const pool = [p.gold, ...orderMutants(mutants, p.taskId, seed).map((m) => m.code)];
  return new Rng(seed, "rerank-codes", p.taskId).shuffle(pool.slice(0, Math.max(n, 1) * 2)).slice(0, n);
}

export const rerankStage: CommandStage<RerankConfig> = {
  kind: "command",
  name: "rerank",
  description: "best-of-N: pick among N sampled codes by the generated UTs they pass",
  configSchema: rerankConfigSchema,
  flags: {
    dataset: { type: "string", help: "run on this UTGenDebug-format .jsonl or .parquet file instead of the config's sets (one set named after the file)" },
    json: { type: "boolean", help: "print the summary as one JSON object (last stdout line)" },
  },
  async run(ctx: CommandContext<RerankConfig>): Promise<number> {
    const cfg = rerankConfigSchema.parse(ctx.config ?? {});
    const heuristic = await isHeuristic(ctx.root, "rerank");
    const stageLlm = await llmConfigForStage(ctx.root, "rerank");
    const codeModel = heuristic ? "heuristic" : (cfg.code_model ?? (stageLlm.model || undefined));
    if (!heuristic && !codeModel) throw new UserError("rerank needs a code model: set rerank.code_model (or llm.model)");
    const methods = await resolveRerankMethods(cfg, heuristic, cfg.base_model ?? codeModel);
    const sets = await resolveSets(ctx, cfg.sets, cfg.limit, "rerank");
    const json = ctx.flags.json === true;
    const ex = await ctx.getExecutor();
    const execCfg = executorConfigSchema.parse(ctx.root.executor ?? {});
    const batcher = new ProgramBatcher(ex);
    const gold = new GoldEvaluator(batcher, { limits: cfg.pass_limits, executor: ctx.root.executor ?? {}, cacheDir: ctx.cacheDir });
    const templates = await loadDebugTemplates();
    const common = {
      v: RERANK_VERSION,
      codeModel,
      templates: { code: templates.code_generation.hash, he: templates.he_code_generation.hash },
      settings: {
        n_codes: cfg.n_codes,
        code_sampling: cfg.code_sampling,
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
        tie_break: cfg.tie_break,
        seed: cfg.seed,
        ut_timeout_s: cfg.ut_timeout_s,
        pass_limits: cfg.pass_limits,
        calibration: GOLD_CHECK_CALIBRATION,
      },
      llm: heuristic ? { backend: "heuristic", source: sourceHash("rerank.ts", "debug/buildut.ts", "heuristic/fuzz.ts", "heuristic/mutate.ts", "heuristic/ast_tools.py") } : { seed: stageLlm.seed, extra_body: stageLlm.extra_body },
      semantics: Object.fromEntries(Object.entries(execCfg).filter(([k]) => /timeout|calibrat|memory/.test(k))),
    };

    let llm: LlmClient | undefined;
    const perSet: { name: string; source: string; rows: number; dropped: { taskId: string; reason: string; detail?: string }[]; methods: { name: string; traces: RerankTrace[] }[] }[] = [];
    try {
      if (!heuristic) llm = await stageClient(ctx, "rerank", codeModel);
      const asker: Asker | undefined = llm ? { ctx, llm } : undefined;
      const buildDeps: BuildUtDeps = { asker, batcher, settings: cfg, unitOutput: templates.unit_output, executor: ctx.root.executor ?? {}, diagnose: cfg.diagnose_uts, utTimeoutS: cfg.ut_timeout_s, seed: cfg.seed, heuristic: new HeuristicUts() };
      const codeMemo = new Map<string, Promise<{ codes: string[]; tally: CallTally }>>();
      const sampleCodes = (p: DebugProblem) => {
        // Keyed by content: two sets may share task ids (MBPP+Fix and its Hard split).
        const memoKey = hashValue(p);
        let m = codeMemo.get(memoKey);
        if (!m) {
          m = (async () => {
            const tally = newTally();
            if (!asker) return { codes: await heuristicCodes(batcher, p, cfg.n_codes, cfg.seed), tally };
            const t = templates.code_generation;
            const res = await ask(asker, { messages: [{ role: "user", content: codeGenerationTurn(templates, p, cfg.code_prompt) }], n: cfg.n_codes, sampling: { ...cfg.code_sampling, extra: cfg.extra_body }, templateHash: t.hash + templates.he_code_generation.hash, model: codeModel }, tally);
            return { codes: res.texts.map(extractCode), tally };
          })();
          codeMemo.set(memoKey, m);
        }
        return m;
      };

      interface Todo {
        set: string;
        method: RerankMethod;
        prep: Prepared;
        key: string;
        file: string;
      }
      const todo: Todo[] = [];
      const done = new Map<string, RerankTrace>();
      let reused = 0;
      const prepared = new Map<string, Prepared[]>();
      for (const set of sets) {
        const prep = await prepareSet(ex, set, ctx.cacheDir);
        prepared.set(set.name, prep.ready);
        for (const d of prep.dropped) ctx.counters.add(`dropped_${d.reason}`, 1);
        perSet.push({ name: set.name, source: set.source, rows: set.problems.length, dropped: prep.dropped, methods: [] });
        for (const method of methods)
          for (const pr of prep.ready) {
            const g = method.generator;
            const mk = g.kind === "llm" ? { model: g.model, template: g.template.hash, sc: g.sc } : g;
            const key = hashValue({ ...common, problem: hashValue(pr.problem), tests: hashValue(pr.tests), method: { name: method.name, ...mk } });
            const file = resultFile(ctx.stageDir, set.name, method.name, pr.problem.taskId);
            const hit = await storedResult<RerankTrace>(file, key);
            if (hit) {
              reused++;
              done.set(file, hit);
            } else todo.push({ set: set.name, method, prep: pr, key, file });
          }
      }
      ctx.counters.add("problems_reused", reused);
      ctx.counters.add("problems_ranked", todo.length);
      if (!todo.length) ctx.log.info(`rerank: all ${reused} (set, method, problem) results reused; no model calls`);
      else ctx.log.info(`rerank: ${todo.length} (set, method, problem) run(s) to compute, ${reused} reused`);

      const queue = new PQueue({ concurrency: cfg.concurrency ?? (heuristic ? 8 : 4 * (stageLlm.concurrency ?? 32)) });
      let finished = 0;
      const runOne = async (t: Todo) => {
        const p = t.prep.problem;
        const tally = newTally();
        const sampled = await sampleCodes(p);
        // The code samples' calls are counted once per problem: on its first method.
        if (t.method === methods[0]) Object.assign(tally, sampled.tally);
        // pass@1 of every sample runs in the background lane while the UTs are built (nothing below needs it).
        const codesP: Promise<CodeSample[]> = Promise.all(
          sampled.codes.map(async (code) => {
            const g = await gold.evaluate(p, t.prep.tests, code);
            return { code, hash: sha256(code).slice(0, 12), pass: g.pass, goldPassed: g.passed, goldTotal: g.total };
          }),
        );
        codesP.catch(() => {});
        // BuildUT for every code (in parallel), pooled and de-duplicated in code order.
        // One sample index per (problem, method): a prompt that does not depend on the code (Random, Prompted)
        // gets fresh samples for each code, as the reference samples anew; offsets follow code order (deterministic).
        const idx = new SampleIndex();
        const suites = await Promise.all(sampled.codes.map((code, i) => buildUt(p, code, t.method.generator, buildDeps, tally, i, idx)));
        await Promise.all(suites.map((s) => s.pending));
        const pool: (UnitTest & { from: number })[] = [];
        const seen = new Set<string>();
        suites.forEach((s, i) => {
          for (const u of s.uts) {
            const k = stableStringify([u.args, u.output]);
            if (seen.has(k)) continue;
            seen.add(k);
            pool.push({ ...u, from: i });
          }
        });
        const runs = await Promise.all(sampled.codes.map((code) => evalCode(batcher, p, code, pool, cfg.ut_timeout_s)));
        const scores = runs.map((r) => r.passed);
        const best = Math.max(...scores);
        const tied = scores.flatMap((s, i) => (s === best ? [i] : []));
        const chosen = cfg.tie_break === "first" ? tied[0] : new Rng(cfg.seed, "rerank-tie", t.set, p.taskId, t.method.name).pick(tied);
        const codes = await codesP;
        const rec: RerankTrace = {
          v: RERANK_VERSION,
          key: t.key,
          set: t.set,
          method: t.method.name,
          taskId: p.taskId,
          codes,
          pool: pool.map((u) => ({ call: u.call, output: u.outputText, from: u.from })),
          scores,
          tied,
          chosen,
          pass: codes[chosen]?.pass ?? false,
          base: codes[0]?.pass ?? false,
          baseMean: codes.length ? codes.filter((c) => c.pass).length / codes.length : 0,
          oracle: codes.some((c) => c.pass),
          llm: tally,
        };
        await writeJson(t.file, rec);
        done.set(t.file, rec);
        finished++;
        if (!json && (finished % 10 === 0 || finished === todo.length)) ctx.log.info(`rerank: ${finished}/${todo.length} problem runs done`);
      };
      try {
        await Promise.all(todo.map((t) => queue.add(() => runOne(t))));
      } catch (e) {
        queue.clear();
        await queue.onIdle();
        throw e;
      }
      for (const s of perSet)
        for (const m of methods) s.methods.push({ name: m.name, traces: prepared.get(s.name)!.map((pr) => done.get(resultFile(ctx.stageDir, s.name, m.name, pr.problem.taskId))!) });
    } finally {
      if (llm) {
        const st = llm.stats();
        ctx.counters.add("llm_requests", st.requests);
        ctx.counters.add("llm_cached_samples", st.cacheHits);
        await llm.close();
      }
    }

    const boot = cfg.bootstrap;
    const out: Record<string, Record<string, Summary>> = {};
    for (const s of perSet) {
      out[s.name] = {};
      for (const m of s.methods) {
        const t = m.traces;
        const acc = bootstrapMean(t.map((x) => (x.pass ? 1 : 0)), boot, "rerank");
        const mean = (f: (x: RerankTrace) => number) => (t.length ? t.reduce((a, x) => a + f(x), 0) / t.length : 0);
        out[s.name][m.name] = {
          problems: t.length,
          accuracy: acc.value,
          ci: [acc.ci.lo, acc.ci.hi],
          base_accuracy: mean((x) => (x.base ? 1 : 0)),
          base_mean_accuracy: mean((x) => x.baseMean),
          oracle: mean((x) => (x.oracle ? 1 : 0)),
          mean_pool: mean((x) => x.pool.length),
          mean_tied: mean((x) => x.tied.length),
          llm: { requests: t.reduce((a, x) => a + x.llm.requests, 0), cached: t.reduce((a, x) => a + x.llm.cached, 0), failures: t.reduce((a, x) => a + x.llm.failures, 0) },
        };
      }
    }
    const uts = heuristic ? "fuzzed inputs labelled by the canonical solution" : cfg.sc ? `with self-consistency (k = ${cfg.k})` : "without self-consistency";
    const settings = `Code model ${codeModel}, N = ${cfg.n_codes} codes per problem; ${cfg.n} UTs per code per method (${uts}), pooled and de-duplicated; ties: ${cfg.tie_break === "random" ? `seeded random pick (seed ${cfg.seed})` : "lowest sample index"}.`;
    const md = renderRerankMarkdown(perSet, out, settings, boot);
    await writeJson(path.join(ctx.stageDir, "summary.json"), { sets: out, settings });
    await atomicWrite(path.join(ctx.stageDir, "summary.md"), md);
    await atomicWrite(
      path.join(ctx.stageDir, "report.html"),
      `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>Best-of-N report</title><style>body{font-family:system-ui,sans-serif;margin:24px}table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:3px 6px;font-size:13px}</style></head><body><h1>Best-of-N report</h1>\n${mdToHtml(md.split("\n").slice(2).join("\n"))}\n</body></html>\n`,
    );
    if (json) {
      ctx.stdout(JSON.stringify({ sets: out }));
      return 0;
    }
    for (const [set, ms] of Object.entries(out))
      for (const [m, x] of Object.entries(ms))
        ctx.stdout(`${set}\t${m}\tbest-of-${cfg.n_codes} ${pct(x.accuracy)} [${pct(x.ci[0])}, ${pct(x.ci[1])}]\tbase ${pct(x.base_accuracy)}\toracle ${pct(x.oracle)}\t(${x.problems} problems)`);
    ctx.stdout(`wrote ${path.join(ctx.stageDir, "summary.md")} and ${path.join(ctx.stageDir, "report.html")}`);
    return 0;
  },
};

/** Table 3 layout: base (one sample), each UT method's best-of-N, the oracle; paired differences. */
function renderRerankMarkdown(
  sets: { name: string; source: string; rows: number; dropped: { taskId: string; reason: string }[]; methods: { name: string; traces: RerankTrace[] }[] }[],
  out: Record<string, Record<string, Summary>>,
  settings: string,
  boot: { samples: number; seed: number },
): string {
  const lines = ["# Best-of-N summary", "", settings, ""];
  lines.push("## Accuracy of the chosen code (Table 3 layout)", "", `Percent of problems whose chosen code passes all private tests; 95% bootstrap interval over problems (${boot.samples} resamples, seed ${boot.seed}).`, "");
  lines.push(`| Judge | ${sets.map((s) => s.name).join(" | ")} |`, `|---|${sets.map(() => "---:").join("|")}|`);
  const first = (s: string) => Object.values(out[s])[0];
  lines.push(`| – (one sample) | ${sets.map((s) => (first(s.name) ? pct(first(s.name).base_accuracy) : "–")).join(" | ")} |`);
  lines.push(`| – (mean over the N samples) | ${sets.map((s) => (first(s.name) ? pct(first(s.name).base_mean_accuracy) : "–")).join(" | ")} |`);
  const names = [...new Set(sets.flatMap((s) => s.methods.map((m) => m.name)))];
  for (const m of names) lines.push(`| ${m} | ${sets.map((s) => (out[s.name][m] ? ciText(out[s.name][m].accuracy, { lo: out[s.name][m].ci[0], hi: out[s.name][m].ci[1] }) : "–")).join(" | ")} |`);
  lines.push(`| oracle (any of N correct) | ${sets.map((s) => (first(s.name) ? pct(first(s.name).oracle) : "–")).join(" | ")} |`, "");
  for (const s of sets) {
    lines.push(`## ${s.name}`, "", `${s.rows} problems in ${s.source}; ${s.rows - s.dropped.length} ranked${s.dropped.length ? `, ${s.dropped.length} left out (private tests not extractable)` : ""}.`, "");
    lines.push("| Method | accuracy | pooled UTs per problem | codes tied at the top | model samples (new / cached / failed) |", "|---|---:|---:|---:|---:|");
    for (const m of s.methods) {
      const x = out[s.name][m.name];
      lines.push(`| ${m.name} | ${pct(x.accuracy)} | ${x.mean_pool.toFixed(2)} | ${x.mean_tied.toFixed(2)} | ${x.llm.requests} / ${x.llm.cached} / ${x.llm.failures} |`);
    }
    lines.push("");
    const base = s.methods[0]?.traces ?? [];
    lines.push("| A − B | Δ accuracy [95% CI] |", "|---|---:|");
    for (const m of s.methods) {
      const d = pairedDiff(m.traces.map((t) => (t.pass ? 1 : 0)), base.map((t) => (t.base ? 1 : 0)), boot);
      lines.push(`| ${m.name} − one sample | ${signed(d.value)} [${signed(d.ci.lo)}, ${signed(d.ci.hi)}] |`);
    }
    for (let i = 0; i < s.methods.length; i++)
      for (let k = i + 1; k < s.methods.length; k++) {
        const d = pairedDiff(s.methods[i].traces.map((t) => (t.pass ? 1 : 0)), s.methods[k].traces.map((t) => (t.pass ? 1 : 0)), boot);
        lines.push(`| ${s.methods[i].name} − ${s.methods[k].name} | ${signed(d.value)} [${signed(d.ci.lo)}, ${signed(d.ci.hi)}] |`);
      }
    lines.push("");
  }
  return lines.join("\n");
}
