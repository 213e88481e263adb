import { createHash, createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";

export interface CertificateInfo {
  subject: string;
  issuer: string;
  sans: string[];
  notBefore: Date;
  notAfter: Date;
  fingerprintSha256: string;
  /** Leaf + chain, normalized (LF line ends, one trailing newline). */
  certPem: string;
  keyPem: string;
}

export class CertificateProblem extends Error {
  constructor(
    readonly location: "body.cert_pem" | "body.key_pem",
    message: string,
  ) {
    super(message);
    this.name = "CertificateProblem";
  }
}

/** A certificate minted seconds ago on a machine whose clock runs a little ahead is still accepted. */
const CLOCK_SKEW_MS = 5 * 60_000;

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\n([A-Za-z0-9+/=\n]+?)\n?-----END \1-----/g;

/** Splits a PEM bundle into blocks; anything else in the text (trailing garbage, headers) is refused. */
function pemBlocks(text: string, location: CertificateProblem["location"]): { label: string; pem: string }[] {
  const t = text.replace(/\r\n/g, "\n").trim();
  if (!t.startsWith("-----BEGIN ")) {
    throw new CertificateProblem(location, "not PEM: expected -----BEGIN …-----");
  }
  const blocks: { label: string; pem: string }[] = [];
  let end = 0;
  for (const m of t.matchAll(BLOCK)) {
    if (t.slice(end, m.index).trim() !== "") {
      throw new CertificateProblem(location, "unexpected text between PEM blocks");
    }
    blocks.push({ label: m[1] ?? "", pem: `${m[0]}\n` });
    end = (m.index ?? 0) + m[0].length;
  }
  if (blocks.length === 0 || t.slice(end).trim() !== "") {
    throw new CertificateProblem(
      location,
      blocks.length === 0 ? "no complete PEM block" : "unexpected text after the last PEM block",
    );
  }
  return blocks;
}

function sansOf(cert: X509Certificate): string[] {
  const out = new Set<string>();
  for (const part of (cert.subjectAltName ?? "").split(",")) {
    const m = /^\s*DNS:(.+?)\s*$/.exec(part);
    if (m?.[1]) {
      out.add(m[1].toLowerCase());
    }
  }
  return [...out].sort();
}

/**
 * Validates an upload with node:crypto: PEM parses, the key matches the leaf, the leaf is valid now and
 * names at least one DNS SAN. Returns normalized PEM and the metadata the API shows.
 */
export function inspectCertificate(certText: string, keyText: string, now: Date): CertificateInfo {
  const certBlocks = pemBlocks(certText, "body.cert_pem");
  if (certBlocks.some((b) => b.label !== "CERTIFICATE")) {
    throw new CertificateProblem(
      "body.cert_pem",
      "only CERTIFICATE blocks belong in cert_pem (leaf first, then the chain)",
    );
  }
  let chain: X509Certificate[];
  try {
    chain = certBlocks.map((b) => new X509Certificate(b.pem));
  } catch {
    throw new CertificateProblem("body.cert_pem", "a CERTIFICATE block does not parse as X.509");
  }
  const keyBlocks = pemBlocks(keyText, "body.key_pem");
  if (keyBlocks.length !== 1 || !/PRIVATE KEY$/.test(keyBlocks[0]?.label ?? "")) {
    throw new CertificateProblem("body.key_pem", "key_pem must hold exactly one PRIVATE KEY block");
  }
  if (keyBlocks[0]?.label === "ENCRYPTED PRIVATE KEY") {
    throw new CertificateProblem(
      "body.key_pem",
      "the key is passphrase-protected; upload it unencrypted (it is encrypted at rest here)",
    );
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(keyBlocks[0]?.pem ?? "");
  } catch {
    throw new CertificateProblem("body.key_pem", "the private key does not parse");
  }
  const leaf = chain[0] as X509Certificate;
  if (!leaf.checkPrivateKey(key)) {
    throw new CertificateProblem("body.key_pem", "the private key does not match the certificate");
  }
  const notBefore = new Date(leaf.validFrom);
  const notAfter = new Date(leaf.validTo);
  if (notAfter.getTime() <= now.getTime()) {
    throw new CertificateProblem("body.cert_pem", `the certificate expired on ${notAfter.toISOString()}`);
  }
  if (notBefore.getTime() > now.getTime() + CLOCK_SKEW_MS) {
    throw new CertificateProblem("body.cert_pem", `the certificate is not valid before ${notBefore.toISOString()}`);
  }
  const sans = sansOf(leaf);
  if (sans.length === 0) {
    throw new CertificateProblem("body.cert_pem", "the certificate lists no DNS subject alternative names");
  }
  return {
    subject: leaf.subject.replace(/\n/g, ", "),
    issuer: leaf.issuer.replace(/\n/g, ", "),
    sans,
    notBefore,
    notAfter,
    fingerprintSha256: createHash("sha256").update(leaf.raw).digest("hex"),
    certPem: certBlocks.map((b) => b.pem).join(""),
    keyPem: key.export({ type: "pkcs8", format: "pem" }).toString(),
  };
}
