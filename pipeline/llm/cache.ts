/**
 * Persistent raw-response cache for the LLM client: one small JSON file per (request, sample index),
 * written to a temp name and renamed into place, so a `kill -9` never leaves a half entry and several
 * processes (SLURM array tasks) can share one folder without locks. A file that does not parse (e.g.
 * after a power loss) counts as a miss and is overwritten by the next answer.
 *
 * Layout: <cacheDir>/llm/<2 hex>/<sha256>.json — the key hashes everything that determines the answer
 * (see requestKey); parsing happens elsewhere, so fixing a parser re-parses without calling the model.
 */
import { randomBytes } from "node:crypto";
import { promises as fsp } from "node:fs";
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
  v: number;
  key: string;
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

export class ResponseCache {
  readonly dir: string;
  private corrupt = 0;
  private readonly made = new Set<string>();
  constructor(cacheDir: string, private log?: (m: string) => void) {
    this.dir = path.join(cacheDir, "llm");
  }

  private file(key: string): string {
    return path.join(this.dir, key.slice(0, 2), `${key}.json`);
  }

  async get(key: string): Promise<CacheEntry | undefined> {
    let raw: string;
    try {
      raw = await fsp.readFile(this.file(key), "utf8");
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (err.code === "ENOENT") return undefined;
      throw new UserError(`cannot read the LLM response cache under ${this.dir} (${err.code ?? err.message}): fix its permissions or run.cache_dir`, 1);
    }
    try {
      const entry = JSON.parse(raw) as CacheEntry;
      if (entry && entry.v === CACHE_FORMAT && entry.key === key && typeof entry.text === "string") return entry;
    } catch {
      /* torn or foreign file: a miss */
    }
    if (this.corrupt++ === 0) this.log?.(`llm cache: ignoring unreadable entry ${this.file(key)} (it will be rewritten)`);
    return undefined;
  }

  /** Temp file + rename: readers see the old state or the whole entry, never a part. */
  async put(entry: CacheEntry): Promise<void> {
    try {
      await this.write(entry);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw new UserError(`cannot write the LLM response cache under ${this.dir} (${err.code ?? err.message}): free disk space or fix run.cache_dir`, 1);
    }
  }

  private async write(entry: CacheEntry): Promise<void> {
    const file = this.file(entry.key);
    const dir = path.dirname(file);
    if (!this.made.has(dir)) {
      await fsp.mkdir(dir, { recursive: true });
      this.made.add(dir);
    }
    const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
    const data = JSON.stringify(entry);
    try {
      await fsp.writeFile(tmp, data);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
      await fsp.mkdir(dir, { recursive: true }); // the folder was removed meanwhile
      await fsp.writeFile(tmp, data);
    }
    await fsp.rename(tmp, file);
  }
}
