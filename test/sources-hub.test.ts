// Hub source against the project's loopback Hub server: listing (paginated), downloads into the
// HF cache layout, token forwarding, HF_ENDPOINT, pinned revision, cache reuse, unreachable Hub.
import { spawnSync } from "node:child_process";
import { promises as fsp } from "node:fs";
import { createServer } from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { UserError } from "../pipeline/errors.ts";
import { hubDownload, hubListFiles, openSource, type SourceRow } from "../pipeline/sources/index.ts";
import { fixtureRows } from "./fixtures/tulu/make-fixtures.ts";
import { writeTuluParquet } from "./fixtures/tulu/parquet.ts";
import { startHubServer } from "./servers/hub.ts";

const REPO = "test-org/tulu-mini";
const COMMIT = "0123456789abcdef0123456789abcdef01234567";
const TOKEN = "hf_loopbacktesttoken";

let tmp: string;
let repoRoot: string;
let server: Awaited<ReturnType<typeof startHubServer>>;
const saved: Record<string, string | undefined> = {};
const ENV = ["HF_TOKEN", "HF_ENDPOINT", "HF_HUB_CACHE", "HF_HOME", "HF_HUB_OFFLINE", "HF_HUB_DOWNLOAD_TIMEOUT"];

async function collect(rows: AsyncIterable<SourceRow>): Promise<SourceRow[]> {
  const out: SourceRow[] = [];
  for await (const r of rows) out.push(r);
  return out;
}

beforeAll(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), "utgen-hub-"));
  repoRoot = path.join(tmp, "repo");
  await fsp.mkdir(path.join(repoRoot, "data"), { recursive: true });
  const rows = fixtureRows();
  await writeTuluParquet(path.join(repoRoot, "data/train-00000-of-00002.parquet"), rows.slice(0, 12), { rowGroupSize: 5 });
  await writeTuluParquet(path.join(repoRoot, "data/train-00001-of-00002.parquet"), rows.slice(12), { rowGroupSize: 5 });
  await fsp.writeFile(path.join(repoRoot, "README.md"), "# tulu-mini\n");
  await fsp.writeFile(path.join(repoRoot, "data/notes.txt"), "not data\n");
  // pageSize 2: the 5 entries (1 folder + 4 files) come in 3 pages, exercising Link pagination.
  server = await startHubServer({ root: repoRoot, repo: REPO, revision: COMMIT, requireToken: TOKEN, pageSize: 2 });
});
afterAll(async () => {
  await server.close();
  await fsp.rm(tmp, { recursive: true, force: true });
});

let cache: string;
beforeEach(async () => {
  for (const k of ENV) saved[k] = process.env[k];
  for (const k of ENV) delete process.env[k];
  cache = await fsp.mkdtemp(path.join(tmp, "cache-"));
  process.env["HF_TOKEN"] = TOKEN;
  process.env["HF_ENDPOINT"] = server.url;
  process.env["HF_HUB_CACHE"] = cache;
  server.requests.length = 0;
});
afterEach(() => {
  for (const k of ENV) {
    if (saved[k] === undefined) delete process.env[k];
    else process.env[k] = saved[k];
  }
});

const cfg = { kind: "hub" as const, repo: REPO, revision: COMMIT };

