/**
 * Safe Python literals: a small tokenizer + recursive-descent parser for the literal subset models write
 * in `Arguments: f(1, [2, 3], 'x')` and `Output: ```…```` — nothing is ever evaluated. Accepted:
 * ints (dec/hex/oct/bin, `_`), floats, unary +/-, strings and bytes (all quote styles, r/b/u prefixes,
 * escapes, implicit concatenation), None/True/False, `inf`/`nan` (also `math.inf`, `np.nan`…),
 * `float('inf')`-style calls with a string literal, lists, tuples, sets, dicts, `set()`, `frozenset(…)`,
 * `tuple(…)`, `list(…)`, `dict()` on literal arguments, comments and line continuations, and (for calls)
 * keyword arguments. Anything else → `{ok: false, reason: "unparsable_literal", detail}`.
 * Also `formatPyValue` / `formatCall`: Python source text for a typed value (round-trips through the parser).
 */
import type { CallArgs, PyValue } from "./types.ts";

export type LiteralResult = { ok: true; value: PyValue } | { ok: false; reason: "unparsable_literal"; detail: string };
export type CallLiteralResult =
  | { ok: true; fn: string; args: CallArgs }
  | { ok: false; reason: "unparsable_literal"; detail: string };

class LiteralError extends Error {}

type Tok =
  | { t: "num"; v: PyValue; pos: number }
  | { t: "str"; v: string; bytes: boolean; pos: number }
  | { t: "name"; v: string; pos: number }
  | { t: "op"; v: string; pos: number }
  | { t: "end"; pos: number };

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const MAX_LEN = 1_000_000;
const MAX_DEPTH = 200;

/** A Python int (BigInt) as PyValue: JSON number when safe, else {$int}. */
export function intValue(n: bigint): PyValue {
  return n <= MAX_SAFE && n >= -MAX_SAFE ? Number(n) : { $int: n.toString() };
}

function floatValue(x: number): PyValue {
  return { $float: pyFloatRepr(x) };
}

/** Python's repr of a float (shortest round-trip digits, Python's exponent rules). */
export function pyFloatRepr(x: number): string {
  if (Number.isNaN(x)) return "nan";
  if (x === Infinity) return "inf";
  if (x === -Infinity) return "-inf";
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  // Shortest round-trip digits; Python switches to exponent notation when exp < -4 or exp >= 16.
  const [mant, e] = x.toExponential().split("e");
  const ev = parseInt(e, 10);
  if (ev < -4 || ev >= 16) return `${mant}e${ev < 0 ? "-" : "+"}${String(Math.abs(ev)).padStart(2, "0")}`;
  const digits = mant.replace("-", "").replace(".", "");
  const neg = x < 0 ? "-" : "";
  if (ev >= 0) {
    const intPart = digits.slice(0, ev + 1).padEnd(ev + 1, "0");
    const frac = digits.slice(ev + 1);
    return `${neg}${intPart}.${frac || "0"}`;
  }
  return `${neg}0.${"0".repeat(-ev - 1)}${digits}`;
}

const ESC: Record<string, string> = {
  "\n": "",
  "\\": "\\",
  "'": "'",
  '"': '"',
  a: "\x07",
  b: "\b",
  f: "\f",
  n: "\n",
  r: "\r",
  t: "\t",
  v: "\v",
};

