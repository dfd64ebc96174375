import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    // 2-core CI machine: keep parallel files low so sandbox timing verdicts stay stable.
    maxWorkers: 2,
  },
});
