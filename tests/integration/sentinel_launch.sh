#!/bin/sh
# A sentinel for topo_sentinel.c. redis_harness runs `<binary> --port P ...`,
# but redis-server takes a config file only as its first argument and a
# sentinel needs one (it rewrites it): topo_sentinel.c runs this instead,
# naming the real binary and the file in the environment. exec keeps the pid
# redis_harness checks and kills.
: "${TH_SENTINEL_BIN:?is not set: topo_sentinel.c starts this script}"
: "${TH_SENTINEL_CONF:?is not set: topo_sentinel.c starts this script}"
exec "$TH_SENTINEL_BIN" "$TH_SENTINEL_CONF" --sentinel "$@"
