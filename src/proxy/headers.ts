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

const X_FORWARDED = "x-forwarded-";

/** `X-Forwarded-*` other than the three the proxy rewrites (-Port, -Server, -Prefix, …): trusted peers only. */
function passOrForwarded(name: string): H {
  if (name.length <= X_FORWARDED.length || (name.charCodeAt(0) | 0x20) !== 120 /* x */) {
    return H.Pass;
  }
  for (let i = 1; i < X_FORWARDED.length; i++) {
    if ((name.charCodeAt(i) | 0x20) !== X_FORWARDED.charCodeAt(i)) {
      return H.Pass;
    }
  }
  return H.ForwardedOther;
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
  /** Other client-address headers (`Forwarded`, `X-Real-Ip`, `X-Forwarded-Port`, …): kept from trusted peers only. */
  ForwardedOther: 12,
} as const;
export type H = (typeof H)[keyof typeof H];

/**
 * What the proxy does with a request header. Hop-by-hop headers (RFC 9110 §7.6.1: Connection, Keep-Alive,
 * Proxy-*, TE, Trailer, Transfer-Encoding, Upgrade) never reach the upstream; `Expect` is answered by Node.
 */
export function classifyRequestHeader(name: string): H {
  if (name.includes("_")) {
    // CGI-style servers (WSGI, PHP, …) read `X_Forwarded_For` as HTTP_X_FORWARDED_FOR, the same variable as
    // `X-Forwarded-For`: an underscore spelling of a header the proxy acts on is dropped, never passed on.
    return classifyRequestHeader(name.replaceAll("_", "-")) === H.Pass ? H.Pass : H.Drop;
  }
  switch (name.length) {
    case 2:
      return isNamed(name, "te") ? H.Drop : H.Pass;
    case 4:
      return isNamed(name, "host") ? H.Host : H.Pass;
    case 6:
      return isNamed(name, "expect") ? H.Drop : H.Pass;
    case 7:
      return isNamed(name, "upgrade") ? H.Upgrade : isNamed(name, "trailer") ? H.Drop : H.Pass;
    case 9:
      return isNamed(name, "forwarded") || isNamed(name, "x-real-ip") ? H.ForwardedOther : H.Pass;
    case 10:
      return isNamed(name, "connection") ? H.Connection : isNamed(name, "keep-alive") ? H.Drop : H.Pass;
    case 14:
      return isNamed(name, "content-length") ? H.ContentLength : passOrForwarded(name);
    case 15:
      return isNamed(name, "x-forwarded-for") ? H.ForwardedFor : passOrForwarded(name);
    case 16:
      return isNamed(name, "x-forwarded-host")
        ? H.ForwardedHost
        : startsWithProxyDash(name)
          ? H.Drop
          : passOrForwarded(name);
    case 17:
      return isNamed(name, "x-forwarded-proto")
        ? H.ForwardedProto
        : isNamed(name, "transfer-encoding")
          ? H.TransferEncoding
          : passOrForwarded(name);
    case 20:
      return isNamed(name, DEPLOYMENT_HEADER) ? H.Deployment : passOrForwarded(name);
    case 22:
      return isNamed(name, SECRET_HEADER) ? H.Secret : startsWithProxyDash(name) ? H.Drop : passOrForwarded(name);
    default:
      return name.length > 6 && (name.charCodeAt(0) | 0x20) === 112 /* p */ && startsWithProxyDash(name)
        ? H.Drop
        : passOrForwarded(name);
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

const MAX_DECODE_ROUNDS = 4;

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) {
    return c - 48;
  }
  const l = c | 0x20;
  return l >= 97 && l <= 102 ? l - 87 : -1;
}

