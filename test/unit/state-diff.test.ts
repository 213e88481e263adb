import { describe, expect, it } from "vitest";
import { diffState, type StateDiff } from "../../src/export/state-diff.js";
import { formatDiff, summaryLine } from "../../src/export/state-format.js";
import { flattenState } from "../../src/export/state-model.js";
import { type StateDocument, validateState } from "../../src/export/state-schema.js";
import { makeCert } from "../helpers/certs.js";

const resolver = (d: string) => (d.startsWith("*.") ? "letsencrypt-dns" : "letsencrypt");
const HASH = `$2y$10$${"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0".slice(0, 53)}`;

type Raw = {
  version: number;
  deployments: Record<string, unknown>[];
  certificates: Record<string, unknown>[];
};

/** A platform as an operator would write it: two apps, an API with a versioned path on its own port. */
function base(): Raw {
  return {
    version: 1,
    deployments: [
      {
        id: "dep_api",
        name: "API",
        routing: {
          target_port: 8080,
          domains: [
            { domain: "api.example.com" },
            { domain: "api.example.com", path_prefix: "/v2", target_port: 9090 },
          ],
        },
        health_check: { path: "/healthz" },
        middlewares: { rate_limit: { average: 100 }, basic_auth: { users: [`alice:${HASH}`] } },
      },
      {
        id: "dep_shop",
        name: "Shop",
        routing: { target_port: 3000, domains: [{ domain: "shop.example.com" }, { domain: "www.shop.example.com" }] },
      },
    ],
    certificates: [{ fingerprint_sha256: "a".repeat(64), sans: ["shop.example.com"] }],
  };
}

function docOf(raw: unknown): StateDocument {
  const v = validateState(raw, { trustedProxies: [] });
  if (!v.ok) {
    throw new Error(JSON.stringify(v.errors));
  }
  return v.doc;
}

function diffOf(edit: (raw: Raw) => void, prune = false): StateDiff {
  const desired = base();
  edit(desired);
  return diffState(flattenState(docOf(base()), resolver), flattenState(docOf(desired), resolver), prune);
}

/** One line per change: `kind op key: field before → after, …`. */
const lines = (d: StateDiff) =>
  d.changes.map(
    (c) =>
      `${c.kind} ${c.op} ${c.key}${c.fields.length ? ": " : ""}${c.fields.map((f) => `${f.field} ${JSON.stringify(f.before)} → ${JSON.stringify(f.after)}`).join(", ")}`,
  );

const dep = (raw: Raw, i: number): Record<string, unknown> => raw.deployments[i] ?? {};
const routing = (raw: Raw, i: number) =>
  dep(raw, i).routing as unknown as { target_port: number; domains: Record<string, unknown>[] };

