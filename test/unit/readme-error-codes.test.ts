import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { PROBLEM_CATALOGUE } from "../../src/lib/problem.js";

// The README's "Error codes" list against what the code can answer: the catalogue, and every code a domain error
// carries (Conflict codes, <RESOURCE>_NOT_FOUND from NotFound) or a handler builds with problem("…").
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const README = readFileSync(join(ROOT, "README.md"), "utf8");

function apiSection(markdown: string): string {
  const start = markdown.indexOf("\n## API\n");
  const next = markdown.indexOf("\n## ", start + 1);
  return markdown.slice(start, next < 0 ? undefined : next);
}

function errorCodesList(section: string): string {
  const start = section.indexOf("\n### Error codes\n");
  return start < 0 ? "" : section.slice(start);
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".ts"))
    .map((f) => join(dir, f));
}

/** Codes the source can answer with, found by the shapes that create them. */
function codesInSource(): Set<string> {
  const codes = new Set<string>();
  for (const file of sourceFiles(join(ROOT, "src"))) {
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(/new Conflict\([\s\S]*?"([A-Z][A-Z0-9_]+)"/g)) {
      codes.add(m[1] ?? "");
    }
    for (const m of text.matchAll(/new NotFound\("([a-z]+)"/g)) {
      codes.add(`${(m[1] ?? "").toUpperCase()}_NOT_FOUND`);
    }
    for (const m of text.matchAll(/\b(?:problem|proxyProblem|missing\w*)\(\s*"([A-Z][A-Z0-9_]+)"/g)) {
      codes.add(m[1] ?? "");
    }
  }
  return codes;
}

describe("the README's error codes", () => {
  const list = errorCodesList(apiSection(README));

  it("has an Error codes list at the end of the API section", () => {
    expect(list).not.toBe("");
  });

  it("lists every catalogued code with its status", () => {
    const missing = Object.entries(PROBLEM_CATALOGUE)
      .filter(([code, { status }]) => {
        const row = new RegExp(`\\| ${status} +\\| \`${code}\` +\\|`); // biome pads table cells
        const prose = new RegExp(`\`${code}\` \\(${status}\\b`);
        return !row.test(list) && !prose.test(list);
      })
      .map(([code, { status }]) => `${code} (${status})`);
    expect(missing).toEqual([]);
  });

  it("lists every code the source constructs, catalogued or not", () => {
    const found = codesInSource();
    expect(found.size).toBeGreaterThan(10); // the scan still recognises how codes are made
    const missing = [...found].filter((code) => !list.includes(`\`${code}\``)).sort();
    expect(missing).toEqual([]);
  });
});
