/**
 * Configuration: one YAML file, validated by zod (strict: unknown keys are errors), `--set key.path=value`
 * overrides, and one-line errors naming the offending key or value and the valid choices.
 *
 * Top-level keys: `run`, `source`, `executor`, `llm`, `slurm` (scale-out, pipeline/slurm.ts), `rl` (UTRL rewards), and one block per stage named after it
 * (`filter:`, `perturb:`, …, `train:`, `validate:`). A stage may override the LLM settings under `<stage>.llm`.
 */
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import YAML from "yaml";
import { z } from "zod";
import { UserError } from "./errors.ts";
import { coreImport, loadRegistry } from "./registry.ts";
import { slurmConfigSchema } from "./slurm.ts";

export const runConfigSchema = z.strictObject({
  /** Run folder (one sub-folder per stage). */
  dir: z.string().default("runs/demo"),
  /** Input records per shard (performance knob: shards are content-addressed, results do not depend on it). */
  shard_size: z.number().int().positive().default(500),
  /** gzip the shard files. */
  compress: z.boolean().default(false),
  /** Response cache folder (LLM raw responses); default `<run.dir>/cache`. Share it between runs to reuse answers. */
  cache_dir: z.string().optional(),
});
export type RunConfig = z.infer<typeof runConfigSchema>;

/** LLM keys that never change results (left out of fingerprints). Mirrors pipeline/llm LLM_PERF_KEYS. */
export const DEFAULT_LLM_PERF_KEYS = ["base_urls", "api_key_env", "concurrency", "requests_per_second", "timeout_s", "max_retries"];

export interface CoreSchemas {
  source: z.ZodType;
  executor: z.ZodType;
  llm: z.ZodType;
  llmPerfKeys: string[];
}

export async function coreSchemas(): Promise<CoreSchemas> {
  const [src, ex, llm] = await Promise.all([
    coreImport<{ sourceConfigSchema: z.ZodType }>("../pipeline/sources/index.ts"),
    coreImport<{ executorConfigSchema: z.ZodType }>("../pipeline/executor/index.ts"),
    coreImport<{ llmConfigSchema: z.ZodType; LLM_PERF_KEYS?: string[] }>("../pipeline/llm/client.ts"),
  ]);
  return {
    source: withDefault(src.sourceConfigSchema),
    executor: withDefault(ex.executorConfigSchema),
    llm: withDefault(llm.llmConfigSchema),
    llmPerfKeys: llm.LLM_PERF_KEYS ?? DEFAULT_LLM_PERF_KEYS,
  };
}

/** A block may be omitted from the YAML: parse `undefined` as `{}` so inner defaults apply. */
function withDefault(s: z.ZodType): z.ZodType {
  return z.preprocess((v) => (v === undefined || v === null ? {} : v), s);
}

export async function rootSchema(): Promise<z.ZodType> {
  const core = await coreSchemas();
  const rl = await coreImport<{ rlConfigSchema: z.ZodType }>("../stages/rl/config.ts");
  const shape: Record<string, z.ZodType> = {
    run: withDefault(runConfigSchema),
    source: core.source,
    executor: core.executor,
    llm: core.llm,
    slurm: withDefault(slurmConfigSchema),
    // UTRL settings shared by the rl-* commands (τ, λ, the Pass function): stages/rl/config.ts.
    rl: withDefault(rl.rlConfigSchema),
  };
  for (const s of await loadRegistry()) {
    if (s.kind === "planned") shape[s.name] = z.any().optional();
    else shape[s.name] = withDefault(s.configSchema);
  }
  return z.strictObject(shape);
}

export interface LoadedConfig {
  root: Record<string, any>;
  file: string;
}

/** Read, override and validate a config file. Every failure is a one-line UserError. */
export async function loadConfig(file: string, sets: string[] = [], patch: (raw: Record<string, any>) => void = () => {}): Promise<LoadedConfig> {
  let text: string;
  try {
    text = await fsp.readFile(file, "utf8");
  } catch {
    throw new UserError(`config file ${file} not found; pass --config <file.yaml> (e.g. configs/demo.yaml)`);
  }
  let raw: unknown;
  try {
    raw = YAML.parse(text) ?? {};
  } catch (e) {
    throw new UserError(`config file ${file} is not valid YAML (${(e as Error).message.split("\n")[0]}); fix the file`);
  }
  if (typeof raw !== "object" || Array.isArray(raw)) throw new UserError(`config file ${file} must be a YAML mapping of sections (run, source, llm, …)`);
  const obj = raw as Record<string, any>;
  for (const s of sets) applySet(obj, s);
  patch(obj);
  return { root: await validateConfig(obj), file };
}

