import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

// The fallback proxy stands alone on the request path: it imports render/, db/, health/ and lib/, never the API or
// the config provider (issue 11).
const PROXY_DIR = join(import.meta.dirname, "../../src/proxy");
const FORBIDDEN = /^\.\.\/(api|provider)\//;

/** Every module specifier a file imports or re-exports, statically or dynamically. */
function specifiersOf(source: string): string[] {
  const out: string[] = [];
  for (const m of source.matchAll(/(?:^|\n)\s*(?:import|export)\b[^;]*?\bfrom\s*["']([^"']+)["']/g)) {
    out.push(m[1] as string);
  }
  for (const m of source.matchAll(/(?:^|\n)\s*import\s*["']([^"']+)["']/g)) {
    out.push(m[1] as string);
  }
  for (const m of source.matchAll(/\bimport\(\s*["']([^"']+)["']\s*\)/g)) {
    out.push(m[1] as string);
  }
  return out;
}

describe("src/proxy imports", () => {
  const files = readdirSync(PROXY_DIR).filter((f) => f.endsWith(".ts"));

  it("finds the proxy's modules and reads their imports", () => {
    expect(files).toContain("server.ts");
    expect(specifiersOf(readFileSync(join(PROXY_DIR, "server.ts"), "utf8"))).toContain("./problem.js");
    expect(specifiersOf('import type { A } from "../api/app.js";\nexport { b } from "../provider/x.js";')).toEqual([
      "../api/app.js",
      "../provider/x.js",
    ]);
  });

  it.each(files)("%s imports nothing from src/api/ or src/provider/", (file) => {
    const bad = specifiersOf(readFileSync(join(PROXY_DIR, file), "utf8")).filter((s) => FORBIDDEN.test(s));
    expect(bad).toEqual([]);
  });
});
