import { z } from "@hono/zod-openapi";
import type { RevisionMeta } from "../../db/repo/revisions.js";

// Schemas and views of the revision, freeze and guard endpoints (src/api/routes/revisions.ts, revisions-freeze.ts).

export const RevisionNumber = z.coerce
  .number()
  .int()
  .min(1)
  .max(Number.MAX_SAFE_INTEGER)
  .meta({ description: "A config revision number (X-Config-Revision)." });

export const RevisionParams = z.object({ n: RevisionNumber });
export const DiffParams = z.object({ a: RevisionNumber, b: RevisionNumber });

export const RevisionPageQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(500).default(50),
  before: RevisionNumber.optional().meta({ description: "Only revisions older than this one (the next page)." }),
});

export const RevisionFormatQuery = z.strictObject({
  format: z.enum(["json", "yaml", "yml"], { error: "must be json or yaml" }).optional(),
});

const Summary = z.looseObject({
  added: z.number().optional(),
  removed: z.number().optional(),
  changed: z.number().optional(),
});

export const RevisionView = z.object({
  revision: z.number(),
  hash: z.string().meta({ description: "sha256 of the JSON bytes (X-Config-Hash)." }),
  created_at: z.string(),
  cause: z.string().meta({ description: "api, apply, health, feed (another instance or SQL), startup, …" }),
  actor: z.string().nullable(),
  detail: z.string().nullable(),
  summary: Summary.meta({ description: "What changed against the config served when it was rendered." }),
  bytes: z.number(),
  held: z.boolean().meta({ description: "The guard held it: it removed too many routers." }),
  confirmed_at: z.string().nullable(),
  confirmed_by: z.string().nullable(),
  first_served_at: z.string().nullable(),
  last_served_at: z.string().nullable(),
  served_now: z.boolean().meta({ description: "This instance serves it now." }),
});

export const RevisionPage = z.object({ items: z.array(RevisionView), next_before: z.number().nullable() });

export const FreezeBody = z.strictObject({
  revision: RevisionNumber,
  reason: z
    .string()
    .trim()
    .min(1)
    .max(500)
    .regex(/^[^\p{Cc}]*$/u, "no control characters"),
});

export const FreezeView = z.object({
  frozen: z.boolean(),
  revision: z.number().optional(),
  reason: z.string().optional(),
  actor: z.string().nullable().optional(),
  frozen_at: z.string().optional(),
  waiting_revisions: z
    .number()
    .optional()
    .meta({ description: "Revisions recorded since the freeze: writes and health changes not served." }),
  latest_revision: z
    .number()
    .nullable()
    .optional()
    .meta({ description: "What this instance would serve without the freeze." }),
  warning: z.string().optional(),
});

export const DiffView = z.looseObject({
  from: z.number(),
  to: z.number(),
  changes: z.array(z.looseObject({ section: z.string(), name: z.string(), change: z.string() })),
  summary: Summary,
});

/** Said in the answer to a freeze and in the README: health cannot act while frozen. */
export const FREEZE_WARNING =
  "While frozen, every instance serves exactly this revision: replicas that fail are NOT removed from what " +
  "Traefik is served (health checks keep running and recording, but cannot act), and no write is served until " +
  "DELETE /api/v1/routing/freeze.";

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function revisionView(r: RevisionMeta, servedNow: number | undefined): z.infer<typeof RevisionView> {
  return {
    revision: r.revision,
    hash: r.hash,
    created_at: r.createdAt.toISOString(),
    cause: r.cause,
    actor: r.actor,
    detail: r.detail,
    summary: r.summary,
    bytes: r.bytes,
    held: r.held,
    confirmed_at: iso(r.confirmedAt),
    confirmed_by: r.confirmedBy,
    first_served_at: iso(r.firstServedAt),
    last_served_at: iso(r.lastServedAt),
    served_now: r.revision === servedNow,
  };
}
