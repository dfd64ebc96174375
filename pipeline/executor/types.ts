/**
 * Executor contract (implemented in pipeline/executor/index.ts). Every stage that runs generated code
 * goes through this interface; nothing else may execute model- or dataset-provided code.
 *
 * Python values cross the boundary in a typed JSON encoding that keeps Python's distinctions:
 *   None → null · bool → true/false · int → JSON number when |n| ≤ 2^53−1, else {"$int": "<digits>"}
 *   float → {"$float": "<repr>"} (repr, so "1.0", "nan", "inf", "-inf") · str → JSON string
 *   list → JSON array · tuple → {"$tuple": [...]} · set → {"$set": [...]} · frozenset → {"$frozenset": [...]}
 *   dict → {"$dict": [[k, v], ...]} (insertion order) · bytes → {"$bytes": "<base64>"}
 *   numpy array → {"$ndarray": <nested list>, "dtype": "<dtype>"} · anything else → {"$repr": "<repr>", "type": "<type name>"}
 */
export type PyValue =
  | null
  | boolean
  | number
  | string
  | PyValue[]
  | { $int: string }
  | { $float: string }
  | { $tuple: PyValue[] }
  | { $set: PyValue[] }
  | { $frozenset: PyValue[] }
  | { $dict: [PyValue, PyValue][] }
  | { $bytes: string }
  | { $ndarray: PyValue; dtype: string }
  | { $repr: string; type: string };

export type CallStatus = "ok" | "error" | "timeout" | "crash" | "invalid_input";

export interface CallResult {
  status: CallStatus;
  /** Present when status is "ok". */
  value?: PyValue;
  /** Exception class name for "error" (e.g. "ZeroDivisionError"). */
  errorType?: string;
  /** One-line message for error / crash / invalid_input. */
  message?: string;
  /** Wall time of the call in the child, milliseconds. */
  ms: number;
}

/** One call's arguments: f(*args, **kwargs). */
export interface CallArgs {
  args: PyValue[];
  kwargs?: Record<string, PyValue>;
}

export interface RunCallsRequest {
  /** Module source; defines the entry point. Runs after the UTGen prelude imports. */
  program: string;
  entryPoint: string;
  inputs: CallArgs[];
  /** Per-call limit in seconds. */
  timeoutS: number;
  /** Module-level execution limit in seconds (default: timeoutS). */
  loadTimeoutS?: number;
}

export interface ParamInfo {
  name: string;
  annotation?: string;
  default?: string;
  kind: "positional" | "vararg" | "keyword_only" | "varkw";
}

export interface FunctionInfo {
  name: string;
  params: ParamInfo[];
  returns?: string;
  lineno: number;
  /** `name(a: int, b: list[int]) -> int` as the paper's prompts expect. */
  signature: string;
}

export interface ProgramCheck {
  /** "syntax_error" when it does not parse; otherwise the module-level execution status. */
  status: "ok" | "syntax_error" | "error" | "timeout" | "crash";
  errorType?: string;
  message?: string;
  /** Top-level function definitions (from the AST, filled even when execution fails). */
  functions: FunctionInfo[];
  /** Top-level class names. */
  classes: string[];
  ms: number;
  /** Decided in the worker's server without a child: a module level that can only bind names (executor.static_check). */
  static?: true;
  /** With `timing: true`: the check's cost by phase (ProgramTiming; `static` 1 where no child ran). */
  timing?: Record<string, number>;
}

export interface ScriptResult {
  status: "ok" | "error" | "timeout" | "crash";
  /** Plain JSON the script assigned to OUTPUT. */
  output?: unknown;
  errorType?: string;
  message?: string;
  ms: number;
}

