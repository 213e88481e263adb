import { gunzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { silentLogger } from "../../src/lib/logger.js";
import { ConfigCache, type Snapshot } from "../../src/provider/config-cache.js";
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
    const gz = await cache.body(cfg, "json", true);
    expect(gunzipSync(gz).equals(cfg.json)).toBe(true);
    expect(await cache.body(cfg, "json", true)).toBe(gz);
    const yaml = (await cache.body(cfg, "yaml", false)).toString();
    expect(yaml).toContain("rule: Host(`app.example.com`)");
  });
});
