/**
 * perturb (paper §3.2 step I): per gold item, `n_bugs` corrupted versions of the gold code.
 *  - LLM backend: the code-corruption prompt (App. E), `n_bugs` samples in one request; optionally
 *    `mutation.extra` AST mutants on top, to diversify the bugs.
 *  - heuristic backend: AST mutation operators only (stages/heuristic/ast_tools.py, run in the sandbox),
 *    picked round-robin over operators in an order seeded by the record id.
 * A version is dropped when the response has no code, the code does not parse/compile at module level,
 * lacks the entry point, is identical to gold after normalisation, or repeats an earlier version.
 * Ids: `<problem>/bug<k>` (k = sample index + 1; mutants continue after the LLM samples).
 */
import { z } from "zod";
import type { DataflowStage, Drop, Outcome, Rec, StageContext } from "../pipeline/stage.ts";
import type { Executor } from "../pipeline/executor/types.ts";
import { clip, countedChat, isHeuristic, llmOverrideSchema, normalizePrograms, runAstTool, sourceHash, recordConcurrency, stageLlmFingerprint } from "./common.ts";
import { corruptPrompt, parseCorruption, templateHashes } from "./heuristic/llm-io.ts";
import { MAX_PER_OPERATOR, MUTATION_OPERATORS, orderMutants, orderedMutants, type Mutant } from "./heuristic/mutate.ts";

export { MUTATION_OPERATORS, orderedMutants };

export const perturbConfigSchema = z.strictObject({
  /** Corrupted versions per gold item (paper: 2). */
  n_bugs: z.number().int().min(1).max(32).default(2),
  /** Seed of the mutant choice (heuristic backend and mutation extras). */
  seed: z.number().int().default(0),
  mutation: z
    .strictObject({
      /** Operators allowed (default: all). */
      operators: z.array(z.enum(MUTATION_OPERATORS)).min(1).default([...MUTATION_OPERATORS]),
      /** Mutants added per item on an LLM backend (0 = LLM bugs only). */
      extra: z.number().int().min(0).max(32).default(0),
    })
    .prefault({}),
  /** Remove the comments of a model-corrupted version that gold does not have (they tend to name the bug). */
  strip_new_comments: z.boolean().default(true),
  /** Module-level execution limit when checking a corrupted version, seconds. */
  check_timeout_s: z.number().positive().default(5),
  llm: llmOverrideSchema,
  /** Records in flight (default: llm.concurrency on an OpenAI backend, 8 on the heuristic one). */
  concurrency: z.number().int().positive().optional(),
});
export type PerturbConfig = z.infer<typeof perturbConfigSchema>;

export interface GoldRec extends Rec {
  source: string;
  prompt: string;
  code: string;
  entry_point: string;
  signature: string;
}

export interface BugInfo {
  origin: "llm" | "mutation";
  operator?: string;
  reasoning?: string;
  line?: number;
  function?: string;
}

export interface BugRec extends GoldRec {
  parent_id: string;
  problem_id: string;
  buggy_code: string;
  bug: BugInfo;
}

/** ast_tools.py `versions` (see its header). */
interface VersionsOutput {
  gold: { ok: boolean; normalized?: string; error?: string };
  results?: { code: string; removed: number; normalized?: string }[];
  mutants?: Mutant[];
}

/** Why a candidate version is unusable, or undefined when it is fine. */
async function checkVersion(
  executor: Executor,
  code: string,
  entryPoint: string,
  timeoutS: number,
): Promise<{ reason: string; detail: string } | undefined> {
  const chk = await executor.checkProgram(code, { timeoutS });
  if (chk.status === "syntax_error") return { reason: "compile_error", detail: `does not parse: ${chk.message ?? ""}` };
  if (chk.status !== "ok")
    return { reason: "compile_error", detail: `module level ${chk.status}: ${chk.errorType ?? ""} ${chk.message ?? ""}`.trim() };
  if (!chk.functions.some((f) => f.name === entryPoint))
    return { reason: "missing_entry_point", detail: `no top-level function ${entryPoint}()` };
  return undefined;
}

