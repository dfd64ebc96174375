/**
 * Progress parsing on the console formats TRL / transformers print: Python dict log lines (string-
 * formatted values in current transformers, floats in older ones), tqdm bars redrawn with \r, labelled
 * bars that are not training progress, and our callback's [utgen] JSON lines.
 */
import { describe, expect, it } from "vitest";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { LineSplitter, ProgressState, parseLine, parsePythonDict, parseTqdm, type MetricRow } from "../trainers/progress.ts";
import { diagnose } from "../trainers/supervise.ts";

const FIX = path.resolve(__dirname, "fixtures/train");

describe("line parsers", () => {
  it("parses transformers' Python dict lines, string-formatted or float values", () => {
    expect(parsePythonDict("{'loss': '1.2345', 'grad_norm': '0.51', 'learning_rate': '4.9e-06', 'epoch': '0.5'}")).toEqual({
      loss: 1.2345,
      grad_norm: 0.51,
      learning_rate: 4.9e-6,
      epoch: 0.5,
    });
    expect(parsePythonDict("{'loss': 0.6931, 'grad_norm': nan, 'learning_rate': 2e-05, 'epoch': 1.0, 'flag': True, 'x': None}")).toEqual({
      loss: 0.6931,
      grad_norm: null,
      learning_rate: 2e-5,
      epoch: 1,
      flag: true,
      x: null,
    });
    expect(parsePythonDict("{'note': 'a, b}', 'epoch': '2.0'}")).toEqual({ note: "a, b}", epoch: 2 });
    expect(parsePythonDict("Some other line {'loss': 1}")).toBeNull();
    expect(parsePythonDict("{}")).toBeNull();
  });

  it("parses tqdm bars in s/it and it/s, with and without a rate, labelled or not", () => {
    expect(parseTqdm("  5%|▌         | 10/200 [00:31<09:50,  3.11s/it]")).toEqual({ current: 10, total: 200, secondsPerStep: 3.11, described: false });
    expect(parseTqdm(" 50%|█████     | 5/10 [00:01<00:01,  4.00it/s]")).toEqual({ current: 5, total: 10, secondsPerStep: 0.25, described: false });
    expect(parseTqdm("  0%|          | 0/200 [00:00<?, ?it/s]")).toEqual({ current: 0, total: 200, secondsPerStep: null, described: false });
    expect(parseTqdm("Loading checkpoint shards: 100%|██████████| 4/4 [00:03<00:00,  1.31it/s]")!.described).toBe(true);
    expect(parseTqdm("loss went down 5%")).toBeNull();
  });

  it("parses our callback's lines, wherever accelerate prefixes them", () => {
    const ev = parseLine('[rank0]: [utgen] {"event":"log","step":12,"max_steps":40,"epoch":0.3,"loss":1.5,"grad_norm":null,"learning_rate":5e-06,"time":1.5}');
    expect(ev).toEqual({ kind: "log", source: "callback", step: 12, maxSteps: 40, epoch: 0.3, metrics: { loss: 1.5, grad_norm: null, learning_rate: 5e-6 } });
    expect(parseLine('[utgen] {"event":"save","step":20,"max_steps":40,"epoch":1.0,"checkpoint":"/o/checkpoint-20","time":2}')).toEqual({
      kind: "save",
      step: 20,
      epoch: 1,
      checkpoint: "/o/checkpoint-20",
    });
    expect(parseLine("[utgen] {not json")).toBeNull();
  });

  it("splits on \\n and tqdm's \\r, keeping a partial line until flushed", () => {
    const s = new LineSplitter();
    expect(s.push("a\r 5%|")).toEqual(["a"]);
    expect(s.push("x| 1/2 [00:01<00:01, 1.0s/it]\rb\r\nc")).toEqual([" 5%|x| 1/2 [00:01<00:01, 1.0s/it]", "b"]);
    expect(s.flush()).toEqual(["c"]);
    expect(s.flush()).toEqual([]);
  });
});

function feed(text: string, state: ProgressState): MetricRow[] {
  const sp = new LineSplitter();
  const rows: MetricRow[] = [];
  for (const l of [...sp.push(text), ...sp.flush()]) {
    const ev = parseLine(l);
    const row = ev && state.apply(ev);
    if (row) rows.push(row);
  }
  return rows;
}

