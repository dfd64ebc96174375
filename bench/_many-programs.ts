/**
 * The many-programs shape of bench/executor.ts and bench/_executor-cpu.ts (not a bench itself: `npm run bench`
 * skips `_` files): the i-th of many distinct programs — the same function, a different text — with its 3 tests.
 * server.py's floor loop (`_bench_floor`) runs the same programs.
 */
export const manyJob = (i: number, numpy = false) => ({
  // numpy: the text names numpy (in a comment), so the full zygote runs it (see lean_zygote)
  program: `# program ${i}\ndef add(a, b):\n    return a + b + ${i % 7}\n${numpy ? "# np\n" : ""}`,
  entryPoint: "add",
  inputs: [{ args: [i, 1] }, { args: [i, 2] }, { args: [i, 3] }],
  timeoutS: 1,
});

/** Whether the i-th program's results are the right ones. */
export const manyOk = (i: number, rs: { value?: unknown }[]) => rs.every((r, k) => r.value === i + k + 1 + (i % 7));
