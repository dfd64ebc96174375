/**
 * Output comparison on typed values: `outputsMatch(actual, expected, {atol, useSet, mode})`.
 *
 * mode "utgen" (default) is the UTGen reference's `eval_exact_match(out, exp, atol, use_set)` (archiki/UTGenDebug
 * utils.py) together with what its caller does with the result, quirks included:
 *   - when both values are str and out.lower() contains "error", the reference raises (its second test reads
 *     `exp.lower` without parentheses) → never a match;
 *   - if atol == 0 and exp is float / a list or tuple of floats (vacuously: []) / a float array → atol = 1e-6;
 *   - use_set: `out = set(out)` then `exp = set(exp)`, and on any failure (unhashable items, a non-iterable,
 *     a 0-d array) the values are kept — sequentially, so out may already be a set when set(exp) fails;
 *   - if out != exp and atol != 0 → np.allclose(out, exp, rtol=1e-7, atol) (raises on sets, dicts, str, None,
 *     shapes that do not broadcast); else out == exp;
 *   - numpy arrays compare elementwise; the truth value of a result with more than one element raises, an
 *     empty one is False (numpy 1.26, the reference's pin); a final array result counts when `.all()` is true;
 *   - any exception → no match (the caller scores it as not passing).
 * test/reference-match.test.ts proves this against the verdicts the reference function itself returned
 * (../shared/data/reference_match_cases.jsonl). mode "strict" keeps Python's type distinctions and fixes the
 * quirks (its own rules, below).
 *
 * | actual vs expected              | utgen       | strict    | why (utgen)                                  |
 * |---------------------------------|-------------|-----------|----------------------------------------------|
 * | 3 vs 3.0                        | match       | no match  | Python `3 == 3.0`                            |
 * | True vs 1                       | match       | no match  | Python `True == 1`                           |
 * | {a:1, b:2} vs {b:2, a:1}        | match       | match     | dict order ignored                           |
 * | (1, 2) vs [1, 2]                | no match    | no match  | tuple != list, ints → no allclose            |
 * | [1.0, 2.0] vs (1.0, 2.0)        | match       | no match  | float exp → allclose ignores the container   |
 * | nan vs nan                      | no match    | match     | nan != nan, allclose(equal_nan=False)        |
 * | [1] vs []                       | match       | no match  | is_floats([]) → atol; allclose broadcasts    |
 * | [1.0, 2.0] vs [1.0, 2.0, 3.0]   | no match    | no match  | allclose raises on shapes → scored as fail   |
 * | "Error: x" vs "Error: x"        | no match    | match     | both str, "error" in out.lower() → raises    |
 * | 1.0000001 vs 1.0                | match       | match     | atol 1e-6 for float expectations             |
 * | 1 vs 1.0000001                  | match       | no match  | allclose on int vs float                     |
 * | {1, 2} vs {2, 1}                | match       | match     | set equality                                 |
 * | [1, 2, 2] vs [2, 1] (useSet)    | match       | match     | compared as set(out) == set(exp)             |
 * | [[1, 2]] vs [[1, 2]] (useSet)   | match       | match     | set() fails on lists → plain ==              |
 * | [1, 2] vs 3 (useSet)            | no match    | no match  | out becomes {1, 2}, set(3) fails             |
 * | np.array([1,2]) vs [1, 2]       | no match    | no match  | `out != exp` is an array → truth value raises|
 * | np.array([5]) vs [5]            | match       | no match  | one element: its truth value                 |
 *
 * Values of type `$repr` (objects without a literal form) are equal iff type and repr are equal; a dict/list
 * subclass (defaultdict, Counter, OrderedDict…) arrives as `$repr` and so never equals a plain dict/list
 * (docs/fidelity.md).
 */
import { hashKey } from "./literals.ts";
import type { PyValue } from "./types.ts";

export interface MatchOptions {
  /** Absolute tolerance (UTGen default 0, which becomes 1e-6 when the expectation is float(s)). */
  atol?: number;
  /** Compare as sets (UTGen: when the problem's test text contains " set("). */
  useSet?: boolean;
  mode?: "utgen" | "strict";
}

class PyRaise extends Error {}

type Kind = "none" | "bool" | "int" | "float" | "str" | "bytes" | "list" | "tuple" | "set" | "frozenset" | "dict" | "ndarray" | "repr";

