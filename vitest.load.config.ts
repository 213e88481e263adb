import { defineConfig } from "vitest/config";
import { isClosedSocketWrite } from "./src/db/errors.js";

// Fault and load tests (loopback only, bounded counts and durations): too long for `npm test`, run by `npm run
// test:load` and by CI after the main suite. One file at a time: they measure, and must not compete for the CPU.
export default defineConfig({
  test: {
    include: ["test/load/**/*.test.ts"],
    testTimeout: 300_000,
    hookTimeout: 120_000,
    pool: "forks",
    // postgres.js's closed-socket TypeError, thrown from a setImmediate when a test stops its own database under a
    // running service (porsager/postgres#1154): the service survives it (src/lib/driver-guard.ts); so do the tests.
    onUnhandledError: (err) => !isClosedSocketWrite(err),
    fileParallelism: false,
    passWithNoTests: true,
    reporters: ["default"],
  },
});
