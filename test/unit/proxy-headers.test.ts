import { describe, expect, it } from "vitest";
import { isHopByHop, isRefusedPath } from "../../src/proxy/headers.js";
import { appendForwarding, scanRequest } from "../../src/proxy/request.js";
import { checkCidr, isTrustedPeer, secretMatcher, trustedPeers } from "../../src/proxy/trust.js";

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
    "*",
    "http://evil.example/",
    "",
  ])("refuses %j", (url) => {
    expect(isRefusedPath(url)).toBe(true);
  });

  it.each(["/", "/a/b.c", "/a..b/c", "/...", "/a/.b", "/file..txt", "/a?x=../..", "/a#/../", "/%41"])(
    "accepts %j",
    (url) => {
      expect(isRefusedPath(url)).toBe(false);
    },
  );
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

  it("drops a short header name listed in Connection", () => {
    expect(scanRequest(["Connection", "X-Hop", "X-Hop", "1", "Accept", "*/*"]).headers).toEqual(["Accept", "*/*"]);
  });

  it("flags repeated Host and routing headers", () => {
    expect(scanRequest(["Host", "a", "host", "b"]).hostRepeated).toBe(true);
    expect(scanRequest(["x-obiente-deployment", "a", "X-Obiente-Deployment", "b"]).routingRepeated).toBe(true);
  });

  it("sees a body only for a non-zero Content-Length or a Transfer-Encoding", () => {
    expect(scanRequest(["Content-Length", "0"]).hasBody).toBe(false);
    expect(scanRequest(["Content-Length", "12"]).hasBody).toBe(true);
    expect(scanRequest([]).hasBody).toBe(false);
  });

  it("appends X-Forwarded-For and keeps the edge's -Proto/-Host only for trusted requests", () => {
    const raw = ["Host", "app.example.com", "X-Forwarded-For", "198.51.100.1", "X-Forwarded-Proto", "https"];
    const trusted = scanRequest([...raw, "X-Forwarded-Host", "edge.example.com"]);
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
    ]);
    const direct = scanRequest([...raw, "X-Forwarded-Host", "spoofed.example.com"]);
    appendForwarding(direct, "127.0.0.1", false);
    expect(direct.headers.slice(2)).toEqual([
      "x-forwarded-for",
      "198.51.100.1, 127.0.0.1",
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
