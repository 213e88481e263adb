import { defineConfig } from "vitest/config";

// Fault and load tests (loopback only, bounded counts and durations): too long for `npm test`, run by `npm run
// test:load` and by CI after the main suite. One file at a time: they measure, and must not compete for the CPU.
export default defineConfig({
  test: {
    include: ["test/load/**/*.test.ts"],
    testTimeout: 300_000,
    hookTimeout: 120_000,
    pool: "forks",
    fileParallelism: false,
    passWithNoTests: true,
    reporters: ["default"],
  },
});
