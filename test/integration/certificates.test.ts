import { sql } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { rowsOf } from "../../src/db/client.js";
import { routeName } from "../../src/render/names.js";
import type { DynamicConfig } from "../../src/render/types.js";
import { expectInvalid, expectProblem, type Reply, type RoutingJson } from "../helpers/api-client.js";
import { useApiServer } from "../helpers/api-server.js";
import { PROVIDER_TOKEN } from "../helpers/app.js";
import {
  encryptedKey,
  expiredCert,
  keyFragments,
  makeCert,
  notYetValidCert,
  pemBody,
  type TestCert,
  unrelatedKey,
} from "../helpers/certs.js";
import { DRIVERS } from "../helpers/db.js";
import { traefikSchemaErrors } from "../helpers/traefik-schema.js";

const DAY = 86_400_000;
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

interface CertificateJson {
  id: string;
  subject: string;
  issuer: string;
  sans: string[];
  not_before: string;
  not_after: string;
  fingerprint_sha256: string;
  expires_in_days: number;
  expiring_soon: boolean;
  used_by: { route_id: string; deployment_id: string; domain: string }[];
  created_at: string;
}

// Generated once per file with openssl (see test/helpers/certs.ts); nothing here is a committed key.
const shop = makeCert({ sans: ["*.shop.example.com", "a.example.com"], days: 90 });
const chained = makeCert({ sans: ["chain.example.com"], issuedByCa: true });
const soon = makeCert({ sans: ["soon.example.com"], days: 10 });
const expired = expiredCert(["old.example.com"]);
const future = notYetValidCert(["future.example.com"]);
const other = makeCert({ sans: ["other.example.com"] });

/** What must never show up outside the provider endpoint: PEM armour, or any run of any test key's body. */
const ALL_KEY_FRAGMENTS = [shop, chained, soon, expired, future, other].flatMap((c) => keyFragments(c.keyPem));

function expectNoKeyMaterial(text: string): void {
  expect(text).not.toContain("PRIVATE KEY");
  expect(ALL_KEY_FRAGMENTS.filter((f) => text.includes(f))).toEqual([]);
}

const upload = (cert: Pick<TestCert, "certPem" | "keyPem">) => ({ cert_pem: cert.certPem, key_pem: cert.keyPem });

