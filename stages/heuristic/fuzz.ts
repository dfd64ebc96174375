/**
 * Type-aware input fuzzing for the heuristic attack sampler.
 *  1. Seeds: example calls found in the task description (`f(…) == …`, `f(…)` in code, `Input: …` lines).
 *  2. Types per parameter: the annotation (`list[int]`, `Optional[str]`, `Dict[str, int]` …), else the type
 *     of the seeds' values, else probed on the gold code (random type assignments that gold accepts).
 *  3. Candidates: the seeds, mutations of the seeds (±1, element drops/duplicates, char edits …), random
 *     values of the inferred types, and edge values (empty, zero, negative, single element).
 * Everything is drawn from a PRNG keyed by the record id, so the same record always gets the same inputs.
 * Values are in the executor's typed encoding (PyValue): JS numbers are ints, floats are {$float}.
 */
import type { CallArgs, Executor, ParamInfo, PyValue } from "../../pipeline/executor/types.ts";
import { stableStringify } from "../../pipeline/util.ts";
import { Rng } from "../common.ts";

export type TypeSpec =
  | { k: "int" | "float" | "bool" | "str" | "none" | "any" }
  | { k: "list" | "set"; of: TypeSpec }
  | { k: "tuple"; items?: TypeSpec[]; of?: TypeSpec }
  | { k: "dict"; key: TypeSpec; val: TypeSpec }
  | { k: "union"; opts: TypeSpec[] };

const ANY: TypeSpec = { k: "any" };

// ---------------------------------------------------------------------------------------------------
// Annotations

