/**
 * A scripted model for UTDebug, served by the loopback OpenAI server (test/servers/openai.ts). It answers by
 * prompt content, per problem (found by the entry point in the prompt):
 *  - UT prompts (utgen_ut / random_joint_ut): the problem's scripted unit tests in order of sample index
 *    (`Arguments: ```f(x)``` … Output: ```y````), then "I cannot think of another test.";
 *  - self-consistency requests (a continued assistant turn, or the separate output prompt): the scripted
 *    votes of that input;
 *  - the debugging chat: a fix only when the last feedback turn names a failing input with the CORRECT
 *    expected output (checked against the problem's gold function); the n-th asking of the same chat takes
 *    the n-th entry of `attempts` ("fix", "bad": the problem's bad edit, "same": the code unchanged);
 *    after a No-UT critique it fixes when the problem says `fixFromCritique`;
 *  - the No-UT critique prompt: "correct" for the canonical code, else the problem's scripted verdict;
 *  - the bare code-generation prompt (best-of-N sampling): the problem's `codeSamples` by sample index.
 * The sample index of a choice is the request's `seed` plus its position (the client shifts a seeded request's
 * seed by the first sample it asks for), so with `llm.seed` set the answers do not depend on what was asked
 * before; without a seed the model counts the samples it gave per prompt.
 */
import type { ScriptRequest, ScriptedReply } from "./openai.ts";

export interface ScriptedProblem {
  /** Gold on one int argument (the scripted problems take one int). */
  gold: (x: number) => number;
  canonical: string;
  buggy: string;
  badEdit?: string;
  /** UT samples in order: the input and the k votes the output request answers with. */
  uts: { arg: number; output?: string; votes: string[] }[];
  /** What the n-th asking of the same debugging chat does (default: always "fix"). */
  attempts?: ("fix" | "bad" | "same")[];
  /** The critique's verdict on any code other than the canonical one. */
  critic: "wrong" | "correct";
  fixFromCritique?: boolean;
  /** Best-of-N: what the i-th sample of the bare code-generation prompt is (default: the buggy code). */
  codeSamples?: ("canonical" | "buggy" | "bad")[];
}

export interface DebugModel {
  script: (req: ScriptRequest) => ScriptedReply;
  /** Requests by kind, for assertions. */
  counts: Record<"ut" | "vote" | "debug" | "critique" | "other", number>;
}

const norm = (code: string) => code.replace(/\s+/g, " ").trim();

export function debugModel(problems: Record<string, ScriptedProblem>, opts: { delayMs?: number } = {}): DebugModel {
  const samples = new Map<string, number>();
  const asked = new Map<string, number>();
  const counts = { ut: 0, vote: 0, debug: 0, critique: 0, other: 0 };
  const entryIn = (text: string) => Object.keys(problems).find((e) => text.includes(`\`${e}(`) || text.includes(`${e}(`));
  const reply = (choices: string[]): ScriptedReply => (opts.delayMs ? { choices, delayMs: opts.delayMs } : { choices });

  const script = (req: ScriptRequest): ScriptedReply => {
    const msgs = req.messages;
    const first = msgs[0]?.content ?? "";
    const last = msgs[msgs.length - 1];
    const entry = entryIn(first);
    const p = entry ? problems[entry] : undefined;
    if (!p || !entry) {
      counts.other++;
      return reply(Array(req.n).fill("?"));
    }
    // Self-consistency: a continued generator turn, or the separate output prompt.
    if (last.role === "assistant" && req.body.continue_final_message === true) {
      counts.vote++;
      const m = new RegExp(`Arguments: \`\`\`${entry}\\((-?\\d+)\\)`).exec(last.content);
      const ut = p.uts.find((u) => m && u.arg === Number(m[1]));
      return reply(Array.from({ length: req.n }, (_, i) => `### Output\nThinking it through.\nOutput: \`\`\`${ut?.votes[i % ut.votes.length] ?? "?"}\`\`\``));
    }
    if (first.includes("A user calls this functions with the input")) {
      counts.vote++;
      const m = new RegExp(`input: ${entry}\\((-?\\d+)\\)`).exec(first);
      const ut = p.uts.find((u) => m && u.arg === Number(m[1]));
      return reply(Array.from({ length: req.n }, (_, i) => `The answer.\n\nOutput: \`\`\`${ut?.votes[i % ut.votes.length] ?? "?"}\`\`\``));
    }
    if (first.includes("write a unit test") || first.includes("generating a unit test")) {
      counts.ut++;
      const at = typeof req.body.seed === "number" ? req.body.seed : (samples.get(first) ?? 0);
      samples.set(first, at + req.n);
      return reply(
        Array.from({ length: req.n }, (_, i) => {
          const ut = p.uts[at + i];
          if (!ut) return "I cannot think of another test.";
          return `## Hypothesis\nSomething is off.\n\nError Pattern: small numbers\n\n## Unit Test\n\n### Input Arguments\nA small input.\nArguments: \`\`\`${entry}(${ut.arg})\`\`\`\n\n### Output\nWorking it out.\nOutput: \`\`\`${ut.output ?? ut.votes[0]}\`\`\``;
        }),
      );
    }
    if (first.includes("generate feedback that decides whether the code is correct")) {
      counts.critique++;
      const code = /## Code:\n```\n([\s\S]*?)```/.exec(first)?.[1] ?? "";
      const ok = norm(code) === norm(p.canonical) || p.critic === "correct";
      return reply(Array(req.n).fill(ok ? "Feedback: It handles the task.\nThe above code is correct." : "Feedback: It mishandles some inputs.\nThe above code is wrong, please fix it."));
    }
    if (first.includes("Write Python code to solve the task.") && msgs.length === 1) {
      counts.debug++;
      const at = typeof req.body.seed === "number" ? req.body.seed : 0;
      return reply(
        Array.from({ length: req.n }, (_, i) => {
          const kind = p.codeSamples?.[(at + i) % p.codeSamples.length] ?? "buggy";
          const code = kind === "canonical" ? p.canonical : kind === "bad" ? (p.badEdit ?? p.buggy) : p.buggy;
          return `\`\`\`python\n${code}\`\`\``;
        }),
      );
    }
    if (first.includes("Write Python code to solve the task.")) {
      counts.debug++;
      const key = JSON.stringify(msgs);
      const n = typeof req.body.seed === "number" ? req.body.seed : (asked.get(key) ?? 0);
      asked.set(key, n + req.n);
      const fb = [...msgs].reverse().find((m) => m.role === "user" && m.content.startsWith("The above code is incorrect"));
      const critique = last.role === "user" && last.content.includes("Feedback:") ? last.content : undefined;
      let correctUt = false;
      if (fb) {
        const input = /Input: \[(-?\d+)\]/.exec(fb.content);
        const expected = /Expected: (-?\d+)/.exec(fb.content);
        correctUt = !!input && !!expected && p.gold(Number(input[1])) === Number(expected[1]);
      }
      const choices = Array.from({ length: req.n }, (_, i) => {
        const action = critique ? (p.fixFromCritique && critique.includes("wrong") ? "fix" : "same") : correctUt ? ((p.attempts ?? ["fix"])[Math.min(n + i, (p.attempts ?? ["fix"]).length - 1)]) : "same";
        const code = action === "fix" ? p.canonical : action === "bad" ? (p.badEdit ?? p.buggy) : p.buggy;
        return `Here is the corrected code.\n\`\`\`python\n${code}\`\`\`\nIt should work now.`;
      });
      return reply(choices);
    }
    counts.other++;
    return reply(Array(req.n).fill("?"));
  };
  return { script, counts };
}

