/**
 * The dataflow engine: runs one DataflowStage over its input stream.
 *
 *  - Input records are cut into chunks of `shardSize` (in input order). A chunk's key is a content hash of
 *    the stage fingerprint and the record keys (id + hash of the declared input fields).
 *  - A chunk whose completion marker exists is reused without touching its records. Otherwise each record
 *    is first looked up among the old chunks of the same fingerprint (record-level salvage: an inserted row
 *    shifts chunk boundaries but recomputes only itself), then processed with bounded concurrency
 *    (p-queue, with backpressure on the input stream).
 *  - Chunks are finalized strictly in input order: ordered de-duplication (`dedupeKey`), atomic writes of the
 *    out / drop files, then the marker. `kill -9` at any moment loses at most the chunks in flight; the LLM
 *    response cache makes their recomputation free of model calls.
 *  - The stage is skipped entirely when its manifest has the same fingerprint and input digest.
 *  - Interrupt (`ctx.signal` aborted, SIGINT/SIGTERM in the runner): no new record starts, records in flight
 *    finish within a grace period (their model responses reach the cache), every chunk that is complete is
 *    written in order, and the result says `interrupted` with what was kept. No manifest is written: the
 *    stage is not done, and a re-run resumes from the markers.
 *  - While it builds, `<stage>/progress[.shard-i-of-N].json` says what is being built and how far it got
 *    (for `--status`); it is removed once the manifest is written.
 */
import PQueue from "p-queue";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import {
  addStats,
  collectGarbage,
  emptyStats,
  readManifest,
  readMarker,
  readStageRecords,
  shardsDir,
  writeManifest,
  type ChunkMarker,
  type ChunkStats,
  type StageManifest,
} from "./store.ts";
import type { DataflowStage, Drop, Outcome, Rec, StageContext, StageRuntime } from "./stage.ts";
import { atomicWrite, hashValue, lineageRoot, sha256, shardOf, stableStringify, writeJson } from "./util.ts";
import { UserError, oneLine } from "./errors.ts";
import type { Progress } from "./progress.ts";

export interface ShardSpec {
  index: number;
  count: number;
}

export interface EngineOptions {
  runDir: string;
  stage: DataflowStage;
  ctx: StageContext;
  fingerprint: string;
  material: Record<string, unknown>;
  input: () => AsyncIterable<Rec>;
  inputDigest: string;
  shardSize: number;
  compress: boolean;
  shard: ShardSpec | null;
  /** The input is already this slice's records (the upstream stage's slice manifest): no re-partitioning. */
  inputSliced?: boolean;
  limit: number | null;
  force: boolean;
  progress?: Progress;
  /** Stage config as resolved (recorded in the manifest). */
  config: unknown;
  meta: { package: { name: string; version: string }; gitSha: string | null };
  /** Counters bumped by the stage through ctx.counters (recorded in the manifest). */
  counters?: Record<string, number>;
  /** Input records expected (upstream count, or the limit), when known: for progress and the interrupt line. */
  total?: number;
  /** How long records in flight may take to finish after an interrupt (default 10 s). */
  interruptGraceMs?: number;
}

export interface EngineResult {
  skipped: boolean;
  manifest: StageManifest;
  chunksReused: number;
  chunksComputed: number;
  recordsProcessed: number;
  recordsSalvaged: number;
  reason: string;
}

/** Thrown by the engine when an interrupt stopped a stage: what was kept, for the runner's one line. */
export class StageInterrupted extends Error {
  constructor(
    readonly stage: string,
    readonly inputsKept: number,
    readonly chunksKept: number,
    readonly total: number | undefined,
  ) {
    super(`${stage} interrupted: ${inputsKept}${total !== undefined ? `/${total}` : ""} input records kept`);
    this.name = "StageInterrupted";
  }
}

/** What `<stage>/progress*.json` holds while a stage builds (and after an interrupt or a kill). */
export interface StageProgress {
  stage: string;
  fingerprint: string;
  inputDigest: string;
  limit: number | null;
  shard: ShardSpec | null;
  /** Input records expected, when known before reading the input. */
  total: number | null;
  shardSize: number;
  chunksDone: number;
  inputsDone: number;
  startedAt: string;
  updatedAt: string;
  interrupted?: boolean;
}

