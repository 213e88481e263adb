// PROTOTYPE, not product code: measures how much a lean upstream client would save over undici (issue #6
// benchmark notes). Node's own llhttp binding (`_http_common`'s HTTPParser, an internal API) parses the response
// head; Content-Length bodies are then forwarded as raw socket slices (returning 2 = "upgrade" from
// kOnHeadersComplete stops the parser right after the head, and execute() returns the head's length), because
// HTTPParser copies every body chunk into a new Buffer and calls into JS once per chunk. Missing on purpose:
// timeouts, request bodies, retries, TLS, errors, CPU choice. Same env as the harness: PORT, BENCH_ROUTES.
// Compare per request CPU with bench/proxy.pair.sh (both proxies share one pinned core at once).

import { readFileSync } from "node:fs";
import http from "node:http";
import { createRequire } from "node:module";
import net from "node:net";

const require = createRequire(import.meta.url);
const { HTTPParser } = require("node:_http_common");
const { kOnHeadersComplete, kOnBody, kOnMessageComplete, kOnHeaders, RESPONSE } = HTTPParser;

const PORT = Number(process.env.PORT ?? 18090);
const routes = JSON.parse(
  readFileSync(process.env.BENCH_ROUTES ?? new URL("../../shared/bench/conf/routes.json", import.meta.url), "utf8"),
);
function isHop(k) {
  switch (k.length) {
    case 2:
      return k.toLowerCase() === "te";
    case 7:
      return k.toLowerCase() === "trailer" || k.toLowerCase() === "upgrade";
    case 10:
      return k.toLowerCase() === "connection" || k.toLowerCase() === "keep-alive";
    case 17:
      return k.toLowerCase() === "transfer-encoding";
    default:
      return false;
  }
}
const RES = {};
class Conn {
  constructor(up) {
    this.up = up;
    this.ex = null;
    this.left = -1;
    this.keepAlive = false;
    const s = net.connect(up.port, up.host);
    this.socket = s;
    s.setNoDelay(true);
    const p = new HTTPParser();
    this.parser = p;
    p.initialize(RESPONSE, RES, 0, 0);
    p[kOnHeaders] = () => {};
    p[kOnHeadersComplete] = (_vM, _vm, headers, _method, _url, status, statusMessage, _upgrade, keepAlive) => {
      this.keepAlive = keepAlive;
      const ex = this.ex;
      if (!ex) {
        return 1;
      }
      const out = [];
      let cl = -1;
      for (let i = 0; i < headers.length; i += 2) {
        const k = headers[i];
        if (isHop(k)) {
          continue;
        }
        if (k.length === 14 && k.toLowerCase() === "content-length") {
          cl = Number(headers[i + 1]);
        }
        out.push(k, headers[i + 1]);
      }
      ex.res.writeHead(status, statusMessage, out);
      if (ex.head || status === 204 || status === 304) {
        return 1;
      }
      if (cl >= 0) {
        this.left = cl;
        return 2;
      } // raw body: stop the parser right after the head
      return 0;
    };
    p[kOnBody] = (b) => {
      const ex = this.ex;
      if (ex) {
        ex.res.write(b);
      }
    };
    p[kOnMessageComplete] = () => {
      if (this.left < 0) {
        this.done();
      }
    };
    s.on("data", (d) => this.onData(d));
    s.on("error", () => {});
    s.on("close", () => {
      this.up.drop(this);
      const ex = this.ex;
      this.ex = null;
      if (ex && !ex.res.headersSent) {
        ex.res.writeHead(502);
        ex.res.end();
      } else if (ex) {
        ex.res.destroy();
      }
    });
  }
  onData(d) {
    if (this.left >= 0) {
      this.raw(d);
      return;
    }
    const r = this.parser.execute(d);
    if (typeof r !== "number") {
      this.socket.destroy();
      return;
    }
    if (this.left >= 0) {
      if (r < d.length) {
        this.raw(d.subarray(r));
      } else if (this.left === 0) {
        this.rawDone();
      }
    }
  }
  raw(d) {
    const n = Math.min(d.length, this.left);
    this.left -= n;
    const ex = this.ex;
    if (ex && n > 0) {
      ex.res.write(n === d.length ? d : d.subarray(0, n));
    }
    if (this.left === 0) {
      this.rawDone();
    }
  }
  rawDone() {
    this.left = -1;
    this.parser.initialize(RESPONSE, RES, 0, 0);
    this.done();
  }
  done() {
    const ex = this.ex;
    this.ex = null;
    if (ex) {
      ex.res.end();
    }
    if (this.keepAlive) {
      this.up.release(this);
    } else {
      this.socket.destroy();
    }
  }
}
class Upstream {
  constructor(addr) {
    const i = addr.lastIndexOf(":");
    this.host = addr.slice(0, i);
    this.port = Number(addr.slice(i + 1));
    this.idle = [];
  }
  send(ex, head) {
    let c = this.idle.pop();
    if (!c) {
      c = new Conn(this);
    }
    c.ex = ex;
    c.socket.write(head, "latin1");
  }
  release(c) {
    this.idle.push(c);
  }
  drop(c) {
    const i = this.idle.indexOf(c);
    if (i !== -1) {
      this.idle.splice(i, 1);
    }
  }
}
const pools = new Map();
for (const [name, addrs] of Object.entries(routes)) {
  pools.set(name, { next: 0, targets: addrs.map((a) => new Upstream(a)) });
}
const server = http.createServer((req, res) => {
  let host = req.headers.host ?? "";
  const c = host.indexOf(":");
  if (c !== -1) {
    host = host.slice(0, c);
  }
  const p = pools.get(host);
  if (!p) {
    res.writeHead(404);
    res.end();
    return;
  }
  const t = p.targets[p.next];
  p.next = (p.next + 1) % p.targets.length;
  const raw = req.rawHeaders;
  let head = `${req.method} ${req.url} HTTP/1.1\r\n`;
  for (let i = 0; i < raw.length; i += 2) {
    if (!isHop(raw[i])) {
      head += `${raw[i]}: ${raw[i + 1]}\r\n`;
    }
  }
  head += `x-forwarded-for: ${req.socket.remoteAddress}\r\nx-forwarded-proto: http\r\nx-forwarded-host: ${host}\r\nconnection: keep-alive\r\n\r\n`;
  t.send({ res, head: req.method === "HEAD" }, head);
});
server.keepAliveTimeout = 120_000;
server.listen(PORT, "127.0.0.1");
for (const s of ["SIGTERM", "SIGINT"]) {
  process.on(s, () => process.exit(0));
}
