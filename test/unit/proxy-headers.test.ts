import { describe, expect, it } from "vitest";
import { fallbackProxyUrl } from "../../src/provider/settings.js";
import { proxyBindHost } from "../../src/proxy/config.js";
import { isHopByHop, isRefusedPath } from "../../src/proxy/headers.js";
import { appendForwarding, scanRequest } from "../../src/proxy/request.js";
import { checkCidr, isTrustedPeer, secretMatcher, trustedPeers } from "../../src/proxy/trust.js";
import { testConfig } from "../helpers/app.js";

describe("isRefusedPath", () => {
  it.each([
    "/..",
    "/../etc/passwd",
    "/a/../b",
    "/a/..",
    "/a/%2e%2e/b",
    "/a/%2E./b",
    "/a/.%2e",
    "/a\\..\\b",
    // issue 10 #9: every encoding an upstream might decode to a parent segment
    "/a/..%2fetc/passwd",
    "/a/..%2Fetc",
    "/a/%2e%2e%2fetc",
    "/a/..;/etc",
    "/a/..;jsessionid=1/etc",
    "/a/;../etc",
    "/a/..%5cetc",
    "/a/..%5Cetc",
    "/a/%252e%252e/etc",
    "/a/%25252e%25252e/etc",
    "/a/%c0%ae%c0%ae/etc",
    "/a/%c0%af..",
    "/a/%e0%80%ae%e0%80%ae/etc",
    "/a/%ef%bc%8e%ef%bc%8e/etc", // full-width dots (NFKC folds them)
    "/a/%2e%2e%00.png",
    "/a/x%00",
    "/a/.../b",
    "/a/.. /b",
    "/a#/../",
    "/%2525252525252e", // still encoded after four rounds
    "*",
    "http://evil.example/",
    "",
  ])("refuses %j", (url) => {
    expect(isRefusedPath(url)).toBe(true);
  });

  it.each([
    "/",
    "/a/b.c",
    "/a..b/c",
    "/a/.b",
    "/file..txt",
    "/a?x=../..",
    "/a?x=%2e%2e%2f",
    "/%41",
    "/caf%C3%A9",
    "/100%25",
    "/a;b=c/d",
    "/a/%2e/b", // a single dot stays in place
  ])("accepts %j", (url) => {
    expect(isRefusedPath(url)).toBe(false);
  });
});

describe("scanRequest", () => {
  it("drops hop-by-hop headers, ours, and those the Connection header lists; keeps Host", () => {
    const scan = scanRequest([
      "Host",
      "app.example.com",
      "Connection",
      "keep-alive, X-Secret-Hop",
      "Keep-Alive",
      "timeout=5",
      "TE",
      "trailers",
      "Trailer",
      "Expires",
      "Transfer-Encoding",
      "chunked",
      "Upgrade",
      "h2c",
      "Proxy-Authorization",
      "Basic x",
      "Proxy-Connection",
      "keep-alive",
      "X-Secret-Hop",
      "1",
      "X-Obiente-Deployment",
      "dep_a",
      "X-Obiente-Proxy-Secret",
      "s3cret",
      "Accept",
      "*/*",
      "X-Forwarded-For",
      "203.0.113.9",
      "X-Forwarded-Proto",
      "https",
    ]);
    expect(scan.headers).toEqual(["Host", "app.example.com", "Accept", "*/*"]);
    expect(scan).toMatchObject({
      host: "app.example.com",
      deployment: "dep_a",
      secret: "s3cret",
      forwardedFor: "203.0.113.9",
      forwardedProto: "https",
      hasBody: true,
      upgrade: "h2c",
      routingRepeated: false,
      hostRepeated: false,
    });
  });

  it("never lets Connection remove Host or the body framing (issue 10 #9)", () => {
    const scan = scanRequest([
      "Host",
      "app.example.com",
      "Content-Length",
      "3",
      "Connection",
      "host, content-length, X-Hop",
      "X-Hop",
      "1",
    ]);
    expect(scan.headers).toEqual(["Host", "app.example.com", "Content-Length", "3"]);
    expect(scan.host).toBe("app.example.com");
  });

  it("drops a short header name listed in Connection", () => {
    expect(scanRequest(["Connection", "X-Hop", "X-Hop", "1", "Accept", "*/*"]).headers).toEqual(["Accept", "*/*"]);
  });

  it("flags repeated Host and routing headers", () => {
    expect(scanRequest(["Host", "a", "host", "b"]).hostRepeated).toBe(true);
    expect(scanRequest(["x-obiente-deployment", "a", "X-Obiente-Deployment", "b"]).routingRepeated).toBe(true);
  });

  it("drops underscore spellings of the headers the proxy acts on (CGI servers read them as the real ones)", () => {
    const scan = scanRequest([
      "X_Forwarded_For",
      "1.2.3.4",
      "x_real_ip",
      "1.2.3.4",
      "X_Obiente_Deployment",
      "dep_other",
      "X_Obiente_Proxy_Secret",
      "forged",
      "Content_Length",
      "5",
      "X_App_Trace",
      "kept",
    ]);
    expect(scan.headers).toEqual(["X_App_Trace", "kept"]);
    expect(scan.forwardedOther).toEqual([]);
    expect([scan.forwardedFor, scan.deployment, scan.secret, scan.hasBody]).toEqual([
      undefined,
      undefined,
      undefined,
      false,
    ]);
  });

  it("sees a body only for a non-zero Content-Length or a Transfer-Encoding", () => {
    expect(scanRequest(["Content-Length", "0"]).hasBody).toBe(false);
    expect(scanRequest(["Content-Length", "12"]).hasBody).toBe(true);
    expect(scanRequest([]).hasBody).toBe(false);
  });

  it("keeps the client's X-Forwarded-* and Forwarded only from a trusted peer", () => {
    const raw = [
      "Host",
      "app.example.com",
      "X-Forwarded-For",
      "198.51.100.1",
      "X-Forwarded-Proto",
      "https",
      "X-Forwarded-Host",
      "edge.example.com",
      "X-Forwarded-Port",
      "443",
      "Forwarded",
      "for=198.51.100.1",
      "X-Real-Ip",
      "198.51.100.1",
    ];
    const trusted = scanRequest(raw);
    appendForwarding(trusted, "10.0.0.2", true);
    expect(trusted.headers).toEqual([
      "Host",
      "app.example.com",
      "x-forwarded-for",
      "198.51.100.1, 10.0.0.2",
      "x-forwarded-proto",
      "https",
      "x-forwarded-host",
      "edge.example.com",
      "X-Forwarded-Port",
      "443",
      "Forwarded",
      "for=198.51.100.1",
      "X-Real-Ip",
      "198.51.100.1",
    ]);
    const direct = scanRequest(raw);
    appendForwarding(direct, "127.0.0.2", false);
    expect(direct.headers).toEqual([
      "Host",
      "app.example.com",
      "x-forwarded-for",
      "127.0.0.2",
      "x-forwarded-proto",
      "http",
      "x-forwarded-host",
      "app.example.com",
    ]);
  });
});