export function progressName(shard: ShardSpec | null): string {
  return shard ? `progress.shard-${shard.index}-of-${shard.count}.json` : "progress.json";
}

/**
 * Test hook: `UTGEN_TEST_HOLD=<stage>:<k>` makes the engine stop after it has written the k-th chunk it
 * computed for <stage> and wait (printing `hold: <stage> <k>` on stderr) until the process is killed or
 * interrupted, so a test can act at that exact point. Unset in normal use.
 */
function holdPoint(stage: string): number | undefined {
  const m = /^([\w-]+):(\d+)$/.exec(process.env.UTGEN_TEST_HOLD ?? "");
  return m && m[1] === stage ? Number(m[2]) : undefined;
}

/** Fingerprint material of a stage: what determines its results, minus performance knobs. */
export async function stageMaterial(
  stage: DataflowStage,
  stageConfig: Record<string, unknown>,
  root: Record<string, any>,
  upstream: string,
  extraPerfKeys: string[] = [],
): Promise<{ material: Record<string, unknown>; fingerprint: string }> {
  const config = omitKeys(stageConfig, [...stage.perfKeys, ...extraPerfKeys]);
  const extra = stage.fingerprintExtra ? await stage.fingerprintExtra({ config: stageConfig, root }) : {};
  const material = { stage: stage.name, version: stage.version, config, extra, upstream };
  return { material, fingerprint: hashValue(material).slice(0, 16) };
}

/** Deep copy of `obj` without the dotted `keys`. */
export function omitKeys(obj: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  const copy = JSON.parse(JSON.stringify(obj ?? {})) as Record<string, any>;
  for (const k of keys) {
    const parts = k.split(".");
    let o: any = copy;
    for (let i = 0; i < parts.length - 1 && o; i++) o = o[parts[i]];
    if (o && typeof o === "object") delete o[parts[parts.length - 1]];
  }
  return copy;
}

/** Human explanation of why fingerprint material differs: "config perturb.n_bugs: 2 → 3". */
export function explainChange(prev: Record<string, unknown> | undefined, cur: Record<string, unknown>, stage: string): string[] {
  if (!prev) return ["never built"];
  const out: string[] = [];
  if (prev.version !== cur.version) out.push(`stage version ${prev.version} → ${cur.version}`);
  if (prev.upstream !== cur.upstream) out.push(`upstream changed`);
  diffValues(prev.config, cur.config, `${stage}`, out, "config ");
  diffValues(prev.extra, cur.extra, `${stage}`, out, "");
  return out.length ? out : ["fingerprint changed"];
}

function diffValues(a: unknown, b: unknown, at: string, out: string[], prefix: string): void {
  if (stableStringify(a) === stableStringify(b)) return;
  const isObj = (x: unknown) => x !== null && typeof x === "object" && !Array.isArray(x);
  if (isObj(a) && isObj(b)) {
    const keys = new Set([...Object.keys(a as object), ...Object.keys(b as object)]);
    for (const k of [...keys].sort()) diffValues((a as any)[k], (b as any)[k], `${at}.${k}`, out, prefix);
    return;
  }
  const show = (v: unknown) => {
    const s = v === undefined ? "(unset)" : JSON.stringify(v);
    return s.length > 40 ? s.slice(0, 37) + "…" : s;
  };
  out.push(`${prefix}${at}: ${show(a)} → ${show(b)}`);
}

const short = (s: string) => sha256(s).slice(0, 16);

export function recordKey(rec: Rec, fields: string[]): string {
  const used: Record<string, unknown> = {};
  for (const f of fields) used[f] = rec[f];
  return short(rec.id + "\u0000" + stableStringify(used));
}

interface Chunk {
  index: number;
  /** Each input record's `source` (the records themselves are released once processed). */
  sources: unknown[];
  keys: string[];
  key: string;
  marker?: ChunkMarker;
  outcomes: (Outcome | undefined)[];
  ready: Promise<void>;
}

interface Candidate {
  pos: number;
  hash: string;
}

