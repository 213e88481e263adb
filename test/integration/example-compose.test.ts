import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parse } from "yaml";

// No Docker here: the example stack's moving parts are checked by running them directly: Traefik's entrypoint
// script (which writes its static config from traefik/traefik.yml and the environment), and what the two router
// instances must share.

const ROOT = join(import.meta.dirname, "..", "..");
const COMPOSE_TEXT = readFileSync(join(ROOT, "examples", "docker-compose.yml"), "utf8");
const COMPOSE = parse(COMPOSE_TEXT, { merge: true }) as {
  services: Record<string, { command?: string[]; environment?: Record<string, string> }>;
};
const temp = mkdtempSync(join(tmpdir(), "obiente-compose-"));
afterAll(() => rmSync(temp, { recursive: true, force: true }));

/** Traefik's entrypoint as compose runs it (`$$` is compose's escape for `$`), against the shipped traefik.yml. */
function traefikStaticConfig(env: Record<string, string>): Record<string, unknown> {
  const script = (COMPOSE.services.traefik?.command?.[0] ?? "")
    .replaceAll("$$", "$")
    .replace("/etc/traefik/traefik.template.yml", join(ROOT, "traefik", "traefik.yml"))
    .replace("/tmp/traefik.yml", join(temp, "traefik.yml"))
    .replace(/&& exec traefik .*$/, "");
  const r = spawnSync("sh", ["-c", script], { env: { PATH: process.env.PATH ?? "", ...env }, encoding: "utf8" });
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
  return parse(readFileSync(join(temp, "traefik.yml"), "utf8")) as Record<string, unknown>;
}

type Acme = { email: string; storage: string; caServer?: string };
const acmeOf = (cfg: Record<string, unknown>) =>
  Object.fromEntries(
    Object.entries(cfg.certificatesResolvers as Record<string, { acme: Acme }>).map(([n, r]) => [n, r.acme]),
  );

describe("examples/docker-compose.yml", () => {
  it("writes the provider token and the ACME email into Traefik's config; production CA by default", () => {
    const cfg = traefikStaticConfig({
      PROVIDER_TOKEN: "tok123",
      ACME_EMAIL: "ops@shop.example",
      ACME_STAGING: "false",
    });
    const http = (cfg.providers as { http: { headers: { Authorization: string } } }).http;
    expect(http.headers.Authorization).toBe("Bearer tok123");
    expect(acmeOf(cfg)).toEqual({
      letsencrypt: expect.objectContaining({ email: "ops@shop.example", storage: "/letsencrypt/acme.json" }),
      "letsencrypt-dns": expect.objectContaining({ email: "ops@shop.example", storage: "/letsencrypt/acme-dns.json" }),
    });
    for (const acme of Object.values(acmeOf(cfg))) {
      expect(acme.caServer).toBeUndefined(); // Traefik's default: Let's Encrypt production
    }
  });

  it("ACME_STAGING=true: every resolver on the staging CA, with storage files of its own", () => {
    const cfg = traefikStaticConfig({ PROVIDER_TOKEN: "tok123", ACME_EMAIL: "ops@shop.example", ACME_STAGING: "true" });
    const staging = "https://acme-staging-v02.api.letsencrypt.org/directory";
    expect(acmeOf(cfg)).toEqual({
      letsencrypt: expect.objectContaining({ caServer: staging, storage: "/letsencrypt/acme-staging.json" }),
      "letsencrypt-dns": expect.objectContaining({ caServer: staging, storage: "/letsencrypt/acme-dns-staging.json" }),
    });
  });

  it("two router instances: the same secrets, from .env (required), and the same rendered fallback URL", () => {
    const a = COMPOSE.services["obiente-router"]?.environment ?? {};
    const b = COMPOSE.services["obiente-router-2"]?.environment ?? {};
    const { PROXY_HOST: hostA, ...restA } = a;
    const { PROXY_HOST: hostB, ...restB } = b;
    expect(restA).toEqual(restB); // everything that shapes the rendered config is equal
    expect(hostA).not.toBe(hostB);
    for (const key of ["FALLBACK_PROXY_SECRET", "CERT_ENCRYPTION_KEY", "ADMIN_TOKEN", "PROVIDER_TOKEN"]) {
      expect(restA[key]).toMatch(new RegExp(`^\\$\\{${key}:\\?`)); // compose refuses to start without it
    }
    const env = readFileSync(join(ROOT, "examples", ".env.example"), "utf8");
    for (const key of ["FALLBACK_PROXY_SECRET", "CERT_ENCRYPTION_KEY", "ADMIN_TOKEN", "PROVIDER_TOKEN", "ACME_EMAIL"]) {
      expect(env).toMatch(new RegExp(`^${key}=`, "m"));
    }
    expect(env).toMatch(/^ACME_STAGING=/m);
  });
});
