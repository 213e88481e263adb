import { randomBytes } from "node:crypto";

const ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz";

/** `prefix_` + 12 random base-36 characters, e.g. `dep_k3x9q0m2a7zp` (≈ 62 bits). */
export function newId(prefix: "dep" | "rt" | "crt" | "tok" | "wh"): string {
  const bytes = randomBytes(12);
  let out = "";
  for (const b of bytes) {
    out += ALPHABET[b % 36];
  }
  return `${prefix}_${out}`;
}