describe("progress state", () => {
  it("a transformers/TRL console transcript without callback lines: steps from the training bar only", async () => {
    const text = await fsp.readFile(path.join(FIX, "trl_console.txt"), "utf8");
    let t = 0;
    const state = new ProgressState(16, () => (t += 6000));
    const rows = feed(text, state);
    expect(rows.map((r) => [r.step, r.epoch, r.source])).toEqual([
      [2, 0.25, "stdout"],
      [4, 0.5, "stdout"],
      [4, 0.5, "stdout"], // eval
      [6, 0.75, "stdout"],
      [8, 1, "stdout"], // the final summary
    ]);
    expect(rows[0]).toMatchObject({ loss: 2.0312, grad_norm: 0.8125, learning_rate: 5e-6, num_tokens: 8192, mean_token_accuracy: 0.5712, max_steps: 8 });
    expect(rows[2]).toMatchObject({ eval_loss: 1.9502 });
    expect(rows[4]).toMatchObject({ train_loss: 1.9861, train_runtime: 24.31 });
    // 2 steps in 6 s between the first two rows, × batch 16; 8192 tokens in 6 s.
    expect(rows[1]).toMatchObject({ steps_per_s: 0.333, samples_per_s: 5.333, tokens_per_s: 1365.333 });
    expect(state.maxSteps).toBe(8); // not the 4 of "Loading checkpoint shards" nor the eval bar's 3
    expect(state.step).toBe(8);
    expect(state.secondsPerStep).toBe(3.04);
    expect(state.summary()).toBe("epoch 1.00 | loss 1.9401 | lr 1.46e-6 | grad 0.771 | 3.04 s/step");
  });

  it("with callback lines, transformers' dict copies are not recorded twice", () => {
    const state = new ProgressState(16, () => 0);
    const rows = feed(
      [
        '[utgen] {"event":"begin","step":0,"max_steps":4,"epoch":0}',
        '[utgen] {"event":"log","step":1,"max_steps":4,"epoch":0.25,"loss":2.0,"learning_rate":5e-06}',
        "{'loss': '2.0', 'learning_rate': '5e-06', 'epoch': '0.25'}",
        " 25%|██▌       | 1/4 [00:03<00:09,  3.00s/it]",
        '[utgen] {"event":"log","step":2,"max_steps":4,"epoch":0.5,"loss":1.9,"learning_rate":4e-06}',
        "{'loss': '1.9', 'learning_rate': '4e-06', 'epoch': '0.5'}",
      ].join("\n"),
      state,
    );
    expect(rows.map((r) => [r.step, r.loss, r.source])).toEqual([
      [1, 2.0, "callback"],
      [2, 1.9, "callback"],
    ]);
    expect(state.step).toBe(2);
    expect(state.maxSteps).toBe(4);
  });
});

describe("failure diagnosis", () => {
  it.each([
    ["torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", /^GPU out of memory/],
    ["ModuleNotFoundError: No module named 'trl'", /package is missing in the trainer env/],
    ["ValueError: The chat template does not contain {% generation %} keyword; assistant_only_loss", /use train\.data_format: prompt_completion/],
    ["huggingface_hub.errors.GatedRepoError: 401 Client Error.", /gated or not found/],
    ["torch.distributed.DistBackendError: NCCL error in: ProcessGroupNCCL.cpp:1970", /NCCL communication failed/],
    ["RuntimeError: The server socket has failed to listen on any local network address. port: 29500, useIpv6: 0, code: -98, name: EADDRINUSE", /rendezvous port is taken/],
    ["OSError: [Errno 28] No space left on device", /disk is full/],
  ])("%s", (line, want) => {
    expect(diagnose(["Traceback (most recent call last):", line], 1, null)).toMatch(want);
  });

  it("a SIGKILL points at the OOM killer; an unknown failure gives null", () => {
    expect(diagnose(["step 3"], null, "SIGKILL")).toMatch(/OOM killer/);
    expect(diagnose(["Killed"], 137, null)).toMatch(/OOM killer/);
    expect(diagnose(["ValueError: something new"], 1, null)).toBeNull();
  });
});