function kind(v: PyValue): Kind {
  if (v === null) return "none";
  if (typeof v === "boolean") return "bool";
  if (typeof v === "number") return Number.isInteger(v) ? "int" : "float";
  if (typeof v === "string") return "str";
  if (Array.isArray(v)) return "list";
  if ("$int" in v) return "int";
  if ("$float" in v) return "float";
  if ("$tuple" in v) return "tuple";
  if ("$set" in v) return "set";
  if ("$frozenset" in v) return "frozenset";
  if ("$dict" in v) return "dict";
  if ("$bytes" in v) return "bytes";
  if ("$ndarray" in v) return "ndarray";
  return "repr";
}

/** Exact numeric value: BigInt for ints/bools, number for floats. */
function num(v: PyValue): bigint | number {
  if (typeof v === "boolean") return v ? 1n : 0n;
  if (typeof v === "number") return Number.isInteger(v) ? BigInt(v) : v;
  if (v && typeof v === "object" && "$int" in v) return BigInt(v.$int);
  if (v && typeof v === "object" && "$float" in v) return parseFloatRepr(v.$float);
  throw new PyRaise("not a number");
}

function parseFloatRepr(s: string): number {
  if (s === "nan" || s === "-nan") return NaN;
  if (s === "inf") return Infinity;
  if (s === "-inf") return -Infinity;
  return Number(s);
}

function numEq(a: bigint | number, b: bigint | number): boolean {
  if (typeof a === "bigint" && typeof b === "bigint") return a === b;
  if (typeof a === "number" && typeof b === "number") return a === b;
  const [i, f] = typeof a === "bigint" ? [a, b as number] : [b as bigint, a as number];
  return Number.isInteger(f) && BigInt(f) === i; // exact, like Python's int/float comparison
}

function elems(v: PyValue): PyValue[] {
  if (Array.isArray(v)) return v;
  const o = v as any;
  return o.$tuple ?? o.$set ?? o.$frozenset ?? [];
}

const NUMERIC = new Set<Kind>(["bool", "int", "float"]);

/** Python `==` on typed values (strict=false) or the type-exact variant used by strict mode. */
function pyEq(a: PyValue, b: PyValue, strict: boolean, tol?: { atol: number; rtol: number }): boolean {
  const ka = kind(a);
  const kb = kind(b);
  if (NUMERIC.has(ka) && NUMERIC.has(kb)) {
    if (strict && ka !== kb) return false;
    const x = num(a);
    const y = num(b);
    if (strict) {
      if (ka === "float") {
        const fx = x as number;
        const fy = y as number;
        if (Number.isNaN(fx) || Number.isNaN(fy)) return Number.isNaN(fx) && Number.isNaN(fy);
        if (fx === fy) return true;
        if (!Number.isFinite(fx) || !Number.isFinite(fy)) return false;
        return !!tol && Math.abs(fx - fy) <= tol.atol + tol.rtol * Math.abs(fy);
      }
    }
    return numEq(x, y);
  }
  if (ka === "ndarray" || kb === "ndarray") {
    // Python `a == b` with a numpy array on either side is numpy's elementwise comparison; a container
    // comparing its items then takes the truth value of that array (raises unless it has one element).
    if (!strict) return truth(ndCompare(a, b, "eq"));
    if (ka !== kb) return false;
    const A = a as { $ndarray: PyValue; dtype: string };
    const B = b as { $ndarray: PyValue; dtype: string };
    return pyEq(A.$ndarray, B.$ndarray, strict, tol);
  }
  const setLike = (k: Kind) => k === "set" || k === "frozenset";
  if (setLike(ka) && setLike(kb)) {
    if (strict && ka !== kb) return false;
    return setEq(elems(a), elems(b), strict, tol);
  }
  if (ka !== kb) return false;
  switch (ka) {
    case "none":
      return true;
    case "str":
      return a === b;
    case "bytes":
      return (a as any).$bytes === (b as any).$bytes;
    case "list":
    case "tuple": {
      const x = elems(a);
      const y = elems(b);
      return x.length === y.length && x.every((v, i) => pyEq(v, y[i], strict, tol));
    }
    case "dict": {
      const x = (a as { $dict: [PyValue, PyValue][] }).$dict;
      const y = (b as { $dict: [PyValue, PyValue][] }).$dict;
      if (x.length !== y.length) return false;
      return x.every(([k, v]) => {
        const hit = y.find(([k2]) => keyEq(k, k2, strict));
        return !!hit && pyEq(v, hit[1], strict, tol);
      });
    }
    case "repr":
      return (a as any).type === (b as any).type && (a as any).$repr === (b as any).$repr;
    default:
      return false;
  }
}

