/**
 * Local row files: JSONL (optionally .gz), JSON (an array of rows, streamed with stream-json, or
 * JSON Lines under a .json name) and parquet (hyparquet, one row group per read, so memory is
 * bounded by the largest row group, not the file). Files of a folder are read in sorted order.
 */
import { createHash } from "node:crypto";
import { createReadStream, promises as fsp } from "node:fs";
import * as path from "node:path";
import { createGunzip } from "node:zlib";
import type { AsyncBuffer, FileMetaData } from "hyparquet";
import { UserError } from "../errors.ts";
import { packageImport } from "../registry.ts";
import { badRow, normalizeRow, type SourceRow } from "./rows.ts";

export type FileFormat = "jsonl" | "json" | "parquet";

/** Files up to this size are fingerprinted by content hash; bigger ones by size + mtime. */
export const HASH_FINGERPRINT_MAX_BYTES = 64 * 1024 * 1024;

export function formatOf(file: string): FileFormat | undefined {
  const f = file.toLowerCase();
  if (f.endsWith(".jsonl") || f.endsWith(".jsonl.gz") || f.endsWith(".ndjson")) return "jsonl";
  if (f.endsWith(".json") || f.endsWith(".json.gz")) return "json";
  if (f.endsWith(".parquet")) return "parquet";
  return undefined;
}

async function walk(root: string, rel = ""): Promise<string[]> {
  const out: string[] = [];
  const entries = await fsp.readdir(path.join(root, rel), { withFileTypes: true });
  for (const d of entries) {
    if (d.name.startsWith(".")) continue;
    const r = rel ? path.join(rel, d.name) : d.name;
    if (d.isDirectory()) out.push(...(await walk(root, r)));
    else if (d.isFile() || d.isSymbolicLink()) out.push(r);
  }
  return out;
}

/**
 * The data files of `input` (a file or a folder searched recursively, hidden entries skipped),
 * sorted by relative path. `format` other than "auto" forces the reader for every file.
 */
export async function listLocalFiles(
  input: string,
  format: FileFormat | "auto" = "auto",
): Promise<{ root: string; files: { file: string; rel: string; format: FileFormat }[] }> {
  const abs = path.resolve(input);
  let st;
  try {
    st = await fsp.stat(abs);
  } catch {
    throw new UserError(`input not found: ${input}; pass an existing JSONL/JSON/parquet file or folder`);
  }
  if (st.isFile()) {
    const f = format === "auto" ? formatOf(abs) : format;
    if (!f) {
      throw new UserError(
        `cannot tell the format of ${input} from its name; use .jsonl, .json or .parquet, or set source.format`,
      );
    }
    return { root: path.dirname(abs), files: [{ file: abs, rel: path.basename(abs), format: f }] };
  }
  const rels = (await walk(abs)).filter((r) => formatOf(r) !== undefined).sort();
  if (rels.length === 0) throw new UserError(`no .jsonl, .json or .parquet files under ${input}`);
  return {
    root: abs,
    files: rels.map((rel) => ({
      file: path.join(abs, rel),
      rel: rel.split(path.sep).join("/"),
      format: format === "auto" ? formatOf(rel)! : format,
    })),
  };
}

/** Cheap identity of local files: content hash for small files, size + mtime for big ones. */
export async function fingerprintFiles(files: { file: string; rel: string }[]): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  for (const f of files) {
    const st = await fsp.stat(f.file);
    if (st.size <= HASH_FINGERPRINT_MAX_BYTES) {
      const h = createHash("sha256");
      for await (const chunk of createReadStream(f.file)) h.update(chunk as Buffer);
      out.push({ name: f.rel, size: st.size, sha256: h.digest("hex") });
    } else {
      out.push({ name: f.rel, size: st.size, mtimeMs: Math.floor(st.mtimeMs) });
    }
  }
  return out;
}

function openBytes(file: string): NodeJS.ReadableStream {
  const raw = createReadStream(file, { highWaterMark: 1 << 20 });
  return file.toLowerCase().endsWith(".gz") ? raw.pipe(createGunzip()) : raw;
}

/** Raw lines as bytes (without the line break), 1-based line numbers; blank lines skipped. */
async function* byteLines(file: string): AsyncGenerator<{ line: Buffer; n: number }> {
  let pending: Buffer[] = [];
  let n = 0;
  for await (const chunk of openBytes(file) as AsyncIterable<Buffer>) {
    let pos = 0;
    for (;;) {
      const nl = chunk.indexOf(10, pos);
      if (nl < 0) break;
      const piece = chunk.subarray(pos, nl);
      const line = pending.length ? Buffer.concat([...pending, piece]) : piece;
      pending = [];
      n++;
      pos = nl + 1;
      const end = line.length && line[line.length - 1] === 13 ? line.length - 1 : line.length;
      const l = line.subarray(0, end);
      if (!isBlank(l)) yield { line: l, n };
    }
    if (pos < chunk.length) pending.push(Buffer.from(chunk.subarray(pos)));
  }
  if (pending.length) {
    n++;
    const l = Buffer.concat(pending);
    if (!isBlank(l)) yield { line: l, n };
  }
}

