import { beforeAll, describe, expect, it } from "vitest";
import { deploymentRouting } from "../../schema/tables.js";
import { genDomain, genPath, prng } from "../fixtures/hostile-inputs.js";
import type { ProblemJson, Reply, RouteJson } from "../helpers/api-client.js";
import { useApiServer } from "../helpers/api-server.js";
import { DRIVERS } from "../helpers/db.js";

// Property: whatever string arrives in `domain` or `path_prefix`, the API answers 400 (problem+json) or stores
// a value that is strictly a hostname / URL path, and the rendered Traefik rules keep exactly one of two shapes.
// Strings come from a seeded PRNG, so a failure names its seed and index and replays exactly.

const SEED = 0x5eed_2026;
/** Hostile domains, all thrown at POST …/domains. */
const DOMAINS = 2_000;
/** Hostile path prefixes: half thrown at POST …/domains, half at PUT …/routing (a write costs ~20 ms on PGlite). */
const PATHS = 2_000;
const SLOW = 90_000;
/** Writes go round-robin to this many deployments: their route lists stay short, and duplicates meet across owners. */
const SPREAD = 8;

// Independent of src/render/validate.ts on purpose: the property is stated here, not borrowed.
const LABEL = "[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?";
const STRICT_HOST = new RegExp(`^(?:\\*\\.)?(?:${LABEL}\\.)+${LABEL}$`);
const STRICT_PATH = /^\/(?:[A-Za-z0-9\-._~!$&()*+,;=:@/]|%[0-9A-Fa-f]{2})*$/;

