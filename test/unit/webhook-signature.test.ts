import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { refusedWebhookAddress } from "../../src/events/webhook-address.js";
import { deliveryHeaders, newWebhookSecret, signWebhook } from "../../src/events/webhook-signature.js";
import { describeFailure, retryDelayMs, WEBHOOK_MAX_ATTEMPTS } from "../../src/events/webhook-worker.js";
import { verifyWebhook } from "../helpers/webhook-receiver.js";

const verify = (secret: string, headers: Record<string, string>, body: string, now: number) =>
  verifyWebhook(secret, headers, body, now);

describe("webhook signature", () => {
  const secret = newWebhookSecret();
  const body = JSON.stringify({ id: 7, type: "guard.held", at: "2026-06-01T00:00:00.000Z", data: { a: "é" } });
  const headers = deliveryHeaders(secret, { id: 7, type: "guard.held" }, 1_780_000_000, body);

  it("verifies with the documented recipe, and names the event and the delivery", () => {
    expect(verify(secret, headers, body, 1_780_000_030)).toBe(true);
    expect(headers).toMatchObject({
      "content-type": "application/json",
      "x-obiente-event": "guard.held",
      "x-obiente-delivery": "7",
      "x-obiente-timestamp": "1780000000",
    });
    expect(headers["x-obiente-signature"]).toMatch(/^sha256=[0-9a-f]{64}$/);
  });

  it("fails for another secret, a changed body, a changed timestamp or an old delivery", () => {
    expect(verify(newWebhookSecret(), headers, body, 1_780_000_000)).toBe(false);
    expect(verify(secret, headers, body.replace("7", "8"), 1_780_000_000)).toBe(false);
    expect(verify(secret, { ...headers, "x-obiente-timestamp": "1780000001" }, body, 1_780_000_000)).toBe(false);
    expect(verify(secret, headers, body, 1_780_000_000 + 3600)).toBe(false);
  });

  it("keys the HMAC with the secret's UTF-8 text", () => {
    expect(signWebhook("s3cret-s3cret-s3cret", 1, "{}")).toBe(
      `sha256=${createHmac("sha256", Buffer.from("s3cret-s3cret-s3cret", "utf8")).update("1.{}").digest("hex")}`,
    );
  });

  it("generates 32-byte base64url secrets", () => {
    const s = newWebhookSecret();
    expect(s).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(s, "base64url")).toHaveLength(32);
    expect(newWebhookSecret()).not.toBe(s);
  });
});

describe("webhook retries", () => {
  it("doubles from 1 s between attempts, bounded in number", () => {
    const delays = Array.from({ length: WEBHOOK_MAX_ATTEMPTS - 1 }, (_, i) => retryDelayMs(i + 1) / 1000);
    expect(delays).toEqual([1, 2, 4, 8, 16, 32, 64]);
    expect(retryDelayMs(40)).toBe(300_000);
  });

  it("records why an attempt got no response without its details", () => {
    expect(
      describeFailure(Object.assign(new Error("connect ECONNREFUSED 10.0.0.1:80"), { code: "ECONNREFUSED" })),
    ).toBe("connection failed (ECONNREFUSED)");
    expect(describeFailure(new DOMException("timed out", "TimeoutError"))).toBe("no response within 10 s");
    expect(describeFailure(new Error("anything"))).toBe("request failed");
  });
});

describe("webhook addresses (SSRF)", () => {
  const refused = (ip: string, allowPrivate = false) => refusedWebhookAddress(ip, allowPrivate);
  it.each([
    ["127.0.0.1", /loopback/],
    ["::1", /loopback/],
    ["10.1.2.3", /private/],
    ["172.20.0.1", /private/],
    ["192.168.1.1", /private/],
    ["100.64.0.1", /CGNAT/],
    ["169.254.1.1", /link-local/],
    ["fe80::1", /link-local/],
    ["fd12:3456::1", /unique local/],
    ["::ffff:127.0.0.1", /IPv6 form of a loopback/],
    ["64:ff9b::a00:1", /IPv6 form of a private/],
  ])("refuses %s unless WEBHOOK_ALLOW_PRIVATE", (ip, reason) => {
    expect(refused(ip)).toMatch(reason);
    expect(refused(ip)).toMatch(/WEBHOOK_ALLOW_PRIVATE=true/);
    expect(refused(ip, true)).toBeUndefined();
  });

  it.each([
    ["169.254.169.254", /metadata/],
    ["fd00:ec2::254", /metadata/],
    ["100.100.100.200", /metadata/],
    ["0.0.0.0", /unspecified/],
    ["::", /unspecified/],
    ["224.0.0.1", /multicast/],
    ["ff02::1", /multicast/],
    ["255.255.255.255", /broadcast/],
    ["::ffff:169.254.169.254", /metadata/],
  ])("refuses %s always", (ip, reason) => {
    expect(refused(ip, true)).toMatch(reason);
  });

  it.each(["93.184.216.34", "8.8.8.8", "2606:4700::1111", "172.32.0.1", "100.128.0.1"])("accepts %s", (ip) => {
    expect(refused(ip)).toBeUndefined();
  });
});
