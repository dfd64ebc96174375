/**
 * kill -9 resume tests of the model-driven stages (utdebug, rerank): run a stage as its own process group,
 * SIGKILL it once enough per-problem results are on disk, and count the model calls a re-run repeats.
 */
import { spawn } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import * as path from "node:path";

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../..");

/** How many times each distinct model request (model, messages, n, seed) was sent. */
export function perPrompt(bodies: any[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const b of bodies) {
    const k = JSON.stringify([b.model, b.messages, b.n, b.seed]);
    m.set(k, (m.get(k) ?? 0) + 1);
  }
  return m;
}

/** Requests of `after` beyond what `reference` sent for the same prompt (the calls a resumed run repeated). */
export function repeatedCalls(after: Map<string, number>, reference: Map<string, number>): number {
  let n = 0;
  for (const [k, c] of after) n += Math.max(0, c - (reference.get(k) ?? 0));
  return n;
}

/**
 * `npx zx pipeline/run.mjs --config <config> --stage <stage>` in a process group of its own, SIGKILLed as soon as
 * `resultsDir` holds `atLeast` .json files. True when it was killed (false: it finished first or 120 s passed).
 */
export async function runAndKill(config: string, stage: string, resultsDir: string, atLeast: number): Promise<boolean> {
  const child = spawn(process.execPath, [path.join(ROOT, "pipeline/run.mjs"), "--config", config, "--stage", stage], { cwd: ROOT, detached: true, stdio: "ignore" });
  let killed = false;
  for (const deadline = Date.now() + 120_000; Date.now() < deadline && child.exitCode === null; ) {
    if (existsSync(resultsDir) && readdirSync(resultsDir).filter((f) => f.endsWith(".json")).length >= atLeast) {
      process.kill(-child.pid!, "SIGKILL");
      killed = true;
      break;
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(null) : child.once("exit", r)));
  return killed;
}