export async function runDataflowStage(o: EngineOptions): Promise<EngineResult> {
  const { runDir, stage, ctx, fingerprint: F } = o;
  const started = Date.now();
  const startedAt = new Date().toISOString();
  const prev = await readManifest(runDir, stage.name, o.shard);

  const progressFile = path.join(runDir, stage.name, progressName(o.shard));
  // 1. Nothing changed: skip without reading the input.
  if (!o.force && prev && prev.fingerprint === F && prev.inputDigest === o.inputDigest && prev.limit === o.limit) {
    let complete = true;
    for (const k of prev.shards) if (!(await readMarker(runDir, stage.name, k))) complete = false;
    if (complete) {
      await maybeFinalize(o, prev);
      await fsp.rm(progressFile, { force: true });
      return { skipped: true, manifest: prev, chunksReused: prev.shards.length, chunksComputed: 0, recordsProcessed: 0, recordsSalvaged: 0, reason: "up to date" };
    }
  }
  const reason = o.force
    ? "forced"
    : !prev
      ? "never built"
      : prev.fingerprint !== F
        ? explainChange(prev.material, o.material, stage.name).join("; ")
        : prev.inputDigest !== o.inputDigest
          ? "input changed"
          : prev.limit !== o.limit
            ? `--limit ${prev.limit ?? "none"} → ${o.limit ?? "none"}`
            : "incomplete shards";
  ctx.log.info(`${stage.name}: building (${reason})`);

  const sdir = shardsDir(runDir, stage.name);
  await fsp.mkdir(sdir, { recursive: true });
  const progress: StageProgress = {
    stage: stage.name,
    fingerprint: F,
    inputDigest: o.inputDigest,
    limit: o.limit,
    shard: o.shard,
    total: o.total ?? null,
    shardSize: o.shardSize,
    chunksDone: 0,
    inputsDone: 0,
    startedAt,
    updatedAt: startedAt,
  };
  await writeJson(progressFile, progress);
  const hold = holdPoint(stage.name);
  const signal = ctx.signal;
  // Settles once an interrupt has let the records in flight finish (or the grace period ran out).
  let settled: Promise<void> | undefined;
  const settle = () =>
    (settled ??= (async () => {
      queue.clear();
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise<void>((r) => (timer = setTimeout(r, o.interruptGraceMs ?? 10_000)));
      await Promise.race([queue.onIdle(), grace]);
      clearTimeout(timer);
    })());
  const interruptedP = new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    signal.addEventListener("abort", () => resolve(), { once: true });
  }).then(settle);
  let halted = false;

  // Lazily opened runtime: a fully reused stage never starts its services.
  let runtimeP: Promise<StageRuntime> | undefined;
  const runtime = () => (runtimeP ??= stage.open(ctx));
  let concurrency = 0;
  const queue = new PQueue({ concurrency: Infinity });

  // Record-level salvage index over old chunks of the same fingerprint (built on first miss).
  let salvageIndex: Map<string, { chunkKey: string; pos: number }> | undefined;
  const salvageCache = new Map<string, Promise<Outcome[]>>();
  const buildSalvage = async () => {
    const index = new Map<string, { chunkKey: string; pos: number }>();
    if (!o.force) {
      for (const f of await fsp.readdir(sdir)) {
        if (!f.endsWith(".done.json")) continue;
        const m = JSON.parse(await fsp.readFile(path.join(sdir, f), "utf8")) as ChunkMarker;
        if (m.fingerprint !== F) continue;
        m.inputs.forEach((k, pos) => index.set(k, { chunkKey: m.chunkKey, pos }));
      }
    }
    salvageIndex = index;
  };
  const salvage = async (key: string): Promise<Outcome | undefined> => {
    if (!salvageIndex) await (salvageP ??= buildSalvage());
    const hit = salvageIndex!.get(key);
    if (!hit) return undefined;
    let p = salvageCache.get(hit.chunkKey);
    if (!p) {
      if (salvageCache.size > 8) salvageCache.delete(salvageCache.keys().next().value!);
      p = (async () => {
        const m = await readMarker(runDir, stage.name, hit.chunkKey);
        return m ? loadOutcomes(sdir, m) : [];
      })();
      salvageCache.set(hit.chunkKey, p);
    }
    return (await p)[hit.pos];
  };
  let salvageP: Promise<void> | undefined;

  let recordsProcessed = 0;
  let recordsSalvaged = 0;
  let firstError: string | undefined;
  let fatal: unknown;

  const processOne = async (rec: Rec, key: string): Promise<Outcome> => {
    const s = await salvage(key);
    if (s) {
      recordsSalvaged++;
      return s;
    }
    const rt = await runtime();
    try {
      const res = await rt.process(rec);
      recordsProcessed++;
      return res;
    } catch (e) {
      if (e instanceof UserError) throw e;
      const msg = oneLine(e);
      if (!firstError) {
        firstError = msg;
        ctx.log.warn(`${stage.name}: record ${rec.id} failed (${msg}); counted as stage_error`);
      }
      recordsProcessed++;
      return { out: [], drop: [{ id: rec.id, reason: "stage_error", detail: msg }] };
    }
  };

  // 2. Stream the input into chunks.
  // Only what the manifest needs is kept per chunk (key, output hash): memory stays flat in the input size.
  let chunkCount = 0;
  const shardKeys: string[] = [];
  const outHashes: string[] = [];
  const stats = emptyStats();
  const seen = new Set<string>();
  let reused = 0;
  let computed = 0;
  let finalChain: Promise<void> = Promise.resolve();
  let open = 0;

  const seal = async (recs: Rec[], keys: string[]) => {
    const index = chunkCount++;
    const key = sha256(F + "|" + keys.join(",")).slice(0, 24);
    const marker = o.force ? undefined : await readMarker(runDir, stage.name, key);
    const chunk: Chunk = { index, sources: [], keys, key, outcomes: new Array(recs.length), ready: Promise.resolve() };
    if (marker && marker.fingerprint === F) {
      chunk.marker = marker;
    } else {
      chunk.sources = recs.map((r) => r.source);
      if (!concurrency) {
        concurrency = Math.max(1, (await runtime()).concurrency);
        queue.concurrency = concurrency;
      }
      const tasks = recs.map((rec, i) =>
        queue.add(async () => {
          chunk.outcomes[i] = await processOne(rec, keys[i]);
          o.progress?.tick(1);
        }),
      );
      // On an interrupt, queued records never run: the chunk is ready (incomplete) once the interrupt settled.
      chunk.ready = Promise.race([Promise.all(tasks).then(() => undefined), interruptedP]);
    }
    open++;
    finalChain = finalChain
      .then(() => chunk.ready)
      .then(() => finalizeChunk(chunk))
      .catch((e) => {
        fatal ??= e;
      })
      .finally(() => {
        open--;
      });
  };

  const finalizeChunk = async (chunk: Chunk) => {
    if (fatal || halted) return;
    if (!chunk.marker && signal.aborted && chunk.outcomes.filter(Boolean).length < chunk.keys.length) {
      halted = true; // an interrupted chunk: it and every later one stay unwritten (order is kept)
      return;
    }
    const inputs = chunk.marker ? chunk.marker.inputs.length : chunk.keys.length;
    const computedBefore = computed;
    await finalizeChunkNow(chunk);
    progress.chunksDone++;
    progress.inputsDone += inputs;
    progress.updatedAt = new Date().toISOString();
    await writeJson(progressFile, progress);
    if (hold !== undefined && computed === hold && computed > computedBefore) {
      // Held until the process is killed or interrupted (an interrupt then proceeds as anywhere else).
      process.stderr.write(`hold: ${stage.name} ${hold}\n`);
      const keepAlive = setInterval(() => {}, 1 << 30);
      await interruptedP;
      clearInterval(keepAlive);
    }
  };

  const finalizeChunkNow = async (chunk: Chunk) => {
    let outcomes: Outcome[] | undefined;
    if (chunk.marker) {
      const m = chunk.marker;
      if (!stage.dedupeKey || dedupeUnchanged(m, seen)) {
        for (const h of m.dedupe ?? []) if (!h.startsWith("!")) seen.add(h);
        shardKeys.push(chunk.key);
        outHashes.push(m.outHash ?? m.chunkKey);
        addStats(stats, m.stats);
        reused++;
        o.progress?.skip(m.inputs.length);
        return;
      }
      outcomes = await loadOutcomes(sdir, m); // earlier chunks changed what counts as a duplicate
    } else {
      outcomes = chunk.outcomes as Outcome[];
    }
    const marker = await writeChunk(chunk, outcomes);
    shardKeys.push(chunk.key);
    outHashes.push(marker.outHash);
    addStats(stats, marker.stats);
    computed++;
    chunk.sources = [];
    chunk.outcomes = [];
    chunk.keys = [];
    chunk.marker = undefined;
  };

  const writeChunk = async (chunk: Chunk, pre: Outcome[]): Promise<ChunkMarker & { outHash: string }> => {
    const t0 = Date.now();
    const outLines: string[] = [];
    const dropLines: string[] = [];
    const counts: [number, number][] = [];
    const dedupe: string[] = [];
    const cs: ChunkStats = emptyStats();
    for (let i = 0; i < pre.length; i++) {
      const oc = pre[i] ?? { out: [], drop: [{ id: chunk.keys[i], reason: "stage_error", detail: "no outcome" }] };
      const src = sourceOf(oc, chunk.sources[i]);
      const ss = (cs.bySource[src] ??= { in: 0, out: 0, reasons: {} });
      cs.in++;
      ss.in++;
      let nOut = 0;
      const drops: Drop[] = [...oc.drop];
      for (const rec of oc.out) {
        if (stage.dedupeKey) {
          const h = short(stage.dedupeKey(rec));
          if (seen.has(h)) {
            drops.push({ id: rec.id, reason: "duplicate", source: src, detail: "exact duplicate of an earlier kept record", record: rec });
            dedupe.push("!" + h);
            continue;
          }
          seen.add(h);
          dedupe.push(h);
        }
        outLines.push(JSON.stringify(rec));
        nOut++;
      }
      for (const d of drops) {
        const dd = d.source ? d : { ...d, source: src };
        dropLines.push(JSON.stringify(dd));
        cs.reasons[d.reason] = (cs.reasons[d.reason] ?? 0) + 1;
        ss.reasons[d.reason] = (ss.reasons[d.reason] ?? 0) + 1;
      }
      cs.out += nOut;
      ss.out += nOut;
      counts.push([nOut, drops.length]);
    }
    const ext = o.compress ? ".jsonl.gz" : ".jsonl";
    const files = { out: `${chunk.key}.out${ext}`, drop: `${chunk.key}.drop${ext}` };
    const outText = outLines.length ? outLines.join("\n") + "\n" : "";
    const dropText = dropLines.length ? dropLines.join("\n") + "\n" : "";
    await atomicWrite(path.join(sdir, files.out), o.compress ? gzipSync(outText, { level: 3 }) : outText);
    await atomicWrite(path.join(sdir, files.drop), o.compress ? gzipSync(dropText, { level: 3 }) : dropText);
    const marker: ChunkMarker & { outHash: string } = {
      chunkKey: chunk.key,
      fingerprint: F,
      inputs: chunk.keys,
      counts,
      ...(stage.dedupeKey ? { dedupe } : {}),
      stats: cs,
      files,
      ms: Date.now() - t0,
      outHash: sha256(outText).slice(0, 16),
    };
    await writeJson(path.join(sdir, `${chunk.key}.done.json`), marker);
    return marker;
  };

  // Slice membership: a source record by the stage's shardKey (else its id); a record read from a whole
  // (merged or unsharded) upstream output by the problem it derives from.
  const sliceKey = (rec: Rec): string => (stage.input === "source" && stage.shardKey ? stage.shardKey(rec) : lineageRoot(rec.id));
  let buf: Rec[] = [];
  let bufKeys: string[] = [];
  let taken = 0;
  let inputDone = false;
  for await (const rec of o.input()) {
    if (fatal || signal.aborted) break;
    if (o.shard && !o.inputSliced && shardOf(sliceKey(rec), o.shard.count) !== o.shard.index) continue;
    if (o.limit !== null && taken >= o.limit) break;
    taken++;
    buf.push(rec);
    bufKeys.push(recordKey(rec, stage.inputFields));
    if (buf.length >= o.shardSize) {
      await seal(buf, bufKeys);
      buf = [];
      bufKeys = [];
      // Backpressure: bounded work in flight and bounded open chunks.
      while (!fatal && !signal.aborted && (queue.size > 2 * concurrency || open > 4)) {
        if (queue.size > 2 * concurrency) await queue.onSizeLessThan(concurrency + 1);
        else await Promise.race([finalChain, new Promise((r) => setTimeout(r, 20))]);
      }
    }
  }
  if (!fatal && !signal.aborted) inputDone = true;
  if (buf.length && !fatal && !signal.aborted) await seal(buf, bufKeys);
  await finalChain;
  if (signal.aborted) await settle();
  else await queue.onIdle();
  if (fatal) throw fatal;
  if (signal.aborted && (halted || !inputDone)) {
    // Interrupted: what is complete is written (markers); the stage is not done, so no manifest.
    progress.interrupted = true;
    progress.updatedAt = new Date().toISOString();
    await writeJson(progressFile, progress);
    throw new StageInterrupted(stage.name, progress.inputsDone, progress.chunksDone, o.total);
  }
  if (runtimeP) await (await runtimeP).close?.();

  // 3. Manifest, stats, garbage collection, finalize.
  const outputDigest = hashValue(outHashes).slice(0, 16);
  const manifest: StageManifest = {
    stage: stage.name,
    version: stage.version,
    fingerprint: F,
    material: o.material,
    inputDigest: o.inputDigest,
    outputDigest,
    shards: shardKeys,
    shard: o.shard,
    limit: o.limit,
    config: o.config,
    templates: (o.material.extra as any)?.templates,
    counts: stats,
    timings: { startedAt, finishedAt: new Date().toISOString(), ms: Date.now() - started, chunksReused: reused, chunksComputed: computed },
    package: o.meta.package,
    gitSha: o.meta.gitSha,
    extra: { counters: o.counters ?? {}, recordsProcessed, recordsSalvaged },
  };
  await writeJson(path.join(runDir, stage.name, "stats.json"), { stage: stage.name, ...stats, counters: o.counters ?? {} });
  if (!o.shard) await collectGarbage(runDir, stage.name, new Set(shardKeys));
  await writeManifest(runDir, manifest);
  await fsp.rm(progressFile, { force: true });
  await maybeFinalize(o, manifest);
  return { skipped: false, manifest, chunksReused: reused, chunksComputed: computed, recordsProcessed, recordsSalvaged, reason };
}

