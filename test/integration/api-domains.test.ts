import { beforeAll, describe, expect, it } from "vitest";
import { deploymentServiceName, routeName } from "../../src/render/names.js";
import { ruleFor, wildcardRegexp } from "../../src/render/rules.js";
import {
  type DnsJson,
  expectInvalid,
  expectProblem,
  inProcessApp,
  type RouteJson,
  type RoutingJson,
} from "../helpers/api-client.js";
import { useApiServer } from "../helpers/api-server.js";
import { testConfig } from "../helpers/app.js";
import { DRIVERS, makeTestDb } from "../helpers/db.js";
import { staticConfigWith } from "../helpers/traefik-schema.js";

const IPV4 = ["203.0.113.10", "203.0.113.11"];
const IPV6 = "2001:db8::10";
const CNAME = "edge.example.net";

interface AddedJson {
  route: RouteJson;
  dns_records: DnsJson[];
}
type DomainItem = RouteJson & { dns_records: DnsJson[] };

/** What a user must create: A/AAAA at an apex (no CNAME allowed there), a CNAME below it. */
const apexRecords = (name: string): DnsJson[] => [
  ...IPV4.map((value) => ({ type: "A" as const, name, value })),
  { type: "AAAA", name, value: IPV6 },
];
const cnameRecords = (name: string): DnsJson[] => [{ type: "CNAME", name, value: CNAME }];

