import { isClosedSocketWrite } from "../db/errors.js";
import type { Logger } from "./logger.js";

/**
 * The process's last line of defence. postgres.js can throw its closed-socket TypeError from a `setImmediate` when
 * the database goes away (see isClosedSocketWrite): nothing can catch it, and without this the whole service —
 * which keeps serving the last good config through a database outage — would die with it. That one error is logged
 * and survived (the query it belonged to fails by its deadline, DB_QUERY_TIMEOUT_MS); anything else uncaught is
 * logged and exits 1, as Node would.
 */
export function survivePostgresClosedSocketWrites(logger: Logger): void {
  let lastLogged = 0;
  process.on("uncaughtException", (err) => {
    if (isClosedSocketWrite(err)) {
      const now = Date.now();
      if (now - lastLogged > 60_000) {
        lastLogged = now;
        logger.warn(
          "database connection closed under a pending write (postgres.js, porsager/postgres#1154); continuing",
        );
      }
      return;
    }
    logger.error("uncaught exception; exiting", { err });
    process.exit(1);
  });
}
