import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

// Certificates for tests, made at test time with Debian's `openssl` CLI: no private key is ever committed.
// Everything is signed through `openssl ca`, because OpenSSL 3.0's `req`/`x509` cannot set a start date in the
// past (`-not_before` arrived in 3.4), and `ca -startdate/-enddate` can: that is how the expired and the
// not-yet-valid certificates are made. Results are memoized per module, i.e. per test file (vitest isolates files).

export interface TestCert {
  /** The leaf alone (PEM). */
  certPem: string;
  /** Leaf then issuer(s): what a customer uploads for a CA-issued certificate. Same as certPem when self-signed. */
  chainPem: string;
  /** PKCS#8 private key of the leaf (PEM, unencrypted). */
  keyPem: string;
  sans: string[];
  /** SHA-256 of the leaf DER as `openssl x509 -fingerprint -sha256` prints it, reduced to lower-case hex. */
  fingerprintSha256: string;
  notBefore: Date;
  notAfter: Date;
}

export interface CertOptions {
  sans: string[];
  /** Subject CN; defaults to the first SAN. */
  cn?: string;
  /** Validity in days from now, unless `end` is given. Default 90. */
  days?: number;
  /** Explicit validity window, for expired or not-yet-valid certificates; the start defaults to an hour ago. */
  start?: Date;
  end?: Date;
  /** Key algorithm; EC P-256 is quickest. */
  keyType?: "ec" | "rsa";
  /** Sign with a throwaway CA (cached per file) instead of self-signing; chainPem then holds leaf + CA. */
  issuedByCa?: boolean;
}

const CA_CONFIG = `[ ca ]
default_ca = CA_default
[ CA_default ]
dir = .
database = index.txt
serial = serial
new_certs_dir = .
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = copy
email_in_dn = no
[ policy_any ]
commonName = supplied
[ leaf_ext ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
[ ca_ext ]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
`;

function openssl(dir: string, args: string[], input?: string): string {
  return execFileSync("openssl", args, {
    cwd: dir,
    encoding: "utf8",
    stdio: ["pipe", "pipe", "pipe"],
    ...(input === undefined ? {} : { input }),
  });
}

/** `YYYYMMDDHHMMSSZ`, the form `openssl ca -startdate/-enddate` takes. */
function asn1Time(d: Date): string {
  return `${d.toISOString().replace(/[-:T]/g, "").slice(0, 14)}Z`;
}

function keyArgs(type: "ec" | "rsa"): string[] {
  return type === "ec" ? ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] : ["-newkey", "rsa:2048"];
}

