/** select's file side: the relative `best` link, and one-line errors when there is nothing to choose from. */
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { UserError } from "../pipeline/errors.ts";
import { pointLink, selectStage } from "../stages/select.ts";
import { makeCtx, useTmpDir, writeRegistry } from "./fixtures/validate/context.ts";

const tmpDir = useTmpDir("select-");

describe("best link", () => {
  it("is relative, replaced atomically, and never clobbers a real folder", async () => {
    const a = path.join(tmpDir(), "t", "checkpoint-1");
    const b = path.join(tmpDir(), "t", "checkpoint-2");
    await fsp.mkdir(a, { recursive: true });
    await fsp.mkdir(b, { recursive: true });
    const link = path.join(tmpDir(), "t", "best");
    expect(await pointLink(link, a)).toBe("checkpoint-1");
    expect(await pointLink(link, b)).toBe("checkpoint-2");
    expect(await fsp.readlink(link)).toBe("checkpoint-2");
    expect((await fsp.readdir(path.join(tmpDir(), "t"))).sort()).toEqual(["best", "checkpoint-1", "checkpoint-2"]);
    const real = path.join(tmpDir(), "t2", "best");
    await fsp.mkdir(real, { recursive: true });
    await expect(pointLink(real, a)).rejects.toThrow(/not a symlink/);
  });
});

describe("select errors", () => {
  it("needs a train name, a registry and validation results", async () => {
    const runDir = path.join(tmpDir(), "run");
    const none = makeCtx("select", runDir, { validate: { baselines: [] }, select: {} }, undefined);
    await expect(selectStage.run(none.ctx)).rejects.toThrow(/needs a training run/);
    const noReg = makeCtx("select", runDir, { validate: { checkpoints_from: "r9" }, select: {} }, undefined);
    await expect(selectStage.run(noReg.ctx)).rejects.toThrow(/no checkpoint registry/);
    await writeRegistry(runDir, "r9", [5]);
    const noResults = makeCtx("select", runDir, { validate: { checkpoints_from: "r9" }, select: {} }, undefined);
    const err = await selectStage.run(noResults.ctx).catch((e) => e);
    expect(err).toBeInstanceOf(UserError);
    expect(err.message).toMatch(/no validation results on set "heldout" .*run validate first/);
  });
});
