import { describe, expect, it } from "vitest";
import {
  normalizeHost,
  type ProxyReplicaRow,
  type ProxyRouteRow,
  RoutingTable,
  type TableBackend,
} from "../../src/proxy/table.js";

const NOW = new Date("2026-06-01T12:00:00Z");
const secondsAgo = (s: number) => new Date(NOW.getTime() - s * 1000);

function route(over: Partial<ProxyRouteRow> = {}): ProxyRouteRow {
  return {
    id: "rt_a",
    deploymentId: "dep_a",
    domain: "a.example.com",
    pathPrefix: "/",
    targetPort: 3000,
    protocol: "http",
    isPrimary: true,
    healthIntervalSeconds: null,
    ...over,
  };
}

function replica(id: string, cpu: number | null, over: Partial<ProxyReplicaRow> = {}): ProxyReplicaRow {
  return {
    id,
    deploymentId: "dep_a",
    address: "10.0.0.1",
    port: null,
    status: "running",
    healthStatus: "healthy",
    cpuUsage: cpu,
    cpuUpdatedAt: cpu === null ? null : secondsAgo(1),
    ...over,
  };
}

/** A table with one deployment (dep_a, default interval 30 s) and the given replicas. */
function tableOf(replicas: ProxyReplicaRow[], routes: ProxyRouteRow[] = [route()]) {
  return RoutingTable.build({ routes, replicas }, { defaultIntervalSeconds: 30 });
}

function backendOf(table: RoutingTable, id = "dep_a"): TableBackend {
  const b = table.byDeployment(id, "", "/");
  if (!b) {
    throw new Error(`no backend for ${id}`);
  }
  return b;
}

function picks(table: RoutingTable, n: number, excluding?: string): string[] {
  const b = backendOf(table);
  return Array.from({ length: n }, () => table.pickReplica(b, NOW, excluding)?.id ?? "-");
}

describe("pickReplica", () => {
  it("sends every request to the healthy replica with the lowest fresh CPU", () => {
    const t = tableOf([replica("r1", 50), replica("r2", 10), replica("r3", 30)]);
    expect(picks(t, 5)).toEqual(["r2", "r2", "r2", "r2", "r2"]);
  });

  it("ignores unhealthy and not-running replicas, whatever their CPU", () => {
    const t = tableOf([
      replica("r1", 1, { healthStatus: "unhealthy" }),
      replica("r2", 2, { status: "stopping" }),
      replica("r3", 3, { healthStatus: "unknown" }),
      replica("r4", 90),
    ]);
    expect(picks(t, 3)).toEqual(["r4", "r4", "r4"]);
  });

  it("returns undefined when no replica is healthy", () => {
    const t = tableOf([replica("r1", 5, { healthStatus: "unhealthy" })]);
    expect(picks(t, 1)).toEqual(["-"]);
  });

  it("rotates round-robin among replicas tied on the lowest CPU", () => {
    const t = tableOf([replica("r1", 20), replica("r2", 20), replica("r3", 60)]);
    expect(picks(t, 4)).toEqual(["r1", "r2", "r1", "r2"]);
  });

  it("rotates over all replicas when none has a reading", () => {
    const t = tableOf([replica("r3", null), replica("r1", null), replica("r2", null)]);
    expect(picks(t, 6)).toEqual(["r1", "r2", "r3", "r1", "r2", "r3"]);
  });

  it("counts a replica without a reading as tied with the best (a new replica still gets traffic)", () => {
    const t = tableOf([replica("r1", 40), replica("r2", 10), replica("r3", null)]);
    expect(picks(t, 4)).toEqual(["r2", "r3", "r2", "r3"]);
  });

  it("treats a reading older than 3 check intervals as missing (freshCpu)", () => {
    const t = tableOf([
      replica("r1", 40),
      replica("r2", 5, { cpuUpdatedAt: secondsAgo(91) }), // 3 × 30 s + 1 s: stale
      replica("r3", 30, { cpuUpdatedAt: secondsAgo(90) }), // exactly 3 intervals: still fresh
    ]);
    expect(picks(t, 4)).toEqual(["r2", "r3", "r2", "r3"]);
  });

  it("uses the deployment's own check interval for freshness", () => {
    const routes = [route({ healthIntervalSeconds: 5 })];
    const t = tableOf([replica("r1", 40), replica("r2", 5, { cpuUpdatedAt: secondsAgo(16) })], routes);
    expect(picks(t, 2)).toEqual(["r1", "r2"]); // 16 s > 3 × 5 s: r2's reading is stale, so it is tied in
  });

  it("excludes one replica for the retry and falls back to the next best", () => {
    const t = tableOf([replica("r1", 50), replica("r2", 10), replica("r3", 30)]);
    expect(picks(t, 2, "r2")).toEqual(["r3", "r3"]);
    const lone = tableOf([replica("r1", 10)]);
    expect(picks(lone, 1, "r1")).toEqual(["-"]);
  });

  it("takes a replica out at once with markUnhealthy", () => {
    const t = tableOf([replica("r1", 50), replica("r2", 10)]);
    expect(t.markUnhealthy("r2")).toBe(true);
    expect(t.markUnhealthy("nope")).toBe(false);
    expect(picks(t, 2)).toEqual(["r1", "r1"]);
  });

  it("continues the rotation in a table rebuilt from a new snapshot", () => {
    const replicas = [replica("r1", null), replica("r2", null), replica("r3", null)];
    const first = tableOf(replicas);
    expect(picks(first, 2)).toEqual(["r1", "r2"]);
    const second = RoutingTable.build({ routes: [route()], replicas }, { defaultIntervalSeconds: 30 }, first);
    expect(picks(second, 2)).toEqual(["r3", "r1"]);
  });
});

