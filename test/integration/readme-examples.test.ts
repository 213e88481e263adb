import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useApiServer } from "../helpers/api-server.js";
import { ADMIN_TOKEN, PROVIDER_TOKEN } from "../helpers/app.js";
import { makeCert } from "../helpers/certs.js";
import { DRIVERS } from "../helpers/db.js";
import { curlCommands, documentedStatuses, hasShellTools, runShell, shellBlocks } from "../helpers/shell-examples.js";

// The README's curl examples and examples/*.sh, pasted into bash as an operator would, against a live service on a
// fresh database: each curl must answer the status its `# → NNN` comment documents, in order.
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const README = readFileSync(join(ROOT, "README.md"), "utf8");
// The API walkthrough, then the Access control and Middlewares examples on the deployment it leaves behind.
const SECTIONS = ["API", "Access control", "Events and webhooks", "Middlewares", "Traffic management"];
const blocks = SECTIONS.flatMap((title) => shellBlocks(README, title));
const EXAMPLES = readdirSync(join(ROOT, "examples"))
  .filter((f) => f.endsWith(".sh"))
  .sort();

describe("the README's shell examples", () => {
  it("document one status per curl command", () => {
    expect(blocks.length).toBeGreaterThanOrEqual(SECTIONS.length);
    for (const block of blocks) {
      expect(documentedStatuses(block).length).toBe(curlCommands(block));
    }
  });
});

for (const driver of DRIVERS) {
  describe.skipIf(!hasShellTools())(`README examples run top to bottom against a live service (${driver})`, () => {
    const server = useApiServer(driver);
    let cwd = "";
    beforeAll(() => {
      cwd = mkdtempSync(join(tmpdir(), "obiente-readme-"));
      // The file the https health-check example reads: any CA certificate does.
      writeFileSync(join(cwd, "internal-ca.pem"), makeCert({ sans: ["api.internal"], cn: "internal CA" }).certPem);
    });
    afterAll(() => {
      if (cwd) {
        rmSync(cwd, { recursive: true, force: true });
      }
    });
    const env = () => ({ ROUTER_URL: server.url, ADMIN_TOKEN, PROVIDER_TOKEN });

    it(`the ${SECTIONS.join(" and ")} sections answer the status each curl documents`, async () => {
      const run = await runShell(blocks.join("\n"), { cwd, env: env() });
      expect(run.stderr).toBe("");
      expect(run.code).toBe(0);
      expect(run.statuses).toEqual(blocks.flatMap(documentedStatuses));
      // What the walkthrough leaves behind is what it says: the renamed route, served under its new name.
      const { config } = await server.api.traefikConfig();
      const rules = Object.values(config.http?.routers ?? {}).map((r) => r.rule);
      expect(rules).toContain("Host(`shop.example.net`)");
      expect(rules).not.toContain("Host(`shop.example.com`)");
      expect(Object.keys(config.http?.middlewares ?? {})).toContain("dep-shop--basic-auth");
    });

    it.each(EXAMPLES)("examples/%s runs, and runs again (every step is create-or-replace)", async (file) => {
      const script = `bash ${JSON.stringify(join(ROOT, "examples", file))}`;
      for (const round of [1, 2]) {
        const run = await runShell(script, { cwd, env: env() });
        expect({ round, code: run.code, stderr: run.stderr.split("\n").filter((l) => !l.startsWith("→ ")) }).toEqual({
          round,
          code: 0,
          stderr: [""],
        });
        expect(run.statuses.length).toBeGreaterThan(0);
        expect(run.statuses.filter((s) => s >= 500 || s === 0)).toEqual([]);
      }
    });

    it("sample-routing.sh leaves whoami.localhost routed over plain HTTP", async () => {
      const { config } = await server.api.traefikConfig();
      const router = Object.values(config.http?.routers ?? {}).find(
        (r) => r.rule === "Host(`whoami.localhost`)" && r.entryPoints?.includes("web"),
      );
      expect(router?.middlewares ?? []).not.toContain("obiente-redirect-to-https");
    });
  });
}
