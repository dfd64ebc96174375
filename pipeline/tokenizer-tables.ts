/**
 * A machine-local cache of a BPE tokenizer's two big lookup tables (token → id, merge pair → rank), so a
 * process builds its tokenizer in milliseconds instead of ~1 s.
 *
 * Why: `@huggingface/tokenizers` builds a Qwen tokenizer from its 10.6 MB `tokenizer.json` by reading and
 * parsing the file (~0.4 s), then turning the 151K-entry vocabulary and the 151K merges into two `Map`s
 * (~0.5 s, and ~300K long-lived heap entries that every later major GC marks). The filter pays this in every
 * run, on the main thread, while it starts.
 *
 * How: the first process that builds a family's tokenizer the library's usual way also writes the two Maps,
 * exactly as the library built them (their keys and values, whatever the file's merge format), into one
 * binary file: open-addressing hash tables over UTF-16 code units, in typed arrays. A later process reads that
 * file, builds the library's `Tokenizer` from the rest of `tokenizer.json` (normalizer, pre-tokenizer, added
 * tokens, decoder: everything but the vocabulary and the merges), and gives its BPE model the two tables in
 * place of the Maps. The tokenization code that runs is the library's own; only the lookups differ, and they
 * answer what the Maps answer (test/tokenize.test.ts compares the ids of both on a corpus).
 *
 * The file sits in `node_modules/.cache/utgen-pipeline/` (or `$UTGEN_TOKENIZER_CACHE`; `off` disables it),
 * is named by a hash of the table format, the vocabulary package's name and version, the library's version and
 * tokenizer.json's size and mtime, is written atomically (the package's older files are then removed), and is
 * rebuilt whenever it is missing, stale, truncated, damaged (a sha256 of the tables in its header) or refused.
 * Before a build from the file is used, it must give the probe text the ids the library's own build gave.
 */
import { closeSync, fstatSync, openSync, readdirSync, readFileSync, readSync, statSync, unlinkSync } from "node:fs";
import { createRequire } from "node:module";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { readFile } from "node:fs/promises";
import { Tokenizer } from "@huggingface/tokenizers";
import { atomicWrite, sha256 } from "./util.ts";

/** Bumped whenever the file layout or what it holds changes. */
const FORMAT = 3;
/**
 * Encoded by the library's own build when the file is written, and again by every build from the file before it
 * is used: a library whose BPE model no longer reads the two fields the tables replace (an upgrade that renamed
 * them) gives other ids here, and the process builds from tokenizer.json instead.
 */
const PROBE = "Hello World!\ndef add(a, b):\n    return a + b  # naïve café 中文 🚀\n<|im_start|>user<|eot_id|> 1234567 \"\"\" \t\u00a0x";
const MAGIC = "UTGTOKT1";
const ENDIAN = 0x01020304;

const require = createRequire(import.meta.url);
const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** A package's version from its own package.json ("" when unreadable), found from a file inside it. */
function versionNear(fileInPackage: string, up: string): string {
  try {
    return String(JSON.parse(readFileSync(path.join(path.dirname(fileInPackage), up, "package.json"), "utf8")).version ?? "");
  } catch {
    return "";
  }
}

/** The default folder of the cache, or undefined when it is switched off. */
export function defaultTableCacheDir(): string | undefined {
  const env = process.env.UTGEN_TOKENIZER_CACHE;
  if (env === "off") return undefined;
  return env ? path.resolve(env) : path.join(PROJECT_ROOT, "node_modules/.cache/utgen-pipeline");
}

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * A read-only string → int table answering the `get` / `has` a `Map` offers (all the library's BPE model asks of
 * its two Maps once it is built), and its entries (for the id → token array, built on demand).
 */
export class KeyTable {
  constructor(
    private readonly slots: Int32Array, // entry index + 1, 0 = empty; length a power of two
    private readonly offsets: Uint32Array, // n + 1 offsets into keys, in code units
    private readonly values: Int32Array,
    private readonly keys: Uint16Array,
  ) {}

  private find(key: string): number {
    const mask = this.slots.length - 1;
    const len = key.length;
    for (let i = fnv1a(key) & mask, left = this.slots.length; left > 0; i = (i + 1) & mask, left--) {
      const e = this.slots[i];
      if (e === 0) return -1;
      const start = this.offsets[e - 1];
      if (this.offsets[e] - start !== len) continue;
      let j = 0;
      while (j < len && this.keys[start + j] === key.charCodeAt(j)) j++;
      if (j === len) return e - 1;
    }
    return -1;
  }

