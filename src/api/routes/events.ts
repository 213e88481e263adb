import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { streamSSE } from "hono/streaming";
import { EVENT_TYPES, isEventType, lastEventId, listEvents } from "../../db/repo/events.js";
import { pumpEvents } from "../../events/stream.js";
import { eventJson } from "../../events/view.js";
import { contracts, json, problems, READ } from "../contract.js";
import type { AppEnv, Deps } from "../deps.js";
import { HttpProblem, problem } from "../problem.js";
import { DeploymentId } from "../schemas.js";

const TypeList = z
  .string()
  .max(2000)
  .refine((v) => v.split(",").every((t) => isEventType(t.trim())), {
    message: `a comma list of event types: ${EVENT_TYPES.join(", ")}`,
  })
  .meta({ description: "Only these event types (comma list)", example: "replica.health_changed,guard.held" });

const EventId = z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

export const EventView = z.object({
  id: z.number().meta({ description: "Increasing; the SSE `id` and the cursor of `after`." }),
  at: z.string(),
  type: z.string().meta({ description: `One of ${EVENT_TYPES.join(", ")}` }),
  deployment_id: z.string().nullable(),
  subject: z
    .string()
    .nullable()
    .meta({ description: "A replica id, revision number, certificate id, domain, token id." }),
  data: z.record(z.string(), z.unknown()),
});

const EventQuery = z.strictObject({
  type: TypeList.optional(),
  deployment_id: DeploymentId.optional(),
  since: z.iso.datetime({ offset: true }).optional().meta({ description: "Events at or after this time (ISO 8601)" }),
  after: EventId.optional().meta({ description: "Events after this id (the previous page's next_after)" }),
  before: EventId.optional().meta({ description: "Events before this id (the previous page's next_before)" }),
  order: z
    .enum(["asc", "desc"])
    .default("asc")
    .meta({ description: "`asc`: oldest first (page with `after`); `desc`: newest first (page with `before`)" }),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

const EventPage = z.object({
  items: z.array(EventView),
  next_after: z
    .number()
    .nullable()
    .meta({ description: "Pass as `after` for the next page; null: no more events now (poll with the last id)." }),
  next_before: z
    .number()
    .nullable()
    .meta({ description: "With order=desc: pass as `before` for the next (older) page; null: no older events." }),
});

const StreamQuery = z.strictObject({
  type: TypeList.optional(),
  deployment_id: DeploymentId.optional(),
  last_event_id: EventId.optional().meta({
    description: "Replay events after this id first (the Last-Event-ID header wins when both are given)",
  }),
});

const list = createRoute({
  method: "get",
  path: "/",
  operationId: "listEvents",
  summary: "Events, oldest first (paged with ?after=), or newest first with ?order=desc (paged with ?before=)",
  security: READ,
  request: { query: EventQuery },
  responses: { 200: json(EventPage, "A page of events"), ...problems(400, 401) },
});

const stream = createRoute({
  method: "get",
  path: "/stream",
  operationId: "streamEvents",
  summary: "Live events as Server-Sent Events (resumable with Last-Event-ID)",
  description:
    "Each event is sent with `id:` (its id), `event:` (its type) and `data:` (its JSON). Without Last-Event-ID the " +
    "stream starts with the next event; with it, everything after that id is replayed first. A comment line " +
    "every 15 s keeps the connection open.",
  security: READ,
  request: { query: StreamQuery },
  responses: {
    200: { description: "The stream", content: { "text/event-stream": { schema: z.string() } } },
    ...problems(400, 401),
  },
});

/**
 * Which events a caller may see, by deployment (null: an event not about one deployment). The lead wires the
 * deployment restriction of tokens here; by default every event is visible.
 */
export type EventVisibility = (c: Context<AppEnv>) => (deploymentId: string | null) => boolean;
const everything: EventVisibility = () => () => true;

function lastEventIdHeader(c: Context<AppEnv>): number | undefined {
  const raw = c.req.header("last-event-id");
  if (raw === undefined || raw.trim() === "") {
    return undefined;
  }
  const parsed = EventId.safeParse(raw.trim());
  if (!parsed.success) {
    throw new HttpProblem(
      problem("VALIDATION_FAILED", "Last-Event-ID must be an event id.", {
        errors: [{ location: "header.last-event-id", message: "must be a non-negative integer" }],
      }),
    );
  }
  return parsed.data;
}

const typesOf = (type: string | undefined) => type?.split(",").map((t) => t.trim());

/** GET /api/v1/events and its live stream. */
export function eventsApi(deps: Deps, visibleTo: EventVisibility = everything) {
  const { handle, logger } = deps;
  return contracts()
    .openapi(list, async (c) => {
      const q = c.req.valid("query");
      const visible = visibleTo(c);
      const rows = await listEvents(handle.db, {
        types: typesOf(q.type),
        deploymentId: q.deployment_id,
        since: q.since === undefined ? undefined : new Date(q.since),
        after: q.after,
        before: q.before,
        newestFirst: q.order === "desc",
        limit: q.limit,
      });
      const full = rows.length === q.limit;
      const items = rows.filter((r) => visible(r.deploymentId)).map(eventJson);
      const cursor = full ? Number(rows.at(-1)?.id) : null;
      return c.json(
        q.order === "desc"
          ? { items, next_after: null, next_before: cursor }
          : { items, next_after: cursor, next_before: null },
        200,
      );
    })
    .openapi(stream, async (c) => {
      const q = c.req.valid("query");
      const visible = visibleTo(c);
      const resume = lastEventIdHeader(c) ?? q.last_event_id;
      const after = resume ?? (await lastEventId(handle.db));
      return streamSSE(c, async (sse) => {
        const gone = new AbortController();
        sse.onAbort(() => gone.abort());
        c.req.raw.signal.addEventListener("abort", () => gone.abort());
        try {
          await sse.write("retry: 2000\n\n"); // EventSource reconnects after 2 s (with Last-Event-ID)
          await pumpEvents({
            db: handle.db,
            feed: deps.events,
            after,
            types: typesOf(q.type),
            deploymentId: q.deployment_id,
            visible,
            signal: gone.signal,
            send: (e) => sse.writeSSE({ id: String(e.id), event: e.type, data: JSON.stringify(e) }),
            keepAlive: async () => {
              await sse.write(": keep-alive\n\n");
            },
          });
        } catch (err) {
          // The client reconnects with Last-Event-ID; nothing of the error goes down the stream.
          logger.warn("event stream ended by an error", { requestId: c.get("requestId"), err });
        }
      });
    });
}
