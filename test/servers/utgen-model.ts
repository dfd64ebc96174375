/**
 * A scripted "model" for the UTGen prompts, served by the loopback OpenAI server (test/servers/openai.ts):
 * it answers by prompt content — corruption prompts with a small textual bug, UTGen prompts with one of the
 * `assert fn(…) ==` examples from the task description as the test input, rationalization prompts with a
 * rationale that names the gold output. Used by the end-to-end LLM test and bench/rebuild.ts.
 */
import type { ScriptRequest, ScriptedReply } from "./openai.ts";

export type PromptKind = "corrupt" | "utgen" | "rationalize" | "other";

export function promptKind(text: string): PromptKind {
  if (text.includes("Assume you are a TA")) return "corrupt";
  if (text.includes("**Breaks** the given code")) return "utgen";
  if (text.includes("The teacher lets you know")) return "rationalize";
  return "other";
}

/** Textual corruptions tried in order; the i-th sample takes the i-th that applies. */
const FIXES: [string, string][] = [
  ["range(1, n + 1)", "range(1, n)"],
  [" + 1", ""],
  ["<=", "<"],
  [" + ", " - "],
  ["==", "!="],
  [" > ", " >= "],
  [" * ", " + "],
  ["!=", "=="],
  [" % ", " // "],
];

/** Answers one chat-completion request (n samples) of the UTGen pipeline; `delayMs` slows every reply. */
export function utgenModel(req: ScriptRequest, delayMs = 0): ScriptedReply {
  const text = req.messages.at(-1)!.content;
  const kind = promptKind(text);
  const choices: string[] = [];
  for (let i = 0; i < req.n; i++) {
    if (kind === "corrupt") {
      const code = /Correct Code Solution:?\s*\n```(?:python)?\n([\s\S]*?)```/.exec(text)?.[1] ?? "";
      const fixes = FIXES.filter(([a]) => code.includes(a));
      const [a, b] = fixes[i % Math.max(1, fixes.length)] ?? ["", ""];
      choices.push(`I changed \`${a}\`.\n\n## Incorrect Code Solution\n\`\`\`python\n${a ? code.replace(a, b) : code}\`\`\`\n`);
    } else if (kind === "utgen") {
      const fn = /Python function `([A-Za-z_]\w*)\(/.exec(text)?.[1] ?? "f";
      const calls = [...text.matchAll(new RegExp(`assert ${fn}\\((.*)\\) ==`, "g"))].map((m) => `${fn}(${m[1]})`);
      const call = calls[i % Math.max(1, calls.length)];
      choices.push(
        call
          ? `## Hypothesis\nThe boundary looks off.\n\nError Pattern: small inputs\n\n## Unit Test\n\n### Input Arguments\nA documented example.\nArguments: \`\`\`${call}\`\`\`\n\n### Output\nNot sure.\nOutput: \`\`\`0\`\`\``
          : "I cannot think of a test.",
      );
    } else if (kind === "rationalize") {
      const out = [...text.matchAll(/^Output: (.*)$/gm)].at(-1)?.[1] ?? "";
      choices.push(`### Reasoning\nFollowing the task step by step on this input, the function returns \`${out}\`.`);
    } else choices.push("?");
  }
  return delayMs ? { choices, delayMs } : { choices };
}
