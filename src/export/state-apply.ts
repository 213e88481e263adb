import type { Db } from "../db/client.js";
import { Conflict, isUniqueViolation } from "../db/errors.js";
import { refuseDuringRollout } from "../db/repo/rollouts.js";
import {
  type DeploymentValues,
  loadStateRows,
  lockStateApply,
  type RouteValues,
  type StateWrites,
  writeState,
} from "../db/repo/state.js";
import { diffState, type StateDiff } from "./state-diff.js";
import { formatDiff, summaryLine } from "./state-format.js";
import {
  type FlatDeployment,
  type FlatRoute,
  type FlatState,
  flattenState,
  routeKey,
  type StateRows,
  stateFromRows,
  TRAFFIC_PARTS,
} from "./state-model.js";
import type { StateDocument } from "./state-schema.js";

// The shell around the pure diff: read the database, compare, and write everything in one transaction.

export interface StateOptions {
  prune: boolean;
  /** The resolver of a route that names none (DEFAULT_CERT_RESOLVER / DEFAULT_WILDCARD_CERT_RESOLVER). */
  defaultResolver: (domain: string) => string;
}

/** What diff and apply answer: the structured diff, its text and one-line summary, and whether anything was written. */
export interface StateOutcome {
  applied: boolean;
  dry_run: boolean;
  prune: boolean;
  summary: StateDiff["summary"];
  summary_line: string;
  changes: StateDiff["changes"];
  kept: StateDiff["kept"];
  text: string;
}

/** The current state as a canonical document. */
export async function dumpState(db: Db): Promise<StateDocument> {
  return stateFromRows(await loadStateRows(db));
}

function outcome(diff: StateDiff, applied: boolean, dryRun: boolean, prune: boolean): StateOutcome {
  return {
    applied,
    dry_run: dryRun,
    prune,
    summary: diff.summary,
    summary_line: summaryLine(diff),
    changes: diff.changes,
    kept: diff.kept,
    text: formatDiff(diff),
  };
}

/** Conflicts and missing certificates make the file unappliable: one error naming every case. */
function refuse(diff: StateDiff): void {
  const [c] = diff.conflicts;
  if (c) {
    const more = diff.conflicts.length > 1 ? ` (and ${diff.conflicts.length - 1} more)` : "";
    throw new Conflict(
      `${c.domain} on path ${c.path_prefix} (${c.location}) belongs to deployment ${c.owner_deployment_id}, which the file does not list${more}. List that deployment, remove the route from the file, or use prune to delete what the file does not list.`,
      "DOMAIN_CONFLICT",
      {
        owner_deployment_id: c.owner_deployment_id,
        domain: c.domain,
        path_prefix: c.path_prefix,
        conflicts: diff.conflicts,
      },
    );
  }
  const [m] = diff.missing_certificates;
  if (m) {
    throw new Conflict(
      `certificate ${m.fingerprint_sha256} (${m.location}) is not uploaded: upload it first (POST /api/v1/certificates with cert_pem and key_pem), then apply.`,
      "CERTIFICATE_NOT_UPLOADED",
      { missing: diff.missing_certificates },
    );
  }
}

const deploymentValues = (d: FlatDeployment): DeploymentValues => ({
  name: d.name,
  healthPath: d.health.path,
  healthIntervalSeconds: d.health.interval_seconds,
  healthTimeoutSeconds: d.health.timeout_seconds,
  healthExpectedStatus: d.health.expected_status,
  healthMode: d.health.mode,
  backendTlsServerName: d.health.tls_server_name,
  backendTlsCaPem: d.health.tls_ca_pem,
  backendTlsInsecureSkipVerify: d.health.tls_insecure_skip_verify,
});

const routeValues = (r: FlatRoute): RouteValues => ({
  deploymentId: r.deployment,
  targetPort: r.target_port,
  protocol: r.protocol,
  loadBalancerAlgo: r.load_balancer_algo,
  sslEnabled: r.ssl_enabled,
  sslCertResolver: r.ssl_cert_resolver,
  tlsIncludeApex: r.tls_include_apex,
  isPrimary: r.primary,
});

