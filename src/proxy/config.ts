import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "../lib/logger.js";

// The proxy's environment settings (PROXY_*, FALLBACK_*) live in src/config/env.ts with all the others.

export const PROXY_SECRET_FILE = "fallback-proxy-secret";

/** PROXY_HOST, else loopback: never HOST, which is often 0.0.0.0 for the API (issue 10 #1). */
export function proxyBindHost(config: { PROXY_HOST?: string | undefined }): string {
  return config.PROXY_HOST ?? "127.0.0.1";
}

/**
 * The shared secret between Traefik and the proxy: FALLBACK_PROXY_SECRET, else generated once into
 * DATA_DIR/fallback-proxy-secret (mode 0600) and read back later, like the admin token. The renderer must
 * use the same value in the headers middleware, so both sides call this.
 */
export function resolveProxySecret(configured: string | undefined, dataDir: string, logger: Logger): string {
  if (configured) {
    return configured;
  }
  const file = join(dataDir, PROXY_SECRET_FILE);
  if (existsSync(file)) {
    return readFileSync(file, "utf8").trim();
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const secret = randomBytes(32).toString("hex");
  try {
    writeFileSync(file, `${secret}\n`, { mode: 0o600, flag: "wx" });
  } catch (err) {
    if ((err as { code?: string }).code === "EEXIST") {
      return readFileSync(file, "utf8").trim(); // another process won the race
    }
    throw err;
  }
  logger.warn("fallback proxy secret generated", { file });
  return secret;
}
