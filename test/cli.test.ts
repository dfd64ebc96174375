/** Runner: flag / stage / config errors are one line with exit code 2; --help lists planned stages. */
import { afterAll, describe, expect, it } from "vitest";
import { writeFileSync } from "node:fs";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { pathToFileURL } from "node:url";
import { main } from "../pipeline/cli.ts";
import { UserError } from "../pipeline/errors.ts";
import { coreImport } from "../pipeline/registry.ts";
import { scratchDirs } from "../stages/heuristic/context.ts";

const scratch = scratchDirs("utgen-cli-");
afterAll(() => scratch.removeAll());

async function run(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { stdout: (l) => out.push(l), stderr: (l) => err.push(l) });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

function config(yaml: string): string {
  const dir = scratch.make();
  const f = path.join(dir, "c.yaml");
  writeFileSync(f, yaml);
  return f;
}

describe("runner errors", () => {
  it("unknown flag: one line with the valid flags, exit 2", async () => {
    const r = await run(["--stagee", "filter"]);
    expect(r.code).toBe(2);
    expect(r.err.split("\n")).toHaveLength(1);
    expect(r.err).toMatch(/^error: unknown flag --stagee; valid flags: .*--stage/);
  });

  it("unknown stage names the valid stages", async () => {
    const r = await run(["--stage", "perturbb"]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^error: unknown stage perturbb in --stage; valid stages: filter, perturb/);
  });

  it("unknown config key names the valid keys of its block", async () => {
    const f = config("source: {kind: local, path: x.jsonl}\nfilter:\n  max_prompt_tokenz: 3\n");
    const r = await run(["--config", f, "--status"]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^error: unknown config key filter\.max_prompt_tokenz; valid keys in filter: .*max_prompt_tokens/);
    expect(r.err.split("\n")).toHaveLength(1);
  });

  it("bad value and bad enum are named with the offending value", async () => {
    const f = config("source: {kind: local, path: x.jsonl}\n");
    const bad = await run(["--config", f, "--set", "filter.max_prompt_tokens=lots", "--status"]);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/config key filter\.max_prompt_tokens: .*\(got "lots"\)/);
    const en = await run(["--config", f, "--set", "filter.tokenizer=gpt2", "--status"]);
    expect(en.err).toMatch(/config key filter\.tokenizer: .*"gpt2".*"qwen", "llama3", "chars"/);
  });

  it("missing config file and bad YAML are one-line errors", async () => {
    expect((await run(["--config", "/nonexistent.yaml"])).err).toBe("error: config file /nonexistent.yaml not found; pass --config <file.yaml> (e.g. configs/demo.yaml)");
    const r = await run(["--config", config("a: [1,\n")]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^error: config file .* is not valid YAML/);
  });

  it("bad --shard, --limit and ranges are refused", async () => {
    expect((await run(["--shard", "3/2"])).err).toMatch(/--shard 3\/2: expected i\/N/);
    expect((await run(["--limit=abc"])).err).toMatch(/--limit abc: expected a non-negative integer/);
    expect((await run(["--from", "attack", "--to", "filter"])).err).toMatch(/--from attack comes after --to filter/);
  });

  it("a module that does not load is a one-line error; a missing npm package says to install", async () => {
    const dir = scratch.make();
    const pkg = path.join(dir, "needs-pkg.mjs");
    writeFileSync(pkg, 'import "utgen-no-such-package";\nexport const x = 1;\n');
    const broken = path.join(dir, "throws.mjs");
    writeFileSync(broken, 'throw new Error("boom at load\\nsecond line");\n');
    const e1 = (await coreImport(pathToFileURL(pkg).href).catch((e) => e)) as Error;
    expect(e1).toBeInstanceOf(UserError);
    expect(e1.message).toMatch(/the npm package 'utgen-no-such-package' is not installed; run `npm ci`/);
    const e2 = (await coreImport(pathToFileURL(broken).href).catch((e) => e)) as Error;
    expect(e2).toBeInstanceOf(UserError);
    expect(e2.message).toMatch(/throws\.mjs does not load: .*boom at load$/);
    expect(await coreImport<{ executorConfigSchema: unknown }>("../pipeline/executor/index.ts")).toHaveProperty("executorConfigSchema");
  });

  it("--help lists every stage (none is planned any more), each command's flags once, and the shipped configs", async () => {
    const h = await run(["--help"]);
    expect(h.code).toBe(0);
    expect(h.out).not.toMatch(/\[planned/);
    expect(h.out).toMatch(/utdebug +UTDebug: .*No-UT baseline, pass@1\n/);
    expect(h.out).toMatch(/rerank +best-of-N/);
    for (const s of ["rl-tasks", "rl-rewards", "rl-serve", "rl-rollouts", "utrl", "rl-validate", "rl-bon", "rl-fidelity"]) expect(h.out).toMatch(new RegExp(`\\n  ${s} +\\S`));
    // a flag several commands take is listed once, naming each command
    expect(h.out.match(/\n  --dataset /g)).toHaveLength(1);
    expect(h.out).toMatch(/--dataset +\(gold-check, utdebug, rerank, rl-rewards\) gold-check: .*; utdebug, rerank: .*; rl-rewards: /);
    expect(h.out).toMatch(/--status/);
    // the shipped configs, the papers' protocols among them, with what each is
    expect(h.out).toMatch(/configs\/paper\/utgen-mbppplus-fix-hard\.yaml +UTGen paper, Table 1/);
    expect(h.out).toMatch(/configs\/paper\/utdebug-table2\.yaml +UTGen paper, Table 2/);
    expect(h.out).toMatch(/configs\/demo\.yaml +Demo:/);
  });

  it("works through zx as the README says", () => {
    const r = spawnSync("npx", ["zx", "pipeline/run.mjs", "--help"], { encoding: "utf8" });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("stages (no stage flag = filter → emit-sft)");
  });
});
