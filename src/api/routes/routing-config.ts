import { createRoute, z } from "@hono/zod-openapi";
import { FRESH_WAIT_MS } from "../../provider/config-cache.js";
import { redactConfig } from "../../render/config-diff.js";
import type { TraefikDocument } from "../../render/types.js";
import { contracts, json, problems, READ } from "../contract.js";
import type { Deps } from "../deps.js";
import { HttpProblem, problem } from "../problem.js";

const ServedConfigView = z.object({
  revision: z.number().int(),
  hash: z.string(),
  rendered_at: z.string(),
  frozen: z.number().int().nullable(),
  /** False when secrets (private keys, basic-auth hashes, header values, the proxy secret) were replaced. */
  secrets_shown: z.boolean(),
  config: z.looseObject({}).meta({ description: "Traefik dynamic configuration, as GET /traefik/config serves it" }),
});

const getServed = createRoute({
  method: "get",
  path: "/config",
  summary: "The config served to Traefik now (secrets redacted unless the token has the provider scope)",
  security: READ,
  responses: { 200: json(ServedConfigView, "The served config"), ...problems(401, 403, 503) },
});

/** GET /api/v1/routing/config: what Traefik gets, for an admin who has no provider token at hand. */
export function routingConfigApi({ cache }: Deps) {
  return contracts().openapi(getServed, async (c) => {
    const cfg = await cache.freshWithin(FRESH_WAIT_MS);
    if (!cfg) {
      throw new HttpProblem(
        problem("CONFIG_UNAVAILABLE", "The routing database has not been read successfully since startup.", {
          headers: { "Retry-After": "5" },
        }),
      );
    }
    const shown = c.get("caller")?.scopes.has("provider") === true;
    const doc = JSON.parse(cfg.json.toString("utf8")) as TraefikDocument;
    return c.json(
      {
        revision: cfg.revision,
        hash: cfg.hash,
        rendered_at: cfg.renderedAt.toISOString(),
        frozen: cfg.frozen ?? null,
        secrets_shown: shown,
        config: shown ? doc : redactConfig(doc),
      },
      200,
    );
  });
}
