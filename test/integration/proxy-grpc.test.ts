import {
  type Client,
  type ClientDuplexStream,
  type ClientReadableStream,
  credentials,
  Server as GrpcServer,
  type handleBidiStreamingCall,
  type handleServerStreamingCall,
  type handleUnaryCall,
  Metadata,
  makeGenericClientConstructor,
  ServerCredentials,
  type ServiceDefinition,
  type ServiceError,
  status,
} from "@grpc/grpc-js";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deploymentLocations } from "../../schema/tables.js";
import type { RunningProxy } from "../../src/proxy/server.js";
import { deploymentServiceName, routeName } from "../../src/render/names.js";
import { renderDynamicConfig } from "../../src/render/render.js";
import { aReplica, aRoute, settings } from "../fixtures/rows.js";
import { DRIVERS, makeTestDb, type TestDb } from "../helpers/db.js";
import { fakeClock } from "../helpers/replica.js";
import { seedDeployment, startTestProxy } from "../helpers/test-proxy.js";
import { traefikSchemaErrors } from "../helpers/traefik-schema.js";

// gRPC through the fallback proxy (least-CPU for an h2c deployment): Traefik speaks h2c to the proxy (the rendered
// service URL is h2c://), the proxy checks the secret, picks the replica with the lowest CPU and carries the call
// to it over h2c, streaming both ways with trailers intact. A real grpc-js client and real grpc-js servers.

const SECRET = "test-proxy-secret-0123456789abcdef";

interface Req {
  text: string;
  count?: number;
}
interface Reply {
  text: string;
  replica: string;
  /** Request metadata the replica saw (to show what the proxy forwards and what it keeps to itself). */
  seen?: Record<string, string>;
}

const json = <T>() => ({
  serialize: (v: T) => Buffer.from(JSON.stringify(v)),
  deserialize: (b: Buffer) => JSON.parse(b.toString()) as T,
});
const req = json<Req>();
const reply = json<Reply>();
const method = (path: string, responseStream: boolean, requestStream = false) => ({
  path,
  requestStream,
  responseStream,
  requestSerialize: req.serialize,
  requestDeserialize: req.deserialize,
  responseSerialize: reply.serialize,
  responseDeserialize: reply.deserialize,
});
/** A test service without .proto files: JSON messages. */
const SERVICE = {
  echo: method("/test.Echo/Echo", false),
  count: method("/test.Echo/Count", true),
  fail: method("/test.Echo/Fail", false),
  chat: method("/test.Echo/Chat", true, true),
} satisfies ServiceDefinition;

/** A grpc-js server on 127.0.0.1 that names itself in every reply. */
async function startGrpcReplica(name: string) {
  const server = new GrpcServer();
  /** Calls the client cancelled, as the replica saw them. */
  const cancelled: string[] = [];
  const echo: handleUnaryCall<Req, Reply> = (call, callback) => {
    const seen: Record<string, string> = {};
    for (const key of ["x-caller", "x-obiente-proxy-secret", "x-obiente-deployment", "x-forwarded-for"]) {
      const v = call.metadata.get(key)[0];
      if (v !== undefined) {
        seen[key] = String(v);
      }
    }
    call.sendMetadata(new Metadata()); // response headers first, so the reply and status come in DATA + trailers
    const trailing = new Metadata();
    trailing.set("x-replica", name);
    callback(null, { text: call.request.text, replica: name, seen }, trailing);
  };
  const count: handleServerStreamingCall<Req, Reply> = (call) => {
    const n = call.request.count ?? 0;
    let i = 0;
    const timer = setInterval(() => {
      if (i === n) {
        clearInterval(timer);
        if (call.request.text === "then fail") {
          call.emit("error", { code: status.RESOURCE_EXHAUSTED, details: `stopped after ${n}` });
          return;
        }
        call.end();
        return;
      }
      call.write({ text: `${call.request.text} ${++i}`, replica: name });
    }, 20);
    call.on("cancelled", () => {
      clearInterval(timer);
      cancelled.push(call.request.text);
    });
  };
  /** Bidirectional: answers each message as it comes, and ends when the client does. */
  const chat: handleBidiStreamingCall<Req, Reply> = (call) => {
    call.on("data", (m: Req) => call.write({ text: m.text.toUpperCase(), replica: name }));
    call.on("end", () => call.end());
  };
  const fail: handleUnaryCall<Req, Reply> = (_call, callback) => {
    const md = new Metadata();
    md.set("x-reason", "precondition");
    callback({ code: status.FAILED_PRECONDITION, details: "the order is already shipped", metadata: md });
  };
  server.addService(SERVICE, { echo, count, fail, chat });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { name, port, cancelled, close: () => server.forceShutdown() };
}

