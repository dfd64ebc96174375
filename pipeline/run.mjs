#!/usr/bin/env zx
// Entry point: `npx zx pipeline/run.mjs [flags]` (also plain `node pipeline/run.mjs`).
// Registers the tsx loader so the TypeScript modules run without a build step, then hands over to cli.ts
// (runFromProcess: signal handling, closed pipes, exit code).
import { register } from "tsx/esm/api";

register();
const { runFromProcess } = await import("./cli.ts");
// zx passes its own argv: keep what follows this script's path.
const self = process.argv.findIndex((a) => a.endsWith("run.mjs"));
process.exitCode = await runFromProcess(process.argv.slice(self + 1));
