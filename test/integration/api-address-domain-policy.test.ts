import { sql } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import { deploymentLocations, deploymentRouting } from "../../schema/tables.js";
import type { Probe, ProbeTarget } from "../../src/health/probe.js";
import { expectInvalid, type LocationJson } from "../helpers/api-client.js";
import { useApiServer } from "../helpers/api-server.js";
import { DRIVERS } from "../helpers/db.js";
import { fakeClock } from "../helpers/replica.js";

// Issue 10 items 7 and 8 through the real API: which replica addresses and route domains get in, why the others
// are refused, and that rows written by hand past the API are neither rendered nor probed.

const ALLOWED = "169.254.10.0/24,fe80::10";

describe.each(DRIVERS)("replica address and domain policy on %s", (driver) => {
  const clock = fakeClock();
  const probed: string[] = [];
  const probe: Probe = async (target: ProbeTarget) => {
    probed.push(target.address);
    return { ok: true, at: clock.now(), durationMs: 1 };
  };
  const srv = useApiServer(
    driver,
    { HEALTH_ENABLED: "true", REPLICA_ALLOWED_CIDRS: ALLOWED },
    { start: { clock, probe, schedule: () => () => {} } }, // no cron: the test drives rounds
  );
  const { api } = srv;

  beforeAll(async () => {
    await srv.seedDeployment("dep_pol", { domain: "pol.example.com", target_port: 8080 });
  });

  const putReplica = (id: string, address: string) =>
    api.put<LocationJson>(`/api/v1/deployments/dep_pol/locations/${id}`, { address, port: 8080 });
  const servers = async () => {
    const { config } = await api.traefikConfig();
    const service = Object.entries(config.http?.services ?? {}).find(([name]) => name.includes("dep-pol"));
    return (service?.[1].loadBalancer?.servers ?? []).map((s) => s.url);
  };

  it.each([
    ["169.254.169.254", "cloud metadata address", true],
    ["fd00:ec2::254", "cloud metadata address", true],
    ["::ffff:169.254.169.254", "cloud metadata address", true],
    ["metadata.google.internal", "cloud metadata host name", false],
    ["instance-data", "cloud metadata host name", false],
    ["169.254.1.1", "link-local address", true],
    ["fe80::1", "link-local address", true],
    ["0.0.0.0", "unspecified", true],
    ["::", "unspecified", true],
    ["224.0.0.1", "multicast address", true],
    ["ff02::1", "multicast address", true],
    ["255.255.255.255", "broadcast address", true],
    ["2130706433", "numeric host alias", false],
    ["0x7f000001", "numeric host alias", false],
    ["127.1", "numeric host alias", false],
    ["0", "numeric host alias", false],
    ["127.000.000.001", "numeric host alias", false],
    ["fe80::10%eth0", "zone id", false],
  ])("refuses replica address %s: %s", async (address, reason, allowable) => {
    const p = expectInvalid(await putReplica("refused_1", address), "body.address");
    const message = p.errors?.[0]?.message ?? "";
    expect(message).toContain(reason);
    // An address an operator could allow says how; a name or a malformed address does not pretend it could be.
    expect(message.includes("unless REPLICA_ALLOWED_CIDRS covers it")).toBe(allowable);
    const listed = await api.get<{ items: LocationJson[] }>("/api/v1/deployments/dep_pol/locations");
    expect(listed.body.items.map((l) => l.id)).not.toContain("refused_1");
  });

  it.each([
    ["127.0.0.1"],
    ["10.0.0.1"],
    ["192.168.7.7"],
    ["::1"],
    ["fd00::1"],
    ["web-1.internal"],
    ["svc"],
    ["169.254.10.5"], // link-local, but REPLICA_ALLOWED_CIDRS covers it
    ["::ffff:169.254.10.5"],
    ["fe80::10"],
  ])("accepts replica address %s", async (address) => {
    const r = await putReplica("accepted_1", address);
    expect([200, 201]).toContain(r.status);
    expect(r.body.address).toBe(address);
  });

  it("neither routes nor probes replica rows written past the API with refused addresses", async () => {
    const db = srv.db;
    await db.delete(deploymentLocations).where(sql`deployment_id = 'dep_pol'`);
    await db.insert(deploymentLocations).values([
      { id: "hand_meta", deploymentId: "dep_pol", address: "169.254.169.254", port: 80, healthStatus: "healthy" },
      { id: "hand_alias", deploymentId: "dep_pol", address: "2130706433", port: 80, healthStatus: "healthy" },
      {
        id: "hand_gcp",
        deploymentId: "dep_pol",
        address: "metadata.google.internal",
        port: 80,
        healthStatus: "healthy",
      },
      { id: "hand_ok", deploymentId: "dep_pol", address: "169.254.10.7", port: 80, healthStatus: "healthy" },
    ]);
    srv.cache.invalidate();
    await srv.cache.ensureFresh();
    expect(await servers()).toEqual(["http://169.254.10.7:80"]);

    probed.length = 0;
    clock.advance(60);
    await srv.checker.runRound();
    expect(probed).toEqual(["169.254.10.7"]);
    const rows = await api.get<{ items: LocationJson[] }>("/api/v1/deployments/dep_pol/locations");
    const lastError = new Map(rows.body.items.map((l) => [l.id, l.last_error]));
    expect(lastError.get("hand_meta")).toBe(
      "not probed: 169.254.169.254 is a cloud metadata address; replicas may not use it unless REPLICA_ALLOWED_CIDRS covers it",
    );
    expect(lastError.get("hand_alias")).toContain("not probed: address is a numeric host alias");
    expect(lastError.get("hand_gcp")).toContain("not probed: metadata.google.internal is a cloud metadata host name");
    expect(lastError.get("hand_ok")).toBeNull();
  });

  const addDomain = (domain: string) => api.post("/api/v1/deployments/dep_pol/domains", { domain });

  it.each([
    ["co.uk", "co.uk is a public suffix"],
    ["github.io", "github.io is a public suffix"],
    ["公司.cn", "xn--55qx5d.cn is a public suffix"],
    ["*.co.uk", "wildcard directly under the public suffix co.uk"],
    ["*.github.io", "wildcard directly under the public suffix github.io"],
    ["xn--abc.example.com", "label xn--abc is not valid punycode"],
    ["xn--wca.example.com", "label xn--wca is not valid punycode"],
    ["abcא.example.com", "bidi rule (RFC 5893"],
    ["3com.مثال", "bidi rule (RFC 5893"],
  ])("refuses domain %s: %s", async (domain, reason) => {
    for (const reply of [await addDomain(domain), await api.put("/api/v1/deployments/dep_pol/routing", { domain })]) {
      const p = expectInvalid(reply, "body.domain");
      expect(p.errors?.[0]?.message).toContain(reason);
    }
  });

  it.each([["app.example.co.uk"], ["*.alice.github.io"], ["alice.github.io"], ["مثال.إختبار"], ["bücher.de"]])(
    "accepts domain %s without warnings",
    async (domain) => {
      const r = await addDomain(domain);
      expect(r.status).toBe(201);
      expect(r.body).not.toHaveProperty("warnings");
    },
  );

  it("accepts a mixed-script domain but warns about homoglyphs on add and on routing", async () => {
    const warning =
      "label xn--pypal-4ve (pаypal) mixes Latin and Cyrillic letters: it may imitate another name (homoglyphs)";
    const added = await addDomain("pаypal.example.com"); // Cyrillic а
    expect({ status: added.status, warnings: added.body.warnings }).toEqual({ status: 201, warnings: [warning] });
    const routed = await api.put("/api/v1/deployments/dep_pol/routing", { domain: "shop.pаypal.example.com" });
    expect({ status: routed.status, warnings: routed.body.warnings }).toEqual({ status: 200, warnings: [warning] });
    const plain = await api.put("/api/v1/deployments/dep_pol/routing", { domain: "pol.example.com" });
    expect(plain.status).toBe(200);
    expect(plain.body).not.toHaveProperty("warnings");
  });

  it("does not render a wildcard under a public suffix written past the API, and still lets it be deleted", async () => {
    await srv.db
      .insert(deploymentRouting)
      .values({ id: "rt_hand_psl", deploymentId: "dep_pol", domain: "*.co.uk", targetPort: 80 });
    srv.cache.invalidate();
    await srv.cache.ensureFresh();
    const { config } = await api.traefikConfig();
    const routers = Object.keys(config.http?.routers ?? {});
    expect(routers.filter((name) => name.startsWith("dep-pol--rt-hand-psl"))).toEqual([]);
    expect(routers.length).toBeGreaterThan(0); // the deployment's other routes are still served
    const del = await api.delete(`/api/v1/deployments/dep_pol/domains/${encodeURIComponent("*.co.uk")}`);
    expect(del.status).toBe(204);
  });
});
