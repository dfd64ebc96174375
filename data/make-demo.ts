/**
 * Writes data/demo/tulu-demo.jsonl: a small Tulu-3-format fixture ({id, messages, source}) that
 * the demo config runs offline. About 20 rows are good Python function tasks (small,
 * deterministic gold functions whose outputs change under operator-swap / off-by-one mutations);
 * the rest cover each case the filter must handle (see EDGE_CASES below).
 *
 *   npx tsx data/make-demo.ts            # rewrites the file (deterministic output)
 */
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { writeJsonl } from "../pipeline/util.ts";

type Msg = { role: "system" | "user" | "assistant"; content: string };
export interface DemoRow {
  id: string;
  messages: Msg[];
  source: string;
}

const PERSONA = "demo/personahub_code";
const EVOL = "demo/evol_codealpaca";
const WILD = "demo/wildchat";

const fence = (code: string, lang = "python") => "```" + lang + "\n" + code.trim() + "\n```";

interface Task {
  name: string;
  source: string;
  /** Task description; the prompt template adds "Python", the signature and the examples. */
  ask: string;
  signature: string;
  code: string;
  /** Example calls shown in the prompt: [call, expected repr]. */
  examples: [string, string][];
  /** "assert" examples in a python block, or "io" Input:/Output: lines. */
  style: "assert" | "io";
}