describe.each(DRIVERS)("uploaded certificates on %s", (driver) => {
  const srv = useApiServer(driver, {}, { captureLogs: true });
  const { api, logs } = srv;
  /** Every admin API answer, checked for key material at the end. */
  const answers: Reply<unknown>[] = [];
  const routes = new Map<string, { id: string; deploymentId: string }>(); // by domain

  const call = async <T>(reply: Promise<Reply<T>>): Promise<Reply<T>> => {
    const r = await reply;
    answers.push(r);
    return r;
  };
  const config = async (): Promise<DynamicConfig> => (await api.traefikConfig()).config;
  /** The HTTPS router's `tls` for the route serving `domain`. */
  const tlsOf = (cfg: DynamicConfig, domain: string) => {
    const route = routes.get(domain);
    if (!route) {
      throw new Error(`no route for ${domain}`);
    }
    return cfg.http.routers[routeName(route)]?.tls;
  };

  beforeAll(async () => {
    const add = async (dep: string, domain: string, body: Record<string, unknown> = {}) => {
      if (!(await api.get(`/api/v1/deployments/${dep}`)).status.toString().startsWith("2")) {
        expect((await api.post("/api/v1/deployments", { id: dep, name: dep })).status).toBe(201);
        const r = await api.put<RoutingJson>(`/api/v1/deployments/${dep}/routing`, {
          domain,
          target_port: 3000,
          ssl_enabled: true,
          ...body,
        });
        expect(r.status).toBe(200);
        routes.set(domain, { id: r.body.domains[0]?.id ?? "", deploymentId: dep });
        return;
      }
      const r = await api.post<{ route: { id: string } }>(`/api/v1/deployments/${dep}/domains`, {
        domain,
        ssl_enabled: true,
        ...body,
      });
      expect(r.status).toBe(201);
      routes.set(domain, { id: r.body.route.id, deploymentId: dep });
    };
    await add("dep_shop", "*.shop.example.com");
    await add("dep_shop", "a.example.com");
    await add("dep_shop", "plain.a.example.com", { ssl_enabled: false });
    await add("dep_prev", "*.preview.example.com", { tls_include_apex: true });
    await add("dep_chain", "chain.example.com");
  });

  let shopId = "";
  const bodyOf = (cert: TestCert) => upload(cert === chained ? { ...chained, certPem: chained.chainPem } : cert);
  /**
   * Seeds a test's world: afterwards exactly `wanted` are uploaded (kept if already there, deleted if not wanted),
   * and `shopId` names the shop certificate when it is one of them.
   */
  const onlyCertificates = async (...wanted: TestCert[]) => {
    const list = await call(api.get<{ items: CertificateJson[] }>("/api/v1/certificates"));
    const want = new Set(wanted.map((c) => c.fingerprintSha256));
    const ids = new Map<string, string>();
    for (const c of list.body.items) {
      if (want.has(c.fingerprint_sha256)) {
        ids.set(c.fingerprint_sha256, c.id);
      } else {
        expect((await call(api.delete(`/api/v1/certificates/${c.id}`))).status).toBe(204);
      }
    }
    for (const cert of wanted.filter((c) => !ids.has(c.fingerprintSha256))) {
      const r = await call(api.post<CertificateJson>("/api/v1/certificates", bodyOf(cert)));
      expect(r.status).toBe(201);
      ids.set(cert.fingerprintSha256, r.body.id);
    }
    shopId = ids.get(shop.fingerprintSha256) ?? "";
  };

  it("uploads a certificate: 201 with its metadata and routes, never the key", async () => {
    await onlyCertificates();
    const r = await call(api.post<CertificateJson>("/api/v1/certificates", upload(shop)));
    expect(r.status).toBe(201);
    expect(r.contentType).toBe("application/json");
    shopId = r.body.id;
    expect(r.headers.get("location")).toBe(`/api/v1/certificates/${shopId}`);
    expect({ ...r.body, used_by: [...r.body.used_by].sort((a, b) => (a.domain < b.domain ? -1 : 1)) }).toEqual({
      id: expect.stringMatching(/^crt_/),
      subject: "CN=*.shop.example.com",
      issuer: "CN=*.shop.example.com",
      sans: ["*.shop.example.com", "a.example.com"],
      not_before: shop.notBefore.toISOString(),
      not_after: shop.notAfter.toISOString(),
      fingerprint_sha256: shop.fingerprintSha256, // as `openssl x509 -fingerprint -sha256` prints it
      expires_in_days: 89, // 90 days from when openssl made it, less the seconds since
      expiring_soon: false,
      used_by: [
        { route_id: routes.get("*.shop.example.com")?.id, deployment_id: "dep_shop", domain: "*.shop.example.com" },
        { route_id: routes.get("a.example.com")?.id, deployment_id: "dep_shop", domain: "a.example.com" },
      ], // not plain.a.example.com: SAN a.example.com does not cover it, and it has no TLS anyway
      created_at: expect.stringMatching(ISO),
    });
  });

  it("shows the same metadata on GET and in the list", async () => {
    await onlyCertificates(shop);
    const one = await call(api.get<CertificateJson>(`/api/v1/certificates/${shopId}`));
    expect(one.status).toBe(200);
    expect(one.contentType).toBe("application/json");
    expect(one.body.fingerprint_sha256).toBe(shop.fingerprintSha256);
    const list = await call(api.get<{ items: CertificateJson[] }>("/api/v1/certificates"));
    expect(list.status).toBe(200);
    expect(list.body).toEqual({ items: [one.body] });
  });

  it("stores the key encrypted: the column holds neither PEM armour nor the key's base64", async () => {
    await onlyCertificates(shop);
    const rows = rowsOf<{ key_encrypted: string; cert_pem: string }>(
      await srv.db.execute(sql`select key_encrypted, cert_pem from certificates where id = ${shopId}`),
    );
    expect(rows).toHaveLength(1);
    const [row] = rows;
    expect(row?.cert_pem).toBe(shop.certPem);
    expect(row?.key_encrypted).toMatch(/^v1:[A-Za-z0-9_-]{11}:[A-Za-z0-9_-]+:[A-Za-z0-9_-]+:[A-Za-z0-9_-]+$/);
    expectNoKeyMaterial(row?.key_encrypted ?? "PRIVATE KEY");
    // Nor the key's DER in base64url, the alphabet of the stored parts.
    const urlRuns = keyFragments(shop.keyPem).map((f) => f.replaceAll("+", "-").replaceAll("/", "_"));
    expect(urlRuns.filter((f) => row?.key_encrypted.includes(f))).toEqual([]);
  });

  it("renders the PEM inline and serves covered routes without a resolver", async () => {
    await onlyCertificates(shop);
    const cfg = await config();
    expect(cfg.tls).toEqual({ certificates: [{ certFile: shop.certPem, keyFile: shop.keyPem }] });
    expect(tlsOf(cfg, "*.shop.example.com")).toEqual({});
    expect(tlsOf(cfg, "a.example.com")).toEqual({});
    // Uncovered wildcard: the DNS-01 default resolver, and the explicit domains ACME needs (apex as asked).
    expect(tlsOf(cfg, "*.preview.example.com")).toEqual({
      certResolver: "letsencrypt-dns",
      domains: [{ main: "*.preview.example.com", sans: ["preview.example.com"] }],
    });
    expect(tlsOf(cfg, "chain.example.com")).toEqual({ certResolver: "letsencrypt" });
    const yaml = await api.get("/traefik/config?format=yaml", { token: PROVIDER_TOKEN });
    expect(yaml.status).toBe(200);
    expect(parseYaml(yaml.text)).toEqual(cfg);
  });

  it("refuses tokenless polls (the provider token is set)", async () => {
    for (const headers of [{}, { authorization: "Bearer not-the-provider-token" }] as Record<string, string>[]) {
      const r = await api.get("/traefik/config", { token: null, headers });
      expectProblem(r, 401, "UNAUTHORIZED");
      expect(r.headers.get("www-authenticate")).toBe('Bearer realm="traefik-provider"');
      expectNoKeyMaterial(r.text);
    }
  });

  it("accepts a CA-issued leaf with its chain and renders both blocks", async () => {
    await onlyCertificates(shop);
    const r = await call(
      api.post<CertificateJson>("/api/v1/certificates", upload({ ...chained, certPem: chained.chainPem })),
    );
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({
      subject: "CN=chain.example.com",
      issuer: "CN=Test CA",
      sans: ["chain.example.com"],
      fingerprint_sha256: chained.fingerprintSha256,
      used_by: [
        { route_id: routes.get("chain.example.com")?.id, deployment_id: "dep_chain", domain: "chain.example.com" },
      ],
    });
    const cfg = await config();
    expect(cfg.tls?.certificates).toContainEqual({ certFile: chained.chainPem, keyFile: chained.keyPem });
    expect(tlsOf(cfg, "chain.example.com")).toEqual({});
  });

  it("answers 409 CERTIFICATE_EXISTS to the same certificate again, however it is formatted", async () => {
    await onlyCertificates(shop);
    for (const body of [
      upload(shop),
      { cert_pem: shop.certPem.replace(/\n/g, "\r\n"), key_pem: `\n${shop.keyPem}\n\n` },
    ]) {
      const r = await call(api.post("/api/v1/certificates", body));
      expect(r.status).toBe(409);
      expect(r.contentType).toBe("application/problem+json");
      expect(r.body).toEqual({
        type: "urn:obiente-router:problem:certificate-exists",
        title: "Conflict",
        status: 409,
        detail: `This certificate is already uploaded as ${shopId}.`,
        instance: "/api/v1/certificates",
        code: "CERTIFICATE_EXISTS",
        requestId: r.headers.get("x-request-id"),
        certificate_id: shopId,
      });
    }
  });

  it.each<[string, () => { cert_pem: string; key_pem: string }, string, string]>([
    [
      "a key that does not match",
      () => ({ cert_pem: other.certPem, key_pem: unrelatedKey() }),
      "body.key_pem",
      "the private key does not match the certificate",
    ],
    [
      "an expired certificate",
      () => upload(expired),
      "body.cert_pem",
      "the certificate expired on 2020-02-01T00:00:00.000Z",
    ],
    [
      "a not-yet-valid certificate",
      () => upload(future),
      "body.cert_pem",
      "the certificate is not valid before 2099-01-01T00:00:00.000Z",
    ],
    [
      "a non-PEM blob",
      () => ({ cert_pem: pemBody(other.certPem), key_pem: other.keyPem }),
      "body.cert_pem",
      "not PEM: expected -----BEGIN …-----",
    ],
    [
      "a non-PEM key",
      () => ({ cert_pem: other.certPem, key_pem: "correct horse battery staple" }),
      "body.key_pem",
      "not PEM: expected -----BEGIN …-----",
    ],
    [
      "a PEM with trailing garbage",
      () => ({ cert_pem: `${other.certPem}<script>`, key_pem: other.keyPem }),
      "body.cert_pem",
      "unexpected text after the last PEM block",
    ],
    [
      "a key with trailing garbage",
      () => ({ cert_pem: other.certPem, key_pem: `${other.keyPem}{{ .Env }}` }),
      "body.key_pem",
      "unexpected text after the last PEM block",
    ],
    [
      "a passphrase-protected key",
      () => ({ cert_pem: other.certPem, key_pem: encryptedKey(other.keyPem) }),
      "body.key_pem",
      "the key is passphrase-protected; upload it unencrypted (it is encrypted at rest here)",
    ],
    [
      "the key pasted into cert_pem",
      () => ({ cert_pem: `${other.certPem}${other.keyPem}`, key_pem: other.keyPem }),
      "body.cert_pem",
      "only CERTIFICATE blocks belong in cert_pem (leaf first, then the chain)",
    ],
  ])("rejects %s with a 400 INVALID_CERTIFICATE naming the field", async (_, body, location, message) => {
    const r = await call(api.post("/api/v1/certificates", body()));
    expect({ status: r.status, contentType: r.contentType, body: r.body }).toEqual({
      status: 400,
      contentType: "application/problem+json",
      body: {
        type: "urn:obiente-router:problem:invalid-certificate",
        title: "Invalid certificate",
        status: 400,
        detail: message,
        instance: "/api/v1/certificates",
        code: "INVALID_CERTIFICATE",
        requestId: r.headers.get("x-request-id"),
        errors: [{ location, message }],
      },
    });
  });

  it("validates the body shape before looking at the PEM", async () => {
    expectInvalid(await call(api.post("/api/v1/certificates", { cert_pem: other.certPem })), "body.key_pem");
    expectInvalid(await call(api.post("/api/v1/certificates", { ...upload(other), password: "x" })), "body");
    expectInvalid(
      await call(api.post("/api/v1/certificates", { cert_pem: "", key_pem: 42 })),
      "body.cert_pem",
      "body.key_pem",
    );
    expectProblem(await call(api.post("/api/v1/certificates", upload(other), { token: null })), 401, "UNAUTHORIZED");
    const list = await call(api.get<{ items: CertificateJson[] }>("/api/v1/certificates"));
    expect(list.body.items.map((c) => c.sans)).toEqual(
      expect.not.arrayContaining([["other.example.com"], ["old.example.com"], ["future.example.com"]]),
    );
  });

  it("lists a certificate expiring within CERT_EXPIRY_WARN_DAYS in the stats", async () => {
    await onlyCertificates(shop, chained);
    const up = await call(api.post<CertificateJson>("/api/v1/certificates", upload(soon)));
    expect(up.status).toBe(201);
    expect(up.body).toMatchObject({ expires_in_days: 9, expiring_soon: true, used_by: [] });
    const stats = await call(
      api.get<{ certificates: { total: number; expiring_soon: unknown[] } }>("/api/v1/routing/stats"),
    );
    expect(stats.status).toBe(200);
    expect(stats.body.certificates).toEqual({
      total: 3,
      expiring_soon: [
        { id: up.body.id, sans: ["soon.example.com"], not_after: soon.notAfter.toISOString(), expires_in_days: 9 },
      ],
    });
    expect(Math.floor((soon.notAfter.getTime() - Date.now()) / DAY)).toBe(9);
  });

  it("deletes: 204, then 404, and the routes fall back to their resolver", async () => {
    await onlyCertificates(shop, chained, soon);
    const del = await call(api.delete(`/api/v1/certificates/${shopId}`));
    expect({ status: del.status, text: del.text }).toEqual({ status: 204, text: "" });
    for (const r of [
      await call(api.get(`/api/v1/certificates/${shopId}`)),
      await call(api.delete(`/api/v1/certificates/${shopId}`)),
    ]) {
      const p = expectProblem(r, 404, "CERTIFICATE_NOT_FOUND");
      expect(p.detail).toBe(`No certificate ${shopId}.`);
    }
    const cfg = await config();
    expect(cfg.tls?.certificates.map((c) => c.certFile)).not.toContain(shop.certPem);
    const text = JSON.stringify(cfg);
    expect(keyFragments(shop.keyPem).filter((f) => text.includes(f))).toEqual([]);
    expect(keyFragments(soon.keyPem).every((f) => text.includes(f))).toBe(true); // the check can see keys
    expect(tlsOf(cfg, "*.shop.example.com")).toEqual({
      certResolver: "letsencrypt-dns",
      domains: [{ main: "*.shop.example.com" }],
    });
    // An added domain inherits its deployment's (here DNS-01) resolver.
    expect(tlsOf(cfg, "a.example.com")).toEqual({ certResolver: "letsencrypt-dns" });
  });

  it("never put key material in an API answer or a log line", async () => {
    // Traffic of its own with every key (uploaded, listed, refused, deleted), so the audit reads something in any
    // test order; whatever the other tests sent is audited too.
    for (const certs of [[shop, chained, soon], [], [shop], [chained, soon], []]) {
      await onlyCertificates(...certs);
      await call(api.post("/api/v1/certificates", { cert_pem: other.certPem, key_pem: encryptedKey(other.keyPem) }));
    }
    expect(answers.length).toBeGreaterThan(20);
    for (const r of answers) {
      expectNoKeyMaterial(r.text);
    }
    expect(logs.length).toBeGreaterThan(answers.length); // one line per request, at least
    expectNoKeyMaterial(logs.join(""));
  });
});

