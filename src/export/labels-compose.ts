import { Document } from "yaml";
import type { DeploymentLabels } from "./labels.js";

// The compose form of a deployment's labels: a `labels:` list to paste under a compose service (or a Swarm stack
// service's `deploy:`). Every item is a double-quoted YAML scalar written by the yaml library (quotes, `#`, `: `,
// backslashes and newlines are escaped by it, never by string concatenation), and every `$` is doubled first:
// compose interpolates `$VAR` / `${VAR}` in every value and reads `$$` as a literal `$`
// (https://docs.docker.com/reference/compose-file/interpolation/). Basic-auth hashes and regex replacements
// (`${1}`) hold `$`.

/** Escapes a label for compose interpolation: `$` → `$$`. */
export function composeEscape(item: string): string {
  return item.replaceAll("$", () => "$$");
}

/** The YAML snippet for `?format=compose`; comments list what labels cannot express. Pure. */
export function composeLabels(deploymentId: string, result: DeploymentLabels): string {
  const items = Object.entries(result.labels).map(([key, value]) => composeEscape(`${key}=${value}`));
  const doc = new Document({ labels: items });
  const lines = [
    ` Traefik Docker provider labels for deployment ${deploymentId} (obiente-router).`,
    " Put them on every replica container of the deployment. `$$` is compose's escape for `$`.",
  ];
  if (result.notExpressible.length > 0) {
    lines.push(" Not expressible as labels:");
    for (const n of result.notExpressible) {
      lines.push(` - ${oneLine(n.what)}: ${oneLine(n.why)}`);
    }
  }
  doc.commentBefore = lines.join("\n");
  return doc.toString({ lineWidth: 0, defaultStringType: "QUOTE_DOUBLE", defaultKeyType: "PLAIN" });
}

/** A comment line must stay one line: anything after a newline would be read as YAML. */
function oneLine(text: string): string {
  return text.replace(/[\r\n\u0085\u2028\u2029]+/g, " ");
}
