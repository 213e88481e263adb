import { createRoute, z } from "@hono/zod-openapi";
import type { WebhookDeliveryRow } from "../../../schema/tables.js";
import { EVENT_TYPES, isEventType } from "../../db/repo/events.js";
import {
  createWebhook,
  deleteWebhook,
  getWebhook,
  listDeliveries,
  listWebhooks,
  type WebhookMeta,
} from "../../db/repo/webhooks.js";
import { refusedWebhookUrl } from "../../events/webhook-address.js";
import { newWebhookSecret } from "../../events/webhook-signature.js";
import { encryptSecret } from "../../tls/crypto.js";
import { ADMIN, BODY_PROBLEMS, contracts, json, jsonBody, problems } from "../contract.js";
import type { Deps } from "../deps.js";
import { HttpProblem, problem } from "../problem.js";

export const WEBHOOK_URL_MAX = 2048;

const WebhookUrl = z
  .string()
  .max(WEBHOOK_URL_MAX)
  .superRefine((raw, ctx) => {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      ctx.addIssue({ code: "custom", message: "must be an absolute http or https URL" });
      return;
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      ctx.addIssue({ code: "custom", message: "must be an http or https URL" });
    } else if (url.username !== "" || url.password !== "") {
      ctx.addIssue({ code: "custom", message: "must not carry credentials (user:password@); use the signature" });
    } else if (url.hash !== "") {
      ctx.addIssue({ code: "custom", message: "must not have a #fragment" });
    }
  })
  .meta({ example: "https://hooks.example.com/obiente" });

const EventSelector = z
  .string()
  .refine((t) => t === "*" || isEventType(t), { message: `"*" or one of ${EVENT_TYPES.join(", ")}` });

const CreateWebhookBody = z.strictObject({
  url: WebhookUrl,
  events: z
    .array(EventSelector)
    .min(1)
    .max(EVENT_TYPES.length + 1)
    .meta({ description: 'Event types delivered, or ["*"] for all', example: ["replica.health_changed"] }),
  secret: z
    .string()
    .min(16)
    .max(256)
    .regex(/^[\x21-\x7e]+$/, "printable ASCII without spaces")
    .optional()
    .meta({ description: "The signing secret (generated when absent); shown once in the answer, never again" }),
});

const WebhookView = z.object({
  id: z.string(),
  url: z.string(),
  events: z.array(z.string()),
  created_at: z.string(),
  created_by: z.string().nullable(),
  last_event_id: z.number().meta({ description: "The last event handled (delivered, given up on or not subscribed)" }),
  pending_attempts: z.number().meta({ description: "Failed attempts at the next event so far" }),
  next_attempt_at: z.string().nullable().meta({ description: "When the next event is retried (after a failure)" }),
});

const CreatedWebhookView = WebhookView.extend({
  secret: z.string().meta({ description: "The signing secret: shown in this answer only" }),
});

const DeliveryView = z.object({
  id: z.number(),
  event_id: z.number(),
  attempt: z.number().meta({ description: "1 for the first attempt at this event" }),
  at: z.string(),
  status_code: z.number().nullable().meta({ description: "null: no response (refused address, timeout, …)" }),
  ok: z.boolean(),
  error: z.string().nullable(),
  duration_ms: z.number(),
});

const WebhookParams = z.object({ id: z.string().max(64) });
const DeliveriesQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(500).default(50),
  before: z.coerce
    .number()
    .int()
    .min(1)
    .optional()
    .meta({ description: "Attempts older than this one (the next page)" }),
});

const create = createRoute({
  method: "post",
  path: "/",
  operationId: "createWebhook",
  summary: "Subscribe a URL to events (signed JSON POSTs)",
  security: ADMIN,
  request: { body: jsonBody(CreateWebhookBody) },
  responses: {
    201: json(CreatedWebhookView, "Created; the secret is in this answer only"),
    ...problems(...BODY_PROBLEMS),
  },
});

const list = createRoute({
  method: "get",
  path: "/",
  operationId: "listWebhooks",
  summary: "List webhooks (never their secrets)",
  security: ADMIN,
  responses: { 200: json(z.object({ items: z.array(WebhookView) }), "Webhooks"), ...problems(401) },
});

