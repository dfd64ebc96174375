/**
 * Sandbox hardening (issue #16): nothing survives a request, nothing reaches the kernel it does not need, no
 * request can break the pool. Each probe is a program (or a request) an attacker would send through the
 * executor API as the stages call it; each asserts the safe outcome, and a control shows the probe's
 * mechanism works where it is allowed, so a pass is not vacuous.
 */
import { readdirSync, readFileSync } from "node:fs";
import { release } from "node:os";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createExecutor, ExecutorRequestError, type CallResult, type SandboxExecutor } from "../pipeline/executor/index.ts";

let ex: SandboxExecutor;
beforeAll(async () => {
  ex = await createExecutor({ workers: 2 });
});
afterAll(async () => {
  await ex?.close();
});

const call = async (program: string, args: unknown[] = [], timeoutS = 2): Promise<CallResult> =>
  (await ex.runCalls({ program, entryPoint: "f", inputs: [{ args: args as never[] }], timeoutS }))[0];

/** A syscall through ctypes: returns [result, errno]. */
const SYSCALL = `import ctypes, os
_libc = ctypes.CDLL(None, use_errno=True)
def sc(nr, *args):
    r = _libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    return [r, ctypes.get_errno()]
`;

describe("state does not outlive a request", () => {
  it("System V shared memory, message queues and semaphores are refused (so nothing is left for the next program)", async () => {
    // x86-64 numbers: shmget 29, msgget 68, semget 64; key 4242, IPC_CREAT|0666.
    const r = await call(`${SYSCALL}
def f():
    return [sc(29, 4242, 1 << 20, 0o1666), sc(68, 4242, 0o1666), sc(64, 4242, 1, 0o1666)]`);
    expect(r.status).toBe("ok");
    for (const [res, errno] of r.value as number[][]) {
      expect(res).toBe(-1);
      expect(errno).toBe(1); // EPERM
    }
    const next = await call(`${SYSCALL}
def f():
    return sc(29, 4242, 0, 0)`);
    expect((next.value as number[])[0]).toBe(-1);
  });

  it("each request's children get an IPC namespace of their own", async () => {
    const one = await createExecutor({ workers: 1 });
    try {
      const src = "import os\ndef f():\n    return os.readlink('/proc/self/ns/ipc')";
      const job = { program: src, entryPoint: "f", inputs: [{ args: [] }], timeoutS: 1 };
      const ns: unknown[] = [];
      for (let i = 0; i < 3; i++) ns.push((await one.runPrograms([job]))[0].results[0].value);
      expect(ns[0]).toMatch(/^ipc:\[\d+\]$/);
      expect(new Set(ns).size).toBe(3);
    } finally {
      await one.close();
    }
  });

  it("POSIX message queues and the kernel keyring are refused", async () => {
    // mq_open 240, add_key 248, keyctl 250 (KEYCTL_GET_KEYRING_ID = 0, KEY_SPEC_USER_KEYRING = -4), request_key 249
    const r = await call(`${SYSCALL}
def f():
    name = ctypes.create_string_buffer(b"/utgen")
    return [sc(240, ctypes.addressof(name), 0o100 | 2, 0o600, 0), sc(250, 0, -4, 0), sc(248, 0, 0, 0, 0, 0)]`);
    for (const [res, errno] of r.value as number[][]) {
      expect(res).toBe(-1);
      expect(errno).toBe(1);
    }
  });

  it("a value a program leaves in a file, memory or its environment is gone for the next program", async () => {
    const writer = await call(`import os
def f():
    open("left.txt", "w").write("SECRET-A")
    os.environ["LEFT"] = "SECRET-B"
    return os.getcwd()`);
    expect(writer.status).toBe("ok");
    const reader = await call(`import os
def f():
    found = []
    for root, dirs, files in os.walk("/tmp"):
        for n in files:
            try:
                if "SECRET" in open(os.path.join(root, n)).read():
                    found.append(n)
            except OSError:
                pass
    if os.environ.get("LEFT"):
        found.append("env")
    return found`);
    expect(reader.value).toEqual([]);
  });

  it("numpy's and python's RNGs start from a fresh state in every program", async () => {
    // Eight programs in one request: with two workers at least four share a zygote, whose RNG states they would
    // all inherit unchanged without the reseed after each fork (so values would repeat).
    /** How many distinct values eight programs running `src` drew, per element of what they return. */
    const distinct = async (src: string) => {
      const rs = await ex.runPrograms(Array.from({ length: 8 }, (_, i) => ({ program: `# ${i}\n${src}`, entryPoint: "f", inputs: [{ args: [] }], timeoutS: 2 })));
      const values = rs.map((r) => r.results[0].value as unknown[]);
      return values[0].map((_, k) => new Set(values.map((v) => JSON.stringify(v[k]))).size);
    };
    expect(await distinct("import numpy as np, random\ndef f():\n    return [float(np.random.rand()), random.random()]")).toEqual([8, 8]);
    // The same for programs the lean zygote runs (nothing in them names numpy): python's RNG. (The lean zygote
    // never imports random, so each program imports a freshly seeded one: a guard against that changing.)
    expect(await distinct("import random\ndef f():\n    return [random.random()]")).toEqual([8]);
  });

  it("after the zygote's fork, threading sees a one-thread process, as after os.fork (both zygotes)", async () => {
    // The zygotes fork through libc, without os.fork's at-fork hooks (server.py, _zygote_fork). In the full
    // zygote threading is loaded and its hook skipped: the program must still see itself as the main and only
    // thread, under its own ident (a guard: this held with os.fork too; it would catch a fork that left
    // threading's registry inconsistent).
    for (const tag of ["# lean", "# np"]) {
      const src = `${tag}
import threading
def f():
    t = threading.current_thread()
    return [t is threading.main_thread(), t.ident == threading.get_ident(), threading.active_count(), type(t).__name__]`;
      expect((await call(src)).value).toEqual([true, true, 1, "_MainThread"]);
    }
  });

  it("the zygote's warm-up of the harness leaves nothing a program can see (its function, its namespace)", async () => {
    // Each zygote runs the harness on a synthetic function of its own before it serves (server.py,
    // _warm_harness), and learns what to prefault from three children that run synthetic functions
    // (_learn_prefault). The program's namespace is the prelude's, as the reference has it; the lean zygote
    // serves the first probe, the full one (it names numpy) the second.
    const probe = (tag: string) => `${tag}
def f():
    seen = []
    for probe in (lambda: _utgen_warm, lambda: _UtgenWarm, lambda: _utgen_learn, lambda: _utgen_helper, lambda: _UtgenLearn):
        try:
            probe()
            seen.append(probe.__code__.co_names[0])
        except NameError:
            pass
    return [seen, __name__]`;
    for (const tag of ["", "# numpy"]) {
      const r = await call(probe(tag));
      expect(r.status, JSON.stringify(r)).toBe("ok");
      expect(r.value).toEqual([[], "solution"]);
    }
    // control: a name the program itself defines is seen the same way
    const own = await call("_mine = 1\ndef f():\n    return _mine");
    expect(own.value).toBe(1);
    const ownClass = await call('class _UtgenWarm:\n    pass\ndef f():\n    return [(lambda: _UtgenWarm)().__name__]');
    expect(ownClass.value).toEqual(["_UtgenWarm"]); // the probe's lambda form sees a name that exists
    // Nor in the heap: the warm-up's functions and namespaces were freed before the zygote froze its heap
    // (gc.unfreeze hands the frozen objects back to the collector's lists, where get_objects sees them).
    const heap = await call(`import gc
def f():
    gc.unfreeze()
    objs = gc.get_objects()
    fns = [o for o in objs if type(o).__name__ == "function" and o.__name__ in ("_utgen_warm", "_utgen_learn", "_utgen_helper", "_mine2")]
    spaces = [o for o in objs if type(o) is dict and o.get("__name__") == "solution" and "heapq" in o]
    return [sorted(fn.__name__ for fn in fns), len(spaces)]
def _mine2():
    pass`);
    expect(heap.status, JSON.stringify(heap)).toBe("ok");
    // the program's own function and its own namespace (the prelude's) are found: the probe works
    expect(heap.value).toEqual([["_mine2"], 1]);
  });
});

