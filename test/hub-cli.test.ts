/**
 * The Hub source through the runner: a loopback Hub-like server stands in for huggingface.co. The filter's
 * output equals the local-file run, the token and HF_ENDPOINT are used, files land in the HF cache layout and
 * are reused (no second download); an unreachable Hub is one line that shows --input.
 */
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { copyFileSync, mkdirSync } from "node:fs";
import * as path from "node:path";
import { main } from "../pipeline/cli.ts";
import { readStageRecords } from "../pipeline/store.ts";
import { startHubServer } from "./servers/hub.ts";
import { scratchDirs } from "../stages/heuristic/context.ts";

const ROOT = path.resolve(__dirname, "..");
const REV = "0123456789abcdef0123456789abcdef01234567";
const scratch = scratchDirs("utgen-hubcli-");
const tmp = () => scratch.make();
afterAll(() => scratch.removeAll());
async function run(args: string[]) {
  const err: string[] = [];
  const code = await main(["--config", path.join(ROOT, "configs/demo.yaml"), ...args], { stdout: () => {}, stderr: (l) => err.push(l) });
  return { code, err: err.join("\n") };
}
async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const a: T[] = [];
  for await (const x of it) a.push(x);
  return a;
}
const saved = { ...process.env };
afterEach(() => {
  for (const k of ["HF_ENDPOINT", "HF_HUB_CACHE", "HF_TOKEN"]) {
    if (saved[k] === undefined) delete process.env[k];
    else process.env[k] = saved[k];
  }
});

describe("hub source through the runner", () => {
  it("streams the repo's files from the (loopback) Hub with the token, caches and reuses them", async () => {
    const repoDir = tmp();
    mkdirSync(path.join(repoDir, "data"));
    copyFileSync(path.join(ROOT, "data/demo/tulu-demo.jsonl"), path.join(repoDir, "data/train-00000-of-00001.jsonl"));
    const hub = await startHubServer({ root: repoDir, repo: "allenai/tulu-3-sft-mixture", revision: REV, requireToken: "hf_testtoken" });
    try {
      process.env.HF_ENDPOINT = hub.url;
      process.env.HF_HUB_CACHE = tmp();
      process.env.HF_TOKEN = "hf_testtoken";
      const sets = ["--set", "source.kind=hub", "--set", `source.revision=${REV}`, "--set", "source.files=data/*.jsonl"];
      const hubRun = tmp();
      const r = await run(["--stage", "filter", "--run-dir", hubRun, ...sets]);
      expect(r.err).not.toMatch(/^error/m);
      expect(r.code).toBe(0);
      const local = tmp();
      await run(["--stage", "filter", "--run-dir", local]);
      expect(await collect(readStageRecords(hubRun, "filter"))).toEqual(await collect(readStageRecords(local, "filter")));
      const downloads = () => hub.requests.filter((q) => q.method === "GET" && q.path.includes("/resolve/")).length;
      expect(downloads()).toBeGreaterThan(0);
      expect(hub.requests.every((q) => q.headers.authorization === "Bearer hf_testtoken")).toBe(true);
      const before = downloads();
      const again = await run(["--stage", "filter", "--run-dir", tmp(), ...sets]);
      expect(again.code).toBe(0);
      expect(downloads()).toBe(before);
    } finally {
      await hub.close();
    }
  });

  it("an unreachable Hub is a one-line error that shows --input", async () => {
    process.env.HF_ENDPOINT = "http://127.0.0.1:9";
    process.env.HF_HUB_CACHE = tmp();
    const r = await run(["--stage", "filter", "--run-dir", tmp(), "--set", "source.kind=hub"]);
    expect(r.code).toBe(2);
    expect(r.err.split("\n")).toHaveLength(1);
    expect(r.err).toMatch(/^error: cannot reach the Hugging Face Hub at http:\/\/127\.0\.0\.1:9.*--input/);
  });
});
