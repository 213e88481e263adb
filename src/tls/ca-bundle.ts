import { X509Certificate } from "node:crypto";

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\n([A-Za-z0-9+/=\n]+?)\n?-----END \1-----/g;

/** CRLF to LF, surrounding whitespace trimmed, one trailing newline: how a CA bundle is stored. */
export function normalizePem(text: string): string {
  return `${text.replace(/\r\n/g, "\n").trim()}\n`;
}

/**
 * Why a CA bundle (trusted instead of the system roots to verify https replicas) is unusable, or undefined: it
 * must be one or more `CERTIFICATE` PEM blocks that node:crypto parses as X.509, with nothing else around them
 * (a private key pasted by mistake is refused, never stored).
 */
export function checkCaBundle(text: string): string | undefined {
  const t = text.replace(/\r\n/g, "\n").trim();
  if (!t.startsWith("-----BEGIN ")) {
    return "not PEM: expected -----BEGIN CERTIFICATE-----";
  }
  let end = 0;
  let n = 0;
  for (const m of t.matchAll(BLOCK)) {
    n++;
    if (t.slice(end, m.index).trim() !== "") {
      return "unexpected text between PEM blocks";
    }
    end = (m.index ?? 0) + m[0].length;
    if (m[1] !== "CERTIFICATE") {
      return `block ${n} is ${m[1]}, not a CERTIFICATE (only CA certificates belong here)`;
    }
    try {
      new X509Certificate(m[0]);
    } catch {
      return `block ${n} is not a valid X.509 certificate`;
    }
  }
  if (n === 0) {
    return "no complete PEM block";
  }
  if (t.slice(end).trim() !== "") {
    return "unexpected text after the last PEM block";
  }
  return undefined;
}
