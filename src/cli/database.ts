import { parseArgs } from "node:util";
import { type ConfigFormat, serialize } from "../render/serialize.js";
import {
  CliError,
  type Command,
  configWith,
  DATABASE_OPTIONS,
  EXIT_TABLE,
  isHttpUrl,
  renderFromDatabase,
  withDatabase,
} from "./common.js";

const URL_NOTE = `  --url postgres://…   the database (overrides DATABASE_URL). Without either, the embedded PGlite in
                       DATA_DIR/pglite is opened, which only one process may do at a time: while the service
                       runs on it, read its config through the API (GET /traefik/config).
  --init               create the embedded database when DATA_DIR has none (otherwise refused, exit 2)`;

/** `--url` here is a database: a running instance has its own endpoint for this. */
function databaseUrl(url: string | undefined, instead: string): string | undefined {
  if (isHttpUrl(url)) {
    throw new CliError(`--url must be a database URL (postgres://…); for a running instance use ${instead}`);
  }
  return url;
}

export const migrateCommand: Command = {
  summary: "apply database migrations and exit",
  usage: `usage: obiente-router migrate [--url postgres://…] [--init]

  Applies the database migrations and exits; prints "migrations applied (<driver>)".

${URL_NOTE}

${EXIT_TABLE}
`,
  async run(args) {
    const { values } = parseArgs({ args, options: DATABASE_OPTIONS });
    const config = configWith(databaseUrl(values.url, "its own startup (it migrates when it starts)"));
    await withDatabase(
      config,
      async (handle) => {
        process.stdout.write(`migrations applied (${handle.driver})\n`);
      },
      { init: values.init },
    );
    return 0;
  },
};

export const renderCommand: Command = {
  summary: "print the Traefik dynamic config for the current database state",
  usage: `usage: obiente-router render [--format json|yaml] [--url postgres://…] [--init]

  Prints the Traefik dynamic config for the current database state, as GET /traefik/config serves it (stdout);
  rows it skips are named on stderr. The settings (entry points, resolvers, the fallback proxy's secret) come
  from the environment as for the service: with DATABASE_URL, run it with the service's CERT_ENCRYPTION_KEY and
  FALLBACK_PROXY_SECRET (or its DATA_DIR), or the output will not match what the service serves.

  --format json|yaml   default yaml
${URL_NOTE}

${EXIT_TABLE}
`,
  async run(args) {
    const { values } = parseArgs({
      args,
      options: { ...DATABASE_OPTIONS, format: { type: "string", default: "yaml" } },
    });
    if (values.format !== "json" && values.format !== "yaml") {
      throw new CliError("--format must be json or yaml");
    }
    const format: ConfigFormat = values.format;
    const config = configWith(
      databaseUrl(values.url, "curl -H 'Authorization: Bearer <PROVIDER_TOKEN>' <url>/traefik/config"),
    );
    await withDatabase(
      config,
      async (handle) => {
        const result = await renderFromDatabase(config, handle);
        for (const w of result.warnings) {
          process.stderr.write(`skipped ${w.kind} ${w.id}: ${w.reason}\n`);
        }
        process.stdout.write(serialize(result.config, format));
      },
      { init: values.init, renders: true },
    );
    return 0;
  },
};
