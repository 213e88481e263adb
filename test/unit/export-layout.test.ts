import { readFileSync } from "node:fs";
import { parse as parseToml } from "smol-toml";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { checkedPlan } from "../../src/export/file-export.js";
import {
  type ExportFormat,
  ExportInvalid,
  type ExportLayout,
  OWNED_MARKER,
  planExport,
  type SecretsMode,
} from "../../src/export/file-layout.js";
import { decodeExported, planProblems } from "../../src/export/traefik-check.js";
import { traefikSchemaProblems } from "../../src/export/traefik-schema.js";
import { deploymentServiceName, deploymentSlug } from "../../src/render/names.js";
import { renderDynamicConfig } from "../../src/render/render.js";
import type { TraefikDocument } from "../../src/render/types.js";
import { PROXY_SECRET, planDocs, richConfig, richInput, traefikReads, union } from "../fixtures/export-config.js";
import { shuffled } from "../fixtures/rows.js";
import { makeCert, pemBody } from "../helpers/certs.js";
import { traefikSchemaErrors } from "../helpers/traefik-schema.js";

const SECRETS_PATH = "/etc/traefik/dynamic/.secrets";
/** traefik/traefik.file-provider.yml, the static config shipped for the export. */
const FILE_PROVIDER_STATIC = parseYaml(
  readFileSync(new URL("../../traefik/traefik.file-provider.yml", import.meta.url), "utf8"),
) as unknown;
const FORMATS: ExportFormat[] = ["yaml", "toml"];
const LAYOUTS: ExportLayout[] = ["single", "per-deployment"];
const MODES: SecretsMode[] = ["files", "env", "inline"];
const cert = makeCert({ sans: ["shop.example.com"] });
const config = richConfig(cert);
/**
 * 24-character runs of the key's base64 body that only the private key has: past the ASN.1 header every P-256
 * key shares, and not in the certificate (a PKCS#8 EC key embeds its public key, which the certificate holds too).
 */
const privateFragments = (() => {
  const body = pemBody(cert.keyPem);
  const certBody = pemBody(cert.certPem);
  const runs: string[] = [];
  for (let i = 48; i + 24 <= body.length; i += 4) {
    const run = body.slice(i, i + 24);
    if (!certBody.includes(run)) {
      runs.push(run);
    }
  }
  return runs;
})();

function plan(format: ExportFormat, layout: ExportLayout, secrets: SecretsMode, cfg: TraefikDocument = config) {
  return checkedPlan(cfg, { dir: "/unused", format, layout, secrets, secretsPath: SECRETS_PATH });
}

/** What Traefik loads from the plan with the environment the operator gives it and the secret files mounted. */
function whatTraefikSees(p: ReturnType<typeof plan>, format: ExportFormat) {
  const env: Record<string, string> = { OBIENTE_FALLBACK_PROXY_SECRET: PROXY_SECRET };
  for (const name of p.env.filter((n) => n.startsWith("OBIENTE_TLS_KEY_"))) {
    env[name] = cert.keyPem;
  }
  const read = (path: string) =>
    path.startsWith(`${SECRETS_PATH}/`) ? p.secrets.get(path.slice(SECRETS_PATH.length + 1)) : undefined;
  return union([...p.files.values()].map((text) => traefikReads(text, format, env, read)));
}

