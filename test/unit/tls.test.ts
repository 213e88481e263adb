import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { canonical } from "../../src/render/canonical.js";
import { redirectRouterName, routeName } from "../../src/render/names.js";
import { renderDynamicConfig } from "../../src/render/render.js";
import { toJson, toYaml } from "../../src/render/serialize.js";
import { certificateFor, routerTls, sanCovers } from "../../src/render/tls.js";
import type { RouteInput, TlsCertificateInput } from "../../src/render/types.js";
import { CertificateProblem, inspectCertificate } from "../../src/tls/certificate.js";
import { decryptSecret, encryptSecret, keyId, parseEncryptionKey, WrongKey } from "../../src/tls/crypto.js";
import { expiringSoon } from "../../src/tls/expiry.js";
import { anInput, aRoute, routed, shuffled } from "../fixtures/rows.js";
import {
  encryptedKey,
  expiredCert,
  keyFragments,
  makeCert,
  notYetValidCert,
  opensslFingerprint,
  pemBody,
  traditionalKey,
  unrelatedKey,
} from "../helpers/certs.js";
import { traefikSchemaErrors } from "../helpers/traefik-schema.js";

const DAY = 86_400_000;

describe("sanCovers", () => {
  it.each([
    ["a.example.com", "a.example.com"],
    ["A.Example.COM", "a.example.com"], // SANs compare case-insensitively; stored domains are lower case
    ["*.shop.example.com", "x.shop.example.com"],
    ["*.shop.example.com", "my-pr-42.shop.example.com"],
    ["*.shop.example.com", "*.shop.example.com"], // the wildcard route itself
  ])("%s covers %s", (san, domain) => expect(sanCovers(san, domain)).toBe(true));

  it.each([
    ["a.example.com", "b.example.com"],
    ["a.example.com", "x.a.example.com"],
    ["*.shop.example.com", "shop.example.com"], // a wildcard never covers its apex
    ["*.shop.example.com", "a.b.shop.example.com"], // nor more than one label
    ["*.shop.example.com", "xshop.example.com"],
    ["*.shop.example.com", "x.shop.example.com.evil.io"],
    ["*.example.com", "*.shop.example.com"], // a wildcard route only by the same wildcard
    ["x.shop.example.com", "*.shop.example.com"],
    ["shop.example.com", "*.shop.example.com"],
    ["*.shop.example.com", ".shop.example.com"],
  ])("%s does not cover %s", (san, domain) => expect(sanCovers(san, domain)).toBe(false));
});

const cert = (id: string, sans: string[]): TlsCertificateInput => ({
  id,
  sans,
  certPem: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
  keyPem: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
});

describe("certificateFor and routerTls", () => {
  const certs = [cert("crt_a", ["a.example.com", "*.shop.example.com"]), cert("crt_b", ["b.example.com"])];

  it("finds the first certificate whose SANs cover the domain", () => {
    expect(certificateFor("x.shop.example.com", certs)?.id).toBe("crt_a");
    expect(certificateFor("b.example.com", certs)?.id).toBe("crt_b");
    expect(certificateFor("c.example.com", certs)).toBeUndefined();
  });

  it("needs no resolver for a covered domain, exact or wildcard", () => {
    for (const domain of ["a.example.com", "x.shop.example.com", "*.shop.example.com"]) {
      expect(routerTls(aRoute({ domain, sslEnabled: true }), certs)).toEqual({});
    }
  });

  it("uses the route's resolver for an uncovered exact domain", () => {
    expect(routerTls(aRoute({ domain: "shop.example.com", sslCertResolver: "le" }), certs)).toEqual({
      certResolver: "le",
    });
  });

  it("asks ACME for `*.name` explicitly on an uncovered wildcard, plus the apex when tlsIncludeApex", () => {
    const wild = aRoute({ domain: "*.preview.example.com", sslCertResolver: "letsencrypt-dns" });
    expect(routerTls(wild, certs)).toEqual({
      certResolver: "letsencrypt-dns",
      domains: [{ main: "*.preview.example.com" }],
    });
    expect(routerTls({ ...wild, tlsIncludeApex: true }, certs)).toEqual({
      certResolver: "letsencrypt-dns",
      domains: [{ main: "*.preview.example.com", sans: ["preview.example.com"] }],
    });
    // A certificate for one host under the wildcard does not serve the wildcard route.
    expect(routerTls(wild, [cert("crt_c", ["a.preview.example.com", "preview.example.com"])])).toEqual({
      certResolver: "letsencrypt-dns",
      domains: [{ main: "*.preview.example.com" }],
    });
  });
});

