import { describe, expect, it } from "vitest";
import { deployments } from "../../schema/tables.js";
import { expectInvalid, type Reply } from "../helpers/api-client.js";
import { useApiServer } from "../helpers/api-server.js";
import { DRIVERS } from "../helpers/db.js";

interface PageJson {
  items: { id: string; name: string }[];
  next_cursor: string | null;
}

describe.each(DRIVERS)("GET /api/v1/deployments?q= on %s", (driver) => {
  const srv = useApiServer(driver);
  const { api } = srv;

  const seed = async (rows: [string, string][]) => {
    for (const [id, name] of rows) {
      expect((await api.post("/api/v1/deployments", { id, name })).status).toBe(201);
    }
  };
  const idsOf = async (query: string, token?: string) => {
    const r = await api.get<PageJson>(`/api/v1/deployments?${query}`, token === undefined ? {} : { token });
    expect(r.status).toBe(200);
    return r.body;
  };
  /** Every page of a search, following next_cursor. */
  const allPages = async (query: string, limit: number) => {
    const seen: string[] = [];
    let cursor: string | null = null;
    for (let n = 0; n < 100; n++) {
      const after = cursor === null ? "" : `&after=${encodeURIComponent(cursor)}`;
      const r: Reply<PageJson> = await api.get<PageJson>(`/api/v1/deployments?${query}&limit=${limit}${after}`);
      expect(r.status).toBe(200);
      seen.push(...r.body.items.map((d) => d.id));
      cursor = r.body.next_cursor;
      if (cursor === null) {
        return seen;
      }
    }
    throw new Error("paging did not end");
  };

  it("matches id or name, case-insensitively, and pages the matches with after/next_cursor", async () => {
    await seed([
      ["srch_a", "Shop Frontend"],
      ["srch_b", "blog"],
      ["srch_shop_api", "payments"],
      ["srch_c", "WORKSHOP"],
      ["srch_d", "Online SHOPPING"],
      ["srch_e", "docs"],
    ]);
    expect((await idsOf("q=shop")).items.map((d) => d.id)).toEqual(["srch_a", "srch_c", "srch_d", "srch_shop_api"]);
    expect((await idsOf("q=SHOP")).items.map((d) => d.id)).toEqual(["srch_a", "srch_c", "srch_d", "srch_shop_api"]);
    expect((await idsOf("q=srch_b")).items).toEqual([expect.objectContaining({ id: "srch_b", name: "blog" })]);
    expect((await idsOf("q=nothing-like-this")).items).toEqual([]);
    // Paging a search: limit 1 walks the same four, in id order, each once; after= skips what was seen.
    expect(await allPages("q=shop", 1)).toEqual(["srch_a", "srch_c", "srch_d", "srch_shop_api"]);
    expect(await allPages("q=shop", 3)).toEqual(["srch_a", "srch_c", "srch_d", "srch_shop_api"]);
    expect((await idsOf("q=shop&after=srch_c")).items.map((d) => d.id)).toEqual(["srch_d", "srch_shop_api"]);
    const first = await idsOf("q=shop&limit=2");
    expect(first).toEqual({
      items: [expect.objectContaining({ id: "srch_a" }), expect.anything()],
      next_cursor: "srch_c",
    });
  });

  it("takes q literally: %, _ and \\ are not wildcards", async () => {
    await seed([
      ["lit_pct", "100% uptime"],
      ["lit_plain", "100 uptime"],
      ["lit_under", "a_b"],
      ["lit_axb", "axb"],
      ["lit_slash", "back\\slash"],
      ["lit_noslash", "backslash"],
    ]);
    const q = (s: string) => `q=${encodeURIComponent(s)}`;
    expect((await idsOf(q("100%"))).items.map((d) => d.id)).toEqual(["lit_pct"]);
    expect((await idsOf(q("%"))).items.map((d) => d.id)).toEqual(["lit_pct"]);
    expect((await idsOf(q("a_b"))).items.map((d) => d.id)).toEqual(["lit_under"]);
    expect((await idsOf(q("k\\s"))).items.map((d) => d.id)).toEqual(["lit_slash"]);
    expect((await idsOf(q("'; select 1; --"))).items).toEqual([]);
  });

  it("combines with a token's deployment restriction", async () => {
    await seed([
      ["tenant_x_one", "findme one"],
      ["tenant_x_two", "other"],
      ["tenant_y_one", "findme too"],
    ]);
    const t = await api.post<{ token: string }>("/api/v1/tokens", {
      name: "tenant-x",
      scopes: ["read"],
      deployment_prefix: "tenant_x_",
    });
    expect(t.status).toBe(201);
    expect((await idsOf("q=findme", t.body.token)).items.map((d) => d.id)).toEqual(["tenant_x_one"]);
    expect((await idsOf("q=findme")).items.map((d) => d.id)).toEqual(["tenant_x_one", "tenant_y_one"]);
    expect((await idsOf("q=tenant_y", t.body.token)).items).toEqual([]);
  });

  it("stays fast over 10 000 deployments: a search that matches nothing, one match, a page of many", async () => {
    const rows = Array.from({ length: 10_000 }, (_, i) => ({
      id: `bulk_${String(i).padStart(5, "0")}`,
      name: i === 7_777 ? "The Needle" : `worker ${i}`,
    }));
    for (let i = 0; i < rows.length; i += 2_000) {
      await srv.db.insert(deployments).values(rows.slice(i, i + 2_000));
    }
    const timed = async (query: string) => {
      const start = performance.now();
      const body = await idsOf(query);
      return { body, ms: performance.now() - start };
    };
    await timed("q=warm-up");
    const none = await timed("q=no-such-deployment");
    const one = await timed("q=needle");
    const many = await timed("q=worker&after=bulk_05000&limit=50");
    expect(none.body.items).toEqual([]);
    expect(one.body.items.map((d) => d.id)).toEqual(["bulk_07777"]);
    expect(many.body.items).toHaveLength(50);
    expect(many.body.items[0]?.id).toBe("bulk_05001");
    // A full scan of 10k rows is milliseconds; the bound only catches a pathological plan or a per-row round trip.
    for (const t of [none, one, many]) {
      expect(t.ms).toBeLessThan(1_500);
    }
  });

  it("bounds q: 1–200 characters, no control characters", async () => {
    expectInvalid(await api.get("/api/v1/deployments?q="), "query.q");
    expectInvalid(await api.get(`/api/v1/deployments?q=${"a".repeat(201)}`), "query.q");
    expectInvalid(await api.get("/api/v1/deployments?q=a%00b"), "query.q");
    expectInvalid(await api.get("/api/v1/deployments?q=a%0Ab"), "query.q");
    expect((await api.get(`/api/v1/deployments?q=${"a".repeat(200)}`)).status).toBe(200);
  });
});
