import { promisify } from "node:util";
import { gunzip as gunzipCb, gzip as gzipCb } from "node:zlib";
import type { Db } from "../db/client.js";
import { NotFound } from "../db/errors.js";
import { holdRevisionOnce, type NewEvent, recordEventsIfRevisionInserted } from "../db/repo/events.js";
import {
  findRevisionByHash,
  getRevision,
  getRevisionMeta,
  insertRevision,
  lastServedRevision,
  markRevisionServed,
  nameRevisionCause,
  pruneRevisions,
  readFreeze,
} from "../db/repo/revisions.js";
import type { Logger } from "../lib/logger.js";
import type { ConfigDiff } from "../render/config-diff.js";

const gzip = promisify(gzipCb);
const gunzip = promisify(gunzipCb);

/** What made an instance render: its own API write, an apply, a health transition, the change feed (another
 * instance or hand SQL), its start, a confirmation or a freeze. */
export type CauseKind = "api" | "apply" | "health" | "feed" | "startup" | "confirm" | "freeze";

export interface Cause {
  cause: CauseKind;
  /** `admin:<8 hex of sha256(token)>` for an API write, the instance id for a health transition. */
  actor?: string;
  /** e.g. `PUT /api/v1/deployments/:id/routing`. */
  detail?: string;
}

/**
 * The cause a coalesced render is recorded with: the earliest one since the last render, except that a specific
 * cause beats `feed` (an instance hears its own writes through NOTIFY too, and only its API call knows who wrote).
 */
export function mergeCause(earlier: Cause | undefined, later: Cause): Cause {
  if (!earlier || (earlier.cause === "feed" && later.cause !== "feed")) {
    return later;
  }
  return earlier;
}

/** A revision's bytes as stored (the JSON exactly as served). */
export interface StoredConfig {
  revision: number;
  hash: string;
  json: Buffer;
  createdAt: Date;
}

export interface FreezeState {
  revision: number;
  reason: string;
  actor: string | null;
  frozenAt: Date;
}

export interface Recorded {
  revision: number;
  confirmed: boolean;
}

export interface NewCandidate {
  hash: string;
  /** The bytes, joined only when a new row is stored without `gzipped`. */
  json: () => Buffer;
  bytes: number;
  /** The bytes gzipped (the renderer keeps them per block): stored as they are. */
  gzipped?: () => Buffer;
  cause: Cause;
  /** The guard holds it: the row says so (a held revision is never pruned). */
  held: boolean;
  /** The revision served now (a confirmation older than its serving is for another hold). */
  servedRevision?: number | undefined;
  /** The diff summary against what is served; computed only for a new row, or one the guard now holds. */
  summary: () => Record<string, unknown>;
}

/** The database side of the served config: revisions every instance shares, and the freeze. */
export interface RevisionLedger {
  freeze(): Promise<FreezeState | undefined>;
  /** The revision some instance served last: the guard's baseline before this instance serves anything. */
  lastServed(): Promise<StoredConfig | undefined>;
  /** A revision's bytes; undefined when it is unknown (or was pruned). */
  load(revision: number): Promise<StoredConfig | undefined>;
  /** Records a rendered config (or finds the row of the same bytes) and returns its durable number. */
  record(candidate: NewCandidate): Promise<Recorded>;
  /** Stamps first/last_served_at when this instance starts serving a revision. */
  served(revision: number): Promise<void>;
}

/** Names kept per list in a stored summary: a mass deletion of 100k routes must not make a 10 MB row. */
export const SUMMARY_NAMES = 100;

/** The diff summary as stored on a revision: exact counts, name lists capped at SUMMARY_NAMES (then `truncated`). */
export function revisionSummary(diff: ConfigDiff): Record<string, unknown> {
  let truncated = false;
  const byKind: Record<string, { added: string[]; removed: string[]; changed: string[] }> = {};
  for (const [kind, lists] of Object.entries(diff.summary.byKind)) {
    const cap = (names: string[]) => {
      truncated ||= names.length > SUMMARY_NAMES;
      return names.slice(0, SUMMARY_NAMES);
    };
    byKind[kind] = { added: cap(lists.added), removed: cap(lists.removed), changed: cap(lists.changed) };
  }
  const { added, removed, changed } = diff.summary;
  return { added, removed, changed, byKind, ...(truncated ? { truncated: true } : {}) };
}

