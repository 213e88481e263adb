import { isIP, isIPv4, isIPv6 } from "node:net";

// Second line of defence: every value that reaches a Traefik rule or URL is re-checked here, even though the
// API already validated it, because rows can also arrive by hand-written SQL.

const ID_RE = /^[a-z0-9]+(?:_[a-z0-9]+)*$/;

/**
 * Ids of deployments and routes: lower-case alphanumeric groups joined by single `_` (`dep_abc123`), ≤ 64 chars.
 * This keeps `normalize()` (which maps `_` to `-`) one-to-one, so two ids can never share a Traefik name.
 */
export function checkId(id: string): string | undefined {
  return id.length <= 64 && ID_RE.test(id)
    ? undefined
    : "id must be 1–64 chars of lower-case letters and digits, in groups joined by single '_'";
}

const LABEL = "[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?";
const HOSTNAME_RE = new RegExp(`^(?:\\*\\.)?(?:${LABEL}\\.)+${LABEL}$`);
const NUMERIC_TLD_RE = /\.[0-9]+$/;

/** A normalized domain: lower-case ASCII (punycode), ≥ 2 labels, ≤ 253 chars, optional leading `*.` label. */
export function checkDomain(domain: string): string | undefined {
  if (domain.length > 253) {
    return "domain is longer than 253 characters";
  }
  if (!HOSTNAME_RE.test(domain)) {
    return "domain must be lower-case labels of [a-z0-9-] (a wildcard only as the whole leftmost label)";
  }
  if (NUMERIC_TLD_RE.test(domain)) {
    return "domain must not end in a numeric label";
  }
  return undefined;
}

export function isWildcard(domain: string): boolean {
  return domain.startsWith("*.");
}

// RFC 3986 path characters minus the quote; `%` only as a %XX escape of a printable byte.
const PATH_RE = /^\/(?:[A-Za-z0-9\-._~!$&()*+,;=:@/]|%(?:[2-7][0-9A-Fa-f]))*$/;

/** A path prefix that can sit inside PathPrefix(`…`) without escaping it. */
export function checkPathPrefix(path: string): string | undefined {
  if (Buffer.byteLength(path) > 1024) {
    return "path_prefix is longer than 1024 bytes";
  }
  if (!PATH_RE.test(path) || path.includes("%7F") || path.includes("%7f")) {
    return "path_prefix must start with '/' and hold only URL path characters";
  }
  if (/(^|\/)\.\.?(\/|$)/.test(path)) {
    return "path_prefix must not contain '.' or '..' segments";
  }
  if (path.includes("//")) {
    return "path_prefix must not contain '//'";
  }
  return undefined;
}

const DNS_NAME_RE =
  /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*$/;

/** A replica address: IPv4, IPv6 (without brackets) or a DNS name. */
export function checkAddress(address: string): string | undefined {
  const ok = address.includes(":") ? isIPv6(address) : isIPv4(address) || DNS_NAME_RE.test(address);
  if (ok) {
    return undefined;
  }
  return "address must be an IPv4 or IPv6 address or a DNS name";
}

export function checkPort(port: number): string | undefined {
  return Number.isInteger(port) && port >= 1 && port <= 65535 ? undefined : "port must be an integer 1–65535";
}

const RESOLVER_RE = /^[A-Za-z0-9_.-]{1,64}$/;

export function checkResolverName(name: string): string | undefined {
  return RESOLVER_RE.test(name) ? undefined : "certificate resolver name must be 1–64 of [A-Za-z0-9_.-]";
}

/** Host part of a URL: IPv6 goes in brackets. */
export function urlHost(address: string): string {
  // Only IPv6 literals contain ':' (validated addresses): skip node's large IPv6 regexp for everything else.
  return address.includes(":") ? `[${address}]` : address;
}

/** Why a trusted-source entry is invalid (`10.0.0.0/8`, `fd00::/8`, or a single address), or undefined. */
export function checkCidr(entry: string): string | undefined {
  const slash = entry.indexOf("/");
  const address = slash === -1 ? entry : entry.slice(0, slash);
  const family = isIP(address);
  if (family === 0) {
    return `${entry}: not an IP address or CIDR range`;
  }
  if (slash !== -1) {
    const bits = entry.slice(slash + 1);
    const max = family === 4 ? 32 : 128;
    if (!/^\d{1,3}$/.test(bits) || Number(bits) > max) {
      return `${entry}: prefix length must be 0–${max}`;
    }
  }
  return undefined;
}