export const perturbStage: DataflowStage<PerturbConfig, GoldRec, BugRec> = {
  kind: "dataflow",
  name: "perturb",
  version: "1",
  description: "corrupt gold code into realistic buggy versions (LLM corruption prompt or AST mutation operators)",
  input: "filter",
  inputFields: ["prompt", "code", "entry_point", "signature"],
  outputFields: ["id", "parent_id", "problem_id", "buggy_code", "bug"],
  configSchema: perturbConfigSchema,
  perfKeys: ["concurrency"],
  async fingerprintExtra({ config, root }) {
    const heuristic = await isHeuristic(root, "perturb");
    return {
      llm: await stageLlmFingerprint(root, "perturb"),
      templates: heuristic ? {} : await templateHashes(["corrupt_code"]),
      parsers: heuristic ? null : sourceHash("parsers.ts", "heuristic/llm-io.ts", "heuristic/ast_tools.py"),
      mutation: heuristic || config.mutation.extra > 0 ? sourceHash("heuristic/ast_tools.py", "heuristic/mutate.ts") : null,
    };
  },
  async open(ctx: StageContext<PerturbConfig>) {
    const cfg = ctx.config;
    const heuristic = await isHeuristic(ctx.root, "perturb");
    const executor = await ctx.getExecutor();
    const llm = heuristic ? undefined : await ctx.getLlm();

    const process = async (rec: GoldRec): Promise<Outcome<BugRec>> => {
      const out: BugRec[] = [];
      const drop: Drop[] = [];
      const base = {
        id: rec.id,
        source: rec.source,
        prompt: rec.prompt,
        code: rec.code,
        entry_point: rec.entry_point,
        signature: rec.signature,
      };
      const make = (k: number, buggy: string, bug: BugInfo): BugRec => ({
        ...rec,
        ...base,
        id: `${rec.id}/bug${k}`,
        parent_id: rec.id,
        problem_id: rec.id,
        buggy_code: buggy,
        bug,
      });
      // 1. LLM corruptions (one request, n samples; cached per sample).
      let parsed: Awaited<ReturnType<typeof parseCorruption>>[] = [];
      let llmError: string | undefined;
      if (llm) {
        const req = await corruptPrompt(rec);
        const { result, error } = await countedChat(ctx, llm, { ...req, n: cfg.n_bugs });
        if (result) parsed = await Promise.all(result.texts.map((t, i) => parseCorruption(t, rec.entry_point, result.finishReasons[i])));
        else llmError = error ?? "";
      }
      // One sandbox call for the item: gold normalised, each corruption's new comments stripped and the
      // result normalised, and (when mutants are wanted) gold's mutants.
      const want = llm ? cfg.mutation.extra : cfg.n_bugs;
      const withCode = parsed.flatMap((p, i) => ("code" in p ? [i] : []));
      const prep = await runAstTool<VersionsOutput>(executor, {
        op: "versions",
        gold: rec.code,
        codes: withCode.map((i) => (parsed[i] as { code: string }).code),
        strip_comments: cfg.strip_new_comments,
        mutants: want > 0 ? { entry_point: rec.entry_point, operators: cfg.mutation.operators, max_per_operator: MAX_PER_OPERATOR } : undefined,
      });
      if (!prep.gold.ok) return { out, drop: [{ id: rec.id, reason: "gold_error", detail: "gold code does not parse" }] };
      const goldNorm = prep.gold.normalized!;
      const seen = new Set<string>([goldNorm]);

      let nextK = 1;
      if (llm) {
        if (llmError !== undefined) {
          for (let k = 1; k <= cfg.n_bugs; k++) drop.push({ id: `${rec.id}/bug${k}`, reason: "llm_failed", detail: clip(llmError) });
        } else {
          const norms: (string | undefined)[] = new Array(parsed.length);
          withCode.forEach((i, j) => {
            const r = prep.results![j];
            if (r.removed) {
              // comments gold does not have would announce the bug ("# off by one") to the test generator
              (parsed[i] as { code: string }).code = r.code;
              ctx.counters.add("comments_stripped", r.removed);
            }
            norms[i] = r.normalized;
          });
          for (let i = 0; i < parsed.length; i++) {
            const id = `${rec.id}/bug${i + 1}`;
            const p = parsed[i];
            if (!("code" in p)) {
              drop.push({ id, reason: p.reason, detail: p.detail });
              continue;
            }
            if (norms[i] !== undefined && seen.has(norms[i]!)) {
              drop.push({ id, reason: norms[i] === goldNorm ? "identical_to_gold" : "duplicate_bug", detail: "same program after normalisation" });
              continue;
            }
            const bad = await checkVersion(executor, p.code, rec.entry_point, cfg.check_timeout_s);
            if (bad) {
              drop.push({ id, ...bad, buggy_code: p.code });
              continue;
            }
            seen.add(norms[i]!);
            out.push(make(i + 1, p.code, { origin: "llm", reasoning: p.reasoning }));
          }
        }
        nextK = cfg.n_bugs + 1;
      }

      // 2. AST mutants: all bugs on the heuristic backend, `mutation.extra` more on an LLM run.
      if (want > 0) {
        const mutants = orderMutants(prep.mutants ?? [], rec.id, cfg.seed).slice(0, want * 4);
        // mutants differ from gold and from each other; on an LLM run they must also differ from its bugs
        const mutantNorms = llm ? await normalizePrograms(executor, mutants.map((m) => m.code)) : [];
        let got = 0;
        let tried = 0;
        for (const [i, m] of mutants.entries()) {
          if (got >= want) break;
          tried++;
          if (llm && seen.has(mutantNorms[i]!)) continue;
          const bad = await checkVersion(executor, m.code, rec.entry_point, cfg.check_timeout_s);
          if (bad) {
            ctx.counters.add("mutants_rejected", 1);
            continue;
          }
          out.push(make(nextK + got, m.code, { origin: "mutation", operator: m.operator, reasoning: m.description, line: m.line, function: m.function }));
          got++;
        }
        if (got === 0 && out.length === 0) {
          drop.push({
            id: rec.id,
            reason: "no_mutation_site",
            detail: mutants.length ? `${tried} mutants tried, none compiled with ${rec.entry_point}()` : "no mutable code reachable from the entry point",
          });
        }
      }
      return { out, drop };
    };
    return { process, concurrency: await recordConcurrency(ctx.root, "perturb", cfg.concurrency) };
  },
};
