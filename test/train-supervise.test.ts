/**
 * supervise() against small real child processes (python3 -c …): partial last lines, exit codes, a child
 * that cannot start, checkpoints that are incomplete, complete, or rotated away while it runs.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { promises as fsp } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { readJson, readJsonlAll } from "../pipeline/util.ts";
import { CheckpointRegistry, type CheckpointRegistryFile } from "../trainers/registry.ts";
import { supervise } from "../trainers/supervise.ts";

let dir: string;
beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), "train-supervise-"));
});
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

function run(script: string, lines: string[] = []) {
  const out = path.join(dir, "output");
  return supervise({
    argv: ["python3", "-c", script, out],
    env: { ...process.env, PYTHONUNBUFFERED: "1" },
    cwd: dir,
    logFile: path.join(dir, "train.log"),
    metricsFile: path.join(dir, "metrics.jsonl"),
    outputDir: out,
    registry: new CheckpointRegistry(path.join(dir, "checkpoints.json"), "sv", "base/model"),
    effectiveBatch: 16,
    stdout: (l) => lines.push(l),
    pollMs: 50,
  });
}

const PY_CKPT = `
import json, os, sys, time
out = sys.argv[1]
def ckpt(step, complete=True):
    d = os.path.join(out, f"checkpoint-{step}")
    os.makedirs(d, exist_ok=True)
    json.dump({"r": 16}, open(os.path.join(d, "adapter_config.json"), "w"))
    if complete:
        json.dump({"global_step": step, "epoch": step / 10}, open(os.path.join(d, "trainer_state.json"), "w"))
def wait_registered(step):
    for _ in range(400):
        try:
            if any(c["step"] == step for c in json.load(open(os.path.join(os.path.dirname(out), "checkpoints.json")))["checkpoints"]):
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.025)
    sys.exit(9)
`;

describe("supervise", () => {
  it("keeps a last line without a newline, passes the exit code on, and records dict-only metrics", async () => {
    const lines: string[] = [];
    const res = await run(
      "import sys\nprint(\"{'loss': '1.5', 'learning_rate': '5e-06', 'epoch': '0.5'}\")\nsys.stdout.write('ValueError: no newline at the end')\nsys.exit(3)",
      lines,
    );
    expect(res.exitCode).toBe(3);
    expect(res.signal).toBeNull();
    expect(res.interrupted).toBe(false);
    expect(res.tail[res.tail.length - 1]).toBe("ValueError: no newline at the end");
    expect(res.cause).toBeNull();
    expect(await fsp.readFile(path.join(dir, "train.log"), "utf8")).toContain("ValueError: no newline at the end\n=== exit 3");
    const m = await readJsonlAll(path.join(dir, "metrics.jsonl"));
    expect(m).toHaveLength(1);
    expect(m[0]).toMatchObject({ source: "stdout", loss: 1.5, learning_rate: 5e-6, epoch: 0.5 });
  });

  it("a trainer that cannot start is reported, not thrown", async () => {
    const res = await supervise({
      argv: [path.join(dir, "no-such-python"), "x.py"],
      env: process.env,
      cwd: dir,
      logFile: path.join(dir, "train.log"),
      metricsFile: path.join(dir, "metrics.jsonl"),
      outputDir: path.join(dir, "output"),
      registry: new CheckpointRegistry(path.join(dir, "checkpoints.json"), "sv", "b"),
      effectiveBatch: 16,
      stdout: () => {},
    });
    expect(res.spawnError).toMatch(/^cannot start .*no-such-python: spawn .* ENOENT$/);
  });

  it("registers complete checkpoints while the child runs, skips incomplete ones, drops rotated ones", async () => {
    const lines: string[] = [];
    const res = await run(
      PY_CKPT +
        `
ckpt(10)
wait_registered(10)          # seen while the child still runs (periodic scan, no save line printed)
ckpt(20, complete=False)     # adapter written, trainer_state.json not yet: not a checkpoint
ckpt(30)
wait_registered(30)
import shutil; shutil.rmtree(os.path.join(out, "checkpoint-10"))   # save_total_limit rotation
time.sleep(0.3)
`,
      lines,
    );
    expect(res.exitCode).toBe(0);
    const reg = (await readJson<CheckpointRegistryFile>(path.join(dir, "checkpoints.json")))!;
    expect(reg).toMatchObject({ train_name: "sv", base_model: "base/model" });
    expect(reg.checkpoints.map((c) => [c.name, c.step, c.epoch])).toEqual([["sv-step30", 30, 3]]);
    expect(res.checkpoints.map((c) => c.step)).toEqual([10, 30]);
    expect(lines).toContain("train: checkpoint sv-step10 was removed by save_total_limit; unregistered");
    expect(lines.filter((l) => l.includes("registered (epoch")).length).toBe(2);
  });
});
