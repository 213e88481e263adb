import { sql } from "drizzle-orm";
import type { Db } from "../db/client.js";
import { type RoutingSnapshot, readSnapshot } from "../db/repo/snapshot.js";

// A preview runs proposed writes for real, in one transaction on the real database, and rolls it back: constraints,
// conflicts, cascades and the repo functions' own checks behave exactly as they would, and nothing stays.
// `obiente.preview = on` (SET LOCAL) keeps the change trigger silent: no NOTIFY, no step of routing_change_seq
// (nextval is not transactional: a rolled-back preview would otherwise make every instance re-render).
// See schema/migrations/0006_revisions_freeze.sql.

/** One proposed write; resolves to extra members of its answer. */
export type PreviewStep = (db: Db) => Promise<Record<string, unknown> | undefined>;

export type StepOutcome = { ok: true; extra?: Record<string, unknown> | undefined } | { ok: false; error: Error };

export interface PreviewRun {
  /** The state before the steps and after them, read in the same transaction (repeatable read). */
  before: RoutingSnapshot;
  after: RoutingSnapshot;
  /** One per step, in order. */
  outcomes: StepOutcome[];
}

export interface PreviewOptions {
  /** Decrypts uploaded keys for the snapshots (as the served config's loader does). */
  certKey?: Buffer | undefined;
  /** True for an error that is the step's answer (a 404, a 409, a 400); anything else aborts the preview. */
  isRefusal: (err: Error) => boolean;
}

/** Thrown out of the transaction callback to roll it back with the run in hand. */
class RolledBack extends Error {
  constructor(readonly run: PreviewRun) {
    super("preview rolled back");
  }
}

const SERIALIZATION_FAILURE = "40001";
const ATTEMPTS = 3;

/**
 * Runs the steps in one transaction that is always rolled back, each in its own savepoint (a refused step leaves
 * the transaction usable on PostgreSQL, and its partial writes are undone), and reads the routing state before
 * and after. A step's refusal is recorded; any other error aborts (and rolls back) the whole preview.
 */
export async function runPreview(db: Db, steps: readonly PreviewStep[], opts: PreviewOptions): Promise<PreviewRun> {
  for (let attempt = 1; ; attempt++) {
    try {
      await db.transaction(
        async (tx) => {
          await tx.execute(sql`select set_config('obiente.preview', 'on', true)`); // first: before any write
          const before = await readSnapshot(tx, opts.certKey);
          const outcomes: StepOutcome[] = [];
          for (const step of steps) {
            try {
              const extra = await tx.transaction((sp) => step(sp));
              outcomes.push({ ok: true, extra });
            } catch (err) {
              if (!(err instanceof Error) || !opts.isRefusal(err)) {
                throw err;
              }
              outcomes.push({ ok: false, error: err });
            }
          }
          const after = await readSnapshot(tx, opts.certKey);
          throw new RolledBack({ before, after, outcomes });
        },
        // One view of the database for before, the steps and after; a concurrent commit does not leak in between.
        { isolationLevel: "repeatable read" },
      );
    } catch (err) {
      if (err instanceof RolledBack) {
        return err.run;
      }
      // Repeatable read: a step that updates a row another transaction changed since our snapshot fails with
      // 40001; the whole preview is simply run again on a fresh snapshot.
      if (attempt < ATTEMPTS && pgCode(err) === SERIALIZATION_FAILURE) {
        continue;
      }
      throw err;
    }
    throw new Error("preview transaction committed"); // unreachable: the callback always throws
  }
}

function pgCode(err: unknown): string | undefined {
  const e = err as { code?: unknown; cause?: { code?: unknown } } | null;
  const code = e?.code ?? e?.cause?.code;
  return typeof code === "string" ? code : undefined;
}
