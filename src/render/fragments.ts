import { canonical } from "./canonical.js";
import { fastParts } from "./fast-fragment.js";
import { deploymentSlug } from "./names.js";
import { type DeploymentInput, type RenderContext, renderDeployment } from "./render.js";
import type { Middleware, RenderWarning, ServersTransport } from "./types.js";

// The served document as fragments: what one deployment contributes, already serialized. Every name a deployment
// renders is its slug or starts with `<slug>--` (src/render/names.ts), so in each map of the document (middlewares,
// routers, serversTransports, services) a deployment's entries are one contiguous run, and the map is the sorted
// concatenation of those runs plus the few entries deployments share (the redirect middlewares). That is what lets
// src/provider/served-document.ts re-serialize only the deployments that changed. Pure.

/** The document's maps, in the order JSON.stringify writes them (keys are alphabetical, see render.ts). */
export const SECTIONS = ["middlewares", "routers", "serversTransports", "services"] as const;
export type Section = (typeof SECTIONS)[number];

/** A shared entry: its name and its serialized value. */
export type SharedEntry = readonly [name: string, json: string];

/** One deployment, rendered and serialized. */
export interface Fragment {
  readonly id: string;
  /** Where its run sorts among other runs and shared names (deploymentKey in render.ts). */
  readonly key: string;
  /** Per section, its own entries as they appear inside the map: `"name":{…},"name2":{…}` ("" when none). */
  readonly own: readonly [string, string, string, string];
  /** Per section, entries outside its run (identical wherever they appear): name and serialized value. */
  readonly shared: readonly [
    readonly SharedEntry[],
    readonly SharedEntry[],
    readonly SharedEntry[],
    readonly SharedEntry[],
  ];
  readonly routerNames: readonly string[];
  readonly serviceCount: number;
  readonly routes: number;
  readonly warnings: readonly RenderWarning[];
  readonly hasSecrets: boolean;
}

const NONE: readonly SharedEntry[] = [];
const NO_WARNINGS: readonly RenderWarning[] = [];

/**
 * Renders one deployment and serializes it as JSON.stringify would inside the maps: the common shape straight to
 * text (src/render/fast-fragment.ts: ~4× cheaper, and no object tree for the GC), anything else through
 * render.ts `renderDeployment`. Both give the same bytes (test/unit/served-document.test.ts).
 */
export function fragmentOf(dep: DeploymentInput, key: string, ctx: RenderContext): Fragment {
  const fast = fastParts(dep, ctx);
  if (fast) {
    return {
      id: dep.id,
      key,
      own: ["", fast.routers, "", fast.services],
      shared: [fast.middlewares, NONE, NONE, NONE],
      routerNames: fast.routerNames,
      serviceCount: fast.serviceCount,
      routes: fast.routes,
      warnings: NO_WARNINGS,
      hasSecrets: false,
    };
  }
  return genericFragmentOf(dep, key, ctx);
}

/** Any deployment, through `renderDeployment`'s object tree (exported for the bench comparing both paths). */
export function genericFragmentOf(dep: DeploymentInput, key: string, ctx: RenderContext): Fragment {
  const part = renderDeployment(dep, ctx);
  const slug = deploymentSlug(dep.id);
  const prefix = `${slug}--`;
  // Middlewares and transports a deployment owns are all `<slug>--…`; a bare name (the redirect middlewares) is
  // shared even when it happens to equal a slug (deployment `obiente_redirect_to_http`).
  const mine = (name: string) => name.startsWith(prefix);
  const [mwOwn, mwShared] = splitMap(part.middlewares, mine);
  const [trOwn, trShared] = splitMap(part.transports, mine);
  const routers = inner(JSON.stringify(part.routers));
  const services = inner(JSON.stringify(part.services));
  return {
    id: dep.id,
    key,
    own: [mwOwn, routers, trOwn, services],
    shared: [mwShared, NONE, trShared, NONE],
    routerNames: Object.keys(part.routers),
    serviceCount: Object.keys(part.services).length,
    routes: part.routes,
    warnings: part.warnings,
    hasSecrets: part.hasSecrets,
  };
}

/** `{…}` → `…`: a map's entries without its braces. */
function inner(json: string): string {
  return json.length <= 2 ? "" : json.slice(1, -1);
}

/** A small map (middlewares, transports) split into the deployment's own run and shared entries, values canonical. */
function splitMap(
  m: ReadonlyMap<string, Middleware | ServersTransport> | undefined,
  mine: (name: string) => boolean,
): [string, readonly SharedEntry[]] {
  if (!m || m.size === 0) {
    return ["", NONE];
  }
  const own: Record<string, unknown> = {};
  const shared: SharedEntry[] = [];
  for (const name of [...m.keys()].sort()) {
    const value = canonical(m.get(name));
    if (mine(name)) {
      own[name] = value;
    } else {
      shared.push([name, JSON.stringify(value)]);
    }
  }
  return [inner(JSON.stringify(own)), shared];
}

/** A shared entry as it appears inside its map. */
export function sharedText(entry: SharedEntry): string {
  return `${JSON.stringify(entry[0])}:${entry[1]}`;
}