const GOOD: Task[] = [
  {
    name: "sum_of_squares", source: PERSONA, style: "assert",
    ask: "returns the sum of the squares of the integers from 1 to n inclusive (0 when n < 1)",
    signature: "def sum_of_squares(n: int) -> int:",
    code: `def sum_of_squares(n: int) -> int:
    total = 0
    for i in range(1, n + 1):
        total += i * i
    return total`,
    examples: [["sum_of_squares(3)", "14"], ["sum_of_squares(1)", "1"], ["sum_of_squares(0)", "0"]],
  },
  {
    name: "count_vowels", source: PERSONA, style: "assert",
    ask: "counts the vowels (a, e, i, o, u, upper or lower case) in a string",
    signature: "def count_vowels(s: str) -> int:",
    code: `def count_vowels(s: str) -> int:
    count = 0
    for ch in s.lower():
        if ch in "aeiou":
            count += 1
    return count`,
    examples: [['count_vowels("Hello World")', "3"], ['count_vowels("xyz")', "0"]],
  },
  {
    name: "max_subarray_sum", source: EVOL, style: "io",
    ask: "returns the largest sum of a non-empty contiguous sub-list of a list of integers",
    signature: "def max_subarray_sum(nums: list[int]) -> int:",
    code: `def max_subarray_sum(nums: list[int]) -> int:
    best = nums[0]
    current = nums[0]
    for x in nums[1:]:
        current = max(x, current + x)
        best = max(best, current)
    return best`,
    examples: [["max_subarray_sum([-2, 1, -3, 4, -1, 2, 1, -5, 4])", "6"], ["max_subarray_sum([-3, -1, -2])", "-1"]],
  },
  {
    name: "is_palindrome", source: PERSONA, style: "assert",
    ask: "checks whether a string is a palindrome, ignoring case and any character that is not a letter or digit",
    signature: "def is_palindrome(s: str) -> bool:",
    code: `def is_palindrome(s: str) -> bool:
    cleaned = [ch.lower() for ch in s if ch.isalnum()]
    left, right = 0, len(cleaned) - 1
    while left < right:
        if cleaned[left] != cleaned[right]:
            return False
        left += 1
        right -= 1
    return True`,
    examples: [['is_palindrome("A man, a plan, a canal: Panama")', "True"], ['is_palindrome("race a car")', "False"]],
  },
  {
    name: "second_largest", source: EVOL, style: "io",
    ask: "returns the second largest distinct value of a list of integers, or None when there is no such value",
    signature: "def second_largest(nums: list[int]) -> int | None:",
    code: `def second_largest(nums: list[int]) -> int | None:
    first = second = None
    for x in nums:
        if first is None or x > first:
            if first is not None:
                second = first
            first = x
        elif x != first and (second is None or x > second):
            second = x
    return second`,
    examples: [["second_largest([4, 1, 7, 7, 3])", "4"], ["second_largest([5, 5])", "None"]],
  },
  {
    name: "word_frequencies", source: PERSONA, style: "assert",
    ask: "returns a dict mapping each lower-cased word of a text (words are separated by whitespace) to how often it occurs",
    signature: "def word_frequencies(text: str) -> dict[str, int]:",
    code: `def word_frequencies(text: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for word in text.lower().split():
        counts[word] = counts.get(word, 0) + 1
    return counts`,
    examples: [['word_frequencies("the cat and The hat")', "{'the': 2, 'cat': 1, 'and': 1, 'hat': 1}"]],
  },
  {
    name: "average", source: PERSONA, style: "io",
    ask: "returns the mean of a list of floats rounded to 2 decimals, and 0.0 for an empty list",
    signature: "def average(nums: list[float]) -> float:",
    code: `def average(nums: list[float]) -> float:
    if len(nums) == 0:
        return 0.0
    return round(sum(nums) / len(nums), 2)`,
    examples: [["average([1.5, 2.5, 3.0])", "2.33"], ["average([])", "0.0"]],
  },
  {
    name: "celsius_to_fahrenheit", source: PERSONA, style: "assert",
    ask: "converts a temperature from Celsius to Fahrenheit (F = C * 9 / 5 + 32)",
    signature: "def celsius_to_fahrenheit(c: float) -> float:",
    code: `def celsius_to_fahrenheit(c: float) -> float:
    return c * 9 / 5 + 32`,
    examples: [["celsius_to_fahrenheit(100.0)", "212.0"], ["celsius_to_fahrenheit(-40.0)", "-40.0"]],
  },
  {
    name: "gcd", source: EVOL, style: "assert",
    ask: "computes the greatest common divisor of two non-negative integers with Euclid's algorithm",
    signature: "def gcd(a: int, b: int) -> int:",
    code: `def gcd(a: int, b: int) -> int:
    while b != 0:
        a, b = b, a % b
    return a`,
    examples: [["gcd(48, 18)", "6"], ["gcd(7, 0)", "7"]],
  },
  {
    name: "binary_search", source: EVOL, style: "io",
    ask: "returns the index of target in a sorted list of integers, or -1 when it is absent",
    signature: "def binary_search(arr: list[int], target: int) -> int:",
    code: `def binary_search(arr: list[int], target: int) -> int:
    lo, hi = 0, len(arr) - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        if arr[mid] == target:
            return mid
        if arr[mid] < target:
            lo = mid + 1
        else:
            hi = mid - 1
    return -1`,
    examples: [["binary_search([1, 3, 5, 7, 9], 7)", "3"], ["binary_search([1, 3, 5], 4)", "-1"]],
  },
  {
    name: "run_length_encode", source: PERSONA, style: "assert",
    ask: 'run-length encodes a string: each run of a repeated character becomes the character followed by the run length, e.g. "aaab" -> "a3b1"',
    signature: "def run_length_encode(s: str) -> str:",
    code: `def run_length_encode(s: str) -> str:
    if not s:
        return ""
    out = []
    current, count = s[0], 1
    for ch in s[1:]:
        if ch == current:
            count += 1
        else:
            out.append(f"{current}{count}")
            current, count = ch, 1
    out.append(f"{current}{count}")
    return "".join(out)`,
    examples: [['run_length_encode("aaabcc")', "'a3b1c2'"], ['run_length_encode("")', "''"]],
  },
  {
    name: "merge_counts", source: EVOL, style: "assert",
    ask: "merges two dicts of str -> int counts, adding the values of keys present in both",
    signature: "def merge_counts(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:",
    code: `def merge_counts(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    merged = dict(a)
    for key, value in b.items():
        merged[key] = merged.get(key, 0) + value
    return merged`,
    examples: [['merge_counts({"x": 1, "y": 2}, {"y": 3, "z": 4})', "{'x': 1, 'y': 5, 'z': 4}"]],
  },
  {
    name: "factorial", source: PERSONA, style: "io",
    ask: "returns n! for a non-negative integer n (0! is 1)",
    signature: "def factorial(n: int) -> int:",
    code: `def factorial(n: int) -> int:
    result = 1
    for i in range(2, n + 1):
        result *= i
    return result`,
    examples: [["factorial(5)", "120"], ["factorial(0)", "1"]],
  },
  {
    name: "fibonacci", source: EVOL, style: "assert",
    ask: "returns the n-th Fibonacci number, with fibonacci(0) == 0 and fibonacci(1) == 1",
    signature: "def fibonacci(n: int) -> int:",
    code: `def fibonacci(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a`,
    examples: [["fibonacci(10)", "55"], ["fibonacci(1)", "1"]],
  },
  {
    name: "running_max", source: PERSONA, style: "io",
    ask: "returns the running maximum of a list of integers (element i is the max of the first i+1 elements)",
    signature: "def running_max(nums: list[int]) -> list[int]:",
    code: `def running_max(nums: list[int]) -> list[int]:
    out = []
    best = None
    for x in nums:
        if best is None or x > best:
            best = x
        out.append(best)
    return out`,
    examples: [["running_max([3, 1, 4, 1, 5])", "[3, 3, 4, 4, 5]"], ["running_max([])", "[]"]],
  },
  {
    name: "rotate_right", source: EVOL, style: "assert",
    ask: "rotates a list to the right by k positions (k may exceed the length)",
    signature: "def rotate_right(nums: list[int], k: int) -> list[int]:",
    code: `def rotate_right(nums: list[int], k: int) -> list[int]:
    if not nums:
        return []
    k = k % len(nums)
    return nums[len(nums) - k:] + nums[:len(nums) - k]`,
    examples: [["rotate_right([1, 2, 3, 4, 5], 2)", "[4, 5, 1, 2, 3]"], ["rotate_right([1, 2], 5)", "[2, 1]"]],
  },
  {
    name: "digit_sum", source: PERSONA, style: "assert",
    ask: "returns the sum of the decimal digits of an integer (the sign is ignored)",
    signature: "def digit_sum(n: int) -> int:",
    code: `def digit_sum(n: int) -> int:
    n = abs(n)
    total = 0
    while n > 0:
        total += n % 10
        n //= 10
    return total`,
    examples: [["digit_sum(1234)", "10"], ["digit_sum(-507)", "12"]],
  },
  {
    name: "is_prime", source: EVOL, style: "io",
    ask: "tells whether an integer is a prime number",
    signature: "def is_prime(n: int) -> bool:",
    code: `def is_prime(n: int) -> bool:
    if n < 2:
        return False
    i = 2
    while i * i <= n:
        if n % i == 0:
            return False
        i += 1
    return True`,
    examples: [["is_prime(29)", "True"], ["is_prime(1)", "False"], ["is_prime(49)", "False"]],
  },
  {
    name: "grade_letter", source: PERSONA, style: "assert",
    ask: "maps a score from 0 to 100 to a letter grade: A for 90 and above, B for 80 and above, C for 70 and above, D for 60 and above, F otherwise",
    signature: "def grade_letter(score: float) -> str:",
    code: `def grade_letter(score: float) -> str:
    if score >= 90:
        return "A"
    if score >= 80:
        return "B"
    if score >= 70:
        return "C"
    if score >= 60:
        return "D"
    return "F"`,
    examples: [["grade_letter(90)", "'A'"], ["grade_letter(79.5)", "'C'"], ["grade_letter(12)", "'F'"]],
  },
  {
    name: "chunk_list", source: EVOL, style: "io",
    ask: "splits a list into consecutive chunks of the given size; the last chunk may be shorter",
    signature: "def chunk_list(items: list[int], size: int) -> list[list[int]]:",
    code: `def chunk_list(items: list[int], size: int) -> list[list[int]]:
    return [items[i:i + size] for i in range(0, len(items), size)]`,
    examples: [["chunk_list([1, 2, 3, 4, 5], 2)", "[[1, 2], [3, 4], [5]]"], ["chunk_list([], 3)", "[]"]],
  },
];