describe("the kernel surface a program does not need", () => {
  it("ptrace of pid 1, process_vm_readv, io_uring, bpf, perf_event_open, userfaultfd, unshare, mount: EPERM", async () => {
    // ptrace 101 (PTRACE_ATTACH 16), process_vm_readv 310, io_uring_setup 425, bpf 321, perf_event_open 298,
    // userfaultfd 323, unshare 272 (CLONE_NEWUSER), mount 165, keyctl 250, pidfd_getfd 438
    const r = await call(`${SYSCALL}
def f():
    return [sc(101, 16, 1, 0, 0), sc(310, 1, 0, 0, 0, 0, 0), sc(425, 8, 0), sc(321, 0, 0, 0), sc(298, 0, 0, -1, -1, 0),
            sc(323, 0), sc(272, 0x10000000), sc(165, 0, 0, 0, 0, 0)]`);
    expect(r.status).toBe("ok");
    const got = r.value as number[][];
    expect(got.length).toBe(8);
    for (const [res, errno] of got) {
      expect(res).toBe(-1);
      expect(errno).toBe(1);
    }
  });

  it("a program's process is not dumpable (inherited from the server through the zygote, not set per child)", async () => {
    // prctl 157, PR_GET_DUMPABLE 3: 0 means no /proc/<pid>/mem, environ or fd of it for another process of the
    // uid, no core, no ptrace attach. Children no longer set it themselves, so this fails if the inheritance breaks.
    const r = await call(`${SYSCALL}
def f():
    return sc(157, 3, 0, 0, 0, 0)`);
    expect(r.status).toBe("ok");
    expect((r.value as number[])[0]).toBe(0);
  });

  it("control: an allowed syscall through the same path works (getpid 39)", async () => {
    const r = await call(`${SYSCALL}
def f():
    return sc(39)`);
    expect((r.value as number[])[0]).toBeGreaterThan(0);
  });

  it("a program has no capabilities (none effective, permitted, inheritable or ambient) and cannot fork or create threads", async () => {
    const r = await call(`import os, threading
def f():
    caps = sorted([l.split(":")[0], l.split()[1]] for l in open("/proc/self/status") if l.startswith(("CapEff", "CapPrm", "CapInh", "CapAmb")))
    out = [caps]
    try:
        os.fork(); out.append("forked")
    except OSError as e:
        out.append(type(e).__name__)
    try:
        threading.Thread(target=lambda: None).start(); out.append("thread")
    except RuntimeError as e:
        out.append("RuntimeError")
    return out`);
    const none = "0000000000000000";
    expect(r.value).toEqual([[["CapAmb", none], ["CapEff", none], ["CapInh", none], ["CapPrm", none]], "BlockingIOError", "RuntimeError"]);
  });

  it("the server is out of reach: the parent a program sees is its namespace's pid 1, which ignores its signals", async () => {
    const r = await call(`import os, signal
def f():
    pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    sent = []
    for p in pids:
        if p == os.getpid():
            continue
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            try:
                os.kill(p, sig); sent.append(p)
            except OSError:
                pass
    return [os.getppid(), sent]`);
    expect(r.status).toBe("ok");
    const [ppid] = r.value as [number, number[]];
    expect(ppid).toBe(1);
    // The pool is unharmed and prompt: the next calls run within their limits.
    const t0 = performance.now();
    const rs = await ex.runCalls({ program: "def f(x):\n    return x + 1", entryPoint: "f", inputs: [1, 2, 3].map((x) => ({ args: [x] })), timeoutS: 0.5 });
    expect(rs.map((x) => x.value)).toEqual([2, 3, 4]);
    expect(performance.now() - t0).toBeLessThan(30_000); // generous: a stopped server would hang until the watchdog
  });

  it("no signal a program sends its pid 1 (its zygote) harms the zygote: neighbours in the request pass, no worker restarts", async () => {
    // pid 1 of a namespace only ignores, from inside it, the signals it has no handler for; the zygotes have the
    // children's SIGALRM handler (the per-call timer), which does nothing in a zygote (server.py _on_alarm).
    const before = ex.workerPids();
    const kill = (tag: string) => `${tag}
import os, signal
def f():
    sent = []
    for sig in range(1, 32):
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            os.kill(1, sig)
            sent.append(sig)
        except OSError:
            pass
    return [os.getppid(), len(sent)]`;
    const add = (i: number, tag: string) => ({ program: `${tag}\ndef f(x):\n    return x + ${i}`, entryPoint: "f", inputs: [{ args: [1] }], timeoutS: 2 });
    for (const tag of ["# lean", "# np"]) {
      const jobs = [
        ...Array.from({ length: 4 }, () => ({ program: kill(tag), entryPoint: "f", inputs: [{ args: [] }], timeoutS: 2 })),
        ...Array.from({ length: 8 }, (_, i) => add(i, tag)),
      ];
      const rs = await ex.runPrograms(jobs);
      for (const r of rs.slice(0, 4)) expect(r.results[0]).toMatchObject({ status: "ok", value: [1, 29] }); // control: every kill was sent
      expect(rs.slice(4).map((r) => r.results[0].value)).toEqual(Array.from({ length: 8 }, (_, i) => 1 + i));
    }
    expect(ex.workerPids()).toEqual(before);
  });

  it("a program's session and process group are its zygote's: signalling its group reaches pid 1 (immune) and itself only", async () => {
    // The zygote leads a session and a process group of its own, which every child shares (a session per child
    // cost each ~60 µs: the scheduler autogroup the kernel makes for a new session). Without one, the children
    // would share the server's group, and kill(0, SIGKILL) would end the server.
    const before = ex.workerPids();
    const group = (tag: string) => `${tag}
import os, signal
def f():
    for sig in range(1, 32):
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(sig, signal.SIG_IGN)
    sent = 0
    for sig in range(1, 32):
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            os.kill(0, sig)
            sent += 1
    return [os.getsid(0), os.getpgid(0), sent]`;
    const killGroup = (tag: string) => `${tag}\nimport os, signal\ndef f():\n    os.killpg(0, signal.SIGKILL)\n    return 0`;
    const add = (i: number, tag: string) => ({ program: `${tag}\ndef f(x):\n    return x + ${i}`, entryPoint: "f", inputs: [{ args: [1] }], timeoutS: 2 });
    for (const tag of ["# lean", "# np"]) {
      const rs = await ex.runPrograms([
        { program: group(tag), entryPoint: "f", inputs: [{ args: [] }], timeoutS: 2 },
        ...Array.from({ length: 3 }, (_, i) => add(i, tag)),
        { program: killGroup(tag), entryPoint: "f", inputs: [{ args: [] }], timeoutS: 2 },
        ...Array.from({ length: 3 }, (_, i) => add(i + 3, tag)),
      ]);
      expect(rs[0].results[0]).toMatchObject({ status: "ok", value: [1, 1, 29] });
      expect(rs[4].results[0].status).toBe("crash"); // it killed itself, and only itself
      expect([...rs.slice(1, 4), ...rs.slice(5)].map((r) => r.results[0].value)).toEqual([1, 2, 3, 4, 5, 6]);
    }
    expect(ex.workerPids()).toEqual(before);
  });

  it("the host's /etc is not visible beyond what the interpreter needs", async () => {
    const r = await call("import os\ndef f():\n    return [os.path.exists(p) for p in ('/etc/hostname', '/etc/os-release', '/etc/apt', '/etc/ld.so.cache')]");
    expect(r.value).toEqual([false, false, false, true]);
  });
});

