/**
 * Synthetic Tulu-3-format data for benches: deterministic rows ({id, messages, source}) with a mix
 * close to the real mixture — ~5% Python function tasks (prompt says "python" and "def ", answer
 * holds a ```python block), ~10% other code (JavaScript, SQL, C++, Python without `def ` in the
 * prompt), ~85% prose; ~10% multi-turn, ~2% with a system turn, ~0.3% empty answers, ~0.2% very
 * long rows (~60 KB). Average ~2.5 KB of JSON per row. Written streaming (bounded memory) and
 * cached: `<dir>/synth-tulu-<rows>.<jsonl|parquet>` is reused when its `.done` marker matches.
 *
 *   npx tsx bench/synth-tulu.ts [--quick]     # source read throughput vs a Python json pass
 */
import { spawnSync } from "node:child_process";
import { createWriteStream, promises as fsp } from "node:fs";
import { once } from "node:events";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { writeTuluParquet, type TuluRow } from "../test/fixtures/tulu/parquet.ts";

/** Bump when the generated content changes, so cached files are rebuilt. */
const GENERATOR_VERSION = 1;

/** Deterministic 32-bit PRNG (mulberry32). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = (
  "the of and to in is that for it as with was on be by this are or from at an which have not they but " +
  "data model system people time water energy city history music light market policy research design " +
  "students network language health process value theory planet garden coffee travel winter morning " +
  "explain describe compare summarize analyze important different because however therefore although " +
  "quickly carefully often usually several many between during through without against around"
).split(" ");

const SOURCES_PROSE = [
  "ai2-adapt-dev/oasst1_converted", "ai2-adapt-dev/flan_v2_converted", "ai2-adapt-dev/tulu_hard_coded_repeated_10",
  "ai2-adapt-dev/no_robots_converted", "ai2-adapt-dev/tulu_v3.9_wildchat_100k", "ai2-adapt-dev/numinamath_tir_math_decontaminated",
  "ai2-adapt-dev/tulu_v3.9_open_math_2_gsm8k_50k", "ai2-adapt-dev/personahub_math_v5_regen_149960", "ai2-adapt-dev/tulu_v3.9_sciriff_10k",
  "ai2-adapt-dev/tulu_v3.9_table_gpt_5k", "ai2-adapt-dev/coconot_converted", "ai2-adapt-dev/tulu_v3.9_aya_100k",
  "ai2-adapt-dev/tulu_v3.9_synthetic_finalresp_wildguardmixtrain_decontaminated_50k",
  "ai2-adapt-dev/tulu_v3.9_wildjailbreak_decontaminated_50k", "ai2-adapt-dev/personahub_ifdata_manual_seed_v3_29980",
  "ai2-adapt-dev/tulu_v3.9_personahub_math_interm_algebra_20k", "ai2-adapt-dev/evol_codealpaca_heval_decontaminated",
];
const SOURCE_PERSONA_CODE = "ai2-adapt-dev/personahub_code_v2_34999";
const SOURCE_EVOL = "ai2-adapt-dev/evol_codealpaca_heval_decontaminated";

function sentence(r: () => number): string {
  const n = 8 + Math.floor(r() * 14);
  const w: string[] = [];
  for (let i = 0; i < n; i++) w.push(WORDS[Math.floor(r() * WORDS.length)]);
  const s = w.join(" ");
  return s[0].toUpperCase() + s.slice(1) + ".";
}
function paragraph(r: () => number, sentences: number): string {
  const out: string[] = [];
  for (let i = 0; i < sentences; i++) out.push(sentence(r));
  return out.join(" ");
}
function prose(r: () => number, paragraphs: number): string {
  const out: string[] = [];
  for (let i = 0; i < paragraphs; i++) out.push(paragraph(r, 3 + Math.floor(r() * 4)));
  return out.join("\n\n");
}

const OPS = ["+", "-", "*", "//", "%"];
function pythonTask(r: () => number, i: number): TuluRow["messages"] {
  const name = `f_${i.toString(36)}`;
  const k = 1 + Math.floor(r() * 9);
  const op = OPS[Math.floor(r() * OPS.length)];
  const kind = Math.floor(r() * 3);
  const code =
    kind === 0
      ? `def ${name}(n: int) -> int:\n    total = 0\n    for i in range(1, n + 1):\n        total += i ${op} ${k}\n    return total`
      : kind === 1
        ? `def ${name}(nums: list[int]) -> list[int]:\n    return [x ${op} ${k} for x in nums if x > ${k}]`
        : `def ${name}(s: str) -> int:\n    return sum(1 for ch in s if ch in "aeiou") ${op} ${k}`;
  const example = kind === 0 ? `${name}(5)` : kind === 1 ? `${name}([1, 5, 9])` : `${name}("banana")`;
  const long = r() < 0.01 ? "\n\nContext:\n" + prose(r, 60) : "";
  return [
    {
      role: "user",
      content: `${paragraph(r, 2)} Write a Python function \`def ${name}(...)\` for this.${long}\n\nFor example:\n\`\`\`python\nprint(${example})\n\`\`\``,
    },
    { role: "assistant", content: `${paragraph(r, 2)}\n\n\`\`\`python\n${code}\n\`\`\`\n\n${prose(r, 2)}` },
  ];
}

function otherCode(r: () => number): TuluRow["messages"] {
  const which = Math.floor(r() * 4);
  const blocks = [
    ["javascript", "function add(a, b) {\n  return a + b;\n}\nconsole.log(add(2, 3));"],
    ["sql", "SELECT name, COUNT(*) AS n\nFROM orders\nGROUP BY name\nORDER BY n DESC;"],
    ["cpp", "#include <iostream>\nint main() {\n  std::cout << 42 << std::endl;\n  return 0;\n}"],
    ["python", "import math\nprint(math.sqrt(16))"],
  ][which];
  const ask = which === 3 ? "How do I take a square root in python?" : `How do I do this in ${blocks[0]}?`;
  return [
    { role: "user", content: `${paragraph(r, 2)} ${ask}` },
    { role: "assistant", content: `${paragraph(r, 2)}\n\n\`\`\`${blocks[0]}\n${blocks[1]}\n\`\`\`\n\n${prose(r, 2)}` },
  ];
}

/** The i-th synthetic row (pure function of i). */
export function syntheticRow(i: number): TuluRow {
  const r = mulberry32(i * 2654435761 + 12345);
  const u = r();
  let messages: TuluRow["messages"];
  let source: string;
  if (u < 0.05) {
    messages = pythonTask(r, i);
    source = r() < 0.5 ? SOURCE_PERSONA_CODE : SOURCE_EVOL;
  } else if (u < 0.15) {
    messages = otherCode(r);
    source = SOURCE_EVOL;
  } else {
    const huge = r() < 0.002;
    messages = [
      { role: "user", content: paragraph(r, 1 + Math.floor(r() * 4)) },
      { role: "assistant", content: prose(r, huge ? 250 : 2 + Math.floor(r() * 5)) },
    ];
    source = SOURCES_PROSE[Math.floor(r() * SOURCES_PROSE.length)];
  }
  if (r() < 0.1) {
    messages.push({ role: "user", content: paragraph(r, 1) }, { role: "assistant", content: prose(r, 1) });
  }
  if (r() < 0.02) messages.unshift({ role: "system", content: paragraph(r, 1) });
  if (r() < 0.003) messages[messages.length - 1].content = "";
  return { id: `${source}_${i}`, messages, source };
}