/** The scripted behaviour of test/fixtures/utdebug/mini.jsonl (see test/utdebug.test.ts for the expected outcomes). */
export function miniWorld(): Record<string, ScriptedProblem> {
  return {
    // Correct failing UTs, unanimous votes: fixed in round 1, no failing UT in round 2.
    add_one: {
      gold: (x) => x + 1,
      canonical: "def add_one(x: int):\n    return x + 1\n",
      buggy: "def add_one(x: int):\n    return x + 2\n",
      uts: [
        { arg: 1, votes: Array(8).fill("2") },
        { arg: 5, votes: Array(8).fill("6") },
        { arg: 0, votes: Array(8).fill("1") },
      ],
      critic: "wrong",
      fixFromCritique: true,
      codeSamples: ["buggy", "canonical", "buggy"],
    },
    // A non-failing UT, a 4–4 split (kept at the 50 % threshold, first-seen winner), a 3/3/2 split (dropped),
    // and a bad first edit that only trades one UT for another (same pass rate: discarded when the rate
    // must rise, kept when it must not fall).
    double: {
      gold: (x) => 2 * x,
      canonical: "def double(x: int):\n    return 2 * x\n",
      buggy: "def double(x: int):\n    return x + x if x > 0 else x\n",
      badEdit: "def double(x: int):\n    return 2 * x if x != 3 else 0\n",
      uts: [
        { arg: 3, votes: Array(8).fill("6") },
        { arg: -2, votes: ["-4", "-3", "-4", "-3", "-4", "-3", "-4", "-3"] },
        { arg: -1, votes: ["-2", "0", "-2", "0", "5", "-2", "0", "5"] },
        { arg: 3, votes: Array(8).fill("6") },
        { arg: 4, votes: ["8", "8.0", "8", "8.0", "8", "9", "9", "9"] },
      ],
      attempts: ["bad", "fix"],
      critic: "wrong",
      codeSamples: ["bad", "buggy", "canonical"],
    },
    // Already correct: every UT passes, so debugging stops at once.
    square: {
      gold: (x) => x * x,
      canonical: "def square(x: int):\n    return x * x\n",
      buggy: "def square(x: int):\n    return x * x\n",
      uts: [
        { arg: 2, votes: Array(8).fill("4") },
        { arg: 3, votes: Array(8).fill("9") },
        { arg: 0, votes: Array(8).fill("0") },
      ],
      critic: "correct",
      codeSamples: ["canonical"],
    },
    // Unanimously WRONG expected outputs: the debugger cannot fix from them, every edit is discarded.
    neg: {
      gold: (x) => -x,
      canonical: "def neg(x: int):\n    return -x\n",
      buggy: "def neg(x: int):\n    return x\n",
      uts: [
        { arg: 2, votes: Array(8).fill("3") },
        { arg: 5, votes: Array(8).fill("4") },
        { arg: 1, votes: Array(8).fill("7") },
      ],
      critic: "correct",
      codeSamples: ["buggy", "canonical", "buggy"],
    },
  };
}
