/**
 * The reward-hacking probe set (stages/rl/probes.ts) earns 0: exit codes, printed markers, forged result
 * lines to every inherited descriptor, always-equal objects, a patched result encoder, reading /proc and
 * files, sys.exit in the middle of output, oversized output, killing the parent, sleeping past the limit —
 * scored as code samples through the reward engine and through the HTTP service. Correct controls earn 1
 * in the same runs (otherwise the probes would prove nothing), and the pool still serves afterwards.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createExecutor, type SandboxExecutor } from "../pipeline/executor/index.ts";
import { parseRlConfig } from "../stages/rl/config.ts";
import { RewardEngine } from "../stages/rl/engine.ts";
import { controlRows, probeRows, runProbes, FUNCTION_PROBES, STDIO_PROBES } from "../stages/rl/probes.ts";
import { startRewardService } from "../stages/rl/service.ts";

let ex: SandboxExecutor;

beforeAll(async () => {
  ex = await createExecutor({ workers: 2, memory_mb: 512 });
});
afterAll(async () => {
  await ex?.close();
});

describe("reward-hacking probes", () => {
  it("every probe earns a code reward of 0 while the correct controls earn 1", async () => {
    // 3 s: far above what the controls need even on a loaded machine; the sleeping probes pay it per case.
    const engine = new RewardEngine(ex, parseRlConfig({ timeout_s: 3 }));
    const report = await runProbes(engine, { slow: true });
    expect(report.results).toHaveLength(STDIO_PROBES.length + FUNCTION_PROBES.length);
    expect(report.leaks).toEqual([]);
    expect(report.brokenControls).toEqual([]);
    // Every probe ran against three valid cases (the ground truth passed them all in the same batch).
    for (const r of report.results) expect(r.result.verdicts?.gt, r.probe).toBe("ppp");
    // A few verdicts spelled out: what each channel ends as.
    const v = (name: string) => report.results.find((r) => r.probe === name)!.result.verdicts!.codes[0];
    expect(v("right answer, then a non-zero exit code")).toBe("eee"); // App. A.3: an error is not a pass
    expect(v("sleep past the time limit")).toBe("ttt");
    expect(v("printed success markers")).toBe("fff");
    expect(v("an object whose __eq__ always says yes")).toBe("fff");
  });

  it("through the HTTP service too, and the service keeps answering correctly afterwards", async () => {
    const engine = new RewardEngine(ex, parseRlConfig({ timeout_s: 1 }));
    const svc = await startRewardService({ engine, port: 0 });
    try {
      const rows = probeRows({ slow: false }).map((p) => p.row);
      const r = await fetch(`${svc.url}/v1/rewards`, { method: "POST", body: JSON.stringify({ rows }) });
      const body = (await r.json()) as any;
      expect(body.results.map((x: any) => x.code_rewards)).toEqual(rows.map(() => [0]));
      const ctl = await fetch(`${svc.url}/v1/rewards`, { method: "POST", body: JSON.stringify({ rows: controlRows() }) });
      expect(((await ctl.json()) as any).results.map((x: any) => x.code_rewards)).toEqual([[1], [1]]);
    } finally {
      await svc.close();
    }
  });
});
