import { z } from "zod";
import { routeName } from "./names.js";
import type { Middleware, RouteInput } from "./types.js";
import { checkCidr } from "./validate.js";

// Per-deployment middlewares as stored (deployment_middlewares.config): the API validates and hashes input into
// this shape; the renderer validates it again before it reaches Traefik (rows can be edited by hand).

const noTemplate = (s: string) => !s.includes("{{") && !s.includes("}}"); // the file provider runs Go templates
const printable = z
  .string()
  .regex(/^[\x20-\x7E]*$/, "printable ASCII only")
  .refine(noTemplate, "must not contain {{ or }}");

/** Headers a deployment may not set: they steer routing or framing, or forge the fallback proxy's trust. */
const RESERVED_HEADERS = new Set([
  "host",
  "content-length",
  "transfer-encoding",
  "connection",
  "upgrade",
  "te",
  "trailer",
  "keep-alive",
  "proxy-connection",
]);

export const HeaderName = z
  .string()
  .regex(/^[A-Za-z0-9-]{1,64}$/, "letters, digits and '-' only (≤ 64)")
  .refine(
    (h) => !RESERVED_HEADERS.has(h.toLowerCase()) && !h.toLowerCase().startsWith("x-obiente-"),
    "this header is reserved",
  );
const HeaderMap = z
  // zod reports a bad record key as "Invalid key in record"; surface the key schema's own reason instead.
  .record(HeaderName, printable.max(1024), {
    error: (iss) => (iss.code === "invalid_key" ? iss.issues[0]?.message : undefined),
  })
  .refine((m) => Object.keys(m).length <= 50, "at most 50 headers");

export const Cidr = z
  .string()
  // Node accepts a zone (`fe80::1%eth0`); Go's net.ParseIP/ParseCIDR, which Traefik uses, do not.
  .refine((v) => !v.includes("%") && checkCidr(v) === undefined, "must be an IP address or CIDR range");

const HTPASSWD_LINE =
  /^[A-Za-z0-9._@-]{1,64}:(?:\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}|\$apr1\$[./0-9A-Za-z]{1,8}\$[./0-9A-Za-z]{22}|\{SHA\}[A-Za-z0-9+/]{27}=)$/;
export const HtpasswdLine = z.string().regex(HTPASSWD_LINE, "must be user:hash with a bcrypt, apr1 or {SHA} hash");

/** Why the API refuses `ip_depth` when TRUSTED_PROXY_CIDRS is empty (see MiddlewareOptions), and what to set. */
export const IP_DEPTH_NEEDS_TRUSTED_PROXIES =
  "ip_depth reads the client IP from X-Forwarded-For, which Traefik deletes unless the peer is listed in the entry " +
  "point's forwardedHeaders.trustedIPs (every request would then be refused, or share one rate-limit bucket). " +
  "Set TRUSTED_PROXY_CIDRS to the load balancers in front of Traefik and list the same ranges in traefik.yml, " +
  "or omit ip_depth to use the connecting peer's address.";

const IpDepth = z
  .number()
  .int()
  .min(0)
  .max(10)
  .meta({
    description:
      "Take the client IP from X-Forwarded-For, this many entries from the right (1 = the address the nearest " +
      "trusted load balancer saw). Needs TRUSTED_PROXY_CIDRS (and Traefik's forwardedHeaders.trustedIPs); " +
      "omitted or 0: the connecting peer's address.",
  });

export const StoredMiddlewares = z.strictObject({
  redirect_www: z.enum(["to-www", "to-apex"]).optional(),
  ip_allow_list: z
    .strictObject({ source_range: z.array(Cidr).min(1).max(100), ip_depth: IpDepth.optional() })
    .optional(),
  rate_limit: z
    .strictObject({
      average: z.number().int().min(1).max(1_000_000),
      burst: z.number().int().min(1).max(1_000_000).default(1),
      period_seconds: z.number().int().min(1).max(3600).default(1),
      ip_depth: IpDepth.optional(),
      request_header: HeaderName.meta({
        description:
          "Limit per value of this request header instead of per client IP. Requests without the header all " +
          "share one bucket (Traefik keys them by the empty string).",
      }).optional(),
    })
    .refine(
      (r) => r.ip_depth === undefined || r.request_header === undefined,
      "use ip_depth or request_header, not both",
    )
    .optional(),
  basic_auth: z
    .strictObject({
      users: z.array(HtpasswdLine).min(1).max(100),
      realm: printable
        .min(1)
        .max(64)
        .refine((s) => !s.includes('"'), "no quotes")
        .optional(),
      remove_header: z.boolean().default(true),
    })
    .optional(),
  headers: z
    .strictObject({
      request: HeaderMap.default({}),
      response: HeaderMap.default({}),
      security_preset: z.boolean().default(false),
    })
    .optional(),
  compress: z
    .strictObject({
      enabled: z.boolean().default(true),
      min_response_body_bytes: z.number().int().min(0).max(100_000_000).optional(),
      encodings: z
        .array(z.enum(["gzip", "br", "zstd"]))
        .min(1)
        .max(3)
        .optional(),
    })
    .optional(),
  strip_prefix: z.boolean().optional(),
});
export type StoredMiddlewares = z.infer<typeof StoredMiddlewares>;

