import { isIP, isIPv4, isIPv6 } from "node:net";
import { getPublicSuffix } from "tldts";
import { type ReplicaAllowList, refusedIPv4, refusedIPv6, refusedName } from "./address.js";

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

/** A normalized domain's syntax: lower-case ASCII (punycode), ≥ 2 labels, ≤ 253 chars, optional leading `*.`. */
export function checkDomainSyntax(domain: string): string | undefined {
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

// Hostnames are already validated: skip tldts' own extraction and checks (~4× faster).
const PSL = {
  allowPrivateDomains: true,
  extractHostname: false,
  validateHostname: false,
  detectIp: false,
  mixedInputs: false,
} as const;

/** Whether `domain` is itself a public suffix (ICANN or private section: `co.uk`, `github.io`). */
export function isPublicSuffix(domain: string): boolean {
  return getPublicSuffix(domain, PSL) === domain;
}

/**
 * A domain render accepts: valid syntax, and no wildcard directly under a public suffix (`*.co.uk` would catch
 * every unclaimed host under it). Only wildcards pay the suffix lookup (~0.5 µs), so render stays fast; the API
 * also refuses a bare public suffix and checks IDN labels (src/api/domain-policy.ts).
 */
export function checkDomain(domain: string): string | undefined {
  const reason = checkDomainSyntax(domain);
  if (reason === undefined && isWildcard(domain) && isPublicSuffix(domain.slice(2))) {
    return `a wildcard directly under the public suffix ${domain.slice(2)} is not allowed`;
  }
  return reason;
}

export function isWildcard(domain: string): boolean {
  return domain.startsWith("*.");
}

// RFC 3986 path characters minus the quote; `%` only as a %XX escape of a printable byte.
const PATH_RE = /^\/(?:[A-Za-z0-9\-._~!$&()*+,;=:@/]|%(?:[2-7][0-9A-Fa-f]))*$/;

// Traefik routes on the request path with every %XX decoded except these upper-case escapes of RFC 3986 reserved
// characters and '%' (traefik v3.7.9 pkg/muxer/http/mux.go, `reservedCharacters` and `withRoutingPath`).
export const RESERVED_ESCAPES: ReadonlySet<string> = new Set(
  [
    "3A",
    "2F",
    "3F",
    "23",
    "5B",
    "5D",
    "40",
    "21",
    "24",
    "26",
    "27",
    "28",
    "29",
    "2A",
    "2B",
    "2C",
    "3B",
    "3D",
    "25",
  ].map((h) => `%${h}`),
);
// Characters a stored prefix may hold literally (PATH_RE's set, without '%').
const PATH_CHAR_RE = /^[A-Za-z0-9\-._~!$&()*+,;=:@/]$/;

/**
 * A path prefix written the way Traefik compares it: unreserved escapes decoded (`%41` → `A`), reserved ones
 * upper-cased (`%2f` → `%2F`). Returns the reason instead when an escape decodes to a character a prefix cannot
 * hold (`%20`, `%22`, …) or is malformed. A prefix in any other form can never match (issue 9 #5).
 */
export function traefikPathPrefix(path: string): { value: string } | { reason: string } {
  if (!path.includes("%")) {
    return { value: path };
  }
  let out = "";
  for (let i = 0; i < path.length; i++) {
    const c = path[i] as string;
    if (c !== "%") {
      out += c;
      continue;
    }
    const hex = path.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) {
      return { reason: "path_prefix has a '%' that does not start a %XX escape" };
    }
    const esc = `%${hex.toUpperCase()}`;
    const decoded = String.fromCharCode(Number.parseInt(hex, 16));
    if (RESERVED_ESCAPES.has(esc)) {
      out += esc;
    } else if (PATH_CHAR_RE.test(decoded)) {
      out += decoded;
    } else {
      return {
        reason: `path_prefix escape %${hex} stands for ${JSON.stringify(decoded)}, which Traefik compares decoded and a path prefix cannot hold`,
      };
    }
    i += 2;
  }
  return { value: out };
}

/** A path prefix that can sit inside PathPrefix(`…`) without escaping it, in the form Traefik compares. */
export function checkPathPrefix(path: string): string | undefined {
  if (Buffer.byteLength(path) > 1024) {
    return "path_prefix is longer than 1024 bytes";
  }
  if (!PATH_RE.test(path) || path.includes("%7F") || path.includes("%7f")) {
    return "path_prefix must start with '/' and hold only URL path characters";
  }
  const traefik = traefikPathPrefix(path);
  if ("reason" in traefik) {
    return traefik.reason;
  }
  if (traefik.value !== path) {
    // Rows can be written by hand: the API stores the normalized form, so only such a row gets here.
    return `path_prefix must be written as Traefik compares it (${traefik.value}): it decodes every escape except upper-case reserved ones, so ${path} never matches`;
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
// WHATWG URL's "ends in a number": a last label of digits or 0x-hex makes a host an IPv4 alias (`2130706433`,
// `0x7f000001`, `127.1`) that node's URL parser turns into an address while Go (Traefik) looks it up as a name.
const NUMERIC_LAST_LABEL_RE = /(?:^|\.)(?:0x[0-9a-f]*|[0-9]+)$/i;

/**
 * A replica address in canonical form: a dotted-quad IPv4 without leading zeros, an IPv6 literal without brackets
 * or zone id, or a DNS name whose last label is not numeric.
 */
export function checkAddressForm(address: string): string | undefined {
  if (address.includes(":")) {
    if (address.includes("%")) {
      return "address must not carry an IPv6 zone id (%…)";
    }
    return isIPv6(address) ? undefined : "address must be an IPv4 or IPv6 address or a DNS name";
  }
  if (isIPv4(address)) {
    return undefined;
  }
  if (!DNS_NAME_RE.test(address)) {
    return "address must be an IPv4 or IPv6 address or a DNS name";
  }
  if (NUMERIC_LAST_LABEL_RE.test(address)) {
    return "address is a numeric host alias, not a DNS name: write the IPv4 address as a dotted quad without leading zeros (127.0.0.1)";
  }
  return undefined;
}

/**
 * A replica address that may be dialled: canonical form (`checkAddressForm`), and not link-local, cloud metadata,
 * unspecified, multicast or broadcast unless `allowed` (REPLICA_ALLOWED_CIDRS) covers it. One check for the API,
 * render, the health checker and the proxy.
 */
export function checkAddress(address: string, allowed?: ReplicaAllowList): string | undefined {
  // Dispatch on the form once (render checks every replica): the fast paths skip re-detecting the family.
  if (!address.includes(":") && isIPv4(address)) {
    return refusedIPv4(address, allowed);
  }
  const form = checkAddressForm(address);
  if (form !== undefined) {
    return form;
  }
  return address.includes(":") ? refusedIPv6(address, allowed) : refusedName(address);
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
