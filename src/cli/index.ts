#!/usr/bin/env node
import { parseArgs } from "node:util";
import { loadConfig } from "../config/env.js";
import { certEncryptionKey } from "../config/secrets.js";
import { openDb } from "../db/client.js";
import { migrate } from "../db/migrate.js";
import { loadSnapshot } from "../db/repo/snapshot.js";
import { silentLogger } from "../lib/logger.js";
import { resolveProxySecret } from "../proxy/config.js";
import { renderDynamicConfig } from "../render/render.js";
import { type ConfigFormat, serialize } from "../render/serialize.js";
import { fallbackProxyUrl, renderSettings } from "../server.js";

const USAGE = `usage: obiente-router <command>

  serve               run the service (same as npm start)
  proxy               run only the fallback least-CPU proxy (needs DATABASE_URL)
  migrate             apply database migrations and exit
  render [--format json|yaml]
                      print the Traefik dynamic config for the current database state
`;

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
      const config = loadConfig();
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
      const { values } = parseArgs({ args: rest, options: { format: { type: "string", default: "yaml" } } });
      if (values.format !== "json" && values.format !== "yaml") {
        process.stderr.write("--format must be json or yaml\n");
        return 2;
      }
      const config = loadConfig();
      const handle = await openDb(config);
      try {
        await migrate(handle);
        const snap = await loadSnapshot(handle.db, certEncryptionKey(config, silentLogger));
        const secret = config.FALLBACK_ENABLED
          ? resolveProxySecret(config.FALLBACK_PROXY_SECRET, config.DATA_DIR, silentLogger)
          : undefined;
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
    process.stderr.write(`obiente-router: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
