/**
 * trainers/sft_train.py without torch: it compiles, its argument parsing, config loading, data loading
 * and validation (stdlib json), environment report and progress records run here; the training path
 * imports the heavy packages only when it starts, and fails with an error the supervisor recognises.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { promises as fsp } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import { resolvePlan } from "../trainers/config.ts";
import { SFT_SCRIPT, writeRenders } from "../trainers/render.ts";
import { diagnose } from "../trainers/supervise.ts";

const execFileP = promisify(execFile);
const FIX = path.resolve(__dirname, "fixtures/train");
let tmp: string;

async function py(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileP("python3", args, { cwd: tmp });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

beforeAll(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), "train-script-"));
});
afterAll(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

async function renderedConfig(cfg: Record<string, unknown>): Promise<string> {
  const p = resolvePlan({ data_dir: path.join(FIX, "sft"), ...cfg }, path.join(tmp, `run-${Math.random().toString(36).slice(2)}`));
  return (await writeRenders(p)).sftConfig;
}

async function dataDir(trainRows: string[]): Promise<string> {
  const d = await fsp.mkdtemp(path.join(tmp, "data-"));
  await fsp.writeFile(path.join(d, "train.prompt_completion.jsonl"), trainRows.join("\n") + "\n");
  return d;
}

describe("sft_train.py", () => {
  it("compiles and answers --help without the training packages", async () => {
    expect((await py(["-m", "py_compile", SFT_SCRIPT])).code).toBe(0);
    const help = await py([SFT_SCRIPT, "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("--check-data");
    expect(help.stdout).toContain("--resume-from-checkpoint");
    const none = await py([SFT_SCRIPT]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("--config is required");
  });

  it("--check-data loads the rendered config and both data variants with the stdlib", async () => {
    const pc = JSON.parse((await py([SFT_SCRIPT, "--config", await renderedConfig({ eval: true }), "--check-data"])).stdout);
    expect(pc).toMatchObject({ format: "prompt_completion", train: { rows: 4 }, eval: { rows: 2 } });
    expect(pc.train.file).toBe(path.join(FIX, "sft", "train.prompt_completion.jsonl"));
    const msg = JSON.parse((await py([SFT_SCRIPT, "--config", await renderedConfig({ data_format: "messages" }), "--check-data"])).stdout);
    expect(msg).toMatchObject({ format: "messages", train: { rows: 4 } });
    expect(msg).not.toHaveProperty("eval");
  });

  it.each([
    ["{not json", /:2: not valid JSON \(.*\); re-run the emit-sft stage$/],
    [JSON.stringify({ messages: [] }), /:2: a prompt_completion row needs 'prompt' and 'completion' \(found \['messages'\]\)$/],
    [JSON.stringify({ prompt: [{ role: "user", content: "q" }], completion: [{ role: "user", content: "a" }] }), /:2: 'completion' must hold non-empty assistant message\(s\) only$/],
    [JSON.stringify({ prompt: [{ role: "assistant", content: "q" }], completion: [{ role: "assistant", content: "a" }] }), /:2: the prompt must end with a user message$/],
    [JSON.stringify({ prompt: [{ role: "robot", content: "q" }], completion: [{ role: "assistant", content: "a" }] }), /:2: prompt\[0\] must be \{"role": system\|user\|assistant, "content": string\}$/],
  ])("a bad row is one error line with file:line (%s)", async (bad, want) => {
    const good = (await fsp.readFile(path.join(FIX, "sft", "train.prompt_completion.jsonl"), "utf8")).split("\n")[0];
    const cfg = await renderedConfig({ data_dir: await dataDir([good, bad]) });
    const r = await py([SFT_SCRIPT, "--config", cfg, "--check-data"]);
    expect(r.code).toBe(2);
    const lines = r.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^error: .*train\.prompt_completion\.jsonl/);
    expect(lines[0]).toMatch(want);
  });

  it("a missing or broken config is one error line", async () => {
    const missing = await py([SFT_SCRIPT, "--config", path.join(tmp, "nope.json"), "--check-data"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr.trim()).toMatch(/^error: config .*nope\.json does not exist; render it with the train stage \(--dry-run\)$/);
    const f = path.join(tmp, "partial.json");
    await fsp.writeFile(f, JSON.stringify({ model: { name_or_path: "m" }, lora: {}, data: { format: "text" }, sft: { output_dir: "/o" } }));
    const bad = await py([SFT_SCRIPT, "--config", f, "--check-data"]);
    expect(bad.stderr.trim()).toMatch(/data\.format must be prompt_completion or messages, not 'text'$/);
  });

  it("--env-report lists versions (null when absent) without importing anything heavy", async () => {
    const r = await py([SFT_SCRIPT, "--env-report"]);
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.stdout);
    expect(rep.python).toMatch(/^3\.\d+\.\d+$/);
    expect(Object.keys(rep.packages)).toEqual(expect.arrayContaining(["torch", "transformers", "trl", "peft", "bitsandbytes", "accelerate", "deepspeed"]));
    if (rep.packages.torch === null) expect(rep.cuda).toBeNull();
  });

  it("progress records are JSON-safe (NaN/inf → null, 0-d tensors → numbers)", async () => {
    const code = [
      "import json, sys",
      `sys.path.insert(0, ${JSON.stringify(path.dirname(SFT_SCRIPT))})`,
      "import sft_train as s",
      "class T:\n    def item(self): return 0.25",
      "r = s.progress_record('log', 10, 40, 0.25, {'loss': float('nan'), 'grad_norm': T(), 'learning_rate': 5e-06, 'x': float('inf')})",
      "print(s.PROGRESS_PREFIX + json.dumps(r, allow_nan=False))",
    ].join("\n");
    const r = await py(["-c", code]);
    expect(r.stderr).toBe("");
    const rec = JSON.parse(r.stdout.replace("[utgen] ", ""));
    expect(rec).toMatchObject({ event: "log", step: 10, max_steps: 40, epoch: 0.25, loss: null, grad_norm: 0.25, learning_rate: 5e-6, x: null });
  });

  it("maps the warmup ratio to the installed transformers (warmup_steps float on 5.x, warmup_ratio on 4.x)", async () => {
    const code = [
      "import json, sys",
      `sys.path.insert(0, ${JSON.stringify(path.dirname(SFT_SCRIPT))})`,
      "import sft_train as s",
      "print(json.dumps([s.compat_sft_kwargs({'warmup_steps': 0.03, 'seed': 1}, 5), s.compat_sft_kwargs({'warmup_steps': 0.03}, 4), s.compat_sft_kwargs({'warmup_steps': 0}, 4)]))",
    ].join("\n");
    const r = await py(["-c", code]);
    expect(JSON.parse(r.stdout)).toEqual([{ warmup_steps: 0.03, seed: 1 }, { warmup_ratio: 0.03 }, { warmup_steps: 0 }]);
    const cfg = JSON.parse(await fsp.readFile(await renderedConfig({ warmup_ratio: 0.03 }), "utf8"));
    expect(cfg.sft.warmup_steps).toBe(0.03);
    expect(cfg.sft).not.toHaveProperty("warmup_ratio");
  });

  it("the training path imports torch only when training starts; its failure is recognised", async () => {
    const r = await py([SFT_SCRIPT, "--config", await renderedConfig({})]);
    const missing = /No module named '(torch|datasets|transformers|peft|trl|packaging)'/.test(r.stderr);
    if (!missing) {
      console.warn("train-script: training packages are installed here; skipping the missing-package path");
      return;
    }
    expect(r.code).toBe(1);
    expect(diagnose(r.stderr.trim().split("\n"), r.code, null)).toMatch(/package is missing in the trainer env/);
  });
});
