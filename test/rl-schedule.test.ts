/**
 * The UTRL schedule: the paper's phases as data (inits and counterparts chained through each phase's
 * selected checkpoint, Table 4's hyper-parameters in every rendered GRPO config), the dry run (config checks
 * by the GRPO script itself and a reward round trip through the real service and Python client), the SLURM
 * script for a multi-node schedule run with stand-in srun / scontrol / npx / python, and a small end-to-end
 * schedule with stand-ins for torch / trl / peft / accelerate (a scripted policy): rollouts sampled from a
 * loopback OpenAI server → phase 1 launched through `--stage utrl --phase 1` (in-process reward service,
 * supervised trainer, checkpoints registered) → rl-validate → select (best link) → phase 2's rollouts sample
 * the selected checkpoint → phase 2 trains on code rewards.
 */
import { execFile, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../pipeline/cli.ts";
import { renderGrpoConfig, resolveUtrlPlan } from "../trainers/utrl.ts";
import { checkGrpoEnvironment } from "../stages/rl/utrl.ts";
import type { EnvReport } from "../trainers/preflight.ts";
import { UserError } from "../pipeline/errors.ts";
import { startOpenAIServer, type OpenAIServer } from "./servers/openai.ts";

const execFileP = promisify(execFile);
const STUBS = path.resolve(__dirname, "fixtures/train/stubs");
const TRAINERS = path.resolve(__dirname, "../trainers");
let tmp: string;

beforeAll(() => {
  tmp = mkdtempSync(path.join(tmpdir(), "utrl-schedule-"));
});
afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

async function run(yaml: string, args: string[]) {
  const cfg = path.join(tmp, `c-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(cfg, yaml);
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(["--config", cfg, ...args], { stdout: (l) => out.push(l), stderr: (l) => err.push(l) });
  return { code, out, err };
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

describe("the schedule as data", () => {
  it("the paper's phases: tester 50 → coder 370 → tester 100, each starting from the last selected checkpoint of its role", () => {
    const p = resolveUtrlPlan({ name: "u" }, "/runs/x");
    expect(p.phases.map((ph) => [ph.name, ph.role, ph.steps, ph.learningRate])).toEqual([
      ["u-p1-tester", "tester", 50, 1e-6],
      ["u-p2-coder", "coder", 370, 1e-6],
      ["u-p3-tester", "tester", 100, 5e-6],
    ]);
    const [p1, p2, p3] = p.phases;
    expect(p1.init).toMatchObject({ base: "Qwen/Qwen3-4B", adapter: null });
    expect(p1.other).toMatchObject({ base: "Qwen/Qwen3-4B", adapter: null });
    // The coder phase is rewarded by the tester phase 1 selected; the second tester phase continues it and is
    // rewarded against the coder phase 2 selected (full fine-tuning: the checkpoint folder is the model).
    expect(p2.other.base).toBe("/runs/x/train/u-p1-tester/best");
    expect(p2.init.base).toBe("Qwen/Qwen3-4B");
    expect(p3.init.base).toBe("/runs/x/train/u-p1-tester/best");
    expect(p3.other.base).toBe("/runs/x/train/u-p2-coder/best");
    expect(p.phases.map((ph) => ph.tasksNeeded)).toEqual([50 * 128, 370 * 128, 100 * 128]);
    expect([p.completionsPerStep, p.perDevice, p.world, p.gradAccum]).toEqual([1024, 8, 8, 16]);
    // LoRA: the base stays, the adapter carries the phase.
    const lora = resolveUtrlPlan({ name: "u", profile: "grpo-lora-1gpu", tester: { model: "qwen3-14b" }, coder: { model: "qwen3-8b" } }, "/r");
    expect(lora.phases[2].init).toMatchObject({ base: "Qwen/Qwen3-14B", adapter: "/r/train/u-p1-tester/best" });
    expect(lora.phases[2].other).toMatchObject({ base: "Qwen/Qwen3-8B", adapter: "/r/train/u-p2-coder/best" });
  });

  it("every phase's GRPO config carries Table 4 and the role's reward function", () => {
    const p = resolveUtrlPlan({ name: "u" }, "/runs/x");
    for (const ph of p.phases) {
      const c = renderGrpoConfig(p, ph) as any;
      expect(c.role).toBe(ph.role);
      expect(c.reward.function).toBe(ph.role === "tester" ? "utrl_tester_reward" : "utrl_coder_reward");
      expect(c.grpo).toMatchObject({ optim: "adamw_torch", learning_rate: ph.learningRate, beta: 1e-3, loss_type: "grpo", scale_rewards: "group", warmup_steps: 0.01, temperature: 1, num_generations: 8, max_steps: ph.steps, remove_unused_columns: false, use_vllm: true, vllm_mode: "colocate" });
      expect(c.grpo.per_device_train_batch_size * c.grpo.gradient_accumulation_steps * 8).toBe(128 * 8);
    }
  });

  it("the shipped paper configs render their schedules", async () => {
    for (const [name, phases] of [["utrl-qwen3-4b", 3], ["utrl-qwen3-14b", 1]] as const) {
      const runDir = path.join(tmp, `paper-${name}`);
      const out: string[] = [];
      const code = await main(["--config", path.resolve(__dirname, `../configs/paper/${name}.yaml`), "--stage", "utrl", "--render", "all", "--run-dir", runDir], { stdout: (l) => out.push(l), stderr: () => {} });
      expect(code, name).toBe(0);
      expect(out.filter((l) => l.startsWith("phase: ")), name).toHaveLength(phases);
      const plan = JSON.parse(readFileSync(path.join(runDir, "utrl", name, "plan.json"), "utf8"));
      expect(plan.batch.completions_per_step).toBe(1024);
      expect(plan.tasks.train).toBe(path.join(runDir, "rl-tasks", "train.jsonl"));
    }
  });

  it("impossible batch splits and set-ups are one-line errors", () => {
    const err = (raw: unknown) => {
      try {
        resolveUtrlPlan(raw, "/r");
      } catch (e) {
        expect(e).toBeInstanceOf(UserError);
        return (e as Error).message;
      }
      return "no error";
    };
    expect(err({ per_device_batch_size: 3, num_generations: 16 })).toMatch(/^utrl: per_device_batch_size 3 × 8 training GPU\(s\) = 24 completions per micro-step is not a multiple of num_generations 16/);
    expect(err({ prompts_per_step: 4, per_device_batch_size: 8 })).toMatch(/^utrl: prompts_per_step 4 × num_generations 8 = 32 completions per step is not a multiple of per_device_batch_size 8 × 8 GPU\(s\) = 64/);
    expect(err({ profile: "grpo-full-8gpu-server", nodes: 2 })).toMatch(/^utrl\.generation: server runs `trl vllm-serve` on GPUs of the one node/);
    expect(err({ schedule: [] })).toMatch(/^utrl\.schedule: /);
    const server = resolveUtrlPlan({ profile: "grpo-full-8gpu-server", per_device_batch_size: 8, prompts_per_step: 56 }, "/r");
    expect([server.world, server.vllmGpus, server.gradAccum]).toEqual([7, 1, 8]);
  });
});

describe("GRPO launch preflight (checkGrpoEnvironment on environment reports)", () => {
  const good = (over: Partial<EnvReport> = {}): EnvReport => ({
    python: "3.11.9",
    executable: "/venv/bin/python",
    packages: { torch: "2.5.1", transformers: "4.57.0", trl: "0.24.0", accelerate: "1.2.0", datasets: "3.0.0", vllm: "0.11.0", peft: "0.14.0", deepspeed: "0.16.0" },
    cuda: { available: true, version: "12.4", device_count: 8, bf16: true },
    gpus: Array.from({ length: 8 }, (_, i) => ({ index: i, name: "NVIDIA H100", total_bytes: 80e9, capability: "9.0" })),
    torch_error: null,
    ...over,
  });
  const full = resolveUtrlPlan({ name: "u" }, "/r"); // grpo-full-8gpu: ZeRO-3, 8 GPUs
  const lora = resolveUtrlPlan({ name: "u", profile: "grpo-lora-1gpu" }, "/r");

  it("a complete environment passes; each missing or old package is one line naming it and the fix", () => {
    expect(checkGrpoEnvironment(full, good())).toEqual([]);
    expect(checkGrpoEnvironment(lora, good())).toEqual([]);
    const old = checkGrpoEnvironment(full, good({ packages: { ...good().packages, trl: "0.20.0" } }));
    expect(old).toHaveLength(1);
    expect(old[0]).toMatch(/^trl 0\.20\.0 is older than the 0\.23\.0 /);
    expect(checkGrpoEnvironment(full, good({ packages: { ...good().packages, vllm: null } }))[0]).toMatch(/^vllm is not installed in \/venv\/bin\/python; create it:/);
    expect(checkGrpoEnvironment(lora, good({ packages: { ...good().packages, peft: null } }))[0]).toMatch(/^peft is not installed/);
    expect(checkGrpoEnvironment(full, good({ packages: { ...good().packages, peft: null } }))).toEqual([]); // full fine-tuning needs no peft
    expect(checkGrpoEnvironment(full, good({ packages: { ...good().packages, deepspeed: null } }))[0]).toMatch(/^deepspeed is not installed/); // ZeRO-3
    expect(checkGrpoEnvironment(lora, good({ packages: { ...good().packages, deepspeed: null } }))).toEqual([]);
    expect(checkGrpoEnvironment(full, good({ python: "3.9.18" }))[0]).toMatch(/^Python 3\.9\.18 .* too old/);
  });

  it("GPUs: none visible, fewer than the profile needs, no bf16", () => {
    expect(checkGrpoEnvironment(full, good({ cuda: { available: false, version: null, device_count: 0, bf16: false }, gpus: [] }))[0]).toMatch(/^no CUDA GPU is visible/);
    expect(checkGrpoEnvironment(full, good({ torch_error: "driver too old" }))[0]).toMatch(/^torch cannot initialise CUDA \(driver too old\)/);
    const two = checkGrpoEnvironment(full, good({ gpus: good().gpus.slice(0, 2) }));
    expect(two).toHaveLength(1);
    expect(two[0]).toMatch(/^utrl\.gpus_per_node is 8 but only 2 GPU\(s\) are visible/);
    const v100 = good({ cuda: { available: true, version: "12.4", device_count: 8, bf16: false }, gpus: good().gpus.map((g) => ({ ...g, name: "Tesla V100" })) });
    expect(checkGrpoEnvironment(full, v100)).toEqual(["GPU Tesla V100 has no bf16 support; set utrl.bf16: false or use an Ampere-or-newer GPU"]);
  });
});

describe("dry run and renders", () => {
  it("renders every file, checks each phase's config with the GRPO script, and round-trips the rewards through the service", async () => {
    const runDir = path.join(tmp, "dry");
    const r = await run(`run: {dir: ${runDir}}\nexecutor: {workers: 2}\nutrl: {name: u, gpu_memory_gb: 80}\n`, ["--stage", "utrl", "--dry-run"]);
    expect(r.err.filter((l) => l.startsWith("error"))).toEqual([]);
    expect(r.code).toBe(0);
    const text = r.out.join("\n");
    expect(text).toContain("utrl u: tester 50 → coder 370 → tester 100 steps; profile grpo-full-8gpu, full fine-tuning, vLLM colocate, zero3");
    expect(text).toContain("batch: 128 prompts × 8 generations = 1024 completions per step = 8 per device × 8 GPU(s) × 16 grad-accum; KL β 0.001");
    expect(text).toMatch(/reward round trip \(tester\): ok — utrl_tester_reward through http:\/\/127\.0\.0\.1:\d+ returned 0\.4500, 0\.0000/);
    expect(text).toMatch(/reward round trip \(coder\): ok — utrl_coder_reward through .* returned 1\.0000, 0\.5000, 0\.0000/);
    expect(r.out.filter((l) => l.includes("config check: ok"))).toHaveLength(3);
    expect(r.out.at(-1)).toBe("dry run: nothing launched");
    const dir = path.join(runDir, "utrl", "u");
    for (const f of ["plan.json", "schedule.sh", "sbatch.sh", "pipeline-config.yaml", "p1-tester/configs/grpo_config.json", "p2-coder/launch.sh", "p3-tester/configs/accelerate.yaml"]) expect(existsSync(path.join(dir, f)), f).toBe(true);
    for (const f of ["schedule.sh", "sbatch.sh", "p1-tester/launch.sh"]) expect(spawnSync("bash", ["-n", path.join(dir, f)]).status, f).toBe(0);
    const schedule = readFileSync(path.join(dir, "schedule.sh"), "utf8");
    const steps = schedule
      .split("\n")
      .filter((l) => l.startsWith("npx"))
      .map((l) => `${/--stage (\S+)/.exec(l)![1]} ${/--phase (\d+)/.exec(l)?.[1] ?? /select\.train=(\S+)/.exec(l)?.[1] ?? ""}`);
    expect(schedule).toContain("--stage utrl --phase 1 --resume");
    expect(steps).toEqual(["rl-tasks ", "rl-rollouts 1", "utrl 1", "rl-validate 1", "select u-p1-tester", "rl-rollouts 2", "utrl 2", "rl-validate 2", "select u-p2-coder", "rl-rollouts 3", "utrl 3", "rl-validate 3", "select u-p3-tester"]);
    // The scripts run the pipeline with the resolved config (absolute run folder).
    expect(readFileSync(path.join(dir, "pipeline-config.yaml"), "utf8")).toContain(`dir: ${runDir}`);
    const render = await run(`run: {dir: ${runDir}}\nutrl: {name: u}\n`, ["--stage", "utrl", "--render", "slurm"]);
    expect(render.out[0]).toBe(`==> ${path.join(dir, "sbatch.sh")} <==`);
    expect(render.out).toContain(readFileSync(path.join(dir, "sbatch.sh"), "utf8").split("\n")[2]);
    expect(render.out).toContain(`==> ${path.join(dir, "schedule.sh")} <==`);
    expect(render.out).toContain(`slurm: ${path.join(dir, "sbatch.sh")}  (submit: sbatch ${path.join(dir, "sbatch.sh")})`);
  });

  it("the multi-node SLURM script runs every phase in order, the reward service on the head node reachable by every task", async () => {
    const runDir = path.join(tmp, "slurm");
    const bin = path.join(tmp, "bin");
    mkdirSync(bin, { recursive: true });
    const log = path.join(tmp, "slurm-calls.log");
    const stub = (name: string, body: string) => {
      writeFileSync(path.join(bin, name), `#!/bin/bash\n${body}\n`);
      chmodSync(path.join(bin, name), 0o755);
    };
    stub("scontrol", 'printf "node-a\\nnode-b\\n"');
    stub("srun", `shift; for r in 0 1; do SLURM_PROCID=$r "$@"; done`); // --kill-on-bad-exit=1 bash -c '…'
    stub("npx", `echo "npx $*" >> ${log}; case "$*" in *rl-serve*) exec sleep 30;; esac`);
    stub("fakepy", `echo "python rank=\${SLURM_PROCID:-} url=\${UTRL_REWARD_URL:-} $*" >> ${log}`);
    const r = await run(
      `run: {dir: ${runDir}}\nutrl: {name: m, nodes: 2, gpus_per_node: 4, per_device_batch_size: 8, prompts_per_step: 64, schedule: [{role: tester, steps: 2}, {role: coder, steps: 3}], python: {trl: ${path.join(bin, "fakepy")}}, slurm: {partition: gpu, time: "1:00:00"}}\n`,
      ["--stage", "utrl", "--render", "all"],
    );
    expect(r.code).toBe(0);
    const sbatch = path.join(runDir, "utrl", "m", "sbatch.sh");
    const text = readFileSync(sbatch, "utf8");
    expect(text).toContain("#SBATCH --nodes=2");
    expect(text).toContain("#SBATCH --gres=gpu:4");
    expect(text).toContain("#SBATCH --partition=gpu");
    const res = spawnSync("bash", [sbatch], { env: { PATH: `${bin}:${process.env.PATH}`, SLURM_JOB_NODELIST: "node-[a-b]", HOME: tmp }, encoding: "utf8" });
    expect(res.stderr).toBe("");
    expect(res.status).toBe(0);
    const calls = readFileSync(log, "utf8").trim().split("\n");
    const stage = (l: string) => /--stage (\S+)/.exec(l)?.[1];
    expect(calls.filter((l) => l.startsWith("npx")).map(stage)).toEqual(["rl-tasks", "rl-rollouts", "rl-serve", "rl-validate", "select", "rl-rollouts", "rl-serve", "rl-validate", "select"]);
    expect(calls.find((l) => l.includes("rl-serve"))).toContain("--host 0.0.0.0 --port 8787");
    // Each node's task launches with its own rank, the head node's address and the reward service URL.
    const launches = calls.filter((l) => l.includes("accelerate.commands.launch"));
    expect(launches).toHaveLength(4);
    expect(launches[0]).toMatch(/^python rank=0 url=http:\/\/node-a:8787 -m accelerate\.commands\.launch .*--num_machines 2 --num_processes 8 --machine_rank 0 --main_process_ip node-a /);
    expect(launches[1]).toMatch(/rank=1 .*--machine_rank 1 --main_process_ip node-a /);
    expect(launches[2]).toContain("p2-coder/configs/grpo_config.json");
    expect(launches[0]).not.toContain("--resume-from-checkpoint");
    // A re-run skips finished phases; an interrupted phase continues from its last checkpoint.
    rmSync(path.join(runDir, "train", "m-p2-coder", "phase.done"));
    mkdirSync(path.join(runDir, "train", "m-p2-coder", "output", "checkpoint-2"), { recursive: true });
    mkdirSync(path.join(runDir, "train", "m-p2-coder", "output", "checkpoint-10"), { recursive: true });
    writeFileSync(log, "");
    expect(spawnSync("bash", [sbatch], { env: { PATH: `${bin}:${process.env.PATH}`, SLURM_JOB_NODELIST: "node-[a-b]", HOME: tmp }, encoding: "utf8" }).status).toBe(0);
    const again = readFileSync(log, "utf8").trim().split("\n").filter((l) => l.includes("accelerate.commands.launch"));
    expect(again).toHaveLength(2);
    expect(again[0]).toMatch(/p2-coder\/configs\/grpo_config\.json --resume-from-checkpoint .*\/m-p2-coder\/output\/checkpoint-10$/);
  });
});

