import { getConnInfo } from "@hono/node-server/conninfo";
import type { Context, MiddlewareHandler } from "hono";
import type { DbHandle } from "../db/client.js";
import { type DeploymentForAudit, insertAudit, loadDeploymentForAudit } from "../db/repo/audit.js";
import { withRequestTx } from "../db/request-tx.js";
import type { AppEnv } from "./deps.js";
import type { AuditNote, FieldChange } from "./identity.js";
import { deploymentIdOf, endpointOf } from "./scopes.js";

export const REDACTED = "<redacted>";

/** POSTs that change nothing: a preview and a state diff run the proposed writes and roll them back. */
const READ_ONLY_POSTS = new Set(["/api/v1/routing/preview", "/api/v1/state/diff"]);
const READS = new Set(["GET", "HEAD", "OPTIONS"]);

/** Thrown inside the request transaction to roll it back when the handler answered an error. */
class RolledBack extends Error {}

const pemSummary = (pem: string) => `<PEM, ${pem.match(/-----BEGIN /g)?.length ?? 0} block(s), ${pem.length} bytes>`;

/** Middleware settings with their secrets (basic-auth hashes, header values) replaced. */
function redactMiddlewares(value: unknown, path: string): unknown {
  if (Array.isArray(value)) {
    return path.endsWith("basic_auth.users")
      ? value.map((u) => `${String(u).split(":")[0]}:${REDACTED}`)
      : value.map((v) => redactMiddlewares(v, path));
  }
  if (value !== null && typeof value === "object") {
    const secretValues = /headers\.(request|response)$/.test(path);
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, secretValues ? REDACTED : redactMiddlewares(v, `${path}.${k}`)]),
    );
  }
  return value;
}

/**
 * One deployment as flat `field → value` pairs, the way an audit row names what changed: `name`,
 * `routes[app.example.com/].target_port`, `replicas[loc-1].address`, `middlewares.basic_auth`. Timestamps and
 * bookkeeping columns (probe leases, counters) are left out; secrets are redacted, PEM bundles summarised.
 */
export function auditFields(d: DeploymentForAudit | undefined): Record<string, unknown> {
  if (!d) {
    return {};
  }
  const out: Record<string, unknown> = {};
  const x = d.deployment;
  Object.assign(out, {
    name: x.name,
    "health_check.path": x.healthPath,
    "health_check.interval_seconds": x.healthIntervalSeconds,
    "health_check.timeout_seconds": x.healthTimeoutSeconds,
    "health_check.expected_status": x.healthExpectedStatus,
    "health_check.mode": x.healthMode,
    "health_check.tls.server_name": x.backendTlsServerName,
    "health_check.tls.ca_pem": x.backendTlsCaPem === null ? null : pemSummary(x.backendTlsCaPem),
    "health_check.tls.insecure_skip_verify": x.backendTlsInsecureSkipVerify,
  });
  for (const r of d.routes) {
    const k = `routes[${r.domain}${r.pathPrefix}]`;
    Object.assign(out, {
      [`${k}.target_port`]: r.targetPort,
      [`${k}.protocol`]: r.protocol,
      [`${k}.load_balancer_algo`]: r.loadBalancerAlgo,
      [`${k}.ssl_enabled`]: r.sslEnabled,
      [`${k}.ssl_cert_resolver`]: r.sslCertResolver,
      [`${k}.tls_include_apex`]: r.tlsIncludeApex,
      [`${k}.primary`]: r.isPrimary,
      [`${k}.verification`]: r.verification,
    });
  }
  for (const l of d.replicas) {
    const k = `replicas[${l.id}]`;
    Object.assign(out, {
      [`${k}.address`]: l.address,
      [`${k}.port`]: l.port,
      [`${k}.status`]: l.status,
      [`${k}.node_id`]: l.nodeId,
      [`${k}.node_hostname`]: l.nodeHostname,
      [`${k}.container_id`]: l.containerId,
      [`${k}.health_status`]: l.healthStatus,
      [`${k}.cpu_usage`]: l.cpuUsage,
      [`${k}.track`]: l.track,
      [`${k}.region`]: l.region,
      [`${k}.drain_until`]: l.drainUntil?.toISOString() ?? null,
    });
  }
  // Traffic settings (split, geo, resilience) hold no secrets: compared part by part, as stored.
  for (const part of ["split", "geo", "resilience"] as const) {
    const value = d.traffic?.[part];
    if (value && typeof value === "object") {
      for (const [name, v] of Object.entries(value)) {
        out[`${part}.${name}`] = v;
      }
    }
  }
  if (d.middlewares && typeof d.middlewares === "object") {
    for (const [name, value] of Object.entries(d.middlewares)) {
      out[`middlewares.${name}`] = redactMiddlewares(value, name);
    }
  }
  return out;
}

/** The fields whose values differ, in name order (a field missing on one side is null there). */
export function diffFields(before: Record<string, unknown>, after: Record<string, unknown>): FieldChange[] {
  const names = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
  const out: FieldChange[] = [];
  for (const field of names) {
    const b = before[field] ?? null;
    const a = after[field] ?? null;
    if (JSON.stringify(b) !== JSON.stringify(a)) {
      out.push({ field, before: b, after: a });
    }
  }
  return out;
}

