import { z } from "zod";
import type { Config } from "../config/env.js";
import type { Db } from "../db/client.js";
import { createCertificate, deleteCertificate } from "../db/repo/certificates.js";
import { createDeployment, deleteDeployment, getDeployment } from "../db/repo/deployments.js";
import { deleteLocation, upsertLocation } from "../db/repo/locations.js";
import { putMiddlewares } from "../db/repo/middlewares.js";
import { addDomain, putPrimaryRouting, removeDomain } from "../db/repo/routing.js";
import { domainProof } from "../domains/verification.js";
import { reportReplicaFailure } from "../health/report.js";
import type { Clock } from "../lib/clock.js";
import type { Logger } from "../lib/logger.js";
import { defaultResolverFor } from "../provider/settings.js";
import { replicaAllowList } from "../render/address.js";
import { checkAddress } from "../render/validate.js";
import { inspectCertificate } from "../tls/certificate.js";
import type { FieldError, Problem } from "./problem.js";
import {
  AddDomainBody,
  CertificateParams,
  CreateDeploymentBody,
  DeleteDomainQuery,
  DeploymentParams,
  DomainParams,
  HealthCheckBody,
  LocationParams,
  MiddlewaresBody,
  PutLocationBody,
  PutRoutingBody,
  ReportFailureBody,
  UploadCertificateBody,
} from "./schemas.js";
import { fieldErrors, invalid, invalidField } from "./validate.js";
import { camelize } from "./views.js";
import { checkIpDepth, putHealthCheck, toStoredMiddlewares } from "./write-steps.js";

// The operations of POST /routing/preview: each validated with the real endpoint's schemas (query, then path, then
// body, the order @hono/zod-openapi runs them) and turned into the write its handler does, through the same repo
// functions. A problem carries the `instance` the real endpoint would answer with.

/** A write to run inside the preview's transaction; resolves to extra members of the operation's answer. */
export type PreviewWrite = (db: Db) => Promise<Record<string, unknown> | undefined>;

export type PreparedOperation =
  | { op: string; instance: string; write: PreviewWrite }
  | { op: string; instance: string; problem: Problem };

export interface OperationContext {
  config: Config;
  clock: Clock;
  certKey: Buffer;
}

const API = "/api/v1";
const PREVIEW_INSTANCE = `${API}/routing/preview`;
const enc = encodeURIComponent;
const dep = (o: Fields) => `${API}/deployments/${enc(o.deployment_id ?? "")}`;
const loc = (o: Fields) => `${dep(o)}/locations/${enc(o.location_id ?? "")}`;

interface Fields {
  deployment_id?: string;
  location_id?: string;
  domain?: string;
  path_prefix?: string;
  certificate_id?: string;
  body?: unknown;
}

interface OperationDef {
  /** The op's own members besides `op` (raw strings; the real schemas judge their values). */
  shape: z.ZodObject;
  instance(o: Fields): string;
  prepare(o: Fields, ctx: OperationContext): Promise<PreviewWrite>;
}

const id = z.string();
const body = z.unknown().optional();
const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {} }; // a preview's transitions never happen

/** Parses one part as the contract would, throwing the same 400 (`path.id`, `query.path_prefix`, `body.domain`). */
function valid<S extends z.ZodType>(schema: S, value: unknown, where: "path" | "query" | "body"): z.output<S> {
  const r = schema.safeParse(value);
  if (!r.success) {
    throw invalid(fieldErrors(where, r.error.issues));
  }
  return r.data;
}

const params = (o: Fields) => valid(DeploymentParams, { id: o.deployment_id }, "path").id;
const bodyOf = (o: Fields) => o.body ?? {};

