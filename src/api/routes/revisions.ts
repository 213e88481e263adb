import { createRoute, z } from "@hono/zod-openapi";
import { NotFound } from "../../db/errors.js";
import { insertAudit } from "../../db/repo/audit.js";
import { confirmRevision, getRevisionMeta, listRevisions } from "../../db/repo/revisions.js";
import { FRESH_WAIT_MS, yamlOf } from "../../provider/config-cache.js";
import { diffConfigs } from "../../render/config-diff.js";
import type { TraefikDocument } from "../../render/types.js";
import { auditEntry } from "../audit.js";
import { ADMIN, contracts, json, problems, READ } from "../contract.js";
import type { Deps } from "../deps.js";
import { HttpProblem, problem } from "../problem.js";
import { freezeApi } from "./revisions-freeze.js";
import { missingRevision, revisionJson } from "./revisions-read.js";
import {
  DiffParams,
  DiffView,
  RevisionFormatQuery,
  RevisionPage,
  RevisionPageQuery,
  RevisionParams,
  RevisionView,
  revisionView,
} from "./revisions-views.js";

const list = createRoute({
  method: "get",
  path: "/revisions",
  operationId: "listConfigRevisions",
  summary: "Config revisions, newest first (keyset paged with ?before=)",
  security: READ,
  request: { query: RevisionPageQuery },
  responses: { 200: json(RevisionPage, "A page of revisions"), ...problems(400, 401) },
});

const ConfigDoc = z.looseObject({}).meta({ description: "Traefik dynamic configuration" });

const get = createRoute({
  method: "get",
  path: "/revisions/{n}",
  operationId: "getConfigRevision",
  summary: "A revision's config, byte for byte as GET /traefik/config served it (JSON, or YAML with ?format=yaml)",
  security: READ,
  request: { params: RevisionParams, query: RevisionFormatQuery },
  responses: {
    200: {
      description: "The config; X-Config-Revision and X-Config-Hash name it",
      content: { "application/json": { schema: ConfigDoc }, "application/yaml": { schema: ConfigDoc } },
    },
    ...problems(400, 401, 404),
  },
});

const diff = createRoute({
  method: "get",
  path: "/revisions/{a}/diff/{b}",
  operationId: "diffConfigRevisions",
  summary: "What changes from revision a to revision b (the same structured diff as the preview)",
  security: READ,
  request: { params: DiffParams },
  responses: { 200: json(DiffView, "The diff"), ...problems(400, 401, 404) },
});

const confirm = createRoute({
  method: "post",
  path: "/revisions/{n}/confirm",
  operationId: "confirmConfigRevision",
  summary: "Serve a revision the guard held (it removes more routers than GUARD_MAX_REMOVED_PERCENT allows)",
  security: ADMIN,
  request: { params: RevisionParams },
  responses: { 200: json(RevisionView, "Confirmed; every instance serves it"), ...problems(400, 401, 404, 409) },
});

/** `/routing/revisions…` and `/routing/freeze`: the durable history of what was served, and control over it. */
export function revisionsApi(deps: Deps) {
  const { handle, cache } = deps;
  return contracts()
    .openapi(list, async (c) => {
      const q = c.req.valid("query");
      const page = await listRevisions(handle.db, { limit: q.limit, before: q.before });
      const served = cache.current()?.revision;
      return c.json({ items: page.items.map((r) => revisionView(r, served)), next_before: page.nextBefore }, 200);
    })
    .openapi(get, async (c) => {
      const { n } = c.req.valid("param");
      const jsonBytes = await revisionJson(deps, n);
      const yaml = c.req.valid("query").format !== undefined && c.req.valid("query").format !== "json";
      const body = yaml ? yamlOf(jsonBytes) : jsonBytes;
      const meta = await getRevisionMeta(handle.db, n);
      return c.body(new Uint8Array(body.buffer as ArrayBuffer, body.byteOffset, body.length), 200, {
        "content-type": yaml ? "application/yaml; charset=utf-8" : "application/json; charset=utf-8",
        "x-config-revision": String(n),
        "x-config-hash": meta.hash,
      });
    })
    .openapi(diff, async (c) => {
      const { a, b } = c.req.valid("param");
      const parse = async (n: number) => JSON.parse((await revisionJson(deps, n)).toString("utf8")) as TraefikDocument;
      const d = diffConfigs(await parse(a), await parse(b));
      return c.json({ from: a, to: b, ...d }, 200);
    })
    .openapi(confirm, async (c) => {
      const { n } = c.req.valid("param");
      await cache.freshWithin(FRESH_WAIT_MS); // a render still pending may be the one being confirmed
      try {
        await getRevisionMeta(handle.db, n);
      } catch (err) {
        throw err instanceof NotFound ? await missingRevision(deps, n) : err;
      }
      const held = cache.held?.revision;
      if (held !== n) {
        throw new HttpProblem(
          problem(
            "REVISION_NOT_HELD",
            held === undefined
              ? `Revision ${n} is not held: the guard holds nothing now.`
              : `Revision ${n} is not the held candidate; revision ${held} is.`,
            { extra: { held_revision: held ?? null } },
          ),
        );
      }
      const actor = c.get("actor") ?? null;
      // Committed (with its audit row) before the answer waits for the confirmed bytes to be served.
      const row = await handle.db.transaction(async (tx) => {
        const confirmed = await confirmRevision(tx, n, actor);
        await insertAudit(
          tx,
          auditEntry(
            c,
            {
              resourceType: "revision",
              resourceId: String(n),
              changes: [{ field: "confirmed_by", before: null, after: actor }],
            },
            200,
          ),
        );
        return confirmed;
      });
      // The trigger on confirmed_at tells every instance; this one re-renders before answering.
      c.set("configUnchanged", true);
      cache.invalidate({ cause: "confirm", ...(actor ? { actor } : {}) }, "control");
      const served = (await cache.freshWithin(FRESH_WAIT_MS))?.revision;
      return c.json(revisionView(row, served), 200);
    })
    .route("/", freezeApi(deps));
}