/** Runs `fn` in a fresh temporary folder with an empty `openssl ca` database, then removes the folder. */
function inTempDir<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), "obiente-certs-"));
  try {
    writeFileSync(join(dir, "ca.cnf"), CA_CONFIG);
    writeFileSync(join(dir, "index.txt"), "");
    writeFileSync(join(dir, "serial"), `1${randomBytes(8).toString("hex").slice(1)}\n`); // positive, 64 bits
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Lower-case hex SHA-256 fingerprint as the openssl CLI computes it (not node:crypto, so it checks the API). */
export function opensslFingerprint(certPem: string): string {
  return inTempDir((dir) => {
    const out = openssl(dir, ["x509", "-noout", "-fingerprint", "-sha256"], certPem);
    const m = /Fingerprint=([0-9A-Fa-f:]+)/.exec(out);
    if (!m?.[1]) {
      throw new Error(`unexpected openssl output: ${out}`);
    }
    return m[1].replaceAll(":", "").toLowerCase();
  });
}

interface Ca {
  certPem: string;
  keyPem: string;
}

let ca: Ca | undefined;

/** A throwaway root CA, valid from a year ago for ten years. */
function testCa(): Ca {
  ca ??= inTempDir((dir) => {
    openssl(dir, [
      "req",
      "-new",
      ...keyArgs("ec"),
      "-nodes",
      "-keyout",
      "ca.key",
      "-out",
      "ca.csr",
      "-subj",
      "/CN=Test CA",
    ]);
    const now = Date.now();
    openssl(dir, [
      "ca",
      "-batch",
      "-config",
      "ca.cnf",
      "-selfsign",
      "-keyfile",
      "ca.key",
      "-in",
      "ca.csr",
      "-out",
      "ca.pem",
      "-notext",
      "-extensions",
      "ca_ext",
      "-startdate",
      asn1Time(new Date(now - 365 * 86_400_000)),
      "-enddate",
      asn1Time(new Date(now + 3650 * 86_400_000)),
    ]);
    return { certPem: readFileSync(join(dir, "ca.pem"), "utf8"), keyPem: readFileSync(join(dir, "ca.key"), "utf8") };
  });
  return ca;
}

function generate(opts: CertOptions): TestCert {
  const issuer = opts.issuedByCa ? testCa() : undefined;
  return inTempDir((dir) => {
    const cn = opts.cn ?? opts.sans[0] ?? "test";
    const args = ["req", "-new", ...keyArgs(opts.keyType ?? "ec"), "-nodes", "-keyout", "leaf.key", "-out", "leaf.csr"];
    args.push("-subj", `/CN=${cn}`);
    if (opts.sans.length > 0) {
      args.push("-addext", `subjectAltName=${opts.sans.map((s) => `DNS:${s}`).join(",")}`);
    }
    openssl(dir, args);
    const sign = ["ca", "-batch", "-config", "ca.cnf", "-in", "leaf.csr", "-out", "leaf.pem", "-notext"];
    sign.push("-extensions", "leaf_ext");
    if (issuer) {
      writeFileSync(join(dir, "ca.pem"), issuer.certPem);
      writeFileSync(join(dir, "ca.key"), issuer.keyPem);
      sign.push("-cert", "ca.pem", "-keyfile", "ca.key");
    } else {
      sign.push("-selfsign", "-keyfile", "leaf.key");
    }
    // Like public CAs, backdate the start an hour, so a certificate is valid the moment it is made.
    const now = Date.now();
    const start = opts.start ?? new Date(now - 3_600_000);
    const end = opts.end ?? new Date(now + (opts.days ?? 90) * 86_400_000);
    sign.push("-startdate", asn1Time(start), "-enddate", asn1Time(end));
    openssl(dir, sign);
    // openssl ca writes the PEM alone with -notext; normalize anyway so the chain is exactly two blocks.
    const certPem = readFileSync(join(dir, "leaf.pem"), "utf8");
    const keyPem = openssl(dir, ["pkey", "-in", "leaf.key"]);
    const dates = openssl(dir, ["x509", "-noout", "-startdate", "-enddate"], certPem);
    const date = (label: string) => {
      const m = new RegExp(`${label}=(.+)`).exec(dates);
      return new Date(m?.[1] ?? "invalid");
    };
    return {
      certPem,
      chainPem: issuer ? certPem + issuer.certPem : certPem,
      keyPem,
      sans: opts.sans,
      fingerprintSha256: opensslFingerprint(certPem),
      notBefore: date("notBefore"),
      notAfter: date("notAfter"),
    };
  });
}

const cache = new Map<string, TestCert>();

/**
 * A certificate made by openssl with the given SANs and validity; memoized per test file by its options, so
 * ask with a distinct `cn` when a test needs a second, different certificate for the same names.
 */
export function makeCert(opts: CertOptions): TestCert {
  const key = JSON.stringify({ ...opts, start: opts.start?.toISOString(), end: opts.end?.toISOString() });
  let cert = cache.get(key);
  if (!cert) {
    cert = generate(opts);
    cache.set(key, cert);
  }
  return cert;
}

/** Valid January 2020 only. */
export function expiredCert(sans: string[]): TestCert {
  return makeCert({ sans, start: new Date("2020-01-01T00:00:00Z"), end: new Date("2020-02-01T00:00:00Z") });
}

/** Valid only from 2099. */
export function notYetValidCert(sans: string[]): TestCert {
  return makeCert({ sans, start: new Date("2099-01-01T00:00:00Z"), end: new Date("2099-06-01T00:00:00Z") });
}

let unrelated: string | undefined;

/** A fresh P-256 private key (PKCS#8 PEM) that matches no certificate. */
export function unrelatedKey(): string {
  unrelated ??= inTempDir((dir) =>
    openssl(dir, ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]),
  );
  return unrelated;
}

/** The same key, passphrase-protected (`ENCRYPTED PRIVATE KEY`). */
export function encryptedKey(keyPem: string, passphrase = "correct horse"): string {
  return inTempDir((dir) => openssl(dir, ["pkey", "-aes256", "-passout", `pass:${passphrase}`], keyPem));
}

/** The same key in its legacy form (`EC PRIVATE KEY` / `RSA PRIVATE KEY`), as older tools write it. */
export function traditionalKey(keyPem: string): string {
  return inTempDir((dir) => openssl(dir, ["pkey", "-traditional"], keyPem));
}

/** The base64 body of a PEM block (no armour, no newlines): what a leak of the key would contain. */
export function pemBody(pem: string): string {
  return pem
    .split("\n")
    .filter((l) => l.length > 0 && !l.startsWith("-----"))
    .join("");
}

/**
 * 24-character runs of a private key's base64 body, past its first line: keys of one type share an ASN.1 header
 * (every P-256 PKCS#8 key starts `MIGHAgEAMBMGByqGSM49AgEG…`), so only the rest identifies the key.
 */
export function keyFragments(keyPem: string): string[] {
  const body = pemBody(keyPem).slice(64);
  const runs: string[] = [];
  for (let i = 0; i + 24 <= body.length; i += 24) {
    runs.push(body.slice(i, i + 24));
  }
  return runs;
}
