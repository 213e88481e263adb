import bcrypt from "bcryptjs";
import { sql } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import { rowsOf } from "../../src/db/client.js";
import { CHAIN_ORDER, IP_DEPTH_NEEDS_TRUSTED_PROXIES } from "../../src/render/middlewares.js";
import { REDIRECT_TO_HTTP, REDIRECT_TO_HTTPS, redirectRouterName, routeName } from "../../src/render/names.js";
import type { DynamicConfig } from "../../src/render/types.js";
import { startServer } from "../../src/server.js";
import { expectInvalid, expectProblem, httpClient, type Reply } from "../helpers/api-client.js";
import { useApiServer } from "../helpers/api-server.js";
import { PROVIDER_TOKEN, testConfig, waitFor } from "../helpers/app.js";
import { DRIVERS } from "../helpers/db.js";
import { STATIC_CONFIG, traefikSchemaErrors } from "../helpers/traefik-schema.js";

// Passwords distinctive enough that finding one anywhere is a leak, not a coincidence.
const ALICE_PASSWORD = "alice-Pl41ntext-Passw0rd-7f3a9c";
const CAROL_PASSWORD = "carol-Pl41ntext-Passw0rd-e21b04";
const BOB_LINE = `bob:${bcrypt.hashSync("bob-password", 4).replace(/^\$2b\$/, "$2y$")}`;
const PASSWORDS = [ALICE_PASSWORD, CAROL_PASSWORD];

/** Checks htpasswd lines as Traefik would: user name, then a bcrypt hash of that user's password. */
function expectVerifies(lines: readonly string[], expected: Record<string, string>): void {
  expect(lines.map((l) => l.split(":")[0]).sort()).toEqual(Object.keys(expected).sort());
  for (const line of lines) {
    const [user, hash] = line.split(/:(.*)/s) as [string, string];
    expect(hash).toMatch(/^\$2y\$\d\d\$[./A-Za-z0-9]{53}$/);
    expect(bcrypt.compareSync(expected[user] ?? "", hash)).toBe(true);
    expect(bcrypt.compareSync(`${expected[user]}x`, hash)).toBe(false);
  }
}

/** TRUSTED_PROXY_CIDRS of this suite's server, and the same ranges in Traefik's forwardedHeaders.trustedIPs. */
const TRUSTED_PROXIES = "10.9.0.0/24";
const TRUSTING_STATIC = (() => {
  const s = structuredClone(STATIC_CONFIG) as { entryPoints: Record<string, Record<string, unknown>> };
  for (const ep of Object.values(s.entryPoints)) {
    ep.forwardedHeaders = { trustedIPs: [TRUSTED_PROXIES] };
  }
  return s;
})();

const SETTINGS = {
  redirect_www: "to-apex",
  ip_allow_list: { source_range: ["10.0.0.0/8", "192.0.2.1"], ip_depth: 1 },
  rate_limit: { average: 100, burst: 200, request_header: "X-Api-Key" },
  basic_auth: {
    users: [{ username: "alice", password: ALICE_PASSWORD }],
    htpasswd: [BOB_LINE],
    realm: "staff",
  },
  headers: { request: { "X-Env": "prod" }, response: { "X-Frame-Options": "DENY" }, security_preset: true },
  compress: { encodings: ["br", "gzip"] },
  strip_prefix: true,
};

