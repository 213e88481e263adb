import { parse as parseToml } from "smol-toml";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { planExport } from "../../src/export/file-layout.js";
import { envAction, escapeGoTemplate, expandGoTemplate } from "../../src/export/go-template.js";
import type { TraefikDocument } from "../../src/render/types.js";
import { shuffled } from "../fixtures/rows.js";

/**
 * An independent model of Go text/template execution (text/template/parse/lex.go and exec.go) for templates whose
 * actions are string literals or `env "X" | toJson`: `{{` opens an action anywhere in text; `{{- ` trims the
 * whitespace before it and ` -}}` the whitespace after; `{{/* … *\/}}` is a comment; inside an action a quoted
 * ("…") or raw (`…`) string may hold `}}`. Anything else is a template error, as Traefik would report.
 */
function goExecute(src: string, env: Record<string, string>): string {
  let out = "";
  let i = 0;
  while (i < src.length) {
    const open = src.indexOf("{{", i);
    if (open < 0) {
      out += src.slice(i);
      break;
    }
    out += src.slice(i, open);
    let j = open + 2;
    if (src.startsWith("- ", j) || src.startsWith("-\t", j) || src.startsWith("-\n", j)) {
      out = out.replace(/[ \t\r\n]+$/, "");
      j += 1;
    }
    if (src.startsWith("/*", j)) {
      const end = src.indexOf("*/", j + 2);
      if (end < 0) {
        throw new Error("unclosed comment");
      }
      j = end + 2;
      const close = src.slice(j).match(/^( -)?\}\}/);
      if (!close) {
        throw new Error("comment ends without closing delimiter");
      }
      i = j + close[0].length;
      if (close[1]) {
        i += (src.slice(i).match(/^[ \t\r\n]*/) ?? [""])[0].length;
      }
      continue;
    }
    // Tokens of the action until `}}` outside a string.
    const tokens: string[] = [];
    let trimAfter = false;
    for (;;) {
      if (j >= src.length) {
        throw new Error("unclosed action");
      }
      const rest = src.slice(j);
      const space = rest.match(/^[ \t\r\n]+/);
      if (space) {
        if (rest.slice(space[0].length).startsWith("-}}") && space[0].length > 0) {
          trimAfter = true;
          j += space[0].length + 3;
          break;
        }
        j += space[0].length;
        continue;
      }
      if (rest.startsWith("}}")) {
        j += 2;
        break;
      }
      const tok = rest.match(/^("(?:[^"\\\n]|\\.)*"|`[^`]*`|\||[A-Za-z_][A-Za-z0-9_]*)/);
      if (!tok) {
        throw new Error(`unexpected ${JSON.stringify(rest.slice(0, 10))} in action`);
      }
      tokens.push(tok[0]);
      j += tok[0].length;
    }
    const str = (t: string | undefined) =>
      t?.startsWith('"') ? (JSON.parse(t) as string) : t?.startsWith("`") ? t.slice(1, -1) : undefined;
    if (tokens.length === 1 && str(tokens[0]) !== undefined) {
      out += str(tokens[0]);
    } else if (tokens.length === 4 && tokens[0] === "env" && tokens[2] === "|" && tokens[3] === "toJson") {
      out += JSON.stringify(env[str(tokens[1]) ?? ""] ?? "");
    } else {
      throw new Error(`unsupported action {{${tokens.join(" ")}}}`);
    }
    i = j;
    if (trimAfter) {
      i += (src.slice(i).match(/^[ \t\r\n]*/) ?? [""])[0].length;
    }
  }
  return out;
}

const PIECES = ["{", "}", "{{", "}}", "{{-", "-}}", " ", "\n", '"', "`", "\\", "/*", "*/", "a", "-", "{{/*", "é"];

/** Deterministic strings made of the pieces that matter to Go's lexer. */
function samples(n: number): string[] {
  const out: string[] = [];
  for (let seed = 1; out.length < n; seed++) {
    const parts = shuffled(PIECES, seed).slice(0, 1 + (seed % PIECES.length));
    out.push(parts.join(""));
  }
  return out;
}

describe("Go template escaping", () => {
  it("the model agrees with Go on the cases it must get right", () => {
    expect(goExecute('a{{"{{"}}b', {})).toBe("a{{b");
    expect(goExecute("a  {{- `x` -}}  b", {})).toBe("axb");
    expect(goExecute("a{{/* c */}}b", {})).toBe("ab");
    expect(goExecute('{{ env "K" | toJson }}', { K: 'v"1' })).toBe('"v\\"1"');
    expect(() => goExecute("{{ .Foo }}", {})).toThrow();
    expect(() => goExecute("Host(`{{x`)", {})).toThrow(); // what an unescaped value would do to Traefik
  });

  it("any text, escaped, executes back to itself (model of Go and the exporter's own reader)", () => {
    for (const s of samples(2000)) {
      const escaped = escapeGoTemplate(s);
      expect(goExecute(escaped, {})).toBe(s);
      expect(expandGoTemplate(escaped, () => undefined)).toBe(s);
    }
  });

  it("no raw `{{` survives in an exported file except the escapes and the env actions written on purpose", () => {
    const cfg = {
      http: {
        routers: {
          "dep-a--rt-1": {
            entryPoints: ["web"],
            priority: 1,
            rule: "Host(`a{{b.example.com`)",
            service: "dep-a--rt-1",
          },
        },
        services: { "dep-a--rt-1": { loadBalancer: { servers: [{ url: "http://10.0.0.1:80" }] } } },
        middlewares: {
          "dep-a--least-cpu": {
            headers: { customRequestHeaders: { "X-Obiente-Proxy-Secret": "{{ .Secret }}", "X-T": "{{- x -}}" } },
          },
        },
      },
    } as unknown as TraefikDocument;
    for (const format of ["yaml", "toml"] as const) {
      const plan = planExport(cfg, { format, layout: "single", secrets: "files", secretsPath: "/s" });
      const text = [...plan.files.values()].join("");
      const stripped = text.replaceAll('{{"{{"}}', "").replaceAll(envAction("OBIENTE_FALLBACK_PROXY_SECRET"), "");
      expect(stripped).not.toContain("{{");
      const env = { OBIENTE_FALLBACK_PROXY_SECRET: "{{ .Secret }}" };
      // Executed by the model of Go and decoded, the file is the config (the secret comes back from the env).
      const executed = goExecute(text, env);
      const seen: unknown = format === "yaml" ? parseYaml(executed) : parseToml(executed);
      expect(JSON.parse(JSON.stringify(seen))).toEqual(cfg);
    }
  });
});
