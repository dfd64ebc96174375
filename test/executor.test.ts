/**
 * Functional tests of the sandboxed executor: value encoding round trips through real Python, statuses,
 * batches, checkProgram, runScript, the config schema, the calibrated-limit policy and fail-closed startup.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { createServer } from "node:net";
import { release, tmpdir } from "node:os";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  buggyTimeoutFor,
  createExecutor,
  ExecutorRequestError,
  executorConfigSchema,
  formatPyValue,
  parseLiteral,
  type PyValue,
  type SandboxExecutor,
} from "../pipeline/executor/index.ts";
import { argvPieces, checkSandbox, serverScript } from "../pipeline/executor/sandbox.ts";
import { UserError } from "../pipeline/errors.ts";

let ex: SandboxExecutor;
beforeAll(async () => {
  ex = await createExecutor({ workers: 2 });
});
afterAll(async () => ex?.close());

const identity = "def ident(x):\n    return x";


/** A pool of one worker (so consecutive requests share a fork server), closed afterwards. */
async function withOneWorker(fn: (one: SandboxExecutor) => Promise<void>): Promise<void> {
  const one = await createExecutor({ workers: 1 });
  try {
    await fn(one);
  } finally {
    await one.close();
  }
}

describe("value encoding", () => {
  it("round trips typed values through Python unchanged", async () => {
    const values: PyValue[] = [
      null,
      true,
      false,
      0,
      -7,
      9007199254740991,
      { $int: "9007199254740992" },
      { $int: "-123456789012345678901234567890" },
      { $float: "1.0" },
      { $float: "-0.0" },
      { $float: "nan" },
      { $float: "inf" },
      { $float: "-inf" },
      { $float: "1e-07" },
      { $float: "0.1" },
      "",
      "héllo\n\u0000\u{1F600}",
      [1, [2, [3]]],
      { $tuple: [] },
      { $tuple: [1, "a", { $tuple: [null] }] },
      { $set: [1, 2, 3] },
      { $frozenset: ["a"] },
      { $dict: [["b", 1], ["a", [2]], [{ $tuple: [1, 2] }, null]] },
      { $bytes: Buffer.from([0, 1, 255]).toString("base64") },
      { $ndarray: [[1, 2], [3, 4]], dtype: "int64" },
      { $ndarray: [{ $float: "0.5" }], dtype: "float64" },
    ];
    const rs = await ex.runCalls({ program: identity, entryPoint: "ident", inputs: values.map((v) => ({ args: [v] })), timeoutS: 2 });
    rs.forEach((r, i) => {
      expect(r.status, JSON.stringify(values[i])).toBe("ok");
      expect(r.value).toEqual(values[i]);
    });
  });

  it("keeps Python's type distinctions in returned values", async () => {
    const src = [
      "import numpy as np",
      "class Point:",
      "    def __repr__(self): return 'Point(1, 2)'",
      "def f(k):",
      "    return [3, 3.0, True, (1,), [1], {1}, frozenset(), {'a': 1}, b'x', None, 2**64, float('nan'), np.int64(5), np.float32(0.5), Point(), 1j][k]",
    ].join("\n");
    const rs = await ex.runCalls({ program: src, entryPoint: "f", inputs: Array.from({ length: 16 }, (_, k) => ({ args: [k] })), timeoutS: 2 });
    expect(rs.map((r) => r.value)).toEqual([
      3,
      { $float: "3.0" },
      true,
      { $tuple: [1] },
      [1],
      { $set: [1] },
      { $frozenset: [] },
      { $dict: [["a", 1]] },
      { $bytes: "eA==" },
      null,
      { $int: "18446744073709551616" },
      { $float: "nan" },
      5,
      { $float: "0.5" },
      { $repr: "Point(1, 2)", type: "Point" },
      { $repr: "1j", type: "complex" },
    ]);
  });

  it("formatPyValue text evaluates in Python to the same value (literal round trip via Python)", async () => {
    const values: PyValue[] = [
      { $tuple: [1] },
      { $set: [] },
      { $frozenset: [1, 2] },
      { $float: "-inf" },
      "it's \"quoted\" \\ \n",
      { $dict: [[1, { $bytes: Buffer.from("a'\"").toString("base64") }]] },
      { $int: "-99999999999999999999" },
    ];
    const script = "import math\nOUTPUT = [repr(eval(t, {'float': float})) for t in INPUT]";
    const r = await ex.runScript(script, values.map(formatPyValue), { timeoutS: 5 });
    expect(r.status).toBe("ok");
    // Python's own repr of each evaluated value parses back to the original value with our parser.
    (r.output as string[]).forEach((repr, i) => {
      const back = parseLiteral(repr.replace(/^-?inf$/, (m) => `float('${m}')`));
      expect(back.ok && back.value, repr).toEqual(values[i]);
    });
  });
});