/** Parse a Python annotation string into a TypeSpec ("any" for what it does not know). */
export function parseAnnotation(ann: string | undefined): TypeSpec {
  if (!ann) return ANY;
  const toks = ann.replace(/typing\./g, "").match(/[A-Za-z_][A-Za-z_0-9.]*|\[|\]|,|\||\.\.\.|'[^']*'|"[^"]*"/g) ?? [];
  let i = 0;
  const peek = () => toks[i];
  const parseUnion = (): TypeSpec => {
    const opts = [parseOne()];
    while (peek() === "|") {
      i++;
      opts.push(parseOne());
    }
    return opts.length === 1 ? opts[0] : simplifyUnion(opts);
  };
  const parseArgs = (): TypeSpec[] => {
    const args: TypeSpec[] = [];
    if (peek() !== "[") return args;
    i++;
    while (i < toks.length && peek() !== "]") {
      if (peek() === ",") {
        i++;
        continue;
      }
      if (peek() === "...") {
        i++;
        args.push({ k: "none" }); // marker for Tuple[int, ...]
        continue;
      }
      if (peek() === "[") {
        // Callable[[a, b], c]: skip the inner list
        let depth = 0;
        do {
          if (peek() === "[") depth++;
          if (peek() === "]") depth--;
          i++;
        } while (i < toks.length && depth > 0);
        args.push(ANY);
        continue;
      }
      args.push(parseUnion());
    }
    i++;
    return args;
  };
  const parseOne = (): TypeSpec => {
    let name = toks[i++] ?? "";
    if (/^['"]/.test(name)) name = name.slice(1, -1);
    const args = parseArgs();
    const base = name.split(".").pop()!.toLowerCase();
    switch (base) {
      case "int":
        return { k: "int" };
      case "float":
      case "complex":
        return { k: "float" };
      case "bool":
        return { k: "bool" };
      case "str":
        return { k: "str" };
      case "none":
      case "nonetype":
        return { k: "none" };
      case "list":
      case "sequence":
      case "iterable":
      case "collection":
      case "mutablesequence":
      case "deque":
        return { k: "list", of: args[0] ?? { k: "int" } };
      case "set":
      case "frozenset":
      case "abstractset":
        return { k: "set", of: args[0] ?? { k: "int" } };
      case "tuple":
        if (args.length === 2 && args[1].k === "none") return { k: "tuple", of: args[0] };
        return args.length ? { k: "tuple", items: args } : { k: "tuple", of: { k: "int" } };
      case "dict":
      case "mapping":
      case "defaultdict":
      case "ordereddict":
      case "counter":
        return { k: "dict", key: args[0] ?? { k: "str" }, val: args[1] ?? { k: "int" } };
      case "optional":
        return args[0] ?? ANY;
      case "union":
        return simplifyUnion(args);
      default:
        return ANY;
    }
  };
  try {
    return parseUnion();
  } catch {
    return ANY;
  }
}

function simplifyUnion(opts: TypeSpec[]): TypeSpec {
  const real = opts.filter((o) => o.k !== "none");
  if (real.length === 0) return { k: "none" };
  if (real.length === 1) return real[0];
  return { k: "union", opts: real };
}

/** The TypeSpec of a concrete value (for seeds without annotations). */
export function typeOfValue(v: PyValue): TypeSpec {
  if (v === null) return { k: "none" };
  if (typeof v === "boolean") return { k: "bool" };
  if (typeof v === "number") return { k: "int" };
  if (typeof v === "string") return { k: "str" };
  if (Array.isArray(v)) return { k: "list", of: v.length ? typeOfValue(v[0]) : { k: "int" } };
  if ("$int" in v) return { k: "int" };
  if ("$float" in v) return { k: "float" };
  if ("$tuple" in v) return { k: "tuple", items: v.$tuple.map(typeOfValue) };
  if ("$set" in v) return { k: "set", of: v.$set.length ? typeOfValue(v.$set[0]) : { k: "int" } };
  if ("$frozenset" in v) return { k: "set", of: v.$frozenset.length ? typeOfValue(v.$frozenset[0]) : { k: "int" } };
  if ("$dict" in v)
    return v.$dict.length ? { k: "dict", key: typeOfValue(v.$dict[0][0]), val: typeOfValue(v.$dict[0][1]) } : { k: "dict", key: { k: "str" }, val: { k: "int" } };
  return ANY;
}

// ---------------------------------------------------------------------------------------------------
// Seeds from the task description

/** Text of the balanced `(...)` starting at `open` (index of "("), or undefined. */
function balanced(text: string, open: number): string | undefined {
  let depth = 0;
  let quote: string | undefined;
  for (let i = open; i < text.length && i < open + 4000; i++) {
    const c = text[i];
    if (quote) {
      if (c === "\\") i++;
      else if (c === quote) quote = undefined;
      continue;
    }
    if (c === '"' || c === "'") quote = c;
    else if (c === "(" || c === "[" || c === "{") depth++;
    else if (c === ")" || c === "]" || c === "}") {
      depth--;
      if (depth === 0) return text.slice(open, i + 1);
    }
  }
  return undefined;
}

/**
 * Example calls of `entryPoint` in the description, as call texts `f(...)` (not the `def` line), plus
 * `Input: a = 1, b = [2]` / `Input: [1, 2]` lines rewritten as calls. Deduplicated, in order.
 */
export function exampleCallTexts(description: string, entryPoint: string): string[] {
  const out: string[] = [];
  const esc = entryPoint.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const re = new RegExp(`(^|[^A-Za-z0-9_.])(${esc})\\s*\\(`, "g");
  for (const m of description.matchAll(re)) {
    const before = description.slice(Math.max(0, m.index! - 6), m.index! + m[1].length);
    if (/def\s*$/.test(before)) continue;
    const open = m.index! + m[0].length - 1;
    const args = balanced(description, open);
    if (args && args.length > 2) out.push(`${entryPoint}${args}`);
  }
  for (const m of description.matchAll(/^\s*(?:\*\*)?(?:Example\s*\d*\s*)?Input(?:\*\*)?\s*:\s*(.+)$/gim)) {
    let body = m[1].trim().replace(/`/g, "");
    if (!body) continue;
    // keyword style "a = 1, b = [2]": keep the values in order
    body = body.replace(/(^|,\s*)[A-Za-z_][A-Za-z_0-9]*\s*=\s*(?!=)/g, "$1");
    out.push(`${entryPoint}(${body})`);
  }
  return [...new Set(out)];
}

// ---------------------------------------------------------------------------------------------------
// Value generation

const LETTERS = "abcdefghijklmnopqrstuvwxyz";
const CHAR_POOL = LETTERS + LETTERS.toUpperCase() + "0123456789  ,.!?-_";

export function pyFloat(x: number): PyValue {
  const r = Math.round(x * 100) / 100;
  return { $float: Number.isInteger(r) ? r.toFixed(1) : String(r) };
}

function floatOf(v: PyValue): number | undefined {
  if (typeof v === "number") return v;
  if (v && typeof v === "object" && "$float" in v) {
    const x = Number(v.$float);
    return Number.isFinite(x) ? x : undefined;
  }
  return undefined;
}

export class ValueGen {
  /** Characters seen in the seeds' strings (kept first so generated strings look like the task's). */
  private chars: string;
  private ints: number[];
  constructor(
    private rng: Rng,
    seeds: PyValue[] = [],
  ) {
    let cs = "";
    const ints: number[] = [];
    const walk = (v: PyValue) => {
      if (typeof v === "string") cs += v;
      else if (typeof v === "number" && Number.isInteger(v)) ints.push(v);
      else if (Array.isArray(v)) v.forEach(walk);
      else if (v && typeof v === "object") {
        if ("$tuple" in v) v.$tuple.forEach(walk);
        else if ("$set" in v) v.$set.forEach(walk);
        else if ("$dict" in v) v.$dict.forEach(([a, b]) => (walk(a), walk(b)));
      }
    };
    seeds.forEach(walk);
    this.chars = [...new Set(cs)].join("");
    this.ints = ints;
  }

  int(): number {
    const r = this.rng.next();
    if (r < 0.25) return this.rng.pick([0, 1, -1, 2, 3, 10, 100]);
    if (r < 0.4 && this.ints.length) return this.rng.pick(this.ints) + this.rng.int(-2, 2);
    if (r < 0.85) return this.rng.int(-10, 30);
    if (r < 0.96) return this.rng.int(-1000, 1000);
    // large magnitudes (overflow in fixed-width arithmetic, e.g. numpy), bounded so gold stays fast
    return this.rng.int(1000, 1_000_000) * (this.rng.chance(0.8) ? 1 : -1);
  }
  char(): string {
    if (this.chars && this.rng.chance(0.6)) return this.rng.pick([...this.chars]);
    return this.rng.chance(0.7) ? this.rng.pick([...LETTERS]) : this.rng.pick([...CHAR_POOL]);
  }
  str(): string {
    const n = this.rng.chance(0.15) ? this.rng.int(0, 1) : this.rng.int(2, 10);
    let s = "";
    for (let i = 0; i < n; i++) s += this.char();
    if (this.rng.chance(0.2) && s.length > 2) s = s.slice(0, s.length >> 1) + [...s.slice(0, s.length >> 1)].reverse().join(""); // palindromes
    return s;
  }
  value(t: TypeSpec, depth = 0): PyValue {
    const rng = this.rng;
    switch (t.k) {
      case "int":
        return this.int();
      case "float":
        return pyFloat(rng.chance(0.3) ? this.int() : rng.int(-1000, 1000) / rng.pick([2, 4, 10, 100]));
      case "bool":
        return rng.chance(0.5);
      case "str":
        return this.str();
      case "none":
        return null;
      case "list":
      case "set": {
        const n = depth > 1 ? rng.int(0, 3) : rng.chance(0.1) ? rng.int(0, 1) : rng.int(2, 8);
        const xs: PyValue[] = [];
        const seen = new Set<string>();
        for (let i = 0; i < n; i++) {
          const v = this.value(t.of, depth + 1);
          if (t.k === "set") {
            const key = stableStringify(v);
            if (seen.has(key)) continue;
            seen.add(key);
          }
          xs.push(v);
        }
        if (t.k === "list" && xs.length > 2 && rng.chance(0.2)) xs.push(xs[rng.int(0, xs.length - 1)]); // duplicates
        return t.k === "set" ? { $set: xs } : xs;
      }
      case "tuple":
        if (t.items) return { $tuple: t.items.map((it) => this.value(it, depth + 1)) };
        return { $tuple: (this.value({ k: "list", of: t.of ?? { k: "int" } }, depth) as PyValue[]) ?? [] };
      case "dict": {
        const n = rng.int(0, depth > 1 ? 2 : 5);
        const pairs: [PyValue, PyValue][] = [];
        const seen = new Set<string>();
        for (let i = 0; i < n; i++) {
          const k = this.value(t.key, depth + 1);
          const key = stableStringify(k);
          if (seen.has(key)) continue;
          seen.add(key);
          pairs.push([k, this.value(t.val, depth + 1)]);
        }
        return { $dict: pairs };
      }
      case "union":
        return this.value(rng.pick(t.opts), depth);
      case "any":
      default:
        return this.value(rng.pick(PROBE_TYPES.slice(0, 4)), depth);
    }
  }

  /** Edge values of a type: empty, zero, negative, single element. */
  edge(t: TypeSpec): PyValue {
    const rng = this.rng;
    switch (t.k) {
      case "int":
        return rng.pick([0, 1, -1, 2]);
      case "float":
        return pyFloat(rng.pick([0, 1, -1, 0.5]));
      case "str":
        return rng.pick(["", this.char(), this.char() + this.char()]);
      case "list":
        return rng.chance(0.5) ? [] : [this.value(t.of, 1)];
      case "set":
        return { $set: rng.chance(0.5) ? [] : [this.value(t.of, 1)] };
      case "dict":
        return { $dict: [] };
      case "tuple":
        return t.items ? { $tuple: t.items.map((it) => this.edge(it)) } : { $tuple: [] };
      default:
        return this.value(t);
    }
  }

  /** A small change of a concrete value, keeping its type. */
  mutate(v: PyValue, depth = 0): PyValue {
    const rng = this.rng;
    if (v === null || depth > 3) return v;
    if (typeof v === "boolean") return !v;
    if (typeof v === "number") return rng.pick([v + 1, v - 1, -v, 0, v * 2, v + rng.int(-5, 5), this.int()]);
    if (typeof v === "string") {
      const s = [...v];
      const i = s.length ? rng.int(0, s.length - 1) : 0;
      switch (rng.int(0, 6)) {
        case 0:
          s.splice(i, 1);
          break;
        case 1:
          s.splice(i, 0, this.char());
          break;
        case 2:
          if (s.length) s[i] = s[i] === s[i].toUpperCase() ? s[i].toLowerCase() : s[i].toUpperCase();
          break;
        case 3:
          s.reverse();
          break;
        case 4:
          return rng.chance(0.5) ? "" : v + v;
        case 5:
          if (s.length) s[i] = this.char();
          break;
        default:
          s.splice(i, 0, " ");
      }
      return s.join("");
    }
    if (Array.isArray(v)) return this.mutateList(v, depth);
    if ("$float" in v) {
      const x = floatOf(v) ?? 0;
      return pyFloat(rng.pick([x + 0.5, x - 0.5, -x, 0, x * 2, x + 1]));
    }
    if ("$tuple" in v) return { $tuple: this.mutateList(v.$tuple, depth, true) };
    if ("$set" in v) return { $set: dedupe(this.mutateList(v.$set, depth)) };
    if ("$dict" in v) {
      const pairs = v.$dict.map(([a, b]) => [a, b] as [PyValue, PyValue]);
      if (pairs.length && rng.chance(0.4)) pairs.splice(rng.int(0, pairs.length - 1), 1);
      else if (pairs.length) {
        const i = rng.int(0, pairs.length - 1);
        pairs[i] = [pairs[i][0], this.mutate(pairs[i][1], depth + 1)];
      }
      return { $dict: pairs };
    }
    return v;
  }

  private mutateList(xs: PyValue[], depth: number, fixedLength = false): PyValue[] {
    const rng = this.rng;
    if (!xs.length) return xs; // element type unknown: nothing type-safe to add
    const out = [...xs];
    const i = rng.int(0, out.length - 1);
    const op = fixedLength ? 0 : rng.int(0, 7);
    switch (op) {
      case 0:
        if (out.length) out[i] = this.mutate(out[i], depth + 1);
        break;
      case 1:
        if (out.length) out.splice(i, 1);
        break;
      case 2:
        // a copy next to itself; strings sometimes reversed (pairs / palindromes matter to many tasks)
        out.splice(i, 0, typeof out[i] === "string" && rng.chance(0.5) ? [...(out[i] as string)].reverse().join("") : out[i]);
        break;
      case 3:
        out.push(this.mutate(out[out.length - 1], depth + 1));
        break;
      case 4:
        out.reverse();
        break;
      case 5:
        return rng.chance(0.5) ? [] : out.slice(0, 1);
      case 6:
        return rng.shuffle(out);
      default:
        if (out.every((x) => typeof x === "number")) (out as number[]).sort((a, b) => a - b);
        else out.unshift(this.mutate(out[0], depth + 1));
    }
    return out;
  }
}

function dedupe(xs: PyValue[]): PyValue[] {
  const seen = new Set<string>();
  return xs.filter((x) => {
    const k = stableStringify(x);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** Types tried when probing a parameter with no annotation and no example. */
export const PROBE_TYPES: TypeSpec[] = [
  { k: "int" },
  { k: "str" },
  { k: "list", of: { k: "int" } },
  { k: "float" },
  { k: "list", of: { k: "str" } },
  { k: "bool" },
  { k: "dict", key: { k: "str" }, val: { k: "int" } },
  { k: "list", of: { k: "list", of: { k: "int" } } },
  { k: "tuple", of: { k: "int" } },
];

// ---------------------------------------------------------------------------------------------------
// The fuzzer

export interface FuzzPlan {
  /** Parameters filled: the required positional ones, then the required keyword-only ones. */
  params: ParamInfo[];
  /** Names of the keyword-only parameters (the tail of `params`, passed as kwargs). */
  kwNames?: string[];
  /** Per-parameter type (one row per accepted type assignment). */
  typings: TypeSpec[][];
  seeds: CallArgs[];
  /** How the types were found. */
  typedBy: "annotation" | "example" | "probe" | "mixed" | "none";
}

export function callKey(c: CallArgs): string {
  return stableStringify(c);
}

/** One value per planned parameter → the call (keyword-only parameters as kwargs). */
function toCall(values: PyValue[], kwNames: string[] = []): CallArgs {
  if (!kwNames.length) return { args: values };
  const nPos = values.length - kwNames.length;
  return { args: values.slice(0, nPos), kwargs: Object.fromEntries(kwNames.map((n, i) => [n, values[nPos + i]])) };
}

/** A call's values in plan order (positional, then the keyword-only ones). */
function toValues(c: CallArgs, kwNames: string[] = []): PyValue[] {
  return [...c.args, ...kwNames.map((n) => c.kwargs?.[n] ?? null)];
}

/**
 * Work out how to call the entry point: required parameters, their types (annotations, then example
 * values, then probing gold with `probe(assignments)` which returns which assignments gold accepted).
 */
export async function planFuzz(opts: {
  params: ParamInfo[];
  seeds: CallArgs[];
  rng: Rng;
  probe: (calls: CallArgs[]) => Promise<boolean[]>;
  probeRounds?: number;
}): Promise<FuzzPlan> {
  const required = opts.params.filter((p) => p.kind === "positional" && p.default === undefined && p.name !== "self" && p.name !== "cls");
  const arity = opts.seeds.length ? opts.seeds[0].args.length : required.length;
  const positional = required.length === arity || !opts.seeds.length ? required : opts.params.filter((p) => p.kind === "positional").slice(0, arity);
  const kwonly = opts.params.filter((p) => p.kind === "keyword_only" && p.default === undefined);
  const kwNames = kwonly.map((p) => p.name);
  const params = [...positional, ...kwonly];
  const seedVecs = opts.seeds.map((s) => [...s.args.slice(0, positional.length), ...kwNames.map((n) => s.kwargs?.[n])]);
  const fromAnn = params.map((p) => parseAnnotation(p.annotation));
  const fromSeed = params.map((_, i) => {
    const vals = seedVecs.map((v) => v[i]).filter((v) => v !== undefined);
    return vals.length ? typeOfValue(vals[0] as PyValue) : ANY;
  });
  let typing = params.map((_, i) => (fromAnn[i].k !== "any" ? fromAnn[i] : fromSeed[i]));
  let typedBy: FuzzPlan["typedBy"] = fromAnn.every((t) => t.k !== "any") ? "annotation" : fromSeed.every((t) => t.k !== "any") ? "example" : "mixed";
  if (!params.length) return { params, kwNames, typings: [[]], seeds: opts.seeds, typedBy: "none" };
  const unknown = typing.map((t, i) => (t.k === "any" ? i : -1)).filter((i) => i >= 0);
  if (!unknown.length) return { params, kwNames, typings: [typing], seeds: opts.seeds, typedBy };

  // Probe: random assignments of the unknown parameters, two values each; keep those gold accepts.
  const gen = new ValueGen(opts.rng);
  const rounds = opts.probeRounds ?? 24;
  const assignments: TypeSpec[][] = [];
  const calls: CallArgs[] = [];
  const owners: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const a = typing.map((t, i) => (unknown.includes(i) ? (r < PROBE_TYPES.length && unknown.length === 1 ? PROBE_TYPES[r] : opts.rng.pick(PROBE_TYPES)) : t));
    assignments.push(a);
    for (let v = 0; v < 2; v++) {
      calls.push(toCall(a.map((t) => gen.value(t)), kwNames));
      owners.push(r);
    }
  }
  const ok = await opts.probe(calls);
  const good = new Set<number>();
  ok.forEach((pass, j) => pass && good.add(owners[j]));
  const seenTyping = new Set<string>();
  const typings: TypeSpec[][] = [];
  for (const r of [...good].sort((x, y) => x - y)) {
    const key = stableStringify(assignments[r]);
    if (seenTyping.has(key)) continue;
    seenTyping.add(key);
    typings.push(assignments[r]);
  }
  typedBy = typedBy === "mixed" && unknown.length < params.length ? "mixed" : "probe";
  return { params, kwNames, typings: typings.length ? typings : [typing], seeds: opts.seeds, typedBy };
}

/** `count` distinct candidate inputs: seeds first, then seed mutations, random and edge values. */
export function fuzzInputs(plan: FuzzPlan, rng: Rng, count: number): CallArgs[] {
  const kw = plan.kwNames ?? [];
  const seedVals = plan.seeds.flatMap((s) => toValues(s, kw));
  const gen = new ValueGen(rng, seedVals);
  const out: CallArgs[] = [];
  const seen = new Set<string>();
  const push = (c: CallArgs) => {
    const k = callKey(c);
    if (seen.has(k) || out.length >= count) return;
    seen.add(k);
    out.push(c);
  };
  for (const s of plan.seeds) push(s);
  for (let tries = 0; out.length < count && tries < count * 8; tries++) {
    const r = rng.next();
    if (plan.seeds.length && r < 0.45) {
      const base = rng.pick(plan.seeds);
      const values = toValues(base, kw);
      const nchg = values.length > 1 && rng.chance(0.3) ? 2 : 1;
      for (let j = 0; j < nchg && values.length; j++) {
        const i = rng.int(0, values.length - 1);
        values[i] = gen.mutate(values[i]);
      }
      push(toCall(values, kw));
    } else {
      const typing = rng.pick(plan.typings);
      const edge = r > 0.85;
      push(toCall(typing.map((t) => (edge && rng.chance(0.6) ? gen.edge(t) : gen.value(t))), kw));
    }
  }
  return out;
}

/** Parameters of the entry point from the sandbox's view of the gold program. */
export async function entryParams(executor: Executor, code: string, entryPoint: string, timeoutS: number): Promise<ParamInfo[] | undefined> {
  const chk = await executor.checkProgram(code, { timeoutS });
  const fn = chk.functions.find((f) => f.name === entryPoint);
  return fn?.params;
}
