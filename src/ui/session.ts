import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, timingSafeEqual } from "node:crypto";

// The console's session: the token the operator logged in with, sealed (AES-256-GCM) into an HttpOnly cookie. The
// browser's JavaScript never sees it; every instance sharing CERT_ENCRYPTION_KEY can open it, and each request is
// authenticated again with it (a revoked token ends the session at once).

export const SESSION_COOKIE = "obr_console";
/** Sessions end after this even when the token lives on. */
export const SESSION_MAX_AGE_SECONDS = 12 * 3600;

export interface SessionKeys {
  seal: Buffer;
  csrf: Buffer;
}

/** Keys of their own, derived from the service's key (never the key itself). */
export function sessionKeys(certKey: Buffer): SessionKeys {
  const derive = (info: string) => Buffer.from(hkdfSync("sha256", certKey, Buffer.alloc(0), info, 32));
  return { seal: derive("obiente-console-session"), csrf: derive("obiente-console-csrf") };
}

/** The cookie value for `token`, issued at `now`. */
export function sealSession(keys: SessionKeys, token: string, now: Date): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", keys.seal, iv);
  const body = Buffer.concat([cipher.update(JSON.stringify({ t: token, iat: now.getTime() }), "utf8"), cipher.final()]);
  return [iv, cipher.getAuthTag(), body].map((b) => b.toString("base64url")).join(".");
}

/** The token a cookie holds, when it is ours, intact and not older than SESSION_MAX_AGE_SECONDS. */
export function openSession(keys: SessionKeys, cookie: string | undefined, now: Date): string | undefined {
  const parts = cookie?.split(".");
  if (parts?.length !== 3) {
    return undefined;
  }
  try {
    const [iv, tag, body] = parts.map((p) => Buffer.from(p, "base64url")) as [Buffer, Buffer, Buffer];
    const decipher = createDecipheriv("aes-256-gcm", keys.seal, iv);
    decipher.setAuthTag(tag);
    const plain = JSON.parse(Buffer.concat([decipher.update(body), decipher.final()]).toString("utf8")) as {
      t?: unknown;
      iat?: unknown;
    };
    const age = now.getTime() - Number(plain.iat);
    return typeof plain.t === "string" && age >= 0 && age < SESSION_MAX_AGE_SECONDS * 1000 ? plain.t : undefined;
  } catch {
    return undefined; // not ours, tampered with, or sealed with another key
  }
}

/** The CSRF token of a session: forms that write carry it; an attacker's page cannot read it. */
export function csrfToken(keys: SessionKeys, cookie: string): string {
  return createHmac("sha256", keys.csrf).update(cookie).digest("base64url");
}

export function csrfMatches(keys: SessionKeys, cookie: string, presented: string | undefined): boolean {
  const expected = Buffer.from(csrfToken(keys, cookie));
  const got = Buffer.from(presented ?? "");
  return got.length === expected.length && timingSafeEqual(got, expected);
}
