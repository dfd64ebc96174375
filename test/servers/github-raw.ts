/**
 * Loopback stand-in for raw.githubusercontent.com: serves `GET /<owner>/<name>/<commit>/<path>` from a local
 * folder laid out as the repository's files at that one commit (anything else: 404). Requests are recorded.
 */
import { promises as fsp } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import * as path from "node:path";

export async function startGithubRawServer(o: { root: string; repo: string; revision: string }) {
  const requests: string[] = [];
  const server = createServer(async (req, res) => {
    const url = decodeURIComponent((req.url ?? "/").split("?")[0]);
    requests.push(url);
    const prefix = `/${o.repo}/${o.revision}/`;
    if (req.method !== "GET" || !url.startsWith(prefix) || url.includes("..")) {
      res.writeHead(404).end("404: Not Found");
      return;
    }
    try {
      const data = await fsp.readFile(path.join(o.root, url.slice(prefix.length)));
      res.writeHead(200, { "content-type": "text/plain; charset=utf-8", "content-length": data.length }).end(data);
    } catch {
      res.writeHead(404).end("404: Not Found");
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
