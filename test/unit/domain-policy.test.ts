import { describe, expect, it } from "vitest";
import { checkDomainPolicy, domainWarnings } from "../../src/api/domain-policy.js";
import { checkDomain } from "../../src/render/validate.js";

// Issue 10 item 8. checkDomain (render, and the API first) is syntax plus "no wildcard directly under a public
// suffix"; checkDomainPolicy (API only) adds bare public suffixes, punycode and the bidi rule.
const apiCheck = (domain: string) => checkDomain(domain) ?? checkDomainPolicy(domain);

describe("domains under a public suffix", () => {
  it.each([
    ["example.co.uk"],
    ["*.example.co.uk"],
    ["alice.github.io"],
    ["*.alice.github.io"],
    ["example.com"],
    ["*.app.example.com"],
    ["www.ck"], // an exception rule (!www.ck) in the list
    ["city.kawasaki.jp"], // likewise, under the wildcard rule *.kawasaki.jp
    ["foo.internal"], // unknown TLD: only the TLD itself is the suffix
    ["xn--bcher-kva.de"],
    ["xn--mgbh0fb.xn--kgbechtv"], // right-to-left name that keeps the bidi rule
    ["xn--1-ymcl5hc.com"], // right-to-left label ending in a digit (allowed: EN at the end)
  ])("accepts %s", (domain) => {
    expect(apiCheck(domain)).toBeUndefined();
  });

  it.each([
    ["co.uk", "public suffix"],
    ["github.io", "public suffix"],
    ["blogspot.com", "public suffix"],
    ["xn--55qx5d.cn", "public suffix"], // 公司.cn
    ["foo.kawasaki.jp", "public suffix"], // matched by *.kawasaki.jp
    ["*.co.uk", "wildcard directly under the public suffix co.uk"],
    ["*.github.io", "wildcard directly under the public suffix github.io"],
    ["*.s3.amazonaws.com", "wildcard directly under the public suffix s3.amazonaws.com"],
    ["xn--abc.com", "not valid punycode"],
    ["app.xn--a-ecp.example.com", "not valid punycode"], // decodes to "a⒈", which IDNA disallows
    ["xn--wca.example.com", "not valid punycode"], // decodes to "Ü": IDNA maps it to "ü", so it is no valid label
    ["xn--e-xbb.example.com", "not valid punycode"], // decodes to "e" + combining acute: not in NFC
    ["*.xn--zz.example.com", "not valid punycode"],
    ["xn--abc-spe.com", "bidi rule"], // "abcא": left-to-right letters, then a Hebrew one
    ["3com.xn--mgbh0fb", "bidi rule"], // a label starting with a digit in a right-to-left name
    ["xn--1-zmcl5hc.com", "bidi rule"], // "1مثال": right-to-left label starting with a digit
  ])("refuses %s (%s)", (domain, reason) => {
    expect(apiCheck(domain)).toContain(reason);
  });

  it("keeps render's check syntactic plus wildcards: a bare suffix is refused by the API only", () => {
    expect(checkDomain("co.uk")).toBeUndefined();
    expect(checkDomain("*.co.uk")).toContain("public suffix");
  });
});

describe("mixed-script warnings", () => {
  it.each([
    ["xn--pypal-4ve.com", "Latin and Cyrillic"], // pаypal with a Cyrillic а
    ["shop.xn--80ak6aa92e.example.com", undefined], // аррӏе: all Cyrillic (one script), no mix
    ["example.com", undefined],
    ["xn--bcher-kva.de", undefined],
    ["xn--eckwd4c7c.jp", undefined], // ドメイン: Katakana only
    ["xn--r8jz45g.jp", undefined], // 例え: Han + Hiragana, a normal Japanese mix
    ["xn--wgv71a119e.jp", undefined],
  ])("%s → %s", (domain, mix) => {
    const warnings = domainWarnings(domain);
    if (mix === undefined) {
      expect(warnings).toEqual([]);
    } else {
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain(mix);
    }
  });
});
