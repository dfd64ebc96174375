/**
 * Builds the command line that starts one sandboxed Python fork server, and checks that the isolation
 * it relies on is available (fail closed). The server runs as
 *   setpriv --reuid=65534 --regid=65534 --clear-groups        (only when we are root: real uid drop, so
 *                                                               RLIMIT_NPROC applies and no root caps)
 *   bwrap --unshare-all --die-with-parent --new-session --cap-drop ALL --disable-userns
 *         read-only /usr, a few files of /etc (ETC_KEEP), /bin, /lib… as the host has them, fresh /proc,
 *         /dev, a size-capped private tmpfs /tmp, --clearenv
 *   /usr/bin/python3 -I -c <bootstrap: compile and run server.py> <n> <server.py in n pieces> <limits json>
 * `--unshare-all` gives it no network (own empty net namespace), no view of host pids, IPC or hostname.
 * With `unsafe_no_sandbox` the server is started directly (empty environment, rlimits only).
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, lstatSync, readFileSync, readlinkSync, realpathSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { UserError } from "../errors.ts";

export const NOBODY = 65534;
const HERE = path.dirname(fileURLToPath(import.meta.url));
let serverSource: string | undefined;

/** The fork server's source, passed with `-c` so the sandbox needs no view of the repository. */
export function serverScript(): string {
  serverSource ??= readFileSync(path.join(HERE, "server.py"), "utf8");
  return serverSource;
}

export interface SandboxOptions {
  python: string;
  unsafe: boolean;
  tmpfsMb: number;
  /** false: no CAP_SYS_ADMIN for the fork server (no pid/IPC namespaces or tmpfs of its own; benchmarks only). */
  hardening?: boolean;
  /** Limits handed to server.py (memory_mb, nofile, fsize, grace_s, out_cap). */
  limits: Record<string, number>;
}

function which(cmd: string): string | undefined {
  for (const dir of ["/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin"]) {
    const p = path.join(dir, cmd);
    if (existsSync(p)) return p;
  }
  return undefined;
}

/** Read-only view of the system: /usr and /etc bound, top-level symlinks (merged /usr) recreated. */
/**
 * What the sandbox sees of the host's /etc: the dynamic linker's cache and configuration, the alternatives
 * that point at the BLAS/LAPACK numpy loads, time zone, and the user/group databases — not the whole folder
 * (whose world-readable files — hostname, os-release, package and service configuration — are none of a
 * program's business).
 */
export const ETC_KEEP = ["ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime", "passwd", "group", "nsswitch.conf"];

function systemBinds(python: string): string[] {
  const args: string[] = ["--ro-bind", "/usr", "/usr", "--dir", "/etc"];
  for (const name of ETC_KEEP) {
    const p = path.join("/etc", name);
    if (existsSync(p)) args.push("--ro-bind", p, p);
  }
  for (const top of ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"]) {
    if (!existsSync(top)) continue;
    const st = lstatSync(top);
    if (st.isSymbolicLink()) args.push("--symlink", readlinkSync(top), top);
    else if (st.isDirectory()) args.push("--ro-bind", top, top);
  }
  // A python outside /usr (a venv, /opt/…): bind its installation prefix read-only too.
  const real = realpathSync(python);
  if (!real.startsWith("/usr/")) {
    const prefix = path.dirname(path.dirname(real));
    args.push("--ro-bind", prefix, prefix);
    if (python !== real && !python.startsWith("/usr/")) {
      const vprefix = path.dirname(path.dirname(python));
      if (vprefix !== prefix) args.push("--ro-bind", vprefix, vprefix);
    }
  }
  return args;
}

/**
 * The one writable place of a fork server's sandbox: a tmpfs of its own, mounted on a read-only /tmp. The
 * server empties it after every child (children share the server's uid, so anything writable to the server
 * is writable to them: with only this tmpfs writable, emptying it is all it takes to keep programs apart).
 */
export const SERVER_TMP = "/tmp/exec";

/**
 * The fork server's `-c` command: a bootstrap that compiles server.py's text (its first argument says in how many
 * pieces the next arguments hold it) and runs it.
 * Given the text itself, `python3 -c` would keep the parser's tree of all of it alive for as long as the
 * script runs — the server's whole life — and every zygote and child would inherit those megabytes of heap
 * (the lean zygote's C heap: 8.2 MB that way, 7.6 MB this way and 3.7 MB once the zygote gives the freed pages
 * back with malloc_trim), each page of them copied into every child's page table at fork and torn down at its
 * exit. compile() frees its tree before the server starts.
 */
