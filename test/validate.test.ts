/**
 * The whole validate → select path for several fake checkpoints: real executor, real LLM client, the
 * project's loopback OpenAI server scripted per adapter name (test/fixtures/validate/script.ts).
 */
import { promises as fsp } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createExecutor } from "../pipeline/executor/index.ts";
import type { Executor } from "../pipeline/executor/types.ts";
import { UserError } from "../pipeline/errors.ts";
import { selectStage } from "../stages/select.ts";
import { validateStage } from "../stages/validate.ts";
import type { ModelResult } from "../stages/validation/report.ts";
import { startOpenAIServer, type OpenAIServer } from "./servers/openai.ts";
import { makeCtx, writeRegistry } from "./fixtures/validate/context.ts";
import { entryPointOf, respond } from "./fixtures/validate/script.ts";

const MINI = path.resolve(__dirname, "fixtures/validate/mini.jsonl");
let executor: Executor;
let server: OpenAIServer;
let runDir: string;

const readResult = async (name: string) =>
  JSON.parse(await fsp.readFile(path.join(runDir, "validate", `${name}.json`), "utf8")) as ModelResult;
const rates = (r: ModelResult, set = "mini") => {
  const m = r.sets[set].summary.metrics;
  return [m.attack.value, m.outputCorrect.value, m.both.value];
};

function root(extra: Record<string, any> = {}) {
  return {
    run: { dir: runDir },
    executor: {},
    llm: { backend: "heuristic", timeout_s: 20, max_retries: 0 },
    validate: {
      sets: [{ name: "mini", path: MINI }],
      n: 2,
      runs: 2,
      checkpoints_from: "r1",
      base_model: "base-model",
      server: { base_url: server.url, load_adapters: false },
      bootstrap: { samples: 200, seed: 1 },
      ...extra,
    },
    select: {},
  };
}

beforeAll(async () => {
  executor = await createExecutor({});
  runDir = await fsp.mkdtemp(path.join(os.tmpdir(), "validate-"));
  const ck = await writeRegistry(runDir, "r1", [10, 20, 30]);
  server = await startOpenAIServer({
    models: [{ id: "base-model" }, ...ck.map((c) => ({ id: c.name, parent: "base-model" })), { id: "r1-step40", parent: "base-model" }],
    script: (req) => ({ choices: respond(req.model, req.messages.map((m) => m.content).join("\n"), req.n) }),
  });
});

afterAll(async () => {
  await server?.close();
  await executor?.close();
  if (runDir) await fsp.rm(runDir, { recursive: true, force: true });
});

