import { eq } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import { deploymentRouting } from "../../schema/tables.js";
import { expectInvalid, type LocationJson, type RouteJson } from "../helpers/api-client.js";
import { useApiServer } from "../helpers/api-server.js";
import { DRIVERS } from "../helpers/db.js";

// What the API stores is the normalized value, and only values that can sit inside a Traefik rule get in.
// In-process (app.request): nothing here depends on the socket.

interface AddedJson {
  route: RouteJson;
}

describe.each(DRIVERS)("request validation and normalization on %s", (driver) => {
  const srv = useApiServer(driver, {}, { inProcess: true });
  const { api } = srv;

  beforeAll(async () => {
    await srv.seedDeployment("dep_val", { domain: "val.example.com", target_port: 80 });
  });

  const add = (body: Record<string, unknown>) => api.post<AddedJson>("/api/v1/deployments/dep_val/domains", body);
  const stored = async (id: string) =>
    (await srv.db.select().from(deploymentRouting).where(eq(deploymentRouting.id, id)))[0];

  it.each([
    ["Shop.Example.COM.", "shop.example.com"],
    ["  spaced.example.com  ", "spaced.example.com"],
    ["bücher.de", "xn--bcher-kva.de"],
    ["BÜCHER.example.de", "xn--bcher-kva.example.de"],
    ["*.app.example.com", "*.app.example.com"],
    ["*.Bücher.example.com", "*.xn--bcher-kva.example.com"],
    ["xn--bcher-kva.com", "xn--bcher-kva.com"],
    ["a-b.c-d.example", "a-b.c-d.example"],
    ["１２３.example.com", "123.example.com"], // fullwidth digits map to ASCII under UTS #46
    [`${"a".repeat(63)}.example.com`, `${"a".repeat(63)}.example.com`],
  ])("stores domain %j as %j", async (input, expected) => {
    const r = await add({ domain: input });
    expect(r.status).toBe(201);
    expect(r.body.route.domain).toBe(expected);
    expect((await stored(r.body.route.id))?.domain).toBe(expected);
  });

  it.each([
    ["a.*.example.com"],
    ["*.com"],
    ["*"],
    ["*.*.example.com"],
    ["**.example.com"],
    ["x*.example.com"],
    ["localhost"],
    ["-lead.example.com"],
    ["trail-.example.com"],
    ["a..b.example.com"],
    [".example.com"],
    ["under_score.example.com"],
    ["space d.example.com"],
    ["10.0.0.1"],
    ["example.123"],
    ["[::1]"],
    [`${"a".repeat(64)}.example.com`],
    [`${Array.from({ length: 127 }, () => "a").join(".")}.com`], // 257 chars
    ["example.com/path"],
    ["user@example.com"],
    ["example.com:8080"],
    ["ex`ample.com"],
    ["example.com`) || Host(`evil.com"],
    ["exa\u0000mple.com"],
    ["exa\u200dmple.com"],
    [""],
  ])("rejects domain %j with 400 body.domain", async (input) => {
    expectInvalid(await add({ domain: input }), "body.domain");
  });

  it("accepts a domain of exactly 253 characters and rejects 254", async () => {
    const labels = (last: number) => ["a", "b", "c"].map((c) => c.repeat(63)).concat("d".repeat(last));
    const ok = `${labels(49).join(".")}.example.com`;
    expect(ok.length).toBe(253);
    expect((await add({ domain: ok })).status).toBe(201);
    const tooLong = `${labels(50).join(".")}.example.com`;
    expect(tooLong.length).toBe(254);
    expectInvalid(await add({ domain: tooLong }), "body.domain");
  });

  it.each([
    ["/api/", "/api"],
    ["/api///", "/api"],
    ["/", "/"],
    ["/v1/users", "/v1/users"],
    ["/%7Euser", "/~user"], // Traefik compares unreserved escapes decoded (pkg/muxer/http/mux.go)
    ["/a%2fb", "/a%2Fb"], // and reserved ones only in upper case
    ["/a-b_c.d~e!$&()*+,;=:@", "/a-b_c.d~e!$&()*+,;=:@"],
  ])("stores path_prefix %j as %j", async (input, expected) => {
    const r = await add({ domain: "paths.example.com", path_prefix: input });
    expect([200, 201]).toContain(r.status);
    expect(r.body.route.path_prefix).toBe(expected);
    expect((await stored(r.body.route.id))?.pathPrefix).toBe(expected);
  });

  it("accepts a path prefix of exactly 1024 bytes and rejects 1025", async () => {
    const ok = `/${"p".repeat(1023)}`;
    expect((await add({ domain: "long.example.com", path_prefix: ok })).status).toBe(201);
    expectInvalid(await add({ domain: "long.example.com", path_prefix: `${ok}p` }), "body.path_prefix");
  });

  it.each([
    ["api"],
    [""],
    ["/a b"],
    ["/a\tb"],
    ["/a`b"],
    ['/a"b'],
    ["/a'b"],
    ["/{{.Env.SECRET}}"],
    ["/a\u0000"],
    ["/a\r\nb"],
    ["/%00"],
    ["/%0d%0a"],
    ["/%"],
    ["/%zz"],
    ["/../etc"],
    ["/./x"],
    ["//double"],
    ["/a\\b"],
    ["/ä"],
    ["/a?b=1"],
    ["/a#frag"],
    ["/a`) || Host(`evil.com"],
    ["/<script>"],
  ])("rejects path_prefix %j with 400 body.path_prefix", async (input) => {
    expectInvalid(await add({ domain: "paths.example.com", path_prefix: input }), "body.path_prefix");
    expectInvalid(await api.put("/api/v1/deployments/dep_val/routing", { path_prefix: input }), "body.path_prefix");
  });

  it.each([[0], [65536], [1.5], [-1], ["80"], [null], [1e100]])(
    "rejects port %j for target_port and replica port",
    async (port) => {
      expectInvalid(await api.put("/api/v1/deployments/dep_val/routing", { target_port: port }), "body.target_port");
      expectInvalid(await add({ domain: "ports.example.com", target_port: port }), "body.target_port");
      if (port !== null) {
        expectInvalid(
          await api.put("/api/v1/deployments/dep_val/locations/ports_1", { address: "10.0.0.1", port }),
          "body.port",
        );
      }
    },
  );

  it("accepts ports 1 and 65535", async () => {
    for (const port of [1, 65535]) {
      const r = await api.put<{ target_port: number }>("/api/v1/deployments/dep_val/routing", {
        target_port: port,
      });
      expect(r.body.target_port).toBe(port);
      const loc = await api.put<LocationJson>("/api/v1/deployments/dep_val/locations/ports_1", {
        address: "10.0.0.1",
        port,
      });
      expect(loc.body.port).toBe(port);
    }
  });

  it.each([["10.0.0.1"], ["fd00::1"], ["::1"], ["web-1.internal"], ["svc"], ["my_svc.local"]])(
    "accepts replica address %j",
    async (address) => {
      const r = await api.put<LocationJson>("/api/v1/deployments/dep_val/locations/addr_ok", { address });
      expect([200, 201]).toContain(r.status);
      expect(r.body.address).toBe(address);
    },
  );

  it.each([
    ["10.0.0.1:80"],
    ["[fd00::1]"],
    ["[fd00::1]:80"],
    ["http://10.0.0.1"],
    ["10.0.0.1/24"],
    ["web 1"],
    ["-web"],
    ["web-"],
    ["a..b"],
    [""],
    ["a`b"],
    [`${"a".repeat(64)}.internal`],
  ])("rejects replica address %j", async (address) => {
    expectInvalid(await api.put("/api/v1/deployments/dep_val/locations/addr_bad", { address }), "body.address");
  });
});
