// Types for scripts/setup-system.mjs (plain Node so that .ci/run can run it before `npm ci`).
export interface Need {
  pkg: string;
  group: "main" | "test";
  why: string;
}
export interface Probe {
  checked: string[];
  missing: Need[];
  privilege: "root" | "sudo" | "none";
  apt: boolean;
}
export const SYSTEM_DIRS: string[];
export const SANDBOX_PYTHON: string;
export function probe(o?: { root?: string; env?: NodeJS.ProcessEnv; uid?: number }): Probe;
export function plan(p: Probe, o?: { skip?: boolean }): { line: string; install: string[][][] };
export function runInstall(install: string[][][], env?: NodeJS.ProcessEnv): string[];
export function main(argv?: string[], env?: NodeJS.ProcessEnv, out?: (line: string) => void): number;
