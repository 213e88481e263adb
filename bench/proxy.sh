#!/usr/bin/env bash
# Benchmarks the fallback proxy against nginx, HAProxy, Caddy and the Node baselines with the shared harness
# (shared/bench/run.sh, see its README). Copies the harness to a temp dir (the shared copy may be read-only),
# installs its one dependency there, and runs it with the proxy (bench/proxy-entry.ts, through tsx) as the `--extra`
# entry.
#
#   npm run bench:proxy                              # everything: ~6 min on 2 cores
#   npm run bench:proxy -- nginx caddy undici --reps 1   # a subset while iterating (any run.sh option works)
#
# env: BENCH_HARNESS (default: ../shared/bench next to the repo), BENCH_PORT (default 18099). Needs nginx, haproxy,
#      caddy and wrk (apt-get install -y --no-install-recommends nginx haproxy caddy wrk). Results JSON goes to
#      bench/results/ (git-ignored).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HARNESS="${BENCH_HARNESS:-$ROOT/../shared/bench}"
PORT="${BENCH_PORT:-18099}"

[[ -x $HARNESS/run.sh || -f $HARNESS/run.sh ]] || { echo "benchmark harness not found at $HARNESS (set BENCH_HARNESS)" >&2; exit 1; }
for tool in nginx haproxy caddy wrk; do
  command -v "$tool" >/dev/null || {
    echo "missing $tool: apt-get update && apt-get install -y --no-install-recommends nginx haproxy caddy wrk" >&2
    exit 1
  }
done

# The entry runs from source through tsx's loader, given by absolute path: the harness starts it from its own dir.
ENTRY="$ROOT/bench/proxy-entry.ts"
TSX_LOADER="$(cd "$ROOT" && node -p 'require.resolve("tsx")')" || { echo "tsx not found: run npm ci" >&2; exit 1; }

WORK="$(mktemp -d /tmp/obiente-proxy-bench.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
cp -r "$HARNESS/." "$WORK/"
chmod -R u+w "$WORK"
# Traefik sends every request to the fallback proxy with the shared secret and the deployment it routed to (the
# proxy never routes by Host: issue 10 #1). Make the harness's requests carry the same two headers, for every
# proxy alike (the others ignore them): `-H "Host: X"` gains the secret and `X-Obiente-Deployment: dep_<X, dots
# as _>`, as bench/proxy-entry.ts names its deployments.
SECRET_H='-H "X-Obiente-Proxy-Secret: bench-secret-not-used-0123456789"'
sed -i -E \
  -e "s/-H \"Host: \\\$host\"/& $SECRET_H -H \"X-Obiente-Deployment: dep_\\\${host\/\/.\/_}\"/g" \
  -e "s/-H 'Host: ([a-z0-9]+)\.test'/& $SECRET_H -H 'X-Obiente-Deployment: dep_\\1_test'/g" \
  "$WORK/run.sh"
grep -q 'X-Obiente-Deployment' "$WORK/run.sh" || { echo "could not add the proxy headers to the harness" >&2; exit 1; }
(cd "$WORK" && npm ci --no-audit --no-fund --loglevel=error)

mkdir -p "$ROOT/bench/results"
OUT="$ROOT/bench/results/proxy-$(date -u +%Y-%m-%dT%H-%M-%SZ).json"
"$WORK/run.sh" "$@" --out "$OUT" \
  --extra "node --import $TSX_LOADER $ENTRY" --extra-port "$PORT" --extra-name obiente
echo "results: $OUT"
