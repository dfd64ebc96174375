/**
 * Loopback stand-in for the few Hugging Face Hub endpoints that `@huggingface/hub` calls for
 * `listFiles`, `pathsInfo` and `downloadFileToCacheDir`, serving one repo at one commit from a
 * local folder laid out as the repo's files:
 *   GET  /api/{datasets|models}/<repo>/tree/<rev>[/<path>]?recursive=&expand=   (Link-header pagination)
 *   POST /api/{datasets|models}/<repo>/paths-info/<rev>                          ({paths, expand})
 *   GET/HEAD /[datasets/]<repo>/resolve/<rev>/<path>                              (ETag, X-Repo-Commit,
 *        X-Linked-Size/X-Linked-ETag for LFS files, Accept-Ranges, single-range `Range: bytes=a-b`)
 * `main` is accepted as an alias of the served commit; any other revision is a 404 RevisionNotFound.
 * Every request is recorded (method, path with query, lower-cased headers) for assertions.
 */
import { createHash } from "node:crypto";
import { createReadStream, promises as fsp } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import * as path from "node:path";

export interface HubRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
}

export interface HubServerOptions {
  /** Folder whose files are the repo's files. */
  root: string;
  /** "owner/name". */
  repo: string;
  /** The commit (40 hex) served; `main` resolves to it. */
  revision: string;
  repoType?: "dataset" | "model";
  /** When set, every request must carry `Authorization: Bearer <requireToken>` (else 401). */
  requireToken?: string;
  /** Tree entries per page (the real Hub uses 1,000 for recursive listings); default 1000. */
  pageSize?: number;
  /** Files at least this big are reported as LFS files (lfs.oid = sha256). Default 1 byte: all. */
  lfsThreshold?: number;
}

interface FileEntry {
  path: string;
  size: number;
  gitOid: string;
  lfsOid?: string;
}

async function walk(root: string, rel = ""): Promise<string[]> {
  const out: string[] = [];
  for (const d of await fsp.readdir(path.join(root, rel), { withFileTypes: true })) {
    const r = rel ? `${rel}/${d.name}` : d.name;
    if (d.isDirectory()) out.push(...(await walk(root, r)));
    else if (d.isFile()) out.push(r);
  }
  return out.sort();
}

async function describe(root: string, rel: string, lfsThreshold: number): Promise<FileEntry> {
  const data = await fsp.readFile(path.join(root, rel));
  const gitOid = createHash("sha1").update(`blob ${data.length}\0`).update(data).digest("hex");
  if (data.length >= lfsThreshold) {
    const lfsOid = createHash("sha256").update(data).digest("hex");
    const pointer = `version https://git-lfs.github.com/spec/v1\noid sha256:${lfsOid}\nsize ${data.length}\n`;
    const pointerOid = createHash("sha1").update(`blob ${pointer.length}\0${pointer}`).digest("hex");
    return { path: rel, size: data.length, gitOid: pointerOid, lfsOid };
  }
  return { path: rel, size: data.length, gitOid };
}

