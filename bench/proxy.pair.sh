#!/usr/bin/env bash
# Paired CPU-cost comparison of two proxy commands, for a busy machine where run.sh's absolute numbers drift:
# both proxies are pinned to CPU0 at the same time (so they share whatever contention there is), each gets its
# own wrk (32 connections) on CPU1, and the output is req/s and proxy CPU microseconds per request for each.
#   bench/proxy.pair.sh "node <harness>/undici-proxy.mjs" "node --import tsx bench/proxy-entry.ts" 8 small
# env: BENCH_HARNESS (default ../shared/bench next to the repo; needs its npm ci for the undici baseline).
# usage: proxy.pair.sh "<cmd A>" "<cmd B>" [seconds] [small|large]
set -euo pipefail
A=$1; B=$2; SECS=${3:-8}; SIZE=${4:-small}
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HARNESS="${BENCH_HARNESS:-$ROOT/../shared/bench}"
RUN=$(mktemp -d /tmp/obiente-pair.XXXXXX); trap 'rm -rf "$RUN"' EXIT; mkdir -p $RUN/www $RUN/tmp $RUN/logs
printf '%0100d' 0 | tr 0 s >"$RUN/www/small"; head -c 16384 /dev/zero | tr '\0' L >"$RUN/www/large"
sed -e "s|@RUN@|$RUN|g" -e "s|@SMALL_BODY@|$(cat $RUN/www/small)|g" $HARNESS/conf/upstream-nginx.conf > $RUN/up.conf
setsid taskset -c 1 nginx -p $RUN -e $RUN/logs/up.err -c $RUN/up.conf >/dev/null 2>&1 & UP=$!
sleep 0.5
PORT=18098 BIND=127.0.0.1 BENCH_ROUTES=$HARNESS/conf/routes.json setsid taskset -c 0 bash -c "exec $A" > $RUN/logs/a.log 2>&1 & PA=$!
PORT=18099 BIND=127.0.0.1 BENCH_ROUTES=$HARNESS/conf/routes.json setsid taskset -c 0 bash -c "exec $B" > $RUN/logs/b.log 2>&1 & PB=$!
for p in 18098 18099; do for i in $(seq 50); do curl -s -o /dev/null -H 'Host: app1.test' -H 'X-Obiente-Proxy-Secret: bench-secret-not-used-0123456789' -H 'X-Obiente-Deployment: dep_app1_test' http://127.0.0.1:$p/small && break; sleep 0.1; done; done
if [[ $SIZE == small ]]; then H=app1.test; P=/small; else H=app2.test; P=/large; fi
# What Traefik adds for the fallback proxy (bench/proxy-entry.ts); the other proxy ignores these headers.
TH=(-H "X-Obiente-Proxy-Secret: bench-secret-not-used-0123456789" -H "X-Obiente-Deployment: dep_${H//./_}")
taskset -c 1 wrk -t1 -c32 -d2s -H "Host: $H" "${TH[@]}" http://127.0.0.1:18098$P >/dev/null & W0=$!; taskset -c 1 wrk -t1 -c32 -d2s -H "Host: $H" "${TH[@]}" http://127.0.0.1:18099$P >/dev/null; wait $W0; sleep 0.3
a0=$(awk '{print $14+$15}' /proc/$PA/stat); b0=$(awk '{print $14+$15}' /proc/$PB/stat)
taskset -c 1 wrk -t1 -c32 -d${SECS}s -H "Host: $H" "${TH[@]}" http://127.0.0.1:18098$P > $RUN/wa.txt & WA=$!
taskset -c 1 wrk -t1 -c32 -d${SECS}s -H "Host: $H" "${TH[@]}" http://127.0.0.1:18099$P > $RUN/wb.txt
wait $WA
a1=$(awk '{print $14+$15}' /proc/$PA/stat); b1=$(awk '{print $14+$15}' /proc/$PB/stat)
for x in a b; do
  f=$RUN/w$x.txt; if [[ $x == a ]]; then d=$((a1-a0)); else d=$((b1-b0)); fi
  reqs=$(awk '/requests in/ {print $1}' $f); rps=$(awk '/Requests\/sec/ {print $2}' $f)
  echo "$x rps=$rps cpu%=$(awk -v d=$d -v s=$SECS 'BEGIN{printf "%.0f", d/s}') us/req=$(awk -v d=$d -v n=$reqs 'BEGIN{printf "%.1f", d*10000/n}') $(grep -E 'Non-2xx|Socket' $f | tr '\n' ' ')"
done
kill -TERM -- -$PA -$PB 2>/dev/null || true; sleep 1; kill -KILL -- -$PA -$PB 2>/dev/null || true
kill -TERM -- -$UP 2>/dev/null || true; sleep 0.3