function* syntheticRows(n: number): Generator<TuluRow> {
  for (let i = 0; i < n; i++) yield syntheticRow(i);
}

/**
 * Writes (or reuses) `<dir>/synth-tulu-<rows>.<jsonl|parquet>` and returns its path. Parquet uses
 * snappy and 1,000-row groups like `datasets.push_to_hub`.
 */
export async function writeSyntheticTulu(dir: string, rows: number, format: "jsonl" | "parquet"): Promise<string> {
  await fsp.mkdir(dir, { recursive: true });
  const file = path.join(dir, `synth-tulu-${rows}.${format}`);
  const marker = `${file}.done`;
  const stamp = JSON.stringify({ version: GENERATOR_VERSION, rows, format });
  try {
    if ((await fsp.readFile(marker, "utf8")) === stamp) {
      await fsp.access(file);
      return file;
    }
  } catch {
    /* (re)build */
  }
  const tmp = `${file}.tmp-${process.pid}`;
  if (format === "jsonl") {
    const ws = createWriteStream(tmp, { highWaterMark: 1 << 20 });
    for (const row of syntheticRows(rows)) {
      if (!ws.write(JSON.stringify(row) + "\n")) await once(ws, "drain");
    }
    ws.end();
    await once(ws, "finish");
  } else {
    await writeTuluParquet(tmp, syntheticRows(rows), { codec: "SNAPPY", rowGroupSize: 1000 });
  }
  await fsp.rename(tmp, file);
  await fsp.writeFile(marker, stamp);
  return file;
}

