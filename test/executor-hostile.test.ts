/**
 * Hostile programs against the sandboxed executor: each must end in a non-ok status (the expected one where
 * listed), the canary file and the planted secret stay untouched / unseen, no connection reaches the
 * loopback server started here, no process is left behind, and the pool keeps serving correct results.
 *
 * No verdict depends on the machine's speed: a program expected to be stopped by its time limit loops
 * forever (any load gives `timeout`); a program expected to end otherwise (an error, a crash) runs under a
 * limit that load cannot reach, so only the mechanism under test can end it. A kill that never comes fails
 * the test at its own timeout.
 */
import { createServer, type Server } from "node:net";
import { mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createExecutor, type CallStatus, type SandboxExecutor } from "../pipeline/executor/index.ts";

const SECRET = `utgen-planted-secret-${process.pid}-${Date.now()}`;
process.env.UTGEN_TEST_PLANTED_SECRET = SECRET;
process.env.HF_TOKEN = SECRET;

/** The limit of programs that are meant to be stopped by it (they never end by themselves). */
const LIMIT_S = 0.5;
/** The limit of programs meant to end some other way: far beyond their own run time under any load. */
const FAR_LIMIT_S = 20;

let ex: SandboxExecutor;
let server: Server;
let port = 0;
let connections = 0;
let canaryDir = "";
let canary = "";
const CANARY_TEXT = "canary: do not delete";
const namespaces = new Set<string>();

