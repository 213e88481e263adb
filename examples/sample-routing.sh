#!/usr/bin/env bash
# Routes whoami.localhost to the compose example's `whoami` container through obiente-router's API, then
# prints the dynamic configuration Traefik receives. Safe to re-run: every step is a create-or-replace.
#
#   ADMIN_TOKEN=… PROVIDER_TOKEN=… ./sample-routing.sh    (or put them in examples/.env)
#   ROUTER_URL defaults to http://127.0.0.1:8080 (the port docker-compose.yml publishes on loopback).
#
# Uses the /api/v1 routing API (deployments, routing, locations).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ -z "${ADMIN_TOKEN:-}" || -z "${PROVIDER_TOKEN:-}" ]] && [[ -f "$here/.env" ]]; then
  set -a # export what .env defines, as docker compose would
  # shellcheck disable=SC1091
  . "$here/.env"
  set +a
fi

ROUTER_URL="${ROUTER_URL:-http://127.0.0.1:8080}"
ADMIN_TOKEN="${ADMIN_TOKEN:?set ADMIN_TOKEN (see examples/.env.example)}"
PROVIDER_TOKEN="${PROVIDER_TOKEN:?set PROVIDER_TOKEN (see examples/.env.example)}"
PROVIDER_TOKEN="${PROVIDER_TOKEN%%,*}" # the server takes a comma-separated list; any one of them works

DEPLOYMENT_ID="dep_whoami"
LOCATION_ID="whoami-1"
DOMAIN="whoami.localhost"

body_file="$(mktemp)"
trap 'rm -f "$body_file"' EXIT

# call METHOD PATH TOKEN [JSON] [ALSO_OK_STATUS]: prints the response body; exits on an unexpected status.
call() {
  local method="$1" path="$2" token="$3" json="${4:-}" also_ok="${5:-}"
  local args=(-sS -o "$body_file" -w '%{http_code}' -X "$method" -H "Authorization: Bearer $token")
  if [[ -n "$json" ]]; then
    args+=(-H 'Content-Type: application/json' --data "$json")
  fi
  local status
  status="$(curl "${args[@]}" "$ROUTER_URL$path")"
  echo "→ $method $path: HTTP $status" >&2
  if [[ "$status" != 2?? && "$status" != "$also_ok" ]]; then
    cat "$body_file" >&2
    echo >&2
    exit 1
  fi
  cat "$body_file"
  echo
}

# 1. The deployment. 409 means it exists from an earlier run, which is fine.
call POST /api/v1/deployments "$ADMIN_TOKEN" "{\"id\":\"$DEPLOYMENT_ID\",\"name\":\"whoami\"}" 409

# 2. Its primary route: plain HTTP on the `web` entry point (no certificate for a .localhost name).
call PUT "/api/v1/deployments/$DEPLOYMENT_ID/routing" "$ADMIN_TOKEN" \
  "{\"domain\":\"$DOMAIN\",\"target_port\":80,\"ssl_enabled\":false}"

# 3. One replica: the whoami container, addressed by its compose service name.
call PUT "/api/v1/deployments/$DEPLOYMENT_ID/locations/$LOCATION_ID" "$ADMIN_TOKEN" \
  '{"address":"whoami","port":80,"status":"running"}'

# 4. What Traefik gets. Renders are coalesced, so wait briefly for the new route, then show it as YAML.
for _ in $(seq 1 20); do
  if config="$(call GET /traefik/config "$PROVIDER_TOKEN" 2>/dev/null)" && [[ "$config" == *"Host(\`$DOMAIN\`)"* ]]; then
    break
  fi
  sleep 0.25
done
call GET '/traefik/config?format=yaml' "$PROVIDER_TOKEN"

cat <<EOF
Try it:  curl -s -H 'Host: $DOMAIN' http://127.0.0.1/
Only running replicas whose health is "healthy" get traffic. Until the replica is marked healthy the
service lists the weight-0 placeholder http://127.0.0.1:9 and Traefik answers 503 for $DOMAIN.
EOF
