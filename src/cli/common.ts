import { existsSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { type Config, loadConfig } from "../config/env.js";
import { certEncryptionKey } from "../config/secrets.js";
import { type DbHandle, openDb } from "../db/client.js";
import { isDatabaseUnavailable } from "../db/errors.js";
import { migrate } from "../db/migrate.js";
import { loadSnapshot } from "../db/repo/snapshot.js";
import { LockHeld } from "../lib/lock.js";
import { silentLogger } from "../lib/logger.js";
import { fallbackProxySecret, fallbackProxyUrl, renderSettings } from "../provider/settings.js";
import { renderDynamicConfig } from "../render/render.js";
import type { RenderResult } from "../render/types.js";

/** One CLI command: its usage text (printed by `--help` without touching anything) and what it runs. */
export interface Command {
  /** One line for the command list. */
  summary: string;
  /** The full usage, `usage: obiente-router <name> …` first. */
  usage: string;
  /** Resolves to the exit code, or -1 when the command keeps the process alive (a server, `--watch`). */
  run(args: string[]): Promise<number>;
}

/** Exit codes shared by every command (the table in `obiente-router --help` and the README). */
export const EXIT = {
  ok: 0,
  /** diff and export --check: the state differs. serve / proxy: could not start. */
  differs: 1,
  /** The user's input: options, files, environment, a refused token, a missing --init. */
  invalid: 2,
  /** The database or the instance could not be reached, or the PGlite folder is in use. */
  unreachable: 3,
  /** Anything else: a bug. */
  failed: 4,
} as const;

export const EXIT_TABLE = `exit codes:
  0  done; diff and export --check: no differences
  1  diff and export --check: differences found; serve and proxy: could not start
  2  invalid input: unknown command or option, a bad value, an invalid file or environment, a refused token,
     no database where one was expected (pass --init)
  3  the database or the instance could not be reached, or the PGlite folder is in use by another process
  4  an unexpected failure (please report it)`;

/** A failure the user can fix: printed as one line (no stack), exits with `exitCode` (2 = invalid input). */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.invalid,
  ) {
    super(message);
  }
}

/** Options every command that can open the database takes: `--url` (a database, or an instance) and `--init`. */
export const DATABASE_OPTIONS = {
  url: { type: "string" },
  init: { type: "boolean", default: false },
} as const;

/** `--url` names a running instance (http/https) rather than a database (postgres://). */
export function isHttpUrl(url: string | undefined): url is string {
  return url !== undefined && /^https?:\/\//i.test(url);
}

/** The environment's config, with DATABASE_URL replaced by a `--url postgres://…` when given. */
export function configWith(url: string | undefined, env: NodeJS.ProcessEnv = process.env): Config {
  try {
    return loadConfig(url === undefined ? env : { ...env, DATABASE_URL: url });
  } catch (err) {
    throw new CliError(err instanceof Error ? err.message : "invalid environment");
  }
}

/** `DATA_DIR=./data (/abs/data)`: as configured, and where that is from here. */
function dataDirName(config: Config): string {
  const abs = resolve(config.DATA_DIR);
  return isAbsolute(config.DATA_DIR) ? `DATA_DIR=${abs}` : `DATA_DIR=${config.DATA_DIR} (${abs})`;
}

/**
 * Refuses (exit 2) to create an embedded database where none exists unless `--init` says so: run from another
 * directory, the CLI would otherwise open a fresh, empty `./data` (with new secrets) and report on that.
 */
export function requireDataFolder(config: Config, init: boolean): void {
  if (init || config.DATABASE_URL || existsSync(join(config.DATA_DIR, "pglite"))) {
    return;
  }
  throw new CliError(
    `no database in ${dataDirName(config)}; run from the right directory, set DATA_DIR or DATABASE_URL, or pass --init to create one`,
  );
}

/**
 * With PostgreSQL, a render still reads two secrets from the environment or DATA_DIR, generating what is missing.
 * Into a DATA_DIR that does not exist (another directory) that would be a new folder with new secrets, and a
 * config that does not match the service's (another fallback-proxy secret): refused (exit 2) unless `--init`.
 */
export function requireRenderSecrets(config: Config, init: boolean): void {
  if (init || existsSync(config.DATA_DIR)) {
    return;
  }
  const missing = [
    config.CERT_ENCRYPTION_KEY ? "" : "CERT_ENCRYPTION_KEY",
    config.FALLBACK_ENABLED && !config.FALLBACK_PROXY_SECRET ? "FALLBACK_PROXY_SECRET" : "",
  ].filter(Boolean);
  if (missing.length > 0) {
    throw new CliError(
      `no ${missing.join(" or ")} in the environment and no ${dataDirName(config)} holding them; set them as the service has them, run from its directory, or pass --init to generate new ones`,
    );
  }
}

export interface DatabaseUse {
  /** `--init`: create the embedded database when DATA_DIR has none. */
  init?: boolean;
  /** The command renders: the secrets a render reads must not be generated into a new folder either. */
  renders?: boolean;
  /** Appended to the "PGlite folder in use" line: this command's way round it (its `--url http://…`). */
  inUseHint?: string;
}

/**
 * Opens the database (PostgreSQL, or the PGlite folder, which must exist unless `init` and not be in use), migrates
 * it, runs `fn`, closes. "In use" and "unreachable" become one-line CliErrors, exit 3.
 */
export async function withDatabase<T>(
  config: Config,
  fn: (handle: DbHandle) => Promise<T>,
  use: DatabaseUse = {},
): Promise<T> {
  requireDataFolder(config, use.init === true);
  if (use.renders) {
    requireRenderSecrets(config, use.init === true);
  }
  let handle: DbHandle;
  try {
    handle = await openDb(config);
  } catch (err) {
    if (err instanceof LockHeld) {
      throw new CliError(use.inUseHint ? `${err.message} ${use.inUseHint}` : err.message, EXIT.unreachable);
    }
    throw unreachable(err);
  }
  try {
    await migrate(handle);
    return await fn(handle);
  } catch (err) {
    throw unreachable(err);
  } finally {
    await handle.close();
  }
}

/** An outage as its one-line CliError (exit 3); anything else unchanged. */
function unreachable(err: unknown): unknown {
  return isDatabaseUnavailable(err) && !(err instanceof CliError)
    ? new CliError("could not reach the database (check --url / DATABASE_URL)", EXIT.unreachable)
    : err;
}

/** Renders the current database state as the service would serve it (settings from the environment). */
export async function renderFromDatabase(config: Config, handle: DbHandle): Promise<RenderResult> {
  const snap = await loadSnapshot(handle.db, certEncryptionKey(config, silentLogger));
  const secret = fallbackProxySecret(config, silentLogger);
  return renderDynamicConfig({
    ...snap,
    settings: renderSettings(config, secret ? { url: fallbackProxyUrl(config), secret } : undefined),
  });
}
