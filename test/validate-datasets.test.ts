/** Validation sets: local UTGenDebug JSONL, the Hub (loopback Hub server), the emit-sft held-out split, bad rows. */
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { UserError } from "../pipeline/errors.ts";
import { loadSet } from "../stages/validation/datasets.ts";
import { startHubServer } from "./servers/hub.ts";
import { useTmpDir } from "./fixtures/validate/context.ts";

const MINI = path.resolve(__dirname, "fixtures/validate/mini.jsonl");
const tmpDir = useTmpDir("validate-sets-");

describe("validation sets", () => {
  it("reads a local UTGenDebug file, with set mode from the test text and a limit", async () => {
    const s = await loadSet({ name: "mini", path: MINI }, { runDir: tmpDir() });
    expect(s.problems.map((p) => p.entryPoint)).toEqual(["add_abs", "first_upper", "distinct", "countdown"]);
    expect(s.problems.map((p) => p.useSet)).toEqual([false, false, true, false]);
    expect(s.problems[0]).toMatchObject({ taskId: "v1", signature: "add_abs(a, b)", gold: expect.stringContaining("abs(a) + abs(b)"), buggy: expect.stringContaining("a + b") });
    const two = await loadSet({ name: "mini", path: MINI }, { runDir: tmpDir(), limit: 2 });
    expect(two.problems).toHaveLength(2);
    expect(two.hash).not.toBe(s.hash);
  });

  it("reads the held-out split emit-sft writes, and says to run emit-sft when it is missing", async () => {
    const run = path.join(tmpDir(), "run");
    await expect(loadSet({ name: "heldout" }, { runDir: run })).rejects.toThrow(/run emit-sft first/);
    const f = path.join(run, "emit-sft", "sft", "valid.problems.jsonl");
    await fsp.mkdir(path.dirname(f), { recursive: true });
    await fsp.copyFile(MINI, f);
    const s = await loadSet({ name: "heldout" }, { runDir: run });
    expect(s.problems).toHaveLength(4);
    expect(s.source).toBe(f);
  });

  it("rejects bad rows with file:line and what is needed", async () => {
    const bad = path.join(tmpDir(), "bad.jsonl");
    await fsp.writeFile(bad, JSON.stringify({ task_id: 1, prompt: "p", signature: "f()", entry_point: "f", canonical_solution: "def f(): pass" }) + "\n");
    const err = await loadSet({ name: "bad", path: bad }, { runDir: tmpDir() }).catch((e) => e);
    expect(err).toBeInstanceOf(UserError);
    expect(err.message).toMatch(/bad\.jsonl:1: field "code" is missing or empty/);
    const dup = path.join(tmpDir(), "dup.jsonl");
    const line = (await fsp.readFile(MINI, "utf8")).split("\n")[0];
    await fsp.writeFile(dup, `${line}\n${line}\n`);
    await expect(loadSet({ name: "dup", path: dup }, { runDir: tmpDir() })).rejects.toThrow(/dup\.jsonl:2: duplicate task_id v1/);
    await expect(loadSet({ name: "x", path: path.join(tmpDir(), "nope.jsonl") }, { runDir: tmpDir() })).rejects.toThrow(/not found/);
  });

  it("downloads a pinned file of a Hub dataset (loopback Hub server)", async () => {
    const repoDir = path.join(tmpDir(), "hubrepo");
    await fsp.mkdir(path.join(repoDir, "datasets"), { recursive: true });
    await fsp.copyFile(MINI, path.join(repoDir, "datasets", "HE+Fix_test.jsonl"));
    const revision = "0123456789abcdef0123456789abcdef01234567";
    const hub = await startHubServer({ root: repoDir, repo: "archiki/UTGenDebug", revision });
    const saved = { ep: process.env.HF_ENDPOINT, cache: process.env.HF_HUB_CACHE };
    process.env.HF_ENDPOINT = hub.url;
    process.env.HF_HUB_CACHE = path.join(tmpDir(), "hf-cache");
    try {
      const s = await loadSet({ name: "he_fix", hub: { repo: "archiki/UTGenDebug", file: "datasets/HE+Fix_test.jsonl", revision } }, { runDir: tmpDir() });
      expect(s.problems).toHaveLength(4);
      expect(s.source).toBe(`hub:archiki/UTGenDebug/datasets/HE+Fix_test.jsonl@${revision}`);
    } finally {
      if (saved.ep === undefined) delete process.env.HF_ENDPOINT;
      else process.env.HF_ENDPOINT = saved.ep;
      if (saved.cache === undefined) delete process.env.HF_HUB_CACHE;
      else process.env.HF_HUB_CACHE = saved.cache;
      await hub.close();
    }
  });
});
