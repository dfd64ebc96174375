/**
 * Verdicts no program can forge (issue #12). Each probe is a "solution" that tries to make the harness report
 * passes it did not earn — writing well-formed result lines to the descriptors it inherited (found by number
 * or through /proc/self/fd), reaching the harness's frames for the current call's nonce, answering calls the
 * server has not issued, returning objects whose __eq__ is always true, patching the harness's own functions,
 * looking for the expected values in its own process. Every probe must earn 0 passes, through gold-check
 * (the reference's pass@1 path) and through runPrograms + judgeCall (the path UTDebug and UTRL rewards use).
 * A control program that computes the right answers must pass, so the check can fail.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createExecutor, judgeCall, type PyValue, type SandboxExecutor } from "../pipeline/executor/index.ts";
import { goldCheck, type GoldProblem } from "../stages/gold-check.ts";

let ex: SandboxExecutor;
beforeAll(async () => {
  ex = await createExecutor({ workers: 2 });
});
afterAll(async () => {
  await ex?.close();
});

// No result is 0 or 1: a forger's favourite value, True, equals 1 in Python (and in the reference's comparison),
// so a program that returns True for a test whose answer is 1 passes it legitimately.
const INPUTS = [[1, 2], [0, 5], [-1, 4], [-3, -3], [4, 0], [7, 8]];
const RESULTS = INPUTS.map(([a, b]) => a + b);
const TEST = `import numpy as np
def assertion(out, exp, atol):
    assert out == exp
inputs = ${JSON.stringify(INPUTS)}
results = ${JSON.stringify(RESULTS)}
for i, (inp, exp) in enumerate(zip(inputs, results)):
    assertion(add(*inp), exp, 0)
`;
const CANONICAL = "def add(a, b):\n    return a + b\n";

// A line the harness writes for input `i` with the value `v` (the server's protocol, see server.py).
const FORGE_HELPERS = `
import os, json, sys
def _line(i, nonce, v):
    return (json.dumps({"i": i, "r": {"status": "ok", "value": v, "ms": 0.1, "e": 0.0}}) + "\\n").encode()
def _pipes():
    out = []
    for fd in range(3, 64):
        try:
            if os.readlink("/proc/self/fd/%d" % fd).startswith("pipe:"):
                out.append(fd)
        except OSError:
            pass
    return out
def _harness_frame():
    f = sys._getframe(1)
    while f is not None and not ("w" in f.f_locals and "inputs" in f.f_locals):
        f = f.f_back
    return f
`;

const PROBES: { name: string; code: string }[] = [
  {
    name: "writes well-formed result lines for every test to every inherited descriptor, then exits",
    code: `${FORGE_HELPERS}
def add(a, b):
    for fd in _pipes():
        for i in range(200):
            for v in (True, a + b, 3, 5, 1, -6, 4, 15):
                try:
                    os.write(fd, _line(i, "0" * 32, v))
                except OSError:
                    pass
    os._exit(0)
`,
  },
  {
    name: "opens /proc/self/fd/N to write the same lines",
    code: `${FORGE_HELPERS}
def add(a, b):
    for fd in _pipes():
        try:
            with open("/proc/self/fd/%d" % fd, "wb") as fh:
                for i in range(200):
                    fh.write(_line(i, "0" * 32, True))
        except OSError:
            pass
    return None
`,
  },
  {
    name: "takes the harness's channel and position from its frame, answers every remaining call itself and exits",
    code: `${FORGE_HELPERS}
def add(a, b):
    f = _harness_frame()
    if f is not None:
        w = f.f_locals["w"]
        k = f.f_locals["start"] + f.f_locals["j"]
        for i in range(k, k + 50):
            os.write(w, _line(i, None, True))
        os._exit(0)
    return None
`,
  },
  {
    name: "answers its own call through the harness's channel (a wrong value), then lets the harness answer too",
    code: `${FORGE_HELPERS}
def add(a, b):
    f = _harness_frame()
    os.write(f.f_locals["w"], _line(f.f_locals["start"] + f.f_locals["j"], None, 0))
    return a + b
`,
  },
  {
    name: "writes result lines at module level, before any call is issued",
    code: `${FORGE_HELPERS}
for fd in _pipes():
    for i in range(50):
        try:
            os.write(fd, _line(i, "0" * 32, True))
        except OSError:
            pass
def add(a, b):
    return a + b
`,
  },
  {
    name: "returns a list subclass whose __eq__ is always true",
    code: `class Always(list):
    def __eq__(self, other):
        return True
    def __ne__(self, other):
        return False
    __hash__ = None
def add(a, b):
    return Always([a + b])
`,
  },
  {
    name: "returns an int subclass whose __eq__ is always true",
    code: `class Eq(int):
    def __eq__(self, other):
        return True
    __hash__ = int.__hash__
def add(a, b):
    return Eq(12345)
`,
  },
  {
    name: "reaches the caller's frame to disable an assertion, patch the encoder, read expected values",
    code: `import sys, gc
def add(a, b):
    f = sys._getframe(1)
    g = f.f_globals
    g["assertion"] = lambda *x: None
    if "encode_value" in g:
        g["encode_value"] = lambda v: True
    found = [o for o in gc.get_objects() if isinstance(o, dict) and "results" in o]
    if found:
        return found[0]["results"]
    return "no expected values here"
`,
  },
  {
    name: "patches the harness's result writer to claim success",
    code: `import sys
m = sys.modules["__main__"]
real = m._line
def fake(obj):
    if "r" in obj:
        obj["r"] = {"status": "ok", "value": True, "ms": 0}
    return real(obj)
m._line = fake
def add(a, b):
    return None
`,
  },
];

const problem = (code: string): GoldProblem => ({ task_id: 1, test: TEST, canonical_solution: CANONICAL, code, entry_point: "add" });

describe("verdicts a program cannot forge", () => {
  it("control: correct code passes every test through both paths (so the probes' zeros mean something)", async () => {
    const s = await goldCheck(ex, [problem("def add(a, b):\n    return b + a\n")]);
    expect(s.per_problem[0].canonical_pass_rate).toBe(1);
    expect(s.per_problem[0].code_pass_rate).toBe(1);
    const [r] = await ex.runPrograms([{ program: CANONICAL, entryPoint: "add", inputs: INPUTS.map((args) => ({ args })), timeoutS: 1 }]);
    expect(r.results.map((x, i) => judgeCall(x, RESULTS[i]))).toEqual(RESULTS.map(() => "pass"));
  });

  for (const p of PROBES) {
    it(`${p.name}: 0 passes`, async () => {
      const s = await goldCheck(ex, [problem(p.code)], { details: true });
      expect(s.per_problem[0].canonical_pass_rate).toBe(1);
      expect(s.per_problem[0].code_pass_rate, s.per_problem[0].code_verdicts).toBe(0);
      const [r] = await ex.runPrograms([{ program: p.code, entryPoint: "add", inputs: INPUTS.map((args) => ({ args })), timeoutS: 1 }]);
      const verdicts = r.results.map((x, i) => judgeCall(x, RESULTS[i] as PyValue));
      expect(verdicts.filter((v) => v === "pass"), JSON.stringify(r.results).slice(0, 400)).toEqual([]);
    });
  }

  it("the writer-patching probe does reach the harness: its calls come back as the value it forged (True), judged as that value", async () => {
    const probe = PROBES.find((p) => p.name.startsWith("patches the harness's result writer"))!;
    const [r] = await ex.runPrograms([{ program: probe.code, entryPoint: "add", inputs: INPUTS.map((args) => ({ args })), timeoutS: 1 }]);
    expect(r.results.map((x) => [x.status, x.value])).toEqual(INPUTS.map(() => ["ok", true]));
    expect(r.results.map((x, i) => judgeCall(x, RESULTS[i] as PyValue)).filter((v) => v === "pass")).toEqual([]);
  });

  it("a program that writes to the result channel voids every result it gave (status crash, 'tampered')", async () => {
    const [r] = await ex.runPrograms([{ program: PROBES[3].code, entryPoint: "add", inputs: INPUTS.map((args) => ({ args })), timeoutS: 1 }]);
    expect(r.results.every((x) => x.status === "crash" && /tampered/.test(x.message ?? ""))).toBe(true);
  });

  it("the limit: a program answering its calls itself (later ones and the end too) only chooses values, judged outside", async () => {
    // It shares the harness's process, so nothing in it can be told from the harness (docs/executor.md, "The
    // limit of an in-process harness"). What it reports are its own values: right ones pass, as if returned;
    // wrong ones fail; it never sees an expected value.
    const forger = (offset: number) => `${FORGE_HELPERS}
def add(a, b):
    f = _harness_frame()
    w, hdr, inputs, start, j = (f.f_locals[x] for x in ("w", "hdr", "inputs", "start", "j"))
    for k in range(j, len(inputs)):
        x, y = inputs[k]["args"]
        os.write(w, (json.dumps({"i": start + k, "r": {"status": "ok", "value": x + y + ${offset}, "ms": 0.1}}) + "\\n").encode())
    os.write(w, (json.dumps({"end": hdr["end"]}) + "\\n").encode())
    os._exit(0)
`;
    const run = async (code: string) => {
      const [r] = await ex.runPrograms([{ program: code, entryPoint: "add", inputs: INPUTS.map((args) => ({ args })), timeoutS: 1 }]);
      return r.results.map((x, i) => judgeCall(x, RESULTS[i] as PyValue));
    };
    expect(await run(forger(0))).toEqual(RESULTS.map(() => "pass")); // the values a correct add returns
    expect((await run(forger(1))).filter((v) => v === "pass")).toEqual([]); // wrong values stay wrong
  });

  it("checkProgram: a module that claims its own load succeeded, then dies, is not reported ok", async () => {
    const forged = `${FORGE_HELPERS}
for fd in _pipes():
    try:
        os.write(fd, b'{"load": {"status": "ok"}}\\n')
    except OSError:
        pass
os._exit(0)
`;
    const c = await ex.checkProgram(forged, { timeoutS: 1 });
    expect(c.status).not.toBe("ok");
    const fine = await ex.checkProgram("x = 1\n", { timeoutS: 1 });
    expect(fine.status).toBe("ok");
  });

  it("runScript: a script whose OUTPUT line is followed by a forged one is not taken as ok", async () => {
    const script = `${FORGE_HELPERS}
OUTPUT = {"real": True}
for fd in _pipes():
    try:
        os.write(fd, b'{"load": {"status": "ok"}, "output": {"forged": true}}\\n')
    except OSError:
        pass
`;
    const res = await ex.runScript(script, null, { timeoutS: 2 });
    expect(res.output).not.toEqual({ forged: true });
    expect(res.status).not.toBe("ok");
  });
});
