import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "../lib/logger.js";
import type { Config } from "./env.js";

export const ADMIN_TOKEN_FILE = "admin-token";

/**
 * The admin API always needs a token. Without ADMIN_TOKEN one is generated once into DATA_DIR/admin-token
 * (mode 0600) and printed on that first start only; later starts read it back.
 */
export function withAdminToken(config: Config, logger: Logger, print: (line: string) => void): Config {
  if (config.ADMIN_TOKEN.length > 0) {
    return config;
  }
  const file = join(config.DATA_DIR, ADMIN_TOKEN_FILE);
  let token: string;
  if (existsSync(file)) {
    token = readFileSync(file, "utf8").trim();
    logger.info("admin token read from data folder", { file });
  } else {
    mkdirSync(config.DATA_DIR, { recursive: true, mode: 0o700 });
    token = randomBytes(32).toString("hex");
    writeFileSync(file, `${token}\n`, { mode: 0o600, flag: "wx" });
    print(`obiente-router: generated an admin token (stored in ${file}, shown only now):\n  ${token}\n`);
    logger.warn("admin token generated", { file });
  }
  return Object.freeze({ ...config, ADMIN_TOKEN: [token] });
}

/** Bind addresses other than loopback expose the provider endpoint to the network. */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host.startsWith("127.");
}
