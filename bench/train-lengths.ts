/**
 * Train preflight (issue #5): the token-length check of the SFT file against max_length.
 * Baseline: tokenize every row whole (chat template rendered, Qwen tokenizer). Ours: skip rows whose UTF-8
 * size is already ≤ max_length (byte-level BPE never gives more tokens than bytes) and count the rest line
 * by line with a cache (exact: pieces split on pre-tokenizer boundaries, see LineTokenCounter). All
 * variants must report the same rows over the limit and the same longest row.
 * Data: deterministic synthetic UTGen-style rows: one
 * system prompt; per problem 2 buggy versions × 3 unit tests = 6 rows sharing the problem text and most
 * of the code; code of 5–165 lines, most short, identifiers unique per problem.
 *
 *   npx tsx bench/train-lengths.ts [--quick]
 */
import { promises as fsp } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { measureLengths } from "../trainers/preflight.ts";

const quick = process.argv.includes("--quick");
const ROWS = quick ? 400 : 1200;

/** Deterministic value in [0, 1) (Knuth multiplicative hash): no PRNG state needed. */
const u = (i: number, salt: number) => (Math.imul(i * 7919 + salt, 2654435761) >>> 0) / 2 ** 32;

const SHAPES = [
  (p: number, k: number) => `    total_${p} += values_${p}[${k}] * factor`,
  (p: number, k: number) => `    if item_${p}_${k} % ${k + 2} == 0 and index > ${k}:`,
  (p: number, k: number) => `        result_${p}.append(helper_${p}(item_${p}_${k}, depth=${k}))`,
  (p: number, k: number) => `    seen_${p} = {key: value for key, value in pairs_${p}.items() if value > ${k}}`,
  (p: number, k: number) => `    # step ${k}: keep the running maximum of window_${p}`,
];

function row(i: number) {
  const p = Math.floor(i / 6);
  const version = Math.floor(i / 3) % 2;
  const lines = 5 + Math.floor(u(p, 1) ** 2 * 160);
  const body = Array.from({ length: lines }, (_, k) => SHAPES[Math.floor(u(p, k + 2) * SHAPES.length)](p, k));
  body[Math.floor(u(p, 999) * lines)] = version ? `    return None  # bug ${version}` : `    total_${p} -= 1  # bug`;
  const code = [`def solve_${p}(values_${p}, factor=2):`, ...body].join("\n");
  return {
    prompt: [
      { role: "system", content: "You are an expert Python programmer. Given a problem and a piece of code that may be wrong, write one unit test that fails on the code, as an assert statement, after a short explanation." },
      { role: "user", content: `Problem:\nWrite a function solve_${p} that aggregates the list values_${p} as described in task ${p}.\n\nCode:\n\`\`\`python\n${code}\n\`\`\`\nWrite one failing unit test.` },
    ],
    completion: [{ role: "assistant", content: `Test ${i % 3} targets the bug: the running total is wrong for a short list.\n\`\`\`python\nassert solve_${p}([${i % 7}, 4], 2) == ${i % 11 + 12}\n\`\`\`` }],
  };
}

const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "bench-train-"));
const file = path.join(dir, "train.prompt_completion.jsonl");
await fsp.writeFile(file, Array.from({ length: ROWS }, (_, i) => JSON.stringify(row(i))).join("\n") + "\n");
// Load the tokenizer once, outside the timings.
await measureLengths(file, "qwen2.5", "qwen", 1_000_000);

const time = async (opts: { prune: boolean; cache: boolean }, maxLength: number) => {
  const t = performance.now();
  const r = await measureLengths(file, "qwen2.5", "qwen", maxLength, opts);
  return { r, s: (performance.now() - t) / 1000 };
};

const out = [
  "| rows | max_length | rows over | baseline: tokenize every row whole (s) | skip rows ≤ max_length bytes (s) | ours: skip + line cache (s) | rows tokenized by ours | speed-up baseline/ours |",
  "|---:|---:|---:|---:|---:|---:|---:|---:|",
];
for (const maxLength of [1024, 2048, 4096]) {
  const base = await time({ prune: false, cache: false }, maxLength);
  const prune = await time({ prune: true, cache: false }, maxLength);
  const ours = await time({ prune: true, cache: true }, maxLength);
  for (const v of [prune, ours]) {
    if (v.r.over !== base.r.over || (v.r.over && v.r.longestTokens !== base.r.longestTokens)) {
      throw new Error(`verdicts differ at max_length ${maxLength}: ${JSON.stringify([base.r, v.r])}`);
    }
  }
  out.push(
    `| ${ROWS} | ${maxLength} | ${base.r.over} | ${base.s.toFixed(2)} | ${prune.s.toFixed(2)} | ${ours.s.toFixed(2)} | ${ours.r.tokenized} (${((100 * ours.r.tokenized) / ROWS).toFixed(0)}%) | ${(base.s / ours.s).toFixed(1)}x |`,
  );
}
console.log(out.join("\n"));
const avgBytes = (await fsp.stat(file)).size / ROWS;
console.log(`\nSame rows-over verdict (and longest row when any is over) in every variant; ${(avgBytes / 1024).toFixed(1)} KB of JSON per row on average.`);
await fsp.rm(dir, { recursive: true, force: true });
