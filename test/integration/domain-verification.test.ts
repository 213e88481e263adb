import { and, eq } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import { deploymentRouting, events } from "../../schema/tables.js";
import { challengeName, isPlatformDomain, recheckDelayMs } from "../../src/domains/challenge.js";
import {
  DnsLookupError,
  FIRST_CHECK_MS,
  RECHECK_BASE_MS,
  RECHECK_CAP_MS,
  runVerificationRound,
  systemTxtResolver,
  type TxtResolver,
} from "../../src/domains/verification.js";
import type { Logger } from "../../src/lib/logger.js";
import type { ConfigDiff } from "../../src/render/config-diff.js";
import { routeName } from "../../src/render/names.js";
import { type DnsJson, expectProblem, type RouteJson, type RoutingJson } from "../helpers/api-client.js";
import { type ApiServer, useApiServer } from "../helpers/api-server.js";
import { waitFor } from "../helpers/app.js";
import { DRIVERS } from "../helpers/db.js";
import { useDnsServer } from "../helpers/dns-server.js";
import { fakeClock } from "../helpers/replica.js";

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {} };
const CNAME = "edge.obiente.app";
const TTL_HOURS = 24;
const HOUR_MS = 3_600_000;

type Verification = RouteJson["verification"];
interface AddedJson {
  route: RouteJson;
  verification: Verification;
  dns_records: DnsJson[];
}
interface VerifiedJson {
  domain: string;
  verification: Verification;
  routes: RouteJson[];
}
interface ResolveJson {
  matched: boolean;
  outcome: number;
  deployment_id?: string;
  route_id?: string;
}
type DomainItem = RouteJson & { dns_records: DnsJson[] };

const enc = encodeURIComponent;
const tokenOf = (v: Verification): string => {
  if (v.status !== "pending") {
    throw new Error(`expected a pending route, got ${JSON.stringify(v)}`);
  }
  return v.token;
};
const iso = (ms: number) => new Date(ms).toISOString();

describe("which names need proof, and where it is looked up", () => {
  it("platform domains match on whole labels; a wildcard is under its base", () => {
    const platform = ["obiente.app", "apps.example.net"];
    const cases: [string, boolean][] = [
      ["obiente.app", true],
      ["x.obiente.app", true],
      ["a.b.obiente.app", true],
      ["*.x.obiente.app", true],
      ["*.obiente.app", true],
      ["notobiente.app", false],
      ["obiente.app.evil.com", false],
      ["example.net", false],
      ["shop.apps.example.net", true],
      ["bank.example.com", false],
    ];
    expect(cases.map(([d]) => [d, isPlatformDomain(d, platform)])).toEqual(cases);
    expect(isPlatformDomain("x.obiente.app", [])).toBe(false);
  });

  it("the challenge of a wildcard is at its base name", () => {
    expect(challengeName("bank.example.com")).toBe("_obiente-challenge.bank.example.com");
    expect(challengeName("*.example.com")).toBe("_obiente-challenge.example.com");
  });

  it("re-checks back off exponentially up to the cap", () => {
    const delays = [0, 1, 2, 3, 20, 1000].map((n) => recheckDelayMs(n, 60_000, 3_600_000));
    expect(delays).toEqual([60_000, 120_000, 240_000, 480_000, 3_600_000, 3_600_000]);
  });
});

