#!/usr/bin/env zx
// Entry point: `npx zx pipeline/run.mjs [flags]` (also plain `node pipeline/run.mjs`).
// Registers the tsx loader so the TypeScript modules run without a build step, then hands over to cli.ts.
import { register } from "tsx/esm/api";

register();
const { main } = await import("./cli.ts");
// zx passes its own argv: keep what follows this script's path.
const self = process.argv.findIndex((a) => a.endsWith("run.mjs"));
const code = await main(process.argv.slice(self + 1));
process.exitCode = code;
