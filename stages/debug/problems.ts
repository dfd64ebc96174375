/**
 * Debugging benchmarks for `utdebug` and `rerank`: UTGenDebug-format rows (MBPP+Fix, MBPP+Fix (Hard),
 * HE+Fix; `task_id, prompt, signature, entry_point, canonical_solution, code, test` [, `test_list`]) from a
 * local file, a pinned Hub file or `--dataset FILE`, with each problem's private gold tests — the `inputs` and
 * `results` its `test` text defines, extracted in a sandbox run of that text (never a host `exec`):
 *  - MBPP+ rows: the part before the final `for i, (inp, exp) …` loop (gold-check's extractGoldTests, as
 *    mbpp_utdebug.py's extract_test);
 *  - HumanEval+ rows: the two lines after the last `def check(` line, unindented (he_utdebug.py's extract_test).
 * A problem whose tests cannot be extracted is left out and counted (`gold_tests_unextractable`), as the
 * reference filters its problems to those with extracted tests. Also renders the debugger's first user turn.
 */
import * as path from "node:path";
import { UserError } from "../../pipeline/errors.ts";
import type { CallArgs, Executor, PyValue } from "../../pipeline/executor/types.ts";
import { exists, hashValue, readJson, readJsonl, writeJson } from "../../pipeline/util.ts";
import { extractGoldTests, type GoldTests } from "../gold-check.ts";
import { loadTemplate, type PromptTemplate } from "../prompts/index.ts";
import { resolveSetFile, toProblem, type SetSpec } from "../validation/datasets.ts";

export interface DebugProblem {
  taskId: string;
  /** The row's prompt as is ({description} of the UT prompts, {prompt} of the code-generation prompt). */
  prompt: string;
  signature: string;
  entryPoint: string;
  /** canonical_solution: runs only for pass@1 calibration and trace diagnostics, never seen by a model. */
  gold: string;
  /** The code to debug (`code`). */
  buggy: string;
  test: string;
  testList: string[];
  /** The reference's set mode: the test text contains " set(". */
  useSet: boolean;
}

export interface DebugSet {
  name: string;
  source: string;
  problems: DebugProblem[];
  /** Content hash of the problems (after `limit`). */
  hash: string;
}

/** Rows of a .jsonl(.gz) file, or of a .parquet file (the Hub's UTGenDebug files; int64 columns as numbers). */
async function* rowsOf(file: string): AsyncGenerator<any> {
  if (!file.toLowerCase().endsWith(".parquet")) {
    yield* readJsonl(file);
    return;
  }
  const { asyncBufferFromFile, parquetReadObjects } = await import("hyparquet");
  const { compressors } = await import("hyparquet-compressors");
  let rows: Record<string, unknown>[];
  try {
    rows = await parquetReadObjects({ file: await asyncBufferFromFile(file), compressors });
  } catch (e) {
    throw new UserError(`${file}: not a readable parquet file (${(e as Error).message.split("\n")[0]}); check the file or re-download it`);
  }
  const plain = (v: unknown): unknown => (typeof v === "bigint" ? (Number.isSafeInteger(Number(v)) ? Number(v) : v.toString()) : Array.isArray(v) ? v.map(plain) : v);
  for (const r of rows) yield Object.fromEntries(Object.entries(r).map(([k, v]) => [k, plain(v)]));
}

