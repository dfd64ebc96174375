// The install step `npm install` runs (scripts/setup-system.mjs): its decisions from a probe, then the real
// script against a fake, empty system root and a fake apt-get on PATH that records its argv and "installs"
// by creating the program files the script looks for.
import { afterEach, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { plan, type Need, type Probe } from "../scripts/setup-system.mjs";

const ROOT = path.resolve(__dirname, "..");
const SCRIPT = path.join(ROOT, "scripts/setup-system.mjs");
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const need = (pkg: string, group: "main" | "test" = "main", why = group === "main" ? "the code sandbox" : "the report test"): Need => ({ pkg, group, why });
const MISSING = [need("bubblewrap"), need("python3-numpy"), need("chromium", "test")];
const probeOf = (p: Partial<Probe>): Probe => ({ checked: ["bubblewrap", "python3-numpy", "util-linux", "chromium"], missing: MISSING, privilege: "root", apt: true, ...p });

describe("setup-system: what it decides", () => {
  it("root with apt: one update, then the main job's packages, then the tests' on their own", () => {
    const p = plan(probeOf({}));
    expect(p.line).toBe("utgen setup: installing bubblewrap python3-numpy chromium with apt-get (missing bubblewrap, python3-numpy (the code sandbox) and chromium (the report test))");
    expect(p.install).toEqual([
      [
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "bubblewrap", "python3-numpy"],
      ],
      [["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"]],
    ]);
  });

  it("password-less sudo: the same commands through sudo -n", () => {
    const p = plan(probeOf({ privilege: "sudo", missing: [need("bubblewrap")] }));
    expect(p.line).toContain("with sudo apt-get");
    expect(p.install).toEqual([[["sudo", "-n", "apt-get", "update", "-qq"], ["sudo", "-n", "apt-get", "install", "-y", "-qq", "--no-install-recommends", "bubblewrap"]]]);
  });

  it("no privilege, no apt, or opted out: exactly one line with the command, nothing run", () => {
    const none = plan(probeOf({ privilege: "none" }));
    expect(none).toEqual({
      line: "utgen setup: missing bubblewrap, python3-numpy (the code sandbox) and chromium (the report test); run sudo apt-get install bubblewrap python3-numpy chromium (or npm run setup as root)",
      install: [],
    });
    const noApt = plan(probeOf({ apt: false }));
    expect(noApt.install).toEqual([]);
    expect(noApt.line).toContain("install them with the system's package manager (Debian/Ubuntu: sudo apt-get install bubblewrap python3-numpy chromium)");
    const skipped = plan(probeOf({}), { skip: true });
    expect(skipped.install).toEqual([]);
    expect(skipped.line).toContain("UTGEN_SKIP_SYSTEM_DEPS is set, so nothing was installed");
    expect(skipped.line).toContain("run sudo apt-get install bubblewrap python3-numpy chromium");
  });

  it("nothing missing: one line saying what was checked", () => {
    expect(plan(probeOf({ missing: [] }))).toEqual({ line: "utgen setup: system packages present (bubblewrap, python3-numpy, util-linux, chromium)", install: [] });
  });
});

/** A fake machine: an empty system root, and a bin folder (the whole PATH) with apt-get and sudo. */
function fakeMachine(opts: { apt?: boolean; failPackage?: string } = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), "utgen-setup-"));
  dirs.push(dir);
  const root = path.join(dir, "root");
  const bin = path.join(dir, "bin");
  const log = path.join(dir, "apt.log");
  mkdirSync(path.join(root, "usr/bin"), { recursive: true });
  mkdirSync(bin);
  const script = (file: string, text: string) => {
    writeFileSync(file, text);
    chmodSync(file, 0o755);
  };
  // apt-get records its argv; `install` creates each package's program under the fake root.
  const files: Record<string, string> = { bubblewrap: "usr/bin/bwrap", "util-linux": "usr/bin/setpriv", chromium: "usr/bin/chromium", python3: "usr/bin/python3" };
  if (opts.apt !== false) {
    script(
      path.join(bin, "apt-get"),
      [
        "#!/bin/sh",
        `echo "apt-get $*" >> ${log}`,
        '[ "$1" = install ] || exit 0',
        ...(opts.failPackage ? [`case " $* " in *" ${opts.failPackage} "*) echo "E: Package '${opts.failPackage}' has no installation candidate" >&2; exit 100;; esac`] : []),
        "for p in \"$@\"; do case $p in",
        ...Object.entries(files).map(([p, f]) => `  ${p}) printf '#!/bin/sh\\nexit 0\\n' > ${path.join(root, f)}; /bin/chmod 755 ${path.join(root, f)};;`),
        "esac; done",
        "",
      ].join("\n"),
    );
  }
  // password-less sudo: `sudo -n true` succeeds, `sudo -n apt-get …` runs apt-get
  script(path.join(bin, "sudo"), `#!/bin/sh\n[ "$1" = -n ] && shift\n[ "$1" = true ] && exit 0\necho "sudo $*" >> ${log}\nexec "$@"\n`);
  const run = (args: string[] = []) => {
    const r = spawnSync(process.execPath, [SCRIPT, ...args], { env: { PATH: bin, UTGEN_SETUP_ROOT: root }, encoding: "utf8" });
    return { code: r.status, lines: r.stdout.split("\n").filter(Boolean), stderr: r.stderr, apt: existsSync(log) ? readFileSync(log, "utf8").split("\n").filter(Boolean) : [] };
  };
  return { root, run };
}

