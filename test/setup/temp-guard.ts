/**
 * vitest globalSetup: every test file runs with TMPDIR pointing at a private folder made here (test workers
 * and every process they start inherit it, so `os.tmpdir()`, `mkdtemp`, Python's `tempfile` and the tsx
 * compile cache all land inside it). At the end the folder must be empty apart from tsx's compile cache:
 * anything else is a test that did not clean up, and the run fails naming it. The folder is removed either
 * way, so `npm test` leaves the system temp folder as it found it.
 *
 * Entries that appear directly in the system temp folder during the run under a name this project's tests
 * use (a path hard-coded to /tmp escapes TMPDIR) are reported too: as an error when UTGEN_TEMP_STRICT=1 or
 * CI is set (one machine, one run), as a warning otherwise (on a shared machine another user's run may
 * create such names at the same time).
 */
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";

/** Created by child processes that load TypeScript through tsx: a cache, not a test's leftover. */
const CACHES = /^tsx-\d+$/;
/** Names the project's tests and code give their temp folders. */
const OURS = /^(utgen-|llm-test-|report-|train-|validate-|gold-check-|bench-|t-)/;

export default function setup(): () => void {
  const system = tmpdir();
  const prev = process.env.TMPDIR;
  const before = new Set(readdirSync(system));
  const root = mkdtempSync(path.join(system, "utgen-test-tmp-"));
  process.env.TMPDIR = root;
  return () => {
    let left: string[] = [];
    try {
      left = readdirSync(root).filter((n) => !CACHES.test(n));
    } finally {
      rmSync(root, { recursive: true, force: true });
      if (prev === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = prev;
    }
    const escaped = readdirSync(system).filter((n) => !before.has(n) && n !== path.basename(root) && OURS.test(n));
    const strict = process.env.UTGEN_TEMP_STRICT === "1" || !!process.env.CI;
    if (escaped.length && !strict)
      console.warn(`warning: new entries in ${system} during the test run (this run's or another user's): ${escaped.join(", ")}`);
    const problems: string[] = [];
    if (left.length) problems.push(`tests left ${left.length} item(s) in their temp folder: ${left.sort().join(", ")}`);
    if (escaped.length && strict) problems.push(`tests created ${escaped.length} item(s) directly in ${system}: ${escaped.sort().join(", ")}`);
    if (problems.length) {
      // A throw here is only logged by vitest (exit code 0): say it in one line and fail the run ourselves.
      console.error(`error: ${problems.join("; ")} — each test must remove what it creates`);
      process.exitCode = 1;
    }
  };
}
