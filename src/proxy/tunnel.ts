import { isIP, connect as netConnect, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { connect as tlsConnect } from "node:tls";

export interface TunnelTarget {
  address: string;
  port: number;
  tls: boolean;
}

/** Why a tunnel failed before the upstream answered; the client socket is left to the caller. */
export type TunnelFailure =
  | { kind: "connect"; err: Error & { code?: string } } // nothing was sent: safe to retry elsewhere
  | { kind: "timeout" } // connected and sent, no answer within the response timeout
  | { kind: "closed" }; // connected and sent, closed without an answer

export interface TunnelOptions {
  /** The client's socket, handed over by the server's `upgrade` event. */
  client: Duplex;
  /** Bytes the client sent after the request head (the `upgrade` event's `head`). */
  head: Buffer;
  /** The request line and headers to send upstream, ending in an empty line. */
  requestHead: string;
  target: TunnelTarget;
  connectTimeoutMs: number;
  /** How long the upstream may take to answer the upgrade request. */
  responseTimeoutMs: number;
  /** Called at most once, before any upstream byte reached the client. */
  onFail(failure: TunnelFailure): void;
  /** Called once when the tunnel is gone, whatever the reason. */
  onClose(): void;
}

/**
 * Opens a TCP (or TLS) connection to the replica, sends the upgrade request, then pipes bytes both ways. The
 * upstream's answer (101 or an error status) goes to the client as is: the proxy does not parse it.
 */
export function openTunnel(opts: TunnelOptions): { destroy(): void } {
  const { client, target } = opts;
  const up: Socket = target.tls
    ? tlsConnect({
        host: target.address,
        port: target.port,
        ...(isIP(target.address) === 0 ? { servername: target.address } : {}),
        ALPNProtocols: ["http/1.1"],
      })
    : netConnect({ host: target.address, port: target.port });
  let state: "connecting" | "waiting" | "open" | "done" = "connecting";

  const done = () => {
    state = "done";
    clearTimeout(timer);
    opts.onClose();
  };
  const fail = (failure: TunnelFailure) => {
    if (state === "connecting" || state === "waiting") {
      up.destroy();
      done();
      opts.onFail(failure);
    }
  };
  const closeFromUpstream = () => {
    if (state === "open") {
      done();
      client.end(() => client.destroy()); // flush what the upstream sent, then close
    } else {
      fail({ kind: "closed" });
    }
  };
  const closeFromClient = () => {
    if (state !== "done") {
      up.destroy();
      done();
    }
  };

  let timer = setTimeout(() => {
    const err: Error & { code?: string } = new Error(`connect timeout after ${opts.connectTimeoutMs} ms`);
    err.code = "UND_ERR_CONNECT_TIMEOUT";
    fail({ kind: "connect", err });
  }, opts.connectTimeoutMs);

  up.once(target.tls ? "secureConnect" : "connect", () => {
    if (state !== "connecting") {
      return;
    }
    state = "waiting";
    clearTimeout(timer);
    timer = setTimeout(() => fail({ kind: "timeout" }), opts.responseTimeoutMs);
    up.setNoDelay(true);
    up.once("data", () => {
      if (state === "waiting") {
        state = "open";
        clearTimeout(timer);
      }
    });
    up.write(opts.requestHead);
    if (opts.head.length > 0) {
      up.write(opts.head);
    }
    up.pipe(client);
    client.pipe(up);
  });
  up.on("error", (err: Error & { code?: string }) => {
    if (state === "connecting") {
      fail({ kind: "connect", err });
    } else {
      closeFromUpstream();
    }
  });
  up.on("close", closeFromUpstream);
  client.on("error", closeFromClient);
  client.on("close", closeFromClient);
  return { destroy: closeFromClient };
}
