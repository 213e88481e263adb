#!/usr/bin/env node
import { parseArgs } from "node:util";
import { loadConfig } from "../config/env.js";
import { certEncryptionKey } from "../config/secrets.js";
import { openDb } from "../db/client.js";
import { migrate } from "../db/migrate.js";
import { loadSnapshot } from "../db/repo/snapshot.js";
import { errorLine, silentLogger } from "../lib/logger.js";
import { fallbackProxySecret, fallbackProxyUrl, renderSettings } from "../provider/settings.js";
import { renderDynamicConfig } from "../render/render.js";
import { type ConfigFormat, serialize } from "../render/serialize.js";

const USAGE = `usage: obiente-router <command>

  serve               run the service (same as npm start)
  proxy               run only the fallback least-CPU proxy (needs DATABASE_URL)
  migrate [--url postgres://…]
                      apply database migrations and exit
  render [--format json|yaml] [--url postgres://…]
                      print the Traefik dynamic config for the current database state

  --url overrides DATABASE_URL. Without either, the embedded PGlite in DATA_DIR is opened, which only one process
  may do at a time: while the service runs on it, read its config through the API (GET /traefik/config).
`;

/** The environment's config, with DATABASE_URL replaced by `--url` when given. */
function configWith(url: string | undefined) {
  return loadConfig(url === undefined ? process.env : { ...process.env, DATABASE_URL: url });
}

async function run(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "serve": {
      await import("../main.js");
      return -1; // main keeps the process alive
    }
    case "proxy": {
      await import("../proxy/main.js");
      return -1; // the proxy keeps the process alive
    }
    case "migrate": {
      const { values } = parseArgs({ args: rest, options: { url: { type: "string" } } });
      const config = configWith(values.url);
      const handle = await openDb(config);
      try {
        await migrate(handle);
        process.stdout.write(`migrations applied (${handle.driver})\n`);
      } finally {
        await handle.close();
      }
      return 0;
    }
    case "render": {
      const { values } = parseArgs({
        args: rest,
        options: { format: { type: "string", default: "yaml" }, url: { type: "string" } },
      });
      if (values.format !== "json" && values.format !== "yaml") {
        process.stderr.write("--format must be json or yaml\n");
        return 2;
      }
      const config = configWith(values.url);
      const handle = await openDb(config);
      try {
        await migrate(handle);
        const snap = await loadSnapshot(handle.db, certEncryptionKey(config, silentLogger));
        const secret = fallbackProxySecret(config, silentLogger);
        const result = renderDynamicConfig({
          ...snap,
          settings: renderSettings(config, secret ? { url: fallbackProxyUrl(config), secret } : undefined),
        });
        for (const w of result.warnings) {
          process.stderr.write(`skipped ${w.kind} ${w.id}: ${w.reason}\n`);
        }
        process.stdout.write(serialize(result.config, values.format as ConfigFormat));
      } finally {
        await handle.close();
      }
      return 0;
    }
    default:
      process.stderr.write(USAGE);
      return command === undefined || command === "help" || command === "--help" ? 0 : 2;
  }
}

run(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) {
      process.exit(code);
    }
  },
  (err: unknown) => {
    // A database error's message can quote query parameters: say what failed, not with which values.
    process.stderr.write(`obiente-router: ${errorLine(err)}\n`);
    process.exit(1);
  },
);