const OPERATIONS = {
  create_deployment: {
    shape: z.strictObject({ deployment_id: id.optional(), body }),
    instance: () => `${API}/deployments`,
    async prepare(o) {
      const raw = bodyOf(o);
      // `deployment_id` is a shorthand for body.id (later operations need to know the id).
      const merged =
        o.deployment_id !== undefined && isObject(raw) && !("id" in raw) ? { ...raw, id: o.deployment_id } : raw;
      const b = valid(CreateDeploymentBody, merged, "body");
      return async (db) => ({ deployment_id: (await createDeployment(db, b)).id });
    },
  },
  delete_deployment: {
    shape: z.strictObject({ deployment_id: id }),
    instance: dep,
    async prepare(o) {
      const depId = params(o);
      return async (db) => void (await deleteDeployment(db, depId));
    },
  },
  put_routing: {
    shape: z.strictObject({ deployment_id: id, body }),
    instance: (o) => `${dep(o)}/routing`,
    async prepare(o, { config, clock }) {
      const depId = params(o);
      const b = valid(PutRoutingBody, bodyOf(o), "body");
      const proof = domainProof(config, clock.now());
      return async (db) => void (await putPrimaryRouting(db, depId, camelize(b), defaultResolverFor(config), proof));
    },
  },
  add_domain: {
    shape: z.strictObject({ deployment_id: id, body }),
    instance: (o) => `${dep(o)}/domains`,
    async prepare(o, { config, clock }) {
      const depId = params(o);
      const b = valid(AddDomainBody, bodyOf(o), "body");
      const proof = domainProof(config, clock.now());
      return async (db) => {
        const { route, created } = await addDomain(db, depId, camelize(b), defaultResolverFor(config), proof);
        // A pending route (ownership not proven) renders nothing: the preview's diff shows no new router for it.
        return { created, route_id: route.id, verification: route.verification };
      };
    },
  },
  remove_domain: {
    shape: z.strictObject({ deployment_id: id, domain: id, path_prefix: id.optional() }),
    instance: (o) => `${dep(o)}/domains/${enc(o.domain ?? "")}`,
    async prepare(o) {
      const q = valid(DeleteDomainQuery, o.path_prefix === undefined ? {} : { path_prefix: o.path_prefix }, "query");
      const p = valid(DomainParams, { id: o.deployment_id, domain: o.domain }, "path");
      return async (db) => void (await removeDomain(db, p.id, p.domain, q.path_prefix));
    },
  },
  put_middlewares: {
    shape: z.strictObject({ deployment_id: id, body }),
    instance: (o) => `${dep(o)}/middlewares`,
    async prepare(o, { config }) {
      const depId = params(o);
      const b = valid(MiddlewaresBody, bodyOf(o), "body");
      checkIpDepth(b, config.TRUSTED_PROXY_CIDRS);
      const stored = await toStoredMiddlewares(b); // bcrypt before the transaction: it holds no lock meanwhile
      return async (db) => {
        await getDeployment(db, depId);
        await putMiddlewares(db, depId, stored);
        return undefined;
      };
    },
  },
  put_health_check: {
    shape: z.strictObject({ deployment_id: id, body }),
    instance: (o) => `${dep(o)}/health-check`,
    async prepare(o) {
      const depId = params(o);
      const b = valid(HealthCheckBody, bodyOf(o), "body");
      return async (db) => void (await putHealthCheck(db, depId, b));
    },
  },
  upsert_location: {
    shape: z.strictObject({ deployment_id: id, location_id: id, body }),
    instance: loc,
    async prepare(o, { config }) {
      const p = valid(LocationParams, { id: o.deployment_id, location_id: o.location_id }, "path");
      const b = valid(PutLocationBody, bodyOf(o), "body");
      const refused = checkAddress(b.address, replicaAllowList(config.REPLICA_ALLOWED_CIDRS));
      if (refused) {
        throw invalidField("body.address", refused);
      }
      return async (db) => ({ created: (await upsertLocation(db, p.id, p.location_id, camelize(b))).created });
    },
  },
  delete_location: {
    shape: z.strictObject({ deployment_id: id, location_id: id }),
    instance: loc,
    async prepare(o) {
      const p = valid(LocationParams, { id: o.deployment_id, location_id: o.location_id }, "path");
      return async (db) => void (await deleteLocation(db, p.id, p.location_id));
    },
  },
  mark_unhealthy: {
    shape: z.strictObject({ deployment_id: id, location_id: id, body }),
    instance: (o) => `${loc(o)}/failures`,
    async prepare(o, { config, clock }) {
      const p = valid(LocationParams, { id: o.deployment_id, location_id: o.location_id }, "path");
      const { reason } = valid(ReportFailureBody, bodyOf(o), "body");
      return async (db) => {
        const report = { deploymentId: p.id, locationId: p.location_id, at: clock.now() };
        const { collapsed, transition } = await reportReplicaFailure(
          { db, logger: quiet, rise: config.HEALTH_RISE },
          { ...report, error: `reported: ${reason ?? "request failed"}` },
        );
        return { collapsed, transition: transition !== undefined };
      };
    },
  },
  upload_certificate: {
    shape: z.strictObject({ body }),
    instance: () => `${API}/certificates`,
    async prepare(o, { clock, certKey }) {
      const b = valid(UploadCertificateBody, bodyOf(o), "body");
      const info = inspectCertificate(b.cert_pem, b.key_pem, clock.now());
      return async (db) => ({ certificate_id: (await createCertificate(db, info, certKey)).id });
    },
  },
  delete_certificate: {
    shape: z.strictObject({ certificate_id: id }),
    instance: (o) => `${API}/certificates/${enc(o.certificate_id ?? "")}`,
    async prepare(o) {
      const p = valid(CertificateParams, { id: o.certificate_id }, "path");
      return async (db) => void (await deleteCertificate(db, p.id));
    },
  },
} satisfies Record<string, OperationDef>;

export type PreviewOpName = keyof typeof OPERATIONS;
export const PREVIEW_OP_NAMES = Object.keys(OPERATIONS).sort() as PreviewOpName[];

/**
 * Validates one operation and prepares its write; a refusal is the problem the real endpoint would answer, or a
 * 400 naming `operation.<member>` when the operation itself is malformed (unknown op, missing or extra members).
 * `mapError` turns a thrown error into a problem (undefined: not the client's fault; it is rethrown).
 */
export async function prepareOperation(
  raw: { op: string } & Record<string, unknown>,
  ctx: OperationContext,
  mapError: (err: Error) => Problem | undefined,
): Promise<PreparedOperation> {
  const { op, ...rest } = raw;
  const def: OperationDef | undefined = Object.hasOwn(OPERATIONS, op) ? OPERATIONS[op as PreviewOpName] : undefined;
  if (!def) {
    const message = `unknown operation; one of: ${PREVIEW_OP_NAMES.join(", ")}`;
    return { op, instance: PREVIEW_INSTANCE, problem: operationProblem([{ location: "operation.op", message }]) };
  }
  const shaped = def.shape.safeParse(rest);
  if (!shaped.success) {
    const errors = fieldErrors("body", shaped.error.issues).map((e) => ({
      ...e,
      location: e.location.replace(/^body/, "operation"),
    }));
    return { op, instance: PREVIEW_INSTANCE, problem: operationProblem(errors) };
  }
  const o = shaped.data as Fields;
  const instance = def.instance(o);
  try {
    return { op, instance, write: await def.prepare(o, ctx) };
  } catch (err) {
    const p = err instanceof Error ? mapError(err) : undefined;
    if (!p) {
      throw err;
    }
    return { op, instance, problem: p };
  }
}

function operationProblem(errors: FieldError[]): Problem {
  return invalid(errors).problem;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}
