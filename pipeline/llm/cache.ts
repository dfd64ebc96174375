/**
 * Persistent raw-response cache for the LLM client: append-only JSONL segments under <cacheDir>/llm/,
 * one segment per cache instance (process), so several processes (SLURM array tasks) share the folder
 * without locks. One line per (request, sample index); a line is only indexed once it ends in "\n" and
 * parses, so a torn last line after `kill -9` (or garbage after a power loss) is ignored and the sample
 * is simply asked again. Writes are group-committed: concurrent puts share one append (a new file per
 * entry cost ~2 ms of metadata work each on ext4, which capped throughput).
 *
 * On first use the folder's segments are indexed (key → file, offset, length); answers are read back
 * with positioned reads. Entries other processes append later are not seen by an already-open cache.
 * The key hashes everything that determines the answer (see requestKey); parsing happens elsewhere, so
 * fixing a parser re-parses without calling the model.
 */
import { randomBytes } from "node:crypto";
import { createReadStream, promises as fsp } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { UserError } from "../errors.ts";
import { hashValue, sha256 } from "../util.ts";
import type { ChatMessage, Sampling } from "./types.ts";

export const CACHE_FORMAT = 1;

/** What determines a sample (model, messages, sampling incl. extras, template): every field joins the key. */
export interface RequestIdentity extends Sampling {
  model: string;
  messages: ChatMessage[];
  templateHash?: string;
}

export interface CacheEntry {
  key: string;
  v: number;
  index: number;
  model: string;
  text: string;
  finish_reason: string;
  /** The raw choice object as the server sent it. */
  choice: unknown;
  /** Usage of the request this sample came from, and how many samples shared it. */
  usage: { prompt_tokens: number; completion_tokens: number };
  request_n: number;
  server: string;
  created: string;
}

export function requestKey(id: RequestIdentity): string {
  return hashValue({ v: CACHE_FORMAT, ...id });
}

export function sampleKey(reqKey: string, index: number): string {
  return sha256(`${reqKey}:${index}`);
}

interface Loc {
  file: string;
  offset: number;
  length: number;
}

interface Pending {
  key: string;
  line: Buffer;
  resolve: () => void;
  reject: (e: unknown) => void;
}

const valid = (e: any, key?: string): e is CacheEntry =>
  !!e && typeof e === "object" && e.v === CACHE_FORMAT && typeof e.key === "string" && (key === undefined || e.key === key) && typeof e.text === "string";

export class ResponseCache {
  readonly dir: string;
  private readonly index = new Map<string, Loc>();
  private opening?: Promise<void>;
  private writer?: { file: string; fh: fsp.FileHandle; size: number };
  private readonly pending: Pending[] = [];
  private flushing?: Promise<void>;
  private skipped = 0;

  constructor(cacheDir: string, private readonly log?: (m: string) => void) {
    this.dir = path.join(cacheDir, "llm");
  }

  /** Number of samples indexed (for stats and tests). */
  get size(): number {
    return this.index.size;
  }

  private fail(what: "read" | "write", e: unknown): never {
    if (e instanceof UserError) throw e;
    const err = e as NodeJS.ErrnoException;
    const todo = what === "read" ? "fix its permissions or run.cache_dir" : "free disk space or fix run.cache_dir";
    throw new UserError(`cannot ${what} the LLM response cache under ${this.dir} (${err.code ?? err.message}): ${todo}`, 1);
  }

  private open(): Promise<void> {
    this.opening ??= this.load().catch((e) => this.fail("read", e));
    return this.opening;
  }

