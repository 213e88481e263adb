import { getDomain } from "tldts";
import type { DeploymentRow, LocationRow, RoutingRow } from "../../schema/tables.js";

// Database rows → the snake_case JSON the API speaks.

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function deploymentView(d: DeploymentRow) {
  return { id: d.id, name: d.name, created_at: d.createdAt.toISOString(), updated_at: d.updatedAt.toISOString() };
}

export function routeView(r: RoutingRow) {
  return {
    id: r.id,
    deployment_id: r.deploymentId,
    domain: r.domain,
    path_prefix: r.pathPrefix,
    target_port: r.targetPort,
    protocol: r.protocol,
    load_balancer_algo: r.loadBalancerAlgo,
    ssl_enabled: r.sslEnabled,
    ssl_cert_resolver: r.sslCertResolver,
    tls_include_apex: r.tlsIncludeApex,
    is_primary: r.isPrimary,
    created_at: r.createdAt.toISOString(),
    updated_at: r.updatedAt.toISOString(),
  };
}

/** The shape operators know from `GET …/routing`, plus every route in `domains`. */
export function routingView(deploymentId: string, routes: RoutingRow[]) {
  const p = routes.find((r) => r.isPrimary) ?? routes[0];
  return {
    deployment_id: deploymentId,
    domain: p?.domain ?? null,
    path_prefix: p?.pathPrefix ?? null,
    target_port: p?.targetPort ?? null,
    protocol: p?.protocol ?? null,
    load_balancer_algo: p?.loadBalancerAlgo ?? null,
    ssl_enabled: p?.sslEnabled ?? null,
    ssl_cert_resolver: p?.sslCertResolver ?? null,
    domains: routes.map(routeView),
  };
}

export function locationView(l: LocationRow) {
  return {
    id: l.id,
    deployment_id: l.deploymentId,
    node_id: l.nodeId,
    node_hostname: l.nodeHostname,
    address: l.address,
    port: l.port,
    container_id: l.containerId,
    status: l.status,
    health_status: l.healthStatus,
    cpu_usage: l.cpuUsage,
    consecutive_successes: l.consecutiveSuccesses,
    consecutive_failures: l.consecutiveFailures,
    last_check_at: iso(l.lastCheckAt),
    last_error: l.lastError,
    created_at: l.createdAt.toISOString(),
    updated_at: l.updatedAt.toISOString(),
  };
}

export interface DnsTargets {
  ipv4: string[];
  ipv6: string[];
  cname: string | undefined;
}

/**
 * DNS records a user must create for a domain: A/AAAA to the public IPs for an apex (a CNAME is not allowed
 * there; ALIAS when only a host name is configured), a CNAME for a subdomain when a target host is configured.
 */
export function dnsRecords(domain: string, targets: DnsTargets) {
  const name = domain;
  const host = domain.startsWith("*.") ? domain.slice(2) : domain;
  const apex = getDomain(host, { allowPrivateDomains: true }) === host && !domain.startsWith("*.");
  const addr = [
    ...targets.ipv4.map((value) => ({ type: "A" as const, name, value })),
    ...targets.ipv6.map((value) => ({ type: "AAAA" as const, name, value })),
  ];
  if (apex) {
    return addr.length > 0 ? addr : targets.cname ? [{ type: "ALIAS" as const, name, value: targets.cname }] : [];
  }
  return targets.cname ? [{ type: "CNAME" as const, name, value: targets.cname }] : addr;
}
