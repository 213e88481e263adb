import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import type { Logger } from "../lib/logger.js";
import { checkCidr } from "./trust.js";

// The fallback proxy's settings. TODO(#6): merge into src/config/env.ts; until then this is the one other
// place that parses the environment (same rules: parsed once at startup, every problem reported at once).

const optional = z.string().trim().min(1).optional().catch(undefined); // "" counts as unset
const ms = (fallback: number, min: number) => z.coerce.number().int().min(min).max(3_600_000).default(fallback);

export const ProxyEnv = z.object({
  PROXY_PORT: z.coerce.number().int().min(0).max(65535).default(8081),
  /** Defaults to HOST. */
  PROXY_HOST: optional,
  /** Where Traefik reaches the proxy (the renderer's service URL for least-conn deployments). */
  FALLBACK_PROXY_URL: optional.refine((v) => v === undefined || /^https?:\/\/[^/]+\/?$/.test(v), {
    message: "must be an http(s) origin like http://obiente-router:8081",
  }),
  /** Shared secret in X-Obiente-Proxy-Secret; unset → generated once into DATA_DIR/fallback-proxy-secret. */
  FALLBACK_PROXY_SECRET: optional.refine((v) => v === undefined || v.length >= 16, {
    message: "must be at least 16 characters",
  }),
  /** Peers allowed to send X-Obiente-Deployment (comma list of CIDRs or addresses); unset = any peer. */
  FALLBACK_TRUSTED_CIDRS: z
    .string()
    .optional()
    .transform((v) =>
      (v ?? "")
        .split(",")
        .map((t) => t.trim())
        .filter((t) => t.length > 0),
    )
    .refine((list) => list.every((c) => checkCidr(c) === undefined), "must be a comma list of CIDR ranges or IPs"),
  PROXY_REFRESH_MS: ms(1000, 50),
  PROXY_CONNECT_TIMEOUT_MS: ms(3000, 1),
  PROXY_RESPONSE_TIMEOUT_MS: ms(60_000, 1),
});
export type ProxyConfig = z.infer<typeof ProxyEnv>;

/** Parses the proxy's part of the environment; throws one error listing every problem. */
export function loadProxyConfig(env: Record<string, string | undefined> = process.env): ProxyConfig {
  const r = ProxyEnv.safeParse(env);
  if (r.success) {
    return Object.freeze(r.data);
  }
  const lines = r.error.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`);
  throw new Error(`invalid environment\n${lines.join("\n")}`);
}

export const PROXY_SECRET_FILE = "fallback-proxy-secret";

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
