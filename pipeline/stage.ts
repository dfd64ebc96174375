/**
 * The stage contract. Two kinds:
 *  - `dataflow` stages (filter, perturb, attack, rationalize, emit-sft) are typed per-record transforms
 *    run by the engine (pipeline/engine.ts): the engine streams the input, runs `process` with bounded
 *    concurrency, writes small atomic shards with completion markers, reuses unchanged shards and
 *    counts every drop under a named reason.
 *  - `command` stages (gold-check, train, validate, select, merge) own their run loop but share the
 *    config, run store, executor and LLM client.
 * Every stage's YAML settings live under the top-level key of its name (`filter:`, `train:` …).
 */
import type { z } from "zod";
import type { Executor } from "./executor/index.ts";
import type { LlmClient } from "./llm/client.ts";

/** A record flowing between stages. `id` is stable: source id, then lineage (`…/bug1/ut3`). */
export interface Rec {
  id: string;
  [field: string]: unknown;
}

/** A dropped record: kept as data, counted under `reason`. */
export interface Drop {
  id: string;
  reason: string;
  detail?: string;
  source?: string;
  [field: string]: unknown;
}

export interface Outcome<O extends Rec = Rec> {
  out: O[];
  drop: Drop[];
}

export interface Logger {
  info(msg: string): void;
  warn(msg: string): void;
}

/** Counters a stage may bump for its stats table (tokens, requests, cache hits …). */
export interface Counters {
  add(name: string, n?: number): void;
}

/** What the engine/runner hands a stage. Services are started lazily and shared across stages. */
export interface StageContext<C = any> {
  name: string;
  /** This stage's resolved settings (root[name]). */
  config: C;
  /** The whole resolved config (for `llm`, `executor`, …). */
  root: Record<string, any>;
  runDir: string;
  stageDir: string;
  cacheDir: string;
  log: Logger;
  counters: Counters;
  getExecutor(): Promise<Executor>;
  /** LLM client for this stage: root `llm` merged with `<stage>.llm` overrides. */
  getLlm(): Promise<LlmClient>;
  signal: AbortSignal;
}

export interface StageRuntime<I extends Rec = Rec, O extends Rec = Rec> {
  /** Transform one input record into outputs and drops. Must be deterministic given the caches. */
  process(rec: I): Promise<Outcome<O>>;
  /** Max records in flight (a performance knob: never part of the fingerprint). */
  concurrency: number;
  close?(): Promise<void>;
}

export interface DataflowStage<C = any, I extends Rec = Rec, O extends Rec = Rec> {
  kind: "dataflow";
  name: string;
  /** Bump when the stage's logic changes results: invalidates its shards and those downstream. */
  version: string;
  description: string;
  /** Upstream stage name, or "source" for the configured source. */
  input: string;
  /** Input fields that determine the result: hashed into each record's key. */
  inputFields: string[];
  outputFields: string[];
  configSchema: z.ZodType<C>;
  /** Config keys (dotted, relative to the stage) left out of the fingerprint: concurrency, batch sizes. */
  perfKeys: string[];
  /** Extra fingerprint material resolved from the whole config (model, sampling, template hashes). */
  fingerprintExtra?(ctx: { config: C; root: Record<string, any> }): Promise<Record<string, unknown>>;
  /** Optional ordered de-duplication applied by the engine after `process` (drop reason `duplicate`). */
  dedupeKey?(out: O): string;
  /**
   * Source stages only: the text that decides which slice of `--shard i/N` a source record belongs to
   * (default: its id). The filter gives its de-duplication key (the task text), so exact duplicates meet
   * in one slice and the ordered de-duplication stays global under sharding.
   */
  shardKey?(rec: I): string;
  open(ctx: StageContext<C>): Promise<StageRuntime<I, O>>;
  /**
   * Optional: start what `open` will need (a service, a model) while the input is still being read. The runner
   * calls it before it reads the input, and only when the stage has no completed shard to reuse (a fresh
   * run), so a rerun that reuses everything never starts a service. It must not throw; what it starts
   * reports its own failure where `open` or `process` awaits it.
   */
  warm?(ctx: StageContext<C>): void;
  /**
   * Optional whole-output step run after every shard is complete (e.g. emit-sft writes the train/valid
   * files and the data card). Runs whenever the stage's output set changed or its files are missing.
   * `records()` streams this stage's complete output in order.
   */
  finalize?(ctx: StageContext<C>, records: () => AsyncIterable<O>): Promise<void>;
}

export interface FlagSpec {
  type: "string" | "boolean";
  help: string;
}

export interface CommandContext<C = any> extends StageContext<C> {
  /** Parsed CLI flags (global and this command's own). */
  flags: Record<string, string | boolean | undefined>;
  stdout: (line: string) => void;
}

export interface CommandStage<C = any> {
  kind: "command";
  name: string;
  description: string;
  configSchema: z.ZodType<C>;
  /** Command-specific CLI flags (e.g. gold-check's --dataset, --json; train's --dry-run, --resume). */
  flags?: Record<string, FlagSpec>;
  /** Stage names whose output this command reads (for --status and ordering). */
  after?: string[];
  /**
   * A service (rl-serve): runs until SIGINT / SIGTERM, which is its normal end — the runner then exits with
   * the stage's own code (0 after a clean stop) instead of the 130 / 143 of an interrupted run.
   */
  service?: boolean;
  /** Returns the process exit code (0 on success). */
  run(ctx: CommandContext<C>): Promise<number>;
}

export type AnyStage = DataflowStage<any, any, any> | CommandStage<any>;

/** A stage listed by --help but not built yet: refused with a clear message. */
export interface PlannedStage {
  kind: "planned";
  name: string;
  description: string;
  issue: string;
}
