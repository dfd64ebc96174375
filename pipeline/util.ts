/** Small shared helpers: hashing, stable JSON, atomic writes, JSONL (optionally gzip) I/O. */
import * as crypto from "node:crypto";
import { createReadStream, createWriteStream, promises as fsp } from "node:fs";
import * as path from "node:path";
import { createGunzip, createGzip } from "node:zlib";
import { createInterface } from "node:readline";
import { pipeline } from "node:stream/promises";
import { Readable } from "node:stream";

/** JSON with object keys sorted recursively: equal values give equal strings (for hashing). */
export function stableStringify(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}
function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === "object" && !(v instanceof Date)) {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v as object).sort()) {
      const x = (v as Record<string, unknown>)[k];
      if (x !== undefined) out[k] = sortKeys(x);
    }
    return out;
  }
  return v;
}

// One-shot `crypto.hash` (Node ≥ 20.12): the same digest as createHash().update().digest(), ~6× faster on the
// engine's per-record keys (20K rows of the filter bench: 39 ms against 230 ms); older Node 20 falls back.
const oneShotHash = (crypto as { hash?: (algorithm: string, data: string | Buffer, encoding: "hex") => string }).hash;

export function sha256(data: string | Buffer): string {
  return oneShotHash ? oneShotHash("sha256", data, "hex") : crypto.createHash("sha256").update(data).digest("hex");
}

/** Content hash of any JSON-able value (stable key order). */
export function hashValue(value: unknown): string {
  return sha256(stableStringify(value));
}

export async function fileSha256(file: string): Promise<string> {
  return sha256(await fsp.readFile(file));
}

/** Write a file atomically: temp name in the same folder, fsync, rename. */
export async function atomicWrite(file: string, data: string | Buffer): Promise<void> {
  await fsp.mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${crypto.randomBytes(4).toString("hex")}`;
  const fh = await fsp.open(tmp, "w");
  try {
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, file);
  } catch (e) {
    await fsp.rm(tmp, { force: true }).catch(() => {}); // a full disk leaves no half-written file behind
    throw e;
  }
}

export async function writeJson(file: string, value: unknown): Promise<void> {
  await atomicWrite(file, JSON.stringify(value, null, 2) + "\n");
}

export async function readJson<T = unknown>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await fsp.readFile(file, "utf8")) as T;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
}

export async function exists(p: string): Promise<boolean> {
  try {
    await fsp.access(p);
    return true;
  } catch {
    return false;
  }
}

/** Write records as JSONL (gzip when the name ends in .gz) atomically. */
export async function writeJsonl(file: string, records: Iterable<unknown>): Promise<void> {
  await fsp.mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${crypto.randomBytes(4).toString("hex")}`;
  const lines = (function* () {
    for (const r of records) yield JSON.stringify(r) + "\n";
  })();
  const src = Readable.from(lines);
  if (file.endsWith(".gz")) await pipeline(src, createGzip({ level: 3 }), createWriteStream(tmp));
  else await pipeline(src, createWriteStream(tmp));
  const fh = await fsp.open(tmp, "r+");
  await fh.sync();
  await fh.close();
  await fsp.rename(tmp, file);
}

/** Stream JSONL records (gzip-aware). Blank lines are skipped; a bad line throws with file:line. */
export async function* readJsonl<T = any>(file: string): AsyncGenerator<T> {
  const raw = createReadStream(file);
  const input = file.endsWith(".gz") ? raw.pipe(createGunzip()) : raw;
  const rl = createInterface({ input, crlfDelay: Infinity });
  let n = 0;
  for await (const line of rl) {
    n++;
    if (!line.trim()) continue;
    try {
      yield JSON.parse(line) as T;
    } catch {
      throw new Error(`${file}:${n}: not valid JSON`);
    }
  }
}

export async function readJsonlAll<T = any>(file: string): Promise<T[]> {
  const out: T[] = [];
  for await (const r of readJsonl<T>(file)) out.push(r);
  return out;
}

/** Deterministic shard of an id for `--shard i/N`. */
export function shardOf(id: string, n: number): number {
  return parseInt(sha256(id).slice(0, 8), 16) % n;
}

/**
 * The source-level id of a derived record: lineage segments (`/bug1`, `/ut3`, …: letters then digits) are
 * stripped from the end. `--shard` hashes this, so a problem and everything derived from it stay on one slice.
 */
export function lineageRoot(id: string): string {
  return id.replace(/(?:\/[a-z]+\d+)+$/, "") || id;
}