const SERVER_BOOT = "import sys\nexec(compile(''.join(sys.argv.pop(1) for _ in range(int(sys.argv.pop(1)))), '<string>', 'exec'))";

/**
 * A text as argv pieces the kernel takes (one argument may hold at most 128 KiB, MAX_ARG_STRLEN): 40,000 UTF-16
 * units are at most 120,000 bytes of UTF-8, and no piece ends inside a surrogate pair.
 */
export function argvPieces(text: string, units = 40_000): string[] {
  const out: string[] = [];
  for (let i = 0; i < text.length; ) {
    let j = Math.min(text.length, i + units);
    if (j < text.length && /[\uD800-\uDBFF]/.test(text[j - 1])) j--;
    out.push(text.slice(i, j));
    i = j;
  }
  return out;
}

/** argv that starts one fork server: its source in pieces (their count first), then its limits. */
export function serverCommand(o: SandboxOptions): string[] {
  const cfg = o.unsafe ? { ...o.limits, tmp: tmpdir() } : { ...o.limits, tmp_root: SERVER_TMP, sandboxed: true };
  const pieces = argvPieces(serverScript());
  return sandboxedPython(o, SERVER_BOOT, [String(pieces.length), ...pieces, JSON.stringify(cfg)], { serverTmp: true });
}

/**
 * argv that runs Python `source` (passed with -c) inside the sandbox, as the fork servers run. With
 * `serverTmp`, /dev and /tmp are read-only and SERVER_TMP is the only writable mount (the fork servers);
 * without, /tmp is one writable tmpfs and /dev (with /dev/shm, which multiprocessing needs) stays writable
 * (the reference harness, which runs one trusted script per sandbox).
 */