describe("setup-system: the script on a fake machine where nothing is installed", () => {
  const root = process.getuid?.() === 0;
  // as root apt-get runs directly; otherwise through the fake password-less sudo
  const apt = (s: string) => `apt-get ${s}`;

  it("installs with apt-get (update once, main packages, then chromium) and says so in one line", () => {
    const m = fakeMachine();
    const r = m.run();
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.lines).toEqual([
      `utgen setup: installing bubblewrap python3 python3-numpy python3-seccomp util-linux chromium with ${root ? "" : "sudo "}apt-get (missing bubblewrap, python3, python3-numpy, python3-seccomp, util-linux (the code sandbox) and chromium (the report test))`,
    ]);
    expect(r.apt.filter((l) => l.startsWith("apt-get"))).toEqual([
      apt("update -qq"),
      apt("install -y -qq --no-install-recommends bubblewrap python3 python3-numpy python3-seccomp util-linux"),
      apt("install -y -qq --no-install-recommends chromium"),
    ]);
    expect(r.apt.some((l) => l.startsWith("sudo"))).toBe(!root);
    // a second run finds everything and installs nothing
    const again = m.run();
    expect(again.lines).toEqual(["utgen setup: system packages present (bubblewrap, python3-numpy, python3-seccomp, util-linux, chromium)"]);
    expect(again.apt).toEqual(r.apt);
  });

  it("a test package apt cannot install does not block the main job's; the line names it and the command", () => {
    const m = fakeMachine({ failPackage: "chromium" });
    const r = m.run();
    expect(r.code).toBe(0);
    expect(r.lines).toHaveLength(2);
    expect(r.lines[1]).toBe(
      `utgen setup: ${root ? "" : "sudo "}apt-get install chromium failed (E: Package 'chromium' has no installation candidate); still missing chromium (the report test): run sudo apt-get install chromium`,
    );
    expect(existsSync(path.join(m.root, "usr/bin/bwrap"))).toBe(true);
    expect(m.run(["--strict"]).code).toBe(1);
  });

  it("without apt-get: exactly one line with the command, exit 0 (--strict: 1)", () => {
    const m = fakeMachine({ apt: false });
    const r = m.run();
    expect(r.code).toBe(0);
    expect(r.lines).toEqual([
      "utgen setup: missing bubblewrap, python3, python3-numpy, python3-seccomp, util-linux (the code sandbox) and chromium (the report test); install them with the system's package manager (Debian/Ubuntu: sudo apt-get install bubblewrap python3 python3-numpy python3-seccomp util-linux chromium)",
    ]);
    expect(r.apt).toEqual([]);
    expect(m.run(["--strict"]).code).toBe(1);
  });

  it("numpy missing from an existing /usr/bin/python3 asks for python3-numpy only", () => {
    const m = fakeMachine({ apt: false });
    for (const [f, text] of [
      ["usr/bin/bwrap", "exit 0"],
      ["usr/bin/setpriv", "exit 0"],
      ["usr/bin/chromium", "exit 0"],
      ["usr/bin/python3", '[ "$2" = "import numpy" ] && exit 1; exit 0'],
    ]) {
      writeFileSync(path.join(m.root, f), `#!/bin/sh\n${text}\n`);
      chmodSync(path.join(m.root, f), 0o755);
    }
    expect(m.run().lines).toEqual([
      "utgen setup: missing python3-numpy (the code sandbox); install them with the system's package manager (Debian/Ubuntu: sudo apt-get install python3-numpy)",
    ]);
  });
});
