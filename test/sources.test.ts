// Local sources: JSONL / JSON / parquet files and folders, bad rows, nested snappy + zstd parquet,
// row-group-at-a-time parquet reading, fingerprints, the demo fixture.
import { promises as fsp } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { asyncBufferFromFile, parquetMetadataAsync, type AsyncBuffer } from "hyparquet";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UserError } from "../pipeline/errors.ts";
import { openSource, sourceConfigSchema, type SourceRow } from "../pipeline/sources/index.ts";
import { readParquetRows } from "../pipeline/sources/local.ts";
import { hashValue, readJsonlAll } from "../pipeline/util.ts";
import { fixtureRows, FIXTURE_DIR, FIXTURE_ROW_GROUP_SIZE } from "./fixtures/tulu/make-fixtures.ts";
import { writeTuluParquet } from "./fixtures/tulu/parquet.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
const DEMO = path.resolve(here, "../data/demo/tulu-demo.jsonl");

let tmp: string;
beforeAll(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), "utgen-sources-"));
});
afterAll(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

async function collect(rows: AsyncIterable<SourceRow>): Promise<SourceRow[]> {
  const out: SourceRow[] = [];
  for await (const r of rows) out.push(r);
  return out;
}
const local = (p: string, extra: Record<string, unknown> = {}) => openSource({ kind: "local", path: p, ...extra });
const plain = (r: { id: string; source: string; messages: { role: string; content: string }[] }) => ({
  id: r.id,
  source: r.source,
  messages: r.messages.map((m) => ({ role: m.role, content: m.content })),
});

describe("config", () => {
  it("fills Hub defaults and rejects unknown keys", () => {
    const c = sourceConfigSchema.parse({ kind: "hub" });
    expect(c.repo).toBe("allenai/tulu-3-sft-mixture");
    expect(c.revision).toMatch(/^[0-9a-f]{40}$/);
    expect(c.files).toBe("data/*.parquet");
    expect(() => sourceConfigSchema.parse({ kind: "hub", typo: 1 })).toThrow();
  });
  it("reports a bad config as a one-line UserError", async () => {
    await expect(openSource({ kind: "local" })).rejects.toThrow(/source\.path is required/);
    await expect(openSource({ kind: "ftp" } as never)).rejects.toBeInstanceOf(UserError);
  });
});

describe("JSONL", () => {
  it("reads the demo fixture in file order with ids and sources", async () => {
    const src = await local(DEMO);
    const rows = await collect(src.rows);
    const raw = await readJsonlAll(DEMO);
    expect(rows.map(plain)).toEqual(raw.map(plain));
    expect(rows.every((r) => r._bad === undefined)).toBe(true);
    expect(new Set(rows.map((r) => r.source))).toEqual(new Set(["demo/personahub_code", "demo/evol_codealpaca", "demo/wildchat"]));
    // The lone surrogate survives reading (the filter must see it to reject it).
    const surrogate = rows.filter((r) => r.messages.some((m) => !m.content.isWellFormed()));
    expect(surrogate).toHaveLength(1);
    expect(src.describe).toContain("tulu-demo.jsonl");
  });

  it("turns unreadable lines into _bad rows instead of dropping them", async () => {
    const f = path.join(tmp, "bad.jsonl");
    const good = { id: "g1", source: "s", messages: [{ role: "user", content: "hi" }] };
    const lines = [
      Buffer.from(JSON.stringify(good)),
      Buffer.from("{not json"),
      Buffer.concat([Buffer.from('{"messages":[{"role":"user","content":"caf'), Buffer.from([0xc3, 0x28]), Buffer.from('"}]}')]),
      Buffer.from(JSON.stringify({ id: "nomsg", text: "x" })),
      Buffer.from("[1,2]"),
      Buffer.from(JSON.stringify({ id: "nullc", messages: [{ role: "user", content: null }] })),
      Buffer.from("   "),
      Buffer.from(JSON.stringify({ messages: [{ role: "user", content: "no id" }] }) + "\r"),
    ];
    await fsp.writeFile(f, Buffer.concat(lines.flatMap((l) => [l, Buffer.from("\n")])));
    const rows = await collect((await local(f)).rows);
    expect(rows.map((r) => [r.id, r._bad ?? null])).toEqual([
      ["g1", null],
      ["bad.jsonl:2", "bad.jsonl:2: not valid JSON"],
      ["bad.jsonl:3", "bad.jsonl:3: invalid UTF-8"],
      ["nomsg", "missing messages"],
      ["bad.jsonl:5", "bad.jsonl:5: row is not a JSON object"],
      ["nullc", "messages[0].content is not a string"],
      [hashValue({ messages: [{ role: "user", content: "no id" }] }), null],
    ]);
    // No `source` column: the file name stands in.
    expect(rows[6].source).toBe("bad.jsonl");
  });

  it("reads gzip-compressed JSONL", async () => {
    const { gzipSync } = await import("node:zlib");
    const f = path.join(tmp, "z.jsonl.gz");
    await fsp.writeFile(f, gzipSync(await fsp.readFile(DEMO)));
    expect((await collect((await local(f)).rows)).length).toBe((await readJsonlAll(DEMO)).length);
    const corrupt = path.join(tmp, "corrupt.jsonl.gz");
    await fsp.writeFile(corrupt, Buffer.from("this is not gzip data"));
    const err = await collect((await local(corrupt)).rows).catch((e) => e);
    expect(err).toBeInstanceOf(UserError);
    expect(err.message).toMatch(/corrupt\.jsonl\.gz: cannot be read \(incorrect header check\); check the file/);
  });
});

describe("JSON", () => {
  it("streams a top-level array and accepts JSON Lines under a .json name", async () => {
    const raw = (await readJsonlAll(DEMO)).slice(0, 5);
    const arr = path.join(tmp, "rows.json");
    await fsp.writeFile(arr, JSON.stringify(raw, null, 2));
    expect((await collect((await local(arr)).rows)).map(plain)).toEqual(raw.map(plain));
    const lines = path.join(tmp, "lines.json");
    await fsp.writeFile(lines, raw.map((r) => JSON.stringify(r)).join("\n"));
    expect((await collect((await local(lines)).rows)).map(plain)).toEqual(raw.map(plain));
  });

  it("names the file when a JSON document is unreadable", async () => {
    const broken = path.join(tmp, "broken.json");
    await fsp.writeFile(broken, '[{"id":"a","messages":[{"role":"user","content":"x"}]}, {"id": ');
    const err = await collect((await local(broken)).rows).catch((e) => e);
    expect(err).toBeInstanceOf(UserError);
    expect(err.message).toMatch(/broken\.json: not a valid JSON array after row 1/);
    expect(err.message).not.toContain("\n");
    const single = path.join(tmp, "single.json");
    await fsp.writeFile(single, JSON.stringify({ data: [1] }, null, 2));
    await expect(collect((await local(single)).rows)).rejects.toThrow(/single\.json:1: not JSON Lines and not a JSON array/);
  });
});

describe("parquet", () => {
  it.each(["snappy", "zstd"])("reads the nested messages column (%s, committed fixture)", async (codec) => {
    const file = path.join(FIXTURE_DIR, `tulu-nested.${codec}.parquet`);
    const md = await parquetMetadataAsync(await asyncBufferFromFile(file));
    const codecs = new Set(md.row_groups.flatMap((g) => g.columns.map((c) => c.meta_data?.codec)));
    expect(codecs).toEqual(new Set([codec.toUpperCase()]));
    expect(md.row_groups.length).toBeGreaterThan(1);
    const rows = await collect((await local(file)).rows);
    expect(rows.map(plain)).toEqual(fixtureRows().map(plain));
  });

  it("round-trips rows written now (snappy) and reads a folder of mixed formats in sorted order", async () => {
    const dir = path.join(tmp, "folder");
    await fsp.mkdir(path.join(dir, "b"), { recursive: true });
    await fsp.mkdir(path.join(dir, ".hidden"), { recursive: true });
    const demo = await readJsonlAll(DEMO);
    const a = demo.slice(0, 10).map((r) => ({ ...r, messages: r.messages.map((m: { role: string; content: string }) => ({ ...m, content: m.content.toWellFormed() })) }));
    await writeTuluParquet(path.join(dir, "b", "part-1.parquet"), a, { rowGroupSize: 3 });
    await fsp.writeFile(path.join(dir, "a.jsonl"), demo.slice(10, 12).map((r) => JSON.stringify(r)).join("\n") + "\n");
    await fsp.writeFile(path.join(dir, "c.json"), JSON.stringify(demo.slice(12, 13)));
    await fsp.writeFile(path.join(dir, "notes.txt"), "ignored");
    await fsp.writeFile(path.join(dir, ".hidden", "x.jsonl"), "garbage");
    const src = await local(dir);
    const rows = await collect(src.rows);
    expect(rows.map((r) => r.id)).toEqual([...demo.slice(10, 12), ...a, ...demo.slice(12, 13)].map((r) => r.id));
    expect(rows.map(plain).slice(2, 12)).toEqual(a.map(plain));
    expect((src.fingerprint.files as { name: string }[]).map((f) => f.name)).toEqual(["a.jsonl", "b/part-1.parquet", "c.json"]);

    // limit stops early, across files
    expect((await collect((await openSource({ kind: "local", path: dir }, { limit: 4 })).rows)).length).toBe(4);
    // --input overrides the configured source
    const over = await openSource({ kind: "hub" }, { input: path.join(dir, "a.jsonl") });
    expect((await collect(over.rows)).length).toBe(2);
    // the fingerprint follows the content
    await fsp.appendFile(path.join(dir, "a.jsonl"), JSON.stringify(demo[20]) + "\n");
    expect((await local(dir)).fingerprint).not.toEqual(src.fingerprint);
  });

  it("asks for one row group at a time (bounded memory)", async () => {
    const file = path.join(FIXTURE_DIR, "tulu-nested.snappy.parquet");
    const inner = await asyncBufferFromFile(file);
    const md = await parquetMetadataAsync(inner);
    const spans = md.row_groups.map((g) => {
      const starts = g.columns.map((c) => Number(c.meta_data!.dictionary_page_offset ?? c.meta_data!.data_page_offset));
      const ends = g.columns.map((c) => Number(c.meta_data!.data_page_offset) + Number(c.meta_data!.total_compressed_size));
      return [Math.min(...starts), Math.max(...ends)];
    });
    const slices: [number, number][] = [];
    const counting: AsyncBuffer = {
      byteLength: inner.byteLength,
      slice(start: number, end?: number) {
        // Footer reads (metadata) end at the end of the file; every other read is data.
        if ((end ?? inner.byteLength) < inner.byteLength) slices.push([start, end!]);
        return inner.slice(start, end);
      },
    };
    const groupsTouched = () =>
      new Set(spans.flatMap(([s, e], g) => (slices.some(([a, b]) => a < e && b > s) ? [g] : [])));
    const it = readParquetRows(counting, file)[Symbol.asyncIterator]();
    let n = 0;
    for (let g = 0; g < spans.length; g++) {
      const first = await it.next();
      expect(first.done).toBe(false);
      n++;
      // While the rows of group g are being yielded, no later group has been fetched.
      expect([...groupsTouched()].every((x) => x <= g)).toBe(true);
      expect(groupsTouched().has(g)).toBe(true);
      for (let i = 1; i < FIXTURE_ROW_GROUP_SIZE && n < fixtureRows().length; i++, n++) await it.next();
    }
    expect((await it.next()).done).toBe(true);
    expect(n).toBe(fixtureRows().length);
  });

  it("reports a file that is not parquet as a one-line UserError", async () => {
    const f = path.join(tmp, "fake.parquet");
    await fsp.writeFile(f, "this is not parquet at all, just text long enough");
    const err = await collect((await local(f)).rows).catch((e) => e);
    expect(err).toBeInstanceOf(UserError);
    expect(err.message).toMatch(/fake\.parquet: not a readable parquet file/);
  });
});

describe("input errors", () => {
  it("names a missing input, an empty folder and an unknown extension", async () => {
    await expect(local(path.join(tmp, "nope"))).rejects.toThrow(/input not found: .*nope/);
    const empty = path.join(tmp, "empty");
    await fsp.mkdir(empty, { recursive: true });
    await expect(local(empty)).rejects.toThrow(/no \.jsonl, \.json or \.parquet files under/);
    const odd = path.join(tmp, "rows.csv");
    await fsp.writeFile(odd, "a,b");
    await expect(local(odd)).rejects.toThrow(/cannot tell the format/);
    // a forced format reads any name
    const forced = path.join(tmp, "rows.data");
    await fsp.writeFile(forced, JSON.stringify({ id: "x", messages: [{ role: "user", content: "q" }] }) + "\n");
    const rows = await collect((await local(forced, { format: "jsonl" })).rows);
    expect(rows.map((r) => r.id)).toEqual(["x"]);
  });
});
