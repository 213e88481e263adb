import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { afterEach, describe, expect, it } from "vitest";
import { checkedPlan, diffFolder, exportToFolder, type FileExportOptions } from "../../src/export/file-export.js";
import { ExportInvalid } from "../../src/export/file-layout.js";
import { ForeignFile, writeExport } from "../../src/export/file-writer.js";
import { decodeExported } from "../../src/export/traefik-check.js";
import { traefikSchemaProblems } from "../../src/export/traefik-schema.js";
import { deploymentSlug } from "../../src/render/names.js";
import type { TraefikDocument } from "../../src/render/types.js";
import { PROXY_SECRET, richConfig, traefikReads } from "../fixtures/export-config.js";
import { makeCert, pemBody } from "../helpers/certs.js";

const cert = makeCert({ sans: ["shop.example.com"] });
const base = richConfig(cert);
const dirs: string[] = [];

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "obiente-export-"));
  dirs.push(d);
  return d;
}

afterEach(() => {
  for (const d of dirs.splice(0)) {
    rmSync(d, { recursive: true, force: true });
  }
});

type Mutable = { http: Record<string, Record<string, Record<string, unknown>>> };

/** Names a deployment renders: its service (its slug) and everything `<slug>--…`. */
const ownedBy = (id: string) => (name: string) =>
  name === deploymentSlug(id) || name.startsWith(`${deploymentSlug(id)}--`);

/** The rich config with dep-a's servers changed (one file changes per layout), and dep-b dropped when asked. */
function variant(i: number, dropB = false): TraefikDocument {
  const cfg = structuredClone(base) as unknown as Mutable;
  const services = cfg.http.services ?? {};
  for (const name of Object.keys(services).filter(ownedBy("dep_a"))) {
    services[name] = {
      loadBalancer: { passHostHeader: true, servers: [{ url: `http://10.1.${i >> 8}.${i & 255}:3000` }] },
    };
  }
  if (dropB) {
    for (const table of Object.values(cfg.http)) {
      for (const name of Object.keys(table).filter(ownedBy("dep_b"))) {
        delete table[name];
      }
    }
  }
  return cfg as unknown as TraefikDocument;
}

const opts = (dir: string, over: Partial<FileExportOptions> = {}): FileExportOptions => ({
  dir,
  format: "yaml",
  layout: "per-deployment",
  secrets: "files",
  ...over,
});

const mtimes = (dir: string) => Object.fromEntries(readdirSync(dir).map((n) => [n, statSync(join(dir, n)).mtimeMs]));

// Reads every Traefik-loaded file of the folder in a tight loop on another thread (real concurrency with the
// writer), and posts each distinct text it saw.
const READER = `
const { parentPort, workerData } = require("node:worker_threads");
const fs = require("node:fs");
const path = require("node:path");
const stop = new Int32Array(workerData.stop);
const seen = new Set();
let reads = 0;
while (Atomics.load(stop, 0) === 0) {
  for (const name of fs.readdirSync(workerData.dir)) {
    if (!/\\.(ya?ml|toml)$/.test(name)) continue;
    let text;
    try { text = fs.readFileSync(path.join(workerData.dir, name), "utf8"); } catch { continue; } // removed meanwhile
    reads++;
    if (!seen.has(text)) { seen.add(text); parentPort.postMessage({ name, text }); }
  }
}
parentPort.postMessage({ done: reads });
`;

