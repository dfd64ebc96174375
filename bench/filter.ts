/**
 * Filter throughput (issue #2): synthetic Tulu-format JSONL and parquet of 200K and 1M rows (`--quick`: 20K
 * and 50K) through the real runner (`--stage filter`, sandboxed execution of the Python candidates),
 * reporting rows/s and peak RSS of the Node process; baseline in the same run: a plain Python stdlib
 * `json` + `re` pass over the same JSONL (keyword test + code-block regex, no tokenizer, no execution).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { writeSyntheticTulu } from "./synth-tulu.ts";

const quick = process.argv.includes("--quick");
const sizes = quick ? [20_000, 50_000] : [200_000, 1_000_000];
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const tsx = path.join(root, "node_modules/.bin/tsx");

const PY_BASELINE = String.raw`
import json, re, sys, time
t = time.time(); n = kept = 0
fence = re.compile(r"^\s*` + "```" + String.raw`[ \t]*([^\n` + "`" + String.raw`]*)\n(.*?)\n\s*` + "```" + String.raw`", re.S | re.M)
py = re.compile(r"python", re.I)
with open(sys.argv[1], encoding="utf-8") as f:
    for line in f:
        n += 1
        row = json.loads(line)
        msgs = row.get("messages") or []
        user = next((m["content"] for m in reversed(msgs) if m.get("role") == "user"), "")
        if not (py.search(user) and "def " in user):
            continue
        last = msgs[-1]["content"] if msgs and msgs[-1].get("role") == "assistant" else ""
        if any(re.search(r"^def\s+\w+\s*\(", b[1], re.M) for b in fence.findall(last)):
            kept += 1
print(json.dumps({"rows": n, "kept": kept, "s": time.time() - t}))
`;

interface Row { format: string; rows: number; s: number; rowsPerS: number; rssMb: number; kept: number; checks: string }

function runFilter(file: string, rows: number, format: string, extra: string[] = []): Row {
  const runDir = mkdtempSync(path.join(tmpdir(), "utgen-bench-filter-"));
  const t0 = Date.now();
  const r = spawnSync(tsx, [path.join(root, "bench/_filter-child.ts"), "--config", path.join(root, "configs/demo.yaml"), "--stage", "filter", "--input", file, "--run-dir", runDir, "--set", "run.shard_size=500", ...extra] /* the default (configs/demo.yaml sets 20 for its 37 rows) */, {
    encoding: "utf8",
    cwd: root,
    maxBuffer: 1 << 24,
  });
  const s = (Date.now() - t0) / 1000;
  const last = r.stdout.trim().split("\n").pop() ?? "{}";
  const info = JSON.parse(last);
  if (info.code !== 0) throw new Error(`filter failed on ${file}: ${r.stderr.slice(-500)}`);
  const stats = JSON.parse(readFileSync(path.join(runDir, "filter/stats.json"), "utf8"));
  rmSync(runDir, { recursive: true, force: true });
  const c = stats.counters ?? {};
  return { format, rows, s, rowsPerS: rows / s, rssMb: info.maxRssMb, kept: stats.out, checks: `${c.checks_static ?? 0} / ${c.checks_forked ?? 0}` };
}

const out: string[] = [];
// Each size also runs once with every check in a child (executor.static_check=false): the synthetic candidates'
// module levels only define functions, so with the default the server decides every check without a child
// (docs/executor.md, "Eighth pass"); that row shows the fork path's own speed.
out.push("| rows | format | ours (rows/s) | peak RSS (MB) | kept | checks without a child / in a child | Python json+re baseline (rows/s) | ratio ours/baseline |");
out.push("|---:|---|---:|---:|---:|---:|---:|---:|");
for (const rows of sizes) {
  const dir = path.join(root, ".cache/bench");
  const jsonl = await writeSyntheticTulu(dir, rows, "jsonl");
  const parquet = await writeSyntheticTulu(dir, rows, "parquet");
  const scratch = mkdtempSync(path.join(tmpdir(), "utgen-bench-py-"));
  const script = path.join(scratch, "baseline.py");
  writeFileSync(script, PY_BASELINE);
  const b = spawnSync("python3", [script, jsonl], { encoding: "utf8", maxBuffer: 1 << 24 });
  rmSync(scratch, { recursive: true, force: true }); // the bench leaves nothing in the temp folder
  const base = JSON.parse(b.stdout.trim());
  const baseRate = base.rows / base.s;
  for (const [fmt, file, extra] of [["jsonl", jsonl, []], ["parquet", parquet, []], ["jsonl, every check in a child", jsonl, ["--set", "executor.static_check=false"]]] as const) {
    const r = runFilter(file, rows, fmt, [...extra]);
    out.push(`| ${rows} | ${fmt} | ${r.rowsPerS.toFixed(0)} | ${r.rssMb.toFixed(0)} | ${r.kept} | ${r.checks} | ${baseRate.toFixed(0)} | ${(r.rowsPerS / baseRate).toFixed(2)} |`);
    process.stderr.write(out[out.length - 1] + "\n");
  }
}
console.log(out.join("\n"));
console.log("\nOurs does strictly more per row (real tokenizer, sandboxed execution of every candidate, shard writes); the baseline only scans.");