describe("hub source", () => {
  it("lists, downloads into the HF cache layout, forwards the token and honours HF_ENDPOINT", async () => {
    const src = await openSource(cfg);
    const rows = await collect(src.rows);
    expect(rows.map((r) => r.id)).toEqual(fixtureRows().map((r) => r.id));
    expect(rows[3].messages[0]).toMatchObject({ role: "system" });

    // Every request went to the loopback server (HF_ENDPOINT), carried the token and the pinned commit.
    expect(server.requests.length).toBeGreaterThan(0);
    for (const r of server.requests) {
      expect(r.headers["authorization"]).toBe(`Bearer ${TOKEN}`);
      expect(r.path).toContain(COMMIT);
      expect(r.path).not.toMatch(/\/main(\/|\?|$)/);
    }
    const tree = server.requests.filter((r) => r.path.includes("/tree/"));
    expect(tree.length).toBe(3);
    const downloads = server.requests.filter((r) => r.path.includes("/resolve/") && !r.headers["range"]);
    expect(downloads.map((r) => path.basename(r.path))).toEqual(["train-00000-of-00002.parquet", "train-00001-of-00002.parquet"]);

    // Python-compatible cache layout: snapshots/<commit>/<path> -> ../../../blobs/<sha256>
    const folder = path.join(cache, "datasets--test-org--tulu-mini");
    const pointer = path.join(folder, "snapshots", COMMIT, "data/train-00000-of-00002.parquet");
    const link = await fsp.readlink(pointer);
    expect(link).toMatch(/^\.\.\/\.\.\/\.\.\/blobs\/[0-9a-f]{64}$/);
    const fp = src.fingerprint as { files: { path: string; size: number; oid: string }[] };
    expect(fp.files.map((f) => f.path)).toEqual(["data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet"]);
    expect(path.basename(link)).toBe(fp.files[0].oid);
    expect((await fsp.stat(pointer)).size).toBe(fp.files[0].size);
    expect(src.fingerprint).toMatchObject({ kind: "hub", repo: REPO, revision: COMMIT });
  });

  it("reuses the cache: the second open makes no request at all", async () => {
    const first = await openSource(cfg);
    await collect(first.rows);
    const n = server.requests.length;
    const second = await openSource(cfg);
    const rows = await collect(second.rows);
    expect(rows.length).toBe(fixtureRows().length);
    expect(server.requests.length).toBe(n);
    expect(second.fingerprint).toEqual(first.fingerprint);
    // and works offline from the cache
    process.env["HF_HUB_OFFLINE"] = "1";
    expect((await collect((await openSource(cfg)).rows)).length).toBe(fixtureRows().length);
  });

  it("downloads only what the row limit needs", async () => {
    const rows = await collect((await openSource(cfg, { limit: 3 })).rows);
    expect(rows.length).toBe(3);
    expect(server.requests.some((r) => r.path.includes("train-00001"))).toBe(false);
  });

  it("uses HF_HOME/hub when HF_HUB_CACHE is unset, and an explicit cacheDir over both", async () => {
    delete process.env["HF_HUB_CACHE"];
    process.env["HF_HOME"] = path.join(cache, "home");
    const p = await hubDownload({ repo: REPO, repoType: "dataset", path: "README.md", revision: COMMIT });
    expect(p).toBe(path.join(cache, "home", "hub", "datasets--test-org--tulu-mini", "snapshots", COMMIT, "README.md"));
    expect(await fsp.readFile(p, "utf8")).toBe("# tulu-mini\n");
    const other = path.join(cache, "explicit");
    const q = await hubDownload({ repo: REPO, repoType: "dataset", path: "README.md", revision: COMMIT, cacheDir: other });
    expect(q.startsWith(other)).toBe(true);
    const listed = await hubListFiles({ repo: REPO, repoType: "dataset", revision: COMMIT, cacheDir: other, under: "data" });
    expect(listed.map((f) => f.path)).toEqual(["data/notes.txt", "data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet"]);
  });

  it("downloads a file once when asked twice at the same time, and takes over a dead process's lock", async () => {
    const rel = "data/train-00001-of-00002.parquet";
    const args = { repo: REPO, repoType: "dataset" as const, path: rel, revision: COMMIT };
    const [a, b] = await Promise.all([hubDownload(args), hubDownload(args)]);
    expect(a).toBe(b);
    const gets = server.requests.filter((r) => r.path.endsWith(rel) && r.method === "GET" && !r.headers["range"]);
    expect(gets.length).toBe(1);

    // A lock left behind by a process that no longer exists does not block the next run.
    const dead = spawnSync(process.execPath, ["-e", "process.pid"]).pid!;
    const lock = path.join(cache, "datasets--test-org--tulu-mini", ".utgen-locks", `${COMMIT}--README.md.lock`);
    await fsp.mkdir(path.dirname(lock), { recursive: true });
    await fsp.writeFile(lock, JSON.stringify({ pid: dead, host: os.hostname() }));
    const readme = await hubDownload({ ...args, path: "README.md" });
    expect(await fsp.readFile(readme, "utf8")).toBe("# tulu-mini\n");
    await expect(fsp.access(lock)).rejects.toThrow();
  });

  it("uses a custom fetch when given one", async () => {
    const seen: string[] = [];
    const f: typeof fetch = (input, init) => {
      seen.push(String(input));
      return fetch(input, init);
    };
    await collect((await openSource(cfg, { fetch: f, limit: 1 })).rows);
    expect(seen.some((u) => u.includes("/tree/"))).toBe(true);
  });
});

