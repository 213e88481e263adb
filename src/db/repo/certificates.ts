import { asc, count, eq } from "drizzle-orm";
import { type CertificateRow, certificates } from "../../../schema/tables.js";
import type { TlsCertificateInput } from "../../render/types.js";
import type { CertificateInfo } from "../../tls/certificate.js";
import { decryptSecret, encryptSecret } from "../../tls/crypto.js";
import type { Db } from "../client.js";
import { Conflict, isUniqueViolation, NotFound } from "../errors.js";
import { newId } from "../ids.js";

export type CertificateMeta = Omit<CertificateRow, "certPem" | "keyEncrypted">;

const meta = {
  id: certificates.id,
  subject: certificates.subject,
  issuer: certificates.issuer,
  sans: certificates.sans,
  notBefore: certificates.notBefore,
  notAfter: certificates.notAfter,
  fingerprintSha256: certificates.fingerprintSha256,
  createdAt: certificates.createdAt,
  updatedAt: certificates.updatedAt,
};

/** Stores a validated certificate; the private key only ever reaches the database encrypted. */
export async function createCertificate(db: Db, info: CertificateInfo, key: Buffer): Promise<CertificateMeta> {
  try {
    // In its own (sub)transaction: a duplicate must leave the caller's transaction usable for the lookup below.
    const [row] = await db.transaction((tx) =>
      tx
        .insert(certificates)
        .values({
          id: newId("crt"),
          certPem: info.certPem,
          keyEncrypted: encryptSecret(info.keyPem, key),
          subject: info.subject,
          issuer: info.issuer,
          sans: info.sans,
          notBefore: info.notBefore,
          notAfter: info.notAfter,
          fingerprintSha256: info.fingerprintSha256,
        })
        .returning(meta),
    );
    if (!row) {
      throw new Error("insert returned no row");
    }
    return row;
  } catch (err) {
    if (isUniqueViolation(err)) {
      const [dup] = await db
        .select({ id: certificates.id })
        .from(certificates)
        .where(eq(certificates.fingerprintSha256, info.fingerprintSha256));
      throw new Conflict(
        `This certificate is already uploaded as ${dup?.id ?? "another certificate"}.`,
        "CERTIFICATE_EXISTS",
        {
          certificate_id: dup?.id ?? null,
        },
      );
    }
    throw err;
  }
}

export async function listCertificates(db: Db): Promise<CertificateMeta[]> {
  return db.select(meta).from(certificates).orderBy(asc(certificates.id));
}

export async function getCertificate(db: Db, id: string): Promise<CertificateMeta> {
  const [row] = await db.select(meta).from(certificates).where(eq(certificates.id, id));
  if (!row) {
    throw new NotFound("certificate", id);
  }
  return row;
}

export async function deleteCertificate(db: Db, id: string): Promise<void> {
  const gone = await db.delete(certificates).where(eq(certificates.id, id)).returning({ id: certificates.id });
  if (gone.length === 0) {
    throw new NotFound("certificate", id);
  }
}

export async function countCertificates(db: Db): Promise<number> {
  const [row] = await db.select({ n: count() }).from(certificates);
  return row?.n ?? 0;
}

/** Certificates with decrypted keys for the renderer; ones this instance cannot decrypt are reported, not rendered. */
export async function loadCertificatesForRender(
  db: Db,
  key: Buffer,
): Promise<{ certs: TlsCertificateInput[]; failed: { id: string; reason: string }[] }> {
  const rows = await db
    .select({
      id: certificates.id,
      certPem: certificates.certPem,
      keyEncrypted: certificates.keyEncrypted,
      sans: certificates.sans,
    })
    .from(certificates);
  const certs: TlsCertificateInput[] = [];
  const failed: { id: string; reason: string }[] = [];
  for (const r of rows) {
    try {
      certs.push({ id: r.id, certPem: r.certPem, keyPem: decryptSecret(r.keyEncrypted, key), sans: r.sans });
    } catch (err) {
      failed.push({ id: r.id, reason: err instanceof Error ? err.message : "cannot decrypt" });
    }
  }
  return { certs, failed };
}