const get = createRoute({
  method: "get",
  path: "/{id}",
  operationId: "getWebhook",
  summary: "A webhook and where its delivery stands",
  security: ADMIN,
  request: { params: WebhookParams },
  responses: { 200: json(WebhookView, "The webhook"), ...problems(401, 404) },
});

const remove = createRoute({
  method: "delete",
  path: "/{id}",
  operationId: "deleteWebhook",
  summary: "Delete a webhook (and its delivery history)",
  security: ADMIN,
  request: { params: WebhookParams },
  responses: { 204: { description: "Deleted" }, ...problems(401, 404) },
});

const deliveries = createRoute({
  method: "get",
  path: "/{id}/deliveries",
  operationId: "listWebhookDeliveries",
  summary: "Delivery attempts, newest first (keyset paged with ?before=)",
  security: ADMIN,
  request: { params: WebhookParams, query: DeliveriesQuery },
  responses: {
    200: json(z.object({ items: z.array(DeliveryView), next_before: z.number().nullable() }), "A page of attempts"),
    ...problems(400, 401, 404),
  },
});

const webhookView = (w: WebhookMeta): z.infer<typeof WebhookView> => ({
  id: w.id,
  url: w.url,
  events: w.events,
  created_at: w.createdAt.toISOString(),
  created_by: w.createdBy,
  last_event_id: w.cursor,
  pending_attempts: w.attempts,
  next_attempt_at: w.nextAttemptAt?.toISOString() ?? null,
});

const deliveryView = (d: WebhookDeliveryRow): z.infer<typeof DeliveryView> => ({
  id: d.id,
  event_id: d.eventId,
  attempt: d.attempt,
  at: d.at.toISOString(),
  status_code: d.statusCode,
  ok: d.ok,
  error: d.error,
  duration_ms: d.durationMs,
});

/** Webhooks: subscriptions to events, delivered by src/events/webhook-worker.ts. Admin scope throughout. */
export function webhooksApi({ handle: { db }, config, certKey }: Deps) {
  return contracts()
    .openapi(create, async (c) => {
      const body = c.req.valid("json");
      const url = new URL(body.url);
      const refused = await refusedWebhookUrl(url, config.WEBHOOK_ALLOW_PRIVATE);
      if (refused) {
        throw new HttpProblem(
          problem("WEBHOOK_URL_REFUSED", `Webhooks may not be delivered there: ${refused}.`, {
            errors: [{ location: "body.url", message: refused }],
          }),
        );
      }
      const secret = body.secret ?? newWebhookSecret();
      const events = [...new Set(body.events)];
      const row = await createWebhook(db, {
        url: url.toString(),
        events: events.includes("*") ? ["*"] : events,
        secretEncrypted: encryptSecret(secret, certKey),
        createdBy: c.get("actor") ?? null,
      });
      c.set("audit", {
        resourceType: "webhook",
        resourceId: row.id,
        changes: [
          { field: "url", before: null, after: row.url },
          { field: "events", before: null, after: row.events },
          { field: "secret", before: null, after: "<redacted>" },
        ],
      });
      c.set("configUnchanged", true); // the served config does not depend on webhooks
      c.header("Location", `/api/v1/webhooks/${row.id}`);
      return c.json({ ...webhookView(row), secret }, 201);
    })
    .openapi(list, async (c) => c.json({ items: (await listWebhooks(db)).map(webhookView) }, 200))
    .openapi(get, async (c) => c.json(webhookView(await getWebhook(db, c.req.valid("param").id)), 200))
    .openapi(remove, async (c) => {
      const row = await deleteWebhook(db, c.req.valid("param").id);
      c.set("audit", {
        resourceType: "webhook",
        resourceId: row.id,
        changes: [
          { field: "url", before: row.url, after: null },
          { field: "events", before: row.events, after: null },
        ],
      });
      c.set("configUnchanged", true);
      return c.body(null, 204);
    })
    .openapi(deliveries, async (c) => {
      const { id } = c.req.valid("param");
      const q = c.req.valid("query");
      await getWebhook(db, id); // 404 for an unknown webhook
      const page = await listDeliveries(db, id, q);
      return c.json({ items: page.items.map(deliveryView), next_before: page.nextBefore }, 200);
    });
}