/** The writes that carry out `diff` (pure). */
export function writesFor(diff: StateDiff, rows: StateRows, desired: FlatState): StateWrites {
  const w: StateWrites = {
    insertDeployments: [],
    updateDeployments: [],
    deleteRouteIds: [],
    unsetPrimaryIds: [],
    updateRoutes: [],
    insertRoutes: [],
    deleteDeploymentIds: [],
    putMiddlewares: [],
    deleteMiddlewares: [],
    putTraffic: [],
    deleteCertificateFingerprints: [],
  };
  const rowByKey = new Map(rows.routes.map((r) => [routeKey(r.domain, r.pathPrefix), r]));
  const created = new Set<string>();
  const updated = new Set<string>();
  // Pending routes are not in the document, so the diff never names them; two of them could trip the writes. An
  // apply is trusted (it comes with the admin scope), so the pending route of a deployment for a (domain, path) the
  // file gives that deployment is replaced by the file's verified one, and a pending primary steps aside for the
  // primary the file sets. Every other pending route is left as it is.
  const pendingOf = (deploymentId: string) => (rows.pending ?? []).filter((p) => p.deploymentId === deploymentId);
  const stepAside = (route: FlatRoute) => {
    for (const p of pendingOf(route.deployment)) {
      if (p.domain === route.domain && p.pathPrefix === route.path_prefix) {
        w.deleteRouteIds.push(p.id);
      } else if (p.isPrimary && route.primary && !w.unsetPrimaryIds.includes(p.id)) {
        w.unsetPrimaryIds.push(p.id);
      }
    }
  };
  for (const c of diff.changes) {
    const dep = desired.deployments.get(c.key);
    const route = desired.routes.get(c.key);
    const row = rowByKey.get(c.key);
    if (c.kind === "deployment" && c.op === "create" && dep) {
      w.insertDeployments.push({ id: dep.id, ...deploymentValues(dep) });
      created.add(dep.id);
    } else if (c.kind === "deployment" && c.op === "delete") {
      w.deleteDeploymentIds.push(c.key);
    } else if ((c.kind === "deployment" || c.kind === "health_check") && dep) {
      if (!created.has(dep.id) && !updated.has(dep.id)) {
        w.updateDeployments.push({ id: dep.id, set: deploymentValues(dep) });
        updated.add(dep.id);
      }
    } else if (c.kind === "route" && c.op === "delete" && row) {
      w.deleteRouteIds.push(row.id);
    } else if (c.kind === "route" && c.op === "update" && row && route) {
      if (row.isPrimary && (!route.primary || row.deploymentId !== route.deployment)) {
        w.unsetPrimaryIds.push(row.id);
      }
      w.updateRoutes.push({ id: row.id, set: routeValues(route) });
      stepAside(route);
    } else if (c.kind === "route" && c.op === "create" && route) {
      w.insertRoutes.push({ domain: route.domain, pathPrefix: route.path_prefix, ...routeValues(route) });
      stepAside(route);
    } else if (c.kind === "middlewares" && dep) {
      if (c.op === "delete" || dep.middlewares === undefined) {
        w.deleteMiddlewares.push(dep.id);
      } else {
        w.putMiddlewares.push({ deploymentId: dep.id, config: dep.middlewares });
      }
    } else if ((TRAFFIC_PARTS as readonly string[]).includes(c.kind) && dep) {
      const part = c.kind as (typeof TRAFFIC_PARTS)[number];
      w.putTraffic.push({ deploymentId: dep.id, part, value: c.op === "delete" ? null : (dep[part] ?? null) });
    } else if (c.kind === "certificate" && c.op === "delete") {
      w.deleteCertificateFingerprints.push(c.key);
    }
  }
  return w;
}

/**
 * Compares the file with the database and, unless `dryRun`, makes the database match it: one transaction, all or
 * nothing, one apply at a time. Nothing is written when nothing differs (no updated_at bump, no change NOTIFY).
 */
export async function applyState(
  db: Db,
  doc: StateDocument,
  opts: StateOptions & { dryRun: boolean },
): Promise<StateOutcome> {
  const desired = flattenState(doc, opts.defaultResolver);
  try {
    return await db.transaction(async (tx) => {
      if (!opts.dryRun) {
        await lockStateApply(tx); // read after the lock: another apply's writes are then visible
      }
      const rows = await loadStateRows(tx);
      const current = flattenState(stateFromRows(rows), opts.defaultResolver);
      const diff = diffState(current, desired, opts.prune);
      refuse(diff);
      // A running or paused rollout owns its deployment's split weights, as with PUT/DELETE …/split.
      for (const c of diff.changes) {
        if (c.kind === "split") {
          await refuseDuringRollout(tx, c.key, "change the split from a state file");
        }
      }
      if (opts.dryRun || diff.changes.length === 0) {
        return outcome(diff, false, opts.dryRun, opts.prune);
      }
      await writeState(tx, writesFor(diff, rows, desired));
      return outcome(diff, true, false, opts.prune);
    });
  } catch (err) {
    if (isUniqueViolation(err)) {
      // Another writer (the API) claimed a domain + path between our read and our write; nothing was written.
      throw new Conflict(
        "A route in the file was claimed by another write while applying; nothing was written. Run diff again.",
        "DOMAIN_CONFLICT",
      );
    }
    throw err;
  }
}

/** The diff alone (no lock, no writes). */
export async function diffWithDatabase(db: Db, doc: StateDocument, opts: StateOptions): Promise<StateOutcome> {
  return applyState(db, doc, { ...opts, dryRun: true });
}