describe("renderDynamicConfig with uploaded certificates", () => {
  const shop = makeCert({ sans: ["*.shop.example.com", "shop.example.com"] });
  const other = makeCert({ sans: ["other.example.com"] });
  const uploads: TlsCertificateInput[] = [
    { id: "crt_shop", certPem: shop.certPem, keyPem: shop.keyPem, sans: shop.sans },
    { id: "crt_b_other", certPem: other.certPem, keyPem: other.keyPem, sans: other.sans },
  ];
  const routes: RouteInput[] = [
    aRoute({
      id: "wild",
      deploymentId: "dep_shop",
      domain: "*.shop.example.com",
      sslEnabled: true,
      sslCertResolver: "letsencrypt-dns", // as the API defaults it: wildcard certificates need DNS-01
    }),
    aRoute({ id: "apex", deploymentId: "dep_shop", domain: "shop.example.com", sslEnabled: true }),
    aRoute({ id: "one", deploymentId: "dep_shop", domain: "x.shop.example.com", sslEnabled: true }),
    aRoute({
      id: "prev",
      deploymentId: "dep_prev",
      domain: "*.preview.example.com",
      sslEnabled: true,
      sslCertResolver: "letsencrypt-dns",
      tlsIncludeApex: true,
    }),
    aRoute({ id: "plain", deploymentId: "dep_plain", domain: "plain.example.com" }),
  ];
  const render = (certificates: TlsCertificateInput[], rows = routes) => {
    const result = routed(renderDynamicConfig({ ...anInput(rows), certificates }));
    expect(traefikSchemaErrors(result.config)).toEqual([]);
    return result;
  };
  const tlsOf = (config: ReturnType<typeof render>["config"], id: string) => {
    const route = routes.find((r) => r.id === id);
    return route && config.http.routers[routeName(route)]?.tls;
  };

  it("places the PEM inline, sorted by id, and serves covered routes without a resolver", () => {
    const { config, warnings, hasSecrets } = render(uploads);
    expect(warnings).toEqual([]);
    expect(hasSecrets).toBe(true); // the provider endpoint then insists on a token
    expect(config.tls).toEqual({
      certificates: [
        { certFile: other.certPem, keyFile: other.keyPem },
        { certFile: shop.certPem, keyFile: shop.keyPem },
      ],
    });
    expect(tlsOf(config, "wild")).toEqual({});
    expect(tlsOf(config, "apex")).toEqual({});
    expect(tlsOf(config, "one")).toEqual({});
    expect(tlsOf(config, "prev")).toEqual({
      certResolver: "letsencrypt-dns",
      domains: [{ main: "*.preview.example.com", sans: ["preview.example.com"] }],
    });
    const wild = routes[0] as RouteInput;
    // The plain-HTTP twin still only redirects.
    expect(config.http.routers[redirectRouterName(routeName(wild))]).toMatchObject({
      entryPoints: ["web"],
      middlewares: ["obiente-redirect-to-https"],
    });
    expect(config.http.routers[redirectRouterName(routeName(wild))]?.tls).toBeUndefined();
  });

  it("renders no tls section and resolvers everywhere without certificates", () => {
    const { config } = render([]);
    expect(config.tls).toBeUndefined();
    expect(tlsOf(config, "wild")).toEqual({
      certResolver: "letsencrypt-dns",
      domains: [{ main: "*.shop.example.com" }],
    });
    expect(tlsOf(config, "apex")).toEqual({ certResolver: "letsencrypt" });
  });

  it("is canonical and byte-identical for shuffled rows and certificates", () => {
    const first = render(uploads).config;
    expect(toJson(canonical(first))).toBe(toJson(first));
    for (const seed of [1, 2, 3]) {
      const again = render(shuffled(uploads, seed), shuffled(routes, seed + 1)).config;
      expect(toJson(again)).toBe(toJson(first));
      expect(toYaml(again)).toBe(toYaml(first));
    }
  });

  it("would notice a malformed tls section (the schema overlay closes these objects)", () => {
    const { config } = render(uploads);
    const [first] = config.tls?.certificates ?? [];
    expect(traefikSchemaErrors({ ...config, tls: { certificates: [{ certFile: first?.certFile }] } })).not.toEqual([]);
    expect(traefikSchemaErrors({ ...config, tls: { certificates: [{ ...first, keyfile: "x" }] } })).not.toEqual([]);
    const wild = routeName(routes[0] as RouteInput);
    const misspelt = structuredClone(config);
    const router = misspelt.http.routers[wild];
    if (router) {
      router.tls = { certresolver: "le" } as unknown as typeof router.tls;
    }
    expect(traefikSchemaErrors(misspelt)).not.toEqual([]);
  });

  it("drops a certificate whose PEM is not clean (a hand-edited row) and falls back to the resolver", () => {
    const dirty = { id: "crt_dirty", certPem: shop.certPem, keyPem: `${shop.keyPem}{{ env "X" }}\n`, sans: shop.sans };
    const { config, warnings } = render([dirty, { id: "crt_other", ...other }]);
    expect(warnings).toEqual([{ kind: "certificate", id: "crt_dirty", reason: "certificate or key is not clean PEM" }]);
    expect(config.tls?.certificates).toEqual([{ certFile: other.certPem, keyFile: other.keyPem }]);
    expect(toJson(config)).not.toContain("{{");
    expect(tlsOf(config, "apex")).toEqual({ certResolver: "letsencrypt" });
  });
});

