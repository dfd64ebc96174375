/**
 * Scale-out on SLURM: the data stages as an array job, one `--shard i/N` slice per task, and a `merge` job
 * that starts when the array has ended.
 *
 *   --render slurm   write <run>/slurm/array.sh and merge.sh and print them with the sbatch commands
 *   --submit slurm   write them and submit both (the merge with --dependency=afterany:<array job>)
 *   --submit slurm --shard i/N   resubmit slice i only (a cancelled or failed task), with a new merge
 *
 * Every task runs the runner with the flags of the submitting command (config, --set, --input, stage
 * range, …) from the submitting folder, so a task is the same command a user would run by hand with
 * `--shard i/N`. The merge waits with `afterany`, not `afterok`: when a slice failed it still runs and its
 * log names the slices that have not finished (a pending `afterok` merge would wait forever); after
 * resubmitting them, the new merge completes the run. Resources come from the config's `slurm:` block.
 */
import { execFileSync } from "node:child_process";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { UserError } from "./errors.ts";
import { atomicWrite, readJson, writeJson } from "./util.ts";
import { DATA_STAGES } from "./registry.ts";
import { shQuote } from "../trainers/render.ts";

export const SCALE_OUT_KINDS = ["slurm"] as const;

export const slurmConfigSchema = z.strictObject({
  /** Array size N: slices `--shard 0/N … (N-1)/N`. */
  shards: z.number().int().positive().default(16),
  job_name: z.string().min(1).optional(),
  partition: z.string().min(1).optional(),
  account: z.string().min(1).optional(),
  qos: z.string().min(1).optional(),
  time: z.string().min(1).optional(),
  cpus_per_task: z.number().int().positive().optional(),
  mem: z.string().min(1).optional(),
  constraint: z.string().min(1).optional(),
  /** Extra `#SBATCH` lines, without the prefix (e.g. `--exclusive`). */
  extra: z.array(z.string().min(1)).default([]),
  /** Shell lines run before the runner (e.g. `module load nodejs/20`). */
  setup: z.array(z.string()).default([]),
});
export type SlurmConfig = z.infer<typeof slurmConfigSchema>;

const RUN_MJS = path.join(path.dirname(fileURLToPath(import.meta.url)), "run.mjs");

/** The runner flags a task repeats (everything that decides what the runner computes). */
const TASK_FLAGS = ["config", "run-dir", "input", "set", "limit", "force", "stage", "from", "to", "unsafe-no-sandbox"] as const;
/** What the merge job needs: the same config (emit-sft's finalize reads it) and run folder. */
const MERGE_FLAGS = ["config", "run-dir", "input", "set"] as const;

export interface ScaleOutRequest {
  mode: "render" | "submit";
  kind: string;
  /** The parsed runner flags of the submitting command. */
  flags: Record<string, any>;
  /** Resolved config (root). */
  root: Record<string, any>;
  runDir: string;
  /** The data stages the tasks run, in order. */
  stages: string[];
  /** `--shard i/N` given with --submit: that slice only, N from it. */
  shard: { index: number; count: number } | null;
  stdout: (line: string) => void;
  /** The submitting folder (default process.cwd()); tasks run there. */
  cwd?: string;
  /** sbatch (default: `sbatch` on PATH). */
  sbatch?: string;
}

export interface SlurmScripts {
  dir: string;
  array: { file: string; text: string };
  merge: { file: string; text: string };
  count: number;
}

function flagArgs(flags: Record<string, any>, names: readonly string[]): string[] {
  const out: string[] = [];
  for (const k of names) {
    const v = flags[k];
    if (v === undefined || v === false) continue;
    if (v === true) out.push(`--${k}`);
    else for (const x of Array.isArray(v) ? v : [v]) out.push(`--${k}`, String(x));
  }
  return out;
}