export async function startHubServer(opts: HubServerOptions): Promise<{
  url: string;
  requests: HubRequest[];
  close(): Promise<void>;
}> {
  const repoType = opts.repoType ?? "dataset";
  const pageSize = opts.pageSize ?? 1000;
  const lfsThreshold = opts.lfsThreshold ?? 1;
  const requests: HubRequest[] = [];
  const lastCommit = { id: opts.revision, title: "Upload dataset", date: "2024-11-21T00:00:00.000Z" };

  // Snapshot the folder once, like a commit.
  const files = new Map<string, FileEntry>();
  for (const rel of await walk(opts.root)) files.set(rel, await describe(opts.root, rel, lfsThreshold));

  const dirsOf = (p: string) => {
    const parts = p.split("/");
    return parts.slice(0, -1).map((_, i) => parts.slice(0, i + 1).join("/"));
  };
  const treeEntry = (f: FileEntry, expand: boolean) => ({
    type: "file",
    oid: f.gitOid,
    size: f.size,
    path: f.path,
    ...(f.lfsOid ? { lfs: { oid: f.lfsOid, size: f.size, pointerSize: 134 } } : {}),
    ...(expand ? { lastCommit, securityFileStatus: { status: "safe" } } : {}),
  });

  const apiPrefix = `/api/${repoType}s/${opts.repo}/`;
  const resolvePrefix = `${repoType === "model" ? "" : `/${repoType}s`}/${opts.repo}/resolve/`;

  function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
    const data = JSON.stringify(body);
    res.writeHead(status, { "Content-Type": "application/json; charset=utf-8", ...headers });
    res.end(data);
  }
  const notFound = (res: ServerResponse, code: string, msg: string) =>
    sendJson(res, 404, { error: msg }, { "X-Error-Code": code });

  /** Splits "<rev>/<rest>" and checks the revision. */
  function splitRev(s: string, res: ServerResponse): { rest: string } | undefined {
    const i = s.indexOf("/");
    const rev = decodeURIComponent(i < 0 ? s : s.slice(0, i));
    if (rev !== opts.revision && rev !== "main") {
      notFound(res, "RevisionNotFound", `Invalid rev id: ${rev}`);
      return undefined;
    }
    return { rest: i < 0 ? "" : decodeURIComponent(s.slice(i + 1)) };
  }

  async function readBody(req: IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString("utf8");
  }

  async function handle(req: IncomingMessage, res: ServerResponse, base: string) {
    const u = new URL(req.url ?? "/", base);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string") headers[k] = v;
    requests.push({ method: req.method ?? "GET", path: u.pathname + u.search, headers });

    if (opts.requireToken && headers["authorization"] !== `Bearer ${opts.requireToken}`) {
      return sendJson(res, 401, { error: "Invalid credentials in Authorization header" }, { "X-Error-Code": "RepoNotFound" });
    }

    const pathname = u.pathname;
    if (pathname.startsWith(apiPrefix + "tree/") && req.method === "GET") {
      const r = splitRev(pathname.slice((apiPrefix + "tree/").length), res);
      if (!r) return;
      const dir = r.rest.replace(/\/$/, "");
      const recursive = u.searchParams.get("recursive") === "true" || u.searchParams.get("recursive") === "1";
      const expand = u.searchParams.get("expand") === "true";
      const under = [...files.values()].filter((f) => !dir || f.path.startsWith(dir + "/"));
      if (dir && under.length === 0) return notFound(res, "EntryNotFound", `${dir} does not exist`);
      const entries: unknown[] = [];
      const seenDirs = new Set<string>();
      for (const f of under) {
        const depth = dir ? dir.split("/").length : 0;
        for (const d of dirsOf(f.path).slice(depth)) {
          if (!recursive && d.split("/").length > depth + 1) continue;
          if (!seenDirs.has(d)) {
            seenDirs.add(d);
            entries.push({ type: "directory", oid: "0".repeat(40), size: 0, path: d });
          }
        }
        if (recursive || f.path.split("/").length === depth + 1) entries.push(treeEntry(f, expand));
      }
      const cursor = Number(u.searchParams.get("cursor") ?? "0");
      const page = entries.slice(cursor, cursor + pageSize);
      const extra: Record<string, string> = {};
      if (cursor + pageSize < entries.length) {
        const next = new URL(u);
        next.searchParams.set("cursor", String(cursor + pageSize));
        extra["Link"] = `<${next.href}>; rel="next"`;
      }
      return sendJson(res, 200, page, extra);
    }

    if (pathname.startsWith(apiPrefix + "paths-info/") && req.method === "POST") {
      const r = splitRev(pathname.slice((apiPrefix + "paths-info/").length), res);
      if (!r) return;
      let body: { paths?: string[]; expand?: boolean };
      try {
        body = JSON.parse(await readBody(req));
      } catch {
        return sendJson(res, 400, { error: "bad JSON body" });
      }
      const out = (body.paths ?? []).flatMap((p) => {
        const f = files.get(p);
        return f ? [treeEntry(f, !!body.expand)] : [];
      });
      return sendJson(res, 200, out);
    }

    if (pathname.startsWith(resolvePrefix) && (req.method === "GET" || req.method === "HEAD")) {
      const r = splitRev(pathname.slice(resolvePrefix.length), res);
      if (!r) return;
      const f = files.get(r.rest);
      if (!f) return notFound(res, "EntryNotFound", `Entry not found: ${r.rest}`);
      const etag = `"${f.lfsOid ?? f.gitOid}"`;
      const common: Record<string, string> = {
        "Content-Type": "application/octet-stream",
        "Accept-Ranges": "bytes",
        ETag: etag,
        "X-Repo-Commit": opts.revision,
        ...(f.lfsOid ? { "X-Linked-Size": String(f.size), "X-Linked-ETag": etag } : {}),
      };
      const file = path.join(opts.root, f.path);
      const range = headers["range"];
      let start = 0;
      let end = f.size - 1;
      let status = 200;
      if (range) {
        const m = /^bytes=(\d*)-(\d*)$/.exec(range.trim());
        if (!m || (m[1] === "" && m[2] === "")) {
          res.writeHead(416, { "Content-Range": `bytes */${f.size}` });
          return res.end();
        }
        if (m[1] === "") {
          start = Math.max(0, f.size - Number(m[2]));
        } else {
          start = Number(m[1]);
          if (m[2] !== "") end = Math.min(end, Number(m[2]));
        }
        if (start >= f.size || start > end) {
          res.writeHead(416, { "Content-Range": `bytes */${f.size}` });
          return res.end();
        }
        status = 206;
        common["Content-Range"] = `bytes ${start}-${end}/${f.size}`;
      }
      res.writeHead(status, { ...common, "Content-Length": String(f.size === 0 ? 0 : end - start + 1) });
      if (req.method === "HEAD" || f.size === 0) return res.end();
      createReadStream(file, { start, end }).pipe(res);
      return;
    }

    sendJson(res, 404, { error: `no such endpoint: ${req.method} ${pathname}` });
  }

  const server = createServer((req, res) => {
    handle(req, res, url).catch((e) => {
      if (!res.headersSent) sendJson(res, 500, { error: String(e) });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    requests,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((e) => (e ? reject(e) : resolve()));
      }),
  };
}
