import { classifyRequestHeader, connectionListed, dropListed, H, isNamed } from "./headers.js";

/** One pass over a request's raw headers: what to forward, and what the proxy itself acts on. */
export interface RequestScan {
  /** End-to-end headers to forward, flat `[name, value, …]` (Host included, hop-by-hop and ours removed). */
  headers: string[];
  host: string | undefined;
  /** More than one Host header (RFC 9112 §3.2: answered with 400). */
  hostRepeated: boolean;
  deployment: string | undefined;
  secret: string | undefined;
  /** The routing or secret header appeared more than once: never trusted. */
  routingRepeated: boolean;
  forwardedFor: string | undefined;
  forwardedProto: string | undefined;
  forwardedHost: string | undefined;
  /** `Forwarded`, `X-Real-Ip` and other `X-Forwarded-*`, flat: forwarded only for a trusted peer. */
  forwardedOther: string[];
  upgrade: string | undefined;
  /** Content-Length above 0 or any Transfer-Encoding: the request has a body (never retried). */
  hasBody: boolean;
}

/** Headers a `Connection` list cannot remove: framing and routing depend on them. */
const PROTECTED = new Set(["host", "content-length", "transfer-encoding"]);

/** Splits a request's raw headers into what is forwarded and what the proxy reads. */
export function scanRequest(raw: readonly string[]): RequestScan {
  const scan: RequestScan = {
    headers: [],
    host: undefined,
    hostRepeated: false,
    deployment: undefined,
    secret: undefined,
    routingRepeated: false,
    forwardedFor: undefined,
    forwardedProto: undefined,
    forwardedHost: undefined,
    forwardedOther: [],
    upgrade: undefined,
    hasBody: false,
  };
  const out = scan.headers;
  let connection: string | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] as string;
    const value = raw[i + 1] as string;
    switch (classifyRequestHeader(name)) {
      case H.Pass:
        out.push(name, value);
        break;
      case H.Host:
        if (scan.host === undefined) {
          scan.host = value;
          out.push(name, value);
        } else {
          scan.hostRepeated = true;
        }
        break;
      case H.ContentLength:
        out.push(name, value);
        if (value !== "0") {
          scan.hasBody = true;
        }
        break;
      case H.TransferEncoding:
        scan.hasBody = true; // Node decodes the body; undici re-chunks the stream
        break;
      case H.ForwardedFor:
        scan.forwardedFor = scan.forwardedFor === undefined ? value : `${scan.forwardedFor}, ${value}`;
        break;
      case H.ForwardedProto:
        scan.forwardedProto ??= value;
        break;
      case H.ForwardedHost:
        scan.forwardedHost ??= value;
        break;
      case H.Deployment:
        scan.routingRepeated ||= scan.deployment !== undefined;
        scan.deployment = value;
        break;
      case H.Secret:
        scan.routingRepeated ||= scan.secret !== undefined;
        scan.secret = value;
        break;
      case H.Connection:
        connection = connection === undefined ? value : `${connection}, ${value}`;
        break;
      case H.Upgrade:
        scan.upgrade = value;
        break;
      case H.ForwardedOther:
        scan.forwardedOther.push(name, value);
        break;
      default:
        break; // hop-by-hop
    }
  }
  // Anything beyond "keep-alive"/"close"/"upgrade" names more hop-by-hop headers (rare: slow path). Never the
  // ones the request is framed and routed by: `Connection: host` must not strip Host (issue 10 #9).
  const listed = connectionListed(connection).filter((n) => !PROTECTED.has(n));
  if (listed.length > 0) {
    dropListed(out, listed);
    dropListed(scan.forwardedOther, listed);
  }
  return scan;
}

/**
 * Adds X-Forwarded-For, -Proto and -Host. From a trusted peer (FALLBACK_TRUSTED_CIDRS, else loopback) the
 * client chain is kept (the peer appended) with its -Proto, -Host, `Forwarded` and other `X-Forwarded-*`; from
 * anyone else all of those are dropped and replaced with what this listener saw, so a client cannot claim an
 * address or scheme.
 */
export function appendForwarding(scan: RequestScan, peer: string | undefined, trusted: boolean): void {
  const out = scan.headers;
  const xff = trusted ? scan.forwardedFor : undefined;
  if (peer !== undefined) {
    out.push("x-forwarded-for", xff === undefined ? peer : `${xff}, ${peer}`);
  } else if (xff !== undefined) {
    out.push("x-forwarded-for", xff);
  }
  out.push("x-forwarded-proto", trusted && scan.forwardedProto !== undefined ? scan.forwardedProto : "http");
  const host = trusted && scan.forwardedHost !== undefined ? scan.forwardedHost : scan.host;
  if (host !== undefined) {
    out.push("x-forwarded-host", host);
  }
  if (trusted) {
    out.push(...scan.forwardedOther);
  }
}

/** An HTTP/2 request (gRPC over h2c): its pseudo-headers and the same scan as an HTTP/1 request's headers. */
export interface H2RequestScan {
  method: string;
  /** `:path`; empty when missing (refused like any non-origin-form target). */
  path: string;
  scan: RequestScan;
  /** The client sent `te: trailers` (gRPC requires it; the only TE value HTTP/2 allows, RFC 9113 §8.2.2). */
  teTrailers: boolean;
}

/**
 * Scans an HTTP/2 request's flat raw headers. `:authority` counts as Host (RFC 9113 §8.3.1) when no Host header
 * came with it; the other pseudo-headers are read here and never forwarded as they are.
 */
export function scanH2Request(raw: readonly string[]): H2RequestScan {
  let method = "GET";
  let path = "";
  let authority: string | undefined;
  let teTrailers = false;
  let hasHost = false;
  const regular: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] as string;
    const value = raw[i + 1] as string;
    if (name.charCodeAt(0) === 58 /* : */) {
      if (name === ":method") {
        method = value;
      } else if (name === ":path") {
        path = value;
      } else if (name === ":authority") {
        authority = value;
      }
      continue;
    }
    if (isNamed(name, "te")) {
      teTrailers ||= value.trim().toLowerCase() === "trailers";
    } else if (isNamed(name, "host")) {
      hasHost = true;
    }
    regular.push(name, value);
  }
  if (!hasHost && authority !== undefined) {
    regular.push("host", authority);
  }
  return { method, path, scan: scanRequest(regular), teTrailers };
}