type EchoClient = Client & {
  echo(r: Req, md: Metadata, cb: (err: ServiceError | null, v?: Reply) => void): { on(e: string, f: unknown): void };
  fail(r: Req, md: Metadata, cb: (err: ServiceError | null, v?: Reply) => void): unknown;
  count(r: Req, md: Metadata): ClientReadableStream<Reply>;
  chat(md: Metadata): ClientDuplexStream<Req, Reply>;
};
const EchoClient = makeGenericClientConstructor(SERVICE, "Echo") as unknown as new (
  address: string,
  creds: ReturnType<typeof credentials.createInsecure>,
) => EchoClient;

/** What Traefik's `<route>--least-cpu` headers middleware adds, as gRPC metadata. */
function edge(deployment = "dep_grpc", secret: string | null = SECRET): Metadata {
  const md = new Metadata();
  md.set("x-obiente-deployment", deployment);
  if (secret !== null) {
    md.set("x-obiente-proxy-secret", secret);
  }
  md.set("x-caller", "test");
  return md;
}

function unary(client: EchoClient, name: "echo" | "fail", r: Req, md: Metadata) {
  return new Promise<{ value?: Reply; err?: ServiceError; trailing?: Metadata }>((resolve) => {
    let trailing: Metadata | undefined;
    const call = client[name](r, md, (err, value) =>
      // the status (and its trailing metadata) comes before the callback
      setImmediate(() => resolve(err ? { err } : { ...(value ? { value } : {}), ...(trailing ? { trailing } : {}) })),
    ) as { on(e: string, f: (s: { metadata: Metadata }) => void): void };
    call.on("status", (s) => {
      trailing = s.metadata;
    });
  });
}

