import { describe, expect, it } from "vitest";
import { hostMatches, matchRoute, priorityFor, ruleFor } from "../../src/render/rules.js";
import { checkAddress, checkDomain, checkId, checkPathPrefix } from "../../src/render/validate.js";

describe("checkDomain", () => {
  it.each(["app.example.com", "*.app.example.com", "xn--bcher-kva.example", "a-b.c-d.io", `${"a".repeat(63)}.com`])(
    "accepts %s",
    (d) => expect(checkDomain(d)).toBeUndefined(),
  );
  it.each([
    "localhost",
    "App.example.com",
    "-a.example.com",
    "a-.example.com",
    "a..example.com",
    "a.example.com.",
    "*.com",
    "a.*.example.com",
    "**.example.com",
    "*a.example.com",
    "10.0.0.1",
    `${"a".repeat(64)}.com`,
    `${"abcdefghi.".repeat(26)}com`,
    "a.com`) || Host(`victim.com",
    "a.com\n",
    "ex ample.com",
  ])("rejects %j", (d) => expect(checkDomain(d)).toBeTypeOf("string"));
});

describe("checkPathPrefix", () => {
  it.each(["/", "/api", "/api/v1", "/a-b_c.d~e", "/%2Fx", "/%25", "/users/@me", "/a:b"])("accepts %s", (p) =>
    expect(checkPathPrefix(p)).toBeUndefined(),
  );
  it.each([
    "",
    "api",
    "/a`b",
    "/a'b",
    '/a"b',
    "/a b",
    "/{{.}}",
    "/a\u0000",
    "/%00",
    "/%0a",
    "/%7f",
    "/%20x", // Traefik compares it decoded (' x'): never matches
    "/%7Euser", // must be written /~user
    "/a/../b",
    "/./a",
    "//a",
    `/${"a".repeat(1024)}`,
    "/é",
  ])("rejects %j", (p) => expect(checkPathPrefix(p)).toBeTypeOf("string"));
});

describe("checkAddress and checkId", () => {
  it("accepts IPs and DNS names, rejects URL pieces", () => {
    for (const ok of ["10.0.0.1", "::1", "fd00::1:2", "web-1.internal", "node_7"]) {
      expect(checkAddress(ok)).toBeUndefined();
    }
    for (const bad of ["10.0.0.1:80", "[::1]", "a/b", "user@host", "a b", "", "http://x"]) {
      expect(checkAddress(bad)).toBeTypeOf("string");
    }
  });
  it("keeps ids one-to-one with their slugs", () => {
    expect(checkId("dep_abc123")).toBeUndefined();
    for (const bad of ["dep-abc", "Dep_a", "dep__a", "_a", "a_", "", "a".repeat(65)]) {
      expect(checkId(bad)).toBeTypeOf("string");
    }
  });
});

describe("rules", () => {
  it("matches wildcards to exactly one label", () => {
    expect(hostMatches("*.app.example.com", "x.app.example.com")).toBe(true);
    expect(hostMatches("*.app.example.com", "app.example.com")).toBe(false);
    expect(hostMatches("*.app.example.com", "a.b.app.example.com")).toBe(false);
    expect(hostMatches("*.app.example.com", "x.app.example.com.evil.io")).toBe(false);
  });

  it("resolves by the same priorities the renderer emits", () => {
    const routes = [
      { id: "wild", domain: "*.example.com", pathPrefix: "/" },
      { id: "wild-api", domain: "*.example.com", pathPrefix: "/api/long/prefix" },
      { id: "exact", domain: "a.example.com", pathPrefix: "/" },
      { id: "exact-api", domain: "a.example.com", pathPrefix: "/api" },
    ];
    expect(matchRoute(routes, "a.example.com", "/api/long/prefix/x")?.id).toBe("exact-api");
    expect(matchRoute(routes, "a.example.com", "/")?.id).toBe("exact");
    expect(matchRoute(routes, "b.example.com", "/api/long/prefix")?.id).toBe("wild-api");
    expect(matchRoute(routes, "b.example.com", "/other")?.id).toBe("wild");
    expect(matchRoute(routes, "example.com", "/")).toBeUndefined();
    expect(priorityFor("a.example.com", "/")).toBeGreaterThan(priorityFor("*.example.com", `/${"x".repeat(1023)}`));
  });

  it("never lets a rule value escape its backticks for validated input", () => {
    expect(ruleFor("a.example.com", "/x")).toBe("Host(`a.example.com`) && PathPrefix(`/x`)");
  });
});