function prompt(t: Task, variant: number): string {
  const ex =
    t.style === "assert"
      ? "For example:\n" + fence(t.examples.map(([c, e]) => `assert ${c} == ${e}`).join("\n"))
      : t.examples
          .map(([c, e]) => `Input: ${c.slice(c.indexOf("(") + 1, -1)}\nOutput: ${e}`)
          .join("\n\n");
  const openers = [
    `Write a Python function \`${t.signature.slice(0, -1)}\` that ${t.ask}.`,
    `I need a python function that ${t.ask}. Use this signature:\n${fence(t.signature + "\n    ...")}`,
    `Implement the following in Python. ${t.signature} — it ${t.ask}.`,
  ];
  return `${openers[variant % openers.length]}\n\n${ex}`;
}

function answer(t: Task): string {
  return `Here is an implementation:\n\n${fence(t.code)}\n\nIt runs in a single pass over the input and handles the edge cases shown above.`;
}

const rows: DemoRow[] = [];
const id = (source: string, n: number) => `${source.replace("/", "-")}-${String(n).padStart(4, "0")}`;

GOOD.forEach((t, i) => {
  rows.push({
    id: id(t.source, i + 1),
    source: t.source,
    messages: [
      { role: "user", content: prompt(t, i) },
      { role: "assistant", content: answer(t) },
    ],
  });
});