describe.each(DRIVERS)("gRPC through the fallback proxy on %s", (driver) => {
  let tdb: TestDb;
  let proxy: RunningProxy;
  let client: EchoClient;
  const replicas: Awaited<ReturnType<typeof startGrpcReplica>>[] = [];
  const clock = fakeClock();

  beforeAll(async () => {
    tdb = await makeTestDb(driver);
    replicas.push(await startGrpcReplica("busy"), await startGrpcReplica("idle"));
    await seedDeployment(tdb.handle.db, {
      id: "dep_grpc",
      name: "grpc",
      routeId: "rt_grpc",
      domain: "grpc.proxy.test",
      targetPort: 1,
      protocol: "h2c",
      replicas: replicas.map((r, i) => ({
        id: `grpc_${r.name}`,
        port: r.port,
        cpuUsage: i === 0 ? 90 : 5,
        cpuUpdatedAt: clock.now(),
      })),
    });
    proxy = await startTestProxy(tdb.handle, { secret: SECRET, clock, responseTimeoutMs: 5000 });
    client = new EchoClient(proxy.url.replace("http://", ""), credentials.createInsecure());
  });
  afterAll(async () => {
    client?.close();
    await proxy?.close();
    for (const r of replicas) {
      r.close();
    }
    await tdb?.close();
  });

  it("carries a unary call to the replica with the lowest CPU, trailers and metadata intact", async () => {
    const { value, trailing } = await unary(client, "echo", { text: "hello" }, edge());
    expect(value).toEqual({
      text: "hello",
      replica: "idle",
      // the caller's metadata arrives; the secret and the routing header stay with the proxy
      seen: { "x-caller": "test", "x-forwarded-for": "127.0.0.1" },
    });
    expect(trailing?.get("x-replica")).toEqual(["idle"]);
  });

  it("streams a server-streaming call message by message and ends it with OK", async () => {
    const call = client.count({ text: "tick", count: 5 }, edge());
    const got: string[] = [];
    const code = await new Promise<number>((resolve, reject) => {
      call.on("data", (m: Reply) => got.push(`${m.replica}: ${m.text}`));
      call.on("status", (s: { code: number }) => resolve(s.code));
      call.on("error", reject);
    });
    expect(code).toBe(status.OK);
    expect(got).toEqual(["idle: tick 1", "idle: tick 2", "idle: tick 3", "idle: tick 4", "idle: tick 5"]);
  });

  it("streams both ways at once: each message answered before the client sends the next", async () => {
    const call = client.chat(edge());
    const got: string[] = [];
    const next = () => new Promise<string>((resolve) => call.once("data", (m: Reply) => resolve(m.text)));
    for (const word of ["one", "two", "three"]) {
      const answer = next();
      call.write({ text: word });
      got.push(await answer);
    }
    const ended = new Promise<void>((resolve) => call.on("end", () => resolve()));
    call.resume();
    call.end();
    await ended;
    expect(got).toEqual(["ONE", "TWO", "THREE"]);
  });

  it("passes a client's cancellation on to the replica", async () => {
    const call = client.count({ text: "endless", count: 100_000 }, edge());
    call.on("error", () => {}); // CANCELLED, as asked
    await new Promise<void>((resolve) => call.once("data", () => resolve()));
    call.cancel();
    const idle = replicas[1];
    while (!idle?.cancelled.includes("endless")) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(idle.cancelled).toContain("endless");
  });

  it("passes an error status from the replica through, with its message and trailing metadata", async () => {
    const { err } = await unary(client, "fail", { text: "x" }, edge());
    expect(err?.code).toBe(status.FAILED_PRECONDITION);
    expect(err?.details).toBe("the order is already shipped");
    expect(err?.metadata.get("x-reason")).toEqual(["precondition"]);
  });

  it("passes an error status that ends a stream after some messages", async () => {
    const call = client.count({ text: "then fail", count: 2 }, edge());
    const got: string[] = [];
    const err = await new Promise<ServiceError>((resolve) => {
      call.on("data", (m: Reply) => got.push(m.text));
      call.on("error", (e: ServiceError) => resolve(e));
    });
    expect(got).toEqual(["then fail 1", "then fail 2"]);
    expect(err.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(err.details).toBe("stopped after 2");
  });

  it.each([
    ["no secret", edge("dep_grpc", null), status.UNAUTHENTICATED],
    ["a wrong secret", edge("dep_grpc", "wrong-secret-0123456789abcdef0"), status.PERMISSION_DENIED],
    ["an unknown deployment", edge("dep_nope"), status.UNIMPLEMENTED],
  ])("refuses a call with %s, as a gRPC status", async (_, md, code) => {
    const { err } = await unary(client, "echo", { text: "x" }, md);
    expect(err?.code).toBe(code);
  });

  it("takes a replica that refuses connections out and sends the call to the next one", async () => {
    const db = tdb.handle.db;
    const dead = await startGrpcReplica("dead");
    dead.close(); // its port now refuses connections
    await seedDeployment(db, {
      id: "dep_grpc2",
      name: "grpc2",
      routeId: "rt_grpc2",
      domain: "grpc2.proxy.test",
      targetPort: 1,
      protocol: "h2c",
      replicas: [
        { id: "grpc2_dead", port: dead.port, cpuUsage: 1, cpuUpdatedAt: clock.now() },
        { id: "grpc2_live", port: replicas[0]?.port, cpuUsage: 50, cpuUpdatedAt: clock.now() },
      ],
    });
    await proxy.refresh();
    const { value } = await unary(client, "echo", { text: "again" }, edge("dep_grpc2"));
    expect(value?.replica).toBe("busy"); // the only replica left that answers
    // reported like any failed connect (the report is written in the background)
    let lastError: string | null | undefined;
    for (let i = 0; i < 100 && !lastError; i++) {
      const [row] = await db.select().from(deploymentLocations).where(eq(deploymentLocations.id, "grpc2_dead"));
      lastError = row?.lastError;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(lastError).toMatch(/ECONNREFUSED/);
  });

  it("answers UNAVAILABLE when no replica can be reached, naming the problem", async () => {
    await tdb.handle.db
      .update(deploymentLocations)
      .set({ healthStatus: "unhealthy" })
      .where(eq(deploymentLocations.deploymentId, "dep_grpc"));
    await proxy.refresh();
    try {
      const { err } = await unary(client, "echo", { text: "x" }, edge());
      expect(err?.code).toBe(status.UNAVAILABLE);
      expect(err?.details).toBe("Deployment dep_grpc has no healthy replica right now. Try again shortly.");
      expect(err?.metadata.get("x-obiente-problem")).toEqual(["NO_HEALTHY_REPLICA"]);
    } finally {
      await tdb.handle.db
        .update(deploymentLocations)
        .set({ healthStatus: "healthy" })
        .where(eq(deploymentLocations.deploymentId, "dep_grpc"));
      await proxy.refresh();
    }
  });
});

describe("rendering an h2c deployment behind the fallback proxy", () => {
  it("points Traefik at the proxy over h2c for gRPC routes, and over HTTP for the others", () => {
    const grpc = aRoute({ id: "rt_g", loadBalancerAlgo: "least-conn", protocol: "h2c" });
    const web = aRoute({ id: "rt_w", deploymentId: "dep_b", domain: "b.example.com", loadBalancerAlgo: "least-conn" });
    const { config } = renderDynamicConfig({
      routes: [grpc, web],
      replicas: [aReplica(), aReplica({ id: "loc_b", deploymentId: "dep_b" })],
      settings: { ...settings, fallbackProxy: { url: "http://10.9.9.9:8081", secret: "s3cret-s3cret-s3cret" } },
    });
    expect(traefikSchemaErrors(config)).toEqual([]);
    const serviceOf = (route: typeof grpc) => {
      expect(config.http?.routers[routeName(route)]?.service).toBe(deploymentServiceName(route.deploymentId));
      return config.http?.services[deploymentServiceName(route.deploymentId)];
    };
    expect(serviceOf(grpc)?.loadBalancer?.servers).toEqual([{ url: "h2c://10.9.9.9:8081" }]);
    expect(serviceOf(web)?.loadBalancer?.servers).toEqual([{ url: "http://10.9.9.9:8081" }]);
  });
});
