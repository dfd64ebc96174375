/**
 * The row shape every source yields (Tulu-3 layout: id, messages[{role, content}], source) and
 * the normalisation of raw records into it. A record that cannot be used is not dropped: it is
 * yielded with `_bad: "<reason>"` so the filter can count it.
 */
import * as path from "node:path";
import { hashValue } from "../util.ts";

export interface SourceMessage {
  role: string;
  content: string;
}

export interface SourceRow {
  /** The row's `id`, else the sha256 of the row's content (stable key order). */
  id: string;
  /** The row's `source` column, else the file name. */
  source: string;
  messages: SourceMessage[];
  /** Set when the row could not be read or lacks usable messages. */
  _bad?: string;
  [k: string]: unknown;
}

/** A row standing for input that could not be read (bad JSON line, invalid UTF-8, …). */
export function badRow(file: string, where: number, reason: string): SourceRow {
  const name = path.basename(file);
  return { id: `${name}:${where}`, source: name, messages: [], _bad: reason };
}

/** Checks `messages` and fills `id`/`source`. `where` is the 1-based line or row number. */
export function normalizeRow(raw: unknown, file: string, where: number): SourceRow {
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) {
    return badRow(file, where, `${path.basename(file)}:${where}: row is not a JSON object`);
  }
  const rec = raw as Record<string, unknown>;
  const idRaw = rec["id"];
  const id =
    typeof idRaw === "string" && idRaw !== ""
      ? idRaw
      : typeof idRaw === "number" || typeof idRaw === "bigint"
        ? String(idRaw)
        : hashValue(rec);
  const source = typeof rec["source"] === "string" && rec["source"] !== "" ? rec["source"] : path.basename(file);
  const msgs = rec["messages"];
  let bad: string | undefined;
  if (!Array.isArray(msgs)) bad = "missing messages";
  else if (msgs.length === 0) bad = "empty messages";
  else {
    for (let i = 0; i < msgs.length; i++) {
      const m = msgs[i] as Record<string, unknown> | null;
      if (!m || typeof m !== "object") bad = `messages[${i}] is not an object`;
      else if (typeof m["role"] !== "string") bad = `messages[${i}].role is not a string`;
      else if (typeof m["content"] !== "string") bad = `messages[${i}].content is not a string`;
      if (bad) break;
    }
  }
  const row: SourceRow = { ...rec, id, source, messages: bad ? [] : (msgs as SourceMessage[]) };
  if (bad) row._bad = bad;
  return row;
}