describe("routing table lookups", () => {
  const routes = [
    route(),
    route({ id: "rt_api", pathPrefix: "/api", targetPort: 4000, isPrimary: false }),
    route({ id: "rt_w", deploymentId: "dep_w", domain: "*.apps.example.com" }),
    route({ id: "rt_x", deploymentId: "dep_x", domain: "exact.apps.example.com" }),
    route({ id: "rt_bad", deploymentId: "dep_bad", domain: "Not A Domain" }),
  ];
  const replicas = [
    replica("r1", 10),
    replica("w1", 10, { deploymentId: "dep_w", address: "fd00::7", port: 8080 }),
    replica("x1", 10, { deploymentId: "dep_x", address: "bad address!" }),
  ];
  const t = RoutingTable.build({ routes, replicas }, { defaultIntervalSeconds: 30 });

  it("has no lookup by Host: a request reaches only the deployment its trusted header names", () => {
    expect("byHost" in t).toBe(false);
    expect(t.byDeployment("a.example.com", "a.example.com", "/")).toBeUndefined();
    expect(t.byDeployment("dep_w", "one.apps.example.com", "/")?.deploymentId).toBe("dep_w");
  });

  it("resolves a header-routed deployment to the route matching the host, else its primary route", () => {
    expect(t.byDeployment("dep_a", "a.example.com", "/api")?.key).toBe("dep_a|http|4000");
    expect(t.byDeployment("dep_a", "other.example.com", "/api")?.key).toBe("dep_a|http|3000");
    expect(t.byDeployment("dep_nope", "a.example.com", "/")).toBeUndefined();
  });

  it("builds origins from the replica port or the route's target port, IPv6 in brackets", () => {
    const a = backendOf(t);
    expect(a.replicas.map((r) => r.origin)).toEqual(["http://10.0.0.1:3000"]);
    const api = t.byDeployment("dep_a", "a.example.com", "/api");
    expect(api?.replicas.map((r) => r.origin)).toEqual(["http://10.0.0.1:4000"]);
    expect(t.byDeployment("dep_w", "x.apps.example.com", "/")?.replicas.map((r) => r.origin)).toEqual([
      "http://[fd00::7]:8080",
    ]);
    expect([...t.origins].sort()).toEqual(["http://10.0.0.1:3000", "http://10.0.0.1:4000", "http://[fd00::7]:8080"]);
  });

  it("skips rows the renderer would skip (invalid domain, invalid address)", () => {
    expect(t.byDeployment("dep_bad", "", "/")).toBeUndefined();
    expect(t.byDeployment("dep_x", "", "/")?.replicas).toEqual([]);
  });
});

