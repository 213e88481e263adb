// A small, independent decoder of Docker labels into Traefik's dynamic config, written from paerser's source
// (github.com/traefik/paerser parser/labels_decode.go, nodes_metadata.go, element_fill.go) and Traefik's types
// (pkg/config/dynamic/http_config.go, middlewares.go) for the fields obiente-router renders. It does not apply
// Traefik's SetDefaults (the file/HTTP provider applies the same ones to the rendered config), so a decoded object
// compares field for field with the rendered JSON. Docker's addServer (pkg/provider/docker/config.go) turns the
// one `server` into a URL with the container's IP.

type Kind =
  | "string"
  | "int"
  | "bool"
  | "list" // []string: one value split on "," and trimmed
  | "strmap" // map[string]string
  | { struct: Record<string, Kind>; allowEmpty?: boolean }
  | { sliceOfStruct: Record<string, Kind> }
  | { sliceAsStruct: string; fields: Record<string, Kind> } // label-slice-as-struct
  | { map: Kind };

const ipStrategy: Kind = { struct: { depth: "int", excludedIPs: "list" } };
const ROUTER: Kind = {
  struct: {
    entryPoints: "list",
    middlewares: "list",
    priority: "int",
    rule: "string",
    service: "string",
    tls: {
      allowEmpty: true,
      struct: {
        certResolver: "string",
        options: "string",
        domains: { sliceOfStruct: { main: "string", sans: "list" } },
      },
    },
  },
};
const SERVICE: Kind = {
  struct: {
    loadBalancer: {
      struct: {
        servers: {
          sliceAsStruct: "server",
          fields: { url: "string", weight: "int", port: "string", scheme: "string", preservePath: "bool" },
        },
        strategy: "string",
        passHostHeader: "bool",
        serversTransport: "string",
        healthCheck: {
          struct: { interval: "string", mode: "string", path: "string", status: "int", timeout: "string" },
        },
      },
    },
  },
};
const MIDDLEWARE: Kind = {
  struct: {
    basicAuth: { struct: { realm: "string", removeHeader: "bool", users: "list" } },
    compress: { allowEmpty: true, struct: { encodings: "list", minResponseBodyBytes: "int" } },
    headers: {
      struct: {
        customRequestHeaders: "strmap",
        customResponseHeaders: "strmap",
        contentTypeNosniff: "bool",
        frameDeny: "bool",
        referrerPolicy: "string",
        stsIncludeSubdomains: "bool",
        stsSeconds: "int",
      },
    },
    ipAllowList: { struct: { sourceRange: "list", ipStrategy } },
    rateLimit: {
      struct: {
        average: "int",
        burst: "int",
        period: "string",
        sourceCriterion: { struct: { ipStrategy, requestHeaderName: "string" } },
      },
    },
    redirectRegex: { struct: { permanent: "bool", regex: "string", replacement: "string" } },
    redirectScheme: { struct: { permanent: "bool", scheme: "string" } },
    stripPrefix: { struct: { prefixes: "list" } },
  },
};
const HTTP: Kind = {
  struct: { routers: { map: ROUTER }, services: { map: SERVICE }, middlewares: { map: MIDDLEWARE } },
};

interface Node {
  name: string;
  value?: string;
  children: Node[];
}

/** parser/labels_decode.go DecodeToNode: sorted keys, split on ".", `x[0]` → `x`, `[0]`; siblings EqualFold. */
function toNodes(labels: Record<string, string>, filter: string): Node {
  const root: Node = { name: "traefik", children: [] };
  for (const key of Object.keys(labels).sort()) {
    if (!key.toLowerCase().startsWith(filter)) {
      continue;
    }
    const parts: string[] = [];
    for (const p of key.split(".")) {
      if (p === "" || p.startsWith("[")) {
        throw new Error(`invalid element: ${key}`);
      }
      const i = p.indexOf("[");
      parts.push(...(p.endsWith("]") && i > 0 ? [p.slice(0, i), p.slice(i)] : [p]));
    }
    if (parts[0] !== "traefik") {
      throw new Error(`invalid label root ${parts[0]}`);
    }
    let node = root;
    for (const part of parts.slice(1)) {
      let child = node.children.find((c) => c.name.toLowerCase() === part.toLowerCase());
      if (!child) {
        child = { name: part, children: [] };
        node.children.push(child);
      }
      node = child;
    }
    node.value = labels[key];
  }
  return root;
}