function sourceOf(oc: Outcome, inputSource: unknown): string {
  const s = inputSource ?? oc.out[0]?.source ?? oc.drop[0]?.source;
  return typeof s === "string" && s ? s : "all";
}

/** Would ordered de-duplication keep exactly the same records as when the chunk was written? */
function dedupeUnchanged(m: ChunkMarker, seen: Set<string>): boolean {
  const local = new Set<string>();
  for (const h of m.dedupe ?? []) {
    const dup = h.startsWith("!");
    const k = dup ? h.slice(1) : h;
    const nowDup = seen.has(k) || local.has(k);
    if (nowDup !== dup) return false;
    local.add(k);
  }
  return true;
}

/** Rebuild a chunk's per-input outcomes (before de-duplication) from its files. */
async function loadOutcomes(sdir: string, m: ChunkMarker): Promise<Outcome[]> {
  const read = async (f: string) => {
    const buf = await fsp.readFile(path.join(sdir, f));
    const text = f.endsWith(".gz") ? gunzipSync(buf).toString("utf8") : buf.toString("utf8");
    return text.split("\n").filter(Boolean).map((l) => JSON.parse(l));
  };
  const outs = await read(m.files.out);
  const drops = await read(m.files.drop);
  let oi = 0;
  let di = 0;
  return m.counts.map(([nOut, nDrop]) => {
    const out = outs.slice(oi, (oi += nOut));
    const drop: Drop[] = [];
    for (const d of drops.slice(di, (di += nDrop))) {
      if (d.reason === "duplicate" && d.record) out.push(d.record);
      else drop.push(d);
    }
    return { out, drop };
  });
}

async function maybeFinalize(o: EngineOptions, m: StageManifest): Promise<void> {
  if (o.shard) return; // shard slices are finalized by `merge`
  await finalizeStage(o.stage, o.ctx, o.runDir, m, o.force);
}

/** Run a stage's whole-output step when its output changed since the last one (or when forced). */
export async function finalizeStage(stage: DataflowStage, ctx: StageContext, runDir: string, m: StageManifest, force = false): Promise<void> {
  if (!stage.finalize) return;
  if (m.finalizedFor === m.outputDigest && !force) return;
  await stage.finalize(ctx, () => readStageRecords(runDir, stage.name, { manifest: m }));
  m.finalizedFor = m.outputDigest;
  await writeManifest(runDir, m);
}