// --- Edge cases ------------------------------------------------------------------------------
export const EDGE_CASES: Record<string, string> = {};
let edgeN = 100;
function edge(kind: string, source: string, messages: Msg[]) {
  const rid = id(source, ++edgeN);
  EDGE_CASES[rid] = kind;
  rows.push({ id: rid, source, messages });
}

// Good, with a system turn.
edge("good: system turn", EVOL, [
  { role: "system", content: "You are a helpful coding assistant." },
  {
    role: "user",
    content:
      "Write a python function `def clamp(x: int, lo: int, hi: int) -> int` that limits x to the range [lo, hi].\n\n" +
      fence("assert clamp(5, 0, 3) == 3\nassert clamp(-2, 0, 3) == 0\nassert clamp(2, 0, 3) == 2"),
  },
  {
    role: "assistant",
    content: fence(`def clamp(x: int, lo: int, hi: int) -> int:
    if x < lo:
        return lo
    if x > hi:
        return hi
    return x`),
  },
]);

// Good, multi-turn: the last assistant turn holds the final code.
edge("good: multi-turn", PERSONA, [
  {
    role: "user",
    content:
      "Write a python function def count_positive(nums: list[int]) -> int that counts the numbers greater than zero.\n\nInput: [1, -2, 3, 0]\nOutput: 2",
  },
  {
    role: "assistant",
    content: fence("def count_positive(nums: list[int]) -> int:\n    return len(nums)"),
  },
  { role: "user", content: "That counts every element. Please fix the python def so only positive numbers count." },
  {
    role: "assistant",
    content:
      "You're right, here is the fixed version:\n\n" +
      fence(`def count_positive(nums: list[int]) -> int:
    count = 0
    for x in nums:
        if x > 0:
            count += 1
    return count`),
  },
]);

// Several code blocks: one defines the function, one shows usage.
edge("good: several code blocks", EVOL, [
  {
    role: "user",
    content:
      "In Python, write def reverse_words(sentence: str) -> str that reverses the order of the words in a sentence.\n\nInput: \"hello big world\"\nOutput: \"world big hello\"",
  },
  {
    role: "assistant",
    content:
      "First the function:\n\n" +
      fence(`def reverse_words(sentence: str) -> str:
    return " ".join(reversed(sentence.split()))`) +
      "\n\nThen you can use it like this:\n\n" +
      fence(`print(reverse_words("hello big world"))  # world big hello`),
  },
]);

// No code in the answer.
edge("no code", WILD, [
  { role: "user", content: "In python, what is the difference between def and lambda? Just explain, no code please." },
  {
    role: "assistant",
    content:
      "A def statement creates a named function that can hold several statements, a docstring and annotations; a lambda is an anonymous function limited to a single expression.",
  },
]);

// Empty assistant turn (the real mixture has 716 of these).
edge("empty answer", WILD, [
  { role: "user", content: "Write a python function def triple(x: int) -> int that returns 3 * x." },
  { role: "assistant", content: "" },
]);

// Code in another language only.
edge("non-python code", EVOL, [
  {
    role: "user",
    content:
      "I know how to write def add(a, b) in python; how do I write the same function in JavaScript?\n\nInput: 2, 3\nOutput: 5",
  },
  { role: "assistant", content: "In JavaScript:\n\n" + fence("function add(a, b) {\n  return a + b;\n}", "javascript") },
]);

