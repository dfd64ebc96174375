// `--render slurm` / `--submit slurm` without a cluster: the scripts run as written (a recording `node` in
// place of the runner), `--submit` calls sbatch as documented (a recording `sbatch` on PATH), and bad uses
// are one-line errors. The real scheduler is test/slurm.test.ts (UTGEN_TEST_SLURM=1).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { main } from "../pipeline/cli.ts";

const ROOT = path.resolve(__dirname, "..");
const DEMO = path.join(ROOT, "configs/demo.yaml");
let dir: string;
let bin: string;
let savedPath: string | undefined;

async function cli(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { stdout: (l) => out.push(l), stderr: (l) => err.push(l) });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

function script(file: string, text: string) {
  writeFileSync(file, text);
  chmodSync(file, 0o755);
}

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), "utgen-slurmsubmit-"));
  bin = path.join(dir, "bin");
  mkdirSync(bin);
  // sbatch: records its argv, answers job ids 101, 102, … (with a cluster suffix, as --parsable may)
  script(
    path.join(bin, "sbatch"),
    `#!/bin/sh\necho "$*" >> ${dir}/sbatch.log\nn=$(wc -l < ${dir}/sbatch.log)\necho "$((100 + n));cluster"\n`,
  );
  // node: records the runner argv an array task would run
  script(path.join(bin, "node"), `#!/bin/sh\nprintf '%s\\n' "$@" > ${dir}/node.argv\n`);
  savedPath = process.env.PATH;
});
afterAll(() => {
  process.env.PATH = savedPath;
  rmSync(dir, { recursive: true, force: true });
});

describe("--render slurm", () => {
  it("writes and prints an array script and a merge script that run the submitting command per slice", async () => {
    const runDir = path.join(dir, "r1", "run");
    const r = await cli(["--config", DEMO, "--run-dir", runDir, "--set", "slurm.shards=3", "--set", "perturb.n_bugs=1", "--set", "slurm.time=01:00:00", "--set", "slurm.setup=[export X=1]", "--render", "slurm"]);
    expect(r.code, r.err).toBe(0);
    const array = readFileSync(path.join(runDir, "slurm", "array.sh"), "utf8");
    const merge = readFileSync(path.join(runDir, "slurm", "merge.sh"), "utf8");
    expect(r.out).toContain(array.trimEnd());
    expect(r.out).toContain(merge.trimEnd());
    expect(r.out).toContain("sbatch --dependency=afterany:${jid%%;*}");
    expect(array).toContain("#SBATCH --array=0-2");
    expect(array).toContain("#SBATCH --time=01:00:00");
    expect(array).toContain(`#SBATCH --output=${runDir}/slurm/shard-%a.%A.out`);
    expect(merge).toContain(`#SBATCH --output=${runDir}/slurm/merge.%j.out`);
    expect(merge).not.toContain("--array");
    expect(existsSync(path.join(runDir, "filter"))).toBe(false); // nothing ran

    // task 1 of the array runs the runner with the same flags and --shard 1/3, from the submitting folder
    const env = { PATH: `${bin}:/usr/bin:/bin`, SLURM_ARRAY_TASK_ID: "1" };
    execFileSync("bash", [path.join(runDir, "slurm", "array.sh")], { env, cwd: "/" });
    expect(readFileSync(path.join(dir, "node.argv"), "utf8").trim().split("\n")).toEqual([
      path.join(ROOT, "pipeline/run.mjs"),
      "--config", DEMO, "--run-dir", runDir,
      "--set", "slurm.shards=3", "--set", "perturb.n_bugs=1", "--set", "slurm.time=01:00:00", "--set", "slurm.setup=[export X=1]",
      "--shard", "1/3",
    ]);
    execFileSync("bash", [path.join(runDir, "slurm", "merge.sh")], { env, cwd: "/" });
    const m = readFileSync(path.join(dir, "node.argv"), "utf8").trim().split("\n");
    expect(m.slice(-2)).toEqual(["--stage", "merge"]);
    expect(m).toContain("perturb.n_bugs=1");
  });
});

describe("--submit slurm", () => {
  it("submits the array, then the merge after it (afterany), and records both; --shard i/N resubmits slice i", async () => {
    process.env.PATH = `${bin}:${savedPath}`;
    try {
      const runDir = path.join(dir, "r2", "run");
      const r = await cli(["--config", DEMO, "--run-dir", runDir, "--set", "slurm.shards=4", "--submit", "slurm"]);
      expect(r.code, r.err).toBe(0);
      expect(r.out).toMatch(/^submitted array job 101 \(slices 0-3 of 4: filter → perturb → attack → rationalize → emit-sft\) and merge job 102 /);
      const again = await cli(["--config", DEMO, "--run-dir", runDir, "--set", "slurm.shards=4", "--submit", "slurm", "--shard", "2/4"]);
      expect(again.code, again.err).toBe(0);
      expect(again.out).toMatch(/^submitted array job 103 \(slice 2 of 4: .*\) and merge job 104 /);
      const array = path.join(runDir, "slurm", "array.sh");
      const merge = path.join(runDir, "slurm", "merge.sh");
      expect(readFileSync(path.join(dir, "sbatch.log"), "utf8").trim().split("\n")).toEqual([
        `--parsable ${array}`,
        `--parsable --dependency=afterany:101 ${merge}`,
        `--parsable --array=2 ${array}`,
        `--parsable --dependency=afterany:103 ${merge}`,
      ]);
      const recorded = JSON.parse(readFileSync(path.join(runDir, "slurm", "submissions.json"), "utf8"));
      expect(recorded.map((s: any) => [s.array, s.merge, s.slices])).toEqual([["101", "102", "all"], ["103", "104", [2]]]);
    } finally {
      process.env.PATH = savedPath;
    }
  });

  it("one-line errors: no sbatch, a non-data stage, --submit with --render, an unknown scheduler", async () => {
    process.env.PATH = path.join(dir, "empty");
    try {
      const none = await cli(["--config", DEMO, "--run-dir", path.join(dir, "r3"), "--submit", "slurm"]);
      expect([none.code, none.err]).toEqual([2, "error: sbatch not found: --submit slurm needs the SLURM client commands on this machine; or use --render slurm and submit the scripts where sbatch is"]);
    } finally {
      process.env.PATH = savedPath;
    }
    const train = await cli(["--config", DEMO, "--run-dir", path.join(dir, "r3"), "--submit", "slurm", "--stage", "train"]);
    expect(train.code).toBe(2);
    expect(train.err).toBe(
      "error: --submit slurm runs the data stages (filter → perturb → attack → rationalize → emit-sft) as an array job, not train; for training: --stage train --render slurm (docs/training.md)",
    );
    const both = await cli(["--config", DEMO, "--run-dir", path.join(dir, "r3"), "--submit", "slurm", "--render", "slurm"]);
    expect([both.code, both.err]).toEqual([2, "error: use either --submit or --render, not both"]);
    const pbs = await cli(["--config", DEMO, "--run-dir", path.join(dir, "r3"), "--submit", "pbs"]);
    expect([pbs.code, pbs.err]).toEqual([2, "error: --submit pbs: expected one of slurm"]);
  });
});