describe("response headers", () => {
  it("treats Connection, Keep-Alive, Proxy-*, TE, Trailer, Transfer-Encoding, Upgrade as hop-by-hop", () => {
    for (const h of [
      "Connection",
      "keep-alive",
      "Proxy-Authenticate",
      "TE",
      "Trailer",
      "Transfer-Encoding",
      "UPGRADE",
    ]) {
      expect(isHopByHop(h)).toBe(true);
    }
    for (const h of ["Content-Length", "Content-Type", "Set-Cookie", "X-Upstream", "Proxied-By"]) {
      expect(isHopByHop(h)).toBe(false);
    }
  });
});

describe("trust", () => {
  it("compares the secret in constant time on digests", () => {
    const ok = secretMatcher("a-very-long-shared-secret");
    expect(ok("a-very-long-shared-secret")).toBe(true);
    expect(ok("a-very-long-shared-secreT")).toBe(false);
    expect(ok("")).toBe(false);
  });

  it("checks peers against CIDR ranges, IPv4-mapped addresses included", () => {
    const list = trustedPeers(["10.0.0.0/8", "fd00::/8", "192.0.2.7"]);
    expect(isTrustedPeer(list, "10.1.2.3")).toBe(true);
    expect(isTrustedPeer(list, "::ffff:10.1.2.3")).toBe(true);
    expect(isTrustedPeer(list, "fd12::1")).toBe(true);
    expect(isTrustedPeer(list, "192.0.2.7")).toBe(true);
    expect(isTrustedPeer(list, "192.0.2.8")).toBe(false);
    expect(isTrustedPeer(list, "127.0.0.1")).toBe(false);
    expect(isTrustedPeer(list, undefined)).toBe(false);
  });

  it("rejects invalid entries", () => {
    expect(checkCidr("10.0.0.0/33")).toMatch(/prefix length/);
    expect(checkCidr("nope")).toMatch(/not an IP/);
    expect(checkCidr("::1/128")).toBeUndefined();
    expect(() => trustedPeers(["10.0.0.0/x"])).toThrow(/invalid trusted CIDR/);
  });
});

describe("bind address", () => {
  it("listens on loopback even when the API binds 0.0.0.0, unless PROXY_HOST says otherwise (issue 10 #1)", () => {
    const open = testConfig({ HOST: "0.0.0.0", PROXY_PORT: "8081" });
    expect(proxyBindHost(open)).toBe("127.0.0.1");
    expect(fallbackProxyUrl(open)).toBe("http://127.0.0.1:8081");
    expect(proxyBindHost(testConfig({ HOST: "0.0.0.0", PROXY_HOST: "172.30.81.3" }))).toBe("172.30.81.3");
  });
});