// Syntax error.
edge("syntax error", PERSONA, [
  { role: "user", content: "Write a python function def double(x: int) -> int that doubles x.\n\n" + fence("assert double(4) == 8") },
  { role: "assistant", content: fence("def double(x: int) -> int\n    return x * 2") },
]);

// Raises at import.
edge("raises at import", EVOL, [
  { role: "user", content: "Write a python function def halve(x: float) -> float that halves x.\n\nInput: 3.0\nOutput: 1.5" },
  {
    role: "assistant",
    content: fence(`import definitely_not_a_real_module_xyz

def halve(x: float) -> float:
    return x / 2`),
  },
]);

// Blocks on input() at import.
edge("input() at import", WILD, [
  { role: "user", content: "Write a python program with def square(n: int) -> int that squares a number read from the user." },
  {
    role: "assistant",
    content: fence(`def square(n: int) -> int:
    return n * n

n = int(input("Enter a number: "))
print(square(n))`),
  },
]);

// Loops forever at import.
edge("infinite loop at import", WILD, [
  { role: "user", content: "Write a python def tick(count: int) -> int that returns count + 1, and a main loop that keeps ticking." },
  {
    role: "assistant",
    content: fence(`def tick(count: int) -> int:
    return count + 1

count = 0
while True:
    count = tick(count)`),
  },
]);

// A class but no top-level function.
edge("class, no function", PERSONA, [
  {
    role: "user",
    content: "Write a python class Stack with push and pop methods (use def for each method).\n\n" +
      fence("s = Stack()\ns.push(1)\nassert s.pop() == 1"),
  },
  {
    role: "assistant",
    content: fence(`class Stack:
    def __init__(self):
        self.items = []

    def push(self, item):
        self.items.append(item)

    def pop(self):
        return self.items.pop()`),
  },
]);

// Too-long prompt (well over 2,048 tokens for both tokenizer families).
{
  const lines: string[] = [];
  for (let i = 0; i < 400; i++) lines.push(`sensor_${i % 37}, reading=${(i * 7919) % 1000}.${i % 10}, status=${["ok", "warn", "fail"][i % 3]}`);
  edge("prompt too long", WILD, [
    {
      role: "user",
      content:
        "Here is my sensor log:\n" + lines.join("\n") +
        "\n\nWrite a python function def count_failures(log: str) -> int that counts the lines whose status is fail.",
    },
    {
      role: "assistant",
      content: fence(`def count_failures(log: str) -> int:
    return sum(1 for line in log.splitlines() if line.strip().endswith("status=fail"))`),
    },
  ]);
}

// Invalid Unicode: a lone surrogate (JSON.stringify writes it as the escape \\ud83d).
edge("lone surrogate", WILD, [
  { role: "user", content: "Write a python function def smile(name: str) -> str that greets with a smiley \ud83d for name." },
  { role: "assistant", content: fence('def smile(name: str) -> str:\n    return "Hi " + name + " :)"') },
]);

// Exact duplicate prompt of the first good row (different id and source).
edge("duplicate prompt", WILD, [
  { role: "user", content: rows[0].messages[0].content },
  { role: "assistant", content: answer(GOOD[0]) },
]);

// No "python" in the prompt.
edge("no 'python' in prompt", EVOL, [
  { role: "user", content: "Write a function def negate(x: int) -> int that returns -x.\n\nInput: 4\nOutput: -4" },
  { role: "assistant", content: fence("def negate(x: int) -> int:\n    return -x") },
]);

// No "def " in the prompt.
edge("no 'def ' in prompt", PERSONA, [
  { role: "user", content: "Write a Python function that reverses a string.\n\nInput: \"abc\"\nOutput: \"cba\"" },
  { role: "assistant", content: fence("def reverse_string(s: str) -> str:\n    return s[::-1]") },
]);

// Prose, nothing about code.
edge("prose", WILD, [
  { role: "user", content: "Write a haiku about autumn leaves." },
  { role: "assistant", content: "Crimson leaves drifting\nwhisper to the cooling earth\nsummer's last goodbye" },
]);

export const DEMO_ROWS = rows;
export const DEMO_TASKS = GOOD;

const here = path.dirname(fileURLToPath(import.meta.url));
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = path.join(here, "demo", "tulu-demo.jsonl");
  await writeJsonl(out, rows);
  console.log(`wrote ${rows.length} rows to ${path.relative(process.cwd(), out)}`);
}
