import { describe, expect, it } from "vitest";
import { httpFailure, type UpstreamFailure, upstreamVerdict } from "../../src/proxy/verdict.js";

const err = (code: string | undefined, message = "boom") => Object.assign(new Error(message), { code });

describe("httpFailure", () => {
  const before = { connected: false, responded: false };
  const sent = { connected: true, responded: false };
  const answered = { connected: true, responded: true };
  const cases: [string, string | undefined, typeof before, UpstreamFailure["kind"]][] = [
    ["refused before connecting", "ECONNREFUSED", before, "connect"],
    ["connect timeout", "UND_ERR_CONNECT_TIMEOUT", before, "connect"],
    ["TLS failure", "ERR_TLS_CERT_ALTNAME_INVALID", before, "connect"],
    ["certificate failure", "DEPTH_ZERO_SELF_SIGNED_CERT", before, "connect"],
    ["socket error before connecting", "UND_ERR_SOCKET", before, "connect"],
    ["headers timeout", "UND_ERR_HEADERS_TIMEOUT", sent, "timeout"],
    ["body timeout", "UND_ERR_BODY_TIMEOUT", answered, "timeout"],
    ["kept-alive socket closed before the answer", "UND_ERR_SOCKET", sent, "closed"],
    ["reset before the answer", "ECONNRESET", sent, "closed"],
    ["reset after the answer", "ECONNRESET", answered, "invalid"],
    ["invalid request argument", "UND_ERR_INVALID_ARG", before, "unsendable"],
    ["content-length mismatch", "UND_ERR_REQ_CONTENT_LENGTH_MISMATCH", sent, "unsendable"],
    ["a parse error", "HPE_INVALID_CONSTANT", sent, "invalid"],
    ["no code before connecting", undefined, before, "invalid"],
  ];
  it.each(cases)("%s (%s)", (_, code, progress, kind) => {
    expect(httpFailure(err(code), progress).kind).toBe(kind);
  });
});

describe("upstreamVerdict", () => {
  const refused: UpstreamFailure = { kind: "connect", err: err("ECONNREFUSED") };
  const connectTimeout: UpstreamFailure = { kind: "connect", err: err("UND_ERR_CONNECT_TIMEOUT") };
  const noCode: UpstreamFailure = { kind: "connect", err: err(undefined, "getaddrinfo failed") };
  type Row = [
    string,
    UpstreamFailure,
    "http" | "websocket",
    boolean,
    { failed: string | undefined; retry: boolean; status: number; code: string; detail: string },
  ];
  const cases: Row[] = [
    // HTTP
    [
      "refused, retryable",
      refused,
      "http",
      true,
      {
        failed: "connection failed: ECONNREFUSED",
        retry: true,
        status: 502,
        code: "BAD_UPSTREAM",
        detail: "The replica could not be reached.",
      },
    ],
    [
      "refused, not retryable",
      refused,
      "http",
      false,
      {
        failed: "connection failed: ECONNREFUSED",
        retry: false,
        status: 502,
        code: "BAD_UPSTREAM",
        detail: "The replica could not be reached.",
      },
    ],
    [
      "connect timeout",
      connectTimeout,
      "http",
      true,
      {
        failed: "connect timeout",
        retry: true,
        status: 504,
        code: "UPSTREAM_TIMEOUT",
        detail: "The replica did not accept the connection in time.",
      },
    ],
    [
      "connect error without code",
      noCode,
      "http",
      false,
      {
        failed: "connection failed: getaddrinfo failed",
        retry: false,
        status: 502,
        code: "BAD_UPSTREAM",
        detail: "The replica could not be reached.",
      },
    ],
    [
      "response timeout",
      { kind: "timeout" },
      "http",
      true,
      {
        failed: undefined,
        retry: false,
        status: 504,
        code: "UPSTREAM_TIMEOUT",
        detail: "The replica did not answer in time.",
      },
    ],
    [
      "kept-alive socket closed, retryable",
      { kind: "closed" },
      "http",
      true,
      {
        failed: undefined,
        retry: true,
        status: 502,
        code: "BAD_UPSTREAM",
        detail: "The replica sent no valid response.",
      },
    ],
    [
      "kept-alive socket closed, not retryable",
      { kind: "closed" },
      "http",
      false,
      {
        failed: undefined,
        retry: false,
        status: 502,
        code: "BAD_UPSTREAM",
        detail: "The replica sent no valid response.",
      },
    ],
    [
      "unsendable request",
      { kind: "unsendable" },
      "http",
      true,
      {
        failed: undefined,
        retry: false,
        status: 400,
        code: "BAD_REQUEST",
        detail: "The request could not be forwarded as sent.",
      },
    ],
    [
      "invalid response",
      { kind: "invalid" },
      "http",
      true,
      {
        failed: undefined,
        retry: false,
        status: 502,
        code: "BAD_UPSTREAM",
        detail: "The replica sent no valid response.",
      },
    ],
    // WebSocket upgrades
    [
      "upgrade refused, first attempt",
      refused,
      "websocket",
      true,
      {
        failed: "connection failed: ECONNREFUSED",
        retry: true,
        status: 502,
        code: "BAD_UPSTREAM",
        detail: "The replica could not be reached for the upgrade.",
      },
    ],
    [
      "upgrade refused, second attempt",
      refused,
      "websocket",
      false,
      {
        failed: "connection failed: ECONNREFUSED",
        retry: false,
        status: 502,
        code: "BAD_UPSTREAM",
        detail: "The replica could not be reached for the upgrade.",
      },
    ],
    [
      "upgrade connect timeout",
      connectTimeout,
      "websocket",
      true,
      {
        failed: "connect timeout",
        retry: true,
        status: 504,
        code: "UPSTREAM_TIMEOUT",
        detail: "The replica did not answer the upgrade in time.",
      },
    ],
    [
      "upgrade unanswered",
      { kind: "timeout" },
      "websocket",
      true,
      {
        failed: undefined,
        retry: false,
        status: 504,
        code: "UPSTREAM_TIMEOUT",
        detail: "The replica did not answer the upgrade in time.",
      },
    ],
    [
      "upgrade connection closed",
      { kind: "closed" },
      "websocket",
      true,
      {
        failed: undefined,
        retry: false,
        status: 502,
        code: "BAD_UPSTREAM",
        detail: "The replica could not be reached for the upgrade.",
      },
    ],
    [
      "bad handshake",
      { kind: "handshake" },
      "websocket",
      true,
      {
        failed: undefined,
        retry: false,
        status: 502,
        code: "BAD_UPSTREAM",
        detail: "The replica did not complete the WebSocket handshake.",
      },
    ],
  ];
  it.each(cases)("%s", (_, failure, path, retryable, expected) => {
    const v = upstreamVerdict(failure, path, retryable);
    expect({
      failed: v.failed,
      retry: v.retry,
      status: v.problem.status,
      code: v.problem.code,
      detail: v.problem.detail,
    }).toEqual(expected);
  });

  it("answers upstream trouble without extra headers", () => {
    expect(upstreamVerdict(refused, "http", true).problem).toEqual({
      status: 502,
      code: "BAD_UPSTREAM",
      title: "Bad upstream",
      detail: "The replica could not be reached.",
    });
  });
});