describe("systemTxtResolver against a DNS server on loopback", () => {
  const loopback = useDnsServer();

  it("joins each record's strings; no such name or no TXT record is an empty answer, not an error", async () => {
    const long = "t".repeat(300); // more than one <character-string>
    loopback.server.setTxt("_obiente-challenge.a.example.com", ["one", ["two-", "parts"], long]);
    loopback.server.setTxt("_obiente-challenge.empty.example.com", []);
    const resolve = systemTxtResolver([loopback.server.address]);
    expect(await resolve("_obiente-challenge.a.example.com")).toEqual(["one", "two-parts", long]);
    expect(await resolve("_obiente-challenge.empty.example.com")).toEqual([]);
    expect(await resolve("_obiente-challenge.nothing.example.com")).toEqual([]);
  });

  it("a failing server is a DnsLookupError naming the name and the reason", async () => {
    loopback.server.fail("_obiente-challenge.broken.example.com", "SERVFAIL");
    const err = await systemTxtResolver([loopback.server.address])("_obiente-challenge.broken.example.com").catch(
      (e) => e,
    );
    expect(err).toBeInstanceOf(DnsLookupError);
    expect({ host: err.host, reason: err.reason }).toEqual({
      host: "_obiente-challenge.broken.example.com",
      reason: "ESERVFAIL",
    });
  });

  it("refuses a server list it cannot use, naming the setting", () => {
    expect(() => systemTxtResolver(["not an address"])).toThrow(/DOMAIN_VERIFICATION_DNS/);
  });
});

/** Suite helpers over one server. */
function helpers(srv: ApiServer) {
  const { api } = srv;
  const add = (dep: string, domain: string, extra: Record<string, unknown> = {}) =>
    api.post<AddedJson>(`/api/v1/deployments/${dep}/domains`, { domain, ...extra });
  const verify = (dep: string, domain: string, query = "", token?: string) =>
    api.post<VerifiedJson>(
      `/api/v1/deployments/${dep}/domains/${enc(domain)}/verify${query}`,
      undefined,
      token ? { token } : {},
    );
  const domains = async (dep: string) =>
    (await api.get<{ items: DomainItem[] }>(`/api/v1/deployments/${dep}/domains`)).body.items;
  const routing = async (dep: string) => (await api.get<RoutingJson>(`/api/v1/deployments/${dep}/routing`)).body;
  const routerNames = async () => Object.keys((await api.traefikConfig()).config.http.routers);
  /** Every router of a route (its own and its scheme twin) derives from its name. */
  const isRouted = async (route: { id: string; deployment_id: string }) => {
    const base = routeName({ id: route.id, deploymentId: route.deployment_id });
    return (await routerNames()).some((n) => n === base || n.startsWith(`${base}--`));
  };
  const resolve = async (host: string) =>
    (await api.get<ResolveJson>(`/api/v1/routing/resolve?host=${enc(host)}`)).body;
  const eventsOf = (type: "domain.verified" | "domain.expired", subject: string) =>
    srv.db
      .select()
      .from(events)
      .where(and(eq(events.type, type), eq(events.subject, subject)));
  return { api, add, verify, domains, routing, isRouted, resolve, eventsOf };
}