function isBlank(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) {
    const c = b[i];
    if (c !== 32 && c !== 9 && c !== 13) return false;
  }
  return true;
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** JSON Lines: a bad line (invalid UTF-8, not JSON) becomes a `_bad` row, never vanishes. */
export async function* readJsonlRows(file: string, strictFirstLine = false): AsyncGenerator<SourceRow> {
  const name = path.basename(file);
  let first = true;
  for await (const { line, n } of byteLines(file)) {
    let text: string;
    try {
      text = strictUtf8.decode(line);
    } catch {
      yield badRow(file, n, `${name}:${n}: invalid UTF-8`);
      first = false;
      continue;
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      if (first && strictFirstLine) {
        throw new UserError(`${file}:${n}: not JSON Lines and not a JSON array of rows; fix or convert the file`);
      }
      yield badRow(file, n, `${name}:${n}: not valid JSON`);
      first = false;
      continue;
    }
    first = false;
    yield normalizeRow(value, file, n);
  }
}

async function firstNonSpaceByte(file: string): Promise<number | undefined> {
  for await (const chunk of openBytes(file) as AsyncIterable<Buffer>) {
    for (const c of chunk) if (c !== 32 && c !== 9 && c !== 10 && c !== 13 && c !== 0xef && c !== 0xbb && c !== 0xbf) return c;
  }
  return undefined;
}

/** A .json file: a top-level array of rows (streamed) or JSON Lines. */
export async function* readJsonRows(file: string): AsyncGenerator<SourceRow> {
  const first = await firstNonSpaceByte(file);
  if (first === undefined) return;
  if (first !== 0x5b /* [ */) {
    yield* readJsonlRows(file, true);
    return;
  }
  const { default: StreamArray } = await packageImport<{ default: typeof import("stream-json/streamers/StreamArray.js") }>("stream-json/streamers/StreamArray.js");
  const stream = openBytes(file).pipe(StreamArray.withParser());
  let i = 0;
  try {
    for await (const item of stream as AsyncIterable<{ key: number; value: unknown }>) {
      i = item.key + 1;
      yield normalizeRow(item.value, file, i);
    }
  } catch (e) {
    throw new UserError(
      `${file}: not a valid JSON array after row ${i} (${(e as Error).message.split("\n")[0]}); fix the file or convert it to JSONL`,
    );
  }
}

/**
 * The parquet reader and its codecs, loaded on first use (~60 ms of imports a run on JSON Lines never needs; the
 * JSON-array streamer likewise, in readJsonRows).
 */
type Hyparquet = typeof import("hyparquet");
type Codecs = typeof import("hyparquet-compressors");
let parquetLibP: Promise<Hyparquet & { compressors: Codecs["compressors"] }> | undefined;
function parquetLib() {
  return (parquetLibP ??= Promise.all([packageImport<Hyparquet>("hyparquet"), packageImport<Codecs>("hyparquet-compressors")]).then(
    ([hp, hc]) => ({ ...hp, compressors: hc.compressors }),
  ));
}

/** Total rows and per-row-group row counts of a parquet file. */
export function rowGroupSizes(metadata: FileMetaData): number[] {
  return metadata.row_groups.map((g) => Number(g.num_rows));
}

/**
 * Rows of a parquet file, one row group per `parquetRead` call (hyparquet schedules every
 * planned group at once, so a whole-file read would buffer the file). `label` names the file in
 * messages and is the fallback `source`.
 */
export async function* readParquetRows(file: AsyncBuffer, label: string): AsyncGenerator<SourceRow> {
  const { parquetMetadataAsync, parquetRead, compressors } = await parquetLib();
  let metadata: FileMetaData;
  try {
    metadata = await parquetMetadataAsync(file);
  } catch (e) {
    throw new UserError(`${label}: not a readable parquet file (${(e as Error).message}); check the file or re-download it`);
  }
  let start = 0;
  for (const [g, n] of rowGroupSizes(metadata).entries()) {
    if (n === 0) continue;
    let rows: Record<string, unknown>[] = [];
    try {
      await parquetRead({
        file,
        metadata,
        compressors,
        rowStart: start,
        rowEnd: start + n,
        rowFormat: "object",
        onComplete: (r) => {
          rows = r;
        },
      });
    } catch (e) {
      throw new UserError(
        `${label}: row group ${g} (rows ${start}-${start + n - 1}) cannot be decoded (${(e as Error).message}); check the file or re-download it`,
      );
    }
    for (let i = 0; i < rows.length; i++) yield normalizeRow(rows[i], label, start + i + 1);
    rows = [];
    start += n;
  }
}

/** Rows of one local file in the given format. */
export async function* readFileRows(file: string, format: FileFormat): AsyncGenerator<SourceRow> {
  try {
    if (format === "jsonl") yield* readJsonlRows(file);
    else if (format === "json") yield* readJsonRows(file);
    else yield* readParquetRows(await (await parquetLib()).asyncBufferFromFile(file), file);
  } catch (e) {
    if (e instanceof UserError) throw e;
    // I/O and decompression failures (unreadable file, corrupt gzip, …)
    throw new UserError(`${file}: cannot be read (${(e as Error).message.split("\n")[0]}); check the file`);
  }
}
