import { StoredGeo } from "./geo-config.js";
import { StoredResilience } from "./resilience-config.js";
import { StoredSplit } from "./split-config.js";

/** A deployment's validated traffic settings (deployment_traffic); each part unset when not configured. */
export interface DeploymentTraffic {
  split?: StoredSplit;
  geo?: StoredGeo;
  resilience?: StoredResilience;
}

/**
 * Parses each deployment's stored traffic settings once (parseTraffic). `null` marks a row that does not validate: its routes are
 * skipped (fail closed, like invalid middlewares), never served without the settings.
 */
export function parsedTraffic(raw: ReadonlyMap<string, unknown> | undefined): Map<string, DeploymentTraffic | null> {
  const out = new Map<string, DeploymentTraffic | null>();
  for (const [dep, value] of raw ?? []) {
    out.set(dep, parseTraffic(value));
  }
  return out;
}

/** One deployment's stored traffic settings, validated; `null` when the row does not validate. */
export function parseTraffic(value: unknown): DeploymentTraffic | null {
  const row = (value ?? {}) as { split?: unknown; geo?: unknown; resilience?: unknown };
  const t: DeploymentTraffic = {};
  let ok = true;
  if (row.split != null) {
    const r = StoredSplit.safeParse(row.split);
    ok &&= r.success;
    if (r.success) {
      t.split = r.data;
    }
  }
  if (row.geo != null) {
    const r = StoredGeo.safeParse(row.geo);
    ok &&= r.success;
    if (r.success) {
      t.geo = r.data;
    }
  }
  if (row.resilience != null) {
    const r = StoredResilience.safeParse(row.resilience);
    ok &&= r.success;
    if (r.success) {
      t.resilience = r.data;
    }
  }
  return ok ? t : null;
}
