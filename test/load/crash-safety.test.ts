import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { afterAll, describe, expect, it } from "vitest";
import { ADMIN_TOKEN, waitFor } from "../helpers/app.js";
import { makeTestDb, type TestDb } from "../helpers/db.js";
import { type ServiceProcess, startServiceProcess } from "../helpers/service-process.js";

// kill -9 of the service in the middle of a burst of API writes: every write it acknowledged (201) is in the
// database afterwards, on PostgreSQL and on PGlite, and a PGlite folder reopens after the crash (its lock is stale).
const WRITERS = 8;
const KILL_AFTER_ACKS = 60;
const figures: string[] = [];

afterAll(() => {
  console.log(`crash-safety: ${figures.join("; ")}`);
});

interface Burst {
  acked: string[];
  /** Answers other than 201 before the kill (connection errors after it are expected). */
  unexpected: string[];
  attempted: number;
}

/** Writers POST deployments until `KILL_AFTER_ACKS` are acknowledged, then the service is killed mid-burst. */
async function burstThenKill(svc: ServiceProcess, prefix: string): Promise<Burst> {
  const burst: Burst = { acked: [], unexpected: [], attempted: 0 };
  let killed = false;
  const writer = async (w: number) => {
    for (let n = 0; !killed; n++) {
      const id = `dep_${prefix}_${w}_${n}`;
      burst.attempted++;
      try {
        const r = await fetch(`${svc.url}/api/v1/deployments`, {
          method: "POST",
          headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
          body: JSON.stringify({ id, name: id }),
          signal: AbortSignal.timeout(15_000),
        });
        const text = await r.text();
        if (r.status === 201) {
          burst.acked.push(id);
        } else if (!killed) {
          burst.unexpected.push(`${r.status} ${text.slice(0, 200)}`);
        }
      } catch (err) {
        if (!killed) {
          burst.unexpected.push(String(err));
        }
        return;
      }
    }
  };
  const loops = Array.from({ length: WRITERS }, (_, w) => writer(w));
  await waitFor(async () => burst.acked.length >= KILL_AFTER_ACKS, 60_000, 5);
  killed = true; // from here on, failed requests are the crash
  await svc.kill9();
  await Promise.all(loops);
  return burst;
}

/** Every deployment id the service lists (paged). */
async function listedIds(url: string): Promise<Set<string>> {
  const ids = new Set<string>();
  let after: string | null = null;
  do {
    const q: string = `limit=500${after ? `&after=${encodeURIComponent(after)}` : ""}`;
    const r = await fetch(`${url}/api/v1/deployments?${q}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(r.status).toBe(200);
    const page = (await r.json()) as { items: { id: string }[]; next_cursor: string | null };
    for (const d of page.items) {
      ids.add(d.id);
    }
    after = page.next_cursor;
  } while (after);
  return ids;
}

describe.skipIf(!process.env.DATABASE_URL)("kill -9 mid-burst on PostgreSQL", () => {
  let tdb: TestDb | undefined;
  let svc: ServiceProcess | undefined;
  const dataDir = mkdtempSync(join(tmpdir(), "obiente-crash-")); // secrets only: the rows live in PostgreSQL
  afterAll(async () => {
    await svc?.kill9();
    await tdb?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("loses no acknowledged write", async () => {
    tdb = await makeTestDb("postgres");
    const url = tdb.url ?? "";
    svc = await startServiceProcess({ DATABASE_URL: url, DATA_DIR: dataDir });
    const burst = await burstThenKill(svc, "pg");
    expect(burst.unexpected).toEqual([]);
    const sql = postgres(url, { max: 1, onnotice: () => {} });
    try {
      const rows = await sql<{ id: string }[]>`select id from deployments where id = any(${burst.acked})`;
      const stored = new Set(rows.map((r) => r.id));
      expect(burst.acked.filter((id) => !stored.has(id))).toEqual([]);
      const extra = (await sql<{ n: number }[]>`select count(*)::int as n from deployments`)[0]?.n ?? 0;
      figures.push(
        `PostgreSQL: ${burst.acked.length} acked of ${burst.attempted} sent, all stored (${extra - burst.acked.length} more committed but unanswered)`,
      );
    } finally {
      await sql.end();
    }
  }, 180_000);
});

describe("kill -9 mid-burst on PGlite", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "obiente-crash-pglite-"));
  let svc: ServiceProcess | undefined;
  afterAll(async () => {
    await svc?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("loses no acknowledged write, and the folder reopens (the dead process's lock is taken over)", async () => {
    svc = await startServiceProcess({ DATA_DIR: dataDir });
    const burst = await burstThenKill(svc, "pglite");
    expect(burst.unexpected).toEqual([]);
    const restarting = Date.now();
    svc = await startServiceProcess({ DATA_DIR: dataDir });
    const reopenMs = Date.now() - restarting;
    const listed = await listedIds(svc.url);
    expect(burst.acked.filter((id) => !listed.has(id))).toEqual([]);
    figures.push(
      `PGlite: ${burst.acked.length} acked of ${burst.attempted} sent, all there after the restart (reopened and ready in ${reopenMs}ms, ${listed.size - burst.acked.length} more committed but unanswered)`,
    );
  }, 240_000);
});