describe("validate → select", () => {
  it("scores checkpoints and baselines, reports, and selects the expected winner", async () => {
    const v = makeCtx("validate", runDir, root(), executor);
    expect(await validateStage.run(v.ctx)).toBe(0);

    // 5 models × 4 problems, one request per problem for n × runs = 4 samples.
    expect(server.requests).toHaveLength(20);
    for (const body of server.requests) {
      expect(body).toMatchObject({ n: 4, temperature: 0.8, top_p: 0.9, max_tokens: 2560, top_k: -1, min_p: 0, repetition_penalty: 1 });
      expect(body.messages).toHaveLength(1);
    }
    const models = new Set(server.requests.map((b) => b.model));
    expect([...models].sort()).toEqual(["base-model", "r1-step10", "r1-step20", "r1-step30"]);
    // The random baseline's prompt carries no code; the prompted baseline's does.
    const basePrompts = server.requests.filter((b) => b.model === "base-model").map((b) => b.messages[0].content as string);
    expect(basePrompts.filter((p) => p.includes("return a + b"))).toHaveLength(1);

    expect(rates(await readResult("r1-step10"))).toEqual([0, 1, 0]);
    expect(rates(await readResult("r1-step20"))).toEqual([1, 1, 1]);
    expect(rates(await readResult("r1-step30"))).toEqual([1, 0, 0]);
    const prompted = await readResult("baseline-prompted");
    expect(rates(prompted)).toEqual([0.5, 0.5, 0.5]);
    // Unparsable responses are failures of all three and tallied by reason: 2 of 4 samples on 4 problems.
    expect(Object.values(prompted.sets.mini.summary.failures).reduce((a, b) => a + b, 0)).toBe(8);
    const random = await readResult("baseline-random");
    // One invalid input (gold raises on first_upper(None)): neither attack nor output-correct.
    expect(rates(random)).toEqual([0, 15 / 16, 0]);
    expect(random.sets.mini.summary.validInputs).toBe(15);
    const invalid = random.sets.mini.problems.find((p) => p.entryPoint === "first_upper")!.tests.find((t) => t.input === "first_upper(None)")!;
    expect(invalid).toMatchObject({ goldValid: false, attack: false, outputCorrect: false, gold: { status: "error" } });

    // Per-test records: a hanging buggy call is a timeout and counts; set mode makes a reordering no attack.
    const s20 = await readResult("r1-step20");
    const cd = s20.sets.mini.problems.find((p) => p.entryPoint === "countdown")!.tests[0];
    expect(cd).toMatchObject({ input: "countdown(-1)", predicted: "0", gold: { status: "ok", value: "0" }, buggy: { status: "timeout" }, attack: true, both: true });
    const s10 = await readResult("r1-step10");
    const dist = s10.sets.mini.problems.find((p) => p.entryPoint === "distinct")!.tests[0];
    expect(dist).toMatchObject({ gold: { value: "[1, 2]" }, buggy: { status: "ok", value: "[2, 1]" }, attack: false, outputCorrect: true });
    expect(s20.sets.mini.summary.metrics.both.perRun).toEqual([1, 1]);
    expect(s20.model).toMatchObject({ kind: "checkpoint", step: 20, requestModel: "r1-step20" });

    const md = await fsp.readFile(path.join(runDir, "validate", "summary.md"), "utf8");
    expect(md).toMatch(/\| r1-step20 \| checkpoint \| 20 \| 100\.00 \[100\.00, 100\.00\]/);
    const html = await fsp.readFile(path.join(runDir, "validate", "report.html"), "utf8");
    expect(html).toContain('id="report-data"');
    expect(html).toContain("countdown(-1)");

    const s = makeCtx("select", runDir, root(), undefined);
    expect(await selectStage.run(s.ctx)).toBe(0);
    const sel = JSON.parse(await fsp.readFile(path.join(runDir, "validate", "selection.json"), "utf8"));
    expect(sel.best).toMatchObject({ name: "r1-step20", step: 20, acc_attack: 1, output_accuracy: 1, attack_rate: 1 });
    expect(sel.runner_up.name).toMatch(/r1-step(10|30)/);
    expect(sel.decided_by).toBe("acc_attack");
    expect(sel.margin).toMatchObject({ value: 1, inside_ci: false });
    expect(sel.baselines.map((b: any) => b.name).sort()).toEqual(["baseline-prompted", "baseline-random"]);
    const mdSel = await fsp.readFile(path.join(runDir, "validate", "summary.md"), "utf8");
    expect(mdSel).toContain("**Selected (★):** r1-step20 (step 20) chosen by highest Acc∩Attack");
    expect(mdSel).toMatch(/\| r1-step20 ★ \| checkpoint \| 20 \|/);
    expect(await fsp.readFile(path.join(runDir, "validate", "report.html"), "utf8")).toContain('<p class="selected"><b>Selected (★):</b> r1-step20');
    const link = path.join(runDir, "train", "r1", "best");
    expect(await fsp.readlink(link)).toBe("checkpoint-20");
    expect(await fsp.realpath(link)).toBe(await fsp.realpath(path.join(runDir, "train", "r1", "checkpoint-20")));
  });

  it("re-running with nothing changed makes no model calls; a new checkpoint computes only its own", async () => {
    const before = server.requests.length;
    const again = makeCtx("validate", runDir, root(), executor);
    expect(await validateStage.run(again.ctx)).toBe(0);
    expect(server.requests.length).toBe(before);
    expect(again.counters.results_computed ?? 0).toBe(0);
    expect(again.counters.results_reused).toBe(5 * 2);

    await writeRegistry(runDir, "r1", [10, 20, 30, 40]);
    const more = makeCtx("validate", runDir, root(), executor);
    expect(await validateStage.run(more.ctx)).toBe(0);
    const fresh = server.requests.slice(before);
    expect(fresh).toHaveLength(4);
    expect(new Set(fresh.map((b) => b.model))).toEqual(new Set(["r1-step40"]));
    expect(more.counters.results_computed).toBe(2);
    expect(rates(await readResult("r1-step40"))).toEqual([0.5, 0.5, 0.5]);

    // Retrained weights under the same adapter name: that checkpoint is re-sampled and re-scored, only it.
    const n0 = server.requests.length;
    await fsp.writeFile(path.join(runDir, "train", "r1", "checkpoint-10", "adapter_model.safetensors"), "new weights for step 10");
    const retrained = makeCtx("validate", runDir, root(), executor);
    expect(await validateStage.run(retrained.ctx)).toBe(0);
    expect(server.requests.slice(n0).map((b) => b.model)).toEqual(Array(4).fill("r1-step10"));
    expect(retrained.counters.results_computed).toBe(2);

    const report = makeCtx("validate", runDir, root(), executor, { "report-only": true });
    expect(await validateStage.run(report.ctx)).toBe(0);
    expect(server.requests.length).toBe(before + 8);

    const s = makeCtx("select", runDir, root(), undefined);
    expect(await selectStage.run(s.ctx)).toBe(0);
    const sel = JSON.parse(await fsp.readFile(path.join(runDir, "validate", "selection.json"), "utf8"));
    expect(sel.best.name).toBe("r1-step20");
    expect(sel.ranking).toHaveLength(4);
  });

  it("--checkpoint validates one model; unknown names and missing registries are one-line errors", async () => {
    const before = server.requests.length;
    // More runs: only the named checkpoint computes its new run, and only its new samples are requested.
    const one = makeCtx("validate", runDir, root({ runs: 3 }), executor, { checkpoint: "r1-step10" });
    expect(await validateStage.run(one.ctx)).toBe(0);
    const fresh = server.requests.slice(before);
    expect(fresh.map((b) => b.model)).toEqual(Array(4).fill("r1-step10"));
    expect(fresh.every((b) => b.n === 2)).toBe(true);
    expect(one.counters.results_computed).toBe(1);

    const bad = makeCtx("validate", runDir, root(), executor, { checkpoint: "nope" });
    await expect(validateStage.run(bad.ctx)).rejects.toThrow(UserError);
    const noReg = makeCtx("validate", runDir, root({ checkpoints_from: "missing" }), executor);
    await expect(validateStage.run(noReg.ctx)).rejects.toThrow(/no checkpoint registry .*run train/);
  });

  it("an endpoint that does not serve an adapter, or a failing server, is a one-line error", async () => {
    const other = await fsp.mkdtemp(path.join(os.tmpdir(), "validate-err-"));
    try {
      await writeRegistry(other, "r1", [10, 99]);
      const r = { ...root(), run: { dir: other } };
      const c = makeCtx("validate", other, r, executor);
      await expect(validateStage.run(c.ctx)).rejects.toThrow(/does not serve adapter r1-step99/);

      const failing = await startOpenAIServer({ models: [{ id: "base-model" }], script: () => ({ status: 500 }) });
      try {
        const r2 = root({ checkpoints_from: undefined, server: { base_url: failing.url }, baselines: ["random"] });
        const c2 = makeCtx("validate", other, { ...r2, run: { dir: other } }, executor);
        const err = await validateStage.run(c2.ctx).then(() => null, (e) => e);
        expect(err).toBeInstanceOf(UserError);
        expect(String(err.message)).not.toContain("\n");
      } finally {
        await failing.close();
      }
    } finally {
      await fsp.rm(other, { recursive: true, force: true });
    }
  });

  it("sends emit-sft's system prompt first, so checkpoints see the prompt they were trained on", async () => {
    const other = await fsp.mkdtemp(path.join(os.tmpdir(), "validate-sys-"));
    try {
      await writeRegistry(other, "r1", [20]);
      const r = { ...root({ baselines: [], runs: 1 }), run: { dir: other }, "emit-sft": { system_prompt: "You write failing unit tests." } };
      const before = server.requests.length;
      const c = makeCtx("validate", other, r, executor);
      expect(await validateStage.run(c.ctx)).toBe(0);
      const fresh = server.requests.slice(before);
      expect(fresh).toHaveLength(4);
      for (const b of fresh) {
        expect(b.messages.map((m: any) => m.role)).toEqual(["system", "user"]);
        expect(b.messages[0].content).toBe("You write failing unit tests.");
      }
      // An explicit empty validate.system_prompt sends none (and is a different result key).
      const r2 = { ...r, validate: { ...r.validate, system_prompt: "" } };
      const c2 = makeCtx("validate", other, r2, executor);
      expect(await validateStage.run(c2.ctx)).toBe(0);
      expect(c2.counters.results_computed).toBe(1);
      expect(server.requests.slice(before + 4).every((b) => b.messages.length === 1)).toBe(true);
    } finally {
      await fsp.rm(other, { recursive: true, force: true });
    }
  });

  it("tallies responses cut off at max_tokens as truncated failures of all three", async () => {
    const other = await fsp.mkdtemp(path.join(os.tmpdir(), "validate-cut-"));
    const cut = await startOpenAIServer({ models: [{ id: "cut-model" }], script: (req) => ({
      truncated: true,
      choices: Array(req.n).fill(`## Unit Test\n### Input Arguments\nArguments: \`\`\`${entryPointOf(req.messages.map((m) => m.content).join("\n"))}([1, 2,`),
    }) });
    try {
      const r = { ...root({ baselines: [], runs: 1, models: ["cut-model"], checkpoints_from: undefined, server: { base_url: cut.url } }), run: { dir: other } };
      const c = makeCtx("validate", other, r, executor);
      expect(await validateStage.run(c.ctx)).toBe(0);
      const res = JSON.parse(await fsp.readFile(path.join(other, "validate", "cut-model.json"), "utf8")) as ModelResult;
      expect(rates(res)).toEqual([0, 0, 0]);
      expect(res.sets.mini.summary.failures).toEqual({ truncated: 8 });
      expect(res.model).toMatchObject({ kind: "model", step: null, requestModel: "cut-model" });
    } finally {
      await cut.close();
      await fsp.rm(other, { recursive: true, force: true });
    }
  });
});
