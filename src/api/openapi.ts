import type { OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "./deps.js";
import { HttpProblem, problem } from "./problem.js";

// /openapi.json and the 405 answers are read from the route contracts registered on the app: there is no
// hand-kept list of operations or methods.

type Document = ReturnType<OpenAPIHono["getOpenAPI31Document"]>;

const METHOD_ORDER = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

/** Every contracted path (OpenAPI template, `/deployments/{id}`) with its methods, HEAD wherever GET is. */
export function contractMethods(app: OpenAPIHono<AppEnv>): Map<string, string[]> {
  const byPath = new Map<string, Set<string>>();
  for (const def of app.openAPIRegistry.definitions) {
    if (def.type !== "route") {
      continue;
    }
    const methods = byPath.get(def.route.path) ?? new Set<string>();
    methods.add(def.route.method.toUpperCase());
    if (def.route.method === "get") {
      methods.add("HEAD"); // hono answers HEAD with the GET handler
    }
    byPath.set(def.route.path, methods);
  }
  return new Map(
    [...byPath].map(([path, methods]) => [path, METHOD_ORDER.filter((m) => methods.has(m))] as [string, string[]]),
  );
}

const spoken = (words: string[]) =>
  words.length < 2 ? words.join("") : `${words.slice(0, -1).join(", ")} or ${words[words.length - 1]}`;

/** Answers 405 with `Allow` on every contracted path for the methods it has no contract for; call last. */
export function answerOtherMethods(app: OpenAPIHono<AppEnv>): void {
  for (const [path, methods] of contractMethods(app)) {
    const allowed = problem("METHOD_NOT_ALLOWED", `Use ${spoken(methods)} on this path.`, {
      headers: { Allow: methods.join(", ") },
    });
    app.all(path.replace(/\{(\w+)\}/g, ":$1"), () => {
      throw new HttpProblem(allowed);
    });
  }
}

/** Builds the OpenAPI 3.1 document from the contracts registered on `app`. */
export function openApiDocument(app: OpenAPIHono<AppEnv>, version: string): Document {
  const doc = app.getOpenAPI31Document({
    openapi: "3.1.0",
    info: { title: "obiente-router API", version, description: "Routing control plane for Traefik." },
    servers: [{ url: "/" }],
  });
  for (const [path, ops] of Object.entries(doc.paths ?? {})) {
    for (const method of ["get", "post", "put", "patch", "delete"] as const) {
      const op = ops[method];
      if (op && !op.operationId) {
        op.operationId = `${method}${path
          .replace(/^\/api\/v1/, "")
          .replace(/[{}]/g, "")
          .replace(/\/(\w)/g, (_, ch: string) => ch.toUpperCase())}`;
      }
    }
  }
  return doc;
}
