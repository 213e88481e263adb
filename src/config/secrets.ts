import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "../lib/logger.js";
import { parseEncryptionKey } from "../tls/crypto.js";
import type { Config } from "./env.js";

export const ADMIN_TOKEN_FILE = "admin-token";
export const PROVIDER_TOKEN_FILE = "provider-token";

/**
 * The admin API and the provider endpoint always need a token. Without ADMIN_TOKEN (PROVIDER_TOKEN) one is
 * generated once into DATA_DIR/admin-token (provider-token), mode 0600, and printed on that first start only;
 * later starts read it back.
 */
export function withGeneratedTokens(config: Config, logger: Logger, print: (line: string) => void): Config {
  const admin =
    config.ADMIN_TOKEN.length > 0 ? config.ADMIN_TOKEN : [tokenFile(config, ADMIN_TOKEN_FILE, "admin", logger, print)];
  const provider =
    config.PROVIDER_TOKEN.length > 0
      ? config.PROVIDER_TOKEN
      : [tokenFile(config, PROVIDER_TOKEN_FILE, "provider", logger, print)];
  return Object.freeze({ ...config, ADMIN_TOKEN: admin, PROVIDER_TOKEN: provider });
}

function tokenFile(config: Config, name: string, what: string, logger: Logger, print: (line: string) => void): string {
  const file = join(config.DATA_DIR, name);
  if (existsSync(file)) {
    logger.info(`${what} token read from data folder`, { file });
    return readFileSync(file, "utf8").trim();
  }
  mkdirSync(config.DATA_DIR, { recursive: true, mode: 0o700 });
  const token = randomBytes(32).toString("hex");
  writeFileSync(file, `${token}\n`, { mode: 0o600, flag: "wx" });
  print(
    `obiente-router: generated ${what === "admin" ? "an admin" : "a provider"} token (stored in ${file}, shown only now):\n  ${token}\n`,
  );
  logger.warn(`${what} token generated`, { file });
  return token;
}

export const CERT_KEY_FILE = "cert-encryption-key";

/**
 * The AES-256 key for uploaded private keys: CERT_ENCRYPTION_KEY, else DATA_DIR/cert-encryption-key (generated
 * once, 0600). Instances sharing a database must share the key, so with DATABASE_URL set a generated key warns.
 */
export function certEncryptionKey(config: Config, logger: Logger): Buffer {
  if (config.CERT_ENCRYPTION_KEY) {
    const key = parseEncryptionKey(config.CERT_ENCRYPTION_KEY);
    if (!key) {
      throw new Error("CERT_ENCRYPTION_KEY must be 32 bytes: 64 hex characters or base64");
    }
    return key;
  }
  const file = join(config.DATA_DIR, CERT_KEY_FILE);
  if (!existsSync(file)) {
    mkdirSync(config.DATA_DIR, { recursive: true, mode: 0o700 });
    writeFileSync(file, `${randomBytes(32).toString("hex")}\n`, { mode: 0o600, flag: "wx" });
    logger.info("certificate encryption key generated", { file });
  }
  const key = parseEncryptionKey(readFileSync(file, "utf8"));
  if (!key) {
    throw new Error(`${file} does not hold a 32-byte key`);
  }
  if (config.DATABASE_URL) {
    logger.warn(
      "CERT_ENCRYPTION_KEY is not set: using a key from the data folder; every instance sharing the database needs the same key",
      { file },
    );
  }
  return key;
}
