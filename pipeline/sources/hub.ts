/**
 * Hugging Face Hub access through `@huggingface/hub`: file listing and downloads into the
 * standard (Python-compatible) cache layout `<cache>/<type>s--owner--name/{blobs,snapshots/<rev>}`.
 *
 * Environment, read here because the library does not: `HF_TOKEN` (access token),
 * `HF_ENDPOINT` (Hub URL), `HF_HUB_OFFLINE=1` (cache only); cache root `HF_HUB_CACHE` ›
 * `HF_HOME/hub` › `~/.cache/huggingface/hub`. For a pinned commit the file listing is cached
 * beside the blobs (`.utgen-tree/<commit>.json`), so a re-run with everything cached makes no request.
 */
import { promises as fsp } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { UserError } from "../errors.ts";
import { packageImport } from "../registry.ts";
import { atomicWrite, readJson } from "../util.ts";

type HubLib = typeof import("@huggingface/hub");
let hubLib: HubLib | undefined;
/** The Hub client, loaded on first use: importing it costs ~0.2 s (its WebAssembly hashers), which a run on
 * local input never needs. */
async function hub(): Promise<HubLib> {
  return (hubLib ??= await packageImport<HubLib>("@huggingface/hub"));
}

export type RepoType = "dataset" | "model";

export interface HubParams {
  repo: string;
  repoType: RepoType;
  revision?: string;
  /** HF cache root; default from the environment (see module comment). */
  cacheDir?: string;
  /** Custom fetch (tests, proxies). */
  fetch?: typeof fetch;
}

export interface HubFile {
  path: string;
  size: number;
  /** LFS sha256 when the file is in LFS, else the git blob id. */
  oid: string;
}

export const DEFAULT_HUB_URL = "https://huggingface.co";
const COMMIT_RE = /^[0-9a-f]{40}$/;

export function isCommit(rev: string | undefined): rev is string {
  return !!rev && COMMIT_RE.test(rev);
}

export function hubUrl(): string {
  return (process.env["HF_ENDPOINT"] || DEFAULT_HUB_URL).replace(/\/+$/, "");
}

export function hubCacheDir(): string {
  if (process.env["HF_HUB_CACHE"]) return process.env["HF_HUB_CACHE"];
  if (process.env["HF_HOME"]) return path.join(process.env["HF_HOME"], "hub");
  return path.join(os.homedir(), ".cache", "huggingface", "hub");
}

function offline(): boolean {
  return ["1", "true", "yes", "on"].includes((process.env["HF_HUB_OFFLINE"] ?? "").toLowerCase());
}

function accessToken(): string | undefined {
  const t = process.env["HF_TOKEN"] || undefined;
  if (t && !t.startsWith("hf_")) throw new UserError("HF_TOKEN does not look like a Hugging Face token (it must start with hf_)");
  return t;
}

/** Seconds to wait for a Hub response's headers (`HF_HUB_DOWNLOAD_TIMEOUT`, default 30). */
export function hubTimeoutMs(): number {
  const v = Number(process.env["HF_HUB_DOWNLOAD_TIMEOUT"] ?? "30");
  return (Number.isFinite(v) && v > 0 ? v : 30) * 1000;
}

/**
 * A fetch that gives up when the response headers do not arrive in time, so a Hub that accepts
 * connections but never answers fails with a clear error instead of hanging. The body (a large
 * download) is not limited.
 */
function withTimeout(base: typeof fetch = fetch): typeof fetch {
  return async (input, init) => {
    const ms = hubTimeoutMs();
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(new Error(`no response within ${ms / 1000} s`)), ms);
    const signal = init?.signal ? AbortSignal.any([init.signal, ctl.signal]) : ctl.signal;
    try {
      return await base(input, { ...init, signal });
    } catch (e) {
      if (ctl.signal.aborted) throw Object.assign(new Error("timeout"), { cause: { message: `no response within ${ms / 1000} s` } });
      throw e;
    } finally {
      clearTimeout(timer);
    }
  };
}

/** `<cache>/datasets--owner--name`, as Python's huggingface_hub names it. */
export function repoCacheFolder(p: HubParams): string {
  return path.join(p.cacheDir ?? hubCacheDir(), [`${p.repoType}s`, ...p.repo.split("/")].join("--"));
}

/** One-line UserError for a failed Hub call; network failures point at --input. */
export function hubError(e: unknown, what: string, url = hubUrl()): UserError {
  if (e instanceof UserError) return e;
  if (hubLib && e instanceof hubLib.HubApiError) { // only a loaded client throws one
    const s = e.statusCode;
    if (s === 401 || s === 403) {
      return new UserError(
        `the Hugging Face Hub at ${url} refused ${what} (HTTP ${s}); set HF_TOKEN to a token with access, or pass --input <folder>`,
      );
    }
    if (s === 404) {
      return new UserError(`${what}: not found on the Hugging Face Hub at ${url} (HTTP 404); check the repo, revision and file names`);
    }
    return new UserError(
      `cannot reach the Hugging Face Hub at ${url} (HTTP ${s} for ${what}); download the files elsewhere and pass --input <folder>`,
    );
  }
  const fsErr = e as NodeJS.ErrnoException;
  if (fsErr && typeof fsErr.code === "string" && fsErr.syscall && fsErr.path) {
    return new UserError(
      `cannot write the Hugging Face cache (${fsErr.code} on ${fsErr.path}); check HF_HUB_CACHE, its permissions and free disk space`,
    );
  }
  const err = e as Error & { cause?: { code?: string; message?: string } };
  const cause = err?.cause?.code ?? err?.cause?.message ?? err?.message ?? String(e);
  return new UserError(
    `cannot reach the Hugging Face Hub at ${url} (${String(cause).split("\n")[0]}); download the files elsewhere and pass --input <folder>`,
  );
}