export function sandboxedPython(o: SandboxOptions, source: string, args: string[] = [], opts: { serverTmp?: boolean } = {}): string[] {
  const py = [o.python, "-I", "-c", source, ...args];
  if (o.unsafe) return py;
  const size = String(o.tmpfsMb * 1024 * 1024);
  const mounts = opts.serverTmp
    ? ["--dev", "/dev", "--remount-ro", "/dev", "--tmpfs", "/tmp", "--dir", SERVER_TMP, "--remount-ro", "/tmp", "--size", size, "--tmpfs", SERVER_TMP]
    : ["--dev", "/dev", "--size", size, "--tmpfs", "/tmp"];
  const bwrap = which("bwrap")!;
  const inner = [
    bwrap,
    "--unshare-all",
    "--unshare-user",
    "--die-with-parent",
    "--new-session",
    "--cap-drop",
    "ALL",
    // CAP_SYS_ADMIN inside the sandbox's own user namespace only (never the host's): the fork server uses it
    // to put its children in a pid namespace of their own, to give each request a fresh IPC namespace and to
    // mount each child a fresh size- and inode-limited tmpfs. Every child drops it before anything else runs.
    ...(opts.serverTmp && o.hardening !== false ? ["--cap-add", "CAP_SYS_ADMIN"] : []),
    "--disable-userns",
    ...systemBinds(o.python),
    "--proc",
    "/proc",
    ...mounts,
    "--remount-ro",
    "/",
    "--chdir",
    "/tmp",
    "--clearenv",
    "--setenv",
    "OPENBLAS_NUM_THREADS",
    "1",
    "--setenv",
    "OMP_NUM_THREADS",
    "1",
    "--setenv",
    "MKL_NUM_THREADS",
    "1",
    "--setenv",
    "LANG",
    "C.UTF-8",
    ...py,
  ];
  if (process.getuid?.() === 0) {
    return [which("setpriv")!, `--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups", ...inner];
  }
  return inner;
}

/** The minimal environment the sandbox launcher itself gets (the server's is cleared by bwrap). */
export const launcherEnv = { PATH: "/usr/bin:/bin" };

/**
 * Fail closed: throw a one-line UserError naming what to install when the isolation is unavailable.
 * Runs a real sandboxed python once so a kernel without user namespaces is caught here too.
 */
export function checkSandbox(
  o: SandboxOptions,
  tools: { bwrap?: string; setpriv?: string } = { bwrap: which("bwrap"), setpriv: which("setpriv") },
): void {
  const probe = checkTools(o, tools);
  if (!probe) return;
  const r = spawnSync(probe[0], probe.slice(1), { env: launcherEnv, encoding: "utf8", timeout: 30_000 });
  judgeProbe(o, r.status, r.stdout, r.stderr || r.error?.message || "");
}

/**
 * checkSandbox without blocking the event loop: the same checks and messages. What needs no process (the
 * interpreter, bubblewrap, setpriv) throws at once; the probe runs as a child process whose verdict the
 * returned promise carries (createExecutor awaits it while the workers start).
 */
export function checkSandboxAsync(o: SandboxOptions): Promise<void> {
  const probe = checkTools(o, { bwrap: which("bwrap"), setpriv: which("setpriv") });
  if (!probe) return Promise.resolve();
  return new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
    const ch = spawn(probe[0], probe.slice(1), { env: launcherEnv, stdio: ["ignore", "pipe", "pipe"], timeout: 30_000 });
    let stdout = "";
    let stderr = "";
    ch.stdout.setEncoding("utf8").on("data", (d) => (stdout += d));
    ch.stderr.setEncoding("utf8").on("data", (d) => (stderr += d));
    ch.on("error", (e) => resolve({ status: null, stdout, stderr: stderr || e.message }));
    ch.on("close", (code) => resolve({ status: code, stdout, stderr }));
  }).then((r) => judgeProbe(o, r.status, r.stdout, r.stderr));
}

/** The checks that need no process (interpreter, bubblewrap, setpriv); the probe's command, or undefined in unsafe mode. */
function checkTools(o: SandboxOptions, tools: { bwrap?: string; setpriv?: string }): string[] | undefined {
  if (!existsSync(o.python)) {
    throw new UserError(
      `executor.python ${o.python} does not exist: run sudo apt-get install python3 python3-numpy (or npm run setup as root), or set executor.python`,
    );
  }
  if (o.unsafe) return undefined;
  if (!tools.bwrap) {
    throw new UserError(
      "the code sandbox needs bubblewrap: run sudo apt-get install bubblewrap (or npm run setup as root), or set executor.unsafe_no_sandbox: true to run generated code WITHOUT isolation at your own risk",
    );
  }
  if (process.getuid?.() === 0 && !tools.setpriv) {
    throw new UserError(
      "running as root, the code sandbox needs setpriv to drop to an unprivileged uid: run sudo apt-get install util-linux (or npm run setup as root), or set executor.unsafe_no_sandbox: true at your own risk",
    );
  }
  const cmd = serverCommand({ ...o, limits: {} });
  // Replace the server with a probe that reports the uid and whether numpy imports.
  return cmd.slice(0, cmd.indexOf("-c") + 1).concat([
    "import os, sys\ntry:\n import numpy\n n = 1\nexcept Exception:\n n = 0\ntry:\n import seccomp\n s = 1\nexcept Exception:\n s = 0\nprint(os.getuid(), n, s)",
  ]);
}

/** What the probe's exit status and output say: nothing, or the one-line UserError naming the fix. */
function judgeProbe(o: SandboxOptions, status: number | null, stdout: string, stderr: string): void {
  if (status !== 0) {
    const why = (stderr || `exit ${status}`).trim().split("\n")[0];
    throw new UserError(
      `the code sandbox (bubblewrap) cannot start here (${why}): enable unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1 / user.max_user_namespaces>0) or set executor.unsafe_no_sandbox: true at your own risk`,
    );
  }
  const [uid, numpy, seccomp] = stdout.trim().split(/\s+/);
  if (uid === "0") {
    throw new UserError("the code sandbox still runs as uid 0: check setpriv/bubblewrap (util-linux, bubblewrap) installation");
  }
  if (numpy !== "1") {
    throw new UserError(`numpy is not importable by ${o.python} (the UTGen prelude imports it): run sudo apt-get install python3-numpy (or npm run setup as root)`);
  }
  if (seccomp !== "1") {
    throw new UserError(
      `libseccomp's Python binding is not importable by ${o.python} (the sandbox builds its system-call filter with it): run sudo apt-get install python3-seccomp (or npm run setup as root)`,
    );
  }
}

/** The UTGen prelude the fork server preloads (the `PRELUDE = """…"""` block of server.py). */
export function preludeSource(): string {
  const m = /PRELUDE = """([\s\S]*?)"""/.exec(serverScript());
  if (!m) throw new Error("server.py: PRELUDE block not found");
  return m[1];
}
