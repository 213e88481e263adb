import { Hono } from "hono";
import {
  type CertificateMeta,
  createCertificate,
  deleteCertificate,
  getCertificate,
  listCertificates,
} from "../../db/repo/certificates.js";
import { listAllRoutes } from "../../db/repo/routing.js";
import { sanCovers } from "../../render/tls.js";
import { CertificateProblem, inspectCertificate } from "../../tls/certificate.js";
import type { AppEnv, Deps } from "../app.js";
import { HttpProblem } from "../problem.js";
import { UploadCertificateBody } from "../schemas.js";
import { parseBody } from "../validate.js";

const DAY = 86_400_000;

/** Certificates customers upload for their domains. Key material goes in, never out. */
export function certificatesApi({ handle, cache, clock, config, certKey }: Deps) {
  const { db } = handle;
  const view = (
    c: CertificateMeta,
    routes: { id: string; deploymentId: string; domain: string; sslEnabled: boolean }[],
  ) => {
    const expiresInDays = Math.floor((c.notAfter.getTime() - clock.now().getTime()) / DAY);
    return {
      id: c.id,
      subject: c.subject,
      issuer: c.issuer,
      sans: c.sans,
      not_before: c.notBefore.toISOString(),
      not_after: c.notAfter.toISOString(),
      fingerprint_sha256: c.fingerprintSha256,
      expires_in_days: expiresInDays,
      expiring_soon: expiresInDays < config.CERT_EXPIRY_WARN_DAYS,
      used_by: routes
        .filter((r) => r.sslEnabled && c.sans.some((san) => sanCovers(san, r.domain)))
        .map((r) => ({ route_id: r.id, deployment_id: r.deploymentId, domain: r.domain })),
      created_at: c.createdAt.toISOString(),
    };
  };
  return new Hono<AppEnv>()
    .post("/", async (c) => {
      const body = await parseBody(c, UploadCertificateBody);
      let info: ReturnType<typeof inspectCertificate>;
      try {
        info = inspectCertificate(body.cert_pem, body.key_pem, clock.now());
      } catch (err) {
        if (err instanceof CertificateProblem) {
          throw new HttpProblem({
            status: 400,
            code: "INVALID_CERTIFICATE",
            title: "Invalid certificate",
            detail: err.message,
            errors: [{ location: err.location, message: err.message }],
          });
        }
        throw err;
      }
      const row = await createCertificate(db, info, certKey);
      cache.invalidate();
      c.header("Location", `/api/v1/certificates/${row.id}`);
      return c.json(view(row, await listAllRoutes(db)), 201);
    })
    .get("/", async (c) => {
      const routes = await listAllRoutes(db);
      return c.json({ items: (await listCertificates(db)).map((r) => view(r, routes)) });
    })
    .get("/:id", async (c) => c.json(view(await getCertificate(db, c.req.param("id")), await listAllRoutes(db))))
    .delete("/:id", async (c) => {
      await deleteCertificate(db, c.req.param("id"));
      cache.invalidate();
      return c.body(null, 204);
    });
}