describe("file export: writing the folder", () => {
  it("a reader polling the folder during 1,000 rapid changes only ever sees complete, valid files", async () => {
    const dir = tempDir();
    const o = opts(dir);
    await exportToFolder(variant(0), o);
    const stop = new SharedArrayBuffer(4);
    const worker = new Worker(READER, { eval: true, workerData: { dir, stop } });
    const seen: { name: string; text: string }[] = [];
    let reads = 0;
    const finished = new Promise<void>((resolve) => {
      worker.on("message", (m: { name?: string; text?: string; done?: number }) => {
        if (m.done !== undefined) {
          reads = m.done;
          resolve();
        } else if (m.name !== undefined && m.text !== undefined) {
          seen.push({ name: m.name, text: m.text });
        }
      });
    });
    const published = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const plan = checkedPlan(variant(i, i % 100 >= 50), o); // dep-b's file goes and comes back every 50 changes
      for (const text of plan.files.values()) {
        published.add(text);
      }
      await writeExport(plan, { dir, secretsDir: join(dir, ".secrets"), fileMode: 0o644 });
    }
    Atomics.store(new Int32Array(stop), 0, 1);
    await finished;
    await worker.terminate();
    expect(reads).toBeGreaterThan(1000);
    expect(seen.length).toBeGreaterThan(50); // the reader did catch many versions while they changed
    for (const { name, text } of seen) {
      expect(published.has(text), `${name} was read half-written`).toBe(true);
      expect(traefikSchemaProblems(decodeExported(text, "yaml"))).toEqual([]);
    }
  }, 120_000);

  it("a hand-written file survives, also one whose name looks like ours; one in the way stops the export", async () => {
    const dir = tempDir();
    writeFileSync(join(dir, "custom.yml"), "http:\n  middlewares:\n    mine:\n      compress: {}\n");
    writeFileSync(join(dir, "obiente-dep-zzz.yml"), "# hand-written\n");
    await exportToFolder(variant(1), opts(dir));
    await exportToFolder(variant(2, true), opts(dir)); // dep-b's file goes: ours, stale
    expect(readFileSync(join(dir, "custom.yml"), "utf8")).toContain("mine:");
    expect(readFileSync(join(dir, "obiente-dep-zzz.yml"), "utf8")).toBe("# hand-written\n");
    expect(existsSync(join(dir, "obiente-dep-b.yml"))).toBe(false);

    const other = tempDir();
    writeFileSync(join(other, "obiente.yml"), "http: {}\n");
    await expect(exportToFolder(variant(1), opts(other, { layout: "single" }))).rejects.toThrow(ForeignFile);
    expect(readdirSync(other)).toEqual(["obiente.yml"]); // nothing written, not even the secrets
    expect(readFileSync(join(other, "obiente.yml"), "utf8")).toBe("http: {}\n");
  });

  it("a second run on the same state writes nothing (mtimes unchanged); a change rewrites only its file", async () => {
    const dir = tempDir();
    const first = await exportToFolder(variant(1), opts(dir));
    expect(first.written.length).toBeGreaterThan(4);
    const before = mtimes(dir);
    const secretsBefore = mtimes(join(dir, ".secrets"));
    await new Promise((r) => setTimeout(r, 20)); // a rewrite would show as a later mtime
    const second = await exportToFolder(variant(1), opts(dir));
    expect(second.written).toEqual([]);
    expect(second.removed).toEqual([]);
    expect(mtimes(dir)).toEqual(before);
    expect(mtimes(join(dir, ".secrets"))).toEqual(secretsBefore);
    const third = await exportToFolder(variant(2), opts(dir));
    expect(third.written).toEqual(["obiente-dep-a.yml"]);
  });

  it("switching the layout removes the old layout's files", async () => {
    const dir = tempDir();
    await exportToFolder(variant(1), opts(dir, { layout: "single" }));
    expect(readdirSync(dir).filter((n) => n.endsWith(".yml"))).toEqual(["obiente.yml"]);
    await exportToFolder(variant(1), opts(dir));
    expect(
      readdirSync(dir)
        .filter((n) => n.endsWith(".yml"))
        .sort(),
    ).toEqual(["obiente--shared.yml", "obiente-dep-a.yml", "obiente-dep-b.yml", "obiente-dep-c.yml"]);
  });

  it("secrets files: 0600 key files in .secrets (git-ignored), no key or proxy secret in the loaded files", async () => {
    const dir = tempDir();
    await exportToFolder(variant(1), opts(dir));
    const secrets = join(dir, ".secrets");
    expect(statSync(secrets).mode & 0o777).toBe(0o700);
    expect(readFileSync(join(secrets, ".gitignore"), "utf8")).toBe("*\n");
    const keyFiles = readdirSync(secrets).filter((n) => /^cert-[0-9a-f]{16}\.(crt|key)$/.test(n));
    expect(keyFiles).toHaveLength(2);
    for (const n of keyFiles) {
      expect(statSync(join(secrets, n)).mode & 0o777).toBe(0o600);
    }
    const loaded = readdirSync(dir).filter((n) => n.endsWith(".yml"));
    for (const n of loaded) {
      const text = readFileSync(join(dir, n), "utf8");
      expect(statSync(join(dir, n)).mode & 0o777).toBe(0o644);
      expect(text).not.toContain("PRIVATE KEY");
      expect(text).not.toContain(pemBody(cert.keyPem).slice(64, 100));
      expect(text).not.toContain(PROXY_SECRET);
    }
    // What Traefik loads, with its environment set and the key files read by path, is the rendered config.
    const env = { OBIENTE_FALLBACK_PROXY_SECRET: PROXY_SECRET };
    const shared = traefikReads(readFileSync(join(dir, "obiente--shared.yml"), "utf8"), "yaml", env);
    expect((shared as { tls: unknown }).tls).toEqual(base.tls);
  });

  it("secrets inline: config files are 0600; switching from files removes the old key files", async () => {
    const dir = tempDir();
    await exportToFolder(variant(1), opts(dir));
    await exportToFolder(variant(1), opts(dir, { secrets: "inline" }));
    for (const n of readdirSync(dir).filter((f) => f.endsWith(".yml"))) {
      expect(statSync(join(dir, n)).mode & 0o777).toBe(0o600);
    }
    expect(readdirSync(join(dir, ".secrets")).filter((n) => n.startsWith("cert-"))).toEqual([]);
    await exportToFolder(variant(1), opts(dir, { secrets: "env" }));
    const all = readdirSync(dir)
      .filter((f) => f.endsWith(".yml"))
      .map((f) => readFileSync(join(dir, f), "utf8"))
      .join("");
    expect(all).toMatch(/keyFile: \{\{ env "OBIENTE_TLS_KEY_[0-9A-F]{16}" \| toJson \}\}/);
    expect(all).not.toContain("PRIVATE KEY");
  });

  it("an invalid render writes nothing", async () => {
    const dir = tempDir();
    const bad = structuredClone(base) as unknown as Mutable;
    const router = Object.values(bad.http.routers ?? {})[0];
    if (router) {
      router.entryPoints = "web"; // a string where Traefik wants a list
    }
    await expect(exportToFolder(bad as unknown as TraefikDocument, opts(dir))).rejects.toThrow(ExportInvalid);
    expect(readdirSync(dir)).toEqual([]);
  });

  it("--check: empty diff when the folder matches, a unified diff naming each changed file otherwise", async () => {
    const dir = tempDir();
    expect(await diffFolder(variant(1), opts(dir))).toContain("+++ b/obiente-dep-a.yml"); // empty folder: all new
    await exportToFolder(variant(1), opts(dir));
    expect(await diffFolder(variant(1), opts(dir))).toBe("");
    const diff = await diffFolder(variant(3, true), opts(dir));
    expect(diff).toContain("--- a/obiente-dep-a.yml\n+++ b/obiente-dep-a.yml\n@@ ");
    expect(diff).toMatch(/^-\s+- url: http:\/\/10\.1\.0\.1:3000$/m);
    expect(diff).toMatch(/^\+\s+- url: http:\/\/10\.1\.0\.3:3000$/m);
    expect(diff).toContain("--- a/obiente-dep-b.yml\n+++ /dev/null");
    expect(readdirSync(dir).filter((n) => n.endsWith(".yml"))).toHaveLength(4); // --check wrote nothing
  });

  it("--check never prints key material or the proxy secret, even with inline secrets", async () => {
    const dir = tempDir();
    const diff = await diffFolder(variant(1), opts(dir, { secrets: "inline", layout: "single" }));
    expect(diff).toContain("+++ b/obiente.yml");
    expect(diff).not.toContain(PROXY_SECRET);
    expect(diff).not.toContain("PRIVATE KEY");
    for (const line of pemBody(cert.keyPem).match(/.{1,64}/g) ?? []) {
      expect(diff).not.toContain(line);
    }
    expect(diff).toContain("[PEM data hidden]");
  });
});
