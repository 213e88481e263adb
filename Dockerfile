# syntax=docker/dockerfile:1

# Node 24 (Active LTS until 2026-10, maintained until 2028-04): Node 20 reached its end of life in 2026-04.
# package.json's engines (>=20.19) stays as it is: the development machines and CI run the same code on Node 20.
# test/load/image-build.test.ts runs this file's RUN and COPY steps (build and runtime stages) and its HEALTHCHECK
# without Docker: keep those steps plain shell, one per line.

# ── build: full dependency tree, TypeScript → dist/ ────────────────────────────────────────────────
FROM node:24-bookworm-slim AS build
WORKDIR /app
# Manifests first, so the dependency layer is reused until package*.json change.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY schema ./schema
COPY src ./src
# tsc -p tsconfig.build.json: src/ and schema/*.ts → dist/src, dist/schema. JSON modules that the code imports
# (src/export/traefik-schema/*.json, resolveJsonModule) are emitted next to the JavaScript.
RUN npm run build

# ── runtime: production dependencies, compiled code and the migrations ─────────────────────────────
FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# The vendored Traefik schema's licence notice travels with the schema.
COPY src/export/traefik-schema/NOTICE.md ./dist/src/export/traefik-schema/NOTICE.md
# Read at runtime: migrate() walks up from dist/src/db to the package root and opens schema/migrations.
COPY schema/migrations ./schema/migrations
# PGlite (used when DATABASE_URL is unset) lives in DATA_DIR/pglite; the non-root user must own it.
RUN mkdir -p /data && chown node:node /data

# HOST defaults to 127.0.0.1 in the app, which is unreachable from outside the container. HOST and PORT are the
# API's only: the fallback proxy has its own PROXY_HOST (default 127.0.0.1) and PROXY_PORT (default 8081).
ENV HOST=0.0.0.0 PORT=8080 DATA_DIR=/data
VOLUME /data
USER node
# PORT (8080): API, /healthz, /readyz, /metrics and GET /traefik/config. The fallback proxy's PROXY_PORT (8081)
# is deliberately not exposed: inside the container it binds 127.0.0.1, which no other container reaches, until
# PROXY_HOST names an address on a network only Traefik shares (with FALLBACK_PROXY_URL and
# FALLBACK_TRUSTED_CIDRS; see examples/docker-compose.yml and the README's trust model). Never publish it.
EXPOSE 8080

# Liveness only: /healthz answers 200 once the server listens (after migrations); /readyz is stricter. bash's
# /dev/tcp sends one HTTP/1.0 request to PORT: no node process is started per check (the image has no curl/wget).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["bash", "-c", "h=${HOST:-127.0.0.1}; case $h in 0.0.0.0|::|'[::]') h=127.0.0.1;; esac; exec 3<>/dev/tcp/$h/${PORT:-8080} && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && IFS= read -r -t 2 status <&3 && [[ $status == 'HTTP/1.'?' 200 '* ]]"]

# A larger young generation: rendering allocates a big, long-lived tree (bench: ~10-15% faster at 10k-100k).
CMD ["node", "--max-semi-space-size=64", "dist/src/main.js"]
