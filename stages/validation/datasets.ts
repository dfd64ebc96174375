/**
 * Validation sets: a local JSONL file, a file of a Hub dataset at a pinned revision, a file of a GitHub
 * repository at a pinned commit (checked against its git blob id), or the held-out split emit-sft writes
 * (`<runDir>/emit-sft/sft/valid.problems.jsonl`). Rows are in the UTGenDebug format (`task_id, prompt,
 * signature, entry_point, canonical_solution, code` [, test]) — MBPP+Fix (Hard), MBPP+Fix, HE+Fix — or, with
 * `format: humanevalpack`, rows of bigcode/humanevalpack converted as the reference's he_intrinsic_eval.py
 * does. Rows are checked and normalised to `Problem`. Per set: `scoring` (mbpp | he, see metrics.ts) and
 * `exclude` (drop the task ids of other sets: a selection split disjoint from the test sets).
 */
import { createHash } from "node:crypto";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { z } from "zod";
import { UserError } from "../../pipeline/errors.ts";
import { atomicWrite, exists, hashValue, readJsonl } from "../../pipeline/util.ts";

const HEX40 = /^[0-9a-f]{40}$/;

/** Options every set kind takes. */
const setOptions = {
  /**
   * Row format: "utgendebug" (default) or "humanevalpack" — bigcode/humanevalpack rows, converted as the
   * reference's he_intrinsic_eval.py converts them (gold = prompt + canonical_solution).
   */
  format: z.enum(["utgendebug", "humanevalpack"]).optional(),
  /**
   * humanevalpack only, the buggy program: "body" (default; the reference's `code = buggy_solution`, the
   * function body alone — it never loads, so every valid input whose gold output is not None is an attack,
   * as in the reference) or "function" (declaration + buggy_solution: the HumanEvalFix buggy function).
   */
  buggy_code: z.enum(["body", "function"]).optional(),
  /**
   * How tests are scored: "mbpp" (default; mbpp_intrinsic_eval.py) or "he" (he_intrinsic_eval.py:
   * unparsable responses count in the attack rate only, and a gold output of None is never an attack).
   */
  scoring: z.enum(["mbpp", "he"]).optional(),
  /** Names of other sets in validate.sets whose task ids are dropped from this one (a disjoint split). */
  exclude: z.array(z.string().min(1)).optional(),
};

export const setSchema = z.union([
  z.strictObject({ name: z.literal("heldout"), ...setOptions }),
  z.strictObject({ name: z.string().min(1), path: z.string().min(1), ...setOptions }),
  z.strictObject({
    name: z.string().min(1),
    hub: z.strictObject({
      repo: z.string().min(1),
      file: z.string().min(1),
      revision: z.string().min(1),
    }),
    ...setOptions,
  }),
  z.strictObject({
    name: z.string().min(1),
    github: z.strictObject({
      repo: z.string().regex(/^[\w.-]+\/[\w.-]+$/, "owner/name"),
      file: z.string().min(1),
      /** A full commit id: the file is fetched at exactly this commit. */
      revision: z.string().regex(HEX40, "a full 40-hex commit id"),
      /** The file's git blob id at that commit (`git ls-tree <commit> <file>`): the download is checked against it. */
      blob: z.string().regex(HEX40, "a 40-hex git blob id").optional(),
    }),
    ...setOptions,
  }),
]);
export type SetSpec = z.infer<typeof setSchema>;
export type Scoring = "mbpp" | "he";

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
  /** Content hash of the normalised problems (after `exclude` and `limit`): part of every result key. */
  hash: string;
  /** How its tests are scored (metrics.ts). */
  scoring: Scoring;
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

const HEP_REQUIRED = ["task_id", "prompt", "declaration", "canonical_solution", "buggy_solution", "entry_point", "signature"] as const;

/**
 * One bigcode/humanevalpack (python) row in the UTGenDebug format, as he_intrinsic_eval.py builds it:
 * `canonical_solution = prompt + canonical_solution` (the whole gold function), `code = buggy_solution`;
 * `prompt` (imports, signature and docstring) is the description and `signature` the row's own field.
 * `buggy: "function"` uses `declaration + buggy_solution` instead (a buggy function that loads).
 */
export function fromHumanEvalPack(row: any, where: string, buggy: "body" | "function" = "body"): Record<string, unknown> {
  if (!row || typeof row !== "object" || Array.isArray(row))
    throw new UserError(`${where}: expected a JSON object per line (bigcode/humanevalpack format)`);
  for (const k of HEP_REQUIRED)
    if (typeof row[k] !== "string" || row[k] === "")
      throw new UserError(`${where}: field "${k}" is missing or empty; humanevalpack rows need ${HEP_REQUIRED.join(", ")}`);
  return {
    task_id: row.task_id,
    prompt: row.prompt,
    signature: row.signature,
    entry_point: row.entry_point,
    canonical_solution: row.prompt + row.canonical_solution,
    code: buggy === "function" ? row.declaration + row.buggy_solution : row.buggy_solution,
    test: typeof row.test === "string" ? row.test : "",
  };
}

export async function readProblems(
  file: string,
  limit?: number,
  opts: { format?: "utgendebug" | "humanevalpack"; buggy?: "body" | "function"; exclude?: Set<string> } = {},
): Promise<Problem[]> {
  if (!(await exists(file))) throw new UserError(`validation set file not found: ${file} — check validate.sets`);
  const out: Problem[] = [];
  const seen = new Set<string>();
  let line = 0;
  for await (const raw of readJsonl(file)) {
    line++;
    const where = `${file}:${line}`;
    const row = opts.format === "humanevalpack" ? fromHumanEvalPack(raw, where, opts.buggy) : raw;
    const p = toProblem(row, where);
    if (seen.has(p.taskId)) throw new UserError(`${file}:${line}: duplicate task_id ${p.taskId}; task ids must be unique`);
    seen.add(p.taskId);
    if (opts.exclude?.has(p.taskId)) continue;
    out.push(p);
    if (limit !== undefined && out.length >= limit) break;
  }
  if (out.length === 0) throw new UserError(`validation set ${file} has no rows${opts.exclude?.size ? " left after exclude" : ""}`);
  return out;
}

