import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Ajv2020 } from "ajv/dist/2020.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { openDb } from "../../src/db/client.js";
import { stateJsonSchema } from "../../src/export/state-schema.js";
import type { ProblemJson } from "../helpers/api-client.js";
import { useApiServer } from "../helpers/api-server.js";
import { runCli } from "../helpers/cli.js";
import { DRIVERS } from "../helpers/db.js";

const YAML = { "content-type": "application/yaml" };
const SLOW = { timeout: 60_000 };

const fileOf = (domains: string[]) => `version: 1
deployments:
  - id: dep_web
    name: Web
    routing:
      target_port: 8080
      domains:
${domains.map((d) => `        - domain: ${d}`).join("\n")}
`;

describe.each(DRIVERS)("the state API on %s", (driver) => {
  const srv = useApiServer(driver);
  const { api } = srv;

  beforeAll(async () => {
    await srv.seedDeployment("dep_web", { domain: "web.example.com", target_port: 8080 });
    await srv.seedDeployment("dep_other", { domain: "other.example.com", target_port: 80 });
  });

  it("requires the admin token on every state endpoint", async () => {
    for (const [method, path] of [
      ["GET", "/api/v1/state"],
      ["GET", "/api/v1/state/schema"],
      ["POST", "/api/v1/state/diff"],
      ["POST", "/api/v1/state/apply"],
    ] as const) {
      const body = method === "POST" ? { raw: fileOf(["web.example.com"]), headers: YAML } : {};
      const r = await api.send(method, path, { token: null, ...body });
      expect({ path, status: r.status, type: r.contentType }).toEqual({
        path,
        status: 401,
        type: "application/problem+json",
      });
    }
  });

  it("dumps JSON by default and YAML on request, and the dump validates against the published schema", async () => {
    const json = await api.get("/api/v1/state");
    const yaml = await api.get("/api/v1/state?format=yaml");
    expect(json.contentType).toMatch(/^application\/json/);
    expect(yaml.contentType).toBe("application/yaml; charset=utf-8");
    expect(parse(yaml.text)).toEqual(json.body);
    const schema = await api.get("/api/v1/state/schema");
    expect(schema.body).toEqual(stateJsonSchema());
    const ajv = new Ajv2020({ strict: false });
    expect(ajv.validate(schema.body, json.body)).toBe(true);
    expect(ajv.validate(schema.body, { ...json.body, extra: 1 })).toBe(false); // unknown keys: editors flag them too
  });

  it("diffs YAML and JSON bodies alike without writing", async () => {
    const text = fileOf(["web.example.com", "www.web.example.com"]);
    const a = await api.send("POST", "/api/v1/state/diff", { raw: text, headers: YAML });
    const b = await api.post("/api/v1/state/diff", parse(text));
    expect(a.status).toBe(200);
    expect(a.body).toEqual(b.body);
    expect(a.body).toMatchObject({
      applied: false,
      summary_line: "1 created, 1 updated, 0 deleted",
      kept: [{ kind: "deployment", key: "dep_other" }],
    });
    expect(String(a.body.text)).toContain('  ~ dep_web (updated)\n      name: "dep_web" → "Web"');
    expect((await api.get("/api/v1/deployments/dep_web/domains")).body.items).toHaveLength(1);
  });

  it("answers bad input with problems naming the place in the document", async () => {
    const bad = await api.send("POST", "/api/v1/state/apply", {
      raw: fileOf(["web.example.com", "bad host.example.com"]),
      headers: YAML,
    });
    expect(bad.status).toBe(400);
    expect((bad.body as ProblemJson).errors).toEqual([
      { location: "body.deployments[0].routing.domains[1].domain", message: expect.any(String) },
    ]);
    const syntax = await api.send("POST", "/api/v1/state/diff", { raw: "version: [1\n", headers: YAML });
    expect(syntax.status).toBe(400);
    expect((syntax.body as ProblemJson).errors?.[0]?.location).toMatch(/^body \(line \d+\)$/);
    const notJson = await api.send("POST", "/api/v1/state/diff", {
      raw: "{",
      headers: { "content-type": "application/json" },
    });
    expect([notJson.status, (notJson.body as ProblemJson).code]).toEqual([400, "MALFORMED_JSON"]);
    const text = await api.send("POST", "/api/v1/state/diff", { raw: "x", headers: { "content-type": "text/plain" } });
    expect([text.status, (text.body as ProblemJson).code]).toEqual([415, "UNSUPPORTED_MEDIA_TYPE"]);
    const query = await api.send("POST", "/api/v1/state/apply?prune=yes", { raw: "version: 1\n", headers: YAML });
    expect((query.body as ProblemJson).errors?.[0]?.location).toBe("query.prune");
  });

  it("refuses a route owned by a deployment the file does not list (409 naming the owner)", async () => {
    const r = await api.send("POST", "/api/v1/state/apply", {
      raw: fileOf(["web.example.com", "other.example.com"]),
      headers: YAML,
    });
    expect(r.status).toBe(409);
    expect(r.body).toMatchObject({ code: "DOMAIN_CONFLICT", owner_deployment_id: "dep_other" });
    const cert = await api.send("POST", "/api/v1/state/apply", {
      raw: `version: 1\ncertificates:\n  - fingerprint_sha256: ${"ab".repeat(32)}\n`,
      headers: YAML,
    });
    expect(cert.status).toBe(409);
    expect(cert.body).toMatchObject({ code: "CERTIFICATE_NOT_UPLOADED" });
    expect(String(cert.body.detail)).toContain("POST /api/v1/certificates");
  });

  it("applies, and the served config follows at once", async () => {
    const r = await api.send("POST", "/api/v1/state/apply", {
      raw: fileOf(["web.example.com", "api.web.example.com"]),
      headers: YAML,
    });
    expect(r.body).toMatchObject({ applied: true, summary_line: "1 created, 1 updated, 0 deleted" });
    const { config } = await api.traefikConfig();
    expect(Object.values(config.http.routers).map((x) => x.rule)).toContain("Host(`api.web.example.com`)");
  });

  describe("the CLI against this instance (--url http://…)", () => {
    let dir: string;
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), "obiente-state-cli-"));
    });
    afterAll(() => {
      rmSync(dir, { recursive: true, force: true });
    });
    const remote = () => ["--url", srv.url, "--token", srv.config.ADMIN_TOKEN[0] ?? ""];

    it("dump prints the instance's state; diff exits 1 on differences; apply exits 0; diff then 0", SLOW, async () => {
      const dumped = await runCli(["dump", ...remote()]);
      expect(dumped).toMatchObject({ code: 0, stderr: "" });
      expect(dumped.stdout).toBe((await api.get("/api/v1/state?format=yaml")).text);
      const file = join(dir, "state.yaml");
      writeFileSync(file, dumped.stdout.replace("api.web.example.com", "app.web.example.com"));
      const diff = await runCli(["diff", "-f", file, ...remote()]);
      expect(diff.code).toBe(1);
      expect(diff.stdout).toContain("1 created, 0 updated, 1 deleted\n");
      const applied = await runCli(["apply", "-f", file], {
        env: { OBIENTE_URL: srv.url, OBIENTE_TOKEN: srv.config.ADMIN_TOKEN[0] ?? "" },
      });
      expect(applied).toMatchObject({ code: 0, stderr: "" });
      expect(applied.stdout).toContain("applied: 1 created, 0 updated, 1 deleted\n");
      const again = await runCli(["diff", "-f", file, ...remote()]);
      expect(again).toMatchObject({ code: 0, stdout: "no changes\n" });
    });

    it("exits 2 for an invalid file or a refused token, 3 when the instance cannot be reached", SLOW, async () => {
      const file = join(dir, "bad.yaml");
      writeFileSync(file, fileOf(["web.example.com", "web.example.com"]));
      const bad = await runCli(["apply", "-f", file, ...remote()]);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain("deployments[0].routing.domains[1].domain");
      const token = await runCli(["dump", "--url", srv.url, "--token", "wrong"]);
      expect(token.code).toBe(2);
      expect(token.stderr).toContain("401");
      const down = await runCli(["diff", "-f", file, "--url", "http://127.0.0.1:9"]);
      expect(down.code).toBe(3);
      expect(down.stderr).toMatch(/could not reach/);
    });

    it("says to use the API when the service holds the embedded database", SLOW, async () => {
      const dataDir = join(dir, "data");
      const held = await openDb({ DATA_DIR: dataDir });
      try {
        const r = await runCli(["dump"], { env: { DATA_DIR: dataDir } });
        expect(r.code).toBe(3);
        expect(r.stderr).toContain("--url http://");
      } finally {
        await held.close();
      }
    });
  });
});