/** The documented chain order: cheap refusals first, then identity, then rewriting, then encoding. */
export const CHAIN_ORDER = [
  "redirect-www",
  "ip-allow-list",
  "rate-limit",
  "basic-auth",
  "headers",
  "strip-prefix",
  "compress",
] as const;

/**
 * CHAIN_ORDER with the resilience middlewares (src/render/resilience.ts) in their place, first = outermost:
 * - `in-flight` right after `rate-limit`: one more cheap refusal (429), before any auth or rewriting work, and
 *   counting a request for as long as it is in progress, retries and their backoff included;
 * - `circuit-breaker` then `retry`, innermost, next to the service: an open breaker answers at once, without
 *   retrying (with status retries, TRAEFIK_VERSION=3.7, a retry outside it would replay its 503); the breaker
 *   measures what clients get after retries; each retry attempt re-enters only the load balancer, which picks a
 *   server again, and never repeats the work (auth, header rewriting) done outside it.
 */
export const FULL_CHAIN_ORDER = [
  "redirect-www",
  "ip-allow-list",
  "rate-limit",
  "in-flight",
  "basic-auth",
  "headers",
  "strip-prefix",
  "compress",
  "circuit-breaker",
  "retry",
] as const;

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

export interface MiddlewareOptions {
  /**
   * Traefik's entry points trust the load balancers in front of it (TRUSTED_PROXY_CIDRS, mirrored in
   * `forwardedHeaders.trustedIPs`), so X-Forwarded-For reaches the middlewares. Without it, Traefik deletes the
   * header from every peer (pkg/middlewares/forwardedheaders/forwarded_header.go, ServeHTTP) and
   * DepthStrategy.GetIP (pkg/ip/strategy.go) returns "": ipAllowList would answer 403 to everyone and rateLimit
   * would put every client in one bucket. Then no depth is rendered: the client IP is the peer address.
   */
  trustForwardedFor: boolean;
}

/** A depth Traefik can honour, or undefined (the peer address); `ignored` collects what was dropped and why. */
function depthFor(where: string, depth: number | undefined, opts: MiddlewareOptions, ignored: string[]) {
  if (depth === undefined || opts.trustForwardedFor) {
    return depth;
  }
  if (depth > 0) {
    ignored.push(
      `${where}.ip_depth ${depth} not rendered (the peer address is used): TRUSTED_PROXY_CIDRS is empty, so Traefik deletes X-Forwarded-For`,
    );
  }
  return undefined;
}

/**
 * Traefik middlewares for one route: definitions (stable names) and the chain in CHAIN_ORDER. Deployment-wide
 * ones are named after the deployment; those that depend on the route (strip prefix, www redirect) after the route.
 * `ignored` lists stored settings that were not rendered as stored (a render warning each).
 */
