import { loadConfig } from "./config/env.js";
import { withGeneratedTokens } from "./config/secrets.js";
import { survivePostgresClosedSocketWrites } from "./lib/driver-guard.js";
import { errorLine, loggerFor } from "./lib/logger.js";
import { exitOnSignals } from "./lib/shutdown.js";
import { startServer } from "./server.js";

/** Composition root for `npm start`: config, server, signals. */
export async function main(): Promise<void> {
  const env = loadConfig();
  const logger = loggerFor(env);
  survivePostgresClosedSocketWrites(logger);
  const config = withGeneratedTokens(env, logger, (line) => process.stderr.write(line));
  const running = await startServer(config, { logger });
  exitOnSignals(logger, () => running.close());
}

main().catch((err: unknown) => {
  // Startup errors (bad environment, unreachable database) are the operator's to fix: message, no stack.
  process.stderr.write(`obiente-router: ${errorLine(err)}\n`); // never a database error's message (parameters)
  process.exit(1);
});