function treeCacheFile(p: HubParams, revision: string): string {
  return path.join(repoCacheFolder(p), ".utgen-tree", `${revision}.json`);
}

/**
 * All files of the repo at `revision` (optionally under `under`), sorted by path. For a commit
 * revision the listing is cached and reused; with HF_HUB_OFFLINE=1 only the cache is used.
 */
export async function hubListFiles(p: HubParams & { under?: string }): Promise<HubFile[]> {
  const revision = p.revision ?? "main";
  const cached = isCommit(revision) ? treeCacheFile(p, revision) : undefined;
  let all = cached ? await readJson<HubFile[]>(cached).catch(() => undefined) : undefined;
  if (!all) {
    if (offline()) {
      throw new UserError(
        `HF_HUB_OFFLINE is set and the file list of ${p.repo}@${revision} is not cached; unset it or pass --input <folder>`,
      );
    }
    const url = hubUrl();
    all = [];
    try {
      const { listFiles } = await hub();
      for await (const f of listFiles({
        repo: { type: p.repoType, name: p.repo },
        revision,
        recursive: true,
        hubUrl: url,
        accessToken: accessToken(),
        fetch: withTimeout(p.fetch),
      })) {
        if (f.type !== "file") continue;
        all.push({ path: f.path, size: f.size, oid: f.lfs?.oid ?? f.oid ?? "" });
      }
    } catch (e) {
      throw hubError(e, `listing ${p.repoType} ${p.repo}@${revision}`, url);
    }
    all.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    if (cached) {
      try {
        await atomicWrite(cached, JSON.stringify(all));
      } catch (e) {
        throw hubError(e, "caching the file list", url);
      }
    }
  }
  const under = p.under?.replace(/\/+$/, "");
  return under ? all.filter((f) => f.path.startsWith(under + "/")) : all;
}

/**
 * Local path (in the HF cache) of one repo file, downloading it only when it is not cached yet.
 * `expectedSize`, when given, is checked against the cached blob.
 */
export async function hubDownload(
  p: HubParams & { path: string; expectedSize?: number; log?: (msg: string) => void },
): Promise<string> {
  const revision = p.revision ?? "main";
  const cacheDir = p.cacheDir ?? hubCacheDir();
  const pointer = path.join(repoCacheFolder({ ...p, cacheDir }), "snapshots", revision, p.path);
  let local: string | undefined;
  if (isCommit(revision)) {
    try {
      await fsp.stat(pointer);
      local = pointer;
    } catch {
      /* not cached */
    }
  }
  if (!local) {
    if (offline()) {
      throw new UserError(`HF_HUB_OFFLINE is set and ${p.repo}/${p.path}@${revision} is not cached; unset it or pass --input <folder>`);
    }
    const url = hubUrl();
    const lock = path.join(repoCacheFolder({ ...p, cacheDir }), ".utgen-locks", `${revision}--${p.path.replace(/[^\w.-]+/g, "_")}.lock`);
    const what = `downloading ${p.repo}/${p.path}@${revision}`;
    try {
      local = await withFileLock(lock, async () => {
        p.log?.(`downloading ${p.repo}/${p.path}@${revision.slice(0, 12)}${p.expectedSize ? ` (${p.expectedSize} bytes)` : ""}`);
        // Checks the snapshot pointer again first: another process may have just fetched it.
        const { downloadFileToCacheDir } = await hub();
        return downloadFileToCacheDir({
          repo: { type: p.repoType, name: p.repo },
          path: p.path,
          revision,
          hubUrl: url,
          cacheDir,
          accessToken: accessToken(),
          fetch: withTimeout(p.fetch),
        });
      });
    } catch (e) {
      throw hubError(e, what, url);
    }
  }
  if (p.expectedSize !== undefined) {
    const size = (await fsp.stat(local)).size;
    if (size !== p.expectedSize) {
      throw new UserError(
        `cached file ${local} has ${size} bytes, the Hub lists ${p.expectedSize}; delete it and run again`,
      );
    }
  }
  return local;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Runs `fn` holding an exclusive lock file, so that parallel runs (shards on one machine) never
 * download the same blob at once. A lock left by a dead process on this host is taken over.
 */
export async function withFileLock<T>(lock: string, fn: () => Promise<T>): Promise<T> {
  await fsp.mkdir(path.dirname(lock), { recursive: true });
  const me = { pid: process.pid, host: os.hostname() };
  for (;;) {
    try {
      await fsp.writeFile(lock, JSON.stringify(me), { flag: "wx" });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      const owner = await readJson<{ pid: number; host: string }>(lock).catch(() => undefined);
      if (owner && owner.host === me.host && !pidAlive(owner.pid)) {
        await fsp.rm(lock, { force: true });
        continue;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  try {
    return await fn();
  } finally {
    await fsp.rm(lock, { force: true });
  }
}

/** Minimal glob for repo paths: `*` and `?` stay within a path segment, `**` crosses segments. */
export function globToRegExp(glob: string): RegExp {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === "*") {
      if (glob[i + 1] === "*") {
        i++;
        if (glob[i + 1] === "/") {
          i++;
          re += "(?:.*/)?";
        } else re += ".*";
      } else re += "[^/]*";
    } else if (c === "?") re += "[^/]";
    else if ("\\^$.|+()[]{}".includes(c)) re += "\\" + c;
    else re += c;
  }
  return new RegExp(`^${re}$`);
}