describe("file export layout", () => {
  for (const format of FORMATS) {
    for (const layout of LAYOUTS) {
      for (const secrets of MODES) {
        it(`${format}, ${layout}, secrets ${secrets}: Traefik reads exactly the rendered config, each file valid`, () => {
          const p = plan(format, layout, secrets);
          // Together the files are the rendered config, once Traefik has its environment and the secret files.
          expect(whatTraefikSees(p, format)).toEqual(config);
          const opts = { provider: "file" as const, staticConfig: FILE_PROVIDER_STATIC };
          expect(traefikSchemaErrors(whatTraefikSees(p, format), opts)).toEqual([]);
          for (const [name, text] of p.files) {
            expect(name).toMatch(/^obiente(-[a-z0-9-]+)?\.(yml|toml)$/);
            expect(text.startsWith(OWNED_MARKER)).toBe(true);
            // Each file alone is a document Traefik's decoder accepts (it decodes each file separately).
            expect(traefikSchemaProblems(decodeExported(text, format))).toEqual([]);
          }
        });
      }
    }
  }

  it("per-deployment: one file per deployment plus a shared one; every name in exactly one file", () => {
    const p = plan("yaml", "per-deployment", "files");
    expect([...p.files.keys()]).toEqual([
      "obiente--shared.yml",
      "obiente-dep-a.yml",
      "obiente-dep-b.yml",
      "obiente-dep-c.yml",
    ]);
    const docs = planDocs(p, "yaml") as { http?: Record<string, Record<string, unknown>>; tls?: unknown }[];
    const names = docs.map((d) => Object.values(d.http ?? {}).flatMap((t) => Object.keys(t)));
    // union() throws on a name defined twice; the union equals the single layout's document.
    expect(union(docs)).toEqual(planDocs(plan("yaml", "single", "files"), "yaml")[0]);
    const [shared, a, b, c] = names;
    expect(shared?.sort()).toEqual(["obiente-redirect-to-http", "obiente-redirect-to-https"]);
    expect(docs[0]?.tls).toBeDefined(); // certificates live in the shared file only
    for (const [i, dep] of [a, b, c].entries()) {
      const slug = deploymentSlug(`dep_${"abc"[i]}`);
      expect(dep?.length).toBeGreaterThan(0);
      // The deployment's service is named after it; everything else starts with `<slug>--`.
      expect(dep).toContain(deploymentServiceName(`dep_${"abc"[i]}`));
      expect(dep?.every((n) => n === slug || n.startsWith(`${slug}--`))).toBe(true);
    }
  });

  it("same config in any row order: byte-identical files", () => {
    const input = richInput(cert);
    for (const seed of [1, 2, 3]) {
      const again = renderDynamicConfig({ ...input, routes: shuffled(input.routes, seed) }).config;
      for (const layout of LAYOUTS) {
        expect(plan("toml", layout, "files", again).files).toEqual(plan("toml", layout, "files").files);
      }
    }
  });

  it("TOML files parse back (smol-toml) to the same objects as the YAML ones", () => {
    for (const layout of LAYOUTS) {
      const yaml = planDocs(plan("yaml", layout, "inline"), "yaml");
      const toml = [...plan("toml", layout, "inline").files.values()].map((t) => parseToml(t));
      expect(toml).toEqual(yaml);
    }
  });

  it("files and env modes: no key material and no proxy secret in any file Traefik loads", () => {
    expect(privateFragments.length).toBeGreaterThan(5);
    for (const secrets of ["files", "env"] as const) {
      for (const format of FORMATS) {
        const p = plan(format, "per-deployment", secrets);
        const all = [...p.files.values()].join("\n");
        expect(all).not.toContain("PRIVATE KEY");
        expect(all).not.toContain(PROXY_SECRET);
        for (const fragment of privateFragments) {
          expect(all).not.toContain(fragment);
        }
        expect(all).toContain('{{ env "OBIENTE_FALLBACK_PROXY_SECRET" | toJson }}');
        expect(p.env).toContain("OBIENTE_FALLBACK_PROXY_SECRET");
      }
    }
    const files = plan("yaml", "single", "files");
    expect([...files.secrets.values()].sort()).toEqual([cert.certPem, cert.keyPem].sort());
    expect([...files.secrets.keys()].every((n) => /^cert-[0-9a-f]{16}\.(crt|key)$/.test(n))).toBe(true);
    const env = plan("yaml", "single", "env");
    expect(env.secrets.size).toBe(0);
    expect(env.env.some((n) => /^OBIENTE_TLS_KEY_[0-9A-F]{16}$/.test(n))).toBe(true);
  });

  it("inline mode keeps everything in the files", () => {
    const p = plan("yaml", "single", "inline");
    expect(p.secrets.size).toBe(0);
    expect(p.env).toEqual([]);
    expect([...p.files.values()].join("")).toContain(PROXY_SECRET);
  });

  it("nothing to route: a single empty document (Traefik applies it), or only the shared file", () => {
    const empty = renderDynamicConfig({ ...richInput(cert), routes: [] }).config;
    expect([...plan("yaml", "single", "files", empty).files.keys()]).toEqual(["obiente.yml"]);
    expect([...plan("toml", "per-deployment", "files", empty).files.keys()]).toEqual(["obiente--shared.toml"]);
    expect(decodeExported(plan("toml", "single", "files", empty).files.get("obiente.toml") ?? "", "toml")).toEqual({});
  });

  it("refuses an invalid config, and a value posing as an env placeholder", () => {
    const broken = structuredClone(config) as unknown as { http: { routers: Record<string, Record<string, unknown>> } };
    const first = Object.values(broken.http.routers)[0];
    if (first) {
      first.unknownField = true; // Traefik's decoder rejects the whole document for an unknown key
    }
    expect(() => plan("yaml", "single", "files", broken as unknown as TraefikDocument)).toThrow(ExportInvalid);
    expect(() => plan("yaml", "single", "files", broken as unknown as TraefikDocument)).toThrow(
      /unknownField|additional/,
    );
    const posing = structuredClone(config) as unknown as { http: { routers: Record<string, { rule: string }> } };
    const r = Object.values(posing.http.routers)[0];
    if (r) {
      r.rule = "Host(`__OBIENTE_ENV_HOME__`)";
    }
    expect(() => plan("yaml", "single", "files", posing as unknown as TraefikDocument)).toThrow(/reserved/);
  });

  it("planProblems flags a name defined in two files", () => {
    const p = planExport(config, { format: "yaml", layout: "per-deployment", secrets: "files", secretsPath: "/s" });
    const [first, second] = [...p.files.keys()];
    p.files.set(second ?? "", p.files.get(first ?? "") ?? "");
    expect(planProblems(config, p, { format: "yaml", secrets: "files" }).join("\n")).toMatch(/also defined in/);
  });

  it("a file for an owner that is not a plain slug gets a hashed, safe name", () => {
    const odd = structuredClone(config) as unknown as { http: { middlewares: Record<string, unknown> } };
    odd.http.middlewares["Ünicode/..--x"] = { stripPrefix: { prefixes: ["/x"] } };
    const p = plan("yaml", "per-deployment", "inline", odd as unknown as TraefikDocument);
    expect([...p.files.keys()].some((n) => /^obiente--h-[0-9a-f]{16}\.yml$/.test(n))).toBe(true);
  });

  it("hard cases stay valid in TOML and YAML: quotes, backslashes, unicode and newlines in values", () => {
    const tricky = structuredClone(config) as unknown as { http: { middlewares: Record<string, unknown> } };
    tricky.http.middlewares["dep-a--tricky"] = {
      headers: { customResponseHeaders: { "X-Q": `a"b\\c'd ünï ${"\u2028"} \t` } },
    };
    for (const format of FORMATS) {
      const p = plan(format, "single", "inline", tricky as unknown as TraefikDocument);
      expect(whatTraefikSees(p, format)).toEqual(tricky);
    }
  });
});
