#!/usr/bin/env node
/**
 * The project's install step for what npm cannot bring: the Debian packages the main job and the tests need.
 * `npm install` / `npm ci` run it (package.json `postinstall`), `npm run setup` re-runs it, `.ci/run` calls it.
 *
 *   main job   bubblewrap (bwrap), python3 + python3-numpy (/usr/bin/python3 imports numpy) + python3-seccomp
 *              (the sandbox's system-call filter), util-linux (setpriv)
 *   npm test   chromium (the report screenshot test)
 *   UTGEN_TEST_SLURM=1   slurm-wlm + munge (test/slurm.test.ts starts a one-node SLURM)
 *
 * When something is missing and we are root (or have password-less sudo) and apt-get is present, it runs
 * `apt-get update` once and `apt-get install` quietly, with one line saying so. Otherwise it prints exactly
 * one line with the command to run. It never fails `npm install` (exit 0) unless `--strict` is given
 * (`.ci/run`): then anything still missing is exit 1.
 *
 *   UTGEN_SKIP_SYSTEM_DEPS=1   check and report only, install nothing
 *   UTGEN_SETUP_ROOT=<dir>     look for the programs under <dir> instead of / (tests use a fake, empty root)
 *
 * Plain Node, no npm packages: `.ci/run` runs it before `npm ci`.
 */
