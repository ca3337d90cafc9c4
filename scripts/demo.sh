#!/usr/bin/env bash
# The main job on bundled data, with no node: builds rockshrew and the example guests, indexes
# the real mainnet blocks 0..255 shipped in integration/fixtures with `spendables`, serves JSON-RPC,
# asks it real questions, and stops it cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --locked -p rockshrew
cargo build --locked --profile guest --target wasm32-unknown-unknown -p spendables -p minimal

PORT=${PORT:-18080}
DB=$(mktemp -d)/db
WASM=target/wasm32-unknown-unknown/guest/spendables.wasm
BLOCKS=integration/fixtures/blocks-000000-000255.hex
echo "== rockshrew --indexer $WASM --db-path $DB --blocks-file $BLOCKS --port $PORT"
./target/release/rockshrew --indexer "$WASM" --db-path "$DB" --blocks-file "$BLOCKS" --port "$PORT" &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT

rpc() { curl -s -X POST -H 'Content-Type: application/json' --data "$1" "http://127.0.0.1:$PORT/"; }
result() { sed -n 's/.*"result":"\([^"]*\)".*/\1/p'; }
# u64 little-endian hex ("0x...") to a decimal number
le_u64() { local h=${1#0x} be=""; while [ -n "$h" ]; do be="${h:0:2}$be"; h=${h:2}; done; echo $((16#$be)); }

for _ in $(seq 1 600); do
  h=$(rpc '{"jsonrpc":"2.0","id":1,"method":"metashrew_height","params":[]}' 2>/dev/null | result || true)
  [ "$h" = "255" ] && break
  sleep 0.1
done
echo "== indexed height: $h"

# The script of block 9's coinbase output (Satoshi's pay-to-pubkey)
SCRIPT=410411db93e1dcdb8a016b49840f8c53bc1eb68a382e97b1482ecad7b148a6909a5cb2e0eaddfb84ccf9744464f82e160bfa9b8b64f9d4c03f999b8643f656b412a3ac
for height in 169 170; do
  v=$(rpc "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"metashrew_view\",\"params\":[\"balance\",\"$SCRIPT\",\"$height\"]}" | result)
  sats=$(le_u64 "$v")
  echo "== balance of block 9's coinbase script at height $height: $sats sats ($((sats / 100000000)) BTC)"
done
echo "== metashrew_getblockhash 255: $(rpc '{"jsonrpc":"2.0","id":1,"method":"metashrew_getblockhash","params":[255]}' | result)"
echo "== metashrew_stateroot latest: $(rpc '{"jsonrpc":"2.0","id":1,"method":"metashrew_stateroot","params":["latest"]}' | result)"
echo "== /metrics (excerpt):"
curl -s "http://127.0.0.1:$PORT/metrics" | grep -E '^rockshrew_(indexed_height|blocks_indexed_total|view_seconds_count)' || true

kill -TERM $PID
wait $PID
trap - EXIT
cat <<'TXT'
== stopped cleanly.

To follow a real Bitcoin Core node instead of the bundled file:
  ./target/release/rockshrew --indexer target/wasm32-unknown-unknown/guest/spendables.wasm \
      --db-path ~/.rockshrew/spendables \
      --daemon-rpc-url http://127.0.0.1:8332      # cookie auth from ~/.bitcoin/.cookie,
                                                  # or --auth user:pass / --cookie-file PATH
Then query it like Metashrew:
  curl -s -X POST -H 'Content-Type: application/json' \
      --data '{"jsonrpc":"2.0","id":1,"method":"metashrew_height","params":[]}' http://127.0.0.1:8080/
TXT
