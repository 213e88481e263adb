import { type ToASCIIOptions, toASCII, toUnicode } from "tr46";
import { isPublicSuffix, isWildcard } from "../render/validate.js";

// What the API refuses (or flags) in a domain for a new route, beyond the syntax render re-checks (issue 10,
// item 8). These run once per API request, not per route in render: tr46 and tldts lookups stay off the render
// path except the wildcard suffix check in checkDomain.

// UTS #46 as browsers apply it (WHATWG URL: CheckHyphens off, CheckJoiners on, non-transitional), with STD3 rules,
// since every label must also be a valid host name once decoded.
const IDNA: ToASCIIOptions = {
  checkBidi: false,
  checkHyphens: false,
  checkJoiners: true,
  useSTD3ASCIIRules: true,
  transitionalProcessing: false,
};

/**
 * Why a normalized, syntactically valid domain may not be routed: a public suffix itself (`co.uk`, `github.io`;
 * wildcards directly under one are refused by checkDomain), an `xn--` label that is not valid punycode of a valid
 * IDN label, or labels that break the IDNA bidi rule (RFC 5893 §2).
 */
export function checkDomainPolicy(domain: string): string | undefined {
  const name = isWildcard(domain) ? domain.slice(2) : domain;
  for (const label of name.split(".")) {
    if (label.startsWith("xn--") && toASCII(label, IDNA) !== label) {
      return `label ${label} is not valid punycode: it does not decode to an internationalized label (IDNA, RFC 5891)`;
    }
  }
  if (name.includes("xn--") && toASCII(name, { ...IDNA, checkBidi: true }) === null) {
    return `${domain} breaks the IDNA bidi rule (RFC 5893 §2): for example a label mixing right-to-left and left-to-right letters, or a label starting with a digit in a name with right-to-left labels`;
  }
  if (!isWildcard(domain) && isPublicSuffix(domain)) {
    return `${domain} is a public suffix (like co.uk or github.io); route a name registered under it`;
  }
  return undefined;
}

// Scripts told apart for the homoglyph check. A letter of any other script counts as "another script".
const SCRIPTS = [
  "Latin",
  "Cyrillic",
  "Greek",
  "Armenian",
  "Georgian",
  "Hebrew",
  "Arabic",
  "Syriac",
  "Thaana",
  "Devanagari",
  "Bengali",
  "Gurmukhi",
  "Gujarati",
  "Oriya",
  "Tamil",
  "Telugu",
  "Kannada",
  "Malayalam",
  "Sinhala",
  "Thai",
  "Lao",
  "Tibetan",
  "Myanmar",
  "Khmer",
  "Ethiopic",
  "Cherokee",
  "Han",
  "Hiragana",
  "Katakana",
  "Hangul",
  "Bopomofo",
].map((name) => ({ name, re: new RegExp(`^\\p{Script=${name}}$`, "u") }));

// UTS #39 "highly restrictive": one script, or Latin with the scripts Chinese, Japanese and Korean are written in.
const CJK_MIXES = [
  new Set(["Latin", "Han", "Hiragana", "Katakana"]),
  new Set(["Latin", "Han", "Bopomofo"]),
  new Set(["Latin", "Han", "Hangul"]),
];

function scriptsOf(label: string): string[] {
  const found = new Set<string>();
  for (const ch of label) {
    if (!/\p{L}/u.test(ch)) {
      continue; // digits, hyphens and combining marks belong to no one script
    }
    found.add(SCRIPTS.find((s) => s.re.test(ch))?.name ?? "another script");
  }
  return [...found];
}

/**
 * Warnings for a domain that is accepted but may imitate another (homoglyphs): an IDN label whose letters mix
 * scripts, like Latin with Cyrillic in `pаypal` (UTS #39 §5.2, highly restrictive).
 */
export function domainWarnings(domain: string): string[] {
  const warnings: string[] = [];
  for (const label of domain.split(".")) {
    if (!label.startsWith("xn--")) {
      continue; // an ASCII label is all Latin
    }
    const unicode = toUnicode(label, IDNA).domain;
    const scripts = scriptsOf(unicode);
    if (scripts.length > 1 && !CJK_MIXES.some((mix) => scripts.every((s) => mix.has(s)))) {
      warnings.push(
        `label ${label} (${unicode}) mixes ${scripts.join(" and ")} letters: it may imitate another name (homoglyphs)`,
      );
    }
  }
  return warnings;
}