describe.each(DRIVERS)("/api/v1/deployments/:id/domains on %s", (driver) => {
  const srv = useApiServer(
    driver,
    { PUBLIC_IPS: `${IPV4.join(",")}, ${IPV6}`, PUBLIC_CNAME_TARGET: CNAME },
    { staticConfig: staticConfigWith({ resolvers: ["shop-ca"] }) }, // shop-ca: a resolver of its own
  );
  const { api } = srv;

  beforeAll(async () => {
    await srv.seedDeployment("dep_shop", {
      domain: "shop-primary.example.com",
      target_port: 3000,
      protocol: "https",
      load_balancer_algo: "ip-hash",
      ssl_cert_resolver: "shop-ca",
    });
    await srv.seedDeployment("dep_other", { domain: "other.example.com", target_port: 4000 });
    await srv.seedDeployment("dep_bare");
  });

  const routing = async (id: string) => (await api.get<RoutingJson>(`/api/v1/deployments/${id}/routing`)).body;

  it("adds an apex domain: 201, a route inheriting the primary's settings, and A/AAAA records", async () => {
    const primary = await routing("dep_shop");
    const r = await api.post<AddedJson>("/api/v1/deployments/dep_shop/domains", {
      domain: "myapp.com",
      path_prefix: "/",
    });
    expect(r.status).toBe(201);
    expect(r.contentType).toMatch(/^application\/json/);
    expect(r.body).toEqual({
      route: {
        id: expect.stringMatching(/^rt_[0-9a-z]{12}$/),
        deployment_id: "dep_shop",
        domain: "myapp.com",
        path_prefix: "/",
        target_port: primary.target_port,
        protocol: primary.protocol,
        load_balancer_algo: primary.load_balancer_algo,
        ssl_enabled: primary.ssl_enabled,
        ssl_cert_resolver: primary.ssl_cert_resolver,
        tls_include_apex: false,
        is_primary: false,
        verification: { status: "verified", verified_at: null },
        created_at: expect.any(String),
        updated_at: expect.any(String),
      },
      verification: { status: "verified", verified_at: null },
      dns_records: apexRecords("myapp.com"),
    });
    const { config } = await api.traefikConfig();
    const name = routeName({ id: r.body.route.id, deploymentId: "dep_shop" });
    expect(config.http.routers[name]?.rule).toBe(ruleFor("myapp.com", "/"));
    // The new domain's routers point at the deployment's one service (no service of its own).
    expect(config.http.routers[name]?.service).toBe(deploymentServiceName("dep_shop"));
    expect(config.http.services[deploymentServiceName("dep_shop")]?.loadBalancer?.strategy).toBe("hrw");
  });

  it("answers CNAME for a subdomain, A/AAAA for an apex under a multi-label suffix, CNAME for a wildcard", async () => {
    const cases: [string, DnsJson[]][] = [
      ["www.myapp.com", cnameRecords("www.myapp.com")],
      ["shop.co.uk", apexRecords("shop.co.uk")],
      ["www.shop.co.uk", cnameRecords("www.shop.co.uk")],
      ["*.myapp.com", cnameRecords("*.myapp.com")],
    ];
    for (const [domain, records] of cases) {
      const r = await api.post<AddedJson>("/api/v1/deployments/dep_shop/domains", { domain });
      expect({ domain, status: r.status, records: r.body.dns_records }).toEqual({ domain, status: 201, records });
    }
    const list = await api.get<{ items: DomainItem[] }>("/api/v1/deployments/dep_shop/domains");
    expect(list.status).toBe(200);
    const byDomain = new Map(list.body.items.map((d) => [d.domain, d.dns_records]));
    for (const [domain, records] of cases) {
      expect(byDomain.get(domain)).toEqual(records);
    }
    const { config } = await api.traefikConfig();
    const rules = Object.values(config.http.routers).map((x) => x.rule);
    expect(rules).toContain(`HostRegexp(\`${wildcardRegexp("*.myapp.com")}\`)`);
  });

  it("lists every route of the deployment, primary first, each with its DNS records", async () => {
    const list = await api.get<{ items: DomainItem[] }>("/api/v1/deployments/dep_shop/domains");
    const view = await routing("dep_shop");
    expect(list.body.items.map(({ dns_records: _, ...route }) => route)).toEqual(view.domains);
    expect(list.body.items[0]).toMatchObject({ domain: "shop-primary.example.com", is_primary: true });
    expect(list.body.items.filter((d) => d.is_primary)).toHaveLength(1);
    await srv.seedDeployment("dep_nodomains");
    const empty = await api.get("/api/v1/deployments/dep_nodomains/domains");
    expect({ status: empty.status, body: empty.body }).toEqual({ status: 200, body: { items: [] } });
  });

  it("answers 200 with the existing route when the deployment already has the domain", async () => {
    const first = await api.post<AddedJson>("/api/v1/deployments/dep_shop/domains", { domain: "again.example.com" });
    expect(first.status).toBe(201);
    for (const domain of ["again.example.com", "AGAIN.Example.com."]) {
      const again = await api.post<AddedJson>("/api/v1/deployments/dep_shop/domains", { domain, path_prefix: "/" });
      expect({ status: again.status, body: again.body }).toEqual({ status: 200, body: first.body });
    }
    const list = await api.get<{ items: DomainItem[] }>("/api/v1/deployments/dep_shop/domains");
    expect(list.body.items.filter((d) => d.domain === "again.example.com")).toHaveLength(1);
  });

  it("answers 409 DOMAIN_CONFLICT naming the owner for another deployment's (domain, path)", async () => {
    // dep_shop owns a host and a wildcard over it.
    for (const domain of ["owned.example.com", "*.owned.example.com"]) {
      expect((await api.post("/api/v1/deployments/dep_shop/domains", { domain })).status).toBe(201);
    }
    const r = await api.post("/api/v1/deployments/dep_other/domains", { domain: "owned.example.com" });
    const p = expectProblem(r, 409, "DOMAIN_CONFLICT");
    expect(p).toMatchObject({ owner_deployment_id: "dep_shop", domain: "owned.example.com", path_prefix: "/" });
    expect(p.detail).toContain("dep_shop");
    // The same host on another path, or an exact host under someone's wildcard, is fine.
    const path = await api.post<AddedJson>("/api/v1/deployments/dep_other/domains", {
      domain: "owned.example.com",
      path_prefix: "/api/",
    });
    expect({ status: path.status, path: path.body.route.path_prefix }).toEqual({ status: 201, path: "/api" });
    expect((await api.post("/api/v1/deployments/dep_other/domains", { domain: "blog.owned.example.com" })).status).toBe(
      201,
    );
  });

  it("needs target_port for a deployment without routing; the first domain becomes primary", async () => {
    expectInvalid(
      await api.post("/api/v1/deployments/dep_bare/domains", { domain: "bare.example.com" }),
      "body.target_port",
    );
    const r = await api.post<AddedJson>("/api/v1/deployments/dep_bare/domains", {
      domain: "bare.example.com",
      target_port: 5000,
      ssl_enabled: false,
    });
    expect(r.status).toBe(201);
    expect(r.body.route).toMatchObject({
      is_primary: true,
      target_port: 5000,
      ssl_enabled: false,
      ssl_cert_resolver: srv.config.DEFAULT_CERT_RESOLVER,
    });
    expect(await routing("dep_bare")).toMatchObject({ domain: "bare.example.com", target_port: 5000 });
  });

  it("DELETE with ?path_prefix= removes one path only; without it, every path of the domain", async () => {
    for (const path_prefix of ["/", "/a", "/b"]) {
      expect(
        (await api.post("/api/v1/deployments/dep_other/domains", { domain: "paths.example.com", path_prefix })).status,
      ).toBe(201);
    }
    const paths = async () =>
      (await api.get<{ items: DomainItem[] }>("/api/v1/deployments/dep_other/domains")).body.items
        .filter((d) => d.domain === "paths.example.com")
        .map((d) => d.path_prefix)
        .sort();
    const one = await api.delete("/api/v1/deployments/dep_other/domains/paths.example.com?path_prefix=/a/");
    expect({ status: one.status, text: one.text }).toEqual({ status: 204, text: "" });
    expect(await paths()).toEqual(["/", "/b"]);
    let { config } = await api.traefikConfig();
    let rules = Object.values(config.http.routers).map((x) => x.rule);
    expect(rules).not.toContain(ruleFor("paths.example.com", "/a"));
    expect(rules).toContain(ruleFor("paths.example.com", "/b"));

    expectProblem(
      await api.delete("/api/v1/deployments/dep_other/domains/paths.example.com?path_prefix=/a"),
      404,
      "DOMAIN_NOT_FOUND",
    );
    const all = await api.delete("/api/v1/deployments/dep_other/domains/Paths.Example.COM.");
    expect(all.status).toBe(204);
    expect(await paths()).toEqual([]);
    ({ config } = await api.traefikConfig());
    rules = Object.values(config.http.routers).map((x) => x.rule);
    expect(rules.filter((rule) => rule.includes("paths.example.com"))).toEqual([]);
    expectProblem(await api.delete("/api/v1/deployments/dep_other/domains/paths.example.com"), 404, "DOMAIN_NOT_FOUND");
    // Someone else's domain (dep_shop's primary, seeded for the suite) is not found for this deployment, and stays put.
    expectProblem(
      await api.delete("/api/v1/deployments/dep_other/domains/shop-primary.example.com"),
      404,
      "DOMAIN_NOT_FOUND",
    );
    expect(
      (await api.get<{ items: DomainItem[] }>("/api/v1/deployments/dep_shop/domains")).body.items.map((d) => d.domain),
    ).toContain("shop-primary.example.com");
    expectInvalid(await api.delete("/api/v1/deployments/dep_other/domains/not_a_domain"), "path.domain");
    expectInvalid(
      await api.delete("/api/v1/deployments/dep_other/domains/x.example.com?path_prefix=nope"),
      "query.path_prefix",
    );
  });

  it("DELETE accepts an IDN in the path and removes its punycode route", async () => {
    const r = await api.post<AddedJson>("/api/v1/deployments/dep_other/domains", { domain: "bücher.de" });
    expect({ status: r.status, domain: r.body.route.domain }).toEqual({ status: 201, domain: "xn--bcher-kva.de" });
    const del = await api.delete(`/api/v1/deployments/dep_other/domains/${encodeURIComponent("Bücher.de")}`);
    expect(del.status).toBe(204);
    const items = (await api.get<{ items: DomainItem[] }>("/api/v1/deployments/dep_other/domains")).body.items;
    expect(items.map((d) => d.domain)).not.toContain("xn--bcher-kva.de");
  });

  it("deleting the primary promotes the oldest remaining route", async () => {
    await api.post("/api/v1/deployments", { id: "dep_promo", name: "promo" });
    await api.put("/api/v1/deployments/dep_promo/routing", { domain: "promo1.example.com", target_port: 7000 });
    for (const domain of ["promo2.example.com", "promo3.example.com"]) {
      expect((await api.post("/api/v1/deployments/dep_promo/domains", { domain })).status).toBe(201);
    }
    const before = await routing("dep_promo");
    const expectedNext = before.domains.find((d) => !d.is_primary);
    expect(expectedNext?.domain).toBe("promo2.example.com");
    expect((await api.delete("/api/v1/deployments/dep_promo/domains/promo1.example.com")).status).toBe(204);
    const after = await routing("dep_promo");
    expect(after).toMatchObject({ domain: expectedNext?.domain, target_port: 7000 });
    expect(after.domains.map((d) => [d.domain, d.is_primary])).toEqual([
      ["promo2.example.com", true],
      ["promo3.example.com", false],
    ]);
    // A partial PUT now edits the promoted route.
    const put = await api.put<RoutingJson>("/api/v1/deployments/dep_promo/routing", { path_prefix: "/v2" });
    expect(put.body.domains.map((d) => [d.domain, d.path_prefix])).toEqual([
      ["promo2.example.com", "/v2"],
      ["promo3.example.com", "/"],
    ]);
    // Removing the last route leaves no primary; the next domain added becomes it.
    expect((await api.delete("/api/v1/deployments/dep_promo/domains/promo2.example.com")).status).toBe(204);
    expect((await api.delete("/api/v1/deployments/dep_promo/domains/promo3.example.com")).status).toBe(204);
    expect((await routing("dep_promo")).domain).toBeNull();
  });

  it("validates the body", async () => {
    const path = "/api/v1/deployments/dep_shop/domains";
    expectInvalid(await api.post(path, {}), "body.domain");
    expectInvalid(await api.post(path, { domain: "" }), "body.domain");
    expectInvalid(await api.post(path, { domain: 42 }), "body.domain");
    expectInvalid(await api.post(path, { domain: "ok.example.com", path_prefix: "no-slash" }), "body.path_prefix");
    expectInvalid(await api.post(path, { domain: "ok.example.com", target_port: 65536 }), "body.target_port");
    expectInvalid(await api.post(path, { domain: "ok.example.com", is_primary: true }), "body");
  });
});

