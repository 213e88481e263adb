import { join } from "node:path";
import type { PgliteDatabase } from "drizzle-orm/pglite";
import { migrate as migratePglite } from "drizzle-orm/pglite/migrator";
import type { PostgresJsDatabase } from "drizzle-orm/postgres-js";
import { migrate as migratePg } from "drizzle-orm/postgres-js/migrator";
import { packageRoot } from "../lib/package-root.js";
import type { DbHandle, Schema } from "./client.js";

const MIGRATION_LOCK = 0x0b1e_7e01; // serializes migrations of several instances starting at once

export function migrationsFolder(): string {
  return join(packageRoot(), "schema", "migrations");
}

/** Applies pending migrations; the same code runs at startup and in `cli migrate`, for both drivers. */
export async function migrate(handle: DbHandle): Promise<void> {
  const migrationsFolderPath = migrationsFolder();
  await handle.withAdvisoryLock(MIGRATION_LOCK, async () => {
    if (handle.driver === "pglite") {
      await migratePglite(handle.db as unknown as PgliteDatabase<Schema>, { migrationsFolder: migrationsFolderPath });
    } else {
      await migratePg(handle.db as unknown as PostgresJsDatabase<Schema>, { migrationsFolder: migrationsFolderPath });
    }
  });
}