describe("the writable tmpfs has size and inode limits, and a fresh one per child", () => {
  it("a program's stdin, stdout and stderr are not the previous program's: flags and owner it set on them stay with it", async () => {
    // fds 0-2 are /dev/null; an open file description keeps the status flags and the SIGIO owner a program sets
    // on it, so each child gets one no earlier child has held. (Until 2026-12-04 every child shared its
    // zygote's, and the next program read what the previous one set.)
    const set = (tag: string) => `${tag}
import os, fcntl
def f():
    for fd in (0, 1, 2):
        fcntl.fcntl(fd, fcntl.F_SETFL, os.O_NONBLOCK | os.O_APPEND)
        fcntl.fcntl(fd, fcntl.F_SETOWN, os.getpid())
    return [fcntl.fcntl(0, fcntl.F_GETFL) & (os.O_NONBLOCK | os.O_APPEND) != 0, fcntl.fcntl(0, fcntl.F_GETOWN) != 0]`;
    const get = (tag: string) => `${tag}
import os, fcntl
def f():
    return [[fcntl.fcntl(fd, fcntl.F_GETFL) & (os.O_NONBLOCK | os.O_APPEND), fcntl.fcntl(fd, fcntl.F_GETOWN)] for fd in (0, 1, 2)]`;
    const job = (program: string) => ({ program, entryPoint: "f", inputs: [{ args: [] }], timeoutS: 2 });
    const one = await createExecutor({ workers: 1 });
    try {
      for (const tag of ["# lean", "# np"]) {
        const rs = await one.runPrograms([job(set(tag)), job(get(tag))]);
        expect(rs[0].results[0]).toMatchObject({ status: "ok", value: [true, true] }); // control
        expect(rs[1].results[0]).toMatchObject({ status: "ok", value: [[0, 0], [0, 0], [0, 0]] });
      }
    } finally {
      await one.close();
    }
  });
  it("nothing a program sets on its working folder or the folder above (attributes, flags, mode, times, a fresh mount or not) reaches the next program", async () => {
    // A folder the child can write outlives it when it is left empty; its own metadata is state too. Each marker
    // sets one thing on "." and ".." (and says where it worked: the control), and the next program, in the next
    // child of the same server (one worker), reports what it finds — so each check is needed on its own. (Until
    // 2026-12-04 an extended attribute, a mode, times or chattr flags set on the tmpfs root reached the next
    // program; and times told whether the previous program had left a file, i.e. forced a fresh mount.)
    const marks: Record<string, string> = {
      xattr: `os.setxattr(d, "user.leak", b"from the previous program")`,
      mode: `os.chmod(d, 0o751)`,
      times: `os.utime(d, (4102444800, 1))`,
      flags: `fcntl.ioctl(os.open(d, os.O_RDONLY | os.O_DIRECTORY), 0x40086602, struct.pack("l", 0xC0))`,
      file: `open(os.path.join(d, "left"), "w").close()`,
    };
    const mark = (step: string) => `import os, fcntl, struct
def f():
    done = []
    for d in (".", ".."):
        try:
            ${step}
            done.append(d)
        except OSError:
            pass
    return done`;
    const look = `import os, fcntl, struct
def f():
    out = []
    for d in (".", ".."):
        st = os.stat(d)
        try:
            flags = struct.unpack("l", fcntl.ioctl(os.open(d, os.O_RDONLY | os.O_DIRECTORY), 0x80086601, b"\\0" * 8))[0]
        except OSError:
            flags = None
        out.append([os.listxattr(d), oct(st.st_mode & 0o7777), st.st_atime_ns, st.st_mtime_ns, flags])
    return out`;
    const job = (program: string) => ({ program, entryPoint: "f", inputs: [{ args: [] }], timeoutS: 2 });
    const one = await createExecutor({ workers: 1 });
    try {
      const [base] = await one.runPrograms([job(look)]);
      expect(base.results[0].status).toBe("ok");
      const [here, above] = base.results[0].value as unknown[][];
      expect(here).toEqual([[], "0o700", 0, 0, 0]); // the working folder as every program finds it
      const made: string[] = [];
      for (const [what, step] of Object.entries(marks)) {
        const rs = await one.runPrograms([job(mark(step)), job(look)]);
        expect(rs[0].results[0], what).toMatchObject({ status: "ok" });
        if ((rs[0].results[0].value as string[]).includes(".")) made.push(what);
        expect(rs[1].results[0].value, what).toEqual([here, above]);
      }
      // Control: the marks any tmpfs takes were made (extended attributes need Linux ≥ 6.6 on tmpfs, chattr
      // flags ≥ 6.0: where a kernel refuses them, a program cannot leave them either).
      expect(made).toEqual(expect.arrayContaining(["mode", "times", "file"]));
      const [major, minor] = release().split(".").map(Number);
      if (major > 6 || (major === 6 && minor >= 6)) expect(made).toEqual(Object.keys(marks));
    } finally {
      await one.close();
    }
  });
  it("a program creating a million files fails alone, quickly; the next program is unaffected", async () => {
    const flood = await call("def f():\n    i = 0\n    while True:\n        open('f%d' % i, 'w').close()\n        i += 1", [], 5);
    expect(flood.status).toBe("error");
    expect(flood.errorType).toBe("OSError");
    expect(flood.message).toMatch(/No space left/);
    const rs = await ex.runCalls({ program: "import os\ndef f(x):\n    open('a', 'w').write('x' * x)\n    return len(os.listdir('.'))", entryPoint: "f", inputs: [1, 2, 3].map((x) => ({ args: [x] })), timeoutS: 0.5 });
    expect(rs.map((x) => [x.status, x.value])).toEqual([["ok", 1], ["ok", 1], ["ok", 1]]);
  });
});

