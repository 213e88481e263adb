import { afterAll, beforeAll } from "vitest";
import { type DbHandle, openDb } from "../../src/db/client.js";
import { type Running, startServer } from "../../src/server.js";
import { type ApiClient, httpClient, recordingLogger } from "./api-client.js";
import { testConfig } from "./app.js";
import { makeTestDb, type TestDb } from "./db.js";

/** Two instances of the service on one fresh PostgreSQL database (PGlite is one process's database). */
export interface TwoInstances {
  /** HTTP clients of instance A and instance B (usable from hooks and tests). */
  readonly a: ApiClient;
  readonly b: ApiClient;
  readonly servers: readonly Running[];
  /** Instance A's connection pool, for reading the database the two share. */
  readonly db: DbHandle["db"];
  /** The shared database's URL (to start a third instance on it). */
  readonly url: string;
  /** Error lines either instance logged. */
  readonly logger: ReturnType<typeof recordingLogger>;
}

/**
 * Registers beforeAll/afterAll in the calling `describe` (which should be skipped without DATABASE_URL): a fresh
 * database, two servers on it, each with its own connection pool, both built with testConfig() plus `env`.
 */
export function useTwoInstances(env: Record<string, string> = {}): TwoInstances {
  let tdb: TestDb | undefined;
  const handles: DbHandle[] = [];
  const servers: Running[] = [];
  const clients: ApiClient[] = [];
  const logger = recordingLogger();
  beforeAll(async () => {
    tdb = await makeTestDb("postgres");
    for (let i = 0; i < 2; i++) {
      const handle = await openDb({ DATABASE_URL: tdb.url, DATA_DIR: "" });
      handles.push(handle);
      const running = await startServer(testConfig({ DATABASE_URL: tdb.url ?? "", ...env }), { handle, logger });
      servers.push(running);
      clients.push(httpClient(running.url));
    }
  });
  afterAll(async () => {
    for (const s of servers) {
      await s.close();
    }
    for (const h of handles) {
      await h.close();
    }
    await tdb?.close();
  });
  const client = (i: number): ApiClient => {
    const c = clients[i];
    if (!c) {
      throw new Error("useTwoInstances: the servers are not started yet (use them in hooks and tests)");
    }
    return c;
  };
  return {
    get a() {
      return client(0);
    },
    get b() {
      return client(1);
    },
    get url() {
      const url = tdb?.url;
      if (!url) {
        throw new Error("useTwoInstances: the database is not created yet");
      }
      return url;
    },
    get db() {
      const h = handles[0];
      if (!h) {
        throw new Error("useTwoInstances: the database is not open yet");
      }
      return h.db;
    },
    servers,
    logger,
  };
}
