/**
 * Run store: one folder per run, one sub-folder per stage.
 *
 *   <run>/<stage>/shards/<chunkKey>.out.jsonl[.gz]   records kept (in input order)
 *   <run>/<stage>/shards/<chunkKey>.drop.jsonl[.gz]  records dropped, each with a named `reason`
 *   <run>/<stage>/shards/<chunkKey>.done.json        completion marker (written last, atomically)
 *   <run>/<stage>/manifest.json                      resolved config, fingerprints, shard list, counts
 *   <run>/<stage>/manifest.shard-<i>-of-<N>.json     the same for one `--shard i/N` slice (merge combines)
 *   <run>/<stage>/stats.json                         in / out / drops per reason, per source
 *
 * A chunk key is a content hash of the stage fingerprint and the keys (id + hash of the used input fields)
 * of the input records in that chunk, so a shard is reused exactly when it would be recomputed identically.
 */
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { exists, readJson, readJsonl, writeJson } from "./util.ts";
import type { Drop, Rec } from "./stage.ts";

export interface SourceStats {
  in: number;
  out: number;
  reasons: Record<string, number>;
}

export interface ChunkStats extends SourceStats {
  bySource: Record<string, SourceStats>;
}

export interface ChunkMarker {
  chunkKey: string;
  fingerprint: string;
  /** Short keys (16 hex) of the input records, in order. */
  inputs: string[];
  /** Per input: [number of outputs, number of drops] — lets a later run salvage single records. */
  counts: [number, number][];
  /** Short hashes of the dedupe keys of kept outputs (stages with `dedupeKey`). */
  dedupe?: string[];
  stats: ChunkStats;
  files: { out: string; drop: string };
  ms: number;
  /** Hash of the out file's text (markers written before it existed lack it: the chunk key stands in). */
  outHash?: string;
}

export interface StageManifest {
  stage: string;
  version: string;
  fingerprint: string;
  /** What the fingerprint was made of (for --status reasons). */
  material: Record<string, unknown>;
  /** Digest of the input this output was built from (upstream output digest or source fingerprint). */
  inputDigest: string;
  /** Digest of this stage's output: hash of the shard list. */
  outputDigest: string;
  shards: string[];
  shard: { index: number; count: number } | null;
  limit: number | null;
  config: unknown;
  templates?: Record<string, string>;
  counts: ChunkStats;
  timings: { startedAt: string; finishedAt: string; ms: number; chunksReused: number; chunksComputed: number };
  finalizedFor?: string;
  package: { name: string; version: string };
  gitSha: string | null;
  extra?: Record<string, unknown>;
}

export function stageDir(runDir: string, stage: string): string {
  return path.join(runDir, stage);
}

export function shardsDir(runDir: string, stage: string): string {
  return path.join(runDir, stage, "shards");
}

export function manifestName(shard: { index: number; count: number } | null): string {
  return shard ? `manifest.shard-${shard.index}-of-${shard.count}.json` : "manifest.json";
}

export async function readManifest(
  runDir: string,
  stage: string,
  shard: { index: number; count: number } | null = null,
): Promise<StageManifest | undefined> {
  return readJson<StageManifest>(path.join(stageDir(runDir, stage), manifestName(shard)));
}

/**
 * The manifest a downstream reader should use: in `--shard i/N` mode that slice's own when it exists, else
 * the merged/unsharded one (a sliced stage after an unsharded upstream).
 */
export async function readUsableManifest(
  runDir: string,
  stage: string,
  shard: { index: number; count: number } | null,
): Promise<StageManifest | undefined> {
  // A --shard run continues from its own slice when there is one. The merged manifest would be re-sliced by
  // problem id — another partition than the source's task-text slices — and may predate the slice's rebuild.
  if (shard) {
    const own = await readManifest(runDir, stage, shard);
    if (own) return own;
  }
  return readManifest(runDir, stage, null);
}

export async function writeManifest(runDir: string, m: StageManifest): Promise<void> {
  await writeJson(path.join(stageDir(runDir, m.stage), manifestName(m.shard)), m);
}

export async function readMarker(runDir: string, stage: string, chunkKey: string): Promise<ChunkMarker | undefined> {
  return readJson<ChunkMarker>(path.join(shardsDir(runDir, stage), `${chunkKey}.done.json`));
}

/** Stream a completed stage's records in manifest order. */
export async function* readStageRecords<T extends Rec = Rec>(
  runDir: string,
  stage: string,
  opts: { shard?: { index: number; count: number } | null; manifest?: StageManifest } = {},
): AsyncGenerator<T> {
  const m = opts.manifest ?? (await readUsableManifest(runDir, stage, opts.shard ?? null));
  if (!m) throw new Error(`stage ${stage} has no output in ${runDir}; run it first (--stage ${stage})`);
  const dir = shardsDir(runDir, stage);
  for (const key of m.shards) {
    const marker = await readMarker(runDir, stage, key);
    if (!marker) throw new Error(`stage ${stage}: shard ${key} is listed in the manifest but incomplete; re-run --stage ${stage}`);
    yield* readJsonl<T>(path.join(dir, marker.files.out));
  }
}

/** Stream a completed stage's drops. */
export async function* readStageDrops(
  runDir: string,
  stage: string,
  shard: { index: number; count: number } | null = null,
): AsyncGenerator<Drop> {
  const m = await readUsableManifest(runDir, stage, shard);
  if (!m) return;
  const dir = shardsDir(runDir, stage);
  for (const key of m.shards) {
    const marker = await readMarker(runDir, stage, key);
    if (marker) yield* readJsonl<Drop>(path.join(dir, marker.files.drop));
  }
}

export function emptyStats(): ChunkStats {
  return { in: 0, out: 0, reasons: {}, bySource: {} };
}

export function addStats(into: ChunkStats, s: ChunkStats): ChunkStats {
  into.in += s.in;
  into.out += s.out;
  for (const [r, n] of Object.entries(s.reasons)) into.reasons[r] = (into.reasons[r] ?? 0) + n;
  for (const [src, ss] of Object.entries(s.bySource)) {
    const t = (into.bySource[src] ??= { in: 0, out: 0, reasons: {} });
    t.in += ss.in;
    t.out += ss.out;
    for (const [r, n] of Object.entries(ss.reasons)) t.reasons[r] = (t.reasons[r] ?? 0) + n;
  }
  return into;
}

/** Remove shard files not referenced by `keep` and stray temp files. */
export async function collectGarbage(runDir: string, stage: string, keep: Set<string>): Promise<number> {
  const dir = shardsDir(runDir, stage);
  if (!(await exists(dir))) return 0;
  let removed = 0;
  for (const f of await fsp.readdir(dir)) {
    const key = f.split(".")[0];
    if (f.includes(".tmp-") || !keep.has(key)) {
      await fsp.rm(path.join(dir, f), { force: true });
      removed++;
    }
  }
  return removed;
}