describe("no request can break the pool", () => {
  const good = async () => {
    const rs = await ex.runCalls({ program: "def f(x):\n    return x * 2", entryPoint: "f", inputs: [{ args: [21] }], timeoutS: 1 });
    expect(rs[0].value).toBe(42);
  };

  it("a BigInt argument fails that input alone; the next requests are served", async () => {
    const rs = await ex.runCalls({ program: "def f(x):\n    return x", entryPoint: "f", inputs: [{ args: [10n as never] }, { args: [1] }], timeoutS: 1 });
    expect(rs[0].status).toBe("invalid_input");
    expect(rs[0].message).toMatch(/BigInt/);
    expect(rs[1].value).toBe(1);
    for (let i = 0; i < 5; i++) await good();
  });

  it("a module level that exits, segfaults or loops in C fails its own program only, with the right status", async () => {
    // None of these lets the harness answer the load: the server must not wait for an end line from them.
    const mods = [
      "import os\nos._exit(3)\ndef f(x):\n    return x\n",
      "import ctypes\nctypes.string_at(0)\ndef f(x):\n    return x\n",
      "x = sum(range(10 ** 11))\ndef f(x):\n    return x\n", // the C loop of sum() never runs the timer's handler
      "def f(x):\n    return x + 1\n",
    ];
    const rs = await ex.runPrograms(mods.map((program) => ({ program, entryPoint: "f", inputs: [{ args: [1] }, { args: [2] }], timeoutS: 0.5 })));
    expect(rs[0].results.map((r) => r.status)).toEqual(["crash", "crash"]);
    expect(rs[0].results[0].message).toMatch(/exited with code 3/);
    expect(rs[1].results.map((r) => r.status)).toEqual(["crash", "crash"]);
    expect(rs[1].results[0].message).toMatch(/SIGSEGV/);
    expect(rs[2].results.map((r) => r.status)).toEqual(["timeout", "timeout"]);
    expect(rs[3].results.map((r) => r.value)).toEqual([2, 3]);
    await good();
  });

  it("non-finite, huge or missing limits are refused with one line before reaching a worker", async () => {
    for (const t of [Infinity, NaN, 1e10, -1, 0]) {
      await expect(ex.runCalls({ program: "def f():\n    return 1", entryPoint: "f", inputs: [{ args: [] }], timeoutS: t })).rejects.toThrow(ExecutorRequestError);
    }
    await expect(ex.runCalls({ program: "def f():\n    return 1", entryPoint: "f", inputs: [{ args: [] }], timeoutS: 1, loadTimeoutS: Infinity })).rejects.toThrow(/loadTimeoutS/);
    await good();
  });

  it("an argument nested 3,500 deep is refused for that input; the server lives on", async () => {
    let deep: unknown = 1;
    for (let i = 0; i < 3500; i++) deep = [deep];
    const rs = await ex.runCalls({ program: "def f(x):\n    return 1", entryPoint: "f", inputs: [{ args: [deep as never] }, { args: [2] }], timeoutS: 1 });
    expect(rs[0].status).toBe("invalid_input");
    expect(rs[1].status).toBe("ok");
    await good();
  });

  it("a child writing a deeply nested line to its channel cannot crash the server", async () => {
    const src = `import os, sys
def f():
    f_ = sys._getframe(1)
    while f_ is not None and "w" not in f_.f_locals:
        f_ = f_.f_back
    os.write(f_.f_locals["w"], b"[" * 100000 + b"]" * 100000 + b"\\n")
    return 1`;
    const r = await call(src);
    expect(r.status).toBe("crash");
    await good();
  });

  it("one request cannot push more than its output budget into Node", async () => {
    const small = await createExecutor({ workers: 1, request_out_mb: 4 });
    try {
      const [r] = await small.runPrograms([
        { program: "def f(i):\n    return 'x' * (1500 * 1000)", entryPoint: "f", inputs: [0, 1, 2, 3, 4].map((i) => ({ args: [i] })), timeoutS: 2 },
      ]);
      expect(r.results.slice(0, 2).map((x) => x.status)).toEqual(["ok", "ok"]);
      expect(r.results.slice(3).map((x) => x.errorType)).toEqual(["OutputTooLarge", "OutputTooLarge"]);
    } finally {
      await small.close();
    }
  });

  it("the output budget is per caller: across every request sent for one call, and untouched by a neighbour's", async () => {
    const small = await createExecutor({ workers: 2, request_out_mb: 4 });
    const big = (n: number) => `def f(i):\n    return 'x' * (${n} * 1000)`;
    try {
      // One call of 6 programs (sent as several requests, two at a time): at most 4 MB of values in all.
      const rs = await small.runPrograms(Array.from({ length: 6 }, () => ({ program: big(1500), entryPoint: "f", inputs: [{ args: [0] }], timeoutS: 2 })));
      const ok = rs.filter((r) => r.results[0].status === "ok").length;
      expect(ok).toBeGreaterThanOrEqual(1);
      expect(ok).toBeLessThanOrEqual(2); // 4 MB / 1.5 MB
      expect(rs.filter((r) => r.results[0].errorType === "OutputTooLarge").length).toBe(6 - ok);
      // Two calls made in the same tick travel in one request: the first spends 3 MB of its own budget; the
      // second's 1.2 MB value must not count against it.
      const [hostile, benign] = await Promise.all([
        small.runPrograms([{ program: big(1500), entryPoint: "f", inputs: [0, 1, 2].map((i) => ({ args: [i] })), timeoutS: 2 }]),
        small.runCalls({ program: big(1200), entryPoint: "f", inputs: [{ args: [0] }], timeoutS: 2 }),
      ]);
      expect(hostile[0].results.map((x) => x.status)).toEqual(["ok", "ok", "error"]);
      expect(benign[0]).toMatchObject({ status: "ok" });
      expect((benign[0].value as string).length).toBe(1_200_000);
    } finally {
      await small.close();
    }
  });

  it("a server stopped from outside (SIGSTOP) is detected by the watchdog and replaced; the program in flight is retried", async () => {
    const one = await createExecutor({ workers: 1, watchdog_slack_s: 0.5 });
    try {
      const [launcher] = one.workerPids();
      const below = (root: number): number[] => {
        const parent = new Map<number, number>();
        for (const d of readdirSync("/proc")) {
          if (!/^\d+$/.test(d)) continue;
          try {
            const st = readFileSync(`/proc/${d}/stat`, "utf8");
            parent.set(Number(d), Number(st.slice(st.lastIndexOf(")") + 2).split(" ")[1]));
          } catch {
            /* gone */
          }
        }
        const out: number[] = [];
        for (const [p] of parent) {
          let q: number | undefined = p;
          for (let hops = 0; q && q > 1 && hops < 32; hops++) {
            q = parent.get(q);
            if (q === root) {
              out.push(p);
              break;
            }
          }
        }
        return out;
      };
      const stopped = below(launcher);
      expect(stopped.length).toBeGreaterThan(0);
      for (const p of stopped) process.kill(p, "SIGSTOP");
      const t0 = performance.now();
      const [r] = await one.runCalls({ program: "def f(x):\n    return x + 1", entryPoint: "f", inputs: [{ args: [41] }], timeoutS: 0.5 });
      expect(r.value).toBe(42);
      // limit 0.5 + grace 0.25 + slack 0.5 until the watchdog fires, then a fresh sandbox starts
      expect((performance.now() - t0) / 1000).toBeGreaterThan(1.25);
      expect(one.workerPids()[0]).not.toBe(launcher);
    } finally {
      await one.close();
    }
  });
});