/** Git's blob id of a file's bytes: sha1("blob <size>\0" + bytes). */
export function gitBlobId(data: Buffer): string {
  return createHash("sha1").update(`blob ${data.length}\0`).update(data).digest("hex");
}

/** Base URL for raw GitHub files (UTGEN_GITHUB_RAW_URL overrides it, e.g. for a mirror or a loopback test server). */
function githubRawBase(): string {
  return (process.env.UTGEN_GITHUB_RAW_URL ?? "https://raw.githubusercontent.com").replace(/\/+$/, "");
}

/**
 * A file of a GitHub repository at a pinned commit, cached under `cacheDir/github/<repo>/<commit>/<file>`
 * and checked against its git blob id when given (a mismatch is an error, and nothing is cached).
 */
export async function githubDownload(
  o: { repo: string; file: string; revision: string; blob?: string },
  cacheDir: string,
  fetchImpl: typeof fetch = fetch,
): Promise<string> {
  const local = path.join(cacheDir, "github", ...o.repo.split("/"), o.revision, ...o.file.split("/"));
  if (await exists(local)) {
    if (!o.blob || gitBlobId(await fsp.readFile(local)) === o.blob) return local;
  }
  const url = `${githubRawBase()}/${o.repo}/${o.revision}/${o.file.split("/").map(encodeURIComponent).join("/")}`;
  let res: Response;
  try {
    res = await fetchImpl(url, { signal: AbortSignal.timeout(300_000) });
  } catch (e) {
    throw new UserError(`downloading ${url} failed (${(e as Error).message.split("\n")[0]}); check the network, or download it and use a path: set`);
  }
  if (!res.ok) throw new UserError(`downloading ${url}: HTTP ${res.status}; check validate.sets (github repo, file, revision)`);
  const data = Buffer.from(await res.arrayBuffer());
  if (o.blob) {
    const got = gitBlobId(data);
    if (got !== o.blob)
      throw new UserError(`${url}: git blob id ${got} is not the pinned ${o.blob}; the file is not the expected one (fix validate.sets)`);
  }
  await fsp.mkdir(path.dirname(local), { recursive: true });
  await atomicWrite(local, data);
  return local;
}

export interface LoadOpts {
  runDir: string;
  /** Relative `path`s resolve against this folder (the config file's folder, or the cwd). */
  baseDir?: string;
  limit?: number;
  /** Downloaded GitHub files live under `<cacheDir>/github` (default `<runDir>/cache`). */
  cacheDir?: string;
  /** Task ids to leave out (the union of the sets named in the spec's `exclude`). */
  exclude?: Set<string>;
  /** Injected download (tests, or the Hub helper by default). */
  hubDownload?: (o: { repo: string; repoType: "dataset"; path: string; revision: string; cacheDir?: string }) => Promise<string>;
  /** Injected fetch for GitHub downloads (tests). */
  fetch?: typeof fetch;
}

/** The local file a set spec names (a Hub or GitHub file is downloaded to the cache first) and how to describe it. */
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
  if ("github" in spec) {
    const file = await githubDownload(spec.github, opts.cacheDir ?? path.join(opts.runDir, "cache"), opts.fetch);
    return { file, source: `github:${spec.github.repo}/${spec.github.file}@${spec.github.revision}` };
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
  if (spec.buggy_code && spec.format !== "humanevalpack")
    throw new UserError(`validate.sets ${spec.name}: buggy_code applies to format: humanevalpack only`);
  const problems = await readProblems(file, opts.limit, { format: spec.format, buggy: spec.buggy_code, exclude: opts.exclude });
  const scoring: Scoring = spec.scoring ?? "mbpp";
  return { name: spec.name, source, problems, hash: hashValue(problems), scoring };
}

/**
 * Load every set of validate.sets, honouring `exclude` (a set's problems whose task id appears in any of the
 * named sets are dropped; the named sets are read whole, before `limit`). Names must be unique.
 */
export async function loadSets(specs: SetSpec[], opts: LoadOpts): Promise<LoadedSet[]> {
  const names = specs.map((s) => s.name);
  if (new Set(names).size !== names.length) throw new UserError("validate.sets has two sets with the same name: give each a unique name");
  const full = new Map<string, LoadedSet>();
  const whole = async (name: string): Promise<LoadedSet> => {
    const spec = specs.find((s) => s.name === name);
    if (!spec) throw new UserError(`validate.sets: exclude names "${name}", which is not a set in validate.sets (${names.join(", ")})`);
    if (spec.exclude?.length) throw new UserError(`validate.sets ${name}: a set named in another set's exclude cannot itself exclude sets`);
    if (!full.has(name)) full.set(name, await loadSet(spec, { ...opts, limit: undefined, exclude: undefined }));
    return full.get(name)!;
  };
  const out: LoadedSet[] = [];
  for (const spec of specs) {
    let exclude: Set<string> | undefined;
    if (spec.exclude?.length) {
      exclude = new Set<string>();
      for (const n of spec.exclude) {
        if (n === spec.name) throw new UserError(`validate.sets ${n}: a set cannot exclude itself`);
        for (const p of (await whole(n)).problems) exclude.add(p.taskId);
      }
    }
    out.push(await loadSet(spec, { ...opts, exclude }));
  }
  return out;
}
