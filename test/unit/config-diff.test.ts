import { describe, expect, it } from "vitest";
import { DIFF_SECTIONS, type DiffSection, diffConfigs, SECRET, SECRET_CHANGED } from "../../src/render/config-diff.js";
import { deploymentServiceName, routeName } from "../../src/render/names.js";
import { renderDynamicConfig } from "../../src/render/render.js";
import type { RenderInput, TraefikDocument } from "../../src/render/types.js";
import { anInput, aReplica, aRoute, settings, shuffled } from "../fixtures/rows.js";
import { makeCert, pemBody } from "../helpers/certs.js";

const order = (s: DiffSection) => DIFF_SECTIONS.indexOf(s);
const render = (input: RenderInput): TraefikDocument => renderDynamicConfig(input).config;

describe("diffConfigs", () => {
  const route = aRoute();
  const name = routeName(route);
  const service = deploymentServiceName(route.deploymentId);
  const base = anInput([route], [aReplica()]);

  it("finds nothing between two renders of the same rows in any order", () => {
    const other = anInput(shuffled([route, aRoute({ id: "rt_2", domain: "b.example.com" })], 3), [aReplica()]);
    const d = diffConfigs(render(other), render({ ...other, routes: [...other.routes].reverse() }));
    expect(d.changes).toEqual([]);
    expect(d.summary).toMatchObject({ added: 0, removed: 0, changed: 0 });
    expect(Object.keys(d.summary.byKind)).toEqual([
      "routers",
      "services",
      "middlewares",
      "serversTransports",
      "tls.certificates",
      "tls.options",
      "tls.stores",
    ]);
  });

  it("gives the same diff for configs whose maps are not in sorted order (hand-built, not rendered)", () => {
    // One deployment each: several services (a deployment's routes share one).
    const routes = [
      aRoute({ id: "rt_c", deploymentId: "dep_c", domain: "c.example.com" }),
      aRoute({ id: "rt_a", deploymentId: "dep_a", domain: "a.example.com" }),
    ];
    const before = render(anInput(routes, [aReplica()]));
    const b = aRoute({ id: "rt_b", deploymentId: "dep_b", domain: "b.example.com" });
    const after = render(anInput([routes[0] ?? route, b], [aReplica()]));
    const reversed = (doc: TraefikDocument): TraefikDocument => {
      const routers = doc.http?.routers ?? {};
      const services = doc.http?.services ?? {};
      const rev = <T>(m: Record<string, T>) => Object.fromEntries(Object.entries(m).reverse());
      return { ...doc, http: { ...doc.http, routers: rev(routers), services: rev(services) } };
    };
    const expected = diffConfigs(before, after);
    expect(expected.summary.byKind.routers?.added.length).toBeGreaterThan(0);
    expect(expected.summary.byKind.routers?.removed.length).toBeGreaterThan(0);
    expect(expected.summary.byKind.services?.added.length).toBeGreaterThan(0);
    expect(expected.summary.byKind.services?.removed.length).toBeGreaterThan(0);
    expect(diffConfigs(reversed(before), reversed(after))).toEqual(expected);
    expect(diffConfigs(before, reversed(after))).toEqual(expected);
  });

  it("names the router and the `rule` field when a route's path changes", () => {
    const after = anInput([{ ...route, pathPrefix: "/api" }], [aReplica()]);
    const d = diffConfigs(render(base), render(after));
    const router = d.changes.find((c) => c.section === "routers" && c.name === name);
    expect(router?.change).toBe("changed");
    expect(router?.fields.find((f) => f.path === "rule")).toEqual({
      path: "rule",
      before: "Host(`app.example.com`)",
      after: "Host(`app.example.com`) && PathPrefix(`/api`)",
    });
    expect(router?.fields.map((f) => f.path)).toContain("priority");
    expect(d.summary.byKind.routers?.changed).toEqual([name, `${name}--to-http`]); // its TLS twin moves too
  });

  it("reports a replica going unhealthy as a server-list change of the service, with dotted and indexed paths", () => {
    const two = anInput([route], [aReplica(), aReplica({ id: "loc_2", address: "10.0.0.2" })]);
    const one = anInput([route], [aReplica(), aReplica({ id: "loc_2", address: "10.0.0.3" })]);
    const same = diffConfigs(render(two), render(one));
    expect(same.changes).toEqual([
      {
        section: "services",
        name: service,
        change: "changed",
        fields: [
          { path: "loadBalancer.servers[1].url", before: "http://10.0.0.2:3000", after: "http://10.0.0.3:3000" },
        ],
      },
    ]);
    const dead = anInput(
      [route],
      [aReplica({ healthStatus: "unhealthy" }), aReplica({ id: "loc_2", status: "stopped" })],
    );
    const d = diffConfigs(render(two), render(dead));
    expect(d.changes.map((c) => [c.section, c.name, c.change])).toEqual([["services", service, "changed"]]);
    // Different lengths: the list changes as a whole.
    expect(d.changes[0]?.fields).toEqual([
      {
        path: "loadBalancer.servers",
        before: [{ url: "http://10.0.0.1:3000" }, { url: "http://10.0.0.2:3000" }],
        after: [{ url: settings.noReplicaUrl, weight: 0 }],
      },
    ]);
  });

  it("lists added and removed entries with all their fields, sections in order and names sorted", () => {
    const b = aRoute({ id: "rt_b", deploymentId: "dep_b", domain: "b.example.com", sslEnabled: true });
    const d = diffConfigs(render(base), render(anInput([b], [])));
    const routers = d.changes.filter((c) => c.section === "routers").map((c) => `${c.change} ${c.name}`);
    expect(routers).toEqual([
      `removed ${name}`,
      `removed ${name}--to-http`,
      `added ${routeName(b)}`,
      `added ${routeName(b)}--to-https`,
    ]);
    const sections = d.changes.map((c) => c.section);
    expect(sections).toEqual([...sections].sort((x, y) => order(x) - order(y)));
    expect(d.summary.byKind.routers).toEqual({
      added: [routeName(b), `${routeName(b)}--to-https`],
      removed: [name, `${name}--to-http`],
      changed: [],
    });
    expect(d.summary.byKind.services).toEqual({
      added: [deploymentServiceName(b.deploymentId)],
      removed: [service],
      changed: [],
    });
    expect(d.summary.byKind.middlewares?.added).toEqual(["obiente-redirect-to-https"]);
    expect(d.summary.byKind.middlewares?.removed).toEqual(["obiente-redirect-to-http"]);
    expect(d.summary.added).toBe(d.changes.filter((c) => c.change === "added").length);
    const added = d.changes.find((c) => c.name === routeName(b) && c.section === "routers");
    expect(added?.fields.find((f) => f.path === "rule")).toEqual({ path: "rule", after: "Host(`b.example.com`)" });
    expect(added?.fields.every((f) => !("before" in f))).toBe(true);
  });

  it("diffs against `{}` (nothing routed) both ways", () => {
    const d = diffConfigs({}, render(base));
    expect(d.summary.removed).toBe(0);
    expect(d.summary.byKind.routers?.added).toContain(name);
    expect(diffConfigs(render(base), {}).summary.byKind.services?.removed).toEqual([service]);
  });

  it("never shows private keys, basic-auth hashes or the fallback proxy's secret", () => {
    const cert = makeCert({ sans: ["app.example.com"] });
    const certs = [{ id: "crt_1", certPem: cert.certPem, keyPem: cert.keyPem, sans: cert.sans }];
    const hash = "$apr1$abcdefgh$0123456789012345678901";
    const secret = "s3cret-proxy-value-0123456789";
    const proxied = aRoute({ loadBalancerAlgo: "least-conn" });
    const before: RenderInput = {
      ...anInput([route], [aReplica()]),
      middlewares: new Map([["dep_a", { basic_auth: { users: [`alice:${hash}`] } }]]),
    };
    const after: RenderInput = {
      ...anInput([proxied], [aReplica()]),
      settings: { ...settings, fallbackProxy: { url: "http://127.0.0.1:8081", secret } },
      certificates: certs,
      middlewares: new Map([
        ["dep_a", { basic_auth: { users: [`alice:${hash.replace("0123", "9999")}`, `bob:${hash}`] } }],
      ]),
    };
    const text = JSON.stringify([diffConfigs(render(before), render(after)), diffConfigs(render(after), {})]);
    expect(text).not.toContain(secret);
    expect(text).not.toContain("$apr1$");
    expect(text).not.toContain("PRIVATE KEY");
    expect(text).not.toContain(privateScalar(cert.keyPem));
    const d = diffConfigs(render(before), render(after));
    const auth = d.changes.find((c) => c.section === "middlewares" && c.change === "changed");
    expect(auth?.fields).toEqual([
      {
        path: "basicAuth.users",
        before: [`alice:${SECRET_CHANGED}`],
        after: [`alice:${SECRET_CHANGED}`, `bob:${SECRET_CHANGED}`],
      },
    ]);
    const tlsEntry = d.changes.find((c) => c.section === "tls.certificates");
    expect(tlsEntry?.name).toBe(`sha256:${cert.fingerprintSha256}`);
    expect(tlsEntry?.fields.find((f) => f.path === "keyFile")).toEqual({ path: "keyFile", after: SECRET });
    const proxyMw = d.changes.find((c) => c.name.endsWith("--least-cpu"));
    expect(proxyMw?.fields).toContainEqual({
      path: "headers.customRequestHeaders.X-Obiente-Proxy-Secret",
      after: SECRET,
    });
  });

  it("quotes keys that are not plain identifiers in paths", () => {
    const a = { http: { routers: {}, services: { s: { loadBalancer: { servers: [], "odd.key": 1 } } } } };
    const b = { http: { routers: {}, services: { s: { loadBalancer: { servers: [], "odd.key": 2 } } } } };
    const d = diffConfigs(a as unknown as TraefikDocument, b as unknown as TraefikDocument);
    expect(d.changes[0]?.fields).toEqual([{ path: 'loadBalancer["odd.key"]', before: 1, after: 2 }]);
  });
});

/** The private scalar of a P-256 PKCS#8 key (after its 48-character shared header); the tail is the public key. */
function privateScalar(keyPem: string): string {
  return pemBody(keyPem).slice(48, 88);
}