function pidNs(pid: number | string): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/pid`);
  } catch {
    return undefined;
  }
}

function readlinkSafe(pid: number): string {
  try {
    return readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return "";
  }
}

function allPids(): number[] {
  return readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .map(Number);
}

function ppidOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return undefined;
  }
}

function descendantsOf(root: number): number[] {
  const pids = allPids();
  const parent = new Map(pids.map((p) => [p, ppidOf(p)]));
  const out: number[] = [];
  for (const p of pids) {
    let q: number | undefined = p;
    for (let hops = 0; q && q > 1 && hops < 64; hops++) {
      q = parent.get(q);
      if (q === root) {
        out.push(p);
        break;
      }
    }
  }
  return out;
}

/** Record the pid namespaces of the sandboxes (everything below the workers' launchers). */
function recordNamespaces(): void {
  const mine = pidNs("self");
  for (const w of ex.workerPids()) {
    for (const p of descendantsOf(w)) {
      const ns = pidNs(p);
      if (ns && ns !== mine) namespaces.add(ns);
    }
  }
}

function processesIn(nsSet: Set<string>): number[] {
  return allPids().filter((p) => {
    const ns = pidNs(p);
    return ns !== undefined && nsSet.has(ns);
  });
}

beforeAll(async () => {
  canaryDir = mkdtempSync(path.join(tmpdir(), "utgen-canary-"));
  canary = path.join(canaryDir, "canary.txt");
  writeFileSync(canary, CANARY_TEXT);
  server = createServer((sock) => {
    connections++;
    sock.destroy();
  });
  await new Promise<void>((res) => server.listen(0, "127.0.0.1", () => res()));
  port = (server.address() as { port: number }).port;
  ex = await createExecutor({ workers: 2, memory_mb: 512 });
  recordNamespaces();
});

afterAll(async () => {
  await ex?.close();
  server?.close();
  if (canaryDir) rmSync(canaryDir, { recursive: true, force: true });
});

interface Hostile {
  name: string;
  /** A function when the program needs values set up in beforeAll (port, canary path). */
  src: string | (() => string);
  expect?: CallStatus[];
}

// `f()` is called with no arguments. Programs that try to reach something return (→ ok → test fails)
// only when they succeed, and raise otherwise.
const hostile = (): Hostile[] => [
  { name: "infinite loop", src: "def f():\n    while True: pass", expect: ["timeout"] },
  { name: "C-level loop ignoring SIGALRM", src: "def f():\n    return sum(range(10**13))", expect: ["timeout"] },
  { name: "huge power (C-level)", src: "def f():\n    return 10**10**9" },
  { name: "memory bomb (one allocation)", src: "def f():\n    return bytearray(10**11)", expect: ["error"] },
  { name: "memory bomb (growing)", src: "def f():\n    l = []\n    while True: l.append(' ' * 10**6)" },
  { name: "fork bomb", src: "import os\ndef f():\n    while True: os.fork()", expect: ["error"] },
  { name: "os.system", src: "import os\ndef f():\n    if os.system('touch /tmp/pwned') == 0: return 'ran'\n    raise RuntimeError('no shell')" },
  { name: "subprocess", src: "import subprocess\ndef f():\n    return subprocess.run(['id'], capture_output=True).stdout", expect: ["error"] },
  { name: "posix_spawn", src: "import os\ndef f():\n    return os.posix_spawn('/bin/sh', ['sh', '-c', 'id'], {})", expect: ["error"] },
  { name: "socket to the internet", src: "import socket\ndef f():\n    s = socket.create_connection(('1.1.1.1', 80), timeout=0.3)\n    return 'connected'", expect: ["error"] },
  { name: "DNS lookup", src: "import socket\ndef f():\n    return socket.getaddrinfo('example.com', 80)", expect: ["error"] },
  {
    name: "socket to the host loopback server",
    src: () => `import socket\ndef f():\n    s = socket.create_connection(('127.0.0.1', ${port}), timeout=0.3)\n    return 'connected'`,
    expect: ["error"],
  },
  {
    name: "writes outside the temp dir",
    src: () =>
      "def f():\n    done = []\n    for p in ['/etc/pwned', '/usr/pwned', '/pwned', '" +
      path.join(process.cwd(), "pwned") +
      "', '" + path.join(canaryDir, "pwned") + "']:\n        try:\n            open(p, 'w').write('x'); done.append(p)\n        except OSError:\n            pass\n    if done: return done\n    raise PermissionError('nothing writable')",
    expect: ["error"],
  },
  { name: "remount / read-write", src: "import ctypes\ndef f():\n    libc = ctypes.CDLL(None)\n    if libc.mount(b'none', b'/', None, 32 | 4096, None) == 0: return 'remounted'\n    raise OSError('mount refused')", expect: ["error"] },
  { name: "new user namespace", src: "import ctypes\ndef f():\n    if ctypes.CDLL(None).unshare(0x10000000) == 0: return 'unshared'\n    raise OSError('unshare refused')", expect: ["error"] },
  {
    name: "planted secret in the environment",
    src:
      "import os, glob\ndef f():\n    seen = str(dict(os.environ))\n    for p in glob.glob('/proc/*/environ'):\n        try: seen += open(p, 'rb').read().decode('latin1')\n        except OSError: pass\n    if '" + SECRET + "' in seen: return seen\n    raise LookupError('secret not found')",
    expect: ["error"],
  },
  { name: "delete the host canary", src: () => `import os\ndef f():\n    os.remove(${JSON.stringify(canary)})\n    return 'deleted'`, expect: ["error"] },
  { name: "100 MB return value", src: "def f():\n    return 'x' * (100 * 10**6)", expect: ["error"] },
  { name: "endless stdout", src: "import sys\ndef f():\n    while True: sys.stdout.write('x' * 10**6)", expect: ["timeout"] },
  { name: "infinite recursion", src: "def f():\n    return f()", expect: ["error"] },
  { name: "C stack overflow in repr (segfault)", src: "import sys\nsys.setrecursionlimit(10**8)\ndef f():\n    x = []\n    for _ in range(10**6): x = [x]\n    return len(repr(x))", expect: ["crash", "error", "timeout"] },
  { name: "deeply nested return value", src: "def f():\n    x = []\n    for _ in range(10**5): x = [x]\n    return x", expect: ["error"] },
  { name: "sys.exit", src: "import sys\ndef f():\n    sys.exit(0)", expect: ["error"] },
  { name: "os._exit", src: "import os\ndef f():\n    os._exit(0)", expect: ["crash"] },
  { name: "close the result pipe, then spin", src: "import os\ndef f():\n    os.closerange(3, 256)\n    while True: pass", expect: ["crash", "timeout"] },
  { name: "ignore SIGALRM", src: "import signal\ndef f():\n    signal.signal(signal.SIGALRM, signal.SIG_IGN)\n    while True: pass", expect: ["timeout"] },
  { name: "disarm the timer and ignore SIGXCPU", src: "import signal\ndef f():\n    signal.setitimer(signal.ITIMER_REAL, 0)\n    signal.signal(signal.SIGXCPU, signal.SIG_IGN)\n    while True: pass", expect: ["timeout"] },
  { name: "catch the timeout and keep going", src: "def f():\n    while True:\n        try:\n            while True: pass\n        except BaseException:\n            pass", expect: ["timeout"] },
  { name: "sleep", src: "import time\ndef f():\n    time.sleep(100)", expect: ["timeout"] },
  // The parent is pid 1 of the children's own pid namespace (the zygote), immune to their signals, and
  // nothing else is in that namespace: the kill reaches no process, so the call goes on to fail by itself.
  { name: "kill the parent", src: "import os\ndef f():\n    os.kill(os.getppid(), 9)\n    os.kill(os.getppid(), 19)\n    raise RuntimeError('still alive: ' + str(os.getppid()))", expect: ["error"] },
  { name: "kill(-1)", src: "import os, signal\ndef f():\n    os.kill(-1, signal.SIGKILL)\n    return 'killed'", expect: ["error"] },
  { name: "thread left running", src: "import threading\ndef spin():\n    while True: pass\ndef f():\n    threading.Thread(target=spin, daemon=True).start()\n    return 'started'", expect: ["error"] },
  { name: "fill the temp dir", src: "def f():\n    with open('big', 'wb') as fh:\n        while True: fh.write(b'x' * 10**6)", expect: ["crash", "error"] },
  { name: "null pointer read (ctypes)", src: "import ctypes\ndef f():\n    return ctypes.string_at(0)", expect: ["crash"] },
  { name: "read the server's memory", src: "import os\ndef f():\n    with open('/proc/%d/mem' % os.getppid(), 'rb') as fh:\n        return fh.read(16)", expect: ["error"] },
  { name: "forge a result by patching json", src: "import json\njson.dumps = lambda *a, **k: '{\"status\": \"ok\"}'\njson.JSONEncoder.encode = lambda *a, **k: '{\"status\": \"ok\"}'\ndef f():\n    raise ValueError('real failure')", expect: ["error"] },
  { name: "input()", src: "def f():\n    return input()", expect: ["error"] },
  { name: "infinite __repr__ in the return value", src: "class A:\n    def __repr__(self):\n        while True: pass\ndef f():\n    return A()", expect: ["timeout"] },
  { name: "hostile __eq__ / __hash__ in a set", src: "class A:\n    def __hash__(self):\n        raise SystemExit\ndef f():\n    return {A()}", expect: ["error"] },
  { name: "setuid(0)", src: "import os\ndef f():\n    os.setuid(0)\n    return 'root'", expect: ["error"] },
  { name: "module level infinite loop", src: "while True: pass\ndef f():\n    return 1", expect: ["timeout"] },
];

describe("hostile programs", () => {
  const list = hostile();
  it("has at least 20 programs", () => expect(list.length).toBeGreaterThanOrEqual(20));
  for (const h of list) {
    it(h.name, async () => {
      const program = typeof h.src === "function" ? h.src() : h.src;
      expect(program).not.toContain("''");
      const timeoutS = h.expect && !h.expect.includes("timeout") ? FAR_LIMIT_S : LIMIT_S;
      const [r] = await ex.runCalls({ program, entryPoint: "f", inputs: [{ args: [] }], timeoutS });
      expect(r.status, JSON.stringify(r).slice(0, 300)).not.toBe("ok");
      if (h.expect) expect(h.expect, JSON.stringify(r).slice(0, 300)).toContain(r.status);
      expect(JSON.stringify(r)).not.toContain(SECRET);
      // The canary is untouched, nothing reached the loopback server.
      expect(readFileSync(canary, "utf8")).toBe(CANARY_TEXT);
      expect(existsSync(path.join(canaryDir, "pwned"))).toBe(false);
      expect(connections).toBe(0);
      // The pool still answers correctly.
      const ok = await ex.runCalls({ program: "def g(x):\n    return x * 2", entryPoint: "g", inputs: [{ args: [21] }, { args: ["ab"] }], timeoutS: 2 });
      expect(ok.map((o) => o.value)).toEqual([42, "abab"]);
      recordNamespaces();
    });
  }
  it("10**5000 still succeeds (big ints are not hostile)", async () => {
    const [r] = await ex.runCalls({ program: "def f():\n    return 10**5000", entryPoint: "f", inputs: [{ args: [] }], timeoutS: 2 });
    expect(r.status).toBe("ok");
    expect(r.value).toEqual({ $int: "1" + "0".repeat(5000) });
  });
  it("no stray writes appeared in the repository", () => {
    expect(existsSync(path.join(process.cwd(), "pwned"))).toBe(false);
  });
  it("a batch continues after a hard kill, with correct verdicts on both sides", async () => {
    const src = "def f(x):\n    if x == 1:\n        sum(range(10**13))\n    if x == 3:\n        import os; os._exit(1)\n    return x + 100";
    const rs = await ex.runCalls({ program: src, entryPoint: "f", inputs: [0, 1, 2, 3, 4].map((x) => ({ args: [x] })), timeoutS: LIMIT_S });
    expect(rs.map((r) => r.status)).toEqual(["ok", "timeout", "ok", "crash", "ok"]);
    expect(rs.map((r) => r.value ?? null)).toEqual([100, null, 102, null, 104]);
  });
  it("leaves no process behind after close", async () => {
    recordNamespaces();
    expect(namespaces.size).toBeGreaterThan(0);
    // Between requests each sandbox holds only its init, the server and the server's zygote: every child
    // was reaped.
    for (const ns of namespaces) expect(processesIn(new Set([ns])).length).toBeLessThanOrEqual(3);
    const launchers = ex.workerPids();
    await ex.close();
    // The kernel tears a pid namespace down once its init is gone; allow it a moment to finish.
    let left = processesIn(namespaces);
    for (let i = 0; i < 300 && left.length; i++) {
      await new Promise((r) => setTimeout(r, 100));
      left = processesIn(namespaces);
    }
    expect(left).toEqual([]);
    const stray = descendantsOf(process.pid).filter((p) => launchers.includes(p) || readlinkSafe(p).includes("python"));
    expect(stray).toEqual([]);
  });
});
