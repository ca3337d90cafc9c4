#!/bin/sh
# The rockshrew image's entrypoint. It reads the variables of the Metashrew images that
# alkanes nodes deploy (docker-compose.mainnet.yaml), with the same defaults and meaning, and
# runs the daemon with the arguments they stand for, then any arguments given to the container.
# A container started with a tool's name (`inspect`, `rollback`, `verify`, ...) runs that tool.
#
#   DAEMON_RPC_ADDR  the node's JSON-RPC, `host:port` or a URL   (127.0.0.1:8332)
#   AUTH             `user:pass` for the node                     (the node's cookie file)
#   DB_PATH          the database directory                       (/metashrew/rocksdb)
#   INDEXER          the indexer module                           (/metashrew/indexer.wasm)
#   HOST, PORT       where JSON-RPC listens                       (0.0.0.0, 8080)
#   START_BLOCK      the first height of an empty index           (0)
#   EXIT_AT          stop once this height is indexed             (never)
#   LABEL            the index's namespace in the database        (none: `default`)
#   LOG_FILTERS      the log filter, as RUST_LOG                  (info; RUST_LOG wins)
#
# ROCKSHREW_BIN names the binary (default: rockshrew on the PATH); the tests use it.
set -eu

bin=${ROCKSHREW_BIN:-rockshrew}

case "${1:-}" in
  snapshot|verify|migrate|rollback|upgrade|inspect|help|--help|-h|--version|-V)
    exec "$bin" "$@"
    ;;
esac

export RUST_LOG="${RUST_LOG:-${LOG_FILTERS:-info}}"

set -- \
  --daemon-rpc-url "${DAEMON_RPC_ADDR:-127.0.0.1:8332}" \
  --db-path "${DB_PATH:-/metashrew/rocksdb}" \
  --indexer "${INDEXER:-/metashrew/indexer.wasm}" \
  --host "${HOST:-0.0.0.0}" \
  --port "${PORT:-8080}" \
  --start-block "${START_BLOCK:-0}" \
  ${AUTH:+--auth "$AUTH"} \
  ${EXIT_AT:+--exit-at "$EXIT_AT"} \
  ${LABEL:+--label "$LABEL"} \
  "$@"

exec "$bin" "$@"