/** The two batch scripts (pure: text only). */
export function renderSlurmScripts(req: Omit<ScaleOutRequest, "mode" | "stdout" | "sbatch">): SlurmScripts {
  const cfg: SlurmConfig = slurmConfigSchema.parse(req.root.slurm ?? {});
  const count = req.shard?.count ?? cfg.shards;
  const cwd = req.cwd ?? process.cwd();
  const dir = path.join(req.runDir, "slurm");
  const name = cfg.job_name ?? `utgen-${path.basename(req.runDir)}`;
  const sb = (line: string) => `#SBATCH ${line}`;
  const resources = [
    ...(cfg.partition ? [sb(`--partition=${cfg.partition}`)] : []),
    ...(cfg.account ? [sb(`--account=${cfg.account}`)] : []),
    ...(cfg.qos ? [sb(`--qos=${cfg.qos}`)] : []),
    ...(cfg.time ? [sb(`--time=${cfg.time}`)] : []),
    ...(cfg.cpus_per_task ? [sb(`--cpus-per-task=${cfg.cpus_per_task}`)] : []),
    ...(cfg.mem ? [sb(`--mem=${cfg.mem}`)] : []),
    ...(cfg.constraint ? [sb(`--constraint=${cfg.constraint}`)] : []),
    ...cfg.extra.map(sb),
  ];
  const body = (argv: string[]) => [
    "set -euo pipefail",
    `cd ${shQuote(cwd)}`,
    ...cfg.setup,
    // no terminal here: one progress line per stage every 60 s (docs/cluster.md)
    'export UTGEN_PROGRESS_INTERVAL_S="${UTGEN_PROGRESS_INTERVAL_S:-60}"',
    `exec node ${argv.map(shQuote).join(" ")}`,
  ];
  const stageText = req.stages.length > 1 ? `${req.stages[0]} → ${req.stages.at(-1)}` : req.stages[0];
  const arrayFile = path.join(dir, "array.sh");
  const mergeFile = path.join(dir, "merge.sh");
  const taskArgv = [RUN_MJS, ...flagArgs(req.flags, TASK_FLAGS)];
  const array = [
    "#!/bin/bash",
    `# utgen-pipeline: slice $SLURM_ARRAY_TASK_ID of ${count} of ${stageText} per array task (written by --submit/--render slurm).`,
    `# Submit: sbatch ${shQuote(arrayFile)}; resubmit some slices: sbatch --array=3,7 ${shQuote(arrayFile)}`,
    sb(`--job-name=${name}`),
    sb(`--array=0-${count - 1}`),
    sb(`--output=${path.join(dir, "shard-%a.%A.out")}`),
    ...resources,
    ...body(taskArgv).slice(0, -1),
    // the slice count is fixed here (not $SLURM_ARRAY_TASK_COUNT): a resubmitted subset keeps its slices
    `exec node ${taskArgv.map(shQuote).join(" ")} --shard "\${SLURM_ARRAY_TASK_ID}/${count}"`,
    "",
  ].join("\n");
  const merge = [
    "#!/bin/bash",
    `# utgen-pipeline: merge the ${count} slices of ${stageText} (written by --submit/--render slurm).`,
    `# Submit after the array: sbatch --dependency=afterany:<array job id> ${shQuote(mergeFile)}`,
    sb(`--job-name=${name}-merge`),
    sb(`--output=${path.join(dir, "merge.%j.out")}`),
    ...resources,
    ...body([RUN_MJS, ...flagArgs(req.flags, MERGE_FLAGS), "--stage", "merge"]),
    "",
  ].join("\n");
  return { dir, count, array: { file: arrayFile, text: array }, merge: { file: mergeFile, text: merge } };
}

async function writeScripts(s: SlurmScripts): Promise<void> {
  await fsp.mkdir(s.dir, { recursive: true });
  for (const f of [s.array, s.merge]) {
    await atomicWrite(f.file, f.text);
    await fsp.chmod(f.file, 0o755);
  }
}

