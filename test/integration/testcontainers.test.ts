import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { openDb } from "../../src/db/client.js";
import { migrate } from "../../src/db/migrate.js";
import { loadSnapshot } from "../../src/db/repo/snapshot.js";

// Machines with a Docker engine also run the suite's migrations against a throwaway PostgreSQL container.
// Here (no engine) it skips cleanly; CI uses the local server through DATABASE_URL instead.
const dockerSocket = process.env.DOCKER_HOST !== undefined || existsSync("/var/run/docker.sock");

describe.skipIf(!dockerSocket)("PostgreSQL in a container (testcontainers)", () => {
  it("migrates and reads an empty snapshot", { timeout: 180_000 }, async () => {
    const { GenericContainer, Wait } = await import("testcontainers");
    const container = await new GenericContainer("postgres:16-alpine")
      .withEnvironment({ POSTGRES_PASSWORD: "test", POSTGRES_DB: "test" })
      .withExposedPorts(5432)
      .withWaitStrategy(Wait.forLogMessage(/database system is ready to accept connections/, 2))
      .start();
    try {
      const url = `postgres://postgres:test@${container.getHost()}:${container.getMappedPort(5432)}/test`;
      const handle = await openDb({ DATABASE_URL: url, DATA_DIR: "" });
      await migrate(handle);
      expect(await loadSnapshot(handle.db)).toMatchObject({ routes: [], replicas: [] });
      await handle.close();
    } finally {
      await container.stop();
    }
  });
});
