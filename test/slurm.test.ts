// A real scheduler: a one-node SLURM cluster started here (test/helpers/slurm-cluster.ts) runs the demo
// pipeline as the runner submits it (`--submit slurm`: an array of 4 `--shard i/4` tasks and a merge
// after it), and the merged SFT files must be byte-identical to an unsharded run's. Then, on the
// OpenAI-compatible backend (the loopback model), one task is held at a model call the test chooses,
// cancelled there with scancel, resubmitted with `--submit slurm --shard i/4`, and the result compared
// again. Last, the training launcher's `--render slurm` script is submitted with a recording interpreter
// standing in for the training command.
//
// Opt-in: UTGEN_TEST_SLURM=1 (`.ci/run` sets it; `UTGEN_TEST_SLURM=1 npm run setup` installs slurm-wlm
// and munge). It needs root: slurmd runs jobs as their users.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { main } from "../pipeline/cli.ts";
import { readManifest, readStageRecords } from "../pipeline/store.ts";
import { SFT_SCRIPT } from "../trainers/render.ts";
import { missingSlurmPrograms, startSlurmCluster, type SlurmCluster } from "./helpers/slurm-cluster.ts";
import { startOpenAIServer, type OpenAIServer, type ScriptRequest, type ScriptedReply } from "./servers/openai.ts";
import { promptKind, utgenModel } from "./servers/utgen-model.ts";

const ON = process.env.UTGEN_TEST_SLURM === "1";
const ROOT = path.resolve(__dirname, "..");
const DEMO = path.join(ROOT, "configs/demo.yaml");
const DEMO_ROWS = path.join(ROOT, "data/demo/tulu-demo.jsonl");
const N = 4;
const LONG = 15 * 60_000;

let cluster: SlurmCluster;
let dir: string;
let savedConf: string | undefined;
let savedInterval: string | undefined;

async function cli(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { stdout: (l) => out.push(l), stderr: (l) => err.push(l) });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

/** `--submit slurm` → the two job ids it printed. */
async function submit(args: string[]): Promise<{ array: string; merge: string }> {
  const r = await cli([...args, "--submit", "slurm", "--set", `slurm.shards=${N}`]);
  expect(r.code, r.err).toBe(0);
  const m = /submitted array job (\d+) .* and merge job (\d+) /.exec(r.out);
  expect(m, r.out).not.toBeNull();
  return { array: m![1], merge: m![2] };
}

/** The SFT files of a run folder, the data card's build date blanked (both runs may straddle midnight). */
function sftFiles(runDir: string): Record<string, string> {
  const d = path.join(runDir, "emit-sft", "sft");
  const files: Record<string, string> = {};
  for (const f of readdirSync(d).sort()) files[f] = readFileSync(path.join(d, f), "utf8").replace(/^Built \d{4}-\d\d-\d\d /m, "Built <date> ");
  return files;
}

function log(runDir: string, pattern: RegExp): string {
  const d = path.join(runDir, "slurm");
  const f = readdirSync(d).find((x) => pattern.test(x));
  expect(f, `${pattern} in ${readdirSync(d).join(", ")}`).toBeDefined();
  return readFileSync(path.join(d, f!), "utf8");
}

const SKIPPED = "SLURM test skipped: set UTGEN_TEST_SLURM=1 to run it (root, slurm-wlm + munge; .ci/run sets it)";
if (!ON) {
  console.warn(`test/slurm.test.ts: ${SKIPPED}`);
  it.skip(SKIPPED, () => {});
}

