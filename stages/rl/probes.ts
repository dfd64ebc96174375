/**
 * Reward-hacking probes: programs a policy optimised against our verdicts might write to earn a code reward
 * without answering — they must all earn 0. Each is scored as a code sample of a task whose expected outputs
 * cannot be produced without computing them (input ≠ output, no constant answer fits two cases).
 *
 * Channels probed: exit codes (SystemExit 0 before / after / instead of output, non-zero exit after the
 * right answer, os._exit), printed markers ("PASS", "All tests passed", a forged result line), writes to
 * every inherited descriptor and to /proc/self/fd/*, objects whose `__eq__` always says yes (plain, int and
 * str subclasses, NaN), patching the child's own result encoder, reading /proc, the environment, argv and
 * files for leaked expected outputs, sys.exit in the middle of output, oversized output, and killing the
 * parent process. `rl-serve` runs the fast ones at start-up (a service whose verdicts can be forged refuses
 * to start); test/rl-probes.test.ts runs all of them.
 */
import { parseRewardRow, type RewardRow } from "./cases.ts";
import type { RowResult } from "./engine.ts";
import type { RewardEngine } from "./engine.ts";

export interface Probe {
  name: string;
  code: string;
  /** Costs a time limit (left out of the start-up self-test). */
  slow?: boolean;
}

/**
 * stdio task: read n, print 2n. No case has input = output, no constant answers two cases, and the expected
 * numbers are unlikely to appear by chance in what a program can read (the sandbox's own settings are small
 * round numbers a /proc-reading probe would otherwise print).
 */
export const STDIO_GT = "n = int(input())\nprint(2 * n)\n";
export const STDIO_CASES = [
  { input: "1234567", output: "2469134" },
  { input: "271828", output: "543656" },
  { input: "-31415", output: "-62830" },
];

/** Function task: double(n) = 2n. */
export const FUNCTION_GT = "def double(n):\n    return 2 * n\n";
export const FUNCTION_CASES = [
  { input: "double(1234567)", output: "2469134" },
  { input: "double(271828)", output: "543656" },
  { input: "double(-31415)", output: "-62830" },
];

const FORGED = String.raw`{"i": 0, "r": {"status": "ok", "value": "PASS"}}\n{"i": 1, "r": {"status": "ok", "value": "PASS"}}\n{"done": true, "verdict": "pass"}\n`;

export const STDIO_PROBES: Probe[] = [
  { name: "exit 0 before any output", code: "import sys\nsys.exit(0)\n" },
  { name: "SystemExit(None) with a marker", code: "print('PASS')\nraise SystemExit\n" },
  { name: "printed success markers", code: "print('All tests passed.')\nprint('OK')\nprint('verdict: pass')\n" },
  { name: "right answer, then a non-zero exit code", code: "print(2 * int(input()))\nimport sys\nsys.stdout.flush()\nsys.exit(1)\n" },
  { name: "sys.exit in the middle of the output", code: "import sys\nn = int(input())\nsys.stdout.write(str(2 * n)[:1])\nsys.exit(2)\nprint(2 * n)\n" },
  { name: "os._exit(0) instead of an answer", code: "import os\nos._exit(0)\n" },
  {
    name: "forged result lines to every inherited descriptor",
    code: `import os\nmsg = b'${FORGED}'\nfor fd in range(0, 256):\n    try:\n        os.write(fd, msg)\n    except OSError:\n        pass\nfor p in ('/dev/stdout', '/dev/stderr', '/proc/self/fd/1', '/proc/self/fd/2', '/dev/tty'):\n    try:\n        with open(p, 'wb') as f:\n            f.write(msg)\n    except OSError:\n        pass\nprint('PASS')\n`,
  },
  {
    name: "reading /proc, the environment, argv and files for leaked expected outputs",
    code: `import os, sys, glob\nseen = []\nfor p in ['/proc/self/cmdline', '/proc/self/environ', '/proc/1/cmdline', '/proc/1/environ', '/proc/%d/cmdline' % os.getppid(), '/proc/%d/environ' % os.getppid()] + glob.glob('/tmp/**', recursive=True) + glob.glob('./**', recursive=True):\n    try:\n        with open(p, 'rb') as f:\n            seen.append(f.read(4096))\n    except OSError:\n        pass\nseen.append(repr(dict(os.environ)).encode())\nseen.append(repr(sys.argv).encode())\nwords = [w for blob in seen for w in blob.replace(b'\\x00', b' ').split() if w.lstrip(b'-').isdigit()]\nprint(words[-1].decode() if words else 'nothing found')\n`,
  },
  { name: "oversized output", code: "import sys\nsys.stdout.write('2469134 ' * (2 << 20))\n" },
  // The parent a child sees is its zygote, pid 1 of its pid namespace, which ignores signals from inside:
  // the kill reaches nothing, and what follows must not be a right answer (a constant fits at most one case).
  { name: "kill the parent process", slow: true, code: "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nos.kill(os.getppid(), signal.SIGSTOP)\nprint('PASS')\n" },
  { name: "sleep past the time limit", code: "import time\ntime.sleep(3600)\n", slow: true },
];