export async function decompress(body: Buffer): Promise<Buffer> {
  return gunzip(body);
}

type NamedCause = { cause: string; actor: string | null; detail: string | null };

const counts = (summary: Record<string, unknown>) => ({
  added: summary.added ?? 0,
  removed: summary.removed ?? 0,
  changed: summary.changed ?? 0,
});

/** guard.held: the routers the held revision would remove (capped like the summary's names). */
function heldEvent(revision: number, named: NamedCause, summary: Record<string, unknown>): NewEvent {
  const routers = (summary.byKind as Record<string, { removed?: string[] }> | undefined)?.routers?.removed ?? [];
  return {
    type: "guard.held",
    subject: String(revision),
    data: { ...named, ...counts(summary), removed_routers: routers, truncated: summary.truncated === true },
  };
}

/** config.revision for a newly recorded revision, and guard.held when the guard holds it. */
function revisionEvents(revision: number, named: NamedCause, summary: Record<string, unknown>, held: boolean) {
  const events: NewEvent[] = [
    { type: "config.revision", subject: String(revision), data: { ...named, held, ...counts(summary) } },
  ];
  return held ? [...events, heldEvent(revision, named, summary)] : events;
}

/** The ledger on the routing database; prunes to `retention` revisions after each insert. */
export function dbLedger(db: Db, opts: { retention: number; logger: Logger }): RevisionLedger {
  const stored = async (row: { revision: number; hash: string; body: Buffer; createdAt: Date }) => ({
    revision: row.revision,
    hash: row.hash,
    json: await gunzip(row.body),
    createdAt: row.createdAt,
  });
  return {
    async freeze() {
      const row = await readFreeze(db);
      return row && { revision: row.revision, reason: row.reason, actor: row.actor, frozenAt: row.frozenAt };
    },
    async lastServed() {
      const row = await lastServedRevision(db);
      return row && stored(row);
    },
    async load(revision) {
      try {
        return await stored(await getRevision(db, revision));
      } catch (err) {
        if (err instanceof NotFound) {
          return undefined;
        }
        throw err;
      }
    },
    async record(c) {
      const named = { cause: c.cause.cause, actor: c.cause.actor ?? null, detail: c.cause.detail ?? null };
      const found = await findRevisionByHash(db, c.hash);
      if (found) {
        // Bytes seen before keep their number (Traefik would see them as the same config anyway).
        if (found.cause === "feed" && named.cause !== "feed") {
          await nameRevisionCause(db, found.revision, named);
        }
        let confirmed = found.confirmedAt !== null;
        if (c.held && found.confirmedAt !== null && c.servedRevision !== undefined) {
          // A confirmation holds for the config served when it was given: one older than the moment the config
          // served now started being served was for another hold (the same bytes coming back later are held again).
          const servedSince = (await getRevisionMeta(db, c.servedRevision).catch(() => undefined))?.lastServedAt;
          confirmed = !servedSince || found.confirmedAt > servedSince;
        }
        if (c.held && (!found.held || !confirmed) && !(found.held && found.confirmedAt === null)) {
          // Its summary said what it changed when first rendered; held, it must say what it removes now. Once per
          // hold across instances: the one whose update marks it records guard.held.
          const summary = c.summary();
          await holdRevisionOnce(db, found.revision, summary, [heldEvent(found.revision, named, summary)]);
        }
        return { revision: found.revision, confirmed };
      }
      const body = c.gzipped ? c.gzipped() : await gzip(c.json());
      const summary = c.summary();
      // The row and its events commit together; only the instance whose insert created the row reports it.
      const row = await db.transaction(async (tx) => {
        const r = await insertRevision(tx, {
          hash: c.hash,
          body,
          bytes: c.bytes,
          ...named,
          summary,
          held: c.held,
        });
        await recordEventsIfRevisionInserted(tx, r.revision, revisionEvents(r.revision, named, summary, c.held));
        return r;
      });
      try {
        await pruneRevisions(db, opts.retention);
      } catch (err) {
        opts.logger.warn("pruning old config revisions failed; retrying after the next one", { err });
      }
      return { revision: row.revision, confirmed: row.confirmedAt !== null };
    },
    async served(revision) {
      await markRevisionServed(db, revision);
    },
  };
}