function keyEq(a: PyValue, b: PyValue, strict: boolean): boolean {
  if (strict) return kind(a) === kind(b) && pyEq(a, b, true);
  const ka = hashKey(a);
  return ka !== undefined && ka === hashKey(b);
}

function setEq(x: PyValue[], y: PyValue[], strict: boolean, tol?: { atol: number; rtol: number }): boolean {
  const ux = dedupe(x, strict);
  const uy = dedupe(y, strict);
  if (ux.length !== uy.length) return false;
  return ux.every((v) => uy.some((w) => (strict ? pyEq(v, w, true, tol) : keyEq(v, w, false))));
}

function dedupe(x: PyValue[], strict: boolean): PyValue[] {
  const out: PyValue[] = [];
  for (const v of x) if (!out.some((w) => keyEq(v, w, strict))) out.push(v);
  return out;
}

/**
 * Python `set(v)`; raises like Python for non-iterables (None, numbers, 0-d arrays) and unhashable members
 * (lists, dicts, sets, the rows of a 2-d array). A `$repr` value (an object without a literal form: a
 * generator, a deque, a dict subclass …) is treated as not convertible — its items are not known here.
 */
function toSet(v: PyValue): PyValue {
  const k = kind(v);
  let items: PyValue[];
  if (k === "str") items = Array.from(v as string);
  else if (k === "bytes") items = [...Buffer.from((v as any).$bytes, "base64")];
  else if (k === "dict") items = (v as any).$dict.map(([key]: [PyValue]) => key);
  else if (k === "list" || k === "tuple" || k === "set" || k === "frozenset") items = elems(v);
  else if (k === "ndarray") {
    const inner = (v as any).$ndarray;
    if (!Array.isArray(inner)) throw new PyRaise("iteration over a 0-d array");
    items = inner.map((x: PyValue) => (Array.isArray(x) ? { $ndarray: x, dtype: (v as any).dtype } : x));
  } else throw new PyRaise(`'${k}' object is not iterable`);
  for (const it of items) if (hashKey(it) === undefined) throw new PyRaise("unhashable type");
  return { $set: items };
}

/** UTGen's is_floats: float, or list/tuple whose items are all floats (vacuously true when empty). */
function isFloats(v: PyValue): boolean {
  const k = kind(v);
  if (k === "float") return true;
  if (k === "list" || k === "tuple") return elems(v).every((x) => kind(x) === "float");
  if (k === "ndarray") return /^float(64|32)$/.test((v as any).dtype);
  return false;
}

// ---- numpy comparisons (numpy 1.26, the reference's pinned version): `a == b` / `a != b` with an array on
// either side is elementwise over the broadcast shape; shapes that do not broadcast (or ragged nesting) give
// a plain False / True instead. The truth value of the result is its element when it has one, False when it is
// empty (numpy 1.26 warns and returns False), and raises ValueError otherwise. Elements compare as Python
// scalars (`==` on ints/floats/bools/str/None); numpy's dtype coercion between numbers and strings is not modelled.
type Cmp = { scalar: boolean } | { shape: number[]; values: boolean[] };

function ndShape(v: PyValue): { shape: number[]; data: PyValue[] } {
  if (kind(v) === "ndarray") return ndShape((v as any).$ndarray);
  const k = kind(v);
  if (k !== "list" && k !== "tuple") return { shape: [], data: [v] };
  const parts = elems(v).map(ndShape);
  if (!parts.length) return { shape: [0], data: [] };
  const s0 = JSON.stringify(parts[0].shape);
  if (parts.some((p) => JSON.stringify(p.shape) !== s0)) throw new PyRaise("inhomogeneous shape");
  return { shape: [parts.length, ...parts[0].shape], data: parts.flatMap((p) => p.data) };
}