import { spawnSync } from "node:child_process";
import { statSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

/** Where the code sandbox looks for its programs (pipeline/executor/sandbox.ts `which`). */
export const SYSTEM_DIRS = ["/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin"];
/** The executor's default interpreter (`executor.python`). */
export const SANDBOX_PYTHON = "/usr/bin/python3";
/** Where test/report.test.ts looks for a browser. */
const BROWSERS = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"];

/**
 * What to check. `group` says who needs it: `main` (the main job; installed first, on its own) or
 * `test` (npm test; installed separately so an unavailable test package cannot block the main job's).
 * @typedef {{ pkg: string, group: "main" | "test", why: string }} Need
 */

/**
 * Probe the machine. `root` prefixes every absolute path (tests); the programs a privileged install uses
 * (apt-get, sudo) are looked up on PATH.
 * @param {{ root?: string, env?: NodeJS.ProcessEnv, uid?: number }} o
 * @returns {{ checked: string[], missing: Need[], privilege: "root" | "sudo" | "none", apt: boolean }}
 */
export function probe(o = {}) {
  const root = o.root ?? "/";
  const env = o.env ?? process.env;
  const at = (p) => path.join(root, p);
  const program = (name) => SYSTEM_DIRS.some((d) => isFile(at(path.join(d, name))));
  /** @type {Need[]} */
  const missing = [];
  if (!program("bwrap")) missing.push({ pkg: "bubblewrap", group: "main", why: "the code sandbox" });
  const python = at(SANDBOX_PYTHON);
  if (!isFile(python)) {
    missing.push(
      { pkg: "python3", group: "main", why: "the code sandbox" },
      { pkg: "python3-numpy", group: "main", why: "the code sandbox" },
      { pkg: "python3-seccomp", group: "main", why: "the code sandbox" },
    );
  } else {
    if (spawnSync(python, ["-c", "import numpy"], { stdio: "ignore", timeout: 60_000 }).status !== 0) missing.push({ pkg: "python3-numpy", group: "main", why: "the code sandbox" });
    // libseccomp's Python binding: the sandbox compiles its system-call filter with it
    if (spawnSync(python, ["-c", "import seccomp"], { stdio: "ignore", timeout: 60_000 }).status !== 0) missing.push({ pkg: "python3-seccomp", group: "main", why: "the code sandbox" });
  }
  if (!program("setpriv")) missing.push({ pkg: "util-linux", group: "main", why: "the code sandbox" });
  if (!BROWSERS.some((b) => isFile(at(b)))) missing.push({ pkg: "chromium", group: "test", why: "the report test" });
  if (env.UTGEN_TEST_SLURM === "1") {
    if (!["slurmctld", "slurmd", "sbatch"].every(program)) missing.push({ pkg: "slurm-wlm", group: "test", why: "the SLURM test" });
    if (!program("munged")) missing.push({ pkg: "munge", group: "test", why: "the SLURM test" });
  }
  const checked = ["bubblewrap", "python3-numpy", "python3-seccomp", "util-linux", "chromium", ...(env.UTGEN_TEST_SLURM === "1" ? ["slurm-wlm", "munge"] : [])];
  const uid = o.uid ?? process.getuid?.() ?? -1;
  const apt = onPath("apt-get", env);
  let privilege = /** @type {"root" | "sudo" | "none"} */ ("none");
  if (uid === 0) privilege = "root";
  else if (apt && onPath("sudo", env) && spawnSync("sudo", ["-n", "true"], { stdio: "ignore", env, timeout: 30_000 }).status === 0) privilege = "sudo";
  return { checked, missing, privilege, apt };
}

/**
 * Decide what to do (pure). `install`: the commands to run, in order, each as argv; `line`: the one line
 * to print before (installing) or instead (nothing to install, or no way to install).
 * @param {{ checked: string[], missing: Need[], privilege: "root" | "sudo" | "none", apt: boolean }} p
 * @param {{ skip?: boolean }} o
 * @returns {{ line: string, install: string[][][] }}  install: one list of commands per group, main first
 */
export function plan(p, o = {}) {
  const pkgs = p.missing.map((m) => m.pkg);
  if (!pkgs.length) return { line: `utgen setup: system packages present (${p.checked.join(", ")})`, install: [] };
  const needs = describe(p.missing);
  const advice = `sudo apt-get install ${pkgs.join(" ")}`;
  if (o.skip) return { line: `utgen setup: UTGEN_SKIP_SYSTEM_DEPS is set, so nothing was installed; missing ${needs}: run ${advice}`, install: [] };
  if (!p.apt) return { line: `utgen setup: missing ${needs}; install them with the system's package manager (Debian/Ubuntu: ${advice})`, install: [] };
  if (p.privilege === "none") return { line: `utgen setup: missing ${needs}; run ${advice} (or npm run setup as root)`, install: [] };
  const sudo = p.privilege === "sudo" ? ["sudo", "-n"] : [];
  const aptInstall = (list) => [...sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", ...list];
  const groups = ["main", "test"].map((g) => p.missing.filter((m) => m.group === g).map((m) => m.pkg)).filter((l) => l.length);
  const install = groups.map((list, i) => (i === 0 ? [[...sudo, "apt-get", "update", "-qq"], aptInstall(list)] : [aptInstall(list)]));
  return { line: `utgen setup: installing ${pkgs.join(" ")} with ${sudo.length ? "sudo " : ""}apt-get (missing ${needs})`, install };
}

/** "bubblewrap, python3-numpy (the code sandbox) and chromium (the report test)" */
function describe(missing) {
  const byWhy = new Map();
  for (const m of missing) byWhy.set(m.why, [...(byWhy.get(m.why) ?? []), m.pkg]);
  const parts = [...byWhy].map(([why, list]) => `${list.join(", ")} (${why})`);
  return parts.length > 1 ? `${parts.slice(0, -1).join(", ")} and ${parts.at(-1)}` : parts[0];
}

/** Run the install commands quietly; returns one line per failed group (empty when all succeeded). */
export function runInstall(install, env = process.env) {
  const failures = [];
  for (const group of install) {
    for (const argv of group) {
      const r = spawnSync(argv[0], argv.slice(1), { env: { ...env, DEBIAN_FRONTEND: "noninteractive" }, encoding: "utf8", timeout: 30 * 60_000 });
      if (r.status !== 0) {
        const why = lastLine(r.stderr) || lastLine(r.stdout) || r.error?.message || `exit ${r.status}`;
        failures.push(`${argv.filter((a) => !["-n", "-qq", "-y", "--no-install-recommends"].includes(a)).join(" ")} failed (${why})`);
        break; // the next group is independent (a test package must not block the main job's)
      }
    }
  }
  return failures;
}

function lastLine(s) {
  return (s ?? "").trim().split("\n").filter((l) => l.trim()).at(-1)?.trim() ?? "";
}

function isFile(p) {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

function onPath(cmd, env) {
  return (env.PATH ?? "").split(":").some((d) => d && isFile(path.join(d, cmd)));
}

/** The whole step; returns the exit code. `out` gets every line (one, or two when an install fails). */
export function main(argv = process.argv.slice(2), env = process.env, out = (l) => console.log(l)) {
  const strict = argv.includes("--strict");
  const root = env.UTGEN_SETUP_ROOT || "/";
  const before = probe({ root, env });
  const p = plan(before, { skip: env.UTGEN_SKIP_SYSTEM_DEPS === "1" });
  out(p.line);
  if (!p.install.length) return strict && before.missing.length ? 1 : 0;
  const failures = runInstall(p.install, env);
  const still = probe({ root, env }).missing;
  if (failures.length || still.length) {
    const pkgs = still.map((m) => m.pkg);
    out(
      `utgen setup: ${failures.join("; ") || "apt-get finished"}${pkgs.length ? `; still missing ${describe(still)}: run sudo apt-get install ${pkgs.join(" ")}` : ""}`,
    );
  }
  return strict && still.length ? 1 : 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) process.exitCode = main();
