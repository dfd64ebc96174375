/**
 * Stage registry: every paper step and tool command, in pipeline order, with the module that implements it.
 * A module that does not exist yet is listed by --help as planned and refused with a clear message.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { UserError } from "./errors.ts";
import type { AnyStage, PlannedStage } from "./stage.ts";

interface Entry {
  name: string;
  module: string;
  exportName: string;
  description: string;
  issue: string;
}

/** Data stages run by default (no --stage / --from / --to), in order. */
export const DATA_STAGES = ["filter", "perturb", "attack", "rationalize", "emit-sft"] as const;
/** The whole ordered chain --from/--to slices. */
export const CHAIN = [...DATA_STAGES, "train", "validate", "select"] as const;

const ENTRIES: Entry[] = [
  { name: "filter", module: "../stages/filter.ts", exportName: "filterStage", issue: "#2", description: "keep Python function tasks from the Tulu-3 SFT mixture (paper App. B)" },
  { name: "perturb", module: "../stages/perturb.ts", exportName: "perturbStage", issue: "#4", description: "corrupt gold code into realistic buggy versions" },
  { name: "attack", module: "../stages/attack.ts", exportName: "attackStage", issue: "#4", description: "sample test inputs; keep those on which gold and buggy code disagree" },
  { name: "rationalize", module: "../stages/rationalize.ts", exportName: "rationalizeStage", issue: "#4", description: "explain, without code, why gold's output is right" },
  { name: "emit-sft", module: "../stages/emit-sft.ts", exportName: "emitSftStage", issue: "#4", description: "write chat / prompt-completion JSONL, train/valid split, data card" },
  { name: "train", module: "../stages/train.ts", exportName: "trainStage", issue: "#5", description: "LoRA / QLoRA fine-tuning through TRL + PEFT (GPU machines)" },
  { name: "validate", module: "../stages/validate.ts", exportName: "validateStage", issue: "#6", description: "score checkpoints: attack rate, output accuracy, Acc∩Attack" },
  { name: "select", module: "../stages/select.ts", exportName: "selectStage", issue: "#6", description: "pick the best checkpoint from validation reports" },
  { name: "gold-check", module: "../stages/gold-check.ts", exportName: "goldCheckStage", issue: "#3", description: "run a debugging benchmark's gold tests on canonical and buggy code" },
  { name: "merge", module: "../stages/merge.ts", exportName: "mergeStage", issue: "#4", description: "combine the outputs of --shard i/N runs into one" },
  { name: "utdebug", module: "../stages/utdebug.ts", exportName: "utdebugStage", issue: "#15", description: "UTDebug: debug with generated UTs (self-consistency + backtracking), No-UT baseline, pass@1" },
  { name: "rerank", module: "../stages/rerank.ts", exportName: "rerankStage", issue: "#15", description: "best-of-N: pick among N sampled codes by the generated UTs they pass" },
  // UTRL (seed 002): tasks, rewards, the reward service, the GRPO schedule, validation, best-of-N, fidelity.
  { name: "rl-tasks", module: "../stages/rl/tasks.ts", exportName: "rlTasksStage", issue: "#13", description: "UTRL tasks: TACO (Hub, App. A.3 filter) or local rows → train / valid / test JSONL" },
  { name: "rl-rewards", module: "../stages/rl-rewards.ts", exportName: "rlRewardsStage", issue: "#13", description: "UTRL rewards (validity, discrimination, code) for a JSONL file of rollouts" },
  { name: "rl-serve", module: "../stages/rl/serve.ts", exportName: "rlServeStage", issue: "#13", description: "UTRL reward service over HTTP for TRL / verl reward functions" },
  { name: "rl-rollouts", module: "../stages/rl/rollouts.ts", exportName: "rlRolloutsStage", issue: "#13", description: "sample codes / unit tests from a model for a UTRL phase's training data" },
  { name: "utrl", module: "../stages/rl/utrl.ts", exportName: "utrlStage", issue: "#13", description: "UTRL GRPO schedule (tester → coder → tester): render, dry run, launch a phase" },
  { name: "rl-validate", module: "../stages/rl/validate.ts", exportName: "rlValidateStage", issue: "#13", description: "UTRL validation between phases: λ-weighted reward of checkpoints on held-out tasks" },
  { name: "rl-bon", module: "../stages/rl/bon.ts", exportName: "rlBonStage", issue: "#13", description: "best-of-N (N = 32) with generated unit tests: code score / accuracy with CIs" },
  { name: "rl-fidelity", module: "../stages/rl/fidelity.ts", exportName: "rlFidelityStage", issue: "#13", description: "unit-test fidelity: Spearman of generated-UT vs GT-UT code scores" },
];

export type Registered = AnyStage | (PlannedStage & { detail?: string });

let cache: Promise<Registered[]> | undefined;

export function loadRegistry(): Promise<Registered[]> {
  return (cache ??= Promise.all(ENTRIES.map(load)));
}

async function load(e: Entry): Promise<Registered> {
  const url = new URL(e.module, import.meta.url);
  const planned = (detail?: string): Registered => ({ kind: "planned", name: e.name, description: e.description, issue: e.issue, detail });
  if (!existsSync(fileURLToPath(url))) return planned();
  try {
    const mod = (await import(url.href)) as Record<string, unknown>;
    const stage = mod[e.exportName] as AnyStage | undefined;
    if (!stage) return planned(`${e.module} does not export ${e.exportName}`);
    return stage;
  } catch (err) {
    throw importError(e.module, err);
  }
}

/** A module of the project that fails to load: a one-line error (a missing npm package says to install). */
function importError(rel: string, err: unknown): Error {
  const first = (err as Error).message?.split("\n")[0] ?? String(err);
  const pkg = /Cannot find package '([^']+)'/.exec(first);
  if (pkg) return new UserError(`${rel}: the npm package '${pkg[1]}' is not installed; run \`npm ci\` (or \`npm install\`) in the project folder`);
  return new UserError(`${rel} does not load: ${first}`);
}

/**
 * Import an npm package on first use (one a run may never need: the Hub client, the parquet reader); a load
 * failure is a one-line UserError that says to install (see importError).
 */
export async function packageImport<T>(pkg: string): Promise<T> {
  try {
    return (await import(pkg)) as T;
  } catch (err) {
    throw importError(pkg, err);
  }
}

/**
 * Import a core module (executor, LLM client, sources) lazily, so a command loads only what it uses.
 * A load failure is a one-line UserError (see importError).
 */
export async function coreImport<T>(rel: string): Promise<T> {
  try {
    return (await import(new URL(rel, import.meta.url).href)) as T;
  } catch (err) {
    throw importError(rel, err);
  }
}
