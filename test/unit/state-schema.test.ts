import { describe, expect, it } from "vitest";
import { parseStateText } from "../../src/export/state-format.js";
import { stateJsonSchema, validateState } from "../../src/export/state-schema.js";

const check = (raw: unknown, trustedProxies: string[] = []) => validateState(raw, { trustedProxies });
const errorsOf = (raw: unknown) => {
  const v = check(raw);
  return v.ok ? [] : v.errors;
};
const deployment = (routing: unknown, extra: Record<string, unknown> = {}) => ({
  version: 1,
  deployments: [{ id: "dep_a", name: "A", routing, ...extra }],
});

describe("state file validation", () => {
  it("names the place of a bad value in the file", () => {
    const errors = errorsOf(
      deployment({ target_port: 8080, domains: [{ domain: "a.example.com" }, { domain: "bad domain.com" }] }),
    );
    expect(errors.map((e) => e.location)).toEqual(["deployments[0].routing.domains[1].domain"]);
  });

  it("refuses unknown fields, naming them", () => {
    expect(errorsOf({ version: 1, deployments: [{ id: "dep_a", name: "A", replicas: 3 }] })).toEqual([
      { location: "deployments[0]", message: "unknown field(s): replicas" },
    ]);
    expect(errorsOf({ version: 2 }).map((e) => e.location)).toEqual(["version"]);
  });

  it("refuses the same host and path twice and names both places", () => {
    const errors = errorsOf({
      version: 1,
      deployments: [
        { id: "dep_a", name: "A", routing: { target_port: 1, domains: [{ domain: "x.example.com" }] } },
        {
          id: "dep_b",
          name: "B",
          // The same route once normalized: upper case, a trailing dot, a trailing slash.
          routing: { target_port: 1, domains: [{ domain: "X.Example.com.", path_prefix: "/" }] },
        },
      ],
    });
    expect(errors).toEqual([
      {
        location: "deployments[1].routing.domains[0].domain",
        message: "x.example.com on path / is listed twice (also deployments[0].routing.domains[0])",
      },
    ]);
  });

  it("refuses a deployment listed twice, ip_depth without trusted proxies, and insecure TLS with a CA", () => {
    const errors = errorsOf({
      version: 1,
      deployments: [
        { id: "dep_a", name: "A", middlewares: { ip_allow_list: { source_range: ["10.0.0.0/8"], ip_depth: 1 } } },
        { id: "dep_a", name: "A again", health_check: { tls: { insecure_skip_verify: true, ca_pem: null } } },
      ],
    });
    expect(errors.map((e) => e.location)).toEqual([
      "deployments[0].middlewares.ip_allow_list.ip_depth",
      "deployments[1].id",
    ]);
    expect(
      check(
        {
          version: 1,
          deployments: [
            { id: "dep_a", name: "A", middlewares: { ip_allow_list: { source_range: ["10.0.0.0/8"], ip_depth: 1 } } },
          ],
        },
        ["10.0.0.0/8"],
      ).ok,
    ).toBe(true);
  });

  it("refuses plaintext basic-auth passwords: only htpasswd hashes belong in the file", () => {
    const errors = errorsOf({
      version: 1,
      deployments: [{ id: "dep_a", name: "A", middlewares: { basic_auth: { users: ["alice:secret"] } } }],
    });
    expect(errors.map((e) => e.location)).toEqual(["deployments[0].middlewares.basic_auth.users[0]"]);
  });

  it("normalizes what the API normalizes (IDN to punycode, trailing slash, least-cpu)", () => {
    const v = check(
      deployment({
        target_port: 8080,
        load_balancer_algo: "least-cpu",
        domains: [{ domain: "Bücher.example.com", path_prefix: "/api/" }],
      }),
    );
    expect(v.ok && v.doc.deployments[0]?.routing).toEqual({
      target_port: 8080,
      protocol: "http",
      load_balancer_algo: "least-conn",
      domains: [
        { domain: "xn--bcher-kva.example.com", path_prefix: "/api", ssl_enabled: true, tls_include_apex: false },
      ],
    });
  });
});

describe("state file parsing", () => {
  it("reads JSON and YAML alike", () => {
    expect(parseStateText('{"version": 1}')).toEqual({ ok: true, value: { version: 1 } });
    expect(parseStateText("version: 1\n")).toEqual({ ok: true, value: { version: 1 } });
  });

  it("names the line of a syntax error and refuses duplicate keys", () => {
    const bad = parseStateText("version: 1\ndeployments:\n  - id: [\n");
    expect(bad.ok).toBe(false);
    expect(!bad.ok && bad.errors[0]?.location).toMatch(/^line \d+$/);
    const dup = parseStateText("version: 1\nversion: 1\n");
    expect(dup.ok).toBe(false);
  });

  it("refuses an alias bomb instead of expanding it", () => {
    const rows = ["a: &a [x, x, x, x, x, x, x, x, x, x]"];
    for (let i = 1; i < 12; i++) {
      rows.push(
        `${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(10)
          .fill(`*${String.fromCharCode(96 + i)}`)
          .join(", ")}]`,
      );
    }
    expect(parseStateText(rows.join("\n")).ok).toBe(false);
  });
});

describe("the state document's JSON Schema", () => {
  it("is committed as schema/state.schema.json, generated from the zod schema", async () => {
    const schema = stateJsonSchema();
    const text = `${JSON.stringify(schema, null, 2)}\n`;
    expect(text).toContain('"additionalProperties": false'); // unknown keys are errors in editors too
    await expect(text).toMatchFileSnapshot("../../schema/state.schema.json");
  });
});
