import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deploymentMiddlewares, deploymentRouting, deployments } from "../../schema/tables.js";
import { rowsOf } from "../../src/db/client.js";
import { Conflict } from "../../src/db/errors.js";
import { applyState, dumpState } from "../../src/export/state-apply.js";
import { parseStateText, serializeState } from "../../src/export/state-format.js";
import { type StateDocument, validateState } from "../../src/export/state-schema.js";
import { genDomain, genPath, prng } from "../fixtures/hostile-inputs.js";
import type { RouteJson } from "../helpers/api-client.js";
import { useApiServer } from "../helpers/api-server.js";
import { makeCert } from "../helpers/certs.js";
import { DRIVERS, makeTestDb, type TestDb } from "../helpers/db.js";

const resolver = (d: string) => (d.startsWith("*.") ? "letsencrypt-dns" : "letsencrypt");
const opts = { prune: false, dryRun: false, defaultResolver: resolver };
const CERT = makeCert({ sans: ["shop.example.com", "www.shop.example.com"] });
const CA = makeCert({ sans: ["api.internal"], cn: "Test CA" });

function docOf(raw: unknown): StateDocument {
  const v = validateState(typeof raw === "string" ? (parseStateText(raw) as { value: unknown }).value : raw, {
    trustedProxies: [],
  });
  if (!v.ok) {
    throw new Error(JSON.stringify(v.errors));
  }
  return v.doc;
}

/** Everything a write would touch: timestamps of every row and the change-feed sequence. */
async function fingerprint(db: TestDb["handle"]["db"]) {
  const stamps = await db.execute(sql`
    select 'd:' || id || '@' || updated_at::text as s from ${deployments}
    union all select 'r:' || domain || path_prefix || '@' || id || updated_at::text from ${deploymentRouting}
    union all select 'm:' || deployment_id || '@' || updated_at::text from ${deploymentMiddlewares}
    order by 1`);
  const seq = await db.execute(sql`select last_value::text as v from routing_change_seq`);
  return { rows: rowsOf<{ s: string }>(stamps).map((r) => r.s), seq: rowsOf<{ v: string }>(seq)[0]?.v };
}