function tokenize(src: string): Tok[] {
  if (src.length > MAX_LEN) throw new LiteralError(`literal longer than ${MAX_LEN} characters`);
  const toks: Tok[] = [];
  let i = 0;
  const n = src.length;
  while (i < n) {
    const c = src[i];
    if (c === " " || c === "\t" || c === "\n" || c === "\r" || c === "\f") {
      i++;
      continue;
    }
    if (c === "\\" && (src[i + 1] === "\n" || (src[i + 1] === "\r" && src[i + 2] === "\n"))) {
      i += src[i + 1] === "\n" ? 2 : 3;
      continue;
    }
    if (c === "#") {
      while (i < n && src[i] !== "\n") i++;
      continue;
    }
    const pos = i;
    // string / bytes with optional prefix
    const pm = /^([rRbBuU]|[rR][bB]|[bB][rR])?(['"])/.exec(src.slice(i, i + 3));
    if (pm) {
      const prefix = (pm[1] ?? "").toLowerCase();
      i += prefix.length;
      const q = src[i];
      const triple = src.slice(i, i + 3) === q.repeat(3);
      const close = triple ? q.repeat(3) : q;
      i += close.length;
      const raw = prefix.includes("r");
      const bytes = prefix.includes("b");
      let out = "";
      for (;;) {
        if (i >= n) throw new LiteralError(`unterminated string at ${pos}`);
        if (src.startsWith(close, i)) {
          i += close.length;
          break;
        }
        const ch = src[i];
        if (ch === "\n" && !triple) throw new LiteralError(`newline in a single-quoted string at ${i}`);
        if (ch === "\\") {
          const nx = src[i + 1];
          if (nx === undefined) throw new LiteralError(`unterminated string at ${pos}`);
          if (raw) {
            out += ch + nx;
            i += 2;
            continue;
          }
          if (nx in ESC) {
            out += ESC[nx];
            i += 2;
            continue;
          }
          if (nx === "\r" && src[i + 2] === "\n") {
            i += 3;
            continue;
          }
          if (/[0-7]/.test(nx)) {
            const m = /^[0-7]{1,3}/.exec(src.slice(i + 1))![0];
            const code = parseInt(m, 8);
            if (bytes && code > 255) throw new LiteralError(`octal escape out of range in bytes at ${i}`);
            out += String.fromCodePoint(code);
            i += 1 + m.length;
            continue;
          }
          const hexLen = nx === "x" ? 2 : !bytes && nx === "u" ? 4 : !bytes && nx === "U" ? 8 : 0;
          if (hexLen) {
            const h = src.slice(i + 2, i + 2 + hexLen);
            if (!new RegExp(`^[0-9a-fA-F]{${hexLen}}$`).test(h)) throw new LiteralError(`bad \\${nx} escape at ${i}`);
            const code = parseInt(h, 16);
            if (code > 0x10ffff) throw new LiteralError(`escape out of range at ${i}`);
            out += String.fromCodePoint(code);
            i += 2 + hexLen;
            continue;
          }
          if (!bytes && nx === "N") throw new LiteralError(`\\N{...} escapes are not supported (at ${i})`);
          out += ch + nx; // unknown escapes are kept verbatim, as Python does
          i += 2;
          continue;
        }
        if (bytes && ch.charCodeAt(0) > 127) throw new LiteralError(`bytes can only contain ASCII literal characters (at ${i})`);
        out += ch;
        i++;
      }
      toks.push({ t: "str", v: out, bytes, pos });
      continue;
    }
    if (/[fF]/.test(c) && /^[fF][rR]?['"]|^[rR][fF]['"]/.test(src.slice(i, i + 3))) {
      throw new LiteralError(`f-strings are not literals (at ${i})`);
    }
    // numbers
    const num = /^(?:0[xX](?:_?[0-9a-fA-F])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+|(?:\d(?:_?\d)*)?\.?(?:\d(?:_?\d)*)?(?:[eE][+-]?\d(?:_?\d)*)?[jJ]?)/.exec(
      src.slice(i),
    );
    if (num && num[0] && /\d/.test(num[0]) && (/\d/.test(c) || (c === "." && /\d/.test(src[i + 1] ?? "")))) {
      const text = num[0];
      i += text.length;
      if (/[a-zA-Z_0-9]/.test(src[i] ?? "")) throw new LiteralError(`bad number '${text}${src[i]}' at ${pos}`);
      toks.push({ t: "num", v: parseNumber(text, pos), pos });
      continue;
    }
    const name = /^[A-Za-z_][A-Za-z_0-9]*/.exec(src.slice(i));
    if (name) {
      i += name[0].length;
      toks.push({ t: "name", v: name[0], pos });
      continue;
    }
    if ("()[]{},:=+-.*".includes(c)) {
      toks.push({ t: "op", v: c === "*" && src[i + 1] === "*" ? "**" : c, pos });
      i += c === "*" && src[i + 1] === "*" ? 2 : 1;
      continue;
    }
    throw new LiteralError(`unexpected character '${c}' at ${pos}`);
  }
  toks.push({ t: "end", pos: n });
  return toks;
}

function parseNumber(text: string, pos: number): PyValue {
  const t = text.replace(/_/g, "");
  if (/[jJ]$/.test(t)) throw new LiteralError(`complex numbers are not supported ('${text}' at ${pos})`);
  if (/^0[xXoObB]/.test(t)) return intValue(BigInt(t.toLowerCase()));
  if (/^\d+$/.test(t)) {
    if (/^0\d/.test(t) && !/^0+$/.test(t)) throw new LiteralError(`leading zeros in '${text}' at ${pos}`);
    return intValue(BigInt(t));
  }
  const x = Number(t);
  if (Number.isNaN(x)) throw new LiteralError(`bad number '${text}' at ${pos}`);
  return floatValue(x);
}

/** Python float('...') accepted spellings. */
function floatFromString(s: string): number | undefined {
  const t = s.trim().replace(/_/g, "").toLowerCase();
  if (/^[+-]?(inf|infinity)$/.test(t)) return t.startsWith("-") ? -Infinity : Infinity;
  if (/^[+-]?nan$/.test(t)) return NaN;
  if (/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/.test(t)) return Number(t);
  return undefined;
}

// ----------------------------------------------------------------------------------- parser ----
class Parser {
  i = 0;
  constructor(private readonly toks: Tok[]) {}

  peek(): Tok {
    return this.toks[this.i];
  }
  next(): Tok {
    return this.toks[this.i++];
  }
  ahead(k: number): Tok {
    return this.toks[Math.min(this.i + k, this.toks.length - 1)];
  }
  isOp(v: string): boolean {
    const t = this.peek();
    return t.t === "op" && t.v === v;
  }
  expectOp(v: string): void {
    const t = this.next();
    if (t.t !== "op" || t.v !== v) throw new LiteralError(`expected '${v}' at ${t.pos}`);
  }

  /** expr [, expr]* at top level → tuple when a comma appears. */
  topLevel(): PyValue {
    const first = this.value(0);
    if (!this.isOp(",")) return first;
    const items = [first];
    while (this.isOp(",")) {
      this.next();
      if (this.peek().t === "end") break;
      items.push(this.value(0));
    }
    return { $tuple: items };
  }

  value(depth: number): PyValue {
    if (depth > MAX_DEPTH) throw new LiteralError(`nesting deeper than ${MAX_DEPTH}`);
    const t = this.next();
    switch (t.t) {
      case "num":
        return t.v;
      case "str": {
        let s = t.v;
        let bytes = t.bytes;
        while (this.peek().t === "str") {
          const u = this.next() as Extract<Tok, { t: "str" }>;
          if (u.bytes !== bytes) throw new LiteralError(`cannot mix bytes and str literals at ${u.pos}`);
          s += u.v;
        }
        return bytes ? { $bytes: Buffer.from(s, "latin1").toString("base64") } : s;
      }
      case "op":
        if (t.v === "-" || t.v === "+") {
          const v = this.value(depth + 1);
          return t.v === "-" ? negate(v, t.pos) : plus(v, t.pos);
        }
        if (t.v === "[") return this.sequence("]", depth);
        if (t.v === "(") {
          if (this.isOp(")")) {
            this.next();
            return { $tuple: [] };
          }
          const first = this.value(depth + 1);
          if (this.isOp(")")) {
            this.next();
            return first;
          }
          this.expectOp(",");
          const rest = this.isOp(")") ? [] : (this.sequence(")", depth) as PyValue[]);
          if (!rest.length) this.expectOp(")");
          return { $tuple: [first, ...rest] };
        }
        if (t.v === "{") return this.braces(depth);
        throw new LiteralError(`unexpected '${t.v}' at ${t.pos}`);
      case "name":
        return this.name(t.v, t.pos, depth);
      case "end":
        throw new LiteralError("unexpected end of input");
    }
  }

  /** Comma-separated values up to `close` (already past the opening bracket). */
  sequence(close: string, depth: number): PyValue[] {
    const items: PyValue[] = [];
    while (!this.isOp(close)) {
      items.push(this.value(depth + 1));
      if (this.isOp(",")) this.next();
      else if (!this.isOp(close)) throw new LiteralError(`expected ',' or '${close}' at ${this.peek().pos}`);
    }
    this.next();
    return items;
  }

  braces(depth: number): PyValue {
    if (this.isOp("}")) {
      this.next();
      return { $dict: [] };
    }
    const first = this.value(depth + 1);
    if (this.isOp(":")) {
      this.next();
      const pairs: [PyValue, PyValue][] = [[first, this.value(depth + 1)]];
      while (this.isOp(",")) {
        this.next();
        if (this.isOp("}")) break;
        const k = this.value(depth + 1);
        this.expectOp(":");
        pairs.push([k, this.value(depth + 1)]);
      }
      this.expectOp("}");
      return makeDict(pairs);
    }
    const items = [first];
    if (this.isOp(",")) {
      this.next();
      items.push(...this.sequence("}", depth));
    } else this.expectOp("}");
    return makeSet(items, "$set");
  }

  name(v: string, pos: number, depth: number): PyValue {
    if (v === "None") return null;
    if (v === "True") return true;
    if (v === "False") return false;
    if (v === "inf") return floatValue(Infinity);
    if (v === "nan") return floatValue(NaN);
    if ((v === "math" || v === "np" || v === "numpy") && this.isOp(".")) {
      this.next();
      const attr = this.next();
      if (attr.t === "name" && (attr.v === "inf" || attr.v === "nan")) return floatValue(attr.v === "inf" ? Infinity : NaN);
      throw new LiteralError(`only ${v}.inf / ${v}.nan are accepted (at ${pos})`);
    }
    if (!this.isOp("(")) throw new LiteralError(`name '${v}' is not a literal (at ${pos})`);
    this.next();
    const args = this.isOp(")") ? (this.next(), []) : this.sequence(")", depth);
    if (args.length > 1) throw new LiteralError(`${v}() takes at most one literal argument (at ${pos})`);
    const a = args[0];
    switch (v) {
      case "float": {
        if (a === undefined) return floatValue(0);
        if (typeof a === "string") {
          const x = floatFromString(a);
          if (x === undefined) throw new LiteralError(`float('${a}') is not a number (at ${pos})`);
          return floatValue(x);
        }
        const x = numericOf(a);
        if (x === undefined) throw new LiteralError(`float() of a non-number (at ${pos})`);
        return floatValue(x);
      }
      case "int":
        if (a === undefined) return 0;
        if (typeof a === "string" && /^\s*[+-]?\d(_?\d)*\s*$/.test(a)) return intValue(BigInt(a.trim().replace(/_/g, "")));
        if (typeof a === "number" && Number.isInteger(a)) return a;
        if (a && typeof a === "object" && "$int" in a) return a;
        throw new LiteralError(`int() accepts only an integer or a digit string here (at ${pos})`);
      case "set":
      case "frozenset":
        return makeSet(a === undefined ? [] : iterate(a, pos), v === "set" ? "$set" : "$frozenset");
      case "tuple":
        return { $tuple: a === undefined ? [] : iterate(a, pos) };
      case "list":
        return a === undefined ? [] : iterate(a, pos);
      case "dict":
        if (a === undefined) return { $dict: [] };
        if (a && typeof a === "object" && "$dict" in a) return a;
        throw new LiteralError(`dict() accepts only a dict literal here (at ${pos})`);
      default:
        throw new LiteralError(`call to '${v}' is not a literal (at ${pos})`);
    }
  }
}

function numericOf(v: PyValue): number | undefined {
  if (typeof v === "number") return v;
  if (typeof v === "boolean") return v ? 1 : 0;
  if (v && typeof v === "object" && "$float" in v) return Number(v.$float.replace("inf", "Infinity"));
  if (v && typeof v === "object" && "$int" in v) return Number(v.$int);
  return undefined;
}

function negate(v: PyValue, pos: number): PyValue {
  if (typeof v === "number") return intValue(-BigInt(v));
  if (typeof v === "boolean") return v ? -1 : 0;
  if (v && typeof v === "object" && "$int" in v) return intValue(-BigInt(v.$int));
  if (v && typeof v === "object" && "$float" in v) {
    const f = v.$float;
    return { $float: f === "nan" ? "nan" : f.startsWith("-") ? f.slice(1) : "-" + f };
  }
  throw new LiteralError(`unary minus on a non-number (at ${pos})`);
}

function plus(v: PyValue, pos: number): PyValue {
  if (typeof v === "boolean") return v ? 1 : 0;
  if (numericOf(v) === undefined) throw new LiteralError(`unary plus on a non-number (at ${pos})`);
  return v;
}

function iterate(v: PyValue, pos: number): PyValue[] {
  if (Array.isArray(v)) return v;
  if (typeof v === "string") return Array.from(v);
  if (v && typeof v === "object") {
    if ("$tuple" in v) return v.$tuple;
    if ("$set" in v) return v.$set;
    if ("$frozenset" in v) return v.$frozenset;
    if ("$dict" in v) return v.$dict.map(([k]) => k);
    if ("$bytes" in v) return [...Buffer.from(v.$bytes, "base64")];
  }
  throw new LiteralError(`not iterable (at ${pos})`);
}

/**
 * Equality key for hashable values, following Python's hash/eq: 1 == 1.0 == True, tuples by content,
 * frozensets by members. Returns undefined for unhashable values (list, dict, set).
 */
export function hashKey(v: PyValue): string | undefined {
  if (v === null) return "N";
  if (typeof v === "boolean") return "n" + (v ? "1" : "0");
  if (typeof v === "number") return Number.isInteger(v) ? "n" + BigInt(v).toString() : floatKey(v);
  if (typeof v === "string") return "s" + v;
  if (Array.isArray(v)) return undefined;
  if ("$int" in v) return "n" + BigInt(v.$int).toString();
  if ("$float" in v) return floatKey(Number(v.$float.replace("inf", "Infinity")));
  if ("$tuple" in v) {
    const ks = v.$tuple.map(hashKey);
    return ks.some((k) => k === undefined) ? undefined : "t" + JSON.stringify(ks);
  }
  if ("$frozenset" in v) {
    const ks = v.$frozenset.map(hashKey);
    return ks.some((k) => k === undefined) ? undefined : "f" + JSON.stringify([...new Set(ks as string[])].sort());
  }
  if ("$bytes" in v) return "b" + v.$bytes;
  if ("$repr" in v) return "r" + v.type + ":" + v.$repr;
  return undefined; // $set, $dict, $ndarray
}

let nanCounter = 0;
function floatKey(x: number): string {
  if (Number.isNaN(x)) return "nan#" + nanCounter++; // every NaN object is distinct
  if (Number.isInteger(x)) return "n" + BigInt(x).toString();
  return "x" + String(x);
}

function makeSet(items: PyValue[], tag: "$set" | "$frozenset"): PyValue {
  const seen = new Map<string, PyValue>();
  for (const it of items) {
    const k = hashKey(it);
    if (k === undefined) throw new LiteralError(`unhashable element in a set: ${formatPyValue(it).slice(0, 40)}`);
    if (!seen.has(k)) seen.set(k, it);
  }
  return tag === "$set" ? { $set: [...seen.values()] } : { $frozenset: [...seen.values()] };
}

function makeDict(pairs: [PyValue, PyValue][]): PyValue {
  const seen = new Map<string, [PyValue, PyValue]>();
  for (const [k, v] of pairs) {
    const key = hashKey(k);
    if (key === undefined) throw new LiteralError(`unhashable dict key: ${formatPyValue(k).slice(0, 40)}`);
    const old = seen.get(key);
    if (old) old[1] = v; // Python keeps the first key object and the last value
    else seen.set(key, [k, v]);
  }
  return { $dict: [...seen.values()] };
}

function fail(e: unknown): { ok: false; reason: "unparsable_literal"; detail: string } {
  if (e instanceof LiteralError) return { ok: false, reason: "unparsable_literal", detail: e.message };
  if (e instanceof RangeError || e instanceof SyntaxError) return { ok: false, reason: "unparsable_literal", detail: e.message };
  throw e;
}

/** Parse one Python literal (a bare `1, 2` is a tuple, as in Python). Never evaluates anything. */
export function parseLiteral(text: string): LiteralResult {
  try {
    const p = new Parser(tokenize(text));
    if (p.peek().t === "end") throw new LiteralError("empty literal");
    const value = p.topLevel();
    if (p.peek().t !== "end") throw new LiteralError(`unexpected text after the literal at ${p.peek().pos}`);
    return { ok: true, value };
  } catch (e) {
    return fail(e);
  }
}

/** Parse `f(1, [2, 3], 'x', key=None)`; with `expectedFn` the callee must have that name. */
export function parseCallLiteral(text: string, expectedFn?: string): CallLiteralResult {
  try {
    const p = new Parser(tokenize(text));
    const head = p.next();
    if (head.t !== "name") throw new LiteralError("expected a function call like f(1, 2)");
    let fn = head.v;
    while (p.isOp(".")) {
      p.next();
      const part = p.next();
      if (part.t !== "name") throw new LiteralError(`bad function name at ${part.pos}`);
      fn += "." + part.v;
    }
    if (expectedFn !== undefined && fn !== expectedFn) {
      throw new LiteralError(`calls '${fn}', expected '${expectedFn}'`);
    }
    p.expectOp("(");
    const args: PyValue[] = [];
    const kwargs: Record<string, PyValue> = {};
    let sawKw = false;
    while (!p.isOp(")")) {
      const t = p.peek();
      if (t.t === "op" && (t.v === "*" || t.v === "**")) throw new LiteralError(`argument unpacking is not supported (at ${t.pos})`);
      const t2 = p.ahead(1);
      if (t.t === "name" && t2.t === "op" && t2.v === "=") {
        p.next();
        p.next();
        if (Object.prototype.hasOwnProperty.call(kwargs, t.v)) throw new LiteralError(`keyword argument '${t.v}' repeated`);
        kwargs[t.v] = p.value(1);
        sawKw = true;
      } else {
        if (sawKw) throw new LiteralError(`positional argument after keyword argument (at ${t.pos})`);
        args.push(p.value(1));
      }
      if (p.isOp(",")) p.next();
      else if (!p.isOp(")")) throw new LiteralError(`expected ',' or ')' at ${p.peek().pos}`);
    }
    p.next();
    if (p.peek().t !== "end") throw new LiteralError(`unexpected text after the call at ${p.peek().pos}`);
    return { ok: true, fn, args: sawKw ? { args, kwargs } : { args } };
  } catch (e) {
    return fail(e);
  }
}

// -------------------------------------------------------------------------------- formatting ----
/** Escapes shared by str and bytes reprs; `wide` renders a code point that needs \\x / \\u / \\U. */
function quoteRepr(chars: Iterable<string>, hasSingle: boolean, hasDouble: boolean, wide: (cp: number) => string | undefined): string {
  const quote = hasSingle && !hasDouble ? '"' : "'";
  let out = quote;
  for (const ch of chars) {
    const cp = ch.codePointAt(0)!;
    if (ch === quote || ch === "\\") out += "\\" + ch;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (cp < 0x20 || cp === 0x7f) out += "\\x" + cp.toString(16).padStart(2, "0");
    else out += wide(cp) ?? ch;
  }
  return out + quote;
}

/** Python's repr of a str (quote choice and escapes as CPython does). */
export function pyStrRepr(s: string): string {
  return quoteRepr(s, s.includes("'"), s.includes('"'), (cp) => {
    if (cp < 0x80 || isPrintable(String.fromCodePoint(cp))) return undefined;
    const hex = cp.toString(16);
    return cp <= 0xff ? "\\x" + hex.padStart(2, "0") : cp <= 0xffff ? "\\u" + hex.padStart(4, "0") : "\\U" + hex.padStart(8, "0");
  });
}

function isPrintable(ch: string): boolean {
  // Approximates str.isprintable(): letters, marks, numbers, punctuation, symbols and the plain space.
  return /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u.test(ch);
}

function pyBytesRepr(b: Buffer): string {
  const chars = Array.from(b, (c) => String.fromCharCode(c));
  return "b" + quoteRepr(chars, b.includes(0x27), b.includes(0x22), (cp) => (cp >= 0x80 ? "\\x" + cp.toString(16).padStart(2, "0") : undefined));
}

function formatFloat(repr: string): string {
  if (repr === "inf" || repr === "-inf" || repr === "nan") return `float('${repr}')`;
  return repr;
}

/** Python source text for a value (repr-like; `float('inf')` for non-finite floats so it parses back). */
export function formatPyValue(v: PyValue): string {
  if (v === null) return "None";
  if (v === true) return "True";
  if (v === false) return "False";
  if (typeof v === "number") return Number.isInteger(v) ? BigInt(v).toString() : formatFloat(pyFloatRepr(v));
  if (typeof v === "string") return pyStrRepr(v);
  if (Array.isArray(v)) return "[" + v.map(formatPyValue).join(", ") + "]";
  if ("$int" in v) return v.$int;
  if ("$float" in v) return formatFloat(v.$float);
  if ("$tuple" in v) return v.$tuple.length === 1 ? `(${formatPyValue(v.$tuple[0])},)` : "(" + v.$tuple.map(formatPyValue).join(", ") + ")";
  if ("$set" in v) return v.$set.length ? "{" + v.$set.map(formatPyValue).join(", ") + "}" : "set()";
  if ("$frozenset" in v) return v.$frozenset.length ? "frozenset({" + v.$frozenset.map(formatPyValue).join(", ") + "})" : "frozenset()";
  if ("$dict" in v) return "{" + v.$dict.map(([k, x]) => `${formatPyValue(k)}: ${formatPyValue(x)}`).join(", ") + "}";
  if ("$bytes" in v) return pyBytesRepr(Buffer.from(v.$bytes, "base64"));
  if ("$ndarray" in v) return `np.array(${formatPyValue(v.$ndarray)}, dtype='${v.dtype}')`;
  if ("$repr" in v) return v.$repr;
  throw new Error(`not a PyValue: ${JSON.stringify(v).slice(0, 80)}`);
}

/** `fn(1, [2, 3], key='x')` */
export function formatCall(fn: string, args: CallArgs): string {
  const parts = args.args.map(formatPyValue);
  for (const [k, v] of Object.entries(args.kwargs ?? {})) parts.push(`${k}=${formatPyValue(v)}`);
  return `${fn}(${parts.join(", ")})`;
}
