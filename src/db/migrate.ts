import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { PgliteDatabase } from "drizzle-orm/pglite";
import { migrate as migratePglite } from "drizzle-orm/pglite/migrator";
import type { PostgresJsDatabase } from "drizzle-orm/postgres-js";
import { migrate as migratePg } from "drizzle-orm/postgres-js/migrator";
import type { DbHandle, Schema } from "./client.js";

const MIGRATION_LOCK = 0x0b1e_7e01; // serializes migrations of several instances starting at once

/** Finds schema/migrations by walking up from this file (works from src/ under tsx and from dist/). */
export function migrationsFolder(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, "schema", "migrations");
    if (existsSync(join(candidate, "meta", "_journal.json"))) {
      return candidate;
    }
    dir = dirname(dir);
  }
  throw new Error("schema/migrations not found");
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
