import { eq } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import { deploymentRouting } from "../../schema/tables.js";
import { ruleFor } from "../../src/render/rules.js";
import { expectProblem, type Reply, type RouteJson } from "../helpers/api-client.js";
import { useApiServer } from "../helpers/api-server.js";
import { DRIVERS } from "../helpers/db.js";

const RACERS = 20;

// Many deployments racing for one (domain, path) over real sockets: the unique index decides, the API names the
// winner to every loser, and the config serves the winner only.

describe.each(DRIVERS)("racing for one domain on %s", (driver) => {
  const srv = useApiServer(driver);
  const { api } = srv;
  const ids = Array.from({ length: RACERS }, (_, i) => `dep_race${i}`);
  const ownDomain = (id: string) => `${id.replace("dep_", "")}.race.test`;

  beforeAll(async () => {
    for (const id of ids) {
      await srv.seedDeployment(id, { domain: ownDomain(id), target_port: 3000 });
    }
  });

  /** Checks the outcome of one race: exactly one winner, every loser told who won, the DB and config agree. */
  const judge = async (domain: string, path: string, replies: Reply<unknown>[]) => {
    const statuses = replies.map((r) => r.status);
    const winners = replies.flatMap((r, i) => (r.status < 300 ? [ids[i] ?? ""] : []));
    expect({ winners: winners.length, lost: statuses.filter((s) => s === 409).length }).toEqual({
      winners: 1,
      lost: RACERS - 1,
    });
    const winner = winners[0];
    for (const r of replies.filter((x) => x.status === 409)) {
      const p = expectProblem(r, 409, "DOMAIN_CONFLICT");
      expect(p).toMatchObject({ owner_deployment_id: winner, domain, path_prefix: path });
      expect(p.detail).toContain(winner);
    }
    const rows = await srv.db.select().from(deploymentRouting).where(eq(deploymentRouting.domain, domain));
    expect(rows.map((r) => [r.deploymentId, r.pathPrefix])).toEqual([[winner, path]]);
    const { config } = await api.traefikConfig();
    const serving = Object.entries(config.http.routers).filter(([, r]) => r.rule === ruleFor(domain, path));
    // The HTTPS router and its HTTP→HTTPS redirect twin, both on the winner's service.
    expect(serving.length).toBe(2);
    expect(new Set(serving.map(([, r]) => r.service.split("--")[0]))).toEqual(new Set([winner?.replaceAll("_", "-")]));
    return winner;
  };

  it(`${RACERS} parallel POST …/domains for one domain: one 201, ${RACERS - 1} × 409 naming the winner`, async () => {
    const domain = "contested.example.com";
    const replies = await Promise.all(
      ids.map((id) => api.post<{ route: RouteJson }>(`/api/v1/deployments/${id}/domains`, { domain })),
    );
    expect(replies.filter((r) => r.status === 201)).toHaveLength(1);
    const winner = await judge(domain, "/", replies);
    const won = replies.find((r) => r.status === 201);
    expect(won?.body.route).toMatchObject({ deployment_id: winner, domain, path_prefix: "/", is_primary: false });
    // The losers' own routing is untouched.
    for (const id of ids.filter((x) => x !== winner)) {
      const list = await api.get<{ items: RouteJson[] }>(`/api/v1/deployments/${id}/domains`);
      expect(list.body.items.map((d) => d.domain)).toEqual([ownDomain(id)]);
    }
  });

  it("the same race with spellings that normalize to one host and path", async () => {
    const spellings = (i: number) =>
      [
        { domain: "Spelled.Example.COM.", path_prefix: "/shop/" },
        { domain: "spelled.example.com", path_prefix: "/shop" },
        { domain: "SPELLED.example.com", path_prefix: "/shop//" },
      ][i % 3];
    const replies = await Promise.all(ids.map((id, i) => api.post(`/api/v1/deployments/${id}/domains`, spellings(i))));
    expect(replies.filter((r) => r.status === 201)).toHaveLength(1);
    await judge("spelled.example.com", "/shop", replies);
  });

  it(`${RACERS} parallel PUT …/routing moving each primary to one domain: one 200, the rest 409`, async () => {
    const domain = "primary-race.example.com";
    const replies = await Promise.all(ids.map((id) => api.put(`/api/v1/deployments/${id}/routing`, { domain })));
    const winner = await judge(domain, "/", replies);
    for (const id of ids) {
      const routing = await api.get<{ domain: string }>(`/api/v1/deployments/${id}/routing`);
      expect(routing.body.domain).toBe(id === winner ? domain : ownDomain(id));
    }
  });
});
