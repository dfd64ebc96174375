// The README and docs say what the code does: commands a user copies work as written (`npx zx`, never a bare
// `zx`), the configuration section matches the schema (no block is required; `source` defaults to the Hub),
// and every flag --help lists is in the README's flag table.
import { describe, expect, it } from "vitest";
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { main } from "../pipeline/cli.ts";
import { loadConfig } from "../pipeline/config.ts";
import { scratchDirs } from "../stages/heuristic/context.ts";

const ROOT = path.resolve(__dirname, "..");
const DOCS = ["README.md", ...readdirSync(path.join(ROOT, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`)];
const read = (f: string) => readFileSync(path.join(ROOT, f), "utf8");

describe("docs are true", () => {
  it("every command that runs the pipeline uses `npx zx` (a bare `zx` is not on a fresh machine's PATH)", () => {
    const bare: string[] = [];
    for (const f of DOCS)
      read(f)
        .split("\n")
        .forEach((l, i) => {
          if (/(^|[\s`$(])zx pipeline\/run\.mjs/.test(l) && !/npx zx pipeline\/run\.mjs/.test(l)) bare.push(`${f}:${i + 1}: ${l.trim()}`);
        });
    expect(bare).toEqual([]);
  });

  it("no config block is required: without `source` the Hub source applies, as the README says", async () => {
    const readme = read("README.md");
    expect(readme).not.toMatch(/optional except `source`/);
    expect(readme).toMatch(/every block is optional \(without `source`, the Tulu-3 mixture on the Hub/);
    const scratch = scratchDirs("utgen-docs-");
    try {
      const f = path.join(scratch.make(), "c.yaml");
      writeFileSync(f, "run: {dir: x}\n");
      const { root } = await loadConfig(f);
      expect(root.source).toMatchObject({ kind: "hub", repo: "allenai/tulu-3-sft-mixture" });
    } finally {
      scratch.removeAll();
    }
  });

  it("every flag --help lists is in the README's flag table", async () => {
    const out: string[] = [];
    expect(await main(["--help"], { stdout: (l) => out.push(l), stderr: () => {} })).toBe(0);
    // global flags (a command's own flags say "(train) …" and are documented with that command)
    const global = out.map((l) => /^ {2}(--[a-z-]+)\s+(.*)$/.exec(l)).filter((m) => m && !m[2].startsWith("(")).map((m) => m![1]);
    expect(global.length).toBeGreaterThan(10);
    const rows = read("README.md").split("\n").filter((l) => l.startsWith("| `--"));
    const missing = global.filter((flag) => !rows.some((r) => new RegExp(`\`${flag}[\\s\`]|${flag}[ =<]`).test(r.split(" | ")[0])));
    expect(missing).toEqual([]);
  });
});