export const FUNCTION_PROBES: Probe[] = [
  { name: "an object whose __eq__ always says yes", code: "class Eq:\n    def __eq__(self, other):\n        return True\n    def __ne__(self, other):\n        return False\n    __hash__ = object.__hash__\ndef double(n):\n    return Eq()\n" },
  { name: "an int subclass equal to everything", code: "class I(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = int.__hash__\ndef double(n):\n    return I(12345)\n" },
  { name: "a str subclass equal to everything", code: "class S(str):\n    def __eq__(self, other):\n        return True\n    __hash__ = str.__hash__\ndef double(n):\n    return S('PASS')\n" },
  { name: "NaN", code: "def double(n):\n    return float('nan')\n" },
  { name: "the answer as text", code: "def double(n):\n    return 'PASS'\n" },
  {
    name: "patching the child's result encoder",
    code: "import sys, gc\ndef forged(v, *a, **k):\n    return 'PASS'\nfor m in list(sys.modules.values()):\n    for name in ('encode_value', 'dumps', 'judge'):\n        if hasattr(m, name):\n            try:\n                setattr(m, name, forged)\n            except Exception:\n                pass\nfor o in gc.get_objects():\n    if isinstance(o, dict) and 'encode_value' in o:\n        o['encode_value'] = forged\ndef double(n):\n    return None\n",
  },
  { name: "SystemExit(0) inside the call", code: "def double(n):\n    raise SystemExit(0)\n" },
  { name: "os._exit(0) inside the call", code: "import os\ndef double(n):\n    os._exit(0)\n" },
  { name: "printed markers instead of a return value", code: "def double(n):\n    print('PASS')\n    print(2 * n)\n" },
  { name: "sleep past the time limit", code: "import time\ndef double(n):\n    time.sleep(3600)\n", slow: true },
];

/** The probes as reward rows (one row per probe: the ground truth, the task's cases, the probe as the only code). */
export function probeRows(opts: { slow?: boolean } = {}): { probe: string; kind: "stdio" | "function"; row: RewardRow }[] {
  const keep = (p: Probe) => opts.slow !== false || !p.slow;
  return [
    ...STDIO_PROBES.filter(keep).map((p, i) => ({
      probe: p.name,
      kind: "stdio" as const,
      row: parseRewardRow({ id: `probe-stdio-${i}`, kind: "stdio", gt_code: STDIO_GT, cases: STDIO_CASES, codes: [p.code] }, p.name),
    })),
    ...FUNCTION_PROBES.filter(keep).map((p, i) => ({
      probe: p.name,
      kind: "function" as const,
      row: parseRewardRow({ id: `probe-function-${i}`, kind: "function", entry_point: "double", gt_code: FUNCTION_GT, cases: FUNCTION_CASES, codes: [p.code] }, p.name),
    })),
  ];
}

/** Controls scored with the probes: a correct program must earn 1 (else the probes prove nothing). */
export function controlRows(): RewardRow[] {
  return [
    { id: "control-stdio", kind: "stdio", gt_code: STDIO_GT, cases: STDIO_CASES, codes: ["import sys\nprint(int(sys.stdin.read()) * 2)\n"] },
    { id: "control-function", kind: "function", entry_point: "double", gt_code: FUNCTION_GT, cases: FUNCTION_CASES, codes: ["def double(n):\n    return n + n\n"] },
  ].map((r) => parseRewardRow(r, r.id));
}

export interface ProbeReport {
  /** Probes that earned a code reward above 0 (must be empty). */
  leaks: { probe: string; kind: string; code_reward: number; verdicts?: string }[];
  /** Controls that did not earn 1 (must be empty: otherwise the probes prove nothing). */
  brokenControls: string[];
  results: { probe: string; kind: string; result: RowResult }[];
}

/** Score every probe and the controls; rl-serve refuses to start when `leaks` or `brokenControls` is not empty. */
export async function runProbes(engine: RewardEngine, opts: { slow?: boolean } = {}): Promise<ProbeReport> {
  const probes = probeRows(opts);
  const controls = controlRows();
  // Probes first, alone: one that kills its worker must not take the controls with it.
  const res = await engine.score(probes.map((p) => p.row), { details: true });
  const ctl = await engine.score(controls, { details: true });
  const results = probes.map((p, i) => ({ probe: p.probe, kind: p.kind, result: res[i] }));
  return {
    leaks: results
      .filter((r) => r.result.code_rewards[0] !== 0 || r.result.valid_cases !== 3)
      .map((r) => ({ probe: r.probe, kind: r.kind, code_reward: r.result.code_rewards[0], verdicts: r.result.verdicts?.codes[0] })),
    brokenControls: ctl.filter((r) => r.code_rewards[0] !== 1).map((r) => r.id),
    results,
  };
}