describe.each(DRIVERS)("DOMAIN_VERIFICATION=required on %s", (driver) => {
  const env: Record<string, string> = {
    DOMAIN_VERIFICATION: "required",
    PLATFORM_DOMAINS: "obiente.app",
    DOMAIN_VERIFICATION_TTL_HOURS: String(TTL_HOURS),
    PUBLIC_CNAME_TARGET: CNAME,
  };
  // Started before the server: it resolves through this loopback DNS server (systemTxtResolver, from its env).
  const loopback = useDnsServer((dns) => {
    env.DOMAIN_VERIFICATION_DNS = dns.address;
  });
  const clock = fakeClock();
  const srv = useApiServer(driver, env, { start: { clock } });
  const { api, add, verify, domains, routing, isRouted, resolve, eventsOf } = helpers(srv);
  const round = (now: Date) =>
    runVerificationRound(
      { handle: srv.handle, resolveTxt: systemTxtResolver([loopback.server.address]), logger: quiet },
      now,
    );
  const dns = {
    setTxt: (name: string, records: (string | string[])[]) => loopback.server.setTxt(name, records),
    fail: (name: string, rcode: "SERVFAIL") => loopback.server.fail(name, rcode),
  };

  beforeAll(async () => {
    await srv.seedDeployment("dep_a", { domain: "a.obiente.app", target_port: 3000 });
    await srv.seedDeployment("dep_b", { domain: "b.obiente.app", target_port: 3000 });
    await srv.seedDeployment("dep_c", { domain: "c.obiente.app", target_port: 3000 });
  });

  it("platform domains need no proof: verified and routed at once", async () => {
    for (const domain of ["*.x.obiente.app", "obiente.app"]) {
      const r = await add("dep_a", domain);
      expect(r.status).toBe(201);
      expect(r.body.verification).toEqual({ status: "verified", verified_at: null });
      expect(r.body.route.verification).toEqual(r.body.verification);
      expect(r.body.dns_records.filter((d) => d.type === "TXT")).toEqual([]);
      expect(await isRouted(r.body.route)).toBe(true);
    }
    const primary = (await routing("dep_a")).domains[0];
    expect(primary).toMatchObject({ domain: "a.obiente.app", verification: { status: "verified" } });
  });

  it("a custom domain is stored pending with a token and its TXT record, and is not routed", async () => {
    const r = await add("dep_a", "shop.example.com");
    expect(r.status).toBe(201);
    const token = tokenOf(r.body.verification);
    expect(token).toMatch(/^[A-Za-z0-9_-]{32}$/);
    const record = { type: "TXT", name: "_obiente-challenge.shop.example.com", value: token };
    const now = clock.now().getTime();
    expect(r.body.verification).toEqual({
      status: "pending",
      token,
      expires_at: iso(now + TTL_HOURS * HOUR_MS),
      next_check_at: iso(now + FIRST_CHECK_MS),
      attempts: 0,
      record,
    });
    expect(r.body.route.verification).toEqual(r.body.verification);
    expect(r.body.dns_records).toEqual([{ type: "CNAME", name: "shop.example.com", value: CNAME }, record]);

    expect(await isRouted(r.body.route)).toBe(false);
    expect(await resolve("shop.example.com")).toMatchObject({ matched: false, outcome: 404 });
    const item = (await domains("dep_a")).find((d) => d.domain === "shop.example.com");
    expect(item?.verification).toEqual(r.body.verification);
    expect(item?.dns_records).toContainEqual(record);
    // Adding it again answers with the same pending route and token.
    const again = await add("dep_a", "shop.example.com");
    expect(again.status).toBe(200);
    expect(again.body.route.id).toBe(r.body.route.id);
    expect(tokenOf(again.body.verification)).toBe(token);
    // Labels are whole: notobiente.app is not under obiente.app.
    expect((await add("dep_a", "notobiente.app")).body.verification.status).toBe("pending");
  });

  it("verify: 422 saying what was expected and found, 200 once DNS holds the token; then it is routed", async () => {
    const name = "_obiente-challenge.shop.example.com";
    const route = (await domains("dep_a")).find((d) => d.domain === "shop.example.com");
    const token = tokenOf(route?.verification ?? { status: "verified", verified_at: null });
    const expected = [{ type: "TXT", name, value: token }];

    const missing = await verify("dep_a", "shop.example.com");
    expect(expectProblem(missing, 422, "DOMAIN_NOT_VERIFIED")).toMatchObject({ expected, found: [] });
    dns.setTxt(name, ["v=spf1 -all", "someone-elses-token"]);
    const wrong = await verify("dep_a", "shop.example.com");
    const problem = expectProblem(wrong, 422, "DOMAIN_NOT_VERIFIED");
    expect(problem).toMatchObject({ expected, found: ["v=spf1 -all", "someone-elses-token"] });
    expect(problem.detail).toContain(name);

    dns.setTxt(name, ["v=spf1 -all", [token.slice(0, 10), token.slice(10)]]); // split strings are joined
    const ok = await verify("dep_a", "shop.example.com");
    expect(ok.status).toBe(200);
    const verifiedAt = clock.now().toISOString();
    expect(ok.body.verification).toEqual({ status: "verified", verified_at: verifiedAt });
    expect(ok.body.routes.map((r) => [r.domain, r.verification])).toEqual([
      ["shop.example.com", { status: "verified", verified_at: verifiedAt }],
    ]);
    expect(await isRouted(ok.body.routes[0] ?? { id: "", deployment_id: "" })).toBe(true);
    expect(await resolve("shop.example.com")).toMatchObject({ matched: true, deployment_id: "dep_a" });
    const recorded = await eventsOf("domain.verified", "shop.example.com");
    expect(recorded.map((e) => [e.deploymentId, e.data])).toEqual([
      ["dep_a", { path_prefix: "/", route_id: route?.id }],
    ]);
    // Proven once for the deployment: another path of the same name needs no new proof.
    const api2 = await add("dep_a", "shop.example.com", { path_prefix: "/api" });
    expect(api2.body.verification).toEqual({ status: "verified", verified_at: verifiedAt });

    const again = await verify("dep_a", "shop.example.com");
    expect(again.status).toBe(200);
    expect(again.body.verification).toEqual(ok.body.verification);
    expect(await eventsOf("domain.verified", "shop.example.com")).toHaveLength(1);
  });

  it("two tenants wait on one name: the first to prove it wins; the other's verify is 409, its route unrouted", async () => {
    const domain = "bank.example.com";
    const a = await add("dep_a", domain);
    const b = await add("dep_b", domain);
    expect([a.status, b.status]).toEqual([201, 201]);
    const [tokenA, tokenB] = [tokenOf(a.body.verification), tokenOf(b.body.verification)];
    expect(tokenA).not.toBe(tokenB);
    dns.setTxt(challengeName(domain), [tokenB]);

    expectProblem(await verify("dep_a", domain), 422, "DOMAIN_NOT_VERIFIED");
    expect((await verify("dep_b", domain)).status).toBe(200);
    const lost = expectProblem(await verify("dep_a", domain), 409, "DOMAIN_CONFLICT");
    expect(lost).toMatchObject({ owner_deployment_id: "dep_b", domain, path_prefix: "/" });
    // A token restricted to dep_a is not told which deployment won (ids of other tenants do not leak).
    const t = await api.post<{ token: string }>("/api/v1/tokens", {
      name: "tenant-a",
      scopes: ["write"],
      deployment_ids: ["dep_a"],
    });
    const hidden = expectProblem(await verify("dep_a", domain, "", t.body.token), 409, "DOMAIN_CONFLICT");
    expect(hidden).toMatchObject({ owner_deployment_id: null, domain, path_prefix: "/" });
    expect(JSON.stringify(hidden)).not.toContain("dep_b");
    // A third tenant cannot even wait on it now; the loser's pending route stays unrouted.
    expectProblem(await add("dep_c", domain), 409, "DOMAIN_CONFLICT");
    expect(await isRouted(b.body.route)).toBe(true);
    expect(await isRouted(a.body.route)).toBe(false);
    expect(await resolve(domain)).toMatchObject({ matched: true, deployment_id: "dep_b", route_id: b.body.route.id });

    // Even with A's token in DNS too, the background job does not hand it over: A keeps waiting, backed off.
    dns.setTxt(challengeName(domain), [tokenB, tokenA]);
    await round(new Date(clock.now().getTime() + FIRST_CHECK_MS));
    const mine = (await domains("dep_a")).find((d) => d.domain === domain);
    expect(mine?.verification).toMatchObject({ status: "pending", attempts: 1 });
    expect(await isRouted(a.body.route)).toBe(false);
  });

  it("the background job verifies due routes and backs the others off", async () => {
    const domain = "auto.example.com";
    const r = await add("dep_c", domain);
    const token = tokenOf(r.body.verification);
    const start = clock.now().getTime();
    const first = start + FIRST_CHECK_MS;

    expect((await round(new Date(first - 1))).retried).toBe(0); // not due yet
    await round(new Date(first));
    const backedOff = (await domains("dep_c")).find((d) => d.domain === domain)?.verification;
    expect(backedOff).toMatchObject({
      status: "pending",
      attempts: 1,
      next_check_at: iso(first + recheckDelayMs(1, RECHECK_BASE_MS, RECHECK_CAP_MS)),
    });

    dns.setTxt(challengeName(domain), [token]);
    const next = first + recheckDelayMs(1, RECHECK_BASE_MS, RECHECK_CAP_MS);
    await round(new Date(next - 1));
    expect((await domains("dep_c")).find((d) => d.domain === domain)?.verification.status).toBe("pending");
    // Two instances' rounds at once share the work: the route is verified once, with one event.
    await Promise.all([round(new Date(next)), round(new Date(next))]);
    expect((await domains("dep_c")).find((d) => d.domain === domain)?.verification).toEqual({
      status: "verified",
      verified_at: iso(next),
    });
    expect(await eventsOf("domain.verified", domain)).toHaveLength(1);
    // Verified outside any request: the change feed (NOTIFY) makes the server render it.
    await waitFor(() => isRouted(r.body.route));
  });

  it("PUT …/routing: a custom primary domain waits for proof; a platform one is routed at once", async () => {
    await srv.seedDeployment("dep_p", { domain: "p.obiente.app", target_port: 3000 });
    const moved = await api.put<RoutingJson>("/api/v1/deployments/dep_p/routing", { domain: "p.example.net" });
    expect(moved.status).toBe(200);
    const [primary] = moved.body.domains;
    expect(primary).toMatchObject({ domain: "p.example.net", is_primary: true });
    const token = tokenOf(primary?.verification ?? { status: "verified", verified_at: null });
    expect(primary?.verification).toMatchObject({
      record: { type: "TXT", name: "_obiente-challenge.p.example.net", value: token },
    });
    expect(await isRouted(primary ?? { id: "", deployment_id: "" })).toBe(false);

    const back = await api.put<RoutingJson>("/api/v1/deployments/dep_p/routing", { domain: "p2.obiente.app" });
    expect(back.body.domains[0]?.verification).toEqual({ status: "verified", verified_at: null });
    expect(await isRouted(primary ?? { id: "", deployment_id: "" })).toBe(true);
  });

  it("a wildcard is proven at its base name", async () => {
    const r = await add("dep_b", "*.wild.example.com");
    const token = tokenOf(r.body.verification);
    expect(r.body.verification).toMatchObject({ record: { name: "_obiente-challenge.wild.example.com" } });
    dns.setTxt("_obiente-challenge.wild.example.com", [token]);
    expect((await verify("dep_b", "*.wild.example.com")).status).toBe(200);
    expect(await isRouted(r.body.route)).toBe(true);
  });

  it("hostile names and paths in verify are 400s; unknown ones 404s", async () => {
    // ("..", as a whole segment, never reaches the route: URL parsing removes it before the request is sent.)
    const names = [
      "a b.example.com",
      "<script>.example.com",
      "a..b.example.com",
      "x".repeat(300),
      "a.com/../x",
      "é\u0000",
    ];
    for (const domain of names) {
      expectProblem(await verify("dep_a", domain), 400, "VALIDATION_FAILED");
    }
    for (const query of ["?path_prefix=nope", "?path_prefix=%2F%zz", "?other=1"]) {
      expectProblem(await verify("dep_a", "shop.example.com", query), 400, "VALIDATION_FAILED");
    }
    expectProblem(await verify("dep_a", "never-added.example.com"), 404, "DOMAIN_NOT_FOUND");
    expectProblem(await verify("dep_a", "shop.example.com", "?path_prefix=/nope"), 404, "DOMAIN_NOT_FOUND");
    expectProblem(await verify("dep_missing", "shop.example.com"), 404, "DEPLOYMENT_NOT_FOUND");
  });

  it("a failing DNS lookup is a 502 that decides nothing", async () => {
    const r = await add("dep_c", "flaky.example.com");
    dns.fail(challengeName("flaky.example.com"), "SERVFAIL");
    const p = expectProblem(await verify("dep_c", "flaky.example.com"), 502, "DNS_LOOKUP_FAILED");
    expect(p).toMatchObject({ record: { type: "TXT", name: "_obiente-challenge.flaky.example.com" } });
    expect(api.faults.splice(0)).toEqual([expect.stringContaining("→ 502")]); // expected here: not a fault
    expect((await domains("dep_c")).find((d) => d.id === r.body.route.id)?.verification.status).toBe("pending");
  });

  it("a preview of adding a custom domain renders nothing new", async () => {
    const r = await api.post<{ operations: Record<string, unknown>[]; diff: ConfigDiff }>("/api/v1/routing/preview", {
      operations: [{ op: "add_domain", deployment_id: "dep_a", body: { domain: "preview.example.com" } }],
    });
    expect(r.status).toBe(200);
    expect(r.body.operations[0]).toMatchObject({ status: "accepted", verification: "pending" });
    expect(r.body.diff.changes).toEqual([]);
  });

  it("pending routes stay out of the state dump; an apply is trusted: a route it lists is verified", async () => {
    const dump = (
      await api.get<{ deployments: { id: string; routing?: { domains: { domain: string }[] } }[] }>("/api/v1/state")
    ).body;
    const listed = (dep: string) => dump.deployments.find((d) => d.id === dep)?.routing?.domains.map((r) => r.domain);
    const pendingOf = async (dep: string) =>
      (await domains(dep)).filter((d) => d.verification.status === "pending").map((d) => d.domain);
    expect(await pendingOf("dep_a")).toEqual(expect.arrayContaining(["notobiente.app", "bank.example.com"]));
    expect(listed("dep_a")).not.toContain("notobiente.app");
    expect(listed("dep_a")).not.toContain("bank.example.com");
    expect(listed("dep_b")).toContain("bank.example.com"); // verified there
    expect(listed("dep_c")).not.toContain("flaky.example.com");
    // The dump applied back changes nothing (pending routes do not show up as deletions), with prune too.
    const same = await api.post<{ applied: boolean }>("/api/v1/state/apply?prune=true", dump);
    expect(same.body.applied).toBe(false);
    expect((await domains("dep_a")).map((d) => d.domain)).toContain("notobiente.app");

    // dep_q's only route is a pending primary; the file gives dep_q a route and lists dep_a's pending name.
    await srv.seedDeployment("dep_q", { domain: "q.example.net", target_port: 3000 });
    const depA = dump.deployments.find((d) => d.id === "dep_a");
    depA?.routing?.domains.push({ domain: "notobiente.app" });
    const file = {
      ...dump,
      deployments: [
        ...dump.deployments.filter((d) => d.id !== "dep_q"),
        { id: "dep_q", name: "dep_q", routing: { target_port: 3000, domains: [{ domain: "q.obiente.app" }] } },
      ],
    };
    const applied = await api.post<{ applied: boolean }>("/api/v1/state/apply", file);
    expect(applied.status).toBe(200);
    expect(applied.body.applied).toBe(true);
    const trusted = (await domains("dep_a")).find((d) => d.domain === "notobiente.app");
    expect(trusted?.verification.status).toBe("verified");
    expect(await isRouted(trusted ?? { id: "", deployment_id: "" })).toBe(true);
    const q = await routing("dep_q");
    expect(q.domains.map((d) => [d.domain, d.is_primary, d.verification.status])).toEqual([
      ["q.obiente.app", true, "verified"],
      ["q.example.net", false, "pending"],
    ]);
  });

  // Last: moving the clock past the TTL expires every pending route of the suite.
  it("a pending route past DOMAIN_VERIFICATION_TTL_HOURS is gone: verify 404s, the job deletes it", async () => {
    await srv.seedDeployment("dep_e", { domain: "e.example.net", target_port: 3000 }); // a pending primary
    expect((await add("dep_e", "e.obiente.app")).body.route.is_primary).toBe(false);
    clock.advance(TTL_HOURS * 3600 + 60);
    expectProblem(await verify("dep_e", "e.example.net"), 404, "DOMAIN_NOT_FOUND");
    await round(clock.now());
    expect((await routing("dep_e")).domains.map((d) => [d.domain, d.is_primary])).toEqual([["e.obiente.app", true]]);
    const expired = await eventsOf("domain.expired", "e.example.net");
    expect(expired.map((e) => [e.deploymentId, e.data.path_prefix])).toEqual([["dep_e", "/"]]);
    // Every other pending route of the suite went too; verified ones stay.
    for (const dep of ["dep_a", "dep_b", "dep_c"]) {
      expect((await domains(dep)).filter((d) => d.verification.status === "pending")).toEqual([]);
    }
    expect((await domains("dep_b")).map((d) => d.domain)).toContain("bank.example.com");
    // Re-adding an expired name starts over.
    expect((await add("dep_e", "e.example.net")).body.verification).toMatchObject({ status: "pending", attempts: 0 });
  });
});