describe.each(DRIVERS)("DNS records with only a CNAME target configured on %s", (driver) => {
  it("answers ALIAS for an apex and CNAME below it; nothing when no target is configured", async () => {
    const tdb = await makeTestDb(driver);
    const withCname = await inProcessApp(tdb.handle, testConfig({ PUBLIC_CNAME_TARGET: CNAME }));
    const bare = await inProcessApp(tdb.handle, testConfig());
    try {
      const api = withCname.client;
      await api.post("/api/v1/deployments", { id: "dep_dns", name: "dns" });
      const apex = await api.post<AddedJson>("/api/v1/deployments/dep_dns/domains", {
        domain: "alias.com",
        target_port: 80,
      });
      expect(apex.body.dns_records).toEqual([{ type: "ALIAS", name: "alias.com", value: CNAME }]);
      const sub = await api.post<AddedJson>("/api/v1/deployments/dep_dns/domains", { domain: "www.alias.com" });
      expect(sub.body.dns_records).toEqual(cnameRecords("www.alias.com"));
      const none = await bare.client.get<{ items: DomainItem[] }>("/api/v1/deployments/dep_dns/domains");
      expect(none.body.items.map((d) => d.dns_records)).toEqual([[], []]);
      expect([...api.faults, ...bare.client.faults]).toEqual([]);
    } finally {
      await withCname.close();
      await bare.close();
      await tdb.close();
    }
  });
});
