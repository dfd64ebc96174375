/**
 * Checks decided in the worker's server without a child (executor.static_check): a module level that can only
 * bind names is answered "ok" from the program's parse. Every program here runs both ways — decided statically
 * where the analysis allows, and always in a child (static_check: false) — and must give the same answer; the
 * corpus is mostly near misses, programs that look inert but fail (or never end) when their module level runs,
 * each of which must go to a child.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createExecutor, type SandboxExecutor } from "../pipeline/executor/index.ts";
import type { ProgramCheck } from "../pipeline/executor/types.ts";

let on: SandboxExecutor;
let off: SandboxExecutor;
beforeAll(async () => {
  [on, off] = await Promise.all([createExecutor({ workers: 1 }), createExecutor({ workers: 1, static_check: false })]);
});
afterAll(async () => {
  await Promise.all([on?.close(), off?.close()]);
});

// [program, decided without a child?, why]
const corpus: [string, boolean, string][] = [
  // inert: decided in the server
  ["def f(n: int) -> int:\n    return n + 1\n", true, "a plain function"],
  ["def f(nums: list[int], d: dict[str, list[int]] | None = None) -> tuple[int, ...]:\n    return ()\n", true, "builtin generics and |"],
  ["from typing import List, Optional, Tuple\nimport math\nMOD = 10**9 + 7\n\ndef f(a: List[int], b: Optional[int] = None, c: Tuple[int, ...] = (), d: Tuple[()] = ()) -> Dict[str, int]:\n    return {}\n", true, "typing imports, a constant expression, the prelude's Dict"],
  ["class Solution:\n    \"\"\"doc\"\"\"\n    limit = 10\n\n    def g(self, x: 'Node', y: List[int] = [1, -2]) -> int:\n        return 1\n\n    @staticmethod\n    def h(): pass\n\n    @property\n    def p(self): return 1\n\n    def __eq__(self, o): return True\n", true, "a class of plain methods"],
  ["class E(Exception):\n    pass\n\nclass F(E):\n    code: int = 3\n", true, "an exception class and its subclass"],
  ["import os.path\nimport collections.abc as cabc\nfrom collections import Counter, deque\n\ndef f(x: Counter[str], q: deque[int], m: cabc.Mapping = None):\n    pass\n", true, "imports of loaded modules"],
  ["def f(x):\n    return x\n\nif __name__ == '__main__':\n    undefined_name()\n", true, "a main block is never taken"],
  ["from functools import lru_cache, cache\n\n@lru_cache(maxsize=None)\ndef f(n):\n    return n\n\n@cache\ndef g(n):\n    return n\n\n@lru_cache\ndef h(n):\n    return n\n", true, "memoised functions"],
  ["key = lambda x, y=[1, {2: 'a'}]: x\nSEEN = {1, (2, 3), -4}\nx: int = 5\nasync def f():\n    pass\n", true, "a lambda, a set, an annotated assignment, async def"],
  ["import typing\n\ndef f(x: typing.List[int], y: math.floor = 0, z: 'class' = 1) -> None:\n    pass\n", true, "attribute annotations, any object as an annotation, a string annotation"],
  ["\"\"\"A module docstring.\"\"\"\n...\npass\n", true, "nothing but constants"],
  // near misses: each fails (or never ends) when its module level runs, so a child decides
  ["def f(x: Lisst[int]):\n    pass\n", false, "an undefined name in an annotation"],
  ["from typing import ForwardRef\n\nclass A(ForwardRef):\n    pass\n", false, "a typing class that refuses subclasses"],
  ["def f(x: List[int, str]):\n    pass\n", false, "too many parameters for List"],
  ["def f(x: Dict[int]):\n    pass\n", false, "too few parameters for Dict"],
  ["def f(x: Optional[int, str]):\n    pass\n", false, "Optional of two"],
  ["def f(x: Union[()]):\n    pass\n", false, "Union of nothing"],
  ["def f(x: int | 'str'):\n    pass\n", false, "a string in a |"],
  ["def f(x: None | None):\n    pass\n", false, "None | None"],
  ["def f(x: List['a b']):\n    pass\n", false, "a forward reference that does not parse"],
  ["def f(x: List['class']):\n    pass\n", false, "a keyword as a forward reference"],
  ["class A(bool):\n    pass\n", false, "a class that cannot be subclassed"],
  ["class A(object, object):\n    pass\n", false, "a duplicate base"],
  ["X = 1 / 0\n", false, "a division by zero"],
  ["X = 10 // 0\n", false, "a floor division by zero"],
  ["X = 10 ** 400 * 1.0\n", false, "an integer too large for a float"],
  ["X = 1 << -1\n", false, "a negative shift"],
  ["X = -'a'\n", false, "a unary minus on a string"],
  ["X = ~1.5\n", false, "~ on a float"],
  ["X = {[]: 1}\n", false, "an unhashable key"],
  ["X = {1, (2, [3])}\n", false, "an unhashable set element"],
  ["def list():\n    pass\n\ndef f(x: list[int]):\n    pass\n", false, "a rebound generic"],
  ["from typing import Nonexistent\n", false, "a name the module lacks"],
  ["import nonexistent_module_xyz\n", false, "a module that does not exist"],
  ["from . import x\n", false, "a relative import"],
  ["class A:\n    def __slots__(self):\n        pass\n", false, "a special name that takes part in making the class"],
  ["class A:\n    __qualname__ = 1\n", false, "a class's __qualname__ that is not a string"],
  ["def f(x=undefined):\n    pass\n", false, "an undefined default"],
  ["class A:\n    def g(self, x: A):\n        pass\n", false, "a class's own name inside its body"],
  ["from functools import lru_cache\n\n@lru_cache(maxsize='x')\ndef f():\n    pass\n", false, "a cache size that is not a number"],
  ["if __name__ == '__main__':\n    pass\nelse:\n    raise ValueError('taken')\n", false, "the else of a main block"],
  ["x: Undefined = 1\n", false, "a module-level annotation is evaluated"],
  ["print('hello')\n\ndef f():\n    pass\n", false, "a call at module level"],
  ["X = 9 ** 9 ** 9\n", false, "arithmetic that never ends in time"],
  // found by an adversarial audit (2026-12-04), each once decided without a child
  ["x: Hashable[()]\n", false, "a typing generic of no parameters takes no subscript"],
  ["from functools import lru_cache\n\n@lru_cache(1, maxsize=2)\ndef f():\n    pass\n", false, "a cache size given twice"],
  ["from functools import lru_cache\n\n@lru_cache(99999999999999999999999)\ndef f():\n    pass\n", false, "a cache size past an index"],
  ["a = []\nx: Optional[list[a]]\n", false, "an unhashable alias in Optional"],
  ["a = (1, [2])\nx: Union[list[a], int]\n", false, "an unhashable tuple in a Union"],
  ["import sys\nx: Union[list[sys.path], int]\n", false, "a namespace object (a list) in a Union"],
  ["a = []\nx: List[int] | list[a]\n", false, "an unhashable alias in a |"],
  // side effects and time: a module loaded, a union whose members are all compared
  ["x: List['\u210c']\n", false, "a non-ASCII forward reference (its compile imports unicodedata)"],
  ["from __future__ import annotations\n\ndef f(x: Undefined[1, 2]) -> Whatever:\n    pass\n", false, "__future__ is imported from disk where it is not loaded"],
  [`x: ${Array.from({ length: 300 }, (_, i) => `list[${i}]`).join(" | ")}\n`, false, "a union of more members than the analysis takes"],
  // conservative: these run fine, but the analysis does not know that, and a child decides
  ["X = 2 ** 100000\n", false, "a large power"],
  ["class A:\n    __x = 1\n\n    def g(self, y: __x):\n        pass\n", false, "a mangled name"],
  ["class A:\n    x = len\n", false, "a namespace object in a class body"],
  ["def f(x: List[math.floor]):\n    pass\n", false, "a function as a generic's parameter"],
  ["@staticmethod\ndef f():\n    pass\n", false, "a decorator outside a class"],
  ["def __getattr__(name):\n    pass\n", false, "a special name at module level"],
  [`X = ${"(".repeat(150)}1${")".repeat(150)}\n`, true, "parentheses, not nesting"],
  [`X = ${"[".repeat(150)}1${"]".repeat(150)}\n`, true, "nested lists"],
  [`X = ${"-".repeat(300)}1\n`, false, "more arithmetic than the analysis takes"],
  ["import numpy as np\n\ndef f(x: np.ndarray):\n    pass\n", false, "a program for the full zygote"],
];

// Annotations and defaults, each in `def f(x: A = D)`: a grid of forms that do and do not evaluate.
const annotations = ["int", "'x'", "None", "list[int]", "List[int]", "List", "Tuple[int, ...]", "Tuple[..., int]", "Optional[int]", "Optional", "Dict[str, List[int]]",
  "int | None", "List[int] | None", "Set[int, int]", "Counter[str]", "deque", "Any", "Callable[[int], int]", "Literal[1]", "Type[int]", "Iterable[Node]", "math.pi", "typing.Optional[str]", "type[int]", "frozenset[int] | list[str]"];
const defaults = ["None", "0", "-1", "1e308 * 10", "2 ** 10", "[]", "()", "{}", "{'a': [1]}", "len", "math.inf", "lambda: 0", "1 + 'a'", "2 ** -1", "(1, [2])", "True", "...", "b'x'", "10 % 3", "1j"];
const grid = annotations.flatMap((a) => defaults.map((d) => `def f(x: ${a} = ${d}):\n    pass\n`));

const plain = (c: ProgramCheck) => {
  const { static: _s, timing: _t, ms: _m, ...rest } = c;
  return rest;
};

describe("checks decided in the server (executor.static_check)", () => {
  it("answers every program as a child does, and without a child only where the module level can only bind names", async () => {
    const programs = corpus.map(([p]) => p);
    // a short limit only where the module level never ends in time; a generous one elsewhere
    const limit = (p: string) => (p.includes("9 ** 9 ** 9") ? 0.5 : 10);
    const run = (e: SandboxExecutor) => Promise.all(programs.map((p) => e.checkProgram(p, { timeoutS: limit(p), timing: true })));
    const [a, b] = await Promise.all([run(on), run(off)]);
    corpus.forEach(([, decided, why], i) => {
      expect(plain(a[i]), why).toEqual(plain(b[i]));
      expect(a[i].static === true, why).toBe(decided);
      expect(a[i].timing!.static, why).toBe(decided ? 1 : 0);
      expect(a[i].timing!.children, why).toBe(decided ? 0 : 1);
      expect(b[i].static, why).toBeUndefined();
    });
    // not vacuous: the near misses do fail, in more than one way
    const statuses = new Set(b.map((c) => c.status));
    expect(statuses).toEqual(new Set(["ok", "error", "timeout"]));
    expect(new Set(b.filter((c) => c.status === "error").map((c) => c.errorType))).toEqual(
      new Set(["NameError", "TypeError", "ZeroDivisionError", "OverflowError", "ValueError", "ImportError", "ModuleNotFoundError", "SyntaxError"]),
    );
    expect(a[0].functions.map((f) => f.signature)).toEqual(["f(n: int) -> int"]);
    expect(a[3].classes).toEqual(["Solution"]);
  });

  it("agrees with a child over a grid of annotations and defaults", async () => {
    const run = (e: SandboxExecutor) => e.checkPrograms(grid, { timeoutS: 10 });
    const [a, b] = await Promise.all([run(on), run(off)]);
    grid.forEach((p, i) => expect(plain(a[i]), p).toEqual(plain(b[i])));
    // both kinds of answer occur, and a good share of the grid is decided without a child
    const decided = a.filter((c) => c.static).length;
    expect(new Set(b.map((c) => c.status))).toEqual(new Set(["ok", "error"]));
    expect(decided).toBeGreaterThan(grid.length / 3);
    expect(decided).toBeLessThan(b.filter((c) => c.status === "ok").length);
  });
});
