// The suite's temp-folder check (test/setup/temp-guard.ts, vitest globalSetup) fails a run that leaves
// something behind, naming it, and removes its folder either way; a clean run passes. Run in a child so
// the check's own TMPDIR and exit code do not touch this test run.
import { afterAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import * as path from "node:path";
import { scratchDirs } from "../stages/heuristic/context.ts";

const ROOT = path.resolve(__dirname, "..");
const scratch = scratchDirs("utgen-guard-");
afterAll(() => scratch.removeAll());

/** Runs the guard's setup and teardown around `body` (JS run between them) with TMPDIR = a fresh folder. */
function guarded(body: string, env: Record<string, string> = {}) {
  const system = scratch.make();
  const script = `
    import setup from ${JSON.stringify(path.join(ROOT, "test/setup/temp-guard.ts"))};
    import * as fs from "node:fs";
    import * as path from "node:path";
    const teardown = setup();
    const T = process.env.TMPDIR;
    ${body}
    teardown();
    console.log("TMP=" + T);
  `;
  const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
    cwd: ROOT,
    encoding: "utf8",
    env: { ...process.env, TMPDIR: system, CI: "", UTGEN_TEMP_STRICT: "", ...env },
  });
  const tmp = /TMP=(.*)/.exec(r.stdout)?.[1] ?? "";
  return { code: r.status, err: r.stderr, tmp, system };
}

describe("the temp-folder check", () => {
  it("a clean run passes and leaves nothing", () => {
    const r = guarded(`fs.mkdirSync(path.join(T, "tsx-0")); const d = fs.mkdtempSync(path.join(T, "utgen-x-")); fs.rmSync(d, { recursive: true });`);
    expect(r.code, r.err).toBe(0);
    expect(r.tmp.startsWith(r.system)).toBe(true); // tests ran with a private TMPDIR inside the system one
    expect(existsSync(r.tmp)).toBe(false);
    expect(readdirSync(r.system).filter((n) => !n.startsWith("tsx-"))).toEqual([]);
  });

  it("a leftover fails the run, named, and is removed anyway", () => {
    const r = guarded(`fs.mkdtempSync(path.join(T, "utgen-engine-")); fs.writeFileSync(path.join(T, "stray.txt"), "x");`);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^error: tests left 2 item\(s\) in their temp folder: stray\.txt, utgen-engine-\w+ — each test must remove what it creates$/m);
    expect(existsSync(r.tmp)).toBe(false);
  });

  it("something written to the system temp folder itself: an error when strict (CI), a warning otherwise", () => {
    // written into the temp folder the guard started with (not its private TMPDIR)
    const strictRun = (strict: boolean) => {
      const system = scratch.make();
      const script = `
        import setup from ${JSON.stringify(path.join(ROOT, "test/setup/temp-guard.ts"))};
        import * as fs from "node:fs";
        const teardown = setup();
        fs.mkdirSync(${JSON.stringify(path.join(system, "utgen-escaped"))});
        teardown();
      `;
      return spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
        cwd: ROOT,
        encoding: "utf8",
        env: { ...process.env, TMPDIR: system, CI: "", UTGEN_TEMP_STRICT: strict ? "1" : "" },
      });
    };
    const w = strictRun(false);
    expect(w.status, w.stderr).toBe(0);
    expect(w.stderr).toMatch(/warning: new entries in .* during the test run .*: utgen-escaped/);
    const e = strictRun(true);
    expect(e.status).toBe(1);
    expect(e.stderr).toMatch(/error: tests created 1 item\(s\) directly in .*: utgen-escaped/);
  });
});