describe("call statuses", () => {
  it("ok, error with type and message, timeout, invalid_input, kwargs", async () => {
    // the limit is far above the other calls' run time under any load; the sleeping call never ends by itself
    const src = "import time\ndef f(a, b=0):\n    if a == 'sleep': time.sleep(600)\n    if a == 'boom': raise KeyError('missing key')\n    return a + b";
    const rs = await ex.runCalls({
      program: src,
      entryPoint: "f",
      inputs: [{ args: [1] }, { args: ["boom"] }, { args: ["sleep"] }, { args: [{ $int: "nope" }] }, { args: [2], kwargs: { b: 3 } }, { args: [1, 2, 3] }],
      timeoutS: 1.5,
    });
    expect(rs.map((r) => r.status)).toEqual(["ok", "error", "timeout", "invalid_input", "ok", "error"]);
    expect(rs[1].errorType).toBe("KeyError");
    expect(rs[1].message).toContain("missing key");
    expect(rs[4].value).toBe(5);
    expect(rs[5].errorType).toBe("TypeError");
    for (const r of rs) expect(typeof r.ms).toBe("number");
  });

  it("module-level failures mark every input; a missing entry point is a NameError", async () => {
    const bad = await ex.runCalls({ program: "raise ValueError('at import')\ndef f(): return 1", entryPoint: "f", inputs: [{ args: [] }, { args: [] }], timeoutS: 1 });
    expect(bad.map((r) => [r.status, r.errorType])).toEqual([
      ["error", "ValueError"],
      ["error", "ValueError"],
    ]);
    expect(bad[0].message).toMatch(/^module level/);
    const syntax = await ex.runCalls({ program: "def f(:\n  pass", entryPoint: "f", inputs: [{ args: [] }], timeoutS: 1 });
    expect(syntax[0].errorType).toBe("SyntaxError");
    const missing = await ex.runCalls({ program: "def g(): return 1", entryPoint: "f", inputs: [{ args: [] }], timeoutS: 1 });
    expect(missing[0]).toMatchObject({ status: "error", errorType: "NameError" });
  });

  it("the UTGen prelude is available; the environment is empty; cwd is a private writable temp dir", async () => {
    const src = [
      "import os",
      "def f():",
      "    open('scratch.txt', 'w').write('x')",
      "    return [math.sqrt(16), list(Counter('aab').items()), heapq.nsmallest(1, [3, 1]), sorted(os.environ), os.getuid() != 0, os.path.exists('scratch.txt')]",
    ].join("\n");
    const [r] = await ex.runCalls({ program: src, entryPoint: "f", inputs: [{ args: [] }], timeoutS: 2 });
    expect(r.status, r.message).toBe("ok");
    expect(r.value).toEqual([{ $float: "4.0" }, [{ $tuple: ["a", 2] }, { $tuple: ["b", 1] }], [1], ["HOME", "TMPDIR"], true, true]);
    // The next request gets a fresh directory: the scratch file is gone.
    const [r2] = await ex.runCalls({ program: "import os\ndef f():\n    return os.path.exists('scratch.txt')", entryPoint: "f", inputs: [{ args: [] }], timeoutS: 2 });
    expect(r2.value).toBe(false);
  });

  it("a program sees nothing an earlier program on the same worker left, however it hid it", () =>
    withOneWorker(async (one) => {
      // Files in cwd, $HOME's subfolders, a read-only folder (its files cannot be unlinked until the folder is
      // writable again), a dangling symlink, a folder nested deeper than PATH_MAX, and attempts on the folder
      // above and the rest of the sandbox's own mounts (/tmp, /dev, /dev/shm), which must be read-only. (The
      // working folder's own metadata: executor-isolation.test.ts.)
      const hide = [
        "import os",
        "def f():",
        "    open('a.txt', 'w').write('SECRET-1')",
        "    os.makedirs(os.path.join(os.environ['HOME'], 'x', 'y'))",
        "    open(os.path.join(os.environ['HOME'], 'x', 'y', 'b.txt'), 'w').write('SECRET-2')",
        "    os.mkdir('locked'); open('locked/d.txt', 'w').write('SECRET-4'); os.chmod('locked', 0o500)",
        "    os.symlink('/nonexistent', 'dangling')",
        "    wrote = []",
        "    for p in ['../c.txt', '/tmp/t.txt', '/dev/shm/s.txt', '/dev/d.txt', '/tmp/exec2']:",
        "        try: open(p, 'w').write('SECRET-6'); wrote.append(p)",
        "        except OSError: pass",
        "    os.mkdir('deep'); os.chdir('deep')",
        "    for _ in range(300):",
        "        os.mkdir('dddddddddddddddddddd'); os.chdir('dddddddddddddddddddd')",
        "    open('e.txt', 'w').write('SECRET-5')",
        "    os.chmod('.', 0o500)",
        "    return [os.getcwd().count('/'), wrote]",
      ].join("\n");
      const [h] = await one.runCalls({ program: hide, entryPoint: "f", inputs: [{ args: [] }], timeoutS: 5 });
      expect(h.status, h.message).toBe("ok");
      const [depth, wrote] = h.value as [number, string[]];
      expect(depth).toBeGreaterThan(300);
      expect(wrote).toEqual([]);
      const seek = [
        "import os",
        "def f():",
        "    found = []",
        "    me = os.getcwd()",
        "    def visit():  # by chdir: no PATH_MAX limit, one fd at a time",
        "        for e in list(os.scandir('.')):",
        "            if e.is_dir(follow_symlinks=False):",
        "                try: os.chdir(e.name)",
        "                except OSError: found.append(e.name + '/'); continue",
        "                visit(); os.chdir('..')",
        "            else:",
        "                try: found.append(open(e.name).read())",
        "                except OSError: found.append(e.name)",
        "    visit(); os.chdir(me)",
        "    found += [p for p in ['../c.txt', '/tmp/t.txt', '/dev/shm/s.txt', '/dev/d.txt', '/tmp/exec2'] if os.path.exists(p)]",
        "    return [me == os.environ['HOME'], sorted(os.listdir(me)), found]",
      ].join("\n");
      const [s] = await one.runCalls({ program: seek, entryPoint: "f", inputs: [{ args: [] }], timeoutS: 5 });
      expect(s.status, s.message).toBe("ok");
      const [home, here, found] = s.value as [boolean, string[], string[]];
      expect(home).toBe(true);
      expect(found).toEqual([]);
      expect(here).toEqual([]); // its working folder (the whole of what it can write) starts empty
    }));

  it("a program finds nothing of an earlier program's text, inputs or results in its own memory", () =>
    withOneWorker(async (one) => {
      // Counts each needle (given in two halves, so no request holds it whole) in every writable mapping.
      const scan = [
        "import ctypes",
        "def f(*pairs):",
        "    needles = [(a + b).encode() for a, b in pairs]",
        "    hits = [0] * len(needles)",
        "    for line in open('/proc/self/maps').read().splitlines():",
        "        cols = line.split()",
        "        if 'rw' not in cols[1] or (len(cols) > 5 and cols[5].startswith('[v')):",
        "            continue",
        "        lo, hi = (int(x, 16) for x in cols[0].split('-'))",
        "        if hi - lo > 256 << 20:",
        "            continue",
        "        try:",
        "            buf = ctypes.string_at(lo, hi - lo)",
        "        except Exception:",
        "            continue",
        "        for i, nd in enumerate(needles):",
        "            hits[i] += buf.count(nd)",
        "    return hits",
      ].join("\n");
      const pairs = [["PROGRAMTEXT", "_a1b2c3"], ["RETURNED", "_d4e5f6"], ["INPUTVAL", "_0918"]];
      const count = async () => {
        const [r] = await one.runCalls({ program: scan, entryPoint: "f", inputs: [{ args: pairs }], timeoutS: 10 });
        expect(r.status, r.message).toBe("ok");
        return r.value as number[];
      };
      const before = await count(); // the scan's own needles
      // An earlier program: large (its text is malloc'd, not pooled), with an input and a result to find.
      const earlier = `PAD = '${"x".repeat(60000)}'\n# PROGRAMTEXT_a1b2c3\ndef g(s):\n    return 'RETURNED_d4e5f6' + s[:0]\n`;
      const [g] = await one.runCalls({ program: earlier, entryPoint: "g", inputs: [{ args: ["INPUTVAL_0918" + "y".repeat(5000)] }], timeoutS: 5 });
      expect(g).toMatchObject({ status: "ok", value: "RETURNED_d4e5f6" });
      expect(await count()).toEqual(before);
    }));

  it("runs a large batch and many concurrent requests with correct, ordered results", async () => {
    const inputs = Array.from({ length: 500 }, (_, i) => ({ args: [i] }));
    const rs = await ex.runCalls({ program: "def sq(x):\n    return x * x", entryPoint: "sq", inputs, timeoutS: 1 });
    expect(rs.map((r) => r.value)).toEqual(inputs.map((_, i) => i * i));
    const many = await Promise.all(
      Array.from({ length: 30 }, (_, j) => ex.runCalls({ program: `def g(x):\n    return x + ${j}`, entryPoint: "g", inputs: [{ args: [1] }], timeoutS: 1 })),
    );
    expect(many.map((r) => r[0].value)).toEqual(Array.from({ length: 30 }, (_, j) => 1 + j));
  });

  it("state does not leak between requests", async () => {
    await ex.runCalls({ program: "import math\nmath.pi = 3\ndef f():\n    return 0", entryPoint: "f", inputs: [{ args: [] }], timeoutS: 1 });
    const rs = await Promise.all(
      [0, 1, 2].map(() => ex.runCalls({ program: "import math\ndef f():\n    return math.pi", entryPoint: "f", inputs: [{ args: [] }], timeoutS: 1 })),
    );
    for (const [r] of rs) expect(r.value).toEqual({ $float: "3.141592653589793" });
  });
});

