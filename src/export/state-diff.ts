import { compareStrings } from "../lib/order.js";
import { type FlatHealth, type FlatRoute, type FlatState, NO_HEALTH, TRAFFIC_PARTS } from "./state-model.js";

// Pure: the current state and the desired one (both flat) → what apply would change. Values in the result are
// safe to print: hashes and PEM bundles are abbreviated.

export const STATE_KINDS = [
  "deployment",
  "route",
  "health_check",
  "middlewares",
  "split",
  "geo",
  "resilience",
  "certificate",
] as const;
export type StateKind = (typeof STATE_KINDS)[number];

export interface FieldChange {
  field: string;
  before: unknown;
  after: unknown;
}

export interface StateChange {
  kind: StateKind;
  op: "create" | "update" | "delete";
  /** Deployment id, route `domain` + `path_prefix`, or certificate fingerprint. */
  key: string;
  fields: FieldChange[];
}

/** A route of a deployment the file does not list, claimed by the file. */
export interface StateConflict {
  domain: string;
  path_prefix: string;
  owner_deployment_id: string;
  location: string;
}

export interface StateDiff {
  changes: StateChange[];
  /** What --prune would delete: not in the file, kept. */
  kept: { kind: StateKind; key: string }[];
  conflicts: StateConflict[];
  /** Referenced certificates that are not uploaded, with where the file names them. */
  missing_certificates: { fingerprint_sha256: string; location: string }[];
  summary: { created: number; updated: number; deleted: number };
}

const ROUTE_FIELDS = [
  "deployment",
  "target_port",
  "protocol",
  "load_balancer_algo",
  "ssl_enabled",
  "ssl_cert_resolver",
  "tls_include_apex",
  "primary",
] as const satisfies readonly (keyof FlatRoute)[];

const HEALTH_FIELDS = Object.keys(NO_HEALTH) as (keyof FlatHealth)[];

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** A value fit for a diff: htpasswd hashes and PEM bundles shortened, never printed whole. */
export function displayValue(field: string, value: unknown): unknown {
  if (typeof value === "string" && value.includes("-----BEGIN")) {
    const n = value.match(/-----BEGIN /g)?.length ?? 0;
    return `<PEM, ${n} block(s), ${value.length} bytes>`;
  }
  if (field === "basic_auth" && value !== null && typeof value === "object") {
    const b = value as { users?: unknown };
    const users = Array.isArray(b.users)
      ? b.users.map((l) => (typeof l === "string" ? `${l.split(":")[0]}:${(l.split(":")[1] ?? "").slice(0, 7)}…` : l))
      : b.users;
    return { ...b, users };
  }
  return value;
}

function fieldChanges<T extends object>(
  before: T | undefined,
  after: T | undefined,
  fields: readonly (keyof T & string)[],
): FieldChange[] {
  const out: FieldChange[] = [];
  for (const f of fields) {
    const b = before?.[f] ?? null;
    const a = after?.[f] ?? null;
    if (!same(b, a)) {
      out.push({ field: f, before: displayValue(f, b), after: displayValue(f, a) });
    }
  }
  return out;
}

/** Changes for a part that may be unset on either side (health overrides, middlewares); `empty` is the unset value. */
function partChange(
  kind: StateKind,
  key: string,
  empty: object,
  before: object | undefined,
  after: object | undefined,
  fields: string[],
): StateChange | undefined {
  const b = (before ?? empty) as Record<string, unknown>;
  const a = (after ?? empty) as Record<string, unknown>;
  const changed = fieldChanges(b, a, fields);
  if (changed.length === 0) {
    return undefined;
  }
  const op = same(b, empty) ? "create" : same(a, empty) ? "delete" : "update";
  return { kind, key, op, fields: changed };
}

/**
 * What it takes to make `current` look like `desired`: created / updated (field by field) / deleted per kind.
 * Without `prune` nothing outside the file is deleted (it is listed in `kept`); deployments the file lists are
 * described completely by it (their routes, health overrides and middlewares not in the file are removed).
 */
