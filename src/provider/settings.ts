import type { Config } from "../config/env.js";
import type { Logger } from "../lib/logger.js";
import { proxyBindHost, resolveProxySecret } from "../proxy/config.js";
import { replicaAllowList } from "../render/address.js";
import type { RenderSettings } from "../render/types.js";

/** Weight-0 placeholder for deployments without a healthy replica (never dialled: Traefik skips weight 0). */
export const NO_REPLICA_URL = "http://127.0.0.1:9";

/** Where `least-conn` deployments are sent: the bundled proxy's address and the secret Traefik adds for it. */
export interface FallbackProxy {
  url: string;
  secret: string;
}

/** Render settings; `fallbackProxy` routes `least-conn` deployments through the bundled proxy. */
export function renderSettings(config: Config, fallbackProxy?: FallbackProxy): RenderSettings {
  return {
    ...(fallbackProxy ? { fallbackProxy } : {}),
    entryPoints: { web: config.ENTRYPOINT_WEB, websecure: config.ENTRYPOINT_WEBSECURE },
    noReplicaUrl: NO_REPLICA_URL,
    ...(config.TRAEFIK_VERSION === "3.6" ? {} : { traefikVersion: config.TRAEFIK_VERSION }),
    ...(config.TRAEFIK_HEALTHCHECK
      ? {
          traefikHealthCheck: {
            path: config.HEALTH_PATH,
            intervalSeconds: config.HEALTH_INTERVAL_SECONDS,
            timeoutSeconds: config.HEALTH_TIMEOUT_SECONDS,
            expectedStatus: config.HEALTH_EXPECTED_STATUS,
          },
        }
      : {}),
    ...(config.TRUSTED_PROXY_CIDRS.length > 0 ? { trustedProxyCidrs: config.TRUSTED_PROXY_CIDRS } : {}),
    ...(config.REPLICA_ALLOWED_CIDRS.length > 0
      ? { replicaAllowList: replicaAllowList(config.REPLICA_ALLOWED_CIDRS) }
      : {}),
  };
}

/** The proxy's shared secret when the fallback proxy is enabled (configured, or kept in DATA_DIR). */
export function fallbackProxySecret(config: Config, logger: Logger): string | undefined {
  return config.FALLBACK_ENABLED
    ? resolveProxySecret(config.FALLBACK_PROXY_SECRET, config.DATA_DIR, logger)
    : undefined;
}

/** Where Traefik reaches the proxy: FALLBACK_PROXY_URL, else the address it listens on. */
export function fallbackProxyUrl(config: Config, listening?: string): string {
  if (config.FALLBACK_PROXY_URL) {
    return config.FALLBACK_PROXY_URL.replace(/\/$/, "");
  }
  if (listening) {
    return listening;
  }
  const host = proxyBindHost(config);
  return `http://${host.includes(":") ? `[${host}]` : host}:${config.PROXY_PORT}`;
}

/**
 * The cert resolver a route gets when it names none (API writes, state files, previews alike): wildcards need DNS-01,
 * so they get DEFAULT_WILDCARD_CERT_RESOLVER; every other name DEFAULT_CERT_RESOLVER.
 */
export function defaultResolverFor(
  config: Pick<Config, "DEFAULT_CERT_RESOLVER" | "DEFAULT_WILDCARD_CERT_RESOLVER">,
): (domain: string) => string {
  return (domain) => (domain.startsWith("*.") ? config.DEFAULT_WILDCARD_CERT_RESOLVER : config.DEFAULT_CERT_RESOLVER);
}
