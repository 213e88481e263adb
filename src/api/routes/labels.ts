import { contracts } from "../contract.js";
import type { Deps } from "../deps.js";

/** Traefik Docker/Swarm labels equivalent to a deployment's routers, services and middlewares (issue 12). */
export function labelsApi(_deps: Deps) {
  return contracts();
}