/** `deployment`, `route`, `replica`, … from the endpoint's template, when the handler did not say. */
function resourceOf(template: string): { type: string; idParam?: string } {
  const rest = template.replace(/^\/api\/v1\//, "");
  const rules: [RegExp, string, string?][] = [
    [/^deployments\/:id\/(routing|domains)/, "route"],
    [/^deployments\/:id\/locations\/:location_id/, "replica", "location_id"],
    [/^deployments\/:id\/health-check/, "health_check"],
    [/^deployments\/:id\/middlewares/, "middlewares"],
    [/^deployments\/:id\/(split|geo|resilience)/, "traffic"],
    [/^deployments\/:id\/rollout/, "rollout"],
    [/^deployments/, "deployment", "id"],
    [/^certificates/, "certificate", "id"],
    [/^tokens/, "token", "id"],
    [/^webhooks/, "webhook", "id"],
    [/^routing\/freeze/, "freeze"],
    [/^routing\/revisions\/:n/, "revision", "n"],
    [/^state/, "state"],
  ];
  for (const [re, type, idParam] of rules) {
    if (re.test(rest)) {
      return idParam ? { type, idParam } : { type };
    }
  }
  return { type: rest.split("/")[0] ?? "unknown" };
}

/** The value of `:name` in `path` matched against `template` (middlewares do not get the endpoint's params). */
function paramOf(template: string, path: string, name: string): string | undefined {
  const at = template.split("/").indexOf(`:${name}`);
  const raw = at < 0 ? undefined : path.split("/")[at];
  try {
    return raw === undefined ? undefined : decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

function clientAddress(c: Context): string | null {
  try {
    return getConnInfo(c).remote.address ?? null;
  } catch {
    return null; // app.request() in tests has no socket
  }
}

/**
 * Writes that must be visible before they answer (a freeze, its release, a confirmation: the handler waits for
 * the new config to be served): they commit their write with its audit row themselves (`auditEntry`), outside the
 * request transaction.
 */
const SELF_AUDITED = new Set([
  "POST /api/v1/routing/freeze",
  "DELETE /api/v1/routing/freeze",
  "POST /api/v1/routing/revisions/:n/confirm",
]);

/** The audit row of the write this request made; `note` says what changed when the fields cannot be compared. */
export function auditEntry(c: Context<AppEnv>, note: AuditNote | undefined, status: number, changes?: FieldChange[]) {
  const template = endpointOf(c) ?? c.req.path;
  const { type, idParam } = resourceOf(template);
  const caller = c.get("caller");
  const deploymentId = deploymentIdOf(c.req.path);
  return {
    tokenId: caller?.tokenId ?? null,
    tokenName: caller?.tokenName ?? null,
    clientAddress: clientAddress(c),
    requestId: c.get("requestId") ?? null,
    method: c.req.method,
    path: c.req.path,
    operation: `${c.req.method} ${template.replace(/:([A-Za-z_]+)/g, "{$1}")}`,
    resourceType: note?.resourceType ?? type,
    resourceId: note?.resourceId ?? (idParam ? (paramOf(template, c.req.path, idParam) ?? null) : null),
    deploymentId: note?.deploymentId ?? deploymentId ?? null,
    status,
    changes: note?.changes ?? changes ?? [],
  };
}

/**
 * Every accepted /api/v1 write runs in one transaction with its audit row: the handler's queries join it (the
 * API's handle is request-scoped, src/db/request-tx.ts), the row is inserted last, and a handler that answers an
 * error rolls everything back. A deployment's fields are compared before and after inside that transaction, so
 * the row says exactly what the write changed. Functions in `afterCommit` run once it committed.
 */
export function auditWrites(handle: DbHandle): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (
      READS.has(c.req.method) ||
      READ_ONLY_POSTS.has(c.req.path) ||
      SELF_AUDITED.has(`${c.req.method} ${endpointOf(c) ?? ""}`)
    ) {
      return next();
    }
    const deploymentId = deploymentIdOf(c.req.path);
    const afterCommit: (() => void)[] = [];
    c.set("afterCommit", afterCommit);
    try {
      await handle.db.transaction(async (tx) =>
        withRequestTx(tx, async () => {
          const before = deploymentId === undefined ? undefined : await loadDeploymentForAudit(tx, deploymentId);
          await next();
          if (c.error !== undefined || c.res.status >= 400) {
            throw new RolledBack();
          }
          const after = deploymentId === undefined ? undefined : await loadDeploymentForAudit(tx, deploymentId);
          const changes = diffFields(auditFields(before), auditFields(after));
          await insertAudit(tx, auditEntry(c, c.get("audit"), c.res.status, changes));
        }),
      );
    } catch (err) {
      if (!(err instanceof RolledBack)) {
        throw err;
      }
      return;
    }
    for (const fn of afterCommit) {
      fn();
    }
  };
}