describe("checkProgram and runScript", () => {
  it("lists top-level functions with signatures and classes, then runs the module level", async () => {
    const src = "from typing import List\ndef f(a: int, b: List[int] = [], *args, k: str = 'x', **kw) -> int:\n    return 1\nasync def g(x, /, y): pass\nclass C: pass\nprint('hi')";
    const c = await ex.checkProgram(src, { timeoutS: 2 });
    expect(c.status).toBe("ok");
    expect(c.classes).toEqual(["C"]);
    expect(c.functions.map((f) => f.signature)).toEqual(["f(a: int, b: List[int] = [], *args, k: str = 'x', **kw) -> int", "g(x, y)"]);
    expect(c.functions[0].params.map((p) => p.kind)).toEqual(["positional", "positional", "vararg", "keyword_only", "varkw"]);
    expect(c.functions[0].returns).toBe("int");
    const kwOnly = await ex.checkProgram("def h(a, *, b=1):\n    pass", { timeoutS: 2 });
    expect(kwOnly.functions[0].signature).toBe("h(a, *, b=1)");
  });
  it("reports syntax errors, module-level errors (still listing functions) and timeouts", async () => {
    expect((await ex.checkProgram("def f(:", { timeoutS: 1 })).status).toBe("syntax_error");
    const err = await ex.checkProgram("def f():\n    pass\nundefined_name", { timeoutS: 1 });
    expect(err).toMatchObject({ status: "error", errorType: "NameError" });
    expect(err.functions.map((f) => f.name)).toEqual(["f"]);
    expect((await ex.checkProgram("while True: pass", { timeoutS: 0.3 })).status).toBe("timeout");
  });
  it("runScript passes INPUT and returns OUTPUT; errors and timeouts are statuses", async () => {
    const ok = await ex.runScript("OUTPUT = {'sum': sum(INPUT['xs'])}", { xs: [1, 2, 3] }, { timeoutS: 2 });
    expect(ok).toMatchObject({ status: "ok", output: { sum: 6 } });
    expect((await ex.runScript("raise RuntimeError('x')", null, { timeoutS: 1 })).errorType).toBe("RuntimeError");
    expect((await ex.runScript("OUTPUT = object()", null, { timeoutS: 1 })).status).toBe("error");
    expect((await ex.runScript("while True: pass", null, { timeoutS: 0.3 })).status).toBe("timeout");
    const codec = await ex.runScript("v = decode_value(INPUT)\nOUTPUT = [type(v).__name__, encode_value(v)]", { $tuple: [1, { $float: "nan" }] }, { timeoutS: 2 });
    expect(codec.output).toEqual(["tuple", { $tuple: [1, { $float: "nan" }] }]);
    // An input with no JSON form is the caller's error, one line, and the pool is unharmed.
    const cyc: Record<string, unknown> = {};
    cyc.self = cyc;
    await expect(ex.runScript("OUTPUT = 1", { n: 10n }, { timeoutS: 1 })).rejects.toThrow(/^runScript: input cannot be sent as JSON \(.*BigInt/);
    await expect(ex.runScript("OUTPUT = 1", cyc, { timeoutS: 1 })).rejects.toThrow(new ExecutorRequestError("runScript: input cannot be sent as JSON (Converting circular structure to JSON)"));
    expect(await ex.runScript("OUTPUT = 2", null, { timeoutS: 1 })).toMatchObject({ status: "ok", output: 2 });
    // Nested deeper than a child's request can carry (marshal stops at 2000): an error naming it, no child.
    let deep: unknown = 1;
    for (let i = 0; i < 2100; i++) deep = [deep];
    expect(await ex.runScript("OUTPUT = 1", deep, { timeoutS: 1 })).toMatchObject({
      status: "error",
      errorType: "ValueError",
      message: expect.stringMatching(/^script input: .*too deeply nested/),
    });
    expect(await ex.runScript("OUTPUT = 3", null, { timeoutS: 1 })).toMatchObject({ status: "ok", output: 3 });
  });
  it("runScript with projectCode: compiled once per worker, a fresh namespace per run, errors still reported", async () => {
    // The code object's file name says where it was compiled: "<script>" in the zygote (cached), "<program>" in the child.
    const script = "import sys\nN = globals().get('N', 0) + 1\nOUTPUT = [sys._getframe().f_code.co_filename, N, INPUT]";
    for (let i = 0; i < 4; i++) {
      expect((await ex.runScript(script, i, { timeoutS: 2, projectCode: true })).output).toEqual(["<script>", 1, i]);
    }
    expect((await ex.runScript(script, 9, { timeoutS: 2 })).output).toEqual(["<program>", 1, 9]);
    expect(await ex.runScript("def f(:\n", null, { timeoutS: 2, projectCode: true })).toMatchObject({ status: "error", errorType: "SyntaxError" });
    expect((await ex.runScript("while True: pass", null, { timeoutS: 0.3, projectCode: true })).status).toBe("timeout");
  });
});

describe("bench loops (benchFork)", () => {
  it("bare, libc and floor loops run in every worker, in both zygotes, and give a rate", async () => {
    // The floor loop checks that each of its children wrote its three results; a broken loop is an error here.
    for (const zygote of ["lean", "full"] as const) {
      for (const loop of ["bare", "libc", "floor"] as const) {
        const b = await ex.benchFork(4, zygote, loop);
        expect(b.perWorkerPerS.length).toBe(2);
        for (const r of b.perWorkerPerS) expect(r).toBeGreaterThan(0);
      }
    }
    // The zygotes are unharmed by it.
    expect(await ex.runCalls({ program: identity, entryPoint: "ident", inputs: [{ args: [5] }], timeoutS: 1 })).toMatchObject([{ status: "ok", value: 5 }]);
  });
});

describe("the zygotes' image", () => {
  it("carries no dead weight of the server's start-up into the children (the lean zygote's C heap)", async () => {
    // Every resident page of a zygote is copied into each child's page table at fork and torn down at its exit.
    // Started as `python3 -c <server.py>`, the server kept the parser's tree of its whole text alive for its
    // whole life (8.2 MB of the lean zygote's C heap on Debian's Python 3.11); compiled by a bootstrap, with the
    // zygote's free heap pages given back (malloc_trim), that heap is 3.7 MB. A child of the lean zygote reads
    // its own [heap] (its copy of the zygote's, plus the little it has allocated itself).
    const src = `# lean
def f():
    kb, cur = 0, None
    for l in open("/pr" + "oc/self/smaps").read().splitlines():
        p = l.split()
        if "-" in p[0] and ":" not in p[0]:
            cur = p[5] if len(p) > 5 else ""
        elif p[0] == "Anonymous:" and cur == "[heap]":
            kb += int(p[1])
    return kb`;
    // Huge pages off: collapsing the heap makes it resident in whole 2 MiB pieces (the next test), which says
    // nothing about what start-up left in it.
    const small = await createExecutor({ workers: 1, huge_pages: false });
    try {
      const [r] = await small.runCalls({ program: src, entryPoint: "f", inputs: [{ args: [] }], timeoutS: 2 });
      expect(r.status).toBe("ok");
      expect(r.value as number).toBeGreaterThan(0); // control: the probe reads the heap
      expect(r.value as number).toBeLessThan(6 * 1024);
    } finally {
      await small.close();
    }
  });
  it("is put on 2 MiB pages where the kernel can collapse them (Linux ≥ 6.1), and only when asked", async () => {
    const [major, minor] = release().split(".").map(Number);
    const thp = "/sys/kernel/mm/transparent_hugepage/enabled";
    const supported = existsSync(thp) && (major > 6 || (major === 6 && minor >= 1));
    const never = supported && readFileSync(thp, "utf8").includes("[never]"); // then the kernel may refuse: no claim
    const mb = async (e: SandboxExecutor) => (await e.zygoteInfo()).map((i) => i.huge_pages_mb);
    const on = await mb(ex);
    for (const z of on) expect(Object.keys(z).sort()).toEqual(["full", "lean"]);
    const total = on.flatMap((z) => Object.values(z)).reduce((a, b) => a + b, 0);
    if (!supported) expect(total).toBe(0);
    else if (!never) expect(total).toBeGreaterThanOrEqual(2);
    const off = await createExecutor({ workers: 1, huge_pages: false });
    try {
      expect(await mb(off)).toEqual([{ full: 0, lean: 0 }]);
      const [r] = await off.runCalls({ program: identity, entryPoint: "ident", inputs: [{ args: [[1, "a"]] }], timeoutS: 2 });
      expect(r).toMatchObject({ status: "ok", value: [1, "a"] });
    } finally {
      await off.close();
    }
  });
});

describe("the full zygote starts when first needed (executor.lazy_full_zygote)", () => {
  it("is parked at start-up, woken by the first program that needs numpy, and gives the same results as one started at once", async () => {
    const lazy = await createExecutor({ workers: 1 });
    const eager = await createExecutor({ workers: 1, lazy_full_zygote: false });
    try {
      const [l, e] = [lazy.workerInfo()[0], eager.workerInfo()[0]];
      expect(l.zygotes).toEqual(["full", "lean"]);
      expect(l.parked).toEqual(["full"]);
      expect(Object.keys(l.prefault_pages as object)).toEqual(["lean"]); // only the zygotes that started
      expect(e.parked).toEqual([]);
      expect(Object.keys(e.prefault_pages as object).sort()).toEqual(["full", "lean"]);
      // lean programs run while it is parked; the first numpy program wakes it (its own limits are not charged)
      const lean = { program: "def f(x):\n    return x + 1", entryPoint: "f", inputs: [{ args: [1] }], timeoutS: 2 };
      const full = { program: "import numpy as np\ndef f(x):\n    return int(np.arange(x).sum())", entryPoint: "f", inputs: [{ args: [5] }], timeoutS: 2 };
      for (const ex2 of [lazy, eager]) {
        const [a, b] = await ex2.runPrograms([lean, full]);
        expect(a.results[0]).toMatchObject({ status: "ok", value: 2 });
        expect(b.results[0]).toMatchObject({ status: "ok", value: 10 });
      }
      // once woken it reports its start-up like one started at once
      const [li, ei] = [(await lazy.zygoteInfo())[0], (await eager.zygoteInfo())[0]];
      expect(Object.keys(li.prefault_pages).sort()).toEqual(["full", "lean"]);
      expect(li.huge_text_mb).toEqual(ei.huge_text_mb);
      expect(Math.sign(li.prefault_pages.full)).toBe(Math.sign(ei.prefault_pages.full));
    } finally {
      await Promise.all([lazy.close(), eager.close()]);
    }
  });
});

describe("the interpreter's code on 2 MiB pages (executor.huge_text)", () => {
  // Run in a child (the word "proc" sends it to the full zygote): the executable's non-writable mappings as the
  // child sees them — file-backed ones, and anonymous executable ones with their 2 MiB pages (kB).
  const probe = `import os, sys
def f():
    exe = os.path.realpath(sys.executable)
    out, cur = {"file": 0, "anon_exec": 0, "anon_exec_huge_kb": 0}, None
    with open("/proc/self/smaps") as fh:
        for line in fh:
            p = line.split()
            if "-" in p[0] and len(p) >= 5 and ":" in p[3]:
                lo, hi = (int(x, 16) for x in p[0].split("-"))
                path = p[5] if len(p) > 5 else ""
                cur = None
                if path and os.path.realpath(path) == exe and "w" not in p[1]:
                    out["file"] += (hi - lo) // 1024
                elif not path and p[1] == "r-xp":
                    cur = "anon"
                    out["anon_exec"] += (hi - lo) // 1024
            elif cur == "anon" and p[0] == "AnonHugePages:":
                out["anon_exec_huge_kb"] += int(p[1])
    return [out["file"], out["anon_exec"], out["anon_exec_huge_kb"]]`;
  const inChild = async (e: SandboxExecutor) => {
    const [r] = await e.runCalls({ program: probe, entryPoint: "f", inputs: [{ args: [] }], timeoutS: 5 });
    expect(r.status).toBe("ok");
    const [file, anon_exec, anon_exec_huge_kb] = r.value as number[];
    return { file, anon_exec, anon_exec_huge_kb };
  };

  it("replaces whole aligned 2 MiB of the executable's code with one page each, seen by every child, and only when asked", async () => {
    for (const z of (await ex.zygoteInfo()).map((i) => i.huge_text_mb)) {
      expect(Object.keys(z).sort()).toEqual(["full", "lean"]);
      for (const mb of Object.values(z)) expect(mb % 2).toBe(0); // whole 2 MiB pages or nothing
    }
    // one worker each, so that the child measured is of the zygote whose report is compared
    const one = await createExecutor({ workers: 1 });
    const off = await createExecutor({ workers: 1, huge_text: false });
    const on = (await one.zygoteInfo()).map((i) => i.huge_text_mb);
    try {
      expect((await off.zygoteInfo()).map((i) => i.huge_text_mb)).toEqual([{ full: 0, lean: 0 }]);
      const [a, b] = [await inChild(one), await inChild(off)];
      // without it, the executable is file-backed throughout and no anonymous code is on huge pages
      expect(b.file).toBeGreaterThan(1024);
      expect(b.anon_exec_huge_kb).toBe(0);
      // with it, a child sees exactly what its zygote moved: anonymous 2 MiB pages, the file's mappings that much smaller
      const moved = on[0].full * 1024;
      expect(a.anon_exec_huge_kb).toBe(moved);
      expect(a.file).toBe(b.file - moved);
      // the same answers either way (the code is the same bytes at the same addresses)
      const job = { program: "import re, math\ndef f(s):\n    return [re.sub(r'a+', '-', s), math.comb(10, 3), sorted(set(s))]", entryPoint: "f", inputs: [{ args: ["banana"] }], timeoutS: 2 };
      const [[x], [y]] = [await one.runPrograms([job]), await off.runPrograms([job])];
      expect(x.results[0]).toMatchObject({ status: "ok", value: ["b-n-n-", 120, ["a", "b", "n"]] });
      expect(y.results[0].value).toEqual(x.results[0].value);
    } finally {
      await Promise.all([one.close(), off.close()]);
    }
  });
});

describe("prefaulting the pages every child writes (executor.prefault)", () => {
  it("is learned by each zygote where the kernel has process_madvise on itself (Linux ≥ 6.15), and only when asked", async () => {
    const [major, minor] = release().split(".").map(Number);
    const supported = major > 6 || (major === 6 && minor >= 15);
    const pages = async (e: SandboxExecutor) => (await e.zygoteInfo()).map((i) => i.prefault_pages);
    const on = await pages(ex);
    for (const z of on) {
      expect(Object.keys(z).sort()).toEqual(["full", "lean"]);
      // older kernels refuse the call (the zygote's probe), and each child faults its pages in as before
      for (const n of Object.values(z)) (supported ? expect(n).toBeGreaterThan(20) : expect(n).toBe(0));
    }
    const off = await createExecutor({ workers: 1, prefault: false });
    try {
      expect(await pages(off)).toEqual([{ full: 0, lean: 0 }]);
      const job = { program: "def f(x):\n    return [x, x * 2]", entryPoint: "f", inputs: [{ args: [3] }, { args: [4] }], timeoutS: 2 };
      const [a] = await off.runPrograms([job]);
      const [b] = await ex.runPrograms([job]);
      // the same results either way: prefaulting copies pages a child would have copied on its first write
      expect(a.results.map((r) => r.value)).toEqual([[3, 6], [4, 8]]);
      expect(b.results.map((r) => r.value)).toEqual([[3, 6], [4, 8]]);
      if (supported) {
        // Each child makes the call: the pages it copies count as its page faults before the harness runs
        // (flt_fork), so with the prefault that phase has at least the learned count, and without it fewer.
        const learned = Math.min(...on.map((z) => z.lean)); // the job runs on either worker
        const [timedOn] = await ex.runPrograms([job], { timing: true });
        const [timedOff] = await off.runPrograms([job], { timing: true });
        expect(timedOn.timing!.flt_fork).toBeGreaterThanOrEqual(learned);
        expect(timedOff.timing!.flt_fork).toBeLessThan(learned);
      }
    } finally {
      await off.close();
    }
  });
});

describe("compiling in the server (executor.precompile)", () => {
  // Programs whose results would change if the child ran anything but its own compile of the text; each must
  // give the same results, statuses and messages with the server's compile as with the child's.
  const same: [string, string, boolean][] = [
    // [program, why, whether the server compiles it]
    ["def f(x: int = 3, *rest, k: 'str' = 'a', **kw) -> list:\n    return [x, rest, k, sorted(kw)]\n\nclass C:\n    pass\n", "plain", true],
    ["def f(x):\n    return x +\n", "a syntax error: the child's own message", false],
    ["raise ValueError('at module level')\ndef f(x):\n    return x\n", "an error when the module runs", true],
    ["def f(x):\n    return x is 1\n", "a SyntaxWarning (printed in the child)", false],
    ["def f(x):\n    return len('\\d') + x\n", "an invalid escape (a DeprecationWarning)", false],
    // A frozenset constant rebuilt by marshal from its own order iterates in another order: [1, 29, 50, 21]
    // where the text compiled in place gives [1, 50, 21, 29] (CPython 3.11).
    ["def f(x):\n    return [y for y in {50, 21, 29, 1}]\n", "a set whose order marshal would change", false],
    ["def f(x):\n    return [y for y in {1, 2, 3}] + [x in {'a', 'b'}]\n", "sets whose order survives", true],
    [`def f(x):\n    return ${"-".repeat(2985)}x\n`, "nested near the compiler's limit (the child's compile fails)", false],
    [`def f(x):\n    return ${"-".repeat(600)}x\n`, "nested, well within it", true],
    ["def f(x):\n    return '\ud800'\n", "a lone surrogate (not encodable)", false],
    [`X = ${JSON.stringify("y".repeat(70_000))}\ndef f(x):\n    return len(X) + x\n`, "over PRECOMPILE_MAX", false],
    ["import time\nwhile True:\n    pass\n", "a module level past its limit", true],
  ];
  // (a check the server decides without a child says so: executor.static_check, test/executor-static.test.ts)
  const zeroMs = (v: unknown) => JSON.parse(JSON.stringify(v, (k, x) => (k === "ms" ? 0 : k === "static" ? undefined : x)));

  it("gives every program the results its own compile gives, and compiles in the server only where that is certain", async () => {
    const off = await createExecutor({ workers: 1, precompile: false });
    try {
      // a short limit only where the module level never ends; a generous one elsewhere, so a loaded machine
      // cannot turn a slow load into a timeout on one side only
      const limit = (program: string) => (program.includes("while True") ? 0.5 : 10);
      const jobs = same.map(([program]) => ({ program, entryPoint: "f", inputs: [{ args: [2] }, { args: [5] }], timeoutS: limit(program) }));
      const [a, b] = await Promise.all([ex.runPrograms(jobs, { timing: true }), off.runPrograms(jobs, { timing: true })]);
      const checks = (e: SandboxExecutor) => Promise.all(same.map(([program]) => e.checkProgram(program, { timeoutS: limit(program) })));
      const [ca, cb] = await Promise.all([checks(ex), checks(off)]);
      same.forEach(([, why, compiled], i) => {
        expect(zeroMs(a[i].results), why).toEqual(zeroMs(b[i].results));
        expect(zeroMs(ca[i]), why).toEqual(zeroMs(cb[i]));
        expect(a[i].timing!.precompiled, why).toBe(compiled ? 1 : 0);
        expect(b[i].timing!.precompiled, why).toBe(0);
      });
      // the corpus is not vacuous: the statuses differ between its programs, and the set's order is the in-place one
      expect(new Set(a.map((r) => r.results[0].status))).toEqual(new Set(["ok", "error", "timeout"]));
      expect(new Set(ca.map((c) => c.status))).toEqual(new Set(["ok", "syntax_error", "error", "timeout"]));
      expect(a[5].results[0]).toMatchObject({ status: "ok", value: [1, 50, 21, 29] });
      expect(ca[0].functions.map((f) => f.signature)).toEqual(["f(x: int = 3, *rest, k: 'str' = 'a', **kw) -> list"]);
      expect(ca[0].classes).toEqual(["C"]);
    } finally {
      await off.close();
    }
  });

  it("spares the child the compile: fewer page faults while its module loads", async () => {
    const off = await createExecutor({ workers: 1, precompile: false });
    try {
      const job = { program: "def f(x: int) -> list:\n    return [x, x * 2, {'k': x}]\n", entryPoint: "f", inputs: [{ args: [3] }], timeoutS: 2 };
      const [[on], [no]] = await Promise.all([ex.runPrograms([job], { timing: true }), off.runPrograms([job], { timing: true })]);
      expect(on.results).toEqual(no.results.map((r) => ({ ...r, ms: on.results[0].ms })));
      expect(on.timing!.flt_load).toBeLessThan(no.timing!.flt_load);
    } finally {
      await off.close();
    }
  });
});

describe("per-request accounting (runPrograms usage)", () => {
  it("is complete when the call resolves: one child per program run, CPU counted, nothing left behind", async () => {
    const usage = { cpu_s: 0, max_rss_mb: 0, children: 0, stray: 0 };
    const burn = "def f(n):\n    s = 0\n    for i in range(n):\n        s += i\n    return s\n";
    const [r] = await ex.runPrograms([{ program: burn, entryPoint: "f", inputs: [{ args: [200_000] }], timeoutS: 5 }], { usage });
    expect(r.results[0]).toMatchObject({ status: "ok", value: 19999900000 });
    // Read at once, before any later tick: the totals arrived with the request's end, not after it.
    expect(usage.children).toBe(1);
    expect(usage.stray).toBe(0);
    expect(usage.cpu_s).toBeGreaterThan(0);
    expect(usage.max_rss_mb).toBeGreaterThan(0);
  });
});

describe("the scheduler", () => {
  it("sends single programs queued in different ticks together once a worker is free (one request's fixed cost for several)", async () => {
    await withOneWorker(async (one) => {
      const job = (n: number) => ({ program: `import time\ndef f(x):\n    time.sleep(x)\n    return ${n}`, entryPoint: "f", inputs: [{ args: [0.01] }], timeoutS: 5 });
      const first = one.runPrograms([{ ...job(0), inputs: [{ args: [1] }] }]); // occupies the only worker (a second: ticks take microseconds, even on a loaded machine)
      const usages: { cpu_s: number; max_rss_mb: number; children: number; stray: number }[] = [];
      const later: Promise<unknown>[] = [];
      for (let k = 1; k <= 4; k++) {
        await new Promise((r) => setImmediate(r)); // each single in a tick of its own, as the engine's records call
        const usage = { cpu_s: 0, max_rss_mb: 0, children: 0, stray: 0 };
        usages.push(usage);
        later.push(one.runPrograms([job(k)], { usage }));
      }
      const rs = (await Promise.all([first, ...later])) as { results: { value?: unknown }[] }[][];
      expect(rs.map((r) => r[0].results[0].value)).toEqual([0, 1, 2, 3, 4]);
      // each caller is told its request's children: more than one where singles of different ticks travelled together
      expect(Math.max(...usages.map((u) => u.children))).toBeGreaterThanOrEqual(2);
    });
  });
});

describe("per-program cost breakdown (runPrograms timing)", () => {
  it("is there, per phase, only when asked for", async () => {
    const job = { program: "def f(x):\n    return x * 2", entryPoint: "f", inputs: [{ args: [1] }, { args: [2] }], timeoutS: 2 };
    const [timed] = await ex.runPrograms([job], { timing: true });
    expect(timed.results.map((r) => r.value)).toEqual([2, 4]);
    const t = timed.timing as Record<string, number>;
    expect(t.children).toBe(1);
    for (const phase of ["fork", "setup", "load", "run"]) expect(t[phase], phase).toBeGreaterThan(0);
    // page faults by phase, counted by the child (getrusage): a forked child writes to copied pages in each
    for (const phase of ["flt_fork", "flt_setup", "flt_load"]) {
      expect(Number.isInteger(t[phase]), phase).toBe(true);
      expect(t[phase], phase).toBeGreaterThan(0);
    }
    const [plain] = await ex.runPrograms([job]);
    expect(plain.results.map((r) => r.value)).toEqual([2, 4]);
    expect(plain.timing).toBeUndefined();
  });
});

describe("configuration and policy", () => {
  it("hands the server's source over in argv pieces the kernel takes (at most 128 KiB each)", () => {
    const src = serverScript();
    const pieces = argvPieces(src);
    expect(pieces.join("")).toBe(src);
    for (const p of pieces) expect(Buffer.byteLength(p, "utf8")).toBeLessThan(128 * 1024);
    // a text of three-byte characters only: each piece still under the limit
    const wide = "→".repeat(100_000);
    expect(argvPieces(wide).join("")).toBe(wide);
    for (const p of argvPieces(wide)) expect(Buffer.byteLength(p, "utf8")).toBeLessThan(128 * 1024);
    // a surrogate pair across a boundary stays whole
    expect(argvPieces("ab😀cd", 3)).toEqual(["ab", "😀c", "d"]);
    expect(argvPieces("")).toEqual([]);
  });
  it("schema defaults follow the reference harness and reject unknown keys", () => {
    const c = executorConfigSchema.parse({});
    expect(c).toMatchObject({ python: "/usr/bin/python3", memory_mb: 1024, unsafe_no_sandbox: false, gold_timeout_s: 1, buggy_timeout_s: 2, calibrate: true });
    expect(c.workers).toBeGreaterThan(0);
    expect(executorConfigSchema.safeParse({ memroy_mb: 3 }).success).toBe(false);
  });
  it("buggyTimeoutFor: clamp(factor × gold, floor, buggy_timeout_s); fixed without calibration", () => {
    const cfg = { calibrate_factor: 4, calibrate_floor_s: 0.2, buggy_timeout_s: 2 };
    expect(buggyTimeoutFor(1, cfg)).toBe(0.2);
    expect(buggyTimeoutFor(100, cfg)).toBeCloseTo(0.4, 12);
    expect(buggyTimeoutFor(5000, cfg)).toBe(2);
    expect(buggyTimeoutFor(1, { ...cfg, calibrate: false })).toBe(2);
  });
  it("a bad executor block is a one-line user error", async () => {
    await expect(createExecutor({ memory_mb: -1 } as never)).rejects.toThrow(UserError);
    await expect(createExecutor({ python: "/nonexistent/python3" })).rejects.toThrow(/does not exist/);
  });
  it("runs its probe while the workers start: a sandbox that cannot run the interpreter fails with the probe's one line", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "utgen-probe-"));
    try {
      // outside /usr, so the sandbox has no such file: the probe and both workers fail at once
      const python = path.join(dir, "python3");
      writeFileSync(python, "#!/bin/sh\nexit 3\n", { mode: 0o755 });
      const err = await createExecutor({ python, workers: 2 }).catch((e) => e);
      expect(err).toBeInstanceOf(UserError);
      expect((err as Error).message).toMatch(/^the code sandbox \(bubblewrap\) cannot start here \(.*\): /);
      expect((err as Error).message).not.toMatch(/\n/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  it("refuses to start without bubblewrap (and says what to install), unless the unsafe flag is set", () => {
    const o = { python: "/usr/bin/python3", unsafe: false, tmpfsMb: 16, limits: {} };
    expect(() => checkSandbox(o, { bwrap: undefined, setpriv: "/usr/bin/setpriv" })).toThrow(/apt-get install bubblewrap/);
    if (process.getuid?.() === 0) expect(() => checkSandbox(o, { bwrap: "/usr/bin/bwrap", setpriv: undefined })).toThrow(/setpriv/);
    expect(() => checkSandbox({ ...o, unsafe: true }, { bwrap: undefined, setpriv: undefined })).not.toThrow();
  });
  it("control: without the sandbox the loopback server IS reachable (so the hostile suite's check can fail)", async () => {
    let connections = 0;
    const server = createServer((s) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    const port = (server.address() as { port: number }).port;
    const unsafe = await createExecutor({ workers: 1, unsafe_no_sandbox: true });
    try {
      const src = `import socket\ndef f():\n    socket.create_connection(('127.0.0.1', ${port}), timeout=2).close()\n    return 'connected'`;
      const [r] = await unsafe.runCalls({ program: src, entryPoint: "f", inputs: [{ args: [] }], timeoutS: 3 });
      expect(r.value).toBe("connected");
      expect(connections).toBe(1);
      const [sandboxed] = await ex.runCalls({ program: src, entryPoint: "f", inputs: [{ args: [] }], timeoutS: 3 });
      expect(sandboxed.status).toBe("error");
      expect(connections).toBe(1);
    } finally {
      await unsafe.close();
      server.close();
    }
  });
  it("unsafe mode: each child has its own process group, and a server that restarts leaves no folder behind", async () => {
    const ownDirs = () => readdirSync(tmpdir()).filter((n) => n.startsWith("utgen-exec-")).sort(); // unsafe mode works under TMPDIR
    const dirsBefore = ownDirs();
    const unsafe = await createExecutor({ workers: 1, unsafe_no_sandbox: true });
    try {
      // Without a pid namespace the zygote is not pid 1 (not immune), so each child keeps a process group of its
      // own there: a program that signals its group ends itself, not its zygote (the worker is not restarted).
      const before = unsafe.workerPids();
      const group = await unsafe.runPrograms([
        { program: "import os, signal\ndef f():\n    os.killpg(0, signal.SIGTERM)\n    return 1", entryPoint: "f", inputs: [{ args: [] }], timeoutS: 2 },
        { program: "def f(x):\n    return x + 1", entryPoint: "f", inputs: [{ args: [1] }], timeoutS: 2 },
      ]);
      expect(group[0].results[0].status).toBe("crash");
      expect(group[1].results[0]).toMatchObject({ status: "ok", value: 2 });
      expect(unsafe.workerPids()).toEqual(before);
      // Here a program can end its zygote (not pid 1): the server restarts, and removes its own folder first.
      await unsafe.runCalls({ program: "import os, signal\ndef f():\n    os.kill(os.getppid(), signal.SIGKILL)\n    return 1", entryPoint: "f", inputs: [{ args: [] }], timeoutS: 2 });
      const [after] = await unsafe.runCalls({ program: "def f(x):\n    return x + 1", entryPoint: "f", inputs: [{ args: [1] }], timeoutS: 2 });
      expect(after).toMatchObject({ status: "ok", value: 2 });
      expect(unsafe.workerPids()).not.toEqual(before); // control: that server did go
    } finally {
      await unsafe.close();
    }
    expect(ownDirs()).toEqual(dirsBefore); // every server of that pool removed its folder under TMPDIR
  });
});