describe("loopback Hub server", () => {
  it("serves HEAD and byte ranges with the headers the client expects", async () => {
    const rel = "data/train-00000-of-00002.parquet";
    const whole = await fsp.readFile(path.join(repoRoot, rel));
    const url = `${server.url}/datasets/${REPO}/resolve/${COMMIT}/${rel}`;
    const auth = { Authorization: `Bearer ${TOKEN}` };
    const head = await fetch(url, { method: "HEAD", headers: auth });
    expect(head.status).toBe(200);
    expect(head.headers.get("x-repo-commit")).toBe(COMMIT);
    expect(head.headers.get("x-linked-size")).toBe(String(whole.length));
    expect(head.headers.get("etag")).toMatch(/^"[0-9a-f]{64}"$/);
    const part = await fetch(url, { headers: { ...auth, Range: "bytes=4-11" } });
    expect(part.status).toBe(206);
    expect(part.headers.get("content-range")).toBe(`bytes 4-11/${whole.length}`);
    expect(Buffer.from(await part.arrayBuffer())).toEqual(whole.subarray(4, 12));
    const tail = await fetch(url, { headers: { ...auth, Range: "bytes=-4" } });
    expect(Buffer.from(await tail.arrayBuffer()).toString()).toBe("PAR1");
    const bad = await fetch(url, { headers: { ...auth, Range: `bytes=${whole.length}-` } });
    expect(bad.status).toBe(416);
  });
});

describe("hub errors", () => {
  it("says the Hub is unreachable in one line and points at --input", async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer();
      s.listen(0, "127.0.0.1", () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    process.env["HF_ENDPOINT"] = `http://127.0.0.1:${port}`;
    const err = await openSource(cfg).catch((e) => e);
    expect(err).toBeInstanceOf(UserError);
    expect(err.message).toBe(
      `cannot reach the Hugging Face Hub at http://127.0.0.1:${port} (ECONNREFUSED); download the files elsewhere and pass --input <folder>`,
    );
  });

  it("gives up on a Hub that accepts connections but never answers", async () => {
    const sockets: import("node:net").Socket[] = [];
    const silent = createServer((s) => sockets.push(s));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const port = (silent.address() as { port: number }).port;
    process.env["HF_ENDPOINT"] = `http://127.0.0.1:${port}`;
    process.env["HF_HUB_DOWNLOAD_TIMEOUT"] = "0.3";
    try {
      const err = await openSource(cfg).catch((e) => e);
      expect(err).toBeInstanceOf(UserError);
      expect(err.message).toBe(
        `cannot reach the Hugging Face Hub at http://127.0.0.1:${port} (no response within 0.3 s); download the files elsewhere and pass --input <folder>`,
      );
    } finally {
      delete process.env["HF_HUB_DOWNLOAD_TIMEOUT"];
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it("explains a refused token and a bad token format", async () => {
    process.env["HF_TOKEN"] = "hf_wrong";
    await expect(openSource(cfg)).rejects.toThrow(/refused listing .* \(HTTP 401\); set HF_TOKEN/);
    process.env["HF_TOKEN"] = "not-a-token";
    await expect(openSource(cfg)).rejects.toThrow(/HF_TOKEN does not look like a Hugging Face token/);
  });

  it("rejects an unknown revision and a glob that matches nothing", async () => {
    await expect(openSource({ ...cfg, revision: "f".repeat(40) })).rejects.toThrow(/not found on the Hugging Face Hub .*HTTP 404/);
    await expect(openSource({ ...cfg, files: "data/*.arrow" })).rejects.toThrow(/no \.parquet\/\.jsonl\/\.json files match source\.files "data\/\*\.arrow"/);
  });

  it("says when the cache folder cannot be written", async () => {
    const file = path.join(cache, "a-file");
    await fsp.writeFile(file, "x");
    process.env["HF_HUB_CACHE"] = path.join(file, "hub");
    const err = await openSource(cfg).catch((e) => e);
    expect(err).toBeInstanceOf(UserError);
    expect(err.message).toMatch(/^cannot write the Hugging Face cache \(ENOTDIR on .*a-file.*\); check HF_HUB_CACHE/);
  });

  it("refuses to go online under HF_HUB_OFFLINE with an empty cache", async () => {
    process.env["HF_HUB_OFFLINE"] = "1";
    await expect(openSource(cfg)).rejects.toThrow(/HF_HUB_OFFLINE is set .* pass --input <folder>/);
    expect(server.requests.length).toBe(0);
  });
});
