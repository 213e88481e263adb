import { getDomain } from "tldts";
import type { z } from "zod";
import type { DeploymentRow, LocationRow, RoutingRow } from "../../schema/tables.js";
import { challengeRecord } from "../domains/challenge.js";
import {
  DeploymentView,
  type DnsRecord,
  LocationView,
  RouteView,
  type RoutingView,
  type VerificationView,
} from "./schemas.js";

// snake_case (the API) ⇄ camelCase (rows and repo inputs), once: a field's API name is its repo name in
// snake_case, so requests are `camelize`d and views are built from their zod schema's field list.

type Camel<S extends string> = S extends `${infer Head}_${infer Tail}` ? `${Head}${Capitalize<Camel<Tail>>}` : S;
/** An object with its snake_case keys in camelCase (`path_prefix` → `pathPrefix`), one level deep. */
export type Camelized<T> = { [K in keyof T as K extends string ? Camel<K> : K]: T[K] };

const camel = (key: string) => key.replace(/_([a-z0-9])/g, (_, ch: string) => ch.toUpperCase());

/** A request body (or part of one) with the repo's field names. */
export function camelize<T extends object>(o: T): Camelized<T> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [camel(k), v])) as Camelized<T>;
}

/** The row a view of `V` is read from: every field under its camelCase name, dates as Date. */
type RowOf<V> = { [K in keyof V as K extends string ? Camel<K> : K]: V[K] extends string | null ? V[K] | Date : V[K] };

/**
 * The view of a row for a response schema: each field is the row's camelCase field (dates as ISO strings) unless
 * `computed` gives it; fields keep the schema's order. Views are typed from their zod schema, so a field added to
 * the schema is a type error until the row (or `computed`) has it.
 */
export function viewOf<S extends z.ZodObject>(schema: S) {
  const fields = Object.keys(schema.shape).map((k) => [k, camel(k)] as const);
  // biome-ignore lint/complexity/noBannedTypes: no computed fields by default
  return <C extends Partial<z.infer<S>> = {}>(row: RowOf<Omit<z.infer<S>, keyof C>>, computed?: C): z.infer<S> => {
    const r = row as Record<string, unknown>;
    const extra = (computed ?? {}) as Record<string, unknown>;
    const view: Record<string, unknown> = {};
    for (const [api, repo] of fields) {
      const v = api in extra ? extra[api] : r[repo];
      view[api] = v instanceof Date ? v.toISOString() : v;
    }
    return view as z.infer<S>;
  };
}

const deploymentFields = viewOf(DeploymentView);
const routeFields = viewOf(RouteView);
const locationFields = viewOf(LocationView);

// One argument each, so they can be handed to `Array.map`.
export const deploymentView = (d: DeploymentRow): DeploymentView => deploymentFields(d);
export const routeView = (r: RoutingRow): RouteView => routeFields(r, { verification: verificationView(r) });
export const locationView = (l: LocationRow): LocationView => locationFields(l);

/** A route's domain ownership: when it was proven, or (pending) the token and the TXT record that proves it. */
export function verificationView(r: RoutingRow): VerificationView {
  if (r.verification === "verified") {
    return { status: "verified", verified_at: r.verifiedAt?.toISOString() ?? null };
  }
  const token = r.verificationToken ?? ""; // only a hand-edited row lacks one
  return {
    status: "pending",
    token,
    expires_at: r.verificationExpiresAt?.toISOString() ?? "",
    next_check_at: r.verificationNextCheckAt?.toISOString() ?? null,
    attempts: r.verificationAttempts,
    record: challengeRecord(r.domain, token),
  };
}

/** Every DNS record a route needs: the routing records, and while it is pending its ownership TXT record. */
export function routeDnsRecords(r: RoutingRow, targets: DnsTargets): DnsRecord[] {
  const routing = dnsRecords(r.domain, targets);
  return r.verification === "pending" ? [...routing, challengeRecord(r.domain, r.verificationToken ?? "")] : routing;
}

/** The shape operators know from `GET …/routing`, plus every route in `domains`. */
export function routingView(deploymentId: string, routes: RoutingRow[]): RoutingView {
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

export interface DnsTargets {
  ipv4: string[];
  ipv6: string[];
  cname: string | undefined;
}

/**
 * DNS records a user must create for a domain: A/AAAA to the public IPs for an apex (a CNAME is not allowed
 * there; ALIAS when only a host name is configured), a CNAME for a subdomain when a target host is configured.
 */
export function dnsRecords(domain: string, targets: DnsTargets): DnsRecord[] {
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