export function diffState(current: FlatState, desired: FlatState, prune: boolean): StateDiff {
  const changes: StateChange[] = [];
  const kept: StateDiff["kept"] = [];
  const conflicts: StateConflict[] = [];
  const listed = (id: string) => desired.deployments.has(id);
  const sortedKeys = <V>(m: Map<string, V>) => [...m.keys()].sort(compareStrings);

  for (const id of sortedKeys(desired.deployments)) {
    const want = desired.deployments.get(id);
    const have = current.deployments.get(id);
    if (!want) {
      continue;
    }
    if (!have) {
      changes.push({
        kind: "deployment",
        op: "create",
        key: id,
        fields: [{ field: "name", before: null, after: want.name }],
      });
    } else if (have.name !== want.name) {
      changes.push({
        kind: "deployment",
        op: "update",
        key: id,
        fields: [{ field: "name", before: have.name, after: want.name }],
      });
    }
    const health = partChange("health_check", id, NO_HEALTH, have?.health, want.health, HEALTH_FIELDS);
    if (health) {
      changes.push(health);
    }
    const mwKeys = [...new Set([...Object.keys(have?.middlewares ?? {}), ...Object.keys(want.middlewares ?? {})])].sort(
      compareStrings,
    );
    const mw = partChange("middlewares", id, {}, have?.middlewares, want.middlewares, mwKeys);
    if (mw) {
      changes.push(mw);
    }
    for (const part of TRAFFIC_PARTS) {
      const keys = [...new Set([...Object.keys(have?.[part] ?? {}), ...Object.keys(want[part] ?? {})])].sort(
        compareStrings,
      );
      const change = partChange(part, id, {}, have?.[part], want[part], keys);
      if (change) {
        changes.push(change);
      }
    }
  }
  for (const id of sortedKeys(current.deployments)) {
    if (!listed(id)) {
      if (prune) {
        changes.push({ kind: "deployment", op: "delete", key: id, fields: [] });
      } else {
        kept.push({ kind: "deployment", key: id });
      }
    }
  }

  for (const key of sortedKeys(desired.routes)) {
    const want = desired.routes.get(key);
    const have = current.routes.get(key);
    if (!want) {
      continue;
    }
    if (have && !listed(have.deployment) && !prune) {
      conflicts.push({
        domain: want.domain,
        path_prefix: want.path_prefix,
        owner_deployment_id: have.deployment,
        location: `${want.at}.domain`,
      });
      continue;
    }
    const fields = fieldChanges(have, want, ROUTE_FIELDS);
    if (fields.length > 0) {
      changes.push({ kind: "route", op: have ? "update" : "create", key, fields });
    }
  }
  for (const key of sortedKeys(current.routes)) {
    const have = current.routes.get(key);
    if (have && !desired.routes.has(key) && (listed(have.deployment) || prune)) {
      changes.push({
        kind: "route",
        op: "delete",
        key,
        fields: [{ field: "deployment", before: have.deployment, after: null }],
      });
    }
  }

  const missing: StateDiff["missing_certificates"] = [];
  [...desired.certificates.keys()].forEach((fp, i) => {
    if (!current.certificates.has(fp)) {
      missing.push({ fingerprint_sha256: fp, location: `certificates[${i}].fingerprint_sha256` });
    }
  });
  for (const fp of sortedKeys(current.certificates)) {
    if (!desired.certificates.has(fp)) {
      if (prune) {
        changes.push({ kind: "certificate", op: "delete", key: fp, fields: [] });
      } else {
        kept.push({ kind: "certificate", key: fp });
      }
    }
  }

  const order = (c: StateChange) => STATE_KINDS.indexOf(c.kind);
  changes.sort((a, b) => order(a) - order(b) || compareStrings(a.key, b.key));
  const count = (op: StateChange["op"]) => changes.filter((c) => c.op === op).length;
  return {
    changes,
    kept,
    conflicts,
    missing_certificates: missing,
    summary: { created: count("create"), updated: count("update"), deleted: count("delete") },
  };
}
