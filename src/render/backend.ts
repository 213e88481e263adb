import { isIP } from "node:net";
import { routeName } from "./names.js";
import type { HealthCheck, RenderSettings, RouteInput, ServersTransport } from "./types.js";

// How Traefik talks to a deployment's replicas: the TLS verification policy of https replicas (a servers
// transport) and the protocol of Traefik's own active health check. Pure, like the rest of render/.

/**
 * Name of a route's servers transport (backend TLS and timeouts are deployment settings, the protocol is per route):
 * `<dep>--backend-tls` when it carries TLS verification (https routes; the name it always had, timeouts or not),
 * `<dep>--backend` when it carries forwarding timeouts only (src/render/resilience.ts; http and h2c routes, or
 * https without a verification policy). Routes of one deployment with the same name get the same transport.
 */
export function serversTransportName(route: RouteInput, transport?: ServersTransport): string {
  const dep = routeName(route).split("--")[0] ?? "x";
  const tls = transport && (transport.insecureSkipVerify || transport.rootCAs || transport.serverName);
  return !transport || tls ? `${dep}--backend-tls` : `${dep}--backend`;
}

const SERVER_NAME_RE =
  /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)*$/;
// Only CERTIFICATE blocks: Go's AppendCertsFromPEM skips anything else (pkg/server/service/transport.go
// createRootCACertPool), which would silently leave the transport trusting nothing we meant.
const CA_PEM_RE = /^(?:\s*-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----)+\s*$/;

/** Why a route's backend TLS settings cannot be rendered (rows can be edited by hand), or undefined. */
export function checkBackendTls(route: RouteInput): string | undefined {
  const tls = route.protocol === "https" ? route.backendTls : undefined;
  if (!tls) {
    return undefined;
  }
  if (tls.serverName !== null && !(isIP(tls.serverName) !== 0 || SERVER_NAME_RE.test(tls.serverName))) {
    return "backend TLS server name must be a DNS name or an IP address";
  }
  if (tls.caPem !== null && !CA_PEM_RE.test(tls.caPem)) {
    return "backend TLS CA must be PEM CERTIFICATE blocks";
  }
  return undefined;
}

/**
 * The servers transport of a route whose deployment declares an https verification policy or forwarding timeouts
 * (`extra`, from src/render/resilience.ts), or undefined (Traefik's default transport: system roots, the replica
 * address as server name, default timeouts). The CA goes inline: `rootCAs` is a list of types.FileOrContent
 * (pkg/config/dynamic/http_config.go ServersTransport, pkg/types/file_or_content.go), read as content when it is
 * not an existing path. A CA certificate is public: it does not make the config secret. Traefik's active health
 * check dials through the same transport (pkg/server/service/service.go). Timeouts apply to every protocol
 * (pkg/server/service/transport.go createRoundTripper); TLS settings only to https routes.
 */
export function serversTransportFor(route: RouteInput, extra?: ServersTransport): ServersTransport | undefined {
  const tls = route.protocol === "https" ? route.backendTls : undefined;
  const hasTls = tls && (tls.serverName !== null || tls.caPem !== null || tls.insecureSkipVerify);
  const timeouts = extra?.forwardingTimeouts;
  const hasTimeouts = timeouts !== undefined && Object.keys(timeouts).length > 0;
  if (!hasTls && !hasTimeouts) {
    return undefined;
  }
  return {
    ...(hasTimeouts ? { forwardingTimeouts: timeouts } : {}),
    ...(tls?.insecureSkipVerify ? { insecureSkipVerify: true } : {}), // only when the deployment asks for it
    ...(tls && tls.caPem !== null ? { rootCAs: [tls.caPem] } : {}),
    ...(tls && tls.serverName !== null ? { serverName: tls.serverName } : {}),
  };
}

const HEALTH_PATH_RE = /^\/[A-Za-z0-9\-._~!$&()*+,;=:@/%?]*$/;
const SINGLE_STATUS_RE = /^\s*([1-5][0-9]{2})\s*$/;

/**
 * Traefik's own active check, between our polls (TRAEFIK_HEALTHCHECK); the caller skips the weight-0 placeholder.
 * h2c replicas are checked with the gRPC health protocol unless the deployment chose `http`: an HTTP GET to a
 * gRPC server gets 415 and Traefik marks it down (pkg/healthcheck/healthcheck.go executeHealthCheck).
 */
export function healthCheckFor(
  route: RouteInput,
  defaults: RenderSettings["traefikHealthCheck"],
): HealthCheck | undefined {
  if (!defaults) {
    return undefined;
  }
  const interval = `${route.healthIntervalSeconds ?? defaults.intervalSeconds}s`;
  const timeout = `${route.healthTimeoutSeconds ?? defaults.timeoutSeconds}s`;
  // The same mode our own probe uses (src/health/checker.ts): gRPC for h2c unless `http`, and for any protocol whose
  // deployment chose `grpc` — gRPC over TLS (`https`) included: Traefik dials it through the route's transport.
  if ((route.healthMode ?? (route.protocol === "h2c" ? "grpc" : "http")) === "grpc") {
    // grpc.health.v1.Health/Check with an empty service name; path and status are not used in this mode.
    return { interval, mode: "grpc", timeout };
  }
  const path = route.healthPath ?? defaults.path;
  // Traefik's `status` is one int (healthcheck.go checkHealthHTTP): a single expected code is rendered as is. A
  // class or range (`2xx`, `200-399`, a list) cannot be: it is left out, and Traefik then accepts 200–399. That is
  // looser than our probe for `2xx`, never stricter, and only replicas our probe calls healthy are rendered.
  const code = SINGLE_STATUS_RE.exec(route.healthExpectedStatus ?? defaults.expectedStatus ?? "")?.[1];
  return {
    interval,
    path: HEALTH_PATH_RE.test(path) && !path.includes("{{") ? path : defaults.path,
    ...(code ? { status: Number(code) } : {}),
    timeout,
  };
}
