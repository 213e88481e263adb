import { createRoute, z } from "@hono/zod-openapi";
import { FRESH_WAIT_MS } from "../../provider/config-cache.js";
import type { ConfigFormat } from "../../render/serialize.js";
import { contracts, PROVIDER, problems } from "../contract.js";
import type { Deps } from "../deps.js";
import { HttpProblem, problem } from "../problem.js";
import { type Authenticator, requireProvider } from "../scopes.js";

const YAML_TYPES = /\b(application|text)\/(x-)?yaml\b/i;

const ConfigQuery = z.object({
  format: z
    .enum(["json", "yaml", "yml"], { error: "must be json or yaml" })
    .optional()
    .meta({ description: "Overrides the Accept header; JSON when neither asks for YAML." }),
});

/** The rendered Traefik dynamic configuration (routers, services, middlewares, TLS); its bytes are canonical. */
const DynamicConfigDoc = z.looseObject({}).meta({ description: "Traefik dynamic configuration" });

const getConfig = createRoute({
  method: "get",
  path: "/config",
  operationId: "getTraefikConfig",
  summary: "The dynamic configuration Traefik's HTTP provider polls (JSON or YAML, gzip when asked)",
  security: PROVIDER,
  request: { query: ConfigQuery },
  responses: {
    200: {
      description:
        "The served configuration; X-Config-Revision (durable, shared by every instance), X-Config-Hash and ETag " +
        "name it; X-Config-Frozen while a freeze pins it",
      content: { "application/json": { schema: DynamicConfigDoc }, "application/yaml": { schema: DynamicConfigDoc } },
    },
    304: { description: "If-None-Match named the current ETag" },
    ...problems(400, 401, 503),
  },
});

function wantedFormat(query: string | undefined, accept: string | undefined): ConfigFormat {
  if (query !== undefined) {
    return query === "json" ? "json" : "yaml";
  }
  return YAML_TYPES.test(accept ?? "") ? "yaml" : "json";
}

function acceptsGzip(header: string | undefined): boolean {
  // Go's http client sends "Accept-Encoding: gzip" by default; honour an explicit q=0.
  return (header ?? "").split(",").some((part) => {
    const [coding, ...params] = part.trim().toLowerCase().split(";");
    const q = params.map((p) => p.trim()).find((p) => p.startsWith("q="));
    return coding === "gzip" && (!q || Number(q.slice(2)) > 0);
  });
}

/** GET /traefik/config: the dynamic configuration Traefik's HTTP provider polls, served from memory. */
export function traefikApi({ cache, config, pollers, clock, nodeOf, metrics }: Deps, auth: Authenticator) {
  const app = contracts();
  // PROVIDER_TOKEN, ADMIN_TOKEN or a managed token with the provider scope; open only when no PROVIDER_TOKEN is
  // configured at all (the service generates one on first start: only a hand-built config can lack it).
  app.use(
    "/config",
    requireProvider(auth, () => config.PROVIDER_TOKEN.length > 0),
  );
  return app.openapi(getConfig, async (c) => {
    const format = wantedFormat(c.req.valid("query").format, c.req.header("accept"));
    const cfg = await cache.freshWithin(FRESH_WAIT_MS);
    if (cfg?.hasSecrets && config.PROVIDER_TOKEN.length === 0) {
      // Re-checked after the render: a poll racing a certificate upload must not get the keys.
      throw new HttpProblem(
        problem(
          "UNAUTHORIZED",
          "The configuration holds secrets (private keys, basic-auth hashes, custom header values or the fallback proxy secret): set PROVIDER_TOKEN and send it as a bearer token.",
          { headers: { "WWW-Authenticate": 'Bearer realm="traefik-provider"' } },
        ),
      );
    }
    const node = nodeOf(c);
    pollers.record(node, clock.now(), cfg?.hash, c.req.header("user-agent"));
    metrics.poll(node); // node names past MAX_NODE_LABELS are counted as "other"
    if (!cfg) {
      // Never 200 before the database has been read: `{}` would drop every route, while on 503 Traefik keeps what
      // it has. Once read, `{}` is the real answer when nothing is routed (Traefik applies it, issue 9 #1).
      throw new HttpProblem(
        problem("CONFIG_UNAVAILABLE", "The routing database has not been read successfully since startup.", {
          headers: { "Retry-After": "5" },
        }),
      );
    }
    const gz = acceptsGzip(c.req.header("accept-encoding"));
    const etag = `"${cfg.hash.slice(0, 32)}-${format}${gz ? "-gz" : ""}"`;
    const headers: Record<string, string> = {
      "content-type": format === "yaml" ? "application/yaml; charset=utf-8" : "application/json; charset=utf-8",
      etag,
      vary: "Accept, Accept-Encoding",
      "cache-control": "no-cache",
      "x-config-revision": String(cfg.revision),
      "x-config-hash": cfg.hash,
      "x-config-rendered-at": cfg.renderedAt.toISOString(),
    };
    if (cache.stale) {
      headers["x-config-stale"] = "true";
    }
    if (cfg.frozen !== undefined) {
      headers["x-config-frozen"] = String(cfg.frozen);
    }
    // 304 only for a client that asked for it: Traefik's provider never sends If-None-Match and counts 304 as failure.
    const inm = c.req.header("if-none-match");
    if (inm?.split(",").some((t) => t.trim() === etag || t.trim() === "*")) {
      return c.body(null, 304, headers);
    }
    const body = await cache.body(cfg, format, gz);
    if (gz) {
      headers["content-encoding"] = "gzip";
    }
    if (Buffer.isBuffer(body)) {
      headers["content-length"] = String(body.length);
      return c.body(new Uint8Array(body.buffer as ArrayBuffer, body.byteOffset, body.length), 200, headers);
    }
    // The document's pieces, written one after the other (no 45 MB join per change at 100k deployments).
    const pieces = body as readonly Buffer[];
    headers["content-length"] = String(pieces.reduce((n, b) => n + b.length, 0));
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const b of pieces) {
          controller.enqueue(new Uint8Array(b.buffer as ArrayBuffer, b.byteOffset, b.length));
        }
        controller.close();
      },
    });
    return c.body(stream, 200, headers);
  });
}
