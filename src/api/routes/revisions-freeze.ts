import { createRoute } from "@hono/zod-openapi";
import { insertAudit } from "../../db/repo/audit.js";
import { clearFreeze, countRevisionsSince, readFreeze, setFreeze } from "../../db/repo/revisions.js";
import { FRESH_WAIT_MS } from "../../provider/config-cache.js";
import { auditEntry } from "../audit.js";
import { ADMIN, BODY_PROBLEMS, contracts, json, jsonBody, problems, READ } from "../contract.js";
import type { Deps } from "../deps.js";
import { revisionJson } from "./revisions-read.js";
import { FREEZE_WARNING, FreezeBody, FreezeView } from "./revisions-views.js";

const show = createRoute({
  method: "get",
  path: "/freeze",
  operationId: "getRoutingFreeze",
  summary: "Whether a freeze pins the served config, to which revision, who set it, when and why",
  security: READ,
  responses: { 200: json(FreezeView, "The freeze (frozen: false when none)"), ...problems(401) },
});

const freeze = createRoute({
  method: "post",
  path: "/freeze",
  operationId: "freezeRouting",
  summary: "Pin what every instance serves to one revision (an earlier one rolls back); writes keep being accepted",
  security: ADMIN,
  request: { body: jsonBody(FreezeBody) },
  responses: {
    200: json(FreezeView, "Frozen; the answer says what a freeze stops (health cannot act)"),
    ...problems(...BODY_PROBLEMS, 404),
  },
});

const release = createRoute({
  method: "delete",
  path: "/freeze",
  operationId: "releaseRoutingFreeze",
  summary: "Lift the freeze: every instance serves the current state again (idempotent)",
  security: ADMIN,
  responses: { 204: { description: "Not frozen (any more)" }, ...problems(401) },
});

/** GET/POST/DELETE `/routing/freeze`. */
export function freezeApi(deps: Deps) {
  const { handle, cache } = deps;
  const view = async () => {
    const row = await readFreeze(handle.db);
    if (!row) {
      return { frozen: false };
    }
    return {
      frozen: true,
      revision: row.revision,
      reason: row.reason,
      actor: row.actor,
      frozen_at: row.frozenAt.toISOString(),
      waiting_revisions: await countRevisionsSince(handle.db, row.frozenAt),
      latest_revision: cache.latest?.revision ?? null,
    };
  };
  /** The routing_freeze trigger tells every instance; this one re-renders before answering. */
  const applied = async (actor: string | undefined) => {
    cache.invalidate({ cause: "freeze", ...(actor ? { actor } : {}) }, "control");
    await cache.freshWithin(FRESH_WAIT_MS);
  };
  return contracts()
    .openapi(show, async (c) => c.json(await view(), 200))
    .openapi(freeze, async (c) => {
      const body = c.req.valid("json");
      await revisionJson(deps, body.revision); // 404 for an unknown or pruned revision, before anything is written
      const before = await readFreeze(handle.db);
      // Committed (with its audit row) before the answer waits for the frozen bytes to be served.
      await handle.db.transaction(async (tx) => {
        await setFreeze(tx, { revision: body.revision, reason: body.reason, actor: c.get("actor") ?? null });
        await insertAudit(
          tx,
          auditEntry(
            c,
            {
              resourceType: "freeze",
              resourceId: String(body.revision),
              changes: [
                { field: "frozen_revision", before: before?.revision ?? null, after: body.revision },
                { field: "reason", before: before?.reason ?? null, after: body.reason },
              ],
            },
            200,
          ),
        );
      });
      c.set("configUnchanged", true);
      await applied(c.get("actor"));
      return c.json({ ...(await view()), warning: FREEZE_WARNING }, 200);
    })
    .openapi(release, async (c) => {
      const before = await readFreeze(handle.db);
      await handle.db.transaction(async (tx) => {
        await clearFreeze(tx);
        await insertAudit(
          tx,
          auditEntry(
            c,
            {
              resourceType: "freeze",
              changes: before ? [{ field: "frozen_revision", before: before.revision, after: null }] : [],
            },
            204,
          ),
        );
      });
      c.set("configUnchanged", true);
      await applied(c.get("actor"));
      return c.body(null, 204);
    });
}
