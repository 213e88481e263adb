import { createRoute } from "@hono/zod-openapi";
import {
  type CertificateMeta,
  createCertificate,
  deleteCertificate,
  getCertificate,
  listCertificates,
} from "../../db/repo/certificates.js";
import { listAllRoutes } from "../../db/repo/routing.js";
import { sanCovers } from "../../render/tls.js";
import { inspectCertificate } from "../../tls/certificate.js";
import { BODY_PROBLEMS, CERTIFICATES, contracts, json, jsonBody, problems, READ } from "../contract.js";
import type { Deps } from "../deps.js";
import { CertificateParams, CertificateView, Items, UploadCertificateBody } from "../schemas.js";
import { viewOf } from "../views.js";

const DAY = 86_400_000;

const upload = createRoute({
  method: "post",
  path: "/",
  summary: "Upload a certificate (key stored encrypted)",
  security: CERTIFICATES,
  request: { body: jsonBody(UploadCertificateBody) },
  responses: { 201: json(CertificateView, "Metadata, never key material"), ...problems(...BODY_PROBLEMS, 409) },
});

const list = createRoute({
  method: "get",
  path: "/",
  summary: "List certificates",
  security: READ,
  responses: { 200: json(Items(CertificateView), "Certificates"), ...problems(401) },
});

const get = createRoute({
  method: "get",
  path: "/{id}",
  summary: "Get a certificate's metadata",
  security: READ,
  request: { params: CertificateParams },
  responses: { 200: json(CertificateView, "Metadata"), ...problems(401, 404) },
});

const remove = createRoute({
  method: "delete",
  path: "/{id}",
  summary: "Delete a certificate",
  security: CERTIFICATES,
  request: { params: CertificateParams },
  responses: { 204: { description: "Deleted" }, ...problems(401, 404) },
});

const certificateView = viewOf(CertificateView);

type RouteRef = { id: string; deploymentId: string; domain: string; sslEnabled: boolean };

/** Certificates customers upload for their domains. Key material goes in, never out. */
export function certificatesApi({ handle: { db }, clock, config, certKey }: Deps) {
  const view = (c: CertificateMeta, routes: RouteRef[]): CertificateView => {
    const expiresInDays = Math.floor((c.notAfter.getTime() - clock.now().getTime()) / DAY);
    // Stored fields from the row; the rest depends on the clock and the routes.
    return certificateView(c, {
      expires_in_days: expiresInDays,
      expiring_soon: expiresInDays < config.CERT_EXPIRY_WARN_DAYS,
      used_by: routes
        .filter((r) => r.sslEnabled && c.sans.some((san) => sanCovers(san, r.domain)))
        .map((r) => ({ route_id: r.id, deployment_id: r.deploymentId, domain: r.domain })),
    });
  };
  return contracts()
    .openapi(upload, async (c) => {
      const body = c.req.valid("json");
      // A CertificateProblem (the PEM does not parse, the key does not match, ...) is a 400 from the app's onError.
      const info = inspectCertificate(body.cert_pem, body.key_pem, clock.now());
      const row = await createCertificate(db, info, certKey);
      c.header("Location", `/api/v1/certificates/${row.id}`);
      return c.json(view(row, await listAllRoutes(db)), 201);
    })
    .openapi(list, async (c) => {
      const routes = await listAllRoutes(db);
      return c.json({ items: (await listCertificates(db)).map((r) => view(r, routes)) }, 200);
    })
    .openapi(get, async (c) => {
      const { id } = c.req.valid("param");
      return c.json(view(await getCertificate(db, id), await listAllRoutes(db)), 200);
    })
    .openapi(remove, async (c) => {
      await deleteCertificate(db, c.req.valid("param").id);
      return c.body(null, 204);
    });
}
