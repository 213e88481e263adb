import { join } from "node:path";
import type { PgliteDatabase } from "drizzle-orm/pglite";
import { migrate as migratePglite } from "drizzle-orm/pglite/migrator";
import type { PostgresJsDatabase } from "drizzle-orm/postgres-js";
import { migrate as migratePg } from "drizzle-orm/postgres-js/migrator";
import { packageRoot } from "../lib/package-root.js";
import { type DbHandle, explainPoolerRefusal, type Schema } from "./client.js";

/**
 * Serializes migrations of several instances starting at once. Held as a session lock on the direct connection
 * (DATABASE_LISTEN_URL, or DATABASE_URL when that is not a transaction pooler), else as a transaction-scoped lock
 * held open while the migrations run (see withAdvisoryLock in client.ts).
 */
const MIGRATION_LOCK = 0x0b1e_7e01;

export function migrationsFolder(): string {
  return join(packageRoot(), "schema", "migrations");
}

/** Applies pending migrations; the same code runs at startup and in `cli migrate`, for both drivers. */
export async function migrate(handle: DbHandle): Promise<void> {
  const migrationsFolderPath = migrationsFolder();
  // The first contact with the database at startup (server and CLI): a misconfigured pooler is named here.
  await handle
    .withAdvisoryLock(MIGRATION_LOCK, async () => {
      if (handle.driver === "pglite") {
        await migratePglite(handle.db as unknown as PgliteDatabase<Schema>, { migrationsFolder: migrationsFolderPath });
      } else {
        await migratePg(handle.db as unknown as PostgresJsDatabase<Schema>, { migrationsFolder: migrationsFolderPath });
      }
    })
    .catch((err: unknown) => {
      throw explainPoolerRefusal(err);
    });
}
