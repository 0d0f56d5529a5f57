#!/usr/bin/env bash
# The region API's latency with three real clusters (issue #4's figures): regiond and three
# clusterd processes (release builds) on the demo's sample trees, read with a keep-alive
# client; then one cluster SIGSTOPped (connected but silent), then SIGKILLed.
#   cargo build --release --bins && benches/api3.sh [requests]
set -euo pipefail
cd "$(dirname "$0")/.."
B=${OSMESH_BIN:-target/release}
N=${1:-300}
D=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$D"' EXIT
# The daemons want a secret of at least 32 bytes that only its owner may read.
(umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$D/secret")
"$B/osmesh" demo --dir "$D/demo" --http-listen 127.0.0.1:17340 --rpc-listen 127.0.0.1:17350 >/dev/null 2>&1 &
DEMO=$!; sleep 2; kill $DEMO; wait $DEMO 2>/dev/null || true   # only for its sample trees
"$B/regiond" --database-url "sqlite://$D/r.db" --rpc-listen 127.0.0.1:17250 \
  --http-listen 127.0.0.1:17240 --secret-file "$D/secret" 2>"$D/regiond.log" &
sleep 0.5
OSMESH_TOKEN=$("$B/regiond" --database-url "sqlite://$D/r.db" token create --name api3 --role admin 2>/dev/null)
export OSMESH_TOKEN
declare -A PID
for c in a b c; do
  extra=()
  [ -f "$D/demo/cluster-$c/declared-os.toml" ] && extra=(--declared-os "$D/demo/cluster-$c/declared-os.toml")
  "$B/clusterd" --name "cluster-$c" --region 127.0.0.1:17250 --secret-file "$D/secret" \
    --images "$D/demo/cluster-$c/boot-resources" "${extra[@]}" 2>"$D/$c.log" &
  PID[$c]=$!
done
sleep 3
echo "three clusters:"
python3 benches/api_latency.py 127.0.0.1 17240 "$N" "/api/v1/osystems" "/api/v1/osystems?live=true&timeout_ms=1000"
kill -STOP "${PID[b]}"; sleep 0.5
echo "cluster-b stopped (SIGSTOP: connected but silent):"
python3 benches/api_latency.py 127.0.0.1 17240 10 "/api/v1/osystems" "/api/v1/osystems?live=true&timeout_ms=1000"
kill -9 "${PID[b]}"; sleep 0.5
echo "cluster-b killed (SIGKILL):"
python3 benches/api_latency.py 127.0.0.1 17240 "$N" "/api/v1/osystems" "/api/v1/osystems?live=true&timeout_ms=1000"