/**
 * One program of a many-program request (`Executor.runPrograms`). Each program runs in its own fresh child
 * forked from the worker's zygote (no program sees another's state); the programs of one request are
 * spread over all workers and their results stream back as they finish.
 *  - kind "function" (default): the module is loaded once, then `entryPoint(*args, **kwargs)` is called
 *    once per input; a result's value is the returned value.
 *  - kind "stdio": the module runs once per input as `__main__`, with that text as its stdin; a result's
 *    value is what it wrote to stdout (a str). `SystemExit` with code 0/None is a normal end; any other
 *    exit code or uncaught exception is status "error".
 * The child produces raw results only (values, exception types, stdout): it never holds expected values,
 * and pass/fail is decided outside it (judge.ts).
 */
export type ProgramJob =
  | {
      kind?: "function";
      program: string;
      entryPoint: string;
      inputs: CallArgs[];
      /** Per-call limit in seconds (one number, or one per input). */
      timeoutS: number | number[];
      /** Module-level limit in seconds (default: the largest per-call limit). */
      loadTimeoutS?: number;
    }
  | {
      kind: "stdio";
      program: string;
      /** stdin text per run. */
      inputs: string[];
      timeoutS: number | number[];
      loadTimeoutS?: number;
    };

export interface ProgramResult {
  /** One result per input, in input order. */
  results: CallResult[];
  /** With `timing`: seconds spent per phase (spawn, fork, setup, load, run, encode, transport, exit). */
  timing?: Record<string, number>;
}

export interface RunProgramsOptions {
  /** Called as each (program, input) result arrives (streaming; order across programs is arbitrary). */
  onResult?(job: number, input: number, result: CallResult): void;
  /** Ask for each program's cost breakdown (`timing` in its result; see ProgramTiming in index.ts). */
  timing?: boolean;
  /**
   * Filled in (added to) as the request's parts finish: CPU seconds and peak memory of its children as the
   * kernel accounted them (wait4 in the zygotes), children run, and stray processes found and killed after it.
   * Complete when the call resolves (results are still streamed through onResult as they come). The sandbox
   * accounts per request it is sent: when programs of several callers travel in one request (same-tick calls),
   * each of those callers' usage gets that request's whole totals.
   */
  usage?: RequestUsage;
}

export interface RequestUsage {
  cpu_s: number;
  max_rss_mb: number;
  children: number;
  stray: number;
  /** Of cpu_s, the time in user mode (the rest is the kernel's: forks' page faults, exits). */
  user_s?: number;
  /** Minor page faults of the children (mostly copy-on-write after the fork). */
  minflt?: number;
}

export interface Executor {
  /** Call `entryPoint` of `program` on each input (one child per batch; a hard kill re-forks for the rest). */
  runCalls(req: RunCallsRequest): Promise<CallResult[]>;
  /**
   * Many programs, each with its own inputs and limits, in one request: one fresh child per program,
   * children spread over every worker, results streamed through `onResult` and returned in job order.
   * This is the path for every "many codes × few tests" shape (filter, attack, validate, gold-check,
   * UTDebug, best-of-N, UTRL rewards).
   */
  runPrograms(jobs: ProgramJob[], opts?: RunProgramsOptions): Promise<ProgramResult[]>;
  /** Parse + list top-level defs, then execute the module level only. */
  checkProgram(program: string, opts: { timeoutS: number; timing?: boolean }): Promise<ProgramCheck>;
  /** checkProgram for many programs in one request (one child each, spread over the workers). */
  checkPrograms(programs: string[], opts: { timeoutS: number; timing?: boolean }): Promise<ProgramCheck[]>;
  /**
   * Run a trusted helper script inside the sandbox: it reads the global INPUT (plain JSON) and assigns
   * OUTPUT (plain JSON). Used for AST tools (mutation, probing) and benchmark harnesses (gold-check).
   * `projectCode: true` says the script text is the project's own file (stages/heuristic/*.py): each
   * worker then compiles it once and its children reuse the code object. Never set it for text that holds
   * dataset or model output (a gold-check test header, say): that is compiled in the child only.
   */
  runScript(script: string, input: unknown, opts: { timeoutS: number; projectCode?: boolean }): Promise<ScriptResult>;
  close(): Promise<void>;
}