/** Read a UTGenDebug-format file, JSONL or parquet (one-line errors name the file, row and field). */
export async function readDebugProblems(file: string, limit?: number): Promise<DebugProblem[]> {
  if (!(await exists(file))) throw new UserError(`debugging set file not found: ${file} (expected UTGenDebug-format .jsonl or .parquet rows)`);
  const out: DebugProblem[] = [];
  const seen = new Set<string>();
  let line = 0;
  try {
    for await (const row of rowsOf(file)) {
      line++;
      const where = `${file}:${line}`;
      const p = toProblem(row, where);
      if (typeof row.test !== "string" || !row.test.trim())
        throw new UserError(`${where}: field "test" is missing or empty; utdebug and rerank need each row's private tests (UTGenDebug format)`);
      if (seen.has(p.taskId)) throw new UserError(`${where}: duplicate task_id ${p.taskId}; task ids must be unique`);
      seen.add(p.taskId);
      out.push({
        taskId: p.taskId,
        prompt: p.prompt,
        signature: p.signature,
        entryPoint: p.entryPoint,
        gold: p.gold,
        buggy: p.buggy,
        test: row.test,
        testList: Array.isArray(row.test_list) ? row.test_list.filter((t: unknown): t is string => typeof t === "string") : [],
        useSet: row.test.includes(" set("),
      });
      if (limit !== undefined && out.length >= limit) break;
    }
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`${file}: ${(e as Error).message.split("\n")[0]}`);
  }
  if (!out.length) throw new UserError(`debugging set ${file} has no rows`);
  return out;
}

export async function loadDebugSet(spec: SetSpec, opts: { runDir: string; limit?: number }): Promise<DebugSet> {
  if (!("hub" in spec) && !("path" in spec))
    throw new UserError("the held-out split has no private tests: utdebug/rerank sets need a path or a hub file (UTGenDebug rows with `test`)");
  const { file, source } = await resolveSetFile(spec, { runDir: opts.runDir });
  const problems = await readDebugProblems(file, opts.limit);
  return { name: spec.name, source, problems, hash: hashValue(problems) };
}

/** `--dataset FILE`: one set named after the file. */
export async function loadDatasetFlag(file: string, limit?: number): Promise<DebugSet> {
  const abs = path.resolve(file);
  const problems = await readDebugProblems(abs, limit);
  const name = path.basename(abs).replace(/(-\d+-of-\d+)?\.(jsonl(\.gz)?|parquet)$/i, "");
  return { name, source: abs, problems, hash: hashValue(problems) };
}

// ------------------------------------------------------------------------------------ gold tests ----

const MBPP_LOOP = "for i, (inp, exp) in enumerate(zip(inputs, results)):";