  private async load(): Promise<void> {
    let names: string[];
    try {
      names = await fsp.readdir(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
      throw e;
    }
    for (const name of names.filter((n) => n.endsWith(".jsonl")).sort()) await this.indexSegment(path.join(this.dir, name));
    if (this.skipped) this.log?.(`llm cache: ignored ${this.skipped} torn or unreadable line(s) under ${this.dir} (those samples will be asked again)`);
  }

  /** Index complete, parsable lines of one segment by byte offset; the first valid copy of a key wins. */
  private async indexSegment(file: string): Promise<void> {
    let offset = 0;
    let carry: Buffer = Buffer.alloc(0);
    for await (const chunk of createReadStream(file)) {
      const buf: Buffer = carry.length ? Buffer.concat([carry, chunk as Buffer]) : (chunk as Buffer);
      let start = 0;
      for (let nl = buf.indexOf(10, start); nl >= 0; nl = buf.indexOf(10, start)) {
        const line = buf.subarray(start, nl);
        let e: unknown;
        try {
          e = JSON.parse(line.toString("utf8"));
        } catch {
          e = undefined;
        }
        if (valid(e)) {
          if (!this.index.has(e.key)) this.index.set(e.key, { file, offset: offset + start, length: line.length });
        } else if (line.length) this.skipped++;
        start = nl + 1;
      }
      offset += start;
      carry = buf.subarray(start);
    }
    if (carry.length) this.skipped++; // a torn last line (no newline): ignored
  }

  async get(key: string): Promise<CacheEntry | undefined> {
    await this.open();
    const loc = this.index.get(key);
    if (!loc) return undefined;
    const buf = Buffer.alloc(loc.length);
    try {
      const fh = await fsp.open(loc.file, "r");
      try {
        await fh.read(buf, 0, loc.length, loc.offset);
      } finally {
        await fh.close();
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") {
        this.index.delete(key); // the segment was removed meanwhile: a miss
        return undefined;
      }
      this.fail("read", e);
    }
    try {
      const entry = JSON.parse(buf.toString("utf8"));
      if (valid(entry, key)) return entry;
    } catch {
      /* changed on disk since indexing: a miss */
    }
    this.index.delete(key);
    return undefined;
  }

  /** Resolves once the entry is appended (not fsynced: a crash may lose the tail, which is then re-asked). */
  async put(entry: CacheEntry): Promise<void> {
    await this.open();
    const line = Buffer.from(JSON.stringify(entry) + "\n", "utf8");
    const done = new Promise<void>((resolve, reject) => this.pending.push({ key: entry.key, line, resolve, reject }));
    this.kick();
    return done;
  }

  private kick(): void {
    if (this.flushing) return;
    this.flushing = (async () => {
      try {
        await this.flush();
      } finally {
        this.flushing = undefined;
        if (this.pending.length) this.kick(); // queued after the loop ended
      }
    })();
  }

  /** Group commit: everything queued while one append runs goes out in the next single append. */
  private async flush(): Promise<void> {
    while (this.pending.length) {
      const batch = this.pending.splice(0);
      try {
        const w = await this.segment();
        const data = Buffer.concat(batch.map((b) => b.line));
        for (let at = 0; at < data.length; ) at += (await w.fh.write(data, at, data.length - at)).bytesWritten;
        let off = w.size;
        for (const b of batch) {
          this.index.set(b.key, { file: w.file, offset: off, length: b.line.length - 1 });
          off += b.line.length;
        }
        w.size = off;
        for (const b of batch) b.resolve();
      } catch (e) {
        let err: unknown = e;
        try {
          this.fail("write", e);
        } catch (u) {
          err = u;
        }
        for (const b of batch) b.reject(err);
      }
    }
  }

  private async segment(): Promise<{ file: string; fh: fsp.FileHandle; size: number }> {
    if (!this.writer) {
      await fsp.mkdir(this.dir, { recursive: true });
      const host = os.hostname().replace(/[^A-Za-z0-9_.-]/g, "_");
      const file = path.join(this.dir, `seg-${host}-${process.pid}-${Date.now().toString(36)}-${randomBytes(3).toString("hex")}.jsonl`);
      this.writer = { file, fh: await fsp.open(file, "a"), size: 0 };
    }
    return this.writer;
  }

  /** Waits for queued appends and closes the segment. */
  async close(): Promise<void> {
    while (this.flushing) await this.flushing;
    const w = this.writer;
    this.writer = undefined;
    await w?.fh.close();
  }
}
