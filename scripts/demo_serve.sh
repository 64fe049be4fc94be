#!/usr/bin/env bash
# The last step of `make demo`: demo keys, the server on the embedded defaults, a scored claim,
# a collector's worklist, then the server keeps running in the foreground (Ctrl-C stops it).
set -euo pipefail
BIN=${BIN:-.venv/bin}
DEMO_DIR=${DEMO_DIR:-data/demo}
PORT=${ARSCORE_PORT:-8000}
BASE="http://127.0.0.1:${PORT}"
export ARSCORE_PORT=$PORT

token() { "$BIN/arscore" keys create "$@" --label "make demo" | awk '/^token:/ {print $2}'; }
# demo users (kept across runs: a username is never reused), each with a new key
user() {
    "$BIN/arscore" users list | grep -qw "$1" ||
        "$BIN/arscore" users create --username "$1" --role "$2" --display-name "$3" >/dev/null
}
mkdir -p "$DEMO_DIR"
user dana collector "Dana (demo collector)"
user ali approver "Ali (demo approver)"
SCORER=$(token --system demo-rcm --role scorer)
COLLECTOR=$(token --user dana)
APPROVER=$(token --user ali)
printf 'SCORER=%s\nCOLLECTOR=%s\nAPPROVER=%s\n' "$SCORER" "$COLLECTOR" "$APPROVER" > "$DEMO_DIR/keys.env"
chmod 600 "$DEMO_DIR/keys.env"
"$BIN/python" scripts/demo_request.py "$DEMO_DIR/history" "$DEMO_DIR/score_request.json"

"$BIN/arscore" serve &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
    curl -sf "$BASE/readyz" >/dev/null && break
    kill -0 $SERVER 2>/dev/null || { echo "the server stopped; see the log above" >&2; exit 1; }
    sleep 0.5
done
curl -sf "$BASE/readyz" >/dev/null

echo
echo "== a demo claim scored (POST /v1/scores) =="
curl -s -H "Authorization: Bearer $SCORER" -H 'Content-Type: application/json' \
    --data @"$DEMO_DIR/score_request.json" "$BASE/v1/scores" | "$BIN/python" -m json.tool
echo
echo "== today's queue for the patient-accounts team (GET /v1/worklist, collector key) =="
curl -s -H "Authorization: Bearer $COLLECTOR" \
    "$BASE/v1/worklist?team=patient_accounts&limit=5" | "$BIN/python" -m json.tool
cat <<EOT

The API is running on $BASE (OpenAPI docs: $BASE/docs). Demo keys are in $DEMO_DIR/keys.env.
Score a demo claim:

  source $DEMO_DIR/keys.env
  curl -s -H "Authorization: Bearer \$SCORER" -H 'Content-Type: application/json' \\
       --data @$DEMO_DIR/score_request.json $BASE/v1/scores

A collector's worklist:

  curl -s -H "Authorization: Bearer \$COLLECTOR" "$BASE/v1/worklist?team=patient_accounts&limit=20"

Ctrl-C stops the server.
EOT
wait $SERVER
