import type { IncomingMessage, ServerResponse } from "node:http";
import type { Dispatcher } from "undici";
import { connectionListed, dropListed, isHopByHop, isNamed } from "./headers.js";
import type { RequestScan } from "./request.js";
import type { TableBackend, TableReplica } from "./table.js";

/** What an exchange needs from the proxy around it. */
export interface ExchangeHost {
  dispatcherFor(origin: string): Dispatcher;
  upstreamFailed(ex: Exchange, err: Error & { code?: string }): void;
}

/**
 * One proxied request: an undici dispatch handler that copies the upstream response into the client's
 * `ServerResponse`, streaming with backpressure. Uses undici's raw-header handler interface, which skips
 * building header objects on the hot path.
 */
export class Exchange implements Dispatcher.DispatchHandler {
  /** onConnect ran: the request reached a socket, so a failure now is not a connect failure. */
  connected = false;
  /** The upstream's status line arrived (from then on a failure can only cut the response). */
  responded = false;
  /** The client left; whatever the upstream does no longer matters. */
  cancelled = false;
  /** 0 for the first try, 1 for the retry on the next-best replica. */
  attempt = 0;
  private abortUpstream: ((err?: Error) => void) | undefined;
  private resumeUpstream: (() => void) | undefined;

  constructor(
    readonly host: ExchangeHost,
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly scan: RequestScan,
    readonly backend: TableBackend,
    public replica: TableReplica,
  ) {
    res.once("close", this.onClientClose);
  }

  /** Sends the request to `this.replica`. */
  dispatch(): void {
    const { req, scan } = this;
    this.connected = false;
    this.host.dispatcherFor(this.replica.origin).dispatch(
      {
        path: req.url ?? "/",
        method: (req.method ?? "GET") as Dispatcher.HttpMethod,
        headers: scan.headers,
        body: scan.hasBody ? req : null,
      },
      this,
    );
  }

  /** GET, HEAD and OPTIONS without a body may go to a second replica when the first cannot be reached. */
  get retryable(): boolean {
    const m = this.req.method;
    return !this.scan.hasBody && (m === "GET" || m === "HEAD" || m === "OPTIONS");
  }

  private readonly onClientClose = (): void => {
    if (this.res.writableFinished) {
      return;
    }
    this.cancelled = true;
    this.abortUpstream?.(new Error("client closed the connection"));
  };

  onConnect(abort: (err?: Error) => void): void {
    this.connected = true;
    this.abortUpstream = abort;
    if (this.cancelled) {
      abort(new Error("client closed the connection"));
    }
  }

  onHeaders(statusCode: number, raw: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) {
      return true; // 1xx informational: Node already answered the client's Expect
    }
    this.responded = true;
    this.resumeUpstream = resume;
    const out: string[] = [];
    let connection: string | undefined;
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = (raw[i] as Buffer).toString("latin1");
      if (isHopByHop(name)) {
        if (isNamed(name, "connection")) {
          connection = (raw[i + 1] as Buffer).toString("latin1");
        }
        continue;
      }
      out.push(name, (raw[i + 1] as Buffer).toString("latin1"));
    }
    const listed = connectionListed(connection);
    if (listed.length > 0) {
      dropListed(out, listed);
    }
    if (this.cancelled) {
      return true;
    }
    if (statusText) {
      this.res.writeHead(statusCode, statusText, out);
    } else {
      this.res.writeHead(statusCode, out);
    }
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.res.write(chunk)) {
      return true;
    }
    if (this.res.destroyed) {
      return true; // the close handler aborts the upstream
    }
    const resume = this.resumeUpstream;
    if (resume) {
      this.res.once("drain", resume);
    }
    return false;
  }

  onComplete(): void {
    this.res.end();
  }

  onError(err: Error): void {
    this.host.upstreamFailed(this, err);
  }
}