describe("diff of a state file against the current state", () => {
  it("finds nothing to do when the file says what the database holds", () => {
    const d = diffOf(() => {});
    expect(d.changes).toEqual([]);
    expect(d.kept).toEqual([]);
    expect(summaryLine(d)).toBe("no changes");
    expect(formatDiff(d)).toBe("no changes\n");
  });

  it.each<[string, (raw: Raw) => void, string[], string]>([
    [
      "a renamed deployment",
      (r) => {
        dep(r, 1).name = "Shop (EU)";
      },
      ['deployment update dep_shop: name "Shop" → "Shop (EU)"'],
      "0 created, 1 updated, 0 deleted",
    ],
    [
      "a port change (the route on its own port keeps it)",
      (r) => {
        routing(r, 0).target_port = 8081;
      },
      ["route update api.example.com/: target_port 8080 → 8081"],
      "0 created, 1 updated, 0 deleted",
    ],
    [
      "an added domain (the default resolver filled in)",
      (r) => {
        routing(r, 1).domains.push({ domain: "shop.example.org" });
      },
      [
        'route create shop.example.org/: deployment null → "dep_shop", target_port null → 3000, protocol null → "http", load_balancer_algo null → "round-robin", ssl_enabled null → true, ssl_cert_resolver null → "letsencrypt", tls_include_apex null → false, primary null → false',
      ],
      "1 created, 0 updated, 0 deleted",
    ],
    [
      "a domain moved between two listed deployments",
      (r) => {
        const moved = routing(r, 1).domains.pop();
        routing(r, 0).domains.push(moved ?? {});
      },
      ['route update www.shop.example.com/: deployment "dep_shop" → "dep_api", target_port 3000 → 8080'],
      "0 created, 1 updated, 0 deleted",
    ],
    [
      "a middleware change",
      (r) => {
        (dep(r, 0).middlewares as unknown as { rate_limit: { average: number } }).rate_limit.average = 200;
      },
      [
        'middlewares update dep_api: rate_limit {"average":100,"burst":1,"period_seconds":1} → {"average":200,"burst":1,"period_seconds":1}',
      ],
      "0 created, 1 updated, 0 deleted",
    ],
    [
      "a health-check override cleared",
      (r) => {
        delete dep(r, 0).health_check;
      },
      ['health_check delete dep_api: path "/healthz" → null'],
      "0 created, 0 updated, 1 deleted",
    ],
    [
      "a new primary route (the order of domains)",
      (r) => {
        routing(r, 1).domains.reverse();
      },
      [
        "route update shop.example.com/: primary true → false",
        "route update www.shop.example.com/: primary false → true",
      ],
      "0 created, 2 updated, 0 deleted",
    ],
    [
      "a wildcard without a resolver (gets the wildcard default)",
      (r) => {
        routing(r, 1).domains.push({ domain: "*.shop.example.com", tls_include_apex: true });
      },
      [
        'route create *.shop.example.com/: deployment null → "dep_shop", target_port null → 3000, protocol null → "http", load_balancer_algo null → "round-robin", ssl_enabled null → true, ssl_cert_resolver null → "letsencrypt-dns", tls_include_apex null → true, primary null → false',
      ],
      "1 created, 0 updated, 0 deleted",
    ],
  ])("shows %s field by field", (_name, edit, expected, summary) => {
    const d = diffOf(edit);
    expect(lines(d)).toEqual(expected);
    expect(summaryLine(d)).toBe(summary);
    expect(d.conflicts).toEqual([]);
  });

  it("keeps a deployment the file no longer lists, and says what --prune would delete", () => {
    const d = diffOf((r) => {
      r.deployments.pop();
    });
    expect(d.changes).toEqual([]);
    expect(d.kept).toEqual([{ kind: "deployment", key: "dep_shop" }]);
    expect(formatDiff(d)).toBe("not in the file, kept (use --prune to delete):\n  deployment dep_shop\nno changes\n");
  });

  it("deletes that deployment and its routes with --prune", () => {
    const d = diffOf((r) => {
      r.deployments.pop();
      r.certificates = [];
    }, true);
    expect(lines(d)).toEqual([
      "deployment delete dep_shop",
      'route delete shop.example.com/: deployment "dep_shop" → null',
      'route delete www.shop.example.com/: deployment "dep_shop" → null',
      `certificate delete ${"a".repeat(64)}`,
    ]);
    expect(summaryLine(d)).toBe("0 created, 0 updated, 4 deleted");
  });

  it("reports a route claimed from a deployment the file does not list as a conflict naming the owner", () => {
    const d = diffOf((r) => {
      r.deployments.pop();
      routing(r, 0).domains.push({ domain: "www.shop.example.com" });
    });
    expect(d.conflicts).toEqual([
      {
        domain: "www.shop.example.com",
        path_prefix: "/",
        owner_deployment_id: "dep_shop",
        location: "deployments[0].routing.domains[2].domain",
      },
    ]);
  });

  it("names a referenced certificate that is not uploaded", () => {
    const d = diffOf((r) => {
      r.certificates.push({ fingerprint_sha256: "B".repeat(64) });
    });
    expect(d.missing_certificates).toEqual([
      { fingerprint_sha256: "b".repeat(64), location: "certificates[1].fingerprint_sha256" },
    ]);
  });

  it("never prints a password hash or a CA bundle whole", () => {
    const pem = makeCert({ sans: ["ca.internal"] }).certPem;
    const body = pem.split("\n")[1] ?? "missing";
    const d = diffOf((r) => {
      (dep(r, 0).middlewares as unknown as { basic_auth: { users: string[] } }).basic_auth.users = [`bob:${HASH}`];
      dep(r, 0).health_check = { tls: { ca_pem: pem } } as never;
    });
    const text = formatDiff(d);
    expect(text).not.toContain(HASH);
    expect(text).not.toContain(body);
    expect(text).toContain("bob:$2y$10$…");
    expect(text).toContain("<PEM, 1 block(s)");
  });

  it("prints the diff per kind with before → after and the summary last", () => {
    const d = diffOf((r) => {
      dep(r, 1).name = "Shop (EU)";
      routing(r, 1).domains.push({ domain: "shop.example.org", ssl_enabled: false });
      r.deployments.splice(0, 1);
    });
    expect(formatDiff(d)).toBe(
      [
        "deployments:",
        "  ~ dep_shop (updated)",
        '      name: "Shop" → "Shop (EU)"',
        "routes:",
        "  + shop.example.org/ (created)",
        '      deployment: "dep_shop"',
        "      target_port: 3000",
        '      protocol: "http"',
        '      load_balancer_algo: "round-robin"',
        "      ssl_enabled: false",
        '      ssl_cert_resolver: "letsencrypt"',
        "      tls_include_apex: false",
        "      primary: false",
        "not in the file, kept (use --prune to delete):",
        "  deployment dep_api",
        "1 created, 1 updated, 0 deleted",
        "",
      ].join("\n"),
    );
  });
});
