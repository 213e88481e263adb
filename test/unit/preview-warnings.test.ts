import { describe, expect, it } from "vitest";
import { type PreviewSide, previewWarnings } from "../../src/render/preview-warnings.js";
import { renderDynamicConfig } from "../../src/render/render.js";
import type { ReplicaInput, RouteInput } from "../../src/render/types.js";
import { aReplica, aRoute, settings, shuffled } from "../fixtures/rows.js";

/** A side as the preview builds it: rows plus what render() made of them. */
function side(routes: RouteInput[], replicas: ReplicaInput[] = []): PreviewSide {
  const { config, warnings } = renderDynamicConfig({ routes, replicas, settings });
  return { routes, replicas, config, renderWarnings: warnings };
}

const shop = aRoute({ id: "rt_shop", deploymentId: "dep_shop", domain: "shop.a.com" });
const wild = aRoute({ id: "rt_wild", deploymentId: "dep_wild", domain: "*.a.com" });
const blog = aRoute({ id: "rt_blog", deploymentId: "dep_blog", domain: "blog.a.com" });
const up = (dep: string, id = `loc_${dep}`) => aReplica({ id, deploymentId: dep });

describe("previewWarnings", () => {
  it("says nothing when nothing routing-relevant changes, in any row order", () => {
    const rows = [shop, wild, blog];
    expect(previewWarnings(side(rows, [up("dep_shop")]), side(shuffled(rows, 7), [up("dep_shop")]))).toEqual([]);
  });

  it("warns when a routed deployment loses its last healthy replica, not when one of two goes", () => {
    const two = [up("dep_shop", "l1"), up("dep_shop", "l2")];
    expect(previewWarnings(side([shop], two), side([shop], [two[0] as ReplicaInput]))).toEqual([]);
    const w = previewWarnings(side([shop], two), side([shop], [aReplica({ ...two[0], healthStatus: "unknown" })]));
    expect(w).toEqual([
      {
        code: "LAST_HEALTHY_REPLICA",
        message: expect.stringContaining("removes the last healthy replica of dep_shop"),
        deployment_id: "dep_shop",
      },
    ]);
  });

  it("counts host+path pairs that stop matching any route, and not those another route still serves", () => {
    const api = aRoute({ id: "rt_api", deploymentId: "dep_api", domain: "api.b.com", pathPrefix: "/v1" });
    const w = previewWarnings(side([shop, api, wild, blog]), side([wild]));
    expect(w.filter((x) => x.code === "ROUTES_UNREACHABLE")).toEqual([
      {
        code: "ROUTES_UNREACHABLE",
        message: "1 route becomes unreachable (404): api.b.com/v1",
        count: 1,
        routes: [{ host: "api.b.com", path: "/v1", deployment_id: "dep_api" }],
      },
    ]);
    // shop.a.com and blog.a.com fall to the wildcard: moved, not unreachable.
    expect(w.filter((x) => x.code === "HOST_MOVES").map((x) => x.host)).toEqual(["blog.a.com", "shop.a.com"]);
  });

  it("names hosts that move to another deployment, and the exact route that now shadows a wildcard", () => {
    const w = previewWarnings(side([wild]), side([wild, blog]));
    expect(w.map((x) => x.code)).toEqual(["HOST_MOVES", "WILDCARD_SHADOWED", "WILDCARD_SHADOWS_NOTHING"]);
    expect(w[0]?.message).toBe("blog.a.com now resolves to dep_blog instead of dep_wild");
    expect(w[1]).toMatchObject({ host: "blog.a.com", wildcard: "*.a.com" });
    expect(w[2]?.message).toMatch(/^\*\.a\.com now shadows nothing: every known host under it \(blog\.a\.com\)/);
  });

  it("reports rows the renderer newly skips", () => {
    const broken = aRoute({ id: "rt_bad", deploymentId: "dep_bad", domain: "bad.c.com", targetPort: 0 });
    const w = previewWarnings(side([shop]), side([shop, broken]));
    expect(w).toEqual([expect.objectContaining({ code: "ROW_SKIPPED", kind: "route", id: "rt_bad" })]);
  });
});
