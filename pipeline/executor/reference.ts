/**
 * The fixed-limit reference harness (reference_harness.py): a straightforward Python multiprocessing
 * gold-test runner, started inside the same bubblewrap sandbox as the fork servers. Used as the
 * baseline in bench/gold-check.ts and as the independent computation in the gold-check tests.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { executorConfigSchema, type ExecutorConfig } from "./index.ts";
import { checkSandbox, launcherEnv, preludeSource, sandboxedPython, type SandboxOptions } from "./sandbox.ts";

export interface ReferenceTask {
  key: string;
  /** Program source (canonical solution or code under test). */
  program: string;
  /** The problem's test text without its final loop (defines inputs, results, assertion). */
  header: string;
  /** Function the loop calls, and the atol expression it passes. */
  fn: string;
  atol: string;
  /** Per-test limit for this task (default: the harness's). */
  timeout?: number;
}

export interface ReferenceResult {
  tests: number;
  passed: number;
  /** One character per test: p(ass), f(ail), t(imeout). */
  verdicts: string;
}

const HERE = path.dirname(fileURLToPath(import.meta.url));

export async function runReferenceHarness(
  tasks: ReferenceTask[],
  opts: { timeoutS?: number; loadTimeoutS?: number; processes?: number; config?: Partial<ExecutorConfig> } = {},
): Promise<Record<string, ReferenceResult>> {
  const c = executorConfigSchema.parse(opts.config ?? {});
  const sb: SandboxOptions = { python: c.python, unsafe: c.unsafe_no_sandbox, tmpfsMb: c.tmpfs_mb, limits: {} };
  checkSandbox(sb);
  const src = readFileSync(path.join(HERE, "reference_harness.py"), "utf8");
  const argv = sandboxedPython(sb, src);
  const input = JSON.stringify({
    tasks,
    timeout: opts.timeoutS ?? c.buggy_timeout_s,
    processes: opts.processes ?? c.workers,
    prelude: preludeSource(),
    memory_mb: c.memory_mb + 256,
    ...(opts.loadTimeoutS ? { load_timeout: opts.loadTimeoutS } : {}),
  });
  return new Promise((resolve, reject) => {
    const p = spawn(argv[0], argv.slice(1), { env: launcherEnv, stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let err = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (err = (err + d).slice(-4000)));
    p.on("error", reject);
    p.on("exit", (code) => {
      try {
        if (code !== 0) throw new Error(`reference harness exited ${code}: ${err.trim().split("\n").pop()}`);
        resolve(JSON.parse(out.trim().split("\n").pop()!).results);
      } catch (e) {
        reject(e);
      }
    });
    p.stdin.end(input);
  });
}
