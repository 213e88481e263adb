// Special-use names that no public certificate authority will ever issue for: a route on one of them with TLS on
// would only send Traefik's ACME resolver into failing orders (and Let's Encrypt's failed-validation rate limit).

/**
 * Top-level names reserved for local or private use: `localhost` and `test` (RFC 6761 §6.2, §6.3), `local`
 * (multicast DNS, RFC 6762 §3) and `internal` (reserved by ICANN for private use, 2024).
 */
export const RESERVED_TLDS = ["internal", "local", "localhost", "test"] as const;

/** Whether a domain (optionally `*.`, any case, a trailing dot allowed) is or ends in a reserved name. */
export function isReservedName(domain: string): boolean {
  const name = domain.trim().toLowerCase().replace(/\.$/, "");
  const tld = name.slice(name.lastIndexOf(".") + 1);
  return (RESERVED_TLDS as readonly string[]).includes(tld);
}

/**
 * The `ssl_enabled` a route gets when the request does not say: off for reserved names (no CA issues for them,
 * so a local try-out does not send Traefik to Let's Encrypt), on for every other name.
 */
export function defaultSslEnabled(domain: string): boolean {
  return !isReservedName(domain);
}
