/**
 * Engine: incremental rebuilds, record-level salvage, ordered de-duplication and kill -9 resume, on a toy
 * stage run through the real engine and run store.
 */
import { afterAll, describe, expect, it } from "vitest";
import { existsSync, readdirSync } from "node:fs";
import * as path from "node:path";
import { spawn } from "node:child_process";
import { runToy } from "./helpers/toy-run.ts";
import { toyRows } from "./helpers/toy-stage.ts";
import { readStageDrops, readStageRecords } from "../pipeline/store.ts";
import { explainChange } from "../pipeline/engine.ts";
import { scratchDirs } from "../stages/heuristic/context.ts";
import { exited, untilHold } from "./helpers/hold.ts";

const scratch = scratchDirs("utgen-engine-");
const tmp = () => scratch.make();
afterAll(() => scratch.removeAll());
async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}
const outputs = (dir: string) => collect(readStageRecords(dir, "toy"));
const drops = (dir: string) => collect(readStageDrops(dir, "toy"));

describe("engine", () => {
  it("writes records in input order with drops counted per reason and per source", async () => {
    const dir = tmp();
    const r = await runToy(dir, toyRows(0, 25));
    const out = await outputs(dir);
    expect(out.map((o) => o.id).slice(0, 4)).toEqual(["row1/a", "row2/a", "row3/a", "row3/b"]);
    const sevens = [0, 7, 14, 21];
    expect(r.manifest.counts.reasons).toEqual({ multiple_of_seven: sevens.length });
    expect(r.manifest.counts.in).toBe(25);
    expect(r.manifest.counts.out).toBe(out.length);
    expect(r.manifest.counts.bySource.even.reasons.multiple_of_seven).toBe(2); // 0, 14
    expect((await drops(dir)).map((d) => d.id)).toEqual(sevens.map((n) => `row${n}`));
  });

  it("re-running with nothing changed does no work; a perf knob does not change the fingerprint", async () => {
    const dir = tmp();
    const calls = { n: 0 };
    await runToy(dir, toyRows(0, 30), {}, { calls });
    expect(calls.n).toBe(30);
    const again = await runToy(dir, toyRows(0, 30), { concurrency: 16 }, { calls });
    expect(again.skipped).toBe(true);
    expect(calls.n).toBe(30);
  });

  it("a semantic config change recomputes and says why", async () => {
    const dir = tmp();
    const first = await runToy(dir, toyRows(0, 20));
    const calls = { n: 0 };
    const r = await runToy(dir, toyRows(0, 20), { factor: 5 }, { calls });
    expect(calls.n).toBe(20);
    expect(r.reason).toContain("config toy.factor: 3 → 5");
    expect(explainChange(first.manifest.material, r.manifest.material, "toy")).toEqual(["config toy.factor: 3 → 5"]);
    expect((await outputs(dir)).find((o) => o.id === "row1/a")?.v).toBe(5);
  });

  it("appending rows processes only the new rows; inserting rows recomputes only them (salvage)", async () => {
    const dir = tmp();
    await runToy(dir, toyRows(0, 40));
    const calls = { n: 0 };
    await runToy(dir, toyRows(0, 45), {}, { calls });
    expect(calls.n).toBe(5);
    const inserted = [...toyRows(0, 13), ...toyRows(100, 103), ...toyRows(13, 45)];
    calls.n = 0;
    const r = await runToy(dir, inserted, {}, { calls });
    expect(calls.n).toBe(3);
    expect(r.recordsSalvaged).toBeGreaterThan(0);
    // Same result as a fresh build of the same input.
    const fresh = tmp();
    await runToy(fresh, inserted);
    expect(await outputs(dir)).toEqual(await outputs(fresh));
    expect(await drops(dir)).toEqual(await drops(fresh));
  });

  it("--shard slices: source records by the stage's shardKey, so equal keys meet in one slice; a sliced input is taken whole", async () => {
    const rows = toyRows(0, 60);
    const key = (r: Record<string, unknown>) => `k${Number(r.n) % 5}`;
    const whole = tmp();
    await runToy(whole, rows);
    const slices = await Promise.all(
      [0, 1, 2].map(async (index) => {
        const dir = tmp();
        const calls = { n: 0 };
        await runToy(dir, rows, {}, { shardKey: key, shard: { index, count: 3 }, calls });
        const shard = { index, count: 3 };
        return { dir, calls: calls.n, out: await collect(readStageRecords(dir, "toy", { shard })), drops: await collect(readStageDrops(dir, "toy", shard)) };
      }),
    );
    expect(slices.reduce((a, s) => a + s.calls, 0)).toBe(rows.length); // every row in exactly one slice
    const rowOf = (id: unknown) => Number(String(id).replace(/^row(\d+).*$/, "$1"));
    const slicesOfKey = new Map<string, Set<number>>();
    slices.forEach((s, i) => {
      for (const r of [...s.out, ...s.drops]) {
        const k = key({ id: "", n: rowOf(r.id) });
        slicesOfKey.set(k, (slicesOfKey.get(k) ?? new Set<number>()).add(i));
      }
    });
    expect(slicesOfKey.size).toBe(5);
    expect([...slicesOfKey.values()].every((v) => v.size === 1)).toBe(true);
    const union = slices.flatMap((s) => s.out.map((o) => o.id)).sort();
    expect(union).toEqual((await outputs(whole)).map((o) => o.id).sort());
    // an input that is already this slice's records (the upstream slice) is not partitioned again
    const calls = { n: 0 };
    await runToy(tmp(), rows.slice(0, 20), {}, { shardKey: key, shard: { index: 1, count: 3 }, inputSliced: true, calls });
    expect(calls.n).toBe(20);
  });

  it("ordered de-duplication stays right when an earlier chunk changes", async () => {
    const dir = tmp();
    const base = toyRows(10, 40);
    await runToy(dir, base, {}, { dedupe: true });
    const withEarlier = [...toyRows(0, 10), ...base];
    await runToy(dir, withEarlier, {}, { dedupe: true });
    const fresh = tmp();
    await runToy(fresh, withEarlier, {}, { dedupe: true });
    expect(await outputs(dir)).toEqual(await outputs(fresh));
    expect(await drops(dir)).toEqual(await drops(fresh));
    expect((await drops(fresh)).some((d) => d.reason === "duplicate")).toBe(true);
  });

  it("gzip shards read back identically", async () => {
    const a = tmp();
    const b = tmp();
    await runToy(a, toyRows(0, 30), {}, { compress: true });
    await runToy(b, toyRows(0, 30));
    expect(readdirSync(path.join(a, "toy", "shards")).some((f) => f.endsWith(".gz"))).toBe(true);
    expect(await outputs(a)).toEqual(await outputs(b));
  });

  it("after kill -9 at several moments, a re-run produces exactly the uninterrupted result and redoes only the unwritten shards", async () => {
    const reference = tmp();
    await runToy(reference, toyRows(0, 120), {}, { dedupe: true, shardSize: 7 });
    const want = { out: await outputs(reference), drop: await drops(reference) };
    // 120 rows in shards of 7: 18 shards. The child holds after writing its k-th shard (UTGEN_TEST_HOLD, a
    // point the test controls) and is killed there, with records of later shards in flight.
    for (const k of [1, 4, 9, 17]) {
      const dir = tmp();
      // node --import tsx: the script runs in this very process (the tsx CLI would run it in a grandchild
      // that a SIGKILL of the CLI leaves running, writing beside the re-run).
      const child = spawn(process.execPath, ["--import", "tsx", "test/helpers/toy-run.ts", dir, "120", "5"], {
        stdio: ["ignore", "ignore", "pipe"],
        env: { ...process.env, UTGEN_TEST_HOLD: `toy:${k}` },
      });
      await untilHold(child, `toy ${k}`);
      child.kill("SIGKILL");
      await exited(child);
      const shards = path.join(dir, "toy", "shards");
      const markers = readdirSync(shards).filter((f) => f.endsWith(".done.json"));
      expect(markers).toHaveLength(k);
      expect(existsSync(path.join(dir, "toy", "manifest.json"))).toBe(false);
      const calls = { n: 0 };
      const r = await runToy(dir, toyRows(0, 120), {}, { dedupe: true, shardSize: 7, calls });
      // exactly the records of the k written shards are not processed again
      expect(calls.n).toBe(120 - 7 * k);
      expect(r.chunksReused).toBe(k);
      expect(await outputs(dir)).toEqual(want.out);
      expect(await drops(dir)).toEqual(want.drop);
      const leftovers = readdirSync(shards).filter((f) => f.includes(".tmp-"));
      expect(leftovers).toEqual([]);
    }
  });
});