describe.each(DRIVERS)("the provider endpoint without PROVIDER_TOKEN on %s", (driver) => {
  const srv = useApiServer(driver, { PROVIDER_TOKEN: "" });
  const { api } = srv;
  const cert = makeCert({ sans: ["open.example.com"] });

  beforeAll(async () => {
    await srv.seedDeployment("dep_open", { domain: "open.example.com", target_port: 80, ssl_enabled: true });
  });

  const poll = (headers: Record<string, string> = {}) => api.get("/traefik/config", { token: null, headers });

  it("serves tokenless polls while no certificate exists", async () => {
    const r = await poll();
    expect(r.status).toBe(200);
    expect(r.contentType).toBe("application/json; charset=utf-8");
    const cfg = r.body as unknown as DynamicConfig;
    expect(traefikSchemaErrors(cfg)).toEqual([]);
    expect(cfg.tls).toBeUndefined();
    expect(Object.values(cfg.http.routers).map((x) => x.rule)).toContain("Host(`open.example.com`)");
  });

  it("refuses every poll once the config holds a private key, and serves again after the delete", async () => {
    const up = await api.post<CertificateJson>("/api/v1/certificates", upload(cert));
    expect(up.status).toBe(201);
    const variants: Record<string, string>[] = [
      {},
      { authorization: "Bearer anything-at-all-0123456789" },
      { accept: "application/yaml" },
      { "accept-encoding": "gzip" },
      { "if-none-match": "*" },
    ];
    for (let i = 0; i < 3; i++) {
      for (const headers of variants) {
        const r = await poll(headers);
        const p = expectProblem(r, 401, "UNAUTHORIZED");
        expect(p.detail).toMatch(/private keys.*set PROVIDER_TOKEN/);
        expect(r.headers.get("www-authenticate")).toBe('Bearer realm="traefik-provider"');
        expect(r.text).not.toContain("PRIVATE KEY");
      }
    }
    const yaml = await api.get("/traefik/config?format=yaml", { token: null });
    expect(yaml.status).toBe(401);
    expect(yaml.text).not.toContain("PRIVATE KEY");
    expect((await api.delete(`/api/v1/certificates/${up.body.id}`)).status).toBe(204);
    const after = await poll();
    expect(after.status).toBe(200);
    expect(after.text).not.toContain("PRIVATE KEY");
  });
});