describe("inspectCertificate", () => {
  const good = makeCert({ sans: ["a.example.com", "*.Shop.example.com"] });
  const now = new Date();

  it("returns normalized PEM and the metadata the API shows", () => {
    const info = inspectCertificate(good.certPem, good.keyPem, now);
    expect(info).toEqual({
      subject: "CN=a.example.com",
      issuer: "CN=a.example.com",
      sans: ["*.shop.example.com", "a.example.com"],
      notBefore: good.notBefore,
      notAfter: good.notAfter,
      fingerprintSha256: good.fingerprintSha256,
      certPem: good.certPem,
      keyPem: good.keyPem,
    });
    expect(info.fingerprintSha256).toBe(opensslFingerprint(good.certPem)); // openssl agrees with node:crypto
  });

  it("accepts CRLF line ends, surrounding blank lines and a legacy EC key (stored as PKCS#8)", () => {
    const crlf = (s: string) => `\r\n${s.replace(/\n/g, "\r\n")}\r\n\r\n`;
    const legacy = traditionalKey(good.keyPem);
    expect(legacy).toMatch(/^-----BEGIN EC PRIVATE KEY-----\n/);
    const info = inspectCertificate(crlf(good.certPem), crlf(legacy), now);
    expect(info.certPem).toBe(good.certPem);
    expect(info.keyPem).toBe(good.keyPem);
  });

  it("keeps the chain after the leaf and names the issuer", () => {
    const chained = makeCert({ sans: ["c.example.com"], issuedByCa: true, keyType: "rsa" });
    const info = inspectCertificate(chained.chainPem, traditionalKey(chained.keyPem), now);
    expect(info.issuer).toBe("CN=Test CA");
    expect(info.certPem).toBe(chained.chainPem);
    expect(info.certPem.match(/-----BEGIN CERTIFICATE-----/g)).toHaveLength(2);
    expect(info.fingerprintSha256).toBe(chained.fingerprintSha256); // of the leaf, not the chain
  });

  it("judges validity against the given time", () => {
    const old = expiredCert(["old.example.com"]);
    expect(inspectCertificate(old.certPem, old.keyPem, new Date("2020-01-15T00:00:00Z")).sans).toEqual([
      "old.example.com",
    ]);
  });

  const expired = expiredCert(["old.example.com"]);
  const future = notYetValidCert(["future.example.com"]);
  const noSan = makeCert({ sans: [], cn: "nosan.example.com" });
  const twoKeys = `${good.keyPem}${unrelatedKey()}`;
  const corrupt = good.certPem.replace(/\n[A-Za-z0-9+/]{20}/, (m) => `\n${"A".repeat(m.length - 1)}`);
  it.each<[string, () => [string, string], CertificateProblem["location"], RegExp]>([
    ["a key that does not match", () => [good.certPem, unrelatedKey()], "body.key_pem", /does not match/],
    ["an expired certificate", () => [expired.certPem, expired.keyPem], "body.cert_pem", /expired on 2020-02-01/],
    ["a not-yet-valid certificate", () => [future.certPem, future.keyPem], "body.cert_pem", /not valid before 2099/],
    ["a non-PEM certificate", () => ["MIIBqjCCAVCgAwIBAgIIGR5p", good.keyPem], "body.cert_pem", /not PEM/],
    ["a non-PEM key", () => [good.certPem, "hunter2"], "body.key_pem", /not PEM/],
    [
      "a DER blob",
      () => [Buffer.from(pemBody(good.certPem), "base64").toString("latin1"), good.keyPem],
      "body.cert_pem",
      /not PEM/,
    ],
    [
      "trailing garbage after the certificate",
      () => [`${good.certPem}garbage`, good.keyPem],
      "body.cert_pem",
      /after the last/,
    ],
    [
      "trailing garbage after the key",
      () => [good.certPem, `${good.keyPem}\n# my key`],
      "body.key_pem",
      /after the last/,
    ],
    [
      "text between PEM blocks",
      () => [`${good.certPem}intermediate:\n${good.certPem}`, good.keyPem],
      "body.cert_pem",
      /between/,
    ],
    ["a truncated block", () => [good.certPem.slice(0, -30), good.keyPem], "body.cert_pem", /no complete PEM block/],
    [
      "a private key in cert_pem",
      () => [`${good.certPem}${good.keyPem}`, good.keyPem],
      "body.cert_pem",
      /only CERTIFICATE/,
    ],
    ["a certificate in key_pem", () => [good.certPem, good.certPem], "body.key_pem", /exactly one PRIVATE KEY/],
    ["two keys", () => [good.certPem, twoKeys], "body.key_pem", /exactly one PRIVATE KEY/],
    ["a passphrase-protected key", () => [good.certPem, encryptedKey(good.keyPem)], "body.key_pem", /passphrase/],
    ["a corrupted certificate", () => [corrupt, good.keyPem], "body.cert_pem", /does not parse/],
    [
      "a corrupted key",
      () => [good.certPem, good.keyPem.replace(/\n[A-Za-z0-9+/]{8}/, "\nAAAAAAAA")],
      "body.key_pem",
      /does not parse|does not match/,
    ],
    ["no DNS SAN", () => [noSan.certPem, noSan.keyPem], "body.cert_pem", /no DNS subject alternative names/],
  ])("rejects %s", (_, input, location, message) => {
    const [certPem, keyPem] = input();
    let thrown: unknown;
    try {
      inspectCertificate(certPem, keyPem, now);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(CertificateProblem);
    const problem = thrown as CertificateProblem;
    expect(problem.location).toBe(location);
    expect(problem.message).toMatch(message);
    // The message goes into a 400 body: it never quotes key material.
    expect(keyFragments(good.keyPem).filter((f) => problem.message.includes(f))).toEqual([]);
    expect(problem.message).not.toContain("PRIVATE KEY-----");
  });
});

describe("private key encryption at rest", () => {
  const key = randomBytes(32);
  const pem = makeCert({ sans: ["a.example.com"] }).keyPem;

  it("round-trips, and the stored form holds neither the PEM nor its base64 body", () => {
    const stored = encryptSecret(pem, key);
    expect(stored).toMatch(/^v1:[A-Za-z0-9_-]{11}:[A-Za-z0-9_-]+:[A-Za-z0-9_-]+:[A-Za-z0-9_-]+$/);
    expect(stored.split(":")[1]).toBe(keyId(key));
    expect(stored).not.toContain("PRIVATE KEY");
    expect(keyFragments(pem).filter((f) => stored.includes(f))).toEqual([]);
    expect(decryptSecret(stored, key)).toBe(pem);
    expect(encryptSecret(pem, key)).not.toBe(stored); // fresh IV every time
  });

  it("tells a different key apart from corruption", () => {
    const stored = encryptSecret(pem, key);
    expect(() => decryptSecret(stored, randomBytes(32))).toThrow(WrongKey);
    const parts = stored.split(":");
    const ct = Buffer.from(parts[4] ?? "", "base64url");
    ct[0] = (ct[0] ?? 0) ^ 1;
    parts[4] = ct.toString("base64url");
    expect(() => decryptSecret(parts.join(":"), key)).toThrow(/unable to authenticate|auth/i);
    expect(() => decryptSecret("v2:x:y:z:w", key)).toThrow(/unknown encrypted secret format/);
  });

  it("parses 32-byte keys as hex, base64 or base64url, and nothing else", () => {
    expect(parseEncryptionKey(key.toString("hex"))).toEqual(key);
    expect(parseEncryptionKey(` ${key.toString("base64")}\n`)).toEqual(key);
    expect(parseEncryptionKey(key.toString("base64url"))).toEqual(key);
    expect(parseEncryptionKey(randomBytes(16).toString("hex"))).toBeUndefined();
    expect(parseEncryptionKey(randomBytes(31).toString("base64"))).toBeUndefined();
    expect(parseEncryptionKey("")).toBeUndefined();
  });
});

describe("expiringSoon", () => {
  const now = new Date("2026-06-01T12:00:00Z");
  const meta = (id: string, days: number) => ({
    id,
    subject: "CN=x",
    issuer: "CN=x",
    sans: [`${id}.example.com`],
    notBefore: new Date(now.getTime() - 30 * DAY),
    notAfter: new Date(now.getTime() + days * DAY),
    fingerprintSha256: id,
    createdAt: now,
    updatedAt: now,
  });

  it("lists certificates expiring within the window, with whole days left", () => {
    const certs = [meta("soon", 10.5), meta("edge", 21), meta("later", 60), meta("gone", -1)];
    expect(expiringSoon(certs, now, 21)).toEqual([
      { id: "soon", sans: ["soon.example.com"], not_after: "2026-06-12T00:00:00.000Z", expires_in_days: 10 },
      { id: "gone", sans: ["gone.example.com"], not_after: "2026-05-31T12:00:00.000Z", expires_in_days: -1 },
    ]);
  });
});