// --- Standalone: source read throughput ---------------------------------------------------------

const PY_READ = String.raw`
import json, re, resource, sys, time
t = time.time(); n = hits = 0
py = re.compile(r"python", re.I)
with open(sys.argv[1], encoding="utf-8") as f:
    for line in f:
        row = json.loads(line)
        n += 1
        user = next((m["content"] for m in row["messages"] if m["role"] == "user"), "")
        if py.search(user) and "def " in user:
            hits += 1
print(json.dumps({"rows": n, "hits": hits, "s": time.time() - t, "rssMb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
`;

const NODE_READ = `
import { openSource } from "./pipeline/sources/index.ts";
const t = Date.now(); let n = 0, hits = 0; const py = /python/i;
const src = await openSource({ kind: "local", path: process.argv[2] });
for await (const row of src.rows) {
  n++;
  const user = row.messages.find((m) => m.role === "user")?.content ?? "";
  if (py.test(user) && user.includes("def ")) hits++;
}
console.log(JSON.stringify({ rows: n, hits, s: (Date.now() - t) / 1000, rssMb: process.resourceUsage().maxRSS / 1024 }));
`;

async function main() {
  const quick = process.argv.includes("--quick");
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
  const sizes = quick ? [20_000, 50_000] : [200_000, 1_000_000];
  const dir = path.join(root, ".cache/bench");
  const tmpScript = path.join(root, ".cache/bench", "_read-child.ts");
  await fsp.mkdir(dir, { recursive: true });
  await fsp.writeFile(tmpScript, NODE_READ.replace("./pipeline/", path.join(root, "pipeline") + "/"));
  await fsp.writeFile(path.join(dir, "_read.py"), PY_READ);
  const run = (cmd: string, args: string[]) => {
    const r = spawnSync(cmd, args, { encoding: "utf8", cwd: root, maxBuffer: 1 << 24 });
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed: ${r.stderr.slice(-800)}`);
    return JSON.parse(r.stdout.trim().split("\n").pop()!);
  };
  const lines = [
    "| rows | format | file MB | ours rows/s | ours peak RSS MB | Python json+re rows/s (JSONL) | Python peak RSS MB | ratio ours/Python |",
    "|---:|---|---:|---:|---:|---:|---:|---:|",
  ];
  for (const n of sizes) {
    const t0 = Date.now();
    const files = { jsonl: await writeSyntheticTulu(dir, n, "jsonl"), parquet: await writeSyntheticTulu(dir, n, "parquet") };
    process.stderr.write(`data for ${n} rows ready in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
    const base = run("python3", [path.join(dir, "_read.py"), files.jsonl]);
    for (const fmt of ["jsonl", "parquet"] as const) {
      const ours = run(path.join(root, "node_modules/.bin/tsx"), [tmpScript, files[fmt]]);
      if (ours.rows !== base.rows || ours.hits !== base.hits) {
        throw new Error(`row/hit counts differ: ours ${ours.rows}/${ours.hits}, Python ${base.rows}/${base.hits}`);
      }
      const mb = (await fsp.stat(files[fmt])).size / 2 ** 20;
      const line = `| ${n} | ${fmt} | ${mb.toFixed(0)} | ${(n / ours.s).toFixed(0)} | ${ours.rssMb.toFixed(0)} | ${(n / base.s).toFixed(0)} | ${base.rssMb.toFixed(0)} | ${(base.s / ours.s).toFixed(2)} |`;
      lines.push(line);
      process.stderr.write(line + "\n");
    }
  }
  console.log("Source read throughput: openSource() over synthetic Tulu rows with a keyword test per row,");
  console.log("baseline: Python stdlib json.loads + re over the same JSONL, in the same run.\n");
  console.log(lines.join("\n"));
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await main();
}
