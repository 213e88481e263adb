import { defineConfig } from "vitest/config";
import { isClosedSocketWrite } from "./src/db/errors.js";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Fault and load tests run on their own, one at a time: npm run test:load (vitest.load.config.ts).
    exclude: ["test/load/**", "**/node_modules/**"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
    // postgres.js's closed-socket TypeError, thrown from a setImmediate when a test stops its own database under a
    // running service (porsager/postgres#1154): the service survives it (src/lib/driver-guard.ts); so do the tests.
    onUnhandledError: (err) => !isClosedSocketWrite(err),
    // In CI, also write a JSON report: .ci/run turns it into a plain "N passed, N failed" closing line.
    reporters: process.env.CI ? ["default", ["json", { outputFile: "test-results.json" }]] : ["default"],
  },
});
