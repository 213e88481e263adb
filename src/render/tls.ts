import type { RouteInput, RouterTls, TlsCertificateInput } from "./types.js";

/**
 * Whether a certificate SAN covers a route domain: an exact match, or a wildcard SAN (`*.a.com`) covering one
 * label (`x.a.com`, and the route `*.a.com` itself). A wildcard route is covered only by the same wildcard.
 */
export function sanCovers(san: string, domain: string): boolean {
  const s = san.toLowerCase();
  if (s === domain) {
    return true;
  }
  if (!s.startsWith("*.") || domain.startsWith("*.")) {
    return false;
  }
  const dot = domain.indexOf(".");
  return dot > 0 && domain.slice(dot) === s.slice(1);
}

/** The uploaded certificate serving a domain, if any; the newest-expiring wins is not knowable here, so lowest id. */
export function certificateFor(domain: string, certs: readonly TlsCertificateInput[]): TlsCertificateInput | undefined {
  return certs.find((c) => c.sans.some((san) => sanCovers(san, domain)));
}

/**
 * Router TLS: an uploaded certificate (found by SNI in the default store) needs no resolver; otherwise the
 * route's resolver, and for a wildcard the explicit `domains` Traefik's ACME needs to request `*.name`.
 */
export function routerTls(route: RouteInput, certs: readonly TlsCertificateInput[]): RouterTls {
  if (certificateFor(route.domain, certs)) {
    return {};
  }
  if (route.domain.startsWith("*.")) {
    const apex = route.domain.slice(2);
    return {
      certResolver: route.sslCertResolver,
      domains: [{ main: route.domain, ...(route.tlsIncludeApex ? { sans: [apex] } : {}) }],
    };
  }
  return { certResolver: route.sslCertResolver };
}
