/** test/helpers/shared.ts: a missing ../shared file fails the test with one line naming it (never a skip). */
import { describe, expect, it } from "vitest";
import { SHARED_DIR, sharedFile } from "./helpers/shared.ts";
import * as path from "node:path";

describe("sharedFile", () => {
  it("throws one line naming the missing file", () => {
    let err: Error | undefined;
    try {
      sharedFile("data/no-such-file.jsonl");
    } catch (e) {
      err = e as Error;
    }
    expect(err).toBeInstanceOf(Error);
    expect(err!.message).toContain(path.join(SHARED_DIR, "data/no-such-file.jsonl"));
    expect(err!.message).toContain("../shared/data/no-such-file.jsonl");
    expect(err!.message).not.toContain("\n");
    expect(err!.stack).not.toContain("\n");
  });
  it("resolves ../shared beside the repository root", () => {
    expect(SHARED_DIR).toBe(path.resolve(__dirname, "..", "..", "shared"));
  });
});