/** `--render slurm` / `--submit slurm`. Returns the exit code. */
export async function scaleOut(req: ScaleOutRequest): Promise<number> {
  if (!(SCALE_OUT_KINDS as readonly string[]).includes(req.kind)) {
    throw new UserError(`--${req.mode} ${req.kind}: expected one of ${SCALE_OUT_KINDS.join(", ")}`);
  }
  const other = req.stages.filter((s) => !(DATA_STAGES as readonly string[]).includes(s));
  if (other.length) {
    throw new UserError(
      `--${req.mode} ${req.kind} runs the data stages (${DATA_STAGES.join(" → ")}) as an array job, not ${other.join(", ")}${other.includes("train") ? "; for training: --stage train --render slurm (docs/training.md)" : ""}`,
    );
  }
  const scripts = renderSlurmScripts(req);
  await writeScripts(scripts);
  const rel = (f: string) => shQuote(path.relative(req.cwd ?? process.cwd(), f) || f);
  if (req.mode === "render") {
    for (const f of [scripts.array, scripts.merge]) {
      req.stdout(`# ---- ${f.file}`);
      for (const line of f.text.trimEnd().split("\n")) req.stdout(line);
    }
    req.stdout(`# ---- submit (or run the same command with --submit slurm):`);
    req.stdout(`jid=$(sbatch --parsable ${rel(scripts.array.file)}) && sbatch --dependency=afterany:\${jid%%;*} ${rel(scripts.merge.file)}`);
    return 0;
  }
  const sbatch = req.sbatch ?? "sbatch";
  const arrayArgs = req.shard ? [`--array=${req.shard.index}`] : [];
  const arrayId = submit(sbatch, [...arrayArgs, scripts.array.file]);
  let mergeId: string;
  try {
    mergeId = submit(sbatch, [`--dependency=afterany:${arrayId}`, scripts.merge.file]);
  } catch (e) {
    throw new UserError(
      `array job ${arrayId} is submitted, but the merge job was not (${(e as Error).message}); submit it: sbatch --dependency=afterany:${arrayId} ${rel(scripts.merge.file)}`,
    );
  }
  const slices = req.shard ? `slice ${req.shard.index} of ${scripts.count}` : `slices 0-${scripts.count - 1} of ${scripts.count}`;
  await recordSubmission(scripts.dir, { at: new Date().toISOString(), array: arrayId, merge: mergeId, slices: req.shard ? [req.shard.index] : "all", count: scripts.count, stages: req.stages });
  req.stdout(
    `submitted array job ${arrayId} (${slices}: ${req.stages.join(" → ")}) and merge job ${mergeId} (starts when the array has ended); logs: ${path.join(scripts.dir, "*.out")}; watch: squeue -j ${arrayId},${mergeId}`,
  );
  return 0;
}

/** `sbatch --parsable …` → the job id (`12345` of `12345;cluster`). */
function submit(sbatch: string, args: string[]): string {
  let out: string;
  try {
    out = execFileSync(sbatch, ["--parsable", ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === "ENOENT") {
      throw new UserError(`${sbatch} not found: --submit slurm needs the SLURM client commands on this machine; or use --render slurm and submit the scripts where sbatch is`);
    }
    const why = (err.stderr ?? "").trim().split("\n").filter(Boolean).at(-1) ?? err.message.split("\n")[0];
    throw new UserError(`sbatch ${args.join(" ")} failed: ${why}`);
  }
  const id = out.trim().split(";")[0];
  if (!/^\d+$/.test(id)) throw new UserError(`sbatch printed ${JSON.stringify(out.trim().slice(0, 80))}, not a job id`);
  return id;
}

async function recordSubmission(dir: string, entry: Record<string, unknown>): Promise<void> {
  const file = path.join(dir, "submissions.json");
  const old = (await readJson<unknown[]>(file)) ?? [];
  await writeJson(file, [...old, entry]);
}
