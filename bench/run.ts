/**
 * `npm run bench [-- --quick] [-- name…]`: runs every benchmark in bench/ (one child process each, so
 * memory figures do not mix) and prints their tables. Each benchmark compares against a baseline measured
 * in the same run and prints the ratio.
 */
import { readdirSync } from "node:fs";
import { spawnSync } from "node:child_process";
import * as path from "node:path";

const here = path.dirname(new URL(import.meta.url).pathname);
const args = process.argv.slice(2);
const flags = args.filter((a) => a.startsWith("--"));
const names = args.filter((a) => !a.startsWith("--"));
const SKIP = new Set(["run.ts", "synth-tulu.ts"]);
const benches = readdirSync(here)
  .filter((f) => f.endsWith(".ts") && !SKIP.has(f) && !f.startsWith("_"))
  .filter((f) => !names.length || names.some((n) => f.includes(n)))
  .sort();
const tsx = path.resolve(here, "../node_modules/.bin/tsx");
let failed = 0;
for (const f of benches) {
  process.stdout.write(`\n## bench/${f}\n\n`);
  const r = spawnSync(tsx, [path.join(here, f), ...flags], { stdio: "inherit", cwd: path.resolve(here, "..") });
  if (r.status !== 0) {
    failed++;
    process.stdout.write(`bench/${f} exited with ${r.status}\n`);
  }
}
process.exitCode = failed ? 1 : 0;
