import bcrypt from "bcryptjs";
import type { z } from "zod";
import type { Db } from "../db/client.js";
import { getDeployment } from "../db/repo/deployments.js";
import { setHealthSettings } from "../db/repo/health.js";
import { IP_DEPTH_NEEDS_TRUSTED_PROXIES, type StoredMiddlewares } from "../render/middlewares.js";
import { normalizePem } from "../tls/ca-bundle.js";
import type { FieldError } from "./problem.js";
import type { HealthCheckBody, MiddlewaresBody } from "./schemas.js";
import { invalid, invalidField } from "./validate.js";
import { camelize } from "./views.js";

// The parts of the write handlers that sit between the validated body and the repo call, as functions: the
// endpoints (src/api/routes/{routing,middlewares,health}.ts) and the preview run exactly the same code.

const BCRYPT_COST = 10;

/** Plaintext basic-auth passwords become bcrypt htpasswd lines here; nothing else ever sees them. */
export async function toStoredMiddlewares(body: MiddlewaresBody): Promise<StoredMiddlewares> {
  const { basic_auth, ...rest } = body;
  if (!basic_auth) {
    return rest;
  }
  const hashed = await Promise.all(
    basic_auth.users.map(
      async (u) => `${u.username}:${(await bcrypt.hash(u.password, BCRYPT_COST)).replace(/^\$2b\$/, "$2y$")}`,
    ),
  );
  return {
    ...rest,
    basic_auth: {
      users: [...hashed, ...basic_auth.htpasswd],
      ...(basic_auth.realm ? { realm: basic_auth.realm } : {}),
      remove_header: basic_auth.remove_header,
    },
  };
}

/**
 * `ip_depth` > 0 works only when Traefik trusts the load balancers that set X-Forwarded-For (TRUSTED_PROXY_CIDRS,
 * mirrored in traefik.yml): otherwise Traefik deletes the header and every client would get the same empty IP.
 */
export function checkIpDepth(body: MiddlewaresBody, trustedProxies: readonly string[]): void {
  if (trustedProxies.length > 0) {
    return;
  }
  const errors: FieldError[] = [];
  if ((body.ip_allow_list?.ip_depth ?? 0) > 0) {
    errors.push({ location: "body.ip_allow_list.ip_depth", message: IP_DEPTH_NEEDS_TRUSTED_PROXIES });
  }
  if ((body.rate_limit?.ip_depth ?? 0) > 0) {
    errors.push({ location: "body.rate_limit.ip_depth", message: IP_DEPTH_NEEDS_TRUSTED_PROXIES });
  }
  if (errors.length > 0) {
    throw invalid(errors, `${errors[0]?.location}: ${IP_DEPTH_NEEDS_TRUSTED_PROXIES}`); // the one reason, said once
  }
}

/** PUT …/health-check after validation: judges TLS settings as they will be, then stores the overrides. */
export async function putHealthCheck(db: Db, id: string, b: z.infer<typeof HealthCheckBody>) {
  const tls =
    b.tls === null || b.tls === undefined
      ? b.tls
      : camelize({ ...b.tls, ...(typeof b.tls.ca_pem === "string" ? { ca_pem: normalizePem(b.tls.ca_pem) } : {}) });
  if (tls) {
    // Judge the settings as they will be after this change (fields left out keep their values).
    const current = await getDeployment(db, id);
    const caPem = tls.caPem === undefined ? current.backendTlsCaPem : tls.caPem;
    const insecure =
      tls.insecureSkipVerify === undefined ? current.backendTlsInsecureSkipVerify : tls.insecureSkipVerify === true;
    if (insecure && caPem !== null) {
      throw invalidField(
        tls.insecureSkipVerify ? "body.tls.insecure_skip_verify" : "body.tls.ca_pem",
        "insecure_skip_verify cannot be combined with a CA bundle: verify against ca_pem, or skip verification, not both",
      );
    }
  }
  return setHealthSettings(db, id, { ...camelize(b), tls });
}