function isStrictHost(domain: string): boolean {
  const rest = domain.startsWith("*.") ? domain.slice(2) : domain;
  return domain.length <= 253 && STRICT_HOST.test(domain) && rest.includes(".") && !/\.\d+$/.test(domain);
}
function isStrictPath(path: string): boolean {
  return Buffer.byteLength(path) <= 1024 && STRICT_PATH.test(path) && !/[`'"{}\s]/.test(path);
}

const HOST_RULE = String.raw`Host\(\x60[a-z0-9.-]+\x60\)`;
const WILD_RULE = String.raw`HostRegexp\(\x60\^\[a-z0-9-\]\+\\\.(?:[a-z0-9-]+\\\.)*[a-z0-9-]+\$\x60\)`;
const PATH_RULE = String.raw`PathPrefix\(\x60/[A-Za-z0-9\-._~!$&()*+,;=:@/%]*\x60\)`;
const RULE = new RegExp(`^(?:${HOST_RULE}|${WILD_RULE})(?: && ${PATH_RULE})?$`);

interface Outcome {
  input: string;
  status: number;
}

describe.each(DRIVERS)("fuzzing domain and path_prefix on %s", (driver) => {
  // Renders happen rarely during the run (a poll still forces a fresh one), so the fuzz measures the API.
  const srv = useApiServer(driver, { RENDER_COALESCE_MS: "2000" }, { inProcess: true });
  const { api } = srv;
  const outcomes: Record<string, Outcome[]> = {};

  beforeAll(async () => {
    const seeds: [string, string][] = [
      ...Array.from({ length: SPREAD }, (_, k): [string, string] => [`dep_fuzz_${k}`, `d${k}.fuzz.test`]),
      ["dep_fuzz_put", "put.fuzz.test"],
    ];
    for (const [id, domain] of seeds) {
      await srv.seedDeployment(id, { domain, target_port: 8080 });
    }
  });

  it("states the property strictly enough to fail (guards for the checks below)", () => {
    expect(RULE.test("Host(`app.example.com`)")).toBe(true);
    expect(RULE.test("Host(`app.example.com`) && PathPrefix(`/api/v1`)")).toBe(true);
    expect(RULE.test("HostRegexp(`^[a-z0-9-]+\\.app\\.example\\.com$`)")).toBe(true);
    for (const bad of [
      "Host(`a.com`) || Host(`b.com`)",
      "Host(`a.com`) && PathPrefix(`/x`) || Host(`b.com`)",
      "Host(`a.com`) && PathPrefix(`/x y`)",
      "Host(`A.com`)",
      "Host(`a.com`, `b.com`)",
      "HostRegexp(`.*`)",
      "Host(`a.com`) && PathPrefix(`/{{x}}`)",
      "PathPrefix(`/`)",
    ]) {
      expect({ bad, ok: RULE.test(bad) }).toEqual({ bad, ok: false });
    }
    expect(["app.example.com", "*.app.example.com", "xn--bcher-kva.de"].every(isStrictHost)).toBe(true);
    expect(["*.com", "a.*.com", "A.com", "a..com", "a_b.com", "localhost", "a.1", "-a.com"].some(isStrictHost)).toBe(
      false,
    );
    expect(["/", "/api", "/%20x", "/a:b@c"].every(isStrictPath)).toBe(true);
    expect(["api", "/a b", "/a`", "/{{", "/%zz", "/ä", `/${"p".repeat(1024)}`].some(isStrictPath)).toBe(false);
  });

  /** Checks one answer against the property; returns a description of the violation, if any. */
  const judge = (
    reply: Reply<unknown>,
    field: "domain" | "path_prefix",
    stored: (body: Record<string, unknown>) => string | undefined,
  ): string | undefined => {
    if (reply.status === 400) {
      const p = reply.body as ProblemJson;
      const ok =
        reply.contentType === "application/problem+json" &&
        p.code === "VALIDATION_FAILED" &&
        (p.errors ?? []).length > 0 &&
        (p.errors ?? []).every((e) => e.location === `body.${field}`);
      return ok ? undefined : `bad 400: ${reply.text.slice(0, 200)}`;
    }
    if (reply.status === 409) {
      const p = reply.body as ProblemJson;
      const domain = String(p.domain);
      const path = String(p.path_prefix);
      return reply.contentType === "application/problem+json" && isStrictHost(domain) && isStrictPath(path)
        ? undefined
        : `bad 409: ${reply.text.slice(0, 200)}`;
    }
    if (reply.status >= 200 && reply.status < 300) {
      const value = stored(reply.body as Record<string, unknown>);
      const strict = field === "domain" ? isStrictHost(value ?? "") : isStrictPath(value ?? "");
      return strict ? undefined : `stored ${JSON.stringify(value)}`;
    }
    return `status ${reply.status}: ${reply.text.slice(0, 200)}`;
  };

  const run = async (
    name: string,
    seed: number,
    gen: (rnd: () => number) => string,
    send: (input: string, i: number) => Promise<Reply<unknown>>,
    field: "domain" | "path_prefix",
    stored: (body: Record<string, unknown>) => string | undefined,
    count: number,
  ) => {
    const rnd = prng(seed);
    const violations: string[] = [];
    const seen: Outcome[] = [];
    for (let i = 0; i < count; i++) {
      const input = gen(rnd);
      const reply = await send(input, i);
      seen.push({ input, status: reply.status });
      const why = judge(reply, field, stored);
      if (why) {
        violations.push(`${name} seed=${seed} #${i} ${JSON.stringify(input)} → ${why}`);
      }
    }
    outcomes[name] = seen;
    expect(violations).toEqual([]);
    expect(api.faults).toEqual([]);
    // The generator must exercise both sides of the rule, or the property says nothing.
    const statuses = new Set(seen.map((o) => o.status));
    expect(statuses.has(400)).toBe(true);
    expect(seen.some((o) => o.status === 200 || o.status === 201)).toBe(true);
    expect(new Set(seen.map((o) => o.input)).size).toBeGreaterThan(count / 2);
  };

  // Each fuzz runs once per suite, from its own test or from the summary test below, whichever comes first: the
  // summary then looks at everything the three runs stored, in any test order.
  const once = <T>(fn: () => Promise<T>) => {
    let p: Promise<T> | undefined;
    return () => {
      p ??= fn();
      return p;
    };
  };
  const domainRun = once(() =>
    run(
      "domain",
      SEED,
      genDomain,
      (domain, i) => api.post(`/api/v1/deployments/dep_fuzz_${i % SPREAD}/domains`, { domain }),
      "domain",
      (b) => (b.route as RouteJson | undefined)?.domain,
      DOMAINS,
    ),
  );
  const postPathRun = once(() =>
    run(
      "post-path",
      SEED + 1,
      genPath,
      (path_prefix, i) =>
        api.post(`/api/v1/deployments/dep_fuzz_${i % SPREAD}/domains`, {
          domain: `p${i % SPREAD}.fuzz.test`,
          path_prefix,
        }),
      "path_prefix",
      (b) => (b.route as RouteJson | undefined)?.path_prefix,
      PATHS / 2,
    ),
  );
  const putPathRun = once(() =>
    run(
      "put-path",
      SEED + 2,
      genPath,
      (path_prefix) => api.put("/api/v1/deployments/dep_fuzz_put/routing", { path_prefix }),
      "path_prefix",
      (b) => (typeof b.path_prefix === "string" ? b.path_prefix : undefined),
      PATHS / 2,
    ),
  );

  it(`answers ${DOMAINS} hostile domains with 400 or a strictly valid stored host`, { timeout: SLOW }, async () => {
    await domainRun();
    const accepted = outcomes.domain?.filter((o) => o.status < 300).length ?? 0;
    const conflicts = outcomes.domain?.filter((o) => o.status === 409).length ?? 0;
    expect(accepted).toBeGreaterThan(50);
    expect(conflicts).toBeGreaterThan(0); // duplicates across deployments meet the unique index
  });

  it(`answers ${PATHS / 2} hostile path prefixes on POST …/domains with 400 or a strictly valid stored path`, {
    timeout: SLOW,
  }, async () => {
    await postPathRun();
  });

  it(`answers ${PATHS / 2} hostile path prefixes on PUT …/routing with 400 or a strictly valid stored path`, {
    timeout: SLOW,
  }, async () => {
    await putPathRun();
  });

  it("leaves only strict values in the database and a config Traefik accepts, with one rule shape", {
    timeout: 3 * SLOW,
  }, async () => {
    await domainRun();
    await postPathRun();
    await putPathRun();
    const rows = await srv.db
      .select({ domain: deploymentRouting.domain, path: deploymentRouting.pathPrefix })
      .from(deploymentRouting);
    expect(rows.length).toBeGreaterThan(100);
    expect(rows.filter((r) => !isStrictHost(r.domain) || !isStrictPath(r.path))).toEqual([]);

    const { config } = await api.traefikConfig();
    const routers = Object.entries(config.http.routers);
    const badRules = routers.filter(([, r]) => !RULE.test(r.rule) || r.rule.includes("||"));
    expect(badRules).toEqual([]);
    // Every stored route is served: nothing valid was dropped, nothing extra appeared.
    const served = new Set(routers.map(([, r]) => r.rule));
    const expected = new Set(
      rows.map((r) => {
        const host = r.domain.startsWith("*.")
          ? `HostRegexp(\`^[a-z0-9-]+\\.${r.domain.slice(2).replaceAll(".", "\\.")}$\`)`
          : `Host(\`${r.domain}\`)`;
        return r.path === "/" ? host : `${host} && PathPrefix(\`${r.path}\`)`;
      }),
    );
    expect(served).toEqual(expected);
    expect(srv.errors).toEqual([]);
  });
});