describe.each(DRIVERS)("DOMAIN_VERIFICATION=required with an injected resolver on %s", (driver) => {
  const txt = new Map<string, string[]>();
  let fail: Error | undefined;
  const resolveTxt: TxtResolver = async (name) => {
    if (fail) {
      throw fail;
    }
    return txt.get(name) ?? [];
  };
  const srv = useApiServer(
    driver,
    { DOMAIN_VERIFICATION: "required", PLATFORM_DOMAINS: "obiente.app" },
    { inProcess: true, start: { resolveTxt } },
  );
  const { add, verify, isRouted } = helpers(srv);

  it("verifies through the injected resolver; a resolver that throws anything is a 502, never a 500", async () => {
    await srv.seedDeployment("dep_i", { domain: "i.obiente.app", target_port: 3000 });
    const r = await add("dep_i", "injected.example.com");
    fail = new Error("resolver exploded");
    expectProblem(await verify("dep_i", "injected.example.com"), 502, "DNS_LOOKUP_FAILED");
    expect(srv.api.faults.splice(0)).toEqual([expect.stringContaining("→ 502")]);
    fail = undefined;
    txt.set("_obiente-challenge.injected.example.com", [tokenOf(r.body.verification)]);
    expect((await verify("dep_i", "injected.example.com")).status).toBe(200);
    expect(await isRouted(r.body.route)).toBe(true);
  });

  it("a pending name that needs no proof any more (now under PLATFORM_DOMAINS) is verified without a lookup", async () => {
    const r = await add("dep_i", "later.obiente.app");
    expect(r.body.verification.status).toBe("verified");
    // As if it had been added before obiente.app was listed: pending, with a token.
    await srv.db
      .update(deploymentRouting)
      .set({
        verification: "pending",
        verificationToken: "x".repeat(32),
        verificationExpiresAt: new Date(Date.now() + HOUR_MS),
      })
      .where(eq(deploymentRouting.id, r.body.route.id));
    fail = new Error("no lookup expected");
    const v = await verify("dep_i", "later.obiente.app");
    fail = undefined;
    expect(v.status).toBe(200);
    expect(v.body.verification).toMatchObject({ status: "verified" });
    expect(await isRouted(r.body.route)).toBe(true);
  });
});