describe.each(DRIVERS)("deployment middlewares on %s", (driver) => {
  // SETTINGS use ip_depth: this edge sits behind load balancers that Traefik trusts (see traefik/traefik.yml).
  const srv = useApiServer(driver, { TRUSTED_PROXY_CIDRS: TRUSTED_PROXIES }, { captureLogs: true });
  const { api, logs } = srv;
  const answers: Reply<unknown>[] = [];
  const route = { www: { id: "", deploymentId: "dep_mw" }, apex: { id: "", deploymentId: "dep_mw" } };

  const call = async <T>(reply: Promise<Reply<T>>): Promise<Reply<T>> => {
    const r = await reply;
    answers.push(r);
    return r;
  };
  const put = (body: unknown, id = "dep_mw") => call(api.put(`/api/v1/deployments/${id}/middlewares`, body));
  const storedConfig = async (id = "dep_mw") =>
    rowsOf<{ config: Record<string, unknown> }>(
      await srv.db.execute(sql`select config from deployment_middlewares where deployment_id = ${id}`),
    )[0]?.config;
  const config = async (): Promise<DynamicConfig> => {
    const reply = await call(api.get("/traefik/config", { token: PROVIDER_TOKEN }));
    expect(reply.status).toBe(200);
    const accept = [
      // Intended and documented (README, API docs): requests without X-Api-Key share one rate-limit bucket.
      /requestHeaderName: requests without a X-Api-Key header all share one bucket/,
    ];
    expect(traefikSchemaErrors(reply.body, { staticConfig: TRUSTING_STATIC, acceptWarnings: accept })).toEqual([]);
    return reply.body as unknown as DynamicConfig;
  };

  beforeAll(async () => {
    const primary = await srv.seedDeployment("dep_mw", {
      domain: "www.mw.example.com",
      path_prefix: "/app",
      target_port: 3000,
      ssl_enabled: true,
    });
    route.www.id = primary?.domains[0]?.id ?? "";
    const apex = await api.post<{ route: { id: string } }>("/api/v1/deployments/dep_mw/domains", {
      domain: "mw.example.com",
      ssl_enabled: false,
    });
    expect(apex.status).toBe(201);
    route.apex.id = apex.body.route.id;
    await srv.seedDeployment("dep_other", { domain: "other.example.com", target_port: 3000, ssl_enabled: false });
  });

  it("shows only the chain order before anything is set", async () => {
    await srv.seedDeployment("dep_unset");
    const r = await call(api.get("/api/v1/deployments/dep_unset/middlewares"));
    expect({ status: r.status, contentType: r.contentType, body: r.body }).toEqual({
      status: 200,
      contentType: "application/json",
      body: { chain_order: [...CHAIN_ORDER] },
    });
  });

  const expectedView = {
    redirect_www: "to-apex",
    ip_allow_list: { source_range: ["10.0.0.0/8", "192.0.2.1"], ip_depth: 1 },
    rate_limit: { average: 100, burst: 200, period_seconds: 1, request_header: "X-Api-Key" },
    basic_auth: { users: ["alice", "bob"], realm: "staff", remove_header: true },
    headers: { request: { "X-Env": "prod" }, response: { "X-Frame-Options": "DENY" }, security_preset: true },
    compress: { enabled: true, encodings: ["br", "gzip"] },
    strip_prefix: true,
    chain_order: [...CHAIN_ORDER],
  };

  it("stores basic-auth passwords as bcrypt htpasswd lines and shows only user names", async () => {
    const r = await put(SETTINGS);
    expect({ status: r.status, contentType: r.contentType, body: r.body }).toEqual({
      status: 200,
      contentType: "application/json",
      body: expectedView,
    });
    const stored = await storedConfig();
    const basic = stored?.basic_auth as { users: string[] };
    expect(basic.users).toContain(BOB_LINE); // htpasswd lines are kept as given
    expectVerifies(basic.users, { alice: ALICE_PASSWORD, bob: "bob-password" });
    expect(JSON.stringify(stored)).not.toContain(ALICE_PASSWORD);
    const again = await call(api.get("/api/v1/deployments/dep_mw/middlewares"));
    expect({ status: again.status, body: again.body }).toEqual({ status: 200, body: expectedView });
  });

  it("renders the chain on both routers, hashes that verify, and a schema-valid config", async () => {
    expect((await put(SETTINGS)).status).toBe(200);
    const cfg = await config();
    const www = routeName(route.www);
    const apex = routeName(route.apex);
    expect(cfg.http.routers[www]?.middlewares).toEqual([
      `${www}--redirect-www`,
      "dep-mw--ip-allow-list",
      "dep-mw--rate-limit",
      "dep-mw--basic-auth",
      "dep-mw--headers",
      `${www}--strip-prefix`,
      "dep-mw--compress",
    ]);
    expect(cfg.http.routers[apex]?.middlewares).toEqual([
      "dep-mw--ip-allow-list",
      "dep-mw--rate-limit",
      "dep-mw--basic-auth",
      "dep-mw--http--headers", // the security preset without HSTS, which Traefik sends only over TLS
      "dep-mw--compress",
    ]);
    expect(cfg.http.middlewares?.["dep-mw--ip-allow-list"]).toEqual({
      ipAllowList: { ipStrategy: { depth: 1 }, sourceRange: ["10.0.0.0/8", "192.0.2.1"] },
    });
    expect(cfg.http.routers[redirectRouterName(www)]?.middlewares).toEqual([REDIRECT_TO_HTTPS]);
    // The other deployment (plain HTTP) gets none of them: its own router has no chain, and its HTTPS twin only
    // redirects back to http://.
    expect(Object.entries(cfg.http.routers).filter(([name]) => name.startsWith("dep-other"))).toEqual([
      [expect.any(String), expect.not.objectContaining({ middlewares: expect.anything() })],
      [expect.stringMatching(/--to-http$/), expect.objectContaining({ middlewares: [REDIRECT_TO_HTTP] })],
    ]);
    const basicAuth = cfg.http.middlewares?.["dep-mw--basic-auth"]?.basicAuth;
    expect(basicAuth).toMatchObject({ realm: "staff", removeHeader: true });
    expectVerifies(basicAuth?.users ?? [], { alice: ALICE_PASSWORD, bob: "bob-password" });
    expect(cfg.http.middlewares?.["dep-mw--rate-limit"]).toEqual({
      rateLimit: { average: 100, burst: 200, period: "1s", sourceCriterion: { requestHeaderName: "X-Api-Key" } },
    });
    expect(cfg.http.middlewares?.[`${www}--strip-prefix`]).toEqual({ stripPrefix: { prefixes: ["/app"] } });
    expect(cfg.http.middlewares?.[`${www}--redirect-www`]).toEqual({
      redirectRegex: {
        permanent: true,
        regex: "(?i)^(https?)://www\\.mw\\.example\\.com(:[0-9]+)?(.*)$",
        // biome-ignore lint/suspicious/noTemplateCurlyInString: Go regexp replacement syntax, not a JS template
        replacement: "${1}://mw.example.com${2}${3}",
      },
    });
  });

  it("re-hashes on every PUT, replaces the whole settings, and PUT {} clears them", async () => {
    const r = await put({ basic_auth: { users: [{ username: "carol", password: CAROL_PASSWORD }] } });
    expect(r.body).toEqual({
      basic_auth: { users: ["carol"], remove_header: true },
      chain_order: [...CHAIN_ORDER],
    });
    const stored = (await storedConfig()) as { basic_auth?: { users: string[] } } | undefined;
    expect(Object.keys(stored ?? {})).toEqual(["basic_auth"]);
    expectVerifies(stored?.basic_auth?.users ?? [], { carol: CAROL_PASSWORD });
    const cfg = await config();
    expect(cfg.http.routers[routeName(route.apex)]?.middlewares).toEqual(["dep-mw--basic-auth"]);
    expect(cfg.http.middlewares?.["dep-mw--rate-limit"]).toBeUndefined();
    const cleared = await put({});
    expect(cleared.body).toEqual({ chain_order: [...CHAIN_ORDER] });
    expect(await storedConfig()).toEqual({});
    const after = await config();
    expect(after.http.routers[routeName(route.apex)]?.middlewares).toBeUndefined();
    expect(Object.keys(after.http.middlewares ?? {})).toEqual([REDIRECT_TO_HTTP, REDIRECT_TO_HTTPS]);
  });

  it.each<[string, unknown, string[], RegExp]>([
    [
      "a Go template in a header value",
      { headers: { request: { "X-A": "{{ env `SECRET` }}" } } },
      ["body.headers.request.X-A"],
      /must not contain \{\{/,
    ],
    [
      "a reserved header",
      { headers: { request: { Host: "evil.example.com" } } },
      ["body.headers.request.Host"],
      /reserved/,
    ],
    [
      "a forged proxy header",
      { headers: { request: { "X-Obiente-Proxy-Secret": "x" } } },
      ["body.headers.request.X-Obiente-Proxy-Secret"],
      /reserved/,
    ],
    [
      "CRLF in a header value",
      { headers: { response: { "X-A": "a\r\nSet-Cookie: s=1" } } },
      ["body.headers.response.X-A"],
      /printable ASCII/,
    ],
    [
      "a bad CIDR",
      { ip_allow_list: { source_range: ["10.0.0.0/8", "10.0.0.0/33"] } },
      ["body.ip_allow_list.source_range[1]"],
      /IP address or CIDR/,
    ],
    [
      "an IPv6 zone",
      { ip_allow_list: { source_range: ["fe80::1%eth0"] } },
      ["body.ip_allow_list.source_range[0]"],
      /IP address or CIDR/,
    ],
    [
      "a bad htpasswd line",
      { basic_auth: { htpasswd: ["alice:hunter2"] } },
      ["body.basic_auth.htpasswd[0]"],
      /bcrypt, apr1 or \{SHA\}/,
    ],
    ["no users at all", { basic_auth: { realm: "x" } }, ["body.basic_auth"], /users or htpasswd/],
    [
      "an empty password",
      { basic_auth: { users: [{ username: "alice", password: "" }] } },
      ["body.basic_auth.users[0].password"],
      /./,
    ],
    [
      "a user name with a colon",
      { basic_auth: { users: [{ username: "a:b", password: ALICE_PASSWORD }] } },
      ["body.basic_auth.users[0].username"],
      /letters, digits/,
    ],
    [
      "a quote in the realm",
      { basic_auth: { users: [{ username: "a", password: "b" }], realm: 'a"b' } },
      ["body.basic_auth.realm"],
      /no quotes/,
    ],
    [
      "rate_limit by ip_depth and header",
      { rate_limit: { average: 1, ip_depth: 1, request_header: "X-K" } },
      ["body.rate_limit"],
      /not both/,
    ],
    ["an unknown middleware", { forward_auth: { address: "http://x" } }, ["body"], /unknown field\(s\): forward_auth/],
  ])("rejects %s with 400 VALIDATION_FAILED and keeps the stored settings", async (_, bad, locations, message) => {
    await put({ compress: {} });
    // A valid user with a password rides along: a failed request must not leak or store it either.
    const body = { ...(bad as Record<string, unknown>) };
    body.basic_auth ??= { users: [{ username: "alice", password: ALICE_PASSWORD }] };
    const r = await put(body);
    const p = expectInvalid(r, ...locations);
    expect(p.errors?.map((e) => e.message).join("\n")).toMatch(message);
    expect(r.text).not.toContain(ALICE_PASSWORD);
    expect(await storedConfig()).toEqual({ compress: { enabled: true } });
  });

  it("refuses ip_depth when TRUSTED_PROXY_CIDRS is empty, saying why and what to set", async () => {
    await put({ compress: {} });
    // A second instance on the same database, configured like a fresh install: no trusted load balancers.
    const bare = await startServer(testConfig(), { handle: srv.handle });
    try {
      const untrusted = httpClient(bare.url);
      const body = {
        ip_allow_list: { source_range: ["10.0.0.0/8"], ip_depth: 1 },
        rate_limit: { average: 5, ip_depth: 2 },
      };
      const r = await untrusted.put("/api/v1/deployments/dep_mw/middlewares", body);
      const p = expectInvalid(r, "body.ip_allow_list.ip_depth", "body.rate_limit.ip_depth");
      expect(p.errors?.map((e) => e.message)).toEqual([IP_DEPTH_NEEDS_TRUSTED_PROXIES, IP_DEPTH_NEEDS_TRUSTED_PROXIES]);
      expect(p.detail).toContain("Set TRUSTED_PROXY_CIDRS to the load balancers in front of Traefik");
      expect(p.detail).toContain("forwardedHeaders.trustedIPs");
      expect(await storedConfig()).toEqual({ compress: { enabled: true } });
      // Without a depth (or with 0, the peer address) the same settings are fine.
      const peer = await untrusted.put("/api/v1/deployments/dep_mw/middlewares", {
        ip_allow_list: { source_range: ["10.0.0.0/8"], ip_depth: 0 },
        rate_limit: { average: 5 },
      });
      expect(peer.status).toBe(200);
      expect(untrusted.faults).toEqual([]);
    } finally {
      await bare.close();
    }
  });

  it("answers 404 for an unknown deployment and 400 for a malformed id", async () => {
    for (const r of [
      await call(api.get("/api/v1/deployments/dep_nope/middlewares")),
      await put({ basic_auth: { users: [{ username: "alice", password: ALICE_PASSWORD }] } }, "dep_nope"),
    ]) {
      const p = expectProblem(r, 404, "DEPLOYMENT_NOT_FOUND");
      expect(p.detail).toBe("No deployment dep_nope.");
    }
    expect(await storedConfig("dep_nope")).toBeUndefined();
    expectInvalid(await call(api.get("/api/v1/deployments/Dep-Bad/middlewares")), "path.id");
  });

  it("takes a deployment off the air (fail closed) when its stored settings are edited into something invalid", async () => {
    await put({ basic_auth: { users: [{ username: "alice", password: ALICE_PASSWORD }] } });
    await srv.db.execute(
      sql`update deployment_middlewares set config = ${JSON.stringify({ headers: { request: { "X-A": "{{ .Env }}" } } })}::jsonb where deployment_id = 'dep_mw'`,
    );
    srv.cache.invalidate();
    const cfg = await waitFor(async () => {
      const c = await config();
      return c.http.routers[routeName(route.apex)] === undefined ? c : undefined;
    });
    expect(Object.keys(cfg.http.routers).filter((n) => n.startsWith("dep-mw"))).toEqual([]);
    expect(Object.keys(cfg.http.routers).filter((n) => n.startsWith("dep-other"))).toHaveLength(2); // + its --to-http
    expect(JSON.stringify(cfg)).not.toContain("{{");
    const stats = await call(
      api.get<{ config: { skipped_rows: { kind: string; id: string; reason: string }[] } }>("/api/v1/routing/stats"),
    );
    expect(stats.body.config.skipped_rows).toEqual(
      [route.apex.id, route.www.id]
        .sort()
        .map((id) => ({ kind: "route", id, reason: "middleware settings are invalid" })),
    );
    const warned = logs
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.level === "warn" && l.reason === "middleware settings are invalid");
    expect(warned.map((l) => l.id)).toEqual(expect.arrayContaining([route.apex.id, route.www.id]));
    // A valid PUT brings it back.
    expect((await put({ compress: {} })).status).toBe(200);
    const back = await config();
    expect(back.http.routers[routeName(route.apex)]?.middlewares).toEqual(["dep-mw--compress"]);
  });

  it("never let a plaintext password reach a response, the database or a log line", async () => {
    // Traffic of its own carrying every password (accepted, replaced, refused), so the audit reads something in any
    // test order; whatever the other tests sent is audited too.
    const carol = { basic_auth: { users: [{ username: "carol", password: CAROL_PASSWORD }] } };
    const refused = { ...SETTINGS, forward_auth: { address: "http://x" } };
    for (const body of [SETTINGS, carol, refused, SETTINGS, carol, refused, SETTINGS]) {
      await put(body);
      await call(api.get("/api/v1/deployments/dep_mw/middlewares"));
      await config();
    }
    expect(answers.length).toBeGreaterThan(20);
    const everything = [
      ...answers.map((r) => r.text),
      ...logs,
      JSON.stringify(rowsOf(await srv.db.execute(sql`select * from deployment_middlewares`))),
      JSON.stringify(await config()),
    ].join("\n");
    for (const pw of PASSWORDS) {
      expect(everything).not.toContain(pw);
    }
    expect(logs.some((l) => l.includes('"path":"/api/v1/deployments/dep_mw/middlewares"'))).toBe(true);
  });
});
