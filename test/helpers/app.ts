import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Config, loadConfig } from "../../src/config/env.js";

export const PROVIDER_TOKEN = "provider-token-0123456789abcdef";
export const ADMIN_TOKEN = "admin-token-0123456789abcdef0123";

/** A config for tests: ephemeral port on loopback, quick refresh, quiet logs. */
export function testConfig(over: Record<string, string> = {}): Config {
  return loadConfig({
    PORT: "0",
    HOST: "127.0.0.1",
    DATA_DIR: mkdtempSync(join(tmpdir(), "obiente-test-")),
    PROVIDER_TOKEN,
    ADMIN_TOKEN,
    CONFIG_REFRESH_SECONDS: "0.2",
    RENDER_COALESCE_MS: "10",
    LOG_LEVEL: "error",
    // Off unless a test turns it on: test rows use documentation/private addresses that must never be dialled.
    HEALTH_ENABLED: "false",
    // The proxy has its own tests; here it would only compete for a port.
    FALLBACK_ENABLED: "false",
    PROXY_PORT: "0",
    ...over,
  });
}

/** Polls `fn` until it returns a truthy value or the bounded wait runs out. */
export async function waitFor<T>(fn: () => Promise<T | undefined | false>, timeoutMs = 5000, stepMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) {
      return v;
    }
    if (Date.now() > deadline) {
      throw new Error(`condition not met within ${timeoutMs} ms`);
    }
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