describe.each(DRIVERS)("declarative state on %s", (driver) => {
  const src = useApiServer(driver, {}, { inProcess: true });
  const dst = useApiServer(driver, {}, { inProcess: true });

  beforeAll(async () => {
    const { api } = src;
    await src.seedDeployment("dep_shop", { domain: "shop.example.com", target_port: 3000 });
    await api.post("/api/v1/deployments/dep_shop/domains", { domain: "www.shop.example.com", ssl_enabled: false });
    await src.seedDeployment("dep_api", {
      domain: "api.example.com",
      target_port: 8080,
      protocol: "https",
      load_balancer_algo: "least-conn",
    });
    await api.post("/api/v1/deployments/dep_api/domains", {
      domain: "api.example.com",
      path_prefix: "/v2",
      target_port: 9090,
    });
    await api.post("/api/v1/deployments/dep_api/domains", { domain: "*.apps.example.com", tls_include_apex: true });
    expect(
      (
        await api.put("/api/v1/deployments/dep_api/health-check", {
          path: "/healthz",
          interval_seconds: 10,
          mode: "http",
          tls: { server_name: "api.internal", ca_pem: CA.certPem },
        })
      ).status,
    ).toBe(200);
    expect(
      (
        await api.put("/api/v1/deployments/dep_api/middlewares", {
          basic_auth: { users: [{ username: "alice", password: "correct horse" }], realm: "api" },
          headers: { request: { "X-B": "1", "X-A": "2" } },
          rate_limit: { average: 50 },
          compress: {},
        })
      ).status,
    ).toBe(200);
    await src.seedDeployment("dep_idle");
    await src.seedLocation("dep_api", "loc_1", { address: "10.0.0.7" }); // runtime state: not in the document
    expect((await api.post("/api/v1/certificates", { cert_pem: CERT.chainPem, key_pem: CERT.keyPem })).status).toBe(
      201,
    );
  });

  it("dumps the same bytes twice, with no replica, no route id and no key material", async () => {
    const a = await src.api.get("/api/v1/state?format=yaml");
    const b = await src.api.get("/api/v1/state?format=yaml");
    expect(a.status).toBe(200);
    expect(a.text).toBe(b.text);
    expect(a.text).not.toMatch(/loc_1|10\.0\.0\.7|\brt_[a-z0-9]{12}\b|PRIVATE KEY|correct horse/);
    expect(a.text).toContain(CERT.fingerprintSha256);
    expect(a.text).toMatch(/users:\n\s+- alice:\$2y\$10\$/);
  });

  it("round-trips: dump → apply into an empty database → dump gives identical bytes (YAML and JSON)", async () => {
    const yaml = (await src.api.get("/api/v1/state?format=yaml")).text;
    // The file references certificates; they are uploaded on their own (key material never goes in it).
    expect((await dst.api.post("/api/v1/certificates", { cert_pem: CERT.chainPem, key_pem: CERT.keyPem })).status).toBe(
      201,
    );
    const applied = await dst.api.send("POST", "/api/v1/state/apply", {
      raw: yaml,
      headers: { "content-type": "application/yaml" },
    });
    expect(applied.status).toBe(200);
    expect(applied.body).toMatchObject({ applied: true, summary: { created: 10, updated: 0, deleted: 0 } });
    expect((await dst.api.get("/api/v1/state?format=yaml")).text).toBe(yaml);
    expect((await dst.api.get("/api/v1/state")).text).toBe((await src.api.get("/api/v1/state")).text);
    await dst.api.traefikConfig(); // what was applied renders to a config Traefik accepts
    // The direct path (the CLI on the database) gives the same bytes too.
    const third = await makeTestDb(driver);
    try {
      const doc = docOf(yaml);
      await expect(applyState(third.handle.db, doc, opts)).rejects.toThrow(/not uploaded/);
      const noCerts = { ...doc, certificates: [] };
      await applyState(third.handle.db, noCerts, opts);
      const srcDump = await dumpState(src.db);
      expect(serializeState(await dumpState(third.handle.db), "json")).toBe(
        serializeState({ ...srcDump, certificates: [] }, "json"),
      );
    } finally {
      await third.close();
    }
  });

  it("applying the same file twice reports no changes and writes nothing", async () => {
    const yaml = (await src.api.get("/api/v1/state?format=yaml")).text;
    const before = await fingerprint(dst.db);
    const again = await dst.api.send("POST", "/api/v1/state/apply", {
      raw: yaml,
      headers: { "content-type": "application/yaml" },
    });
    expect(again.body).toMatchObject({ applied: false, summary_line: "no changes", changes: [] });
    expect(await fingerprint(dst.db)).toEqual(before);
  });

  it("moves domains between listed deployments and swaps primaries in one apply", async () => {
    const doc = await dumpState(dst.db);
    const shop = doc.deployments.find((d) => d.id === "dep_shop");
    const api = doc.deployments.find((d) => d.id === "dep_api");
    if (!shop?.routing || !api?.routing) {
      throw new Error("seed missing");
    }
    // Swap the two primaries, and rename a domain (delete + create in one transaction).
    const [shopPrimary, ...shopRest] = shop.routing.domains;
    const [apiPrimary, ...apiRest] = api.routing.domains;
    if (!shopPrimary || !apiPrimary) {
      throw new Error("seed missing");
    }
    shop.routing.domains = [apiPrimary, ...shopRest];
    api.routing.domains = [
      shopPrimary,
      ...apiRest.map((r) => (r.path_prefix === "/v2" ? { ...r, path_prefix: "/v3" } : r)),
    ];
    const out = await applyState(dst.db, docOf(doc), opts);
    expect(out.summary_line).toBe("1 created, 2 updated, 1 deleted");
    const routes = (await dst.api.get<{ domains: RouteJson[] }>("/api/v1/deployments/dep_shop/routing")).body.domains;
    expect(routes.filter((r) => r.is_primary).map((r) => r.domain)).toEqual(["api.example.com"]);
    expect((await applyState(dst.db, docOf(doc), opts)).summary_line).toBe("no changes");
  });

  it("fails the whole apply on a conflict with a deployment the file does not list, writing nothing", async () => {
    const before = await fingerprint(dst.db);
    const doc = docOf({
      version: 1,
      deployments: [
        { id: "dep_new", name: "New", routing: { target_port: 80, domains: [{ domain: "new.example.com" }] } },
        { id: "dep_thief", name: "Thief", routing: { target_port: 80, domains: [{ domain: "api.example.com" }] } },
      ],
    });
    const err = await applyState(dst.db, doc, opts).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Conflict);
    expect((err as Conflict).details).toMatchObject({ owner_deployment_id: "dep_shop", domain: "api.example.com" });
    expect(await fingerprint(dst.db)).toEqual(before);
  });

  it("keeps what the file does not list unless --prune, which deletes deployments and certificates", async () => {
    const doc = docOf({
      version: 1,
      deployments: [{ id: "dep_idle", name: "dep_idle" }],
    });
    const kept = await applyState(dst.db, doc, opts);
    expect(kept).toMatchObject({ applied: false, summary_line: "no changes" });
    expect(kept.kept.map((k) => `${k.kind} ${k.key}`)).toEqual([
      "deployment dep_api",
      "deployment dep_shop",
      `certificate ${CERT.fingerprintSha256}`,
    ]);
    const dry = await applyState(dst.db, doc, { ...opts, prune: true, dryRun: true });
    expect(dry).toMatchObject({ applied: false, dry_run: true, summary: { deleted: 8 } });
    expect((await dumpState(dst.db)).deployments).toHaveLength(3);
    const pruned = await applyState(dst.db, doc, { ...opts, prune: true });
    expect(pruned).toMatchObject({ applied: true, summary: { created: 0, updated: 0, deleted: 8 } });
    expect(await dumpState(dst.db)).toEqual({
      version: 1,
      deployments: [{ id: "dep_idle", name: "dep_idle" }],
      certificates: [],
    });
    await dst.api.traefikDocument();
  });

  describe("all or nothing", () => {
    let tdb: TestDb;
    beforeAll(async () => {
      tdb = await makeTestDb(driver);
      // A write that fails after others in the same transaction have run: the last route insert.
      await tdb.handle.db.execute(
        sql.raw(`create function boom() returns trigger language plpgsql as $$
          begin if new.domain = 'boom.example.com' then raise exception 'boom'; end if; return new; end $$`),
      );
      await tdb.handle.db.execute(
        sql.raw("create trigger boom before insert on deployment_routing for each row execute function boom()"),
      );
    });
    afterAll(async () => {
      await tdb?.close();
    });

    it("writes nothing when one write fails midway", async () => {
      const doc = docOf({
        version: 1,
        deployments: [
          { id: "dep_a", name: "A", routing: { target_port: 80, domains: [{ domain: "a.example.com" }] } },
          { id: "dep_b", name: "B", routing: { target_port: 80, domains: [{ domain: "boom.example.com" }] } },
        ],
      });
      await expect(applyState(tdb.handle.db, doc, opts)).rejects.toThrow();
      expect(await dumpState(tdb.handle.db)).toEqual({ version: 1, deployments: [], certificates: [] });
    });
  });

  it("gives hostile domains and paths in a state file the same verdict as the API", { timeout: 120_000 }, async () => {
    await src.seedDeployment("dep_fuzz", { domain: "fuzz.example.com", target_port: 8080 });
    const disagreements: string[] = [];
    const at = "deployments[0].routing.domains[0]";
    const verdicts = new Set<string>();
    const compare = async (field: "domain" | "path_prefix", input: string, body: Record<string, unknown>) => {
      const reply = await src.api.post<{ route?: RouteJson }>("/api/v1/deployments/dep_fuzz/domains", body);
      const route = { domain: "p.fuzz.test", ...body };
      const v = validateState(
        { version: 1, deployments: [{ id: "dep_x", name: "x", routing: { target_port: 1, domains: [route] } }] },
        { trustedProxies: [] },
      );
      verdicts.add(`${reply.status}/${v.ok}`);
      if (reply.status === 400) {
        if (v.ok || v.errors.some((e) => e.location !== `${at}.${field}`)) {
          disagreements.push(`${JSON.stringify(input)}: API 400, state ${JSON.stringify(v)}`);
        }
      } else if (!v.ok) {
        disagreements.push(`${JSON.stringify(input)}: API ${reply.status}, state refused ${JSON.stringify(v.errors)}`);
      } else if (
        reply.status < 300 &&
        reply.body.route?.[field] !== v.doc.deployments[0]?.routing?.domains[0]?.[field]
      ) {
        disagreements.push(`${JSON.stringify(input)}: stored differently`);
      }
    };
    const rndD = prng(0x5eed_2026);
    for (let i = 0; i < 250; i++) {
      const domain = genDomain(rndD);
      await compare("domain", domain, { domain });
    }
    const rndP = prng(0x5eed_2027);
    for (let i = 0; i < 250; i++) {
      const path = genPath(rndP);
      await compare("path_prefix", path, { domain: "p.fuzz.test", path_prefix: path });
    }
    expect(disagreements).toEqual([]);
    // Both verdicts were exercised, or the comparison says nothing.
    expect([...verdicts]).toEqual(expect.arrayContaining(["400/false", "201/true"]));
  });
});
