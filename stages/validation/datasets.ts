/**
 * Validation sets in the UTGenDebug format (`task_id, prompt, signature, entry_point, canonical_solution, code`
 * [, test]): a local JSONL file (MBPP+Fix (Hard), MBPP+Fix, HE+Fix), a file of the Hub dataset
 * `archiki/UTGenDebug` at a pinned revision, or the held-out split emit-sft writes
 * (`<runDir>/emit-sft/sft/valid.problems.jsonl`). Rows are checked and normalised to `Problem`.
 */
import * as path from "node:path";
import { z } from "zod";
import { UserError } from "../../pipeline/errors.ts";
import { exists, hashValue, readJsonl } from "../../pipeline/util.ts";

export const setSchema = z.union([
  z.strictObject({ name: z.literal("heldout") }),
  z.strictObject({ name: z.string().min(1), path: z.string().min(1) }),
  z.strictObject({
    name: z.string().min(1),
    hub: z.strictObject({
      repo: z.string().min(1),
      file: z.string().min(1),
      revision: z.string().min(1),
    }),
  }),
]);
export type SetSpec = z.infer<typeof setSchema>;

export interface Problem {
  taskId: string;
  /** The task text as given in the row. */
  prompt: string;
  /** What the prompt templates get as {description}: the row's prompt as is (the released scripts do the same, HE+Fix included). */
  description: string;
  signature: string;
  entryPoint: string;
  gold: string;
  buggy: string;
  /** The problem's own tests compare as sets (` set(` in its test text), as the reference does. */
  useSet: boolean;
}

export interface LoadedSet {
  name: string;
  source: string;
  problems: Problem[];
  /** Content hash of the normalised problems (after `limit`): part of every result key. */
  hash: string;
}

export const HELDOUT_PATH = ["emit-sft", "sft", "valid.problems.jsonl"] as const;

const REQUIRED = ["task_id", "prompt", "signature", "entry_point", "canonical_solution", "code"] as const;

/** Check and normalise one row; `where` is `file:line` for the error message. */
export function toProblem(row: any, where: string): Problem {
  if (!row || typeof row !== "object" || Array.isArray(row))
    throw new UserError(`${where}: expected a JSON object per line (UTGenDebug format)`);
  for (const k of REQUIRED) {
    const v = row[k];
    const ok = k === "task_id" ? typeof v === "string" || typeof v === "number" : typeof v === "string" && v !== "";
    if (!ok)
      throw new UserError(
        `${where}: field "${k}" is missing or empty; validation rows need ${REQUIRED.join(", ")} (UTGenDebug format)`,
      );
  }
  const test = typeof row.test === "string" ? row.test : "";
  return {
    taskId: String(row.task_id),
    prompt: row.prompt,
    description: row.prompt,
    signature: row.signature,
    entryPoint: row.entry_point,
    gold: row.canonical_solution,
    buggy: row.code,
    useSet: test.includes(" set("),
  };
}

export async function readProblems(file: string, limit?: number): Promise<Problem[]> {
  if (!(await exists(file))) throw new UserError(`validation set file not found: ${file} — check validate.sets`);
  const out: Problem[] = [];
  const seen = new Set<string>();
  let line = 0;
  for await (const row of readJsonl(file)) {
    line++;
    const p = toProblem(row, `${file}:${line}`);
    if (seen.has(p.taskId)) throw new UserError(`${file}:${line}: duplicate task_id ${p.taskId}; task ids must be unique`);
    seen.add(p.taskId);
    out.push(p);
    if (limit !== undefined && out.length >= limit) break;
  }
  if (out.length === 0) throw new UserError(`validation set ${file} has no rows`);
  return out;
}

export interface LoadOpts {
  runDir: string;
  /** Relative `path`s resolve against this folder (the config file's folder, or the cwd). */
  baseDir?: string;
  limit?: number;
  cacheDir?: string;
  /** Injected download (tests, or the Hub helper by default). */
  hubDownload?: (o: { repo: string; repoType: "dataset"; path: string; revision: string; cacheDir?: string }) => Promise<string>;
}

/** The local file a set spec names (a Hub file is downloaded to the cache first) and how to describe it. */
export async function resolveSetFile(spec: SetSpec, opts: Omit<LoadOpts, "limit">): Promise<{ file: string; source: string }> {
  if ("hub" in spec) {
    const dl =
      opts.hubDownload ??
      (async (o: { repo: string; repoType: "dataset"; path: string; revision: string; cacheDir?: string }) => {
        const hub = await import("../../pipeline/sources/hub.ts");
        return hub.hubDownload(o);
      });
    const file = await dl({ repo: spec.hub.repo, repoType: "dataset", path: spec.hub.file, revision: spec.hub.revision });
    return { file, source: `hub:${spec.hub.repo}/${spec.hub.file}@${spec.hub.revision}` };
  }
  if ("path" in spec) {
    const file = path.resolve(opts.baseDir ?? process.cwd(), spec.path);
    return { file, source: file };
  }
  const file = path.join(opts.runDir, ...HELDOUT_PATH);
  if (!(await exists(file)))
    throw new UserError(`held-out validation split not found at ${file}: run emit-sft first, or drop {name: heldout} from validate.sets`);
  return { file, source: file };
}

export async function loadSet(spec: SetSpec, opts: LoadOpts): Promise<LoadedSet> {
  const { file, source } = await resolveSetFile(spec, opts);
  const problems = await readProblems(file, opts.limit);
  return { name: spec.name, source, problems, hash: hashValue(problems) };
}
