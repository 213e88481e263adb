// Header handling on the request path. Everything here runs per request, so it walks Node's flat `rawHeaders`
// arrays with length switches and char compares: no regex, no lower-casing copies, no header objects.

/** Set by Traefik's headers middleware: the deployment to route to (trusted only with the secret). */
export const DEPLOYMENT_HEADER = "x-obiente-deployment";
/** Set by Traefik's headers middleware: the shared secret proving the request came through the edge. */
export const SECRET_HEADER = "x-obiente-proxy-secret";

/** Whether `name` (any case) equals `lower` (a lower-case ASCII literal), without allocating. */
export function isNamed(name: string, lower: string): boolean {
  if (name.length !== lower.length) {
    return false;
  }
  for (let i = 0; i < lower.length; i++) {
    // `| 0x20` folds A-Z onto a-z; the literals hold only a-z, 0-9 and '-', which the fold leaves alone.
    if ((name.charCodeAt(i) | 0x20) !== lower.charCodeAt(i)) {
      return false;
    }
  }
  return true;
}

function startsWithProxyDash(name: string): boolean {
  if (name.length <= 6) {
    return false;
  }
  const prefix = "proxy-";
  for (let i = 0; i < 6; i++) {
    if ((name.charCodeAt(i) | 0x20) !== prefix.charCodeAt(i)) {
      return false;
    }
  }
  return true;
}

/** What the proxy does with one request header (see classifyRequestHeader). */
export const H = {
  Pass: 0,
  Drop: 1,
  Host: 2,
  ForwardedFor: 3,
  ForwardedProto: 4,
  ForwardedHost: 5,
  Deployment: 6,
  Secret: 7,
  Connection: 8,
  ContentLength: 9,
  TransferEncoding: 10,
  Upgrade: 11,
} as const;
export type H = (typeof H)[keyof typeof H];

/**
 * What the proxy does with a request header. Hop-by-hop headers (RFC 9110 §7.6.1: Connection, Keep-Alive,
 * Proxy-*, TE, Trailer, Transfer-Encoding, Upgrade) never reach the upstream; `Expect` is answered by Node.
 */
export function classifyRequestHeader(name: string): H {
  switch (name.length) {
    case 2:
      return isNamed(name, "te") ? H.Drop : H.Pass;
    case 4:
      return isNamed(name, "host") ? H.Host : H.Pass;
    case 6:
      return isNamed(name, "expect") ? H.Drop : H.Pass;
    case 7:
      return isNamed(name, "upgrade") ? H.Upgrade : isNamed(name, "trailer") ? H.Drop : H.Pass;
    case 10:
      return isNamed(name, "connection") ? H.Connection : isNamed(name, "keep-alive") ? H.Drop : H.Pass;
    case 14:
      return isNamed(name, "content-length") ? H.ContentLength : H.Pass;
    case 15:
      return isNamed(name, "x-forwarded-for") ? H.ForwardedFor : H.Pass;
    case 16:
      return isNamed(name, "x-forwarded-host") ? H.ForwardedHost : startsWithProxyDash(name) ? H.Drop : H.Pass;
    case 17:
      return isNamed(name, "x-forwarded-proto")
        ? H.ForwardedProto
        : isNamed(name, "transfer-encoding")
          ? H.TransferEncoding
          : H.Pass;
    case 20:
      return isNamed(name, DEPLOYMENT_HEADER) ? H.Deployment : H.Pass;
    case 22:
      return isNamed(name, SECRET_HEADER) ? H.Secret : startsWithProxyDash(name) ? H.Drop : H.Pass;
    default:
      return name.length > 6 && (name.charCodeAt(0) | 0x20) === 112 /* p */ && startsWithProxyDash(name)
        ? H.Drop
        : H.Pass;
  }
}

/** Whether a response header is hop-by-hop (never copied to the client). */
export function isHopByHop(name: string): boolean {
  switch (name.length) {
    case 2:
      return isNamed(name, "te");
    case 7:
      return isNamed(name, "trailer") || isNamed(name, "upgrade");
    case 10:
      return isNamed(name, "connection") || isNamed(name, "keep-alive");
    case 17:
      return isNamed(name, "transfer-encoding");
    default:
      return name.length > 6 && (name.charCodeAt(0) | 0x20) === 112 /* p */ && startsWithProxyDash(name);
  }
}

const CONNECTION_OPTIONS = new Set(["keep-alive", "close", "upgrade"]);
const NONE: readonly string[] = Object.freeze([]);

/**
 * Header names a `Connection` value lists besides the usual options (`Connection: close, X-Foo` makes X-Foo
 * hop-by-hop too, RFC 9110 §7.6.1). Lower-case; empty for the common values.
 */
export function connectionListed(value: string | undefined): readonly string[] {
  if (value === undefined || isNamed(value, "keep-alive") || isNamed(value, "close") || isNamed(value, "upgrade")) {
    return NONE; // the usual values, without splitting or allocating
  }
  const out: string[] = [];
  for (const raw of value.split(",")) {
    const token = raw.trim().toLowerCase();
    if (token.length > 0 && !CONNECTION_OPTIONS.has(token)) {
      out.push(token);
    }
  }
  return out;
}

/** Removes `names` (lower-case) from a flat `[name, value, …]` list in place. */
export function dropListed(flat: string[], names: readonly string[]): void {
  let w = 0;
  for (let r = 0; r < flat.length; r += 2) {
    const name = flat[r] ?? "";
    if (!names.includes(name.toLowerCase())) {
      flat[w] = name;
      flat[w + 1] = flat[r + 1] ?? "";
      w += 2;
    }
  }
  flat.length = w;
}

function isDot(url: string, i: number): number {
  // 1 for ".", 3 for "%2e"/"%2E", 0 otherwise
  const c = url.charCodeAt(i);
  if (c === 46) {
    return 1;
  }
  if (c === 37 && url.charCodeAt(i + 1) === 50 && (url.charCodeAt(i + 2) | 0x20) === 101) {
    return 3;
  }
  return 0;
}

/**
 * Whether a request target is refused: not origin-form (`/…`), or a path with a `..` segment, also
 * percent-encoded (`%2e%2e`) or behind a backslash, which some upstreams treat as a separator.
 */
export function isRefusedPath(url: string): boolean {
  if (url.charCodeAt(0) !== 47 /* / */) {
    return true;
  }
  let end = url.indexOf("?");
  if (end === -1) {
    end = url.length;
  }
  const hash = url.indexOf("#");
  if (hash !== -1 && hash < end) {
    end = hash;
  }
  const dot = url.indexOf(".");
  const pct = url.indexOf("%");
  if ((dot === -1 || dot >= end) && (pct === -1 || pct >= end)) {
    return false; // the common case: nothing that could spell a dot
  }
  let i = 0;
  while (i < end) {
    const c = url.charCodeAt(i);
    if (c === 47 || c === 92 /* \ */) {
      const a = isDot(url, i + 1);
      const b = a === 0 ? 0 : isDot(url, i + 1 + a);
      if (b !== 0) {
        const after = i + 1 + a + b;
        const n = url.charCodeAt(after);
        if (after >= end || n === 47 || n === 92) {
          return true;
        }
      }
    }
    i++;
  }
  return false;
}
