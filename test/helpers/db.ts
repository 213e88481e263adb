import { randomBytes } from "node:crypto";
import postgres from "postgres";
import { type DbHandle, openDb } from "../../src/db/client.js";
import { migrate } from "../../src/db/migrate.js";

export type Driver = "pglite" | "postgres";

/** PGlite always; PostgreSQL too when DATABASE_URL is set (CI sets it to the local server). */
export const DRIVERS: Driver[] = process.env.DATABASE_URL ? ["pglite", "postgres"] : ["pglite"];

export interface TestDb {
  handle: DbHandle;
  /** Connection URL of the fresh database (postgres only). */
  url: string | undefined;
  close(): Promise<void>;
}

/** A fresh, migrated database per call: in-memory PGlite, or a new database on the DATABASE_URL server. */
export async function makeTestDb(driver: Driver): Promise<TestDb> {
  if (driver === "pglite") {
    const handle = await openDb({ DATA_DIR: "", inMemory: true });
    await migrate(handle);
    return { handle, url: undefined, close: () => handle.close() };
  }
  const base = process.env.DATABASE_URL;
  if (!base) {
    throw new Error("DATABASE_URL is required for the postgres driver");
  }
  const name = `obiente_test_${randomBytes(6).toString("hex")}`;
  const admin = postgres(base, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database "${name}"`);
  const url = new URL(base);
  url.pathname = `/${name}`;
  const handle = await openDb({ DATABASE_URL: url.toString(), DATA_DIR: "" });
  await migrate(handle);
  return {
    handle,
    url: url.toString(),
    async close() {
      await handle.close();
      await admin.unsafe(`drop database if exists "${name}" with (force)`);
      await admin.end();
    },
  };
}