describe("normalizeHost", () => {
  it("lower-cases and drops the port and a trailing dot", () => {
    expect(normalizeHost("App.Example.COM:8443")).toBe("app.example.com");
    expect(normalizeHost("app.example.com.")).toBe("app.example.com");
    expect(normalizeHost("[::1]:80")).toBe("[::1]");
    expect(normalizeHost("")).toBe("");
  });
});

describe("following changes one deployment at a time", () => {
  const routes = [route(), route({ id: "rt_b", deploymentId: "dep_b", domain: "b.example.com" })];
  const replicas = [
    replica("r1", null),
    replica("r2", null),
    replica("b1", 10, { deploymentId: "dep_b", address: "10.0.0.2" }),
  ];

  it("replaces only the named deployment's entry; the others keep their objects and rotation", () => {
    const t = RoutingTable.build({ routes, replicas }, { defaultIntervalSeconds: 30 });
    const b = backendOf(t, "dep_b");
    expect(picks(t, 1)).toEqual(["r1"]);
    const left = t.replaceDeployments(["dep_a"], {
      routes: [route({ targetPort: 3000 })],
      replicas: [replica("r1", null), replica("r2", null), replica("r3", null, { address: "10.0.0.3" })],
    });
    expect(left).toEqual([]);
    expect(backendOf(t, "dep_b")).toBe(b);
    expect(picks(t, 3)).toEqual(["r2", "r3", "r1"]); // the rotation goes on where it was
    expect([...t.origins].sort()).toEqual(["http://10.0.0.1:3000", "http://10.0.0.2:3000", "http://10.0.0.3:3000"]);
  });

  it("drops a deployment without rows from the table and names the origins nobody dials any more", () => {
    const t = RoutingTable.build({ routes, replicas }, { defaultIntervalSeconds: 30 });
    const left = t.replaceDeployments(["dep_b"], { routes: [], replicas: [] });
    expect(left).toEqual(["http://10.0.0.2:3000"]);
    expect(t.byDeployment("dep_b", "", "/")).toBeUndefined();
    expect(t.deploymentCount).toBe(1);
    expect(t.deploymentIds()).toEqual(["dep_a"]);
    expect(t.markUnhealthy("b1")).toBe(false);
    expect(t.hasOrigin("http://10.0.0.2:3000")).toBe(false);
  });

  it("keeps an origin another deployment still dials", () => {
    const shared = [...replicas, replica("b2", null, { deploymentId: "dep_b" })]; // 10.0.0.1:3000, as dep_a's
    const t = RoutingTable.build({ routes, replicas: shared }, { defaultIntervalSeconds: 30 });
    expect(t.replaceDeployments(["dep_b"], { routes: [], replicas: [] })).toEqual(["http://10.0.0.2:3000"]);
    expect(t.hasOrigin("http://10.0.0.1:3000")).toBe(true);
  });

  it("adds a deployment that was not in the table", () => {
    const t = RoutingTable.build({ routes: [], replicas: [] }, { defaultIntervalSeconds: 30 });
    expect(t.deploymentCount).toBe(0);
    t.replaceDeployments(["dep_a"], { routes: [route()], replicas: [replica("r1", 5)] });
    expect(picks(t, 2)).toEqual(["r1", "r1"]);
  });

  it("updates CPU readings in place, for the replicas it knows", () => {
    const t = tableOf([replica("r1", 50), replica("r2", 10)]);
    expect(picks(t, 1)).toEqual(["r2"]);
    const changed = t.updateCpu([
      { id: "r1", cpuUsage: 5, cpuUpdatedAt: secondsAgo(1) },
      { id: "r2", cpuUsage: 10, cpuUpdatedAt: secondsAgo(1) }, // the same reading: no change
      { id: "elsewhere", cpuUsage: 1, cpuUpdatedAt: secondsAgo(1) },
    ]);
    expect(changed).toBe(1);
    expect(picks(t, 2)).toEqual(["r1", "r1"]);
  });
});