/** Broadcast two shapes (numpy rules); undefined when they do not broadcast. Also the flat index maps. */
function broadcast(sa: number[], sb: number[]): { shape: number[]; ia: number[]; ib: number[] } | undefined {
  const nd = Math.max(sa.length, sb.length);
  const pa = [...Array(nd - sa.length).fill(1), ...sa];
  const pb = [...Array(nd - sb.length).fill(1), ...sb];
  const shape: number[] = [];
  for (let i = 0; i < nd; i++) {
    if (pa[i] === pb[i] || pb[i] === 1) shape.push(pa[i]);
    else if (pa[i] === 1) shape.push(pb[i]);
    else return undefined;
  }
  const strides = (s: number[]) => {
    const st = new Array(nd).fill(0);
    let acc = 1;
    for (let i = nd - 1; i >= 0; i--) {
      st[i] = s[i] === 1 ? 0 : acc;
      acc *= s[i];
    }
    return st;
  };
  const sta = strides(pa);
  const stb = strides(pb);
  const total = shape.reduce((p, d) => p * d, 1);
  const ia: number[] = [];
  const ib: number[] = [];
  for (let flat = 0; flat < total; flat++) {
    let rem = flat;
    let x = 0;
    let y = 0;
    for (let d = nd - 1; d >= 0; d--) {
      const c = rem % shape[d];
      rem = Math.floor(rem / shape[d]);
      x += c * sta[d];
      y += c * stb[d];
    }
    ia.push(x);
    ib.push(y);
  }
  return { shape, ia, ib };
}

function ndCompare(a: PyValue, b: PyValue, op: "eq" | "ne"): Cmp {
  let A: { shape: number[]; data: PyValue[] };
  let B: { shape: number[]; data: PyValue[] };
  try {
    A = ndShape(a);
    B = ndShape(b);
  } catch {
    return { scalar: op === "ne" };
  }
  const bc = broadcast(A.shape, B.shape);
  if (!bc) return { scalar: op === "ne" };
  const values = bc.ia.map((i, j) => {
    const eq = scalarEq(A.data[i], B.data[bc.ib[j]]);
    return op === "eq" ? eq : !eq;
  });
  return { shape: bc.shape, values };
}

function scalarEq(x: PyValue, y: PyValue): boolean {
  const kx = kind(x);
  const ky = kind(y);
  if (NUMERIC.has(kx) && NUMERIC.has(ky)) return numEq(num(x), num(y));
  if (kx === "ndarray" || ky === "ndarray") return truth(ndCompare(x, y, "eq"));
  return pyEq(x, y, false);
}

/** Python truth value of a comparison result (numpy 1.26 rules for arrays). */
function truth(c: Cmp): boolean {
  if ("scalar" in c) return c.scalar;
  if (c.values.length === 1) return c.values[0];
  if (c.values.length === 0) return false;
  throw new PyRaise("the truth value of an array with more than one element is ambiguous");
}

/** The reference's caller: `exact_match.all()` when the result is not a bool. */
function all(c: Cmp): boolean {
  return "scalar" in c ? c.scalar : c.values.every(Boolean);
}

// ---- numpy.allclose(out, exp, rtol, atol): shape inference, broadcasting, |a-b| <= atol + rtol|b| ----
interface NdArr {
  shape: number[];
  data: number[];
}

function toNd(v: PyValue): NdArr {
  const k = kind(v);
  if (NUMERIC.has(k)) {
    const n = num(v);
    return { shape: [], data: [typeof n === "bigint" ? Number(n) : n] };
  }
  if (k === "ndarray") return toNd((v as any).$ndarray);
  if (k === "list" || k === "tuple") {
    const parts = elems(v).map(toNd);
    if (!parts.length) return { shape: [0], data: [] };
    const s0 = JSON.stringify(parts[0].shape);
    if (parts.some((p) => JSON.stringify(p.shape) !== s0)) throw new PyRaise("inhomogeneous shape");
    return { shape: [parts.length, ...parts[0].shape], data: parts.flatMap((p) => p.data) };
  }
  throw new PyRaise(`allclose on a '${k}'`);
}

