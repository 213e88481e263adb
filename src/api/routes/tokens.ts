import { createRoute, z } from "@hono/zod-openapi";
import { TOKEN_SCOPES } from "../../../schema/enums.js";
import type { ApiTokenRow } from "../../../schema/tables.js";
import { recordEvent } from "../../db/repo/events.js";
import { createToken, getToken, listTokens, revokeToken } from "../../db/repo/tokens.js";
import { ADMIN, BODY_PROBLEMS, contracts, json, jsonBody, problems } from "../contract.js";
import type { Deps } from "../deps.js";
import { DeploymentId, Items } from "../schemas.js";
import { invalidField } from "../validate.js";

const Scope = z.enum(TOKEN_SCOPES);

const CreateTokenBody = z.strictObject({
  name: z
    .string()
    .trim()
    .min(1)
    .max(100)
    .regex(/^[\x20-\x7E]+$/, "printable ASCII only")
    .meta({ example: "ci-deployer" }),
  scopes: z
    .array(Scope)
    .min(1)
    .max(TOKEN_SCOPES.length)
    .refine((s) => new Set(s).size === s.length, "each scope once")
    .meta({
      description:
        "`admin` implies read, write and certificates (not provider); `write` and `certificates` imply `read`.",
    }),
  deployment_ids: z
    .array(DeploymentId)
    .min(1)
    .max(1000)
    .optional()
    .meta({ description: "Restricts the token to these deployments (404 for any other)" }),
  deployment_prefix: z
    .string()
    .regex(/^[a-z0-9_]{1,64}$/, "1–64 of lower-case letters, digits and '_' (deployment ids are made of these)")
    .optional()
    .meta({ description: "Restricts the token to deployment ids starting with this (e.g. `tenant42_`)" }),
  expires_at: z.iso.datetime({ offset: true }).optional(),
});

const TokenView = z.object({
  id: z.string(),
  name: z.string(),
  prefix: z.string().meta({ description: "The first characters of the secret, to recognise it" }),
  scopes: z.array(Scope),
  deployment_ids: z.array(z.string()).nullable(),
  deployment_prefix: z.string().nullable(),
  expires_at: z.string().nullable(),
  last_used_at: z.string().nullable(),
  created_at: z.string(),
  created_by: z.string().nullable(),
  revoked_at: z.string().nullable(),
});
const CreatedTokenView = TokenView.extend({
  token: z.string().meta({ description: "The secret (`obr_…`): shown in this answer only, never again" }),
});

const TokenParams = z.object({ id: z.string().min(1).max(100) });

const create = createRoute({
  method: "post",
  path: "/",
  summary: "Create a scoped token (its secret is shown once)",
  security: ADMIN,
  request: { body: jsonBody(CreateTokenBody) },
  responses: { 201: json(CreatedTokenView, "Created"), ...problems(...BODY_PROBLEMS, 403) },
});

const list = createRoute({
  method: "get",
  path: "/",
  summary: "List tokens (never their secrets)",
  security: ADMIN,
  request: { query: z.strictObject({ include_revoked: z.enum(["true", "false"]).default("false") }) },
  responses: { 200: json(Items(TokenView), "Tokens"), ...problems(400, 401, 403) },
});

const get = createRoute({
  method: "get",
  path: "/{id}",
  summary: "One token",
  security: ADMIN,
  request: { params: TokenParams },
  responses: { 200: json(TokenView, "The token"), ...problems(401, 403, 404) },
});

const revoke = createRoute({
  method: "delete",
  path: "/{id}",
  summary: "Revoke a token (at once, on every instance)",
  security: ADMIN,
  request: { params: TokenParams },
  responses: { 204: { description: "Revoked" }, ...problems(401, 403, 404) },
});

const iso = (d: Date | null) => d?.toISOString() ?? null;

function tokenView(r: ApiTokenRow): z.infer<typeof TokenView> {
  return {
    id: r.id,
    name: r.name,
    prefix: r.prefix,
    scopes: r.scopes as z.infer<typeof Scope>[],
    deployment_ids: r.deploymentIds,
    deployment_prefix: r.deploymentPrefix,
    expires_at: iso(r.expiresAt),
    last_used_at: iso(r.lastUsedAt),
    created_at: r.createdAt.toISOString(),
    created_by: r.createdBy,
    revoked_at: iso(r.revokedAt),
  };
}

/** /api/v1/tokens: managed tokens; only their SHA-256 is stored. */
export function tokensApi({ handle: { db }, clock }: Deps) {
  return contracts()
    .openapi(create, async (c) => {
      const b = c.req.valid("json");
      const expiresAt = b.expires_at === undefined ? null : new Date(b.expires_at);
      if (expiresAt && expiresAt.getTime() <= clock.now().getTime()) {
        throw invalidField("body.expires_at", "must be in the future");
      }
      const actor = c.get("actor");
      const { row, secret } = await createToken(db, {
        name: b.name,
        scopes: b.scopes,
        deploymentIds: b.deployment_ids,
        deploymentPrefix: b.deployment_prefix,
        expiresAt,
        createdBy: actor,
      });
      await recordEvent(db, {
        type: "token.created",
        subject: row.id,
        data: { name: row.name, scopes: row.scopes, actor: actor ?? null },
      });
      const shown = tokenView(row);
      c.set("audit", {
        resourceType: "token",
        resourceId: row.id,
        changes: [{ field: "token", before: null, after: { ...shown, token: "<redacted>" } }],
      });
      c.set("configUnchanged", true);
      return c.json({ ...shown, token: secret }, 201);
    })
    .openapi(list, async (c) => {
      const rows = await listTokens(db, c.req.valid("query").include_revoked === "true");
      return c.json({ items: rows.map(tokenView) }, 200);
    })
    .openapi(get, async (c) => c.json(tokenView(await getToken(db, c.req.valid("param").id)), 200))
    .openapi(revoke, async (c) => {
      const actor = c.get("actor");
      const row = await revokeToken(db, c.req.valid("param").id, actor, clock.now());
      await recordEvent(db, {
        type: "token.revoked",
        subject: row.id,
        data: { name: row.name, actor: actor ?? null },
      });
      c.set("audit", {
        resourceType: "token",
        resourceId: row.id,
        changes: [{ field: "revoked_at", before: null, after: row.revokedAt?.toISOString() ?? null }],
      });
      c.set("configUnchanged", true);
      return c.body(null, 204);
    });
}