/** Which extraction the reference uses for this row. */
export function testFormat(test: string): "mbpp" | "humaneval" | undefined {
  if (test.includes(MBPP_LOOP) && /\nfor i, \(inp, exp\) in enumerate/.test(test)) return "mbpp";
  if (/def check\(/.test(test)) return "humaneval";
  return undefined;
}

/** The HumanEval+ rows' data lines: the two lines after the last `def check(` line, unindented. */
export function heDataLines(test: string): string | undefined {
  const lines = test.split("\n");
  let start = -1;
  for (let i = 0; i < lines.length; i++) if (lines[i].includes("def check(")) start = i + 1;
  if (start < 0 || start + 1 >= lines.length) return undefined;
  return lines[start].replace(/^ +/, "") + "\n" + lines[start + 1].replace(/^ +/, "");
}

const HE_TAIL = `
try:
    OUTPUT = {"inputs": [encode_value(x) for x in inputs], "results": [encode_value(x) for x in results]}
except NameError as e:
    OUTPUT = {"error": "NameError: " + str(e)}
`;

/** A gold input's positional arguments (`fn(*inp)`). */
function argList(inp: PyValue): PyValue[] {
  if (Array.isArray(inp)) return inp;
  if (inp && typeof inp === "object" && "$tuple" in inp) return inp.$tuple;
  return [inp];
}

async function extractHeTests(ex: Executor, p: DebugProblem, cacheDir?: string): Promise<GoldTests> {
  const seg = heDataLines(p.test);
  if (!seg) throw new UserError(`problem ${p.taskId}: no "def check(" with two data lines in its test text`);
  const key = hashValue({ v: 1, he: seg });
  const file = cacheDir ? path.join(cacheDir, "gold-tests", key.slice(0, 2), key + ".json") : undefined;
  let gold = file ? await readJson<{ inputs: CallArgs[]; results: PyValue[] }>(file).catch(() => undefined) : undefined;
  if (!gold || !Array.isArray(gold.inputs) || !Array.isArray(gold.results)) {
    const res = await ex.runScript(`${seg}\n${HE_TAIL}`, null, { timeoutS: 10 });
    const out = res.output as { inputs?: PyValue[]; results?: PyValue[]; error?: string } | undefined;
    if (res.status !== "ok" || !out || out.error || !Array.isArray(out.inputs) || !Array.isArray(out.results)) {
      const why = out?.error ?? `${res.errorType ?? res.status}: ${res.message ?? ""}`;
      throw new UserError(`problem ${p.taskId}: its test text does not define usable inputs/results (${why.slice(0, 200)})`);
    }
    if (out.inputs.length !== out.results.length) throw new UserError(`problem ${p.taskId}: its test text defines ${out.inputs.length} inputs and ${out.results.length} results`);
    gold = { inputs: out.inputs.map((x) => ({ args: argList(x) })), results: out.results };
    if (file) await writeJson(file, gold);
  }
  return { ...gold, useSet: p.useSet, atol: 0 };
}

/** A problem's private tests, or why they cannot be extracted (the problem is then left out). */
export async function goldTestsOf(ex: Executor, p: DebugProblem, cacheDir?: string): Promise<{ tests: GoldTests } | { error: string }> {
  const fmt = testFormat(p.test);
  try {
    if (fmt === "mbpp") {
      const t = await extractGoldTests(ex, { task_id: p.taskId, test: p.test, canonical_solution: p.gold, code: p.buggy }, { cacheDir });
      if (t.inputs.length === 0) return { error: "the test text defines no inputs" };
      return { tests: t };
    }
    if (fmt === "humaneval") {
      const t = await extractHeTests(ex, p, cacheDir);
      if (t.inputs.length === 0) return { error: "the test text defines no inputs" };
      return { tests: t };
    }
    return { error: "the test text has neither the MBPP+ loop nor a HumanEval+ check()" };
  } catch (e) {
    if (e instanceof UserError) return { error: e.message };
    throw e;
  }
}

// ----------------------------------------------------------------------------------- the prompts ----

/**
 * Newlines that end the reference's prompt strings and that the template loader strips (it trims trailing
 * newlines of every template file): appended after rendering so the turns are byte-identical to the reference.
 */
export const TRAILING_NEWLINES: Record<string, string> = {
  code_generation: "\n",
  he_code_generation: "\n",
  ut_feedback: "\n\n",
  no_ut_feedback: "\n",
  unit_output: "\n",
};

export type DebugTemplates = Record<"code_generation" | "he_code_generation" | "ut_feedback" | "no_ut_feedback" | "unit_output", PromptTemplate>;

export async function loadDebugTemplates(): Promise<DebugTemplates> {
  const names = ["code_generation", "he_code_generation", "ut_feedback", "no_ut_feedback", "unit_output"] as const;
  const out = {} as DebugTemplates;
  for (const n of names) out[n] = await loadTemplate(n);
  return out;
}

/** Render one of the debugging templates with its reference trailing newlines. */
export function renderDebug(t: PromptTemplate, vars: Record<string, string>): string {
  return t.render(vars) + (TRAILING_NEWLINES[t.name] ?? "");
}

/** The debugger's first user turn: the MBPP prompt with the first test_list example, or HumanEval's. */
export function codeGenerationTurn(tpl: DebugTemplates, p: DebugProblem, mode: "auto" | "mbpp" | "humaneval"): string {
  const mbpp = mode === "mbpp" || (mode === "auto" && p.testList.length > 0);
  if (!mbpp) return renderDebug(tpl.he_code_generation, { signature: p.signature, prompt: p.prompt });
  const example = p.testList[0];
  return renderDebug(tpl.code_generation, { signature: p.signature, prompt: example !== undefined ? `${p.prompt}\n>>> ${example}` : p.prompt });
}

/** The reference's starting assistant turn: the code to debug in a bare fence. */
export function startingReply(code: string): string {
  return "```\n" + code + "\n```";
}