describe("record keys", () => {
  it("sha256 gives the digest of node:crypto's Hash for text of every kind (cache keys must not move)", async () => {
    const { createHash } = await import("node:crypto");
    const { sha256 } = await import("../pipeline/util.ts");
    // published digests first: a wrong algorithm or encoding cannot pass
    expect(sha256("")).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    expect(sha256("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    for (const text of ["naïve café 🚀", "lone \ud83d surrogate", "\udc00", "x".repeat(100_000), Buffer.from([0, 1, 2, 255])]) {
      expect(sha256(text)).toBe(createHash("sha256").update(text).digest("hex"));
    }
  });
});

describe("atomic writes", () => {
  it("a write that fails leaves neither the file nor its temporary copy", async () => {
    const { atomicWrite } = await import("../pipeline/util.ts");
    const { mkdirSync, readdirSync: ls } = await import("node:fs");
    const dir = tmp();
    const target = path.join(dir, "taken");
    mkdirSync(target); // a folder where the file should go: the rename fails
    await expect(atomicWrite(target, "data")).rejects.toThrow();
    expect(ls(dir)).toEqual(["taken"]);
    await atomicWrite(path.join(dir, "ok.json"), "{}");
    expect(ls(dir).sort()).toEqual(["ok.json", "taken"]);
  });
});