  get(key: string): number | undefined {
    if (typeof key !== "string") return undefined;
    const e = this.find(key);
    return e < 0 ? undefined : this.values[e];
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  *entries(): IterableIterator<[string, number]> {
    for (let e = 0; e < this.values.length; e++)
      yield [String.fromCharCode(...this.keys.subarray(this.offsets[e], this.offsets[e + 1])), this.values[e]];
  }
}

interface Source {
  package: string;
  version: string;
  /** @huggingface/tokenizers' version: the Maps the file holds are what that version built */
  library: string;
  size: number;
  mtimeMs: number;
}

interface Header {
  format: number;
  source: Source;
  /** tokenizer.json less model.vocab and model.merges */
  slim: Record<string, any>;
  unk_token_id: number | null;
  /** the ids of PROBE from the library's own build */
  probe: number[];
  /** where the id → token array (decode only) differs from the inverse of token → id: [id, token or null] */
  vocab_patch: [number, string | null][];
  tables: { n: number; slots: number; units: number }[];
  bytes: number;
  /** sha256 of every byte after the header: a file damaged in place (the same length) is a cache miss */
  digest: string;
}

const NO_DIGEST = "0".repeat(64);

const align4 = (n: number) => (n + 3) & ~3;

function tableBytes(t: { n: number; slots: number; units: number }): number {
  return 12 + 4 * t.slots + 4 * (t.n + 1) + 4 * t.n + align4(2 * t.units);
}

/** Serialise Maps as the library built them. Keys that are not strings (none in practice) make it give up. */
function encodeTables(header: Omit<Header, "tables" | "bytes" | "digest">, maps: Map<string, number>[]): Buffer | undefined {
  const shapes: Header["tables"] = [];
  for (const m of maps) {
    let units = 0;
    for (const [k, v] of m) {
      if (typeof k !== "string" || !Number.isInteger(v) || v < -(2 ** 31) || v >= 2 ** 31) return undefined;
      units += k.length;
    }
    let slots = 1;
    while (slots < m.size * 2) slots *= 2;
    shapes.push({ n: m.size, slots, units });
  }
  const full: Header = { ...header, tables: shapes, bytes: 0, digest: NO_DIGEST };
  // The header's own length enters `bytes`: settle it with the final digit count.
  let json = "";
  for (let pass = 0; pass < 3; pass++) {
    json = JSON.stringify(full);
    full.bytes = 16 + align4(Buffer.byteLength(json)) + shapes.reduce((s, t) => s + tableBytes(t), 0);
  }
  json = JSON.stringify(full);
  const headerLen = Buffer.byteLength(json);
  if (16 + align4(headerLen) + shapes.reduce((s, t) => s + tableBytes(t), 0) !== full.bytes) return undefined;
  const buf = Buffer.alloc(full.bytes);
  buf.write(MAGIC, 0, "latin1");
  new Uint32Array(buf.buffer, buf.byteOffset + 8, 1)[0] = ENDIAN; // native order, like the tables
  buf.writeUInt32LE(headerLen, 12);
  buf.write(json, 16, "utf8");
  const tablesAt = 16 + align4(headerLen);
  let at = tablesAt;
  maps.forEach((m, ti) => {
    const { n, slots, units } = shapes[ti];
    buf.writeUInt32LE(n, at);
    buf.writeUInt32LE(slots, at + 4);
    buf.writeUInt32LE(units, at + 8);
    at += 12;
    const slotArr = new Int32Array(buf.buffer, buf.byteOffset + at, slots);
    at += 4 * slots;
    const offArr = new Uint32Array(buf.buffer, buf.byteOffset + at, n + 1);
    at += 4 * (n + 1);
    const valArr = new Int32Array(buf.buffer, buf.byteOffset + at, n);
    at += 4 * n;
    const keyArr = new Uint16Array(buf.buffer, buf.byteOffset + at, units);
    at += align4(2 * units);
    let e = 0;
    let u = 0;
    const mask = slots - 1;
    for (const [k, v] of m) {
      offArr[e] = u;
      for (let j = 0; j < k.length; j++) keyArr[u++] = k.charCodeAt(j);
      valArr[e] = v;
      let i = fnv1a(k) & mask;
      while (slotArr[i] !== 0) i = (i + 1) & mask; // a Map's keys are distinct: no key is placed twice
      slotArr[i] = e + 1;
      e++;
    }
    offArr[n] = u;
  });
  // the digest into its placeholder (the same length: the header's size does not move)
  const mark = `"digest":"${NO_DIGEST}"`;
  const i = json.lastIndexOf(mark);
  if (i < 0) return undefined;
  buf.write(sha256(buf.subarray(tablesAt)), 16 + Buffer.byteLength(json.slice(0, i)) + '"digest":"'.length, "latin1");
  return buf;
}

/** Read and check a table file; undefined (a cache miss) for anything that is not exactly what we wrote. */
function decodeTables(file: string, source: Source): { header: Header; tables: KeyTable[] } | undefined {
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch {
    return undefined;
  }
  try {
    const size = fstatSync(fd).size;
    if (size < 16) return undefined;
    const ab = new ArrayBuffer(size); // fresh and 0-aligned: typed views need 4-byte alignment
    const bytes = new Uint8Array(ab);
    for (let at = 0; at < size; ) {
      const n = readSync(fd, bytes, at, size - at, at);
      if (n <= 0) return undefined;
      at += n;
    }
    const buf = Buffer.from(ab);
    if (buf.toString("latin1", 0, 8) !== MAGIC || new Uint32Array(ab, 8, 1)[0] !== ENDIAN) return undefined;
    const headerLen = buf.readUInt32LE(12);
    if (16 + headerLen > size) return undefined;
    const header = JSON.parse(buf.toString("utf8", 16, 16 + headerLen)) as Header;
    if (header.format !== FORMAT || header.bytes !== size || JSON.stringify(header.source) !== JSON.stringify(source)) return undefined;
    if (!Array.isArray(header.tables) || header.tables.length !== 2 || !Array.isArray(header.vocab_patch)) return undefined;
    let at = 16 + align4(headerLen);
    if (typeof header.digest !== "string" || sha256(buf.subarray(at)) !== header.digest) return undefined;
    const tables: KeyTable[] = [];
    for (const t of header.tables) {
      if (at + tableBytes(t) > size || buf.readUInt32LE(at) !== t.n || buf.readUInt32LE(at + 4) !== t.slots || buf.readUInt32LE(at + 8) !== t.units) return undefined;
      if (t.slots < 2 * t.n || (t.slots & (t.slots - 1)) !== 0) return undefined;
      at += 12;
      const slots = new Int32Array(ab, at, t.slots);
      at += 4 * t.slots;
      const offsets = new Uint32Array(ab, at, t.n + 1);
      at += 4 * (t.n + 1);
      const values = new Int32Array(ab, at, t.n);
      at += 4 * t.n;
      const keys = new Uint16Array(ab, at, t.units);
      at += align4(2 * t.units);
      if (offsets[0] !== 0 || offsets[t.n] !== t.units) return undefined;
      tables.push(new KeyTable(slots, offsets, values, keys));
    }
    return at === size ? { header, tables } : undefined;
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

export interface BuiltTokenizer {
  tokenizer: Tokenizer;
  config: Record<string, unknown>;
  /** where the tables came from: the cache file, or tokenizer.json (the library's own build) */
  from: "cache" | "json";
  /** the cache file read or written; undefined when the cache is off or could not be written */
  cacheFile?: string;
}

/** The BPE model's fields the tables stand in for (see the library's BPE class). */
interface BpeModel {
  tokens_to_ids: Map<string, number> | KeyTable;
  bpe_ranks: Map<string, number> | KeyTable;
  unk_token_id: number | undefined;
  vocab: string[];
  merges: unknown[];
}

/**
 * Build a tokenizer of `pkg` (a package shipping `models/tokenizer.json` and `models/tokenizer_config.json`),
 * from the table cache in `cacheDir` when it holds this source's tables, else from tokenizer.json (writing the
 * tables for the next process). `cacheDir` undefined: no cache at all.
 */
export async function buildTokenizer(pkg: string, cacheDir: string | undefined): Promise<BuiltTokenizer> {
  const jsonPath = require.resolve(`${pkg}/models/tokenizer.json`);
  const configP = readFile(require.resolve(`${pkg}/models/tokenizer_config.json`), "utf8").then((t) => JSON.parse(t) as Record<string, unknown>);
  let file: string | undefined;
  let source: Source | undefined;
  let refused = false; // tables that decoded and fit, whose tokenizer did not count the probe text as the file says
  if (cacheDir) {
    const st = statSync(jsonPath);
    // the packages' own package.json files (not in their "exports": read from their folders)
    const version = versionNear(jsonPath, "..");
    const library = versionNear(require.resolve("@huggingface/tokenizers"), "..");
    source = { package: pkg, version, library, size: st.size, mtimeMs: st.mtimeMs };
    file = path.join(cacheDir, `${filePrefix(pkg)}${sha256(JSON.stringify({ FORMAT, source })).slice(0, 20)}.bin`);
    const cached = decodeTables(file, source);
    const config = cached && cached.header.slim?.model?.type === "BPE" ? await configP : undefined;
    let tokenizer: Tokenizer | undefined;
    try {
      tokenizer = cached && config ? new Tokenizer(cached.header.slim, config) : undefined;
    } catch {
      tokenizer = undefined; // a header the library does not take: built from tokenizer.json below
    }
    const model = tokenizer ? (tokenizer as unknown as { model: BpeModel }).model : undefined;
    const [ids, ranks] = cached?.tables ?? [];
    // The constructor put the added tokens into the (otherwise empty) Map it made: the table, written from the Map
    // of a full build, holds each with the same id, or the file is not this build's.
    const added = model?.tokens_to_ids instanceof Map ? [...model.tokens_to_ids] : undefined;
    if (cached && config && tokenizer && model && added && added.every(([k, v]) => ids.get(k) === v) && model.bpe_ranks instanceof Map) {
      model.tokens_to_ids = ids;
      model.bpe_ranks = ranks;
      model.unk_token_id = cached.header.unk_token_id ?? undefined;
      // id → token (decode only; this project never decodes): built on first use, from the table and the few
      // ids where the library's own array is not the table's inverse (vocab_patch)
      let vocab: string[] | undefined;
      const patch = cached.header.vocab_patch;
      Object.defineProperty(model, "vocab", {
        configurable: true,
        get() {
          if (!vocab) {
            vocab = [];
            for (const [k, v] of ids.entries()) vocab[v] = k;
            for (const [i, t] of patch) {
              if (t === null) delete vocab[i];
              else vocab[i] = t;
            }
          }
          return vocab;
        },
      });
      if (JSON.stringify(tokenizer.encode(PROBE, { add_special_tokens: false }).ids) === JSON.stringify(cached.header.probe))
        return { tokenizer, config, from: "cache", cacheFile: file };
      // otherwise built from tokenizer.json below, and not written again: a library that no longer counts from
      // the replaced tables would refuse the rewritten file too, and every process would pay for the write
      refused = true;
    }
  }
  const [json, config] = await Promise.all([readFile(jsonPath, "utf8").then((t) => JSON.parse(t) as Record<string, any>), configP]);
  const tokenizer = new Tokenizer(json, config);
  const model = (tokenizer as unknown as { model: BpeModel }).model;
  let written: string | undefined;
  if (file && source && !refused && json.model?.type === "BPE" && model.tokens_to_ids instanceof Map && model.bpe_ranks instanceof Map) {
    const { vocab: _v, merges: _m, ...slimModel } = json.model;
    const buf = encodeTables(
      {
        format: FORMAT,
        source,
        slim: { ...json, model: { ...slimModel, vocab: {}, merges: [] } },
        unk_token_id: model.unk_token_id ?? null,
        probe: tokenizer.encode(PROBE, { add_special_tokens: false }).ids,
        vocab_patch: vocabPatch(model.tokens_to_ids, model.vocab),
      },
      [model.tokens_to_ids, model.bpe_ranks],
    );
    if (buf) {
      try {
        await atomicWrite(file, buf);
        written = file;
        prune(path.dirname(file), filePrefix(pkg), path.basename(file));
      } catch {
        // a read-only install: every process builds from tokenizer.json, as without the cache
      }
    }
  }
  return { tokenizer, config, from: "json", cacheFile: written };
}

/** Where the library's id → token array differs from the inverse of its token → id Map (in the Map's order). */
function vocabPatch(ids: Map<string, number>, vocab: (string | undefined)[]): [number, string | null][] {
  const inverse: (string | undefined)[] = [];
  for (const [k, v] of ids) inverse[v] = k;
  const out: [number, string | null][] = [];
  for (let i = 0; i < Math.max(inverse.length, vocab.length); i++) if (vocab[i] !== inverse[i]) out.push([i, vocab[i] ?? null]);
  return out;
}

/** The file names of one package's tables begin with this. */
function filePrefix(pkg: string): string {
  return `tokenizer-tables-${pkg.replace(/[^A-Za-z0-9]+/g, "-").replace(/^-+/, "")}-`;
}

/**
 * After a write: the package's other table files (an older vocabulary, library or format) go, and so do
 * temporary files over an hour old (a writer killed mid-write; a younger one may be another process's, writing).
 */
function prune(dir: string, prefix: string, keep: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  // exactly this package's names (a prefix alone would also match a package whose name extends this one's)
  const ours = new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}[0-9a-f]{20}\\.bin(\\.tmp-.*)?$`);
  for (const n of names) {
    if (!ours.test(n) || n === keep) continue;
    const f = path.join(dir, n);
    try {
      if (n.endsWith(".bin") || (n.includes(".bin.tmp-") && Date.now() - statSync(f).mtimeMs > 3600_000)) unlinkSync(f);
    } catch {
      // gone meanwhile, or not ours to remove
    }
  }
}