function allclose(a: PyValue, b: PyValue, rtol: number, atol: number): boolean {
  const x = toNd(a);
  const y = toNd(b);
  const nd = Math.max(x.shape.length, y.shape.length);
  const sx = [...Array(nd - x.shape.length).fill(1), ...x.shape];
  const sy = [...Array(nd - y.shape.length).fill(1), ...y.shape];
  const shape = sx.map((d, i) => {
    if (d === sy[i] || sy[i] === 1) return d;
    if (d === 1) return sy[i];
    throw new PyRaise("operands could not be broadcast together");
  });
  const total = shape.reduce((p, d) => p * d, 1);
  const strides = (s: number[]) => {
    const st = new Array(nd).fill(0);
    let acc = 1;
    for (let i = nd - 1; i >= 0; i--) {
      st[i] = s[i] === 1 ? 0 : acc;
      acc *= s[i];
    }
    return st;
  };
  const stx = strides(sx);
  const sty = strides(sy);
  for (let flat = 0; flat < total; flat++) {
    let rem = flat;
    let ix = 0;
    let iy = 0;
    for (let d = nd - 1; d >= 0; d--) {
      const c = rem % shape[d];
      rem = Math.floor(rem / shape[d]);
      ix += c * stx[d];
      iy += c * sty[d];
    }
    const p = x.data[ix];
    const q = y.data[iy];
    if (p === q) continue;
    if (!Number.isFinite(p) || !Number.isFinite(q)) return false; // numpy: non-finite only equal to itself
    if (!(Math.abs(p - q) <= atol + rtol * Math.abs(q))) return false;
  }
  return true;
}

/** Does `actual` (the code's output) match `expected` (the prediction / gold)? See the table above. */
export function outputsMatch(actual: PyValue, expected: PyValue, opts: MatchOptions = {}): boolean {
  const mode = opts.mode ?? "utgen";
  let atol = opts.atol ?? 0;
  if (mode === "strict") {
    if (atol === 0 && isFloats(expected)) atol = 1e-6;
    let out = actual;
    let exp = expected;
    if (opts.useSet) {
      // Both become sets, or neither: values that cannot (unhashable items, None, numbers) compare as they are.
      try {
        const so = toSet(out);
        const se = toSet(exp);
        out = so;
        exp = se;
      } catch (e) {
        if (!(e instanceof PyRaise)) throw e;
      }
    }
    return pyEq(out, exp, true, { atol, rtol: 1e-7 });
  }
  try {
    return utgenMatch(actual, expected, atol, !!opts.useSet);
  } catch (e) {
    if (e instanceof PyRaise) return false;
    throw e;
  }
}

/**
 * The reference's `eval_exact_match(out, exp, atol, use_set)` line by line (archiki/UTGenDebug utils.py),
 * followed by what its caller `unsafe_execute` does with the result (`.all()` on an array; a raise is "not
 * pass"). PyRaise stands for every exception the reference raises.
 */
function utgenMatch(out: PyValue, exp: PyValue, atol: number, useSet: boolean): boolean {
  // `if 'error' in out.lower() and 'error' in exp.lower: return True` — `exp.lower` is the method, not its
  // result, so whenever both are str and out.lower() contains "error" the `in` raises TypeError.
  if (typeof out === "string" && typeof exp === "string" && out.toLowerCase().includes("error"))
    throw new PyRaise("argument of type 'builtin_function_or_method' is not iterable");
  if (atol === 0 && isFloats(exp)) atol = 1e-6;
  if (useSet) {
    // `try: out = set(out); exp = set(exp) except: pass` — sequential: when set(exp) fails, out stays a set.
    try {
      out = toSet(out);
      exp = toSet(exp);
    } catch (e) {
      if (!(e instanceof PyRaise)) throw e;
    }
  }
  // `if str and str and 'Error' in out and 'Error' in exp: return True` is unreachable: both str with
  // "Error" in out already raised above (use_set turns strings into sets). Kept for the record.
  if (typeof out === "string" && typeof exp === "string" && out.includes("Error") && exp.includes("Error")) return true;
  const arrays = kind(out) === "ndarray" || kind(exp) === "ndarray";
  const ne = arrays ? truth(ndCompare(out, exp, "ne")) : !pyEq(out, exp, false);
  if (ne && atol !== 0) return allclose(out, exp, 1e-7, atol);
  return arrays ? all(ndCompare(out, exp, "eq")) : pyEq(out, exp, false);
}
