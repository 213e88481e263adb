import { parseArgs } from "node:util";
import { type ConfigFormat, serialize } from "../render/serialize.js";
import { CliError, type Command, configWith, renderFromDatabase, withDatabase } from "./common.js";

const URL_NOTE = `  --url overrides DATABASE_URL. Without either, the embedded PGlite in DATA_DIR is opened, which only one process
  may do at a time: while the service runs on it, read its config through the API (GET /traefik/config).`;

export const migrateCommand: Command = {
  summary: "apply database migrations and exit",
  usage: `usage: obiente-router migrate [--url postgres://…]

  Applies the database migrations and exits.

${URL_NOTE}
`,
  async run(args) {
    const { values } = parseArgs({ args, options: { url: { type: "string" } } });
    await withDatabase(configWith(values.url), async (handle) => {
      process.stdout.write(`migrations applied (${handle.driver})\n`);
    });
    return 0;
  },
};

export const renderCommand: Command = {
  summary: "print the Traefik dynamic config for the current database state",
  usage: `usage: obiente-router render [--format json|yaml] [--url postgres://…]

  Prints the Traefik dynamic config for the current database state, as GET /traefik/config serves it.

${URL_NOTE}
`,
  async run(args) {
    const { values } = parseArgs({
      args,
      options: { format: { type: "string", default: "yaml" }, url: { type: "string" } },
    });
    if (values.format !== "json" && values.format !== "yaml") {
      throw new CliError("--format must be json or yaml");
    }
    const format: ConfigFormat = values.format;
    const config = configWith(values.url);
    await withDatabase(config, async (handle) => {
      const result = await renderFromDatabase(config, handle);
      for (const w of result.warnings) {
        process.stderr.write(`skipped ${w.kind} ${w.id}: ${w.reason}\n`);
      }
      process.stdout.write(serialize(result.config, format));
    });
    return 0;
  },
};
