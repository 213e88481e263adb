import { describe, expect, it } from "vitest";
import { validateState } from "../../src/export/state-schema.js";
import { defaultSslEnabled, isReservedName } from "../../src/render/reserved.js";

describe("routes on reserved names default to plain HTTP", () => {
  it.each([
    "localhost",
    "app.localhost",
    "shop.test",
    "db.internal",
    "printer.local",
    "*.apps.localhost",
    "App.LocalHost.",
    "xn--bcher-kva.test",
  ])("%s is reserved: ssl_enabled defaults to false", (domain) => {
    expect(isReservedName(domain)).toBe(true);
    expect(defaultSslEnabled(domain)).toBe(false);
  });

  it.each([
    "example.com",
    "localhost.example.com", // only the last label counts
    "test.example.org",
    "shop.testing",
    "internal.dev",
    "*.example.com",
    "locals",
  ])("%s is public: ssl_enabled defaults to true", (domain) => {
    expect(isReservedName(domain)).toBe(false);
    expect(defaultSslEnabled(domain)).toBe(true);
  });

  it("a state file that does not say gets the domain's default; what it says is kept", () => {
    const route = (domain: string, extra: object = {}) => ({ domain, ...extra });
    const v = validateState(
      {
        version: 1,
        deployments: [
          {
            id: "dep_web",
            name: "web",
            routing: {
              target_port: 3000,
              domains: [
                route("web.example.com"),
                route("web.localhost"),
                route("web.test", { ssl_enabled: true }),
                route("web.example.org", { ssl_enabled: false }),
              ],
            },
          },
        ],
      },
      { trustedProxies: [] },
    );
    if (!v.ok) {
      throw new Error(JSON.stringify(v.errors));
    }
    const got = v.doc.deployments[0]?.routing?.domains.map((d) => [d.domain, d.ssl_enabled]);
    expect(got).toEqual([
      ["web.example.com", true],
      ["web.localhost", false],
      ["web.test", true],
      ["web.example.org", false],
    ]);
  });
});
