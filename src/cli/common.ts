import { type Config, loadConfig } from "../config/env.js";
import { certEncryptionKey } from "../config/secrets.js";
import { type DbHandle, openDb } from "../db/client.js";
import { migrate } from "../db/migrate.js";
import { loadSnapshot } from "../db/repo/snapshot.js";
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

/** A failure the user can fix: printed as one line (no stack), exits with `exitCode` (2 = invalid input). */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 2,
  ) {
    super(message);
  }
}

/** `--url` names a running instance (http/https) rather than a database (postgres://). */
export function isHttpUrl(url: string | undefined): url is string {
  return url !== undefined && /^https?:\/\//i.test(url);
}

/** The environment's config, with DATABASE_URL replaced by a `--url postgres://…` when given. */
export function configWith(url: string | undefined, env: NodeJS.ProcessEnv = process.env): Config {
  return loadConfig(url === undefined ? env : { ...env, DATABASE_URL: url });
}

/** Opens the database (PostgreSQL or the PGlite folder, which must not be in use), migrates it, runs `fn`, closes. */
export async function withDatabase<T>(config: Config, fn: (handle: DbHandle) => Promise<T>): Promise<T> {
  const handle = await openDb(config);
  try {
    await migrate(handle);
    return await fn(handle);
  } finally {
    await handle.close();
  }
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
