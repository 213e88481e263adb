import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { renderFromDatabase } from "../../src/cli/common.js";
import { ROUTING_CHANNEL } from "../../src/db/change-feed.js";
import { openDb } from "../../src/db/client.js";
import { exportToFolder, type FileExportOptions } from "../../src/export/file-export.js";
import { runWatch } from "../../src/export/watch.js";
import { traefikReads, union } from "../fixtures/export-config.js";
import { useApiServer } from "../helpers/api-server.js";
import { PROVIDER_TOKEN, waitFor } from "../helpers/app.js";
import { makeCert } from "../helpers/certs.js";
import { runCli } from "../helpers/cli.js";
import { DRIVERS } from "../helpers/db.js";
import { traefikSchemaErrors } from "../helpers/traefik-schema.js";

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "obiente-export-"));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs.splice(0)) {
    rmSync(d, { recursive: true, force: true });
  }
});

const cert = makeCert({ sans: ["secure.example.com"] });
const SECRETS_PATH = "/run/obiente/secrets";

/** The folder's Traefik-loaded files, name → text. */
function folder(dir: string): Record<string, string> {
  return Object.fromEntries(
    readdirSync(dir)
      .filter((n) => n.endsWith(".yml"))
      .sort()
      .map((n) => [n, readFileSync(join(dir, n), "utf8")]),
  );
}

describe.each(DRIVERS)("export from the database on %s", (driver) => {
  const srv = useApiServer(driver);
  const { api } = srv;

  beforeAll(async () => {
    await srv.seedDeployment("dep_web", { domain: "web.example.com", target_port: 3000 });
    await srv.seedLocation("dep_web", "web_1", { address: "10.0.0.1" });
    await srv.seedDeployment("dep_sec", { domain: "secure.example.com", target_port: 8443, ssl_enabled: true });
    expect((await api.post("/api/v1/certificates", { cert_pem: cert.certPem, key_pem: cert.keyPem })).status).toBe(201);
  });

  const opts = (dir: string): FileExportOptions => ({
    dir,
    format: "yaml",
    layout: "per-deployment",
    secrets: "files",
    secretsPath: SECRETS_PATH,
  });

  it("exports what the service serves: Traefik reads the served config back from the files", async () => {
    const dir = tempDir();
    const { config } = await renderFromDatabase(srv.config, srv.handle);
    await exportToFolder(config, { ...opts(dir), secretsPath: undefined });
    expect(Object.keys(folder(dir))).toEqual(["obiente--shared.yml", "obiente-dep-sec.yml", "obiente-dep-web.yml"]);
    const seen = union(Object.values(folder(dir)).map((t) => traefikReads(t, "yaml")));
    const served = (await api.traefikConfig()).config;
    expect(seen).toEqual(served);
    expect(traefikSchemaErrors(seen, { provider: "file" })).toEqual([]);
  });

  it("--watch re-exports when the routing changes (LISTEN on the change feed) and stops when told", async () => {
    const dir = tempDir();
    const ac = new AbortController();
    const lines: string[] = [];
    const watching = runWatch({
      exportOnce: async () => {
        const r = await exportToFolder((await renderFromDatabase(srv.config, srv.handle)).config, opts(dir));
        return r.written.length > 0 ? r.written.join(",") : undefined;
      },
      subscribe: (onChange) => srv.handle.listen(ROUTING_CHANNEL, onChange, onChange),
      intervalMs: 3_600_000, // only the change feed can trigger the second export within the test
      log: (l) => lines.push(l),
      signal: ac.signal,
    });
    await waitFor(async () => folder(dir)["obiente-dep-web.yml"]);
    await srv.seedDeployment("dep_new", { domain: "new.example.com", target_port: 3000 });
    await waitFor(async () => folder(dir)["obiente-dep-new.yml"], 10_000);
    ac.abort();
    await watching;
    expect(lines.some((l) => l.includes("obiente-dep-new.yml"))).toBe(true);
    await api.delete("/api/v1/deployments/dep_new");
  });

  if (driver === DRIVERS[0]) {
    it("the CLI with --url http:// writes the same bytes as the in-process export; --check exits 0, then 1 with a diff", async () => {
      const inProcess = tempDir();
      await exportToFolder((await renderFromDatabase(srv.config, srv.handle)).config, opts(inProcess));
      const dir = tempDir();
      const args = ["export", "--dir", dir, "--layout", "per-deployment", "--secrets-path", SECRETS_PATH];
      const env = { OBIENTE_URL: srv.url, OBIENTE_PROVIDER_TOKEN: PROVIDER_TOKEN };
      const done = await runCli(args, { env });
      expect(done.stderr).toMatch(/written/);
      expect(done.code).toBe(0);
      expect(folder(dir)).toEqual(folder(inProcess));
      expect(
        readFileSync(
          join(dir, ".secrets", readdirSync(join(dir, ".secrets")).find((n) => n.endsWith(".key")) ?? ""),
          "utf8",
        ),
      ).toBe(cert.keyPem);

      const same = await runCli([...args, "--check"], { env });
      expect(same).toEqual({ code: 0, stdout: "", stderr: "" });

      await srv.seedDeployment("dep_more", { domain: "more.example.com", target_port: 3000 });
      writeFileSync(join(dir, "hand-written.yml"), "http: {}\n"); // not ours: never part of the diff
      const differs = await runCli([...args, "--check"], { env });
      expect(differs.code).toBe(1);
      expect(differs.stdout).toContain("--- /dev/null\n+++ b/obiente-dep-more.yml\n@@ ");
      expect(differs.stdout).toContain("+    dep-more--");
      expect(differs.stdout).not.toContain("hand-written");
      expect(Object.keys(folder(dir))).not.toContain("obiente-dep-more.yml"); // --check wrote nothing
      await api.delete("/api/v1/deployments/dep_more");
    }, 60_000);
  }
});

describe("export: the CLI's refusals", () => {
  it("an embedded PGlite folder in use by the service: exit 3, naming --url http:// as the way out", async () => {
    const dataDir = tempDir();
    const held = await openDb({ DATA_DIR: dataDir });
    try {
      const r = await runCli(["export", "--dir", tempDir()], { env: { DATA_DIR: dataDir } });
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(/--url http:\/\/<host>:8080 --token <PROVIDER_TOKEN>/);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
    } finally {
      await held.close();
    }
  }, 60_000);

  it("bad options exit 2 with one line", async () => {
    const r = await runCli(["export", "--dir", tempDir(), "--format", "json"]);
    expect(r).toEqual({ code: 2, stdout: "", stderr: "obiente-router: --format must be yaml or toml\n" });
  }, 60_000);
});
