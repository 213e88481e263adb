/**
 * Turns any id into a Traefik-safe name: lower-case `[a-z0-9-]`, no leading/trailing or doubled dashes.
 * `"api.example.com /v1"` → `"api-example-com-v1"`. Names never contain `@` (Traefik's provider separator).
 */
export function normalize(raw: string): string {
  const slug = raw
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "");
  return slug.length > 0 ? slug : "x";
}

/**
 * Base name of everything rendered for one route: `<deployment>--<route>`. Ids are checked by `checkId`, so each
 * slug has no `--` and the pair maps back to exactly one route.
 */
export function routeName(route: { id: string; deploymentId: string }): string {
  return `${slug(route.deploymentId)}--${slug(route.id)}`;
}

/**
 * A deployment's part of every name it renders: `<deployment>` is its service, `<deployment>--…` everything else.
 * All names of one deployment are therefore one contiguous run in name order (slugs hold no `--`), which is what
 * lets the served document be joined from per-deployment fragments (src/render/fragments.ts).
 */
export function deploymentSlug(deploymentId: string): string {
  return slug(deploymentId);
}

/**
 * A deployment's service: its slug, or `<slug>--service` when the slug is all digits. JavaScript orders
 * integer-like object keys before all others, so a service named `42` would break the document's name order
 * (JSON.stringify follows insertion order for every other key).
 */
export function deploymentServiceName(deploymentId: string): string {
  const s = slug(deploymentId);
  return /^[0-9]+$/.test(s) ? `${s}--service` : s;
}

/** normalize() for ids that passed checkId (lower-case alphanumerics joined by `_`): the same result, faster. */
function slug(id: string): string {
  return /^[a-z0-9_]+$/.test(id) ? id.replaceAll("_", "-") : normalize(id);
}

/** Name of the router on the plain-HTTP entry point that redirects an HTTPS route. */
export function redirectRouterName(base: string): string {
  return `${base}--to-https`;
}

/** Name of the router on the TLS entry point that sends a plain-HTTP route's HTTPS requests back to http://. */
export function toHttpRouterName(base: string): string {
  return `${base}--to-http`;
}

/** The fallback proxy's headers middleware for a route's deployment: `<deployment>--least-cpu`, one per deployment. */
export function leastCpuMiddlewareName(base: string): string {
  return `${base.split("--")[0]}--least-cpu`;
}

export const REDIRECT_TO_HTTPS = "obiente-redirect-to-https";
export const REDIRECT_TO_HTTP = "obiente-redirect-to-http";

/** Request headers Traefik sets for the fallback proxy (see src/proxy): which deployment, and proof of origin. */
export const DEPLOYMENT_HEADER = "X-Obiente-Deployment";
export const PROXY_SECRET_HEADER = "X-Obiente-Proxy-Secret";