export async function validateConfig(obj: Record<string, any>): Promise<Record<string, any>> {
  const schema = await rootSchema();
  const res = schema.safeParse(obj);
  if (!res.success) throw new UserError(formatIssue(res.error.issues[0], schema, obj));
  return res.data as Record<string, any>;
}

/** `--set a.b.c=value`: value parsed as a YAML scalar/flow value (numbers, booleans, lists). */
export function applySet(obj: Record<string, any>, expr: string): void {
  const eq = expr.indexOf("=");
  if (eq <= 0) throw new UserError(`--set ${expr}: expected key.path=value (e.g. --set perturb.n_bugs=3)`);
  const key = expr.slice(0, eq).trim();
  const valueText = expr.slice(eq + 1);
  let value: unknown;
  try {
    value = YAML.parse(valueText);
  } catch {
    value = valueText;
  }
  const parts = key.split(".");
  let o = obj;
  for (const p of parts.slice(0, -1)) {
    if (o[p] === undefined || o[p] === null) o[p] = {};
    if (typeof o[p] !== "object") throw new UserError(`--set ${key}: ${p} is not a section`);
    o = o[p];
  }
  o[parts[parts.length - 1]] = value;
}

function unwrap(s: any): any {
  for (let i = 0; i < 10 && s; i++) {
    const def = s._zod?.def ?? s.def;
    if (!def) return s;
    if (def.type === "object") return s;
    if (def.innerType) s = def.innerType;
    else if (def.out && def.type === "pipe") s = def.out;
    else if (def.type === "pipe" && def.in) s = def.in;
    else return s;
  }
  return s;
}

function shapeAt(schema: unknown, p: (string | number)[]): string[] | undefined {
  let s: any = unwrap(schema);
  for (const k of p) {
    const def = s?._zod?.def;
    if (def?.type !== "object") return undefined;
    s = unwrap(def.shape[k]);
  }
  const def = s?._zod?.def;
  return def?.type === "object" ? Object.keys(def.shape) : undefined;
}

function valueAt(obj: unknown, p: (string | number)[]): unknown {
  let o: any = obj;
  for (const k of p) o = o?.[k];
  return o;
}

export function formatIssue(issue: z.core.$ZodIssue, schema: unknown, obj: unknown): string {
  const at = issue.path.map(String).join(".");
  if (issue.code === "unrecognized_keys") {
    const valid = shapeAt(schema, issue.path as (string | number)[]);
    const keys = issue.keys.map((k) => (at ? `${at}.${k}` : k)).join(", ");
    return `unknown config key ${keys}${valid ? `; valid keys${at ? ` in ${at}` : ""}: ${valid.join(", ")}` : ""}`;
  }
  const got = valueAt(obj, issue.path as (string | number)[]);
  const shown = got === undefined ? "" : ` (got ${JSON.stringify(got)?.slice(0, 60)})`;
  if (issue.code === "invalid_value" && "values" in issue) {
    return `config key ${at}: invalid value${shown}; valid choices: ${(issue.values as unknown[]).map((v) => JSON.stringify(v)).join(", ")}`;
  }
  return `config key ${at || "(root)"}: ${issue.message}${shown}`;
}

/** Effective LLM settings of a stage: root `llm:` merged with `<stage>.llm:`, defaults filled. */
export async function llmConfigForStage(root: Record<string, any>, stage: string): Promise<Record<string, any>> {
  const core = await coreSchemas();
  const merged = { ...(root.llm ?? {}), ...(root[stage]?.llm ?? {}) };
  const res = core.llm.safeParse(merged);
  if (!res.success) throw new UserError(formatIssue(res.error.issues[0], core.llm, merged).replace("config key ", `config key ${stage}.llm.`));
  return res.data as Record<string, any>;
}

/** LLM settings that determine results (for fingerprints): the effective settings minus performance keys. */
export async function llmFingerprintForStage(root: Record<string, any>, stage: string): Promise<Record<string, unknown>> {
  const cfg = await llmConfigForStage(root, stage);
  const { llmPerfKeys } = await coreSchemas();
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(cfg)) if (!llmPerfKeys.includes(k)) out[k] = v;
  return out;
}

export function resolveRunDir(root: Record<string, any>): string {
  return path.resolve(root.run.dir);
}

export function resolveCacheDir(root: Record<string, any>): string {
  return path.resolve(root.run.cache_dir ?? path.join(root.run.dir, "cache"));
}
