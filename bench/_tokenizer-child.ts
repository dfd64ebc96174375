/** Child of bench/tokenizer.ts: builds one family's tokenizer in a fresh process and prints how long it took. */
import { readFileSync } from "node:fs";
import { buildTokenizer } from "../pipeline/tokenizer-tables.ts";

const [pkg, cacheDir] = process.argv.slice(2);
const t0 = performance.now();
const built = await buildTokenizer(pkg, cacheDir === "-" ? undefined : cacheDir);
const ms = performance.now() - t0;
// the same text through it, so the parent can check both builds count alike
const text = readFileSync(new URL("../data/demo/tulu-demo.jsonl", import.meta.url), "utf8");
const tokens = built.tokenizer.encode(text, { add_special_tokens: false }).ids.length;
const mem = process.memoryUsage();
console.log(JSON.stringify({ ms, from: built.from, tokens, heapMb: mem.heapUsed / 2 ** 20 }));
