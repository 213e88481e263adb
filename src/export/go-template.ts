// Traefik's file provider runs every file through Go's text/template before decoding it
// (pkg/provider/file/file.go CreateConfiguration: template.New(…).Funcs(sprig.TxtFuncMap() + normalize, split),
// Parse, Execute). With the default delimiters only `{{` starts an action (text/template/parse/lex.go lexText), so a
// value holding `{{` would be executed, or fail the parse and with it the whole directory (collectFileConfigs returns
// the error: Traefik keeps its previous configuration). Pure.

/** `{{` as a Go template action that prints it: `{{"{{"}}` (a string-literal pipeline, text/template §Arguments). */
const ESCAPED_OPEN = '{{"{{"}}';

/**
 * Makes serialized text reach Traefik literally: every `{{` becomes an action printing `{{`. Matches are taken
 * left to right without overlap, so `{{{` → `{{"{{"}}{` and no new `{{` is formed at a seam (the replacement
 * starts with `{{` only where the input had one, and a lone `{` before a match would itself have started it).
 */
export function escapeGoTemplate(text: string): string {
  return text.replaceAll("{{", ESCAPED_OPEN);
}

/**
 * The one action the exporter writes on purpose: a variable of Traefik's environment, as a JSON string. sprig's
 * `env` is os.Getenv (Masterminds/sprig v3.2.3 functions.go genericMap, which TxtFuncMap copies; Traefik's go.mod
 * pins v3.2.3) and `toJson` is json.Marshal: a quoted string whose escapes (\" \\ \n \r \t \uXXXX) are valid in a
 * YAML double-quoted scalar and a TOML basic string alike. An unset variable gives `""`.
 */
export function envAction(name: string): string {
  if (!/^[A-Z_][A-Z0-9_]*$/.test(name)) {
    throw new Error(`not an environment variable name: ${name}`);
  }
  return `{{ env "${name}" | toJson }}`;
}

const ACTION_RE = /^\{\{(?:"((?:[^"\\]|\\.)*)"|\s*env\s+"([A-Z_][A-Z0-9_]*)"\s*\|\s*toJson\s*)\}\}/;

/**
 * Executes text the way Go's text/template does for the two actions above (a string literal; `env "X" | toJson`),
 * with `env` standing in for Traefik's environment. Any other action throws: the exporter never writes one, so
 * finding one means escaping failed. Used to check, before writing, that Traefik will read what was meant.
 */
export function expandGoTemplate(text: string, env: (name: string) => string | undefined): string {
  let out = "";
  let i = 0;
  for (;;) {
    const open = text.indexOf("{{", i);
    if (open < 0) {
      return out + text.slice(i);
    }
    out += text.slice(i, open);
    const m = ACTION_RE.exec(text.slice(open));
    if (!m) {
      throw new Error(
        `unexpected Go template action at offset ${open}: ${JSON.stringify(text.slice(open, open + 40))}`,
      );
    }
    if (m[2] !== undefined) {
      out += JSON.stringify(env(m[2]) ?? "");
    } else {
      // A Go interpreted string literal; the escaper only writes `"{{"`, which has no escapes.
      out += JSON.parse(`"${m[1] ?? ""}"`) as string;
    }
    i = open + m[0].length;
  }
}
