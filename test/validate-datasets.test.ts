/**
 * Validation sets: local UTGenDebug JSONL, the Hub (loopback Hub server), GitHub at a pinned commit with its git
 * blob id (loopback raw server), bigcode/humanevalpack rows converted as the reference does, `exclude`, the
 * emit-sft held-out split, bad rows.
 */
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { UserError } from "../pipeline/errors.ts";
import { gitBlobId, loadSet, loadSets } from "../stages/validation/datasets.ts";
import { startGithubRawServer } from "./servers/github-raw.ts";
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

  it("downloads a file of a GitHub repository at a pinned commit, checks its git blob id, and caches it", async () => {
    const repoDir = path.join(tmpDir(), "ghrepo");
    await fsp.mkdir(path.join(repoDir, "datasets"), { recursive: true });
    await fsp.copyFile(MINI, path.join(repoDir, "datasets", "MBPP+Fix_hard_test.jsonl"));
    const revision = "93ad91f27ff09e2b006612db82e32c91be3a5192";
    const blob = gitBlobId(await fsp.readFile(MINI));
    const gh = await startGithubRawServer({ root: repoDir, repo: "archiki/UTGenDebug", revision });
    const saved = process.env.UTGEN_GITHUB_RAW_URL;
    process.env.UTGEN_GITHUB_RAW_URL = gh.url;
    const cacheDir = path.join(tmpDir(), "gh-cache");
    const spec = (b: string) => ({ name: "hard", github: { repo: "archiki/UTGenDebug", file: "datasets/MBPP+Fix_hard_test.jsonl", revision, blob: b } });
    try {
      const s = await loadSet(spec(blob), { runDir: tmpDir(), cacheDir });
      expect(s.problems).toHaveLength(4);
      expect(s.source).toBe(`github:archiki/UTGenDebug/datasets/MBPP+Fix_hard_test.jsonl@${revision}`);
      expect(gh.requests).toEqual([`/archiki/UTGenDebug/${revision}/datasets/MBPP+Fix_hard_test.jsonl`]);
      // cached: no second request
      await loadSet(spec(blob), { runDir: tmpDir(), cacheDir });
      expect(gh.requests).toHaveLength(1);
      // a different pinned blob id: the cached file is not it, the download is not it either → one-line error
      const wrong = "0".repeat(40);
      const err = await loadSet(spec(wrong), { runDir: tmpDir(), cacheDir: path.join(tmpDir(), "gh-cache2") }).catch((e) => e);
      expect(err).toBeInstanceOf(UserError);
      expect(err.message).toMatch(new RegExp(`git blob id ${blob} is not the pinned ${wrong}`));
      const missing = await loadSet({ name: "x", github: { repo: "archiki/UTGenDebug", file: "datasets/none.jsonl", revision } }, { runDir: tmpDir(), cacheDir }).catch((e) => e);
      expect(missing.message).toMatch(/HTTP 404/);
    } finally {
      if (saved === undefined) delete process.env.UTGEN_GITHUB_RAW_URL;
      else process.env.UTGEN_GITHUB_RAW_URL = saved;
      await gh.close();
    }
  });

  it("converts bigcode/humanevalpack rows as he_intrinsic_eval.py does (gold = prompt + canonical_solution)", async () => {
    const f = path.join(tmpDir(), "hep.jsonl");
    const row = {
      task_id: "Python/0",
      prompt: 'from typing import List\n\n\ndef close(xs: List[float], t: float) -> bool:\n    """ Any two numbers closer than t? """\n',
      declaration: "from typing import List\n\n\ndef close(xs: List[float], t: float) -> bool:\n",
      canonical_solution: "    return any(abs(a - b) < t for i, a in enumerate(xs) for j, b in enumerate(xs) if i != j)\n",
      buggy_solution: "    return any(a - b < t for i, a in enumerate(xs) for j, b in enumerate(xs) if i != j)\n",
      entry_point: "close",
      signature: "close(xs: List[float], t: float) -> bool",
      test: "def check(close):\n    assert close([1.0, 2.0], 0.5) == False\n",
    };
    await fsp.writeFile(f, JSON.stringify(row) + "\n");
    const s = await loadSet({ name: "he", path: f, format: "humanevalpack", scoring: "he" }, { runDir: tmpDir() });
    expect(s.scoring).toBe("he");
    expect(s.problems).toEqual([
      {
        taskId: "Python/0",
        prompt: row.prompt,
        description: row.prompt,
        signature: row.signature,
        entryPoint: "close",
        gold: row.prompt + row.canonical_solution,
        buggy: row.buggy_solution,
        useSet: false,
      },
    ]);
    const fn = await loadSet({ name: "he", path: f, format: "humanevalpack", buggy_code: "function" }, { runDir: tmpDir() });
    expect(fn.problems[0].buggy).toBe(row.declaration + row.buggy_solution);
    expect(fn.scoring).toBe("mbpp");
    await expect(loadSet({ name: "x", path: MINI, buggy_code: "function" }, { runDir: tmpDir() })).rejects.toThrow(/format: humanevalpack only/);
    await expect(loadSet({ name: "x", path: MINI, format: "humanevalpack" }, { runDir: tmpDir() })).rejects.toThrow(/mini\.jsonl:1: field "declaration" is missing/);
  });

  it("exclude drops the task ids of other sets (a split disjoint from the test sets)", async () => {
    const sub = path.join(tmpDir(), "sub.jsonl");
    const lines = (await fsp.readFile(MINI, "utf8")).split("\n").filter(Boolean);
    await fsp.writeFile(sub, `${lines[1]}\n${lines[3]}\n`);
    const sets = await loadSets(
      [
        { name: "select", path: MINI, exclude: ["test"] },
        { name: "test", path: sub },
      ],
      { runDir: tmpDir(), limit: 1 },
    );
    // the excluded set is read whole (before limit); the limit applies to what is left
    expect(sets[0].problems.map((p) => p.taskId)).toEqual(["v1"]);
    expect(sets[1].problems.map((p) => p.taskId)).toEqual(["v2"]);
    const all = await loadSets([{ name: "select", path: MINI, exclude: ["test"] }, { name: "test", path: sub }], { runDir: tmpDir() });
    expect(all[0].problems.map((p) => p.taskId)).toEqual(["v1", "v3"]);
    await expect(loadSets([{ name: "a", path: MINI, exclude: ["b"] }], { runDir: tmpDir() })).rejects.toThrow(/exclude names "b", which is not a set/);
    await expect(loadSets([{ name: "a", path: MINI }, { name: "a", path: sub }], { runDir: tmpDir() })).rejects.toThrow(/same name/);
  });
});
