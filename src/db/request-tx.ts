import { AsyncLocalStorage } from "node:async_hooks";
import type { Db, DbHandle } from "./client.js";

// One transaction per API write: the audit middleware (src/api/audit.ts) opens it, and every query the handler
// makes through the API's database handle runs inside it, so a write and its audit row commit together or not at
// all. Handlers and repo functions are unchanged: a repo function's own `db.transaction(…)` becomes a savepoint.

const current = new AsyncLocalStorage<Db>();

/** Runs `fn` with `tx` as the database every request-scoped handle resolves to. */
export function withRequestTx<T>(tx: Db, fn: () => Promise<T>): Promise<T> {
  return current.run(tx, fn);
}

/**
 * A handle whose `db` is the current request's transaction when there is one, else the pool. Only the API gets
 * it: background work (health rounds, the config cache) keeps the plain handle and never joins a request's
 * transaction.
 */
export function requestScoped(handle: DbHandle): DbHandle {
  const base = handle.db;
  const db = new Proxy(base, {
    get(_target, prop) {
      const real = current.getStore() ?? base;
      const value = Reflect.get(real, prop, real);
      return typeof value === "function" ? value.bind(real) : value;
    },
  });
  return Object.create(handle, { db: { value: db, enumerable: true } }) as DbHandle;
}
