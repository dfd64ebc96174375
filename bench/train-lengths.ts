/**
 * Train preflight (issue #5): the token-length check of the SFT file against max_length.
 * Baseline: tokenize every row (chat template rendered, Qwen tokenizer). Ours: rows whose UTF-8 size is
 * already ≤ max_length are skipped (byte-level BPE never gives more tokens than bytes), only the rest
 * is tokenized. Both must report the same rows over the limit. Deterministic synthetic UTGen-style rows
 * (system + problem + code of 5–165 lines, most short: prompts under ~2K tokens as in the paper → a rationale and one assert), written to a temp folder.
 *
 *   npx tsx bench/train-lengths.ts [--quick]
 */
import { promises as fsp } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { measureLengths } from "../trainers/preflight.ts";

const quick = process.argv.includes("--quick");
const ROWS = quick ? 300 : 1500;
const REPEATS = quick ? 1 : 2;

/** Deterministic value in [0, 1) per row (Knuth multiplicative hash): no PRNG state needed. */
const u = (i: number, salt: number) => (Math.imul(i * 31 + salt, 2654435761) >>> 0) / 2 ** 32;

const CODE = [
  "    total = 0",
  "    for i, x in enumerate(xs):",
  "        if x % 2 == 0 and i > 0:",
  "            total += x * factor",
  "        elif isinstance(x, float):",
  "            total -= round(x, 2)",
  "    result = sorted(set(items), key=lambda t: (len(t), t))",
  "    return {k: v for k, v in zip(keys, values) if v is not None}",
  "    while lo < hi:",
  "        mid = (lo + hi) // 2",
];

function row(i: number) {
  const lines = 5 + Math.floor(u(i, 1) ** 2 * 160);
  const code = [`def solve_${i}(xs, factor=2):`, ...Array.from({ length: lines }, (_, k) => CODE[Math.floor(u(i, k + 2) * CODE.length)])].join("\n");
  return {
    prompt: [
      { role: "system", content: "You are an expert Python programmer who writes unit tests that expose bugs." },
      { role: "user", content: `Problem ${i}: write a function that processes the list as described.\n\nCode:\n\`\`\`python\n${code}\n\`\`\`\nWrite one failing unit test.` },
    ],
    completion: [{ role: "assistant", content: `The loop skips index 0, so the first element is never counted.\n\`\`\`python\nassert solve_${i}([2, 4], 2) == 12\n\`\`\`` }],
  };
}

const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "bench-train-"));
const file = path.join(dir, "train.prompt_completion.jsonl");
await fsp.writeFile(file, Array.from({ length: ROWS }, (_, i) => JSON.stringify(row(i))).join("\n") + "\n");
// Load the tokenizer once outside the timings.
await measureLengths(file, "qwen2.5", "qwen", 1_000_000);

const out = [
  "| rows | max_length | rows over | baseline: tokenize all (s) | ours: tokenize rows > max_length bytes (s) | rows tokenized by ours | speed-up baseline/ours |",
  "|---:|---:|---:|---:|---:|---:|---:|",
];
for (const maxLength of [1024, 2048, 4096]) {
  // Best of REPEATS, alternating, to damp noise from other load on the machine.
  let tFull = Infinity;
  let tOurs = Infinity;
  let full!: Awaited<ReturnType<typeof measureLengths>>;
  let ours!: Awaited<ReturnType<typeof measureLengths>>;
  for (let r = 0; r < REPEATS; r++) {
    let t = performance.now();
    full = await measureLengths(file, "qwen2.5", "qwen", maxLength, { prune: false });
    tFull = Math.min(tFull, (performance.now() - t) / 1000);
    t = performance.now();
    ours = await measureLengths(file, "qwen2.5", "qwen", maxLength);
    tOurs = Math.min(tOurs, (performance.now() - t) / 1000);
  }
  if (ours.over !== full.over) throw new Error(`verdicts differ at max_length ${maxLength}: ${ours.over} vs ${full.over}`);
  out.push(`| ${ROWS} | ${maxLength} | ${full.over} | ${tFull.toFixed(2)} | ${tOurs.toFixed(2)} | ${ours.tokenized} (${((100 * ours.tokenized) / ROWS).toFixed(0)}%) | ${(tFull / tOurs).toFixed(1)}x |`);
}
console.log(out.join("\n"));
const avgBytes = (await fsp.stat(file)).size / ROWS;
console.log(`\nSame rows-over verdict in both; the speed-up depends on how many rows are longer than max_length bytes (here ${(avgBytes / 1024).toFixed(1)} KB of JSON per row on average).`);
await fsp.rm(dir, { recursive: true, force: true });
