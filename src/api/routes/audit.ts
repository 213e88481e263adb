import { createRoute, z } from "@hono/zod-openapi";
import { listAudit } from "../../db/repo/audit.js";
import { ADMIN, contracts, json, problems } from "../contract.js";
import type { Deps } from "../deps.js";

const AuditQuery = z.strictObject({
  deployment_id: z.string().min(1).max(200).optional(),
  token: z.string().min(1).max(200).optional().meta({ description: "A token id (`tok_…`, `env:admin`) or name" }),
  since: z.iso.datetime({ offset: true }).optional().meta({ description: "Rows at or after this time (ISO 8601)" }),
  after: z.coerce.number().int().min(0).optional().meta({ description: "Cursor: the next_cursor of the last page" }),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

const AuditView = z.object({
  id: z.number().int(),
  at: z.string(),
  token_id: z.string().nullable(),
  token_name: z.string().nullable(),
  client_address: z.string().nullable(),
  request_id: z.string().nullable(),
  method: z.string(),
  path: z.string(),
  operation: z.string(),
  resource_type: z.string(),
  resource_id: z.string().nullable(),
  deployment_id: z.string().nullable(),
  status: z.number().int(),
  changes: z.array(z.object({ field: z.string(), before: z.unknown(), after: z.unknown() })),
});

const list = createRoute({
  method: "get",
  path: "/",
  summary: "Accepted writes, oldest first (keyset paged)",
  security: ADMIN,
  request: { query: AuditQuery },
  responses: {
    200: json(z.object({ items: z.array(AuditView), next_cursor: z.number().int().nullable() }), "A page"),
    ...problems(400, 401, 403),
  },
});

/** GET /api/v1/audit: who changed what, when, from where. */
export function auditApi({ handle: { db } }: Deps) {
  return contracts().openapi(list, async (c) => {
    const q = c.req.valid("query");
    const { items, nextCursor } = await listAudit(db, {
      deploymentId: q.deployment_id,
      token: q.token,
      since: q.since === undefined ? undefined : new Date(q.since),
      after: q.after,
      limit: q.limit,
    });
    return c.json(
      {
        items: items.map((r) => ({
          id: r.id,
          at: r.at.toISOString(),
          token_id: r.tokenId,
          token_name: r.tokenName,
          client_address: r.clientAddress,
          request_id: r.requestId,
          method: r.method,
          path: r.path,
          operation: r.operation,
          resource_type: r.resourceType,
          resource_id: r.resourceId,
          deployment_id: r.deploymentId,
          status: r.status,
          changes: r.changes as { field: string; before: unknown; after: unknown }[],
        })),
        next_cursor: nextCursor,
      },
      200,
    );
  });
}