/** One round of percent-decoding into bytes (invalid escapes stay as they are); undefined when nothing changed. */
function decodeOnce(bytes: Uint8Array): Uint8Array | undefined {
  const out = new Uint8Array(bytes.length); // decoding only ever shrinks
  let w = 0;
  let changed = false;
  for (let r = 0; r < bytes.length; r++) {
    const c = bytes[r] as number;
    const hi = c === 37 ? hexValue(bytes[r + 1] ?? 0) : -1;
    const lo = hi >= 0 ? hexValue(bytes[r + 2] ?? 0) : -1;
    if (lo >= 0) {
      out[w++] = hi * 16 + lo;
      r += 2;
      changed = true;
    } else {
      out[w++] = c;
    }
  }
  return changed ? out.subarray(0, w) : undefined;
}

/**
 * Overlong UTF-8 (`%c0%ae` is a `.`, `%c0%af` a `/` to a lenient decoder) and the bytes UTF-8 never uses:
 * C0/C1 leads, E0 with a second byte below A0, F0 below 90, and F5–FF (RFC 3629 §3).
 */
function hasOverlongUtf8(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) {
    const c = b[i] as number;
    if (c === 0xc0 || c === 0xc1 || c >= 0xf5) {
      return true;
    }
    const n = b[i + 1] ?? 0;
    if ((c === 0xe0 && n >= 0x80 && n < 0xa0) || (c === 0xf0 && n >= 0x80 && n < 0x90)) {
      return true;
    }
  }
  return false;
}

/** A segment an upstream could resolve to the parent directory: `..`, and `...`/`.. ` (Windows trims them). */
function isDotSegment(seg: string): boolean {
  let end = seg.length;
  while (end > 0 && (seg.charCodeAt(end - 1) === 32 || seg.charCodeAt(end - 1) === 9)) {
    end--;
  }
  if (end < 2) {
    return false;
  }
  for (let i = 0; i < end; i++) {
    if (seg.charCodeAt(i) !== 46) {
      return false;
    }
  }
  return true;
}

/** Whether a decoded path, read the loosest way an upstream might (`\` and `;` as separators, NFKC), has `..`. */
function hasTraversal(path: string): boolean {
  // NFKC folds full-width and other compatibility dots and slashes (U+FF0E, U+FF0F) onto ASCII ones.
  const folded = path.normalize("NFKC");
  for (const seg of folded.split(/[/\\;]/)) {
    if (isDotSegment(seg)) {
      return true;
    }
  }
  return false;
}

/**
 * Whether a request target is refused (answered 400 INVALID_PATH): not origin-form (`/…`), or a path that any
 * upstream could resolve outside where it points. The path is percent-decoded repeatedly (`%252e` is `%2e` to
 * a server that decodes twice), `\` and `;` count as separators (IIS, Tomcat's `..;/`), overlong UTF-8 and
 * NUL are refused outright, and any `..` segment after that is refused. The query is not a path and is ignored.
 */
export function isRefusedPath(url: string): boolean {
  if (url.charCodeAt(0) !== 47 /* / */) {
    return true;
  }
  let end = url.indexOf("?");
  if (end === -1) {
    end = url.length;
  }
  let encoded = false;
  for (let i = 0; i < end; i++) {
    const c = url.charCodeAt(i);
    if (c === 37 /* % */ || c > 0x7e) {
      encoded = true;
      break;
    }
  }
  if (!encoded) {
    // The common case (`/static/app.js`): plain ASCII, so only a literal `..` can spell a parent.
    const dots = url.indexOf("..");
    return dots !== -1 && dots < end && hasTraversal(url.slice(0, end));
  }
  // Node hands over the request target as latin1, so every char is one byte of what the client sent.
  let bytes: Uint8Array = Buffer.from(url.slice(0, end), "latin1");
  for (let round = 0; ; round++) {
    if (bytes.includes(0) || hasOverlongUtf8(bytes)) {
      return true;
    }
    if (hasTraversal(Buffer.from(bytes).toString("utf8")) || hasTraversal(Buffer.from(bytes).toString("latin1"))) {
      return true;
    }
    const next = decodeOnce(bytes);
    if (!next) {
      return false;
    }
    if (round === MAX_DECODE_ROUNDS) {
      return true; // still encoded after this many rounds: nothing legitimate looks like that
    }
    bytes = next;
  }
}