// ---------------------------------------------------------------- end to end with stand-ins

const GT = "n = int(input())\nprint(2 * n)\n";
const RIGHT = "```python\nimport sys\nprint(int(sys.stdin.read()) * 2)\n```";
const WRONG = "```python\nn = int(input())\nprint(2 * n if n < 100 else n)\n```";
const ut = (cases: [string, string][]) => cases.map(([i, o], k) => `## Test Case ${k + 1}\nReasoning: case ${k + 1}.\n### Input\n\`\`\`\n${i}\n\`\`\`\n### Output\n\`\`\`\n${o}\n\`\`\`\n`).join("\n");
const WEAK_UT = ut([["3", "6"], ["4", "8"]]); // valid, but every code passes
const STRONG_UT = ut([["3", "6"], ["500", "1000"]]); // valid, and catches WRONG

describe("a small schedule end to end (scripted policy, loopback model server, real sandbox and reward service)", () => {
  let llm: OpenAIServer;
  beforeAll(async () => {
    llm = await startOpenAIServer({
      models: [
        { id: "Qwen/Qwen3-4B" },
        ...["u-p1-tester-step1", "u-p1-tester-step2", "u-p1-tester-tester", "u-p2-coder-step1", "u-p2-coder-coder"].map((id) => ({ id, parent: "Qwen/Qwen3-4B" })),
      ],
      script: ({ model, messages, n }) => {
        const prompt = messages.at(-1)?.content ?? "";
        if (prompt.startsWith("Solve the following programming problem")) {
          // The base coder: a right and a wrong sample when asked for several (rollouts), the wrong one alone
          // (validation's one program per task); the phase-2 checkpoint (and its selected adapter) is right.
          if (model.startsWith("u-p2-coder")) return { choices: Array.from({ length: n }, () => RIGHT) };
          return { choices: Array.from({ length: n }, (_, i) => (n === 1 || i % 2 ? WRONG : RIGHT)) };
        }
        // Unit tests: the second checkpoint (and the selected adapter) writes the discriminating test.
        const strong = model === "u-p1-tester-step2" || model === "u-p1-tester-tester";
        return { choices: Array.from({ length: n }, () => (strong ? STRONG_UT : WEAK_UT)) };
      },
    });
  });
  afterAll(async () => {
    await llm?.close();
  });

  it("rollouts → phase 1 (GRPO stand-in, rewards from the service) → rl-validate → select → phase 2 samples the selected tester → coder validation and selection → phase 3 samples the selected coder", async () => {
    const runDir = path.join(tmp, "e2e");
    const tasks = path.join(tmp, "tasks");
    mkdirSync(tasks, { recursive: true });
    const task = (id: string) => JSON.stringify({ id, kind: "stdio", question: `Read n and print 2n (${id}).`, gt_code: GT });
    writeFileSync(path.join(tasks, "train.jsonl"), ["t1", "t2", "t3"].map(task).join("\n") + "\n");
    writeFileSync(path.join(tasks, "valid.jsonl"), ["v1", "v2"].map(task).join("\n") + "\n");
    const record = path.join(tmp, "stub-calls.jsonl");
    const completions = path.join(tmp, "completions.json");
    writeFileSync(completions, JSON.stringify([STRONG_UT, "no test cases, sorry"]));
    const port = await freePort();
    const yaml = `
run: {dir: ${runDir}}
executor: {workers: 2}
rl: {timeout_s: 2}
llm: {backend: openai, base_urls: ["${llm.url}"], model: unused, max_retries: 0}
utrl:
  name: u
  profile: grpo-lora-1gpu
  schedule: [{role: tester, steps: 2}, {role: coder, steps: 1}, {role: tester, steps: 1}]
  prompts_per_step: 2
  num_generations: 2
  per_device_batch_size: 2
  num_codes: 2
  save_steps: 1
  tasks: {train: ${path.join(tasks, "train.jsonl")}, valid: ${path.join(tasks, "valid.jsonl")}}
  python: {trl: python3}
  preflight: false
  reward: {port: ${port}}
  server: {command: null, base_url: "${llm.url}"}
  env: {PYTHONPATH: "${STUBS}:${TRAINERS}", STUB_RECORD: ${record}, STUB_COMPLETIONS: ${completions}}
rl-validate: {bootstrap: {samples: 200, seed: 0}}
`;
    // Phase 1's data: two code samples per task from the base coder.
    const ro = await run(yaml, ["--stage", "rl-rollouts", "--phase", "1"]);
    expect(ro.err.filter((l) => l.startsWith("error"))).toEqual([]);
    expect(ro.code).toBe(0);
    const data1 = readFileSync(path.join(runDir, "utrl", "u", "p1-tester", "data", "train.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(data1).toHaveLength(4); // 2 steps × 2 prompts
    expect(data1[0]).toMatchObject({ kind: "stdio", gt_code: GT, codes: ["import sys\nprint(int(sys.stdin.read()) * 2)", "n = int(input())\nprint(2 * n if n < 100 else n)"] });
    expect(data1[0].prompt[0].content).toContain("Write a unit test for it: exactly 12 test cases");

    // Phase 1: the launch path — in-process reward service, supervised launch script, stand-in trainer.
    const tr = await run(yaml, ["--stage", "utrl", "--phase", "1"]);
    expect(tr.err.filter((l) => l.startsWith("error"))).toEqual([]);
    expect(tr.code).toBe(0);
    expect(tr.out.join("\n")).toContain("checkpoints: 2 registered");
    const calls = readFileSync(record, "utf8").trim().split("\n").map((l) => JSON.parse(l));
    const grpo = calls.find((c) => c.call === "GRPOTrainer");
    expect(grpo).toMatchObject({ reward_funcs: ["utrl_tester_reward"], rows: 4, peft: { r: 64, lora_alpha: 128 } });
    expect(grpo.columns).toEqual(["codes", "entry_point", "gt_code", "kind", "prompt", "task_id"]);
    expect(calls.find((c) => c.call === "GRPOConfig").kwargs).toMatchObject({ beta: 0.001, num_generations: 2, max_steps: 2, remove_unused_columns: false });
    // The scripted completions (a discriminating unit test, then no test): Eq. 1–4 by hand:
    // 2 valid cases of 2 → R_valid 2/12; 1 of 2 codes caught → R_disc 1/2; R = 0.85·0.5 + 0.15·2/12 = 0.45.
    const rewards = calls.filter((c) => c.call === "reward").map((c) => c.rewards);
    expect(rewards).toHaveLength(2);
    for (const rs of rewards) {
      expect(rs).toHaveLength(4);
      expect(rs[0]).toBeCloseTo(0.45, 12);
      expect(rs[1]).toBe(0);
    }
    const reg = JSON.parse(readFileSync(path.join(runDir, "train", "u-p1-tester", "checkpoints.json"), "utf8"));
    expect(reg.checkpoints.map((c: any) => c.name)).toEqual(["u-p1-tester-step1", "u-p1-tester-step2"]);
    expect(readFileSync(path.join(runDir, "train", "u-p1-tester", "metrics.jsonl"), "utf8")).toContain('"reward":0.225');
    // schedule.sh re-runs every step: a finished phase is not trained again.
    const again1 = await run(yaml, ["--stage", "utrl", "--phase", "1", "--resume"]);
    expect(again1.out).toEqual(["utrl: phase 1 (u-p1-tester) is done (2 steps, 2 checkpoint(s)); nothing to do"]);

    // Validation between phases and selection: step 2 writes the discriminating test.
    const va = await run(yaml, ["--stage", "rl-validate", "--phase", "1"]);
    expect(va.code).toBe(0);
    // The weak test is valid but catches nothing: 0.15 · 2/12 = 0.025; the strong one scores 0.45 on both tasks.
    expect(va.out.slice(0, 3)).toEqual([
      "u-p1-tester-start\tstep 0\treward 0.0250 [0.0250, 0.0250]",
      "u-p1-tester-step1\tstep 1\treward 0.0250 [0.0250, 0.0250]",
      "u-p1-tester-step2\tstep 2\treward 0.4500 [0.4500, 0.4500]",
    ]);
    const sel = await run(yaml, ["--stage", "select", "--set", "select.source=rl-validate", "--set", "select.train=u-p1-tester"]);
    expect(sel.code).toBe(0);
    expect(sel.out[0]).toMatch(/^u-p1-tester-step2 \(step 2\) chosen by the highest λ-weighted reward on 2 held-out tasks: 0\.4500/);
    expect(readlinkSync(path.join(runDir, "train", "u-p1-tester", "best"))).toBe("output/checkpoint-2");
    // Unchanged: nothing sampled or executed again.
    const again = await run(yaml, ["--stage", "rl-validate", "--phase", "1"]);
    expect(again.out.slice(0, 3)).toEqual(va.out.slice(0, 3));

    // Phase 2 (coder) samples its unit tests from the selected tester checkpoint and trains on code rewards.
    const requestsBefore = llm.requests.length;
    const ro2 = await run(yaml, ["--stage", "rl-rollouts", "--phase", "2"]);
    expect(ro2.code).toBe(0);
    expect(llm.requests.slice(requestsBefore).every((q) => q.model === "u-p1-tester-tester")).toBe(true);
    const data2 = readFileSync(path.join(runDir, "utrl", "u", "p2-coder", "data", "train.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(data2[0]).toMatchObject({ ut_text: STRONG_UT });
    writeFileSync(completions, JSON.stringify([RIGHT, WRONG]));
    const tr2 = await run(yaml, ["--stage", "utrl", "--phase", "2"]);
    expect(tr2.code).toBe(0);
    const coder = readFileSync(record, "utf8").trim().split("\n").map((l) => JSON.parse(l)).filter((c) => c.call === "reward").at(-1);
    expect(coder.rewards).toEqual([1, 0.5, 1, 0.5]); // WRONG passes 1 of the 2 valid cases

    // Validation of the coder phase: one program per held-out task from each checkpoint, scored by the share of
    // the selected tester's valid cases it passes — the base coder's wrong program 1 of 2, the checkpoint's 2 of 2.
    const va2 = await run(yaml, ["--stage", "rl-validate", "--phase", "2"]);
    expect(va2.err.filter((l) => l.startsWith("error"))).toEqual([]);
    expect(va2.code).toBe(0);
    expect(va2.out.slice(0, 2)).toEqual([
      "u-p2-coder-start\tstep 0\tcode reward 0.5000 [0.5000, 0.5000]",
      "u-p2-coder-step1\tstep 1\tcode reward 1.0000 [1.0000, 1.0000]",
    ]);
    const sel2 = await run(yaml, ["--stage", "select", "--set", "select.source=rl-validate", "--set", "select.train=u-p2-coder"]);
    expect(sel2.code).toBe(0);
    expect(sel2.out[0]).toMatch(/^u-p2-coder-step1 \(step 1\) chosen by /);
    // Phase 3 (tester again) samples its training codes from the coder phase 2 selected.
    const before3 = llm.requests.length;
    const ro3 = await run(yaml, ["--stage", "rl-rollouts", "--phase", "3"]);
    expect(ro3.err.filter((l) => l.startsWith("error"))).toEqual([]);
    expect(ro3.code).toBe(0);
    const asked3 = llm.requests.slice(before3);
    expect(asked3.length).toBeGreaterThan(0);
    expect(asked3.every((q) => q.model === "u-p2-coder-coder")).toBe(true);
    const data3 = readFileSync(path.join(runDir, "utrl", "u", "p3-tester", "data", "train.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(data3).toHaveLength(2); // 1 step × 2 prompts
    expect(data3[0]).toMatchObject({ kind: "stdio", gt_code: GT, codes: ["import sys\nprint(int(sys.stdin.read()) * 2)", "import sys\nprint(int(sys.stdin.read()) * 2)"] });
  });
});