const field = (fields: Record<string, Kind>, name: string): [string, Kind] => {
  const hit = Object.entries(fields).find(([f]) => f.toLowerCase() === name.toLowerCase());
  if (!hit) {
    throw new Error(`field not found, node: ${name}`);
  }
  return hit;
};

function parseInt10(v: string | undefined, at: string): number {
  if (v === undefined || !/^[+-]?\d+$/.test(v)) {
    throw new Error(`${at}: not an integer: ${v}`);
  }
  return Number(v);
}

/** nodes_metadata.go + element_fill.go for the subset above. */
function fill(node: Node, kind: Kind): unknown {
  if (kind === "string") {
    return node.value ?? "";
  }
  if (kind === "int") {
    return parseInt10(node.value, node.name);
  }
  if (kind === "bool") {
    if (!/^(1|t|T|TRUE|true|True|0|f|F|FALSE|false|False)$/.test(node.value ?? "")) {
      throw new Error(`${node.name}: strconv.ParseBool: ${node.value}`);
    }
    return /^(1|t|T|TRUE|true|True)$/.test(node.value ?? "");
  }
  if (kind === "list") {
    return node.value ? node.value.split(",").map((s) => s.trim()) : undefined;
  }
  if (kind === "strmap") {
    return Object.fromEntries(node.children.map((c) => [c.name, c.value ?? ""]));
  }
  if ("map" in kind) {
    return Object.fromEntries(node.children.map((c) => [c.name, fill(c, kind.map)]));
  }
  if ("sliceOfStruct" in kind) {
    return node.children.map((c) => fill(c, { struct: kind.sliceOfStruct }));
  }
  if ("sliceAsStruct" in kind) {
    return [fill(node, { struct: kind.fields })];
  }
  if (node.children.length === 0) {
    if (!kind.allowEmpty) {
      throw new Error(`${node.name} cannot be a standalone element`);
    }
    if ((node.value ?? "").toLowerCase() !== "true") {
      return undefined; // Disabled: an allowEmpty struct with a value other than "true"
    }
  }
  const out: Record<string, unknown> = {};
  for (const child of node.children) {
    const fields = kind.struct;
    const [name, k] =
      // label-slice-as-struct: the node is named after the tag (`server`), not the field (`servers`)
      Object.entries(fields).find(
        ([, fk]) => typeof fk === "object" && "sliceAsStruct" in fk && fk.sliceAsStruct === child.name.toLowerCase(),
      ) ?? field(fields, child.name);
    const v = fill(child, k);
    if (v !== undefined) {
      out[name] = v;
    }
  }
  return out;
}

export interface DecodedHttp {
  routers: Record<string, unknown>;
  services: Record<string, { loadBalancer: Record<string, unknown> & { servers: Record<string, unknown>[] } }>;
  middlewares: Record<string, unknown>;
}

/**
 * Decodes a container's labels as Traefik's Docker provider would, with `containerIp` as the container's address:
 * the one server of each service becomes `<scheme or http>://<ip>:<port>` (addServer).
 */
export function decodeDockerLabels(labels: Record<string, string>, containerIp: string): DecodedHttp {
  const root = toNodes(labels, "traefik.http.");
  const httpNode = root.children[0] ?? { name: "http", children: [] };
  const http = fill(httpNode, HTTP) as Partial<DecodedHttp>;
  const services = http.services ?? {};
  for (const svc of Object.values(services)) {
    const [server] = svc.loadBalancer.servers;
    if (server && server.url === undefined) {
      const { port, scheme, ...rest } = server;
      svc.loadBalancer.servers = [
        { ...rest, url: `${(scheme as string | undefined) ?? "http"}://${containerIp}:${port}` },
      ];
    }
  }
  return { routers: http.routers ?? {}, services, middlewares: http.middlewares ?? {} };
}
