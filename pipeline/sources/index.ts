/**
 * Data sources for the filter stage: a Hub dataset repo (default allenai/tulu-3-sft-mixture at a
 * pinned commit) or local JSONL / JSON / parquet files or folders. `openSource` returns a
 * deterministic async stream of `SourceRow`s (files sorted, rows in file order), a cheap
 * fingerprint of the input content and a one-line description.
 */
import * as path from "node:path";
import { z } from "zod";
import { UserError } from "../errors.ts";
import { globToRegExp, hubDownload, hubListFiles, hubUrl, isCommit, type HubFile } from "./hub.ts";
import { fingerprintFiles, formatOf, listLocalFiles, readFileRows, type FileFormat } from "./local.ts";
import type { SourceRow } from "./rows.ts";

export type { SourceRow, SourceMessage } from "./rows.ts";
export { hubDownload, hubListFiles } from "./hub.ts";

export const DEFAULT_REPO = "allenai/tulu-3-sft-mixture";
/** allenai/tulu-3-sft-mixture main as of 2024-11 (6 parquet shards, 939,343 rows). */
export const DEFAULT_REVISION = "b14afda60f1bbebe55d5d2fa1e4df5042f97f8be";
export const DEFAULT_FILES = "data/*.parquet";

export const sourceConfigSchema = z
  .object({
    kind: z.enum(["hub", "local"]).default("hub"),
    /** Local file or folder (kind: local). */
    path: z.string().min(1).optional(),
    /** Hub dataset repo (kind: hub). */
    repo: z.string().regex(/^[\w.-]+\/[\w.-]+$/, "repo must look like owner/name").default(DEFAULT_REPO),
    /** Pinned commit (40 hex) — a branch name works but is not reproducible. */
    revision: z.string().min(1).default(DEFAULT_REVISION),
    /** Glob of repo files to read (kind: hub). */
    files: z.string().min(1).default(DEFAULT_FILES),
    format: z.enum(["auto", "jsonl", "json", "parquet"]).default("auto"),
  })
  .strict();

export type SourceConfig = z.input<typeof sourceConfigSchema>;

export interface OpenSourceOptions {
  /** `--input`: a local file or folder; overrides the configured source. */
  input?: string;
  /** Stop after this many rows in total. */
  limit?: number;
  /** HF cache root (default from HF_HUB_CACHE / HF_HOME). */
  cacheDir?: string;
  fetch?: typeof fetch;
  log?: (msg: string) => void;
}

export interface OpenedSource {
  rows: AsyncIterable<SourceRow>;
  fingerprint: Record<string, unknown>;
  describe: string;
}

async function* limited(gen: AsyncIterable<SourceRow>, limit: number | undefined): AsyncGenerator<SourceRow> {
  if (limit !== undefined && limit <= 0) return;
  let n = 0;
  for await (const r of gen) {
    yield r;
    if (limit !== undefined && ++n >= limit) return;
  }
}

export async function openSource(cfgIn: SourceConfig, opts: OpenSourceOptions = {}): Promise<OpenedSource> {
  const parsed = sourceConfigSchema.safeParse(cfgIn);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw new UserError(`source.${i.path.join(".") || "(block)"}: ${i.message}`);
  }
  const cfg = parsed.data;
  const format = cfg.format as FileFormat | "auto";
  if (opts.limit !== undefined && (!Number.isInteger(opts.limit) || opts.limit < 0)) {
    throw new UserError(`limit must be a non-negative integer, got ${opts.limit}`);
  }

  const localPath = opts.input ?? (cfg.kind === "local" ? cfg.path : undefined);
  if (cfg.kind === "local" && !localPath) {
    throw new UserError("source.path is required when source.kind is local (or pass --input <file or folder>)");
  }

  if (localPath) {
    const { root, files } = await listLocalFiles(localPath, format);
    const fp = await fingerprintFiles(files);
    async function* rows() {
      for (const f of files) yield* readFileRows(f.file, f.format);
    }
    return {
      rows: limited(rows(), opts.limit),
      fingerprint: { kind: "local", format, files: fp },
      describe: `local ${files.length === 1 ? files[0].file : `${root} (${files.length} files)`}`,
    };
  }

  // Hub
  const hp = { repo: cfg.repo, repoType: "dataset" as const, revision: cfg.revision, cacheDir: opts.cacheDir, fetch: opts.fetch };
  if (!isCommit(cfg.revision)) {
    opts.log?.(`warning: source.revision "${cfg.revision}" is not a commit id; the data can change between runs`);
  }
  const re = globToRegExp(cfg.files);
  const listed = (await hubListFiles(hp)).filter((f) => re.test(f.path));
  const chosen: (HubFile & { format: FileFormat })[] = [];
  for (const f of listed) {
    const fmt = format === "auto" ? formatOf(f.path) : format;
    if (fmt) chosen.push({ ...f, format: fmt });
  }
  if (chosen.length === 0) {
    throw new UserError(
      `no .parquet/.jsonl/.json files match source.files "${cfg.files}" in ${cfg.repo}@${cfg.revision}; fix source.files`,
    );
  }
  async function* rows() {
    for (const f of chosen) {
      const local = await hubDownload({ ...hp, path: f.path, expectedSize: f.size, log: opts.log });
      // `local` is the snapshot path, whose base name is the repo file name (the fallback `source`).
      yield* readFileRows(local, f.format);
    }
  }
  return {
    rows: limited(rows(), opts.limit),
    fingerprint: {
      kind: "hub",
      repo: cfg.repo,
      revision: cfg.revision,
      files: chosen.map((f) => ({ path: f.path, size: f.size, oid: f.oid })),
    },
    describe: `hub ${hubUrl()}/datasets/${cfg.repo}@${cfg.revision.slice(0, 12)} (${chosen.length} files matching ${cfg.files})`,
  };
}
