/**
 * The project's shared folder (`../shared` beside the repository: papers, seed prompts, the MBPP+Fix (Hard) dev
 * split, the reference's comparison verdicts). CI always has it. A test that needs a file from it calls
 * `sharedFile(rel)` (or `readShared(rel)`) inside the test or its `beforeAll`: when the file is absent the test
 * FAILS with one line naming what is missing — it never skips or passes vacuously.
 */
import { existsSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

/** Absolute path of `../shared` (the folder beside the repository root). */
export const SHARED_DIR = path.resolve(fileURLToPath(new URL("../../", import.meta.url)), "..", "shared");

/** An error whose whole report is one line (vitest prints the stack; this one is the message). */
export function oneLineError(message: string): Error {
  const e = new Error(message);
  e.stack = `Error: ${message}`;
  return e;
}

/** Absolute path of `../shared/<rel>`; throws a one-line error when it is absent. */
export function sharedFile(rel: string): string {
  const file = path.join(SHARED_DIR, rel);
  if (!existsSync(file))
    throw oneLineError(
      `missing ${file}: this test needs ../shared/${rel} (the shared folder beside the repository; CI always has it) — it fails rather than skips`,
    );
  return file;
}

/** Text of `../shared/<rel>` (one-line error when absent). */
export function readShared(rel: string): string {
  return readFileSync(sharedFile(rel), "utf8");
}

/** Rows of a JSONL file under `../shared` (one-line error when absent). */
export function readSharedJsonl<T = any>(rel: string): T[] {
  return readShared(rel)
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as T);
}
