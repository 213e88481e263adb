import { gunzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { silentLogger } from "../../src/lib/logger.js";
import { ConfigCache, type Snapshot } from "../../src/provider/config-cache.js";
import type { Cause, FreezeState, NewCandidate, RevisionLedger } from "../../src/provider/revisions.js";
import { aReplica, aRoute, settings } from "../fixtures/rows.js";

const clock = { now: () => new Date("2026-01-01T00:00:00Z") };

function makeCache(load: () => Promise<Snapshot>, coalesceMs = 5) {
  return new ConfigCache({ load, settings, clock, logger: silentLogger, coalesceMs });
}

describe("ConfigCache", () => {
  it("renders once and serves later reads from memory", async () => {
    let loads = 0;
    const cache = makeCache(async () => {
      loads++;
      return { routes: [aRoute()], replicas: [aReplica()] };
    });
    const first = await cache.ensureFresh();
    for (let i = 0; i < 100; i++) {
      expect(await cache.ensureFresh()).toBe(first);
    }
    expect(loads).toBe(1);
    expect(first?.revision).toBe(1);
    expect(JSON.parse(first?.json.toString() ?? "{}").http.routers).toHaveProperty("dep-a--rt-1");
  });

  it("coalesces a burst of invalidations into one render", async () => {
    let loads = 0;
    const cache = makeCache(async () => {
      loads++;
      return { routes: [aRoute()], replicas: [] };
    }, 20);
    await cache.ensureFresh();
    for (let i = 0; i < 50; i++) {
      cache.invalidate();
    }
    await new Promise((r) => setTimeout(r, 60));
    expect(loads).toBe(2);
    cache.close();
  });

  it("keeps the revision when the bytes do not change, bumps it when they do", async () => {
    let healthy = true;
    const cache = makeCache(async () => ({
      routes: [aRoute()],
      replicas: [aReplica({ healthStatus: healthy ? "healthy" : "unhealthy" })],
    }));
    const a = await cache.ensureFresh();
    cache.invalidate();
    const b = await cache.ensureFresh();
    expect(b).toBe(a);
    healthy = false;
    cache.invalidate();
    const c = await cache.ensureFresh();
    expect(c?.revision).toBe(2);
    expect(c?.hash).not.toBe(a?.hash);
    cache.close();
  });

  it("serves the last good config, marked stale, when the database fails", async () => {
    let fail = false;
    const cache = makeCache(async () => {
      if (fail) {
        throw new Error("connection refused");
      }
      return { routes: [aRoute()], replicas: [] };
    });
    const good = await cache.ensureFresh();
    fail = true;
    cache.invalidate();
    expect(await cache.ensureFresh()).toBe(good);
    expect(cache.stale).toBe(true);
    fail = false;
    cache.invalidate();
    await cache.ensureFresh();
    expect(cache.stale).toBe(false);
    cache.close();
  });

  it("has no config at all when the first load fails", async () => {
    const cache = makeCache(async () => {
      throw new Error("down");
    });
    expect(await cache.ensureFresh()).toBeUndefined();
    expect(cache.stale).toBe(true);
  });

  it("derives YAML and gzip variants from the same bytes, once per revision", async () => {
    const cache = makeCache(async () => ({ routes: [aRoute()], replicas: [aReplica()] }));
    const cfg = await cache.ensureFresh();
    if (!cfg) {
      throw new Error("no config");
    }
    const gz = Buffer.concat([await cache.body(cfg, "json", true)].flat());
    expect(gunzipSync(gz).equals(cfg.json)).toBe(true);
    expect(Buffer.concat([await cache.body(cfg, "json", true)].flat()).equals(gz)).toBe(true);
    // Plain JSON comes as the document's pieces; joined, they are the served bytes.
    expect(Buffer.concat([await cache.body(cfg, "json", false)].flat()).equals(cfg.json)).toBe(true);
    const yaml = Buffer.concat([await cache.body(cfg, "yaml", false)].flat()).toString();
    expect(yaml).toContain("rule: Host(`app.example.com`)");
  });
});

/** The ledger's contract in memory: unique on hash, numbers from a counter, a freeze, served stamps. */
class MemoryLedger implements RevisionLedger {
  rows: { revision: number; hash: string; json: Buffer; cause: Cause; held: boolean; confirmed: boolean }[] = [];
  frozen: FreezeState | undefined;
  servedLog: number[] = [];
  failRecord = false;
  private next = 1;

  async freeze() {
    return this.frozen;
  }
  async lastServed() {
    const n = this.servedLog.at(-1);
    return n === undefined ? undefined : this.load(n);
  }
  async load(revision: number) {
    const r = this.rows.find((x) => x.revision === revision);
    return r && { revision: r.revision, hash: r.hash, json: r.json, createdAt: clock.now() };
  }
  async record(c: NewCandidate) {
    if (this.failRecord) {
      throw new Error("connection refused");
    }
    let r = this.rows.find((x) => x.hash === c.hash);
    if (r) {
      if (r.cause.cause === "feed" && c.cause.cause !== "feed") {
        r.cause = c.cause;
      }
      r.held ||= c.held;
    } else {
      c.summary();
      r = { revision: this.next++, hash: c.hash, json: c.json(), cause: c.cause, held: c.held, confirmed: false };
      this.rows.push(r);
    }
    return { revision: r.revision, confirmed: r.confirmed };
  }
  async served(revision: number) {
    this.servedLog.push(revision);
  }
}

const guard = { maxRemovedPercent: 50, minRouters: 10 };
const routes = (n: number) =>
  Array.from({ length: n }, (_, i) => aRoute({ id: `rt_${i}`, deploymentId: `dep_${i}`, domain: `a${i}.example.com` }));

function ledgerCache(ledger: RevisionLedger, load: () => Promise<Snapshot>) {
  return new ConfigCache({ load, settings, clock, logger: silentLogger, coalesceMs: 1, ledger, guard });
}

describe("ConfigCache with durable revisions", () => {
  it("records a revision only when the bytes change, and bytes seen before keep their number", async () => {
    const ledger = new MemoryLedger();
    let n = 1;
    const cache = ledgerCache(ledger, async () => ({ routes: routes(n), replicas: [] }));
    expect((await cache.ensureFresh())?.revision).toBe(1);
    cache.invalidate();
    expect((await cache.ensureFresh())?.revision).toBe(1);
    n = 2;
    cache.invalidate();
    expect((await cache.ensureFresh())?.revision).toBe(2);
    n = 1;
    cache.invalidate();
    expect((await cache.ensureFresh())?.revision).toBe(1);
    expect(ledger.rows.map((r) => r.revision)).toEqual([1, 2]);
    expect(ledger.servedLog).toEqual([1, 2, 1]); // stamped once per change of the served revision
    cache.close();
  });

  it("records the earliest specific cause since the last render; the feed never overrides a write", async () => {
    const ledger = new MemoryLedger();
    let n = 1;
    const cache = ledgerCache(ledger, async () => ({ routes: routes(n), replicas: [] }));
    await cache.ensureFresh();
    expect(ledger.rows[0]?.cause).toEqual({ cause: "startup" });
    n = 2;
    cache.invalidate({ cause: "feed" });
    cache.invalidate({ cause: "api", actor: "admin:0123abcd", detail: "PUT /x" });
    cache.invalidate({ cause: "health", actor: "node-1" });
    cache.invalidate({ cause: "feed" });
    await cache.ensureFresh();
    expect(ledger.rows[1]?.cause).toEqual({ cause: "api", actor: "admin:0123abcd", detail: "PUT /x" });
    cache.close();
  });

  it("serves the frozen revision while renders go on, and the current state once the freeze is lifted", async () => {
    const ledger = new MemoryLedger();
    let n = 1;
    const cache = ledgerCache(ledger, async () => ({ routes: routes(n), replicas: [] }));
    const first = await cache.ensureFresh();
    ledger.frozen = { revision: 1, reason: "incident", actor: null, frozenAt: clock.now() };
    n = 3;
    cache.invalidate();
    const frozen = await cache.ensureFresh();
    expect(frozen).toMatchObject({ revision: 1, frozen: 1 });
    expect(frozen?.json.equals(first?.json ?? Buffer.alloc(0))).toBe(true);
    expect(cache.latest?.revision).toBe(2); // rendered and recorded, waiting
    ledger.frozen = undefined;
    cache.invalidate();
    const after = await cache.ensureFresh();
    expect(after?.revision).toBe(2);
    expect(after?.frozen).toBeUndefined();
    cache.close();
  });

  it("holds a mass removal, keeps the served bytes, and serves it once confirmed", async () => {
    const ledger = new MemoryLedger();
    let n = 10;
    const cache = ledgerCache(ledger, async () => ({ routes: routes(n), replicas: [] }));
    const before = await cache.ensureFresh();
    n = 2;
    cache.invalidate();
    expect(await cache.ensureFresh()).toBe(before);
    expect(cache.held).toMatchObject({ revision: 2, decision: { hold: true, removedPercent: 80 } });
    expect(ledger.rows[1]?.held).toBe(true);
    const row = ledger.rows[1];
    if (row) {
      row.confirmed = true;
    }
    cache.invalidate({ cause: "confirm" });
    expect((await cache.ensureFresh())?.revision).toBe(2);
    expect(cache.held).toBeUndefined();
    cache.close();
  });

  it("serves a later render that falls under the limit relative to what is served", async () => {
    const ledger = new MemoryLedger();
    let n = 10;
    const cache = ledgerCache(ledger, async () => ({ routes: routes(n), replicas: [] }));
    await cache.ensureFresh();
    n = 1;
    cache.invalidate();
    expect((await cache.ensureFresh())?.revision).toBe(1);
    n = 8; // removes 2 of 10 deployments from what is served
    cache.invalidate();
    expect((await cache.ensureFresh())?.revision).toBe(3);
    expect(cache.held).toBeUndefined();
    cache.close();
  });

  it("after a restart, holds a mass removal against the revision served last", async () => {
    const ledger = new MemoryLedger();
    const first = ledgerCache(ledger, async () => ({ routes: routes(10), replicas: [] }));
    const served = await first.ensureFresh();
    first.close();
    const restarted = ledgerCache(ledger, async () => ({ routes: routes(1), replicas: [] }));
    const cfg = await restarted.ensureFresh();
    expect(cfg?.revision).toBe(served?.revision);
    expect(cfg?.json.equals(served?.json ?? Buffer.alloc(0))).toBe(true);
    expect(restarted.held?.revision).toBe(2);
    restarted.close();
  });

  it("keeps the last good config, stale, when the revision cannot be recorded, and records it on retry", async () => {
    const ledger = new MemoryLedger();
    let n = 1;
    const cache = ledgerCache(ledger, async () => ({ routes: routes(n), replicas: [] }));
    const good = await cache.ensureFresh();
    ledger.failRecord = true;
    n = 2;
    cache.invalidate({ cause: "api", actor: "admin:1" });
    expect(await cache.ensureFresh()).toBe(good);
    expect(cache.stale).toBe(true);
    ledger.failRecord = false;
    cache.invalidate();
    expect((await cache.ensureFresh())?.revision).toBe(2);
    expect(cache.stale).toBe(false);
    expect(ledger.rows[1]?.cause).toEqual({ cause: "api", actor: "admin:1" }); // the retry keeps the cause
    cache.close();
  });
});
