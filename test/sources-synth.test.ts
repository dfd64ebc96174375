// The synthetic Tulu generator used by benches: deterministic, same rows in JSONL and parquet,
// cached on disk, roughly the intended mix of Python tasks.
import { promises as fsp } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { syntheticRow, writeSyntheticTulu } from "../bench/synth-tulu.ts";
import { openSource, type SourceRow } from "../pipeline/sources/index.ts";

let dir: string;
beforeAll(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), "utgen-synth-"));
});
afterAll(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

async function read(file: string): Promise<SourceRow[]> {
  const out: SourceRow[] = [];
  for await (const r of (await openSource({ kind: "local", path: file })).rows) out.push(r);
  return out;
}
const plain = (r: SourceRow) => ({ id: r.id, source: r.source, messages: r.messages.map((m) => ({ role: m.role, content: m.content })) });

it("writes the same deterministic rows as JSONL and parquet, and reuses cached files", async () => {
  const n = 2500;
  const jsonl = await writeSyntheticTulu(dir, n, "jsonl");
  const parquet = await writeSyntheticTulu(dir, n, "parquet");
  const a = await read(jsonl);
  const b = await read(parquet);
  expect(a.length).toBe(n);
  expect(b.map(plain)).toEqual(a.map(plain));
  expect(a[1234]).toMatchObject(plain(syntheticRow(1234) as SourceRow));

  const mtime = (await fsp.stat(jsonl)).mtimeMs;
  expect(await writeSyntheticTulu(dir, n, "jsonl")).toBe(jsonl);
  expect((await fsp.stat(jsonl)).mtimeMs).toBe(mtime);

  const tasks = a.filter((r) => {
    const u = r.messages.find((m) => m.role === "user")!.content;
    return /python/i.test(u) && u.includes("def ");
  });
  expect(tasks.length / n).toBeGreaterThan(0.03);
  expect(tasks.length / n).toBeLessThan(0.08);
  const bytes = (await fsp.stat(jsonl)).size / n;
  expect(bytes).toBeGreaterThan(1500);
});
