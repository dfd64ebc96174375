import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Private TMPDIR for the whole run; fails the run naming anything a test left behind.
    globalSetup: ["test/setup/temp-guard.ts"],
    // No machine-local tokenizer table cache (pipeline/tokenizer-tables.ts) for the suite and the processes it
    // starts: each builds its tokenizer from tokenizer.json; test/tokenize.test.ts tests the cache in folders of its own.
    env: { UTGEN_TOKENIZER_CACHE: "off" },
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    // 2-core CI machine: keep parallel files low so sandbox timing verdicts stay stable.
    maxWorkers: 2,
  },
});
