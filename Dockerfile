# syntax=docker/dockerfile:1

# ── build: full dependency tree, TypeScript → dist/ ────────────────────────────────────────────────
FROM node:20-bookworm-slim AS build
WORKDIR /app
# Manifests first, so the dependency layer is reused until package*.json change.
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY schema ./schema
COPY src ./src
# tsc -p tsconfig.build.json: src/ and schema/*.ts → dist/src, dist/schema
RUN npm run build

# ── runtime: production dependencies, compiled code and the migrations ─────────────────────────────
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force
COPY --from=build /app/dist ./dist
# Read at runtime: migrate() walks up from dist/src/db to the package root and opens schema/migrations.
COPY schema/migrations ./schema/migrations
# PGlite (used when DATABASE_URL is unset) lives in DATA_DIR/pglite; the non-root user must own it.
RUN mkdir -p /data && chown node:node /data

# HOST defaults to 127.0.0.1 in the app, which is unreachable from outside the container. HOST is the API's
# only: the fallback proxy does not follow it (PROXY_HOST, default 127.0.0.1).
ENV HOST=0.0.0.0 PORT=8080 DATA_DIR=/data
VOLUME /data
USER node
# 8080: API, /healthz, /readyz and GET /traefik/config. The fallback proxy (PROXY_PORT 8081) is deliberately not
# exposed: it binds to 127.0.0.1 unless PROXY_HOST says otherwise, and must be reachable by Traefik only (an
# internal network plus FALLBACK_TRUSTED_CIDRS, see examples/docker-compose.yml and the README's trust model).
EXPOSE 8080

# Liveness only: /healthz answers 200 once the server listens (after migrations). /readyz is stricter.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8080/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

# A larger young generation: rendering allocates a big, long-lived tree (bench: ~10-15% faster at 10k-100k).
CMD ["node", "--max-semi-space-size=64", "dist/src/main.js"]
