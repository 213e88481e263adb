import { createHmac, randomBytes } from "node:crypto";

// How a receiver knows a delivery is ours and fresh: X-Obiente-Signature is `sha256=` + the hex HMAC-SHA256, keyed
// with the webhook's secret (its UTF-8 bytes), of `<X-Obiente-Timestamp>.<raw body>`. The timestamp inside the MAC
// lets a receiver refuse replays older than a few minutes.

export const SIGNATURE_HEADER = "x-obiente-signature";
export const TIMESTAMP_HEADER = "x-obiente-timestamp";
export const EVENT_HEADER = "x-obiente-event";
export const DELIVERY_HEADER = "x-obiente-delivery";

/** A new signing secret: 32 random bytes, base64url (43 characters). */
export const newWebhookSecret = () => randomBytes(32).toString("base64url");

/** `sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>`. */
export function signWebhook(secret: string, timestamp: number, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex")}`;
}

/** The headers of one delivery attempt. */
export function deliveryHeaders(
  secret: string,
  event: { id: number; type: string },
  timestamp: number,
  body: string,
): Record<string, string> {
  return {
    "content-type": "application/json",
    "user-agent": "obiente-router-webhooks",
    [EVENT_HEADER]: event.type,
    [DELIVERY_HEADER]: String(event.id),
    [TIMESTAMP_HEADER]: String(timestamp),
    [SIGNATURE_HEADER]: signWebhook(secret, timestamp, body),
  };
}