if (ON) describe("SLURM: one-node cluster", () => {
  beforeAll(async () => {
    if (process.getuid?.() !== 0) throw new Error("test/slurm.test.ts: UTGEN_TEST_SLURM=1 needs root (slurmd starts jobs as their users)");
    const missing = missingSlurmPrograms();
    if (missing.length) throw new Error(`test/slurm.test.ts: ${missing.join(", ")} not found: run UTGEN_TEST_SLURM=1 npm run setup (installs slurm-wlm and munge)`);
    dir = mkdtempSync(path.join(tmpdir(), "utgen-slurmtest-"));
    chmodSync(dir, 0o755);
    cluster = await startSlurmCluster();
    savedConf = process.env.SLURM_CONF;
    savedInterval = process.env.UTGEN_PROGRESS_INTERVAL_S;
    process.env.SLURM_CONF = cluster.env.SLURM_CONF;
    // sbatch passes the environment on: progress lines every second, so the .out files show some
    process.env.UTGEN_PROGRESS_INTERVAL_S = "1";
  }, 120_000);

  afterAll(async () => {
    for (const [k, v] of [["SLURM_CONF", savedConf], ["UTGEN_PROGRESS_INTERVAL_S", savedInterval]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    await cluster?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  it(
    `the demo pipeline as an array of ${N} slices and a merge equals the unsharded run byte for byte; logs read as plain lines`,
    async () => {
      const whole = path.join(dir, "demo-whole", "run");
      const sliced = path.join(dir, "demo-sliced", "run");
      const w = await cli(["--config", DEMO, "--run-dir", whole]);
      expect(w.code, w.err).toBe(0);

      const jobs = await submit(["--config", DEMO, "--run-dir", sliced]);
      const tasks = await cluster.waitEnded(jobs.array);
      expect(tasks.map((t) => [t.id, t.state, t.exitCode]).sort()).toEqual([0, 1, 2, 3].map((i) => [`${jobs.array}_${i}`, "COMPLETED", "0:0"]));
      const [merge] = await cluster.waitEnded(jobs.merge);
      expect([merge.state, merge.exitCode], log(sliced, /^merge\./)).toEqual(["COMPLETED", "0:0"]);

      expect(sftFiles(sliced)).toEqual(sftFiles(whole));
      expect(Object.keys(sftFiles(whole))).toContain("train.messages.jsonl");

      // every slice ran the chain on its own part of the source; the merge joined all N
      for (let i = 0; i < N; i++) {
        const out = log(sliced, new RegExp(`^shard-${i}\\.${jobs.array}\\.out$`));
        expect(out).toMatch(/emit-sft: done in/);
        expect(out).not.toMatch(/\x1b\[|\r/); // no terminal control sequences in a .out file
        // progress comes as whole plain lines: "attack: 12/40 records (30%), 4.0 rec/s, ETA 7s, 3s elapsed"
        for (const line of out.split("\n").filter((l) => l.includes("rec/s"))) {
          expect(line).toMatch(/^[a-z-]+: \d+(\/\d+)? records( \(\d+%\))?(, \d+ reused)?, \d+\.\d rec\/s(, ETA [^,]+)?, \S+ elapsed( \| .*)?$/);
        }
        expect((await readManifest(sliced, "filter", { index: i, count: N }))?.shard).toEqual({ index: i, count: N });
      }
      expect(log(sliced, /^merge\./)).toContain(`emit-sft: merged ${N} slices`);
    },
    LONG,
  );

  it(
    "the training launcher's --render slurm script is accepted by sbatch and its srun step runs (recording interpreter for the training command)",
    async () => {
      // a "dry run" of the training command: an interpreter that records what it was started with
      const rec = path.join(dir, "rec.jsonl");
      const py = path.join(dir, "rec-python");
      writeFileSync(
        py,
        `#!/usr/bin/env python3\nimport json, os, sys\nwith open(${JSON.stringify(rec)}, "a") as f:\n    f.write(json.dumps({"argv": sys.argv[1:], "procid": os.environ.get("SLURM_PROCID"), "head": os.environ.get("HEAD_NODE")}) + "\\n")\n`,
      );
      chmodSync(py, 0o755);
      const cfg = path.join(dir, "train.yaml");
      // the demo config with its (heuristic) train block replaced by a TRL one
      const demo = parseYaml(readFileSync(DEMO, "utf8")) as Record<string, unknown>;
      writeFileSync(cfg, stringifyYaml({ ...demo, train: { name: "slurmtest", python: { trl: py }, slurm: { time: "00:10:00" } } }));
      const runDir = path.join(dir, "demo-sliced", "run"); // the merged SFT set of the test above
      const r = await cli(["--config", cfg, "--run-dir", runDir, "--stage", "train", "--render", "slurm"]);
      expect(r.code, r.err).toBe(0);
      const script = /slurm: (\S+)/.exec(r.out)?.[1];
      expect(script, r.out).toBeDefined();
      expect(readFileSync(script!, "utf8")).toContain("#SBATCH --gres=gpu:1");

      const id = cluster.cmd("sbatch", ["--parsable", script!]).trim().split(";")[0];
      const [job] = await cluster.waitEnded(id);
      const out = path.join(runDir, "train", "slurmtest", `slurm-${id}.out`);
      expect([job.state, job.exitCode], existsSync(out) ? readFileSync(out, "utf8") : "(no output file)").toEqual(["COMPLETED", "0:0"]);
      const calls = readFileSync(rec, "utf8").trim().split("\n").map((l) => JSON.parse(l));
      expect(calls).toHaveLength(1);
      const host = cluster.cmd("scontrol", ["show", "hostnames", cluster.cmd("sinfo", ["-h", "-o", "%N"]).trim()]).trim();
      expect(calls[0].procid).toBe("0");
      expect(calls[0].head).toBe(host);
      const cfgDir = path.join(runDir, "train", "slurmtest", "configs");
      expect(calls[0].argv.slice(-3)).toEqual([SFT_SCRIPT, "--config", path.join(cfgDir, "sft_config.json")]);
    },
    LONG,
  );

  it(
    "a task cancelled mid-way (held at a model call) fails the merge with its slice named; resubmitting that slice completes the same bytes",
    async () => {
      // hold every corruption request for one problem of slice 2 until released
      const sliced = path.join(dir, "demo-sliced", "run");
      const target = 2;
      const sliceRecs: { code: string }[] = [];
      const m = await readManifest(sliced, "filter", { index: target, count: N });
      for await (const r of readStageRecords(sliced, "filter", { manifest: m! })) sliceRecs.push(r as any);
      expect(sliceRecs.length).toBeGreaterThan(0);
      const heldCode = sliceRecs[0].code;
      let holding = true;
      let release!: () => void;
      const released = new Promise<void>((r) => (release = r));
      let seen!: () => void;
      const heldSeen = new Promise<void>((r) => (seen = r));
      const script = async (req: ScriptRequest): Promise<ScriptedReply> => {
        const text = req.messages.at(-1)?.content ?? "";
        if (holding && promptKind(text) === "corrupt" && text.includes(heldCode)) {
          seen();
          await released;
          return { drop: true };
        }
        return utgenModel(req);
      };
      let server: OpenAIServer | undefined;
      try {
        server = await startOpenAIServer({ script });
        const config = (runDir: string) => {
          const f = path.join(dir, `llm-${path.basename(path.dirname(runDir))}.yaml`);
          writeFileSync(
            f,
            [
              `run: {dir: ${JSON.stringify(runDir)}, shard_size: 5}`,
              `source: {kind: local, path: ${JSON.stringify(DEMO_ROWS)}}`,
              `llm: {backend: openai, base_urls: [${JSON.stringify(server!.url)}], model: test-model, max_retries: 0}`,
              "filter: {tokenizer: qwen, max_prompt_tokens: 2048}",
              "perturb: {n_bugs: 2}",
              "attack: {attempts: 3}",
              "",
            ].join("\n"),
          );
          return f;
        };
        const whole = path.join(dir, "llm-whole", "run");
        const slicedLlm = path.join(dir, "llm-sliced", "run");
        holding = false;
        const w = await cli(["--config", config(whole)]);
        expect(w.code, w.err).toBe(0);
        holding = true;

        const cfg = config(slicedLlm);
        const first = await submit(["--config", cfg]);
        await heldSeen; // slice 2's task is inside perturb, waiting for the held answer
        const taskId = `${first.array}_${target}`;
        expect(cluster.jobs(taskId).map((t) => t.state)).toEqual(["RUNNING"]);
        cluster.cmd("scancel", [taskId]);
        const tasks = await cluster.waitEnded(first.array);
        expect(tasks.map((t) => [t.id, t.state]).sort()).toEqual([0, 1, 2, 3].map((i) => [`${first.array}_${i}`, i === target ? "CANCELLED" : "COMPLETED"]));
        // the merge still runs (afterany) and names the slice that has not finished
        const [merge1] = await cluster.waitEnded(first.merge);
        const merge1Log = log(slicedLlm, new RegExp(`^merge\\.${first.merge}\\.out$`));
        expect(merge1.state, merge1Log).toBe("FAILED");
        expect(merge1Log).toContain(`perturb: shard(s) ${target} of ${N} have not finished`);
        expect(merge1Log).toContain("nothing was merged");

        holding = false;
        release();
        const again = await submit(["--config", cfg, "--shard", `${target}/${N}`]);
        const [task] = await cluster.waitEnded(again.array);
        expect([task.id, task.state]).toEqual([`${again.array}_${target}`, "COMPLETED"]);
        const [merge2] = await cluster.waitEnded(again.merge);
        expect(merge2.state, log(slicedLlm, new RegExp(`^merge\\.${again.merge}\\.out$`))).toBe("COMPLETED");
        // the cancelled task's finished stage is reused, not recomputed
        expect(log(slicedLlm, new RegExp(`^shard-${target}\\.${again.array}\\.out$`))).toContain("filter: up to date");

        expect(sftFiles(slicedLlm)).toEqual(sftFiles(whole));
      } finally {
        release?.();
        await server?.close();
      }
    },
    LONG,
  );
});
