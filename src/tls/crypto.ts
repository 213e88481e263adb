import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";

// Private keys of uploaded certificates are stored AES-256-GCM encrypted: v1:<key id>:<iv>:<tag>:<ciphertext>.
// The key id (first 8 bytes of SHA-256 of the key) tells an instance with the wrong key apart from corruption.

export function keyId(key: Buffer): string {
  return createHash("sha256").update(key).digest("base64url").slice(0, 11);
}

export function encryptSecret(plaintext: string, key: Buffer): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", key, iv);
  const ct = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
  const tag = cipher.getAuthTag();
  return ["v1", keyId(key), iv.toString("base64url"), tag.toString("base64url"), ct.toString("base64url")].join(":");
}

export class WrongKey extends Error {
  constructor() {
    super("encrypted with a different CERT_ENCRYPTION_KEY");
    this.name = "WrongKey";
  }
}

export function decryptSecret(stored: string, key: Buffer): string {
  const [v, kid, iv, tag, ct] = stored.split(":");
  if (v !== "v1" || !kid || !iv || !tag || ct === undefined) {
    throw new Error("unknown encrypted secret format");
  }
  if (kid !== keyId(key)) {
    throw new WrongKey();
  }
  const decipher = createDecipheriv("aes-256-gcm", key, Buffer.from(iv, "base64url"));
  decipher.setAuthTag(Buffer.from(tag, "base64url"));
  return Buffer.concat([decipher.update(Buffer.from(ct, "base64url")), decipher.final()]).toString("utf8");
}

/** CERT_ENCRYPTION_KEY: 32 bytes as 64 hex chars or base64/base64url. */
export function parseEncryptionKey(raw: string): Buffer | undefined {
  const t = raw.trim();
  if (/^[0-9a-fA-F]{64}$/.test(t)) {
    return Buffer.from(t, "hex");
  }
  const b = Buffer.from(t, t.includes("-") || t.includes("_") ? "base64url" : "base64");
  return b.length === 32 ? b : undefined;
}