export function middlewaresFor(
  route: RouteInput,
  cfg: StoredMiddlewares,
  opts: MiddlewareOptions = { trustForwardedFor: false },
): { defs: [string, Middleware][]; chain: string[]; ignored: string[] } {
  const dep = routeName(route).split("--")[0] ?? "x";
  const own = routeName(route);
  const defs: [string, Middleware][] = [];
  const ignored: string[] = [];
  const add = (name: string, mw: Middleware) => {
    defs.push([name, mw]);
  };
  const wild = route.domain.startsWith("*.");
  // redirectRegex matches "scheme://" + the Host header as the client sent it (redirect_regex.go rawURL), and
  // hosts are case-insensitive (RFC 9110 §4.2.3): `(?i)` (RE2 syntax) so `Example.NET` is redirected too. The
  // replacement writes the stored domain (lower-case, checkDomain), so the target is always lower-case.
  if (cfg.redirect_www && !wild) {
    const isWww = route.domain.startsWith("www.");
    if (cfg.redirect_www === "to-apex" && isWww) {
      add(`${own}--redirect-www`, {
        redirectRegex: {
          permanent: true,
          regex: `(?i)^(https?)://www\\.${escapeRe(route.domain.slice(4))}(:[0-9]+)?(.*)$`,
          replacement: `$\{1}://${route.domain.slice(4)}$\{2}$\{3}`,
        },
      });
    } else if (cfg.redirect_www === "to-www" && !isWww) {
      add(`${own}--redirect-www`, {
        redirectRegex: {
          permanent: true,
          regex: `(?i)^(https?)://${escapeRe(route.domain)}(:[0-9]+)?(.*)$`,
          replacement: `$\{1}://www.${route.domain}$\{2}$\{3}`,
        },
      });
    }
  }
  if (cfg.ip_allow_list) {
    const { source_range } = cfg.ip_allow_list;
    const ip_depth = depthFor("ip_allow_list", cfg.ip_allow_list.ip_depth, opts, ignored);
    add(`${dep}--ip-allow-list`, {
      ipAllowList: {
        ...(ip_depth === undefined ? {} : { ipStrategy: { depth: ip_depth } }),
        sourceRange: [...source_range].sort(),
      },
    });
  }
  if (cfg.rate_limit) {
    const r = cfg.rate_limit;
    const depth = depthFor("rate_limit", r.ip_depth, opts, ignored);
    // requestHeaderName: requests without that header all share one bucket, keyed "" (documented in the README).
    const sourceCriterion = r.request_header
      ? { requestHeaderName: r.request_header }
      : depth !== undefined
        ? { ipStrategy: { depth } }
        : undefined;
    add(`${dep}--rate-limit`, {
      rateLimit: {
        average: r.average,
        burst: r.burst,
        period: `${r.period_seconds}s`,
        ...(sourceCriterion ? { sourceCriterion } : {}),
      },
    });
  }
  if (cfg.basic_auth) {
    const b = cfg.basic_auth;
    add(`${dep}--basic-auth`, {
      basicAuth: { ...(b.realm ? { realm: b.realm } : {}), removeHeader: b.remove_header, users: [...b.users].sort() },
    });
  }
  if (cfg.headers) {
    const h = cfg.headers;
    const sorted = (m: Record<string, string>) =>
      Object.fromEntries(Object.entries(m).sort(([a], [b]) => (a < b ? -1 : 1)));
    // Traefik sends Strict-Transport-Security only on a TLS request (unrolled/secure processRequest: `ssl ||
    // ForceSTSHeader`, via pkg/middlewares/headers/secure.go), so a plain-HTTP route gets the preset without sts*
    // under its own name: the rendered config then says what Traefik does.
    const sts = route.sslEnabled ? { stsIncludeSubdomains: true, stsSeconds: 31_536_000 } : {};
    const preset = h.security_preset
      ? {
          contentTypeNosniff: true,
          frameDeny: true,
          referrerPolicy: "strict-origin-when-cross-origin",
          ...sts,
        }
      : {};
    const headers = {
      ...preset,
      ...(Object.keys(h.request).length > 0 ? { customRequestHeaders: sorted(h.request) } : {}),
      ...(Object.keys(h.response).length > 0 ? { customResponseHeaders: sorted(h.response) } : {}),
    };
    if (Object.keys(headers).length > 0) {
      add(h.security_preset && !route.sslEnabled ? `${dep}--http--headers` : `${dep}--headers`, { headers });
    }
  }
  if (cfg.strip_prefix && route.pathPrefix !== "/") {
    // Traefik strips by `strings.HasPrefix(req.URL.Path, prefix)`, on the fully decoded path
    // (pkg/middlewares/stripprefix/strip_prefix.go), while the router matched the routing path, which keeps
    // upper-case reserved escapes: `/a%2Fb` routes `/a%2Fb/x` but must be stripped as `/a/b`.
    const prefix = route.pathPrefix.includes("%") ? decodeURIComponent(route.pathPrefix) : route.pathPrefix;
    add(`${own}--strip-prefix`, { stripPrefix: { prefixes: [prefix] } });
  }
  if (cfg.compress?.enabled) {
    const c = cfg.compress;
    add(`${dep}--compress`, {
      compress: {
        ...(c.encodings ? { encodings: c.encodings } : {}),
        ...(c.min_response_body_bytes === undefined ? {} : { minResponseBodyBytes: c.min_response_body_bytes }),
      },
    });
  }
  return { defs, chain: defs.map(([name]) => name), ignored };
}