describe.each(DRIVERS)("DOMAIN_VERIFICATION=off (the default) on %s", (driver) => {
  const srv = useApiServer(driver, { PUBLIC_CNAME_TARGET: CNAME }, { inProcess: true });
  const { add, verify, isRouted } = helpers(srv);

  it("every domain is verified and routed at once; verify is a no-op; a second owner is 409 as before", async () => {
    await srv.seedDeployment("dep_x", { domain: "x.example.com", target_port: 3000 });
    await srv.seedDeployment("dep_y", { domain: "y.example.com", target_port: 3000 });
    const r = await add("dep_x", "custom.example.com");
    expect(r.status).toBe(201);
    expect(r.body.verification).toEqual({ status: "verified", verified_at: null });
    expect(r.body.dns_records).toEqual([{ type: "CNAME", name: "custom.example.com", value: CNAME }]);
    expect(await isRouted(r.body.route)).toBe(true);
    const v = await verify("dep_x", "custom.example.com");
    expect(v.status).toBe(200);
    expect(v.body.verification).toEqual({ status: "verified", verified_at: null });
    expect(expectProblem(await add("dep_y", "custom.example.com"), 409, "DOMAIN_CONFLICT")).toMatchObject({
      owner_deployment_id: "dep_x",
    });
  });
});
