#!/usr/bin/env bash
# Instructions the dispatcher executes per proxied request, counted by valgrind's callgrind (all threads, user
# space only): a figure that does not move with the machine's load, for comparing builds step by step.
# Usage: Benchmarks/dispatch/instructions.sh [path/to/workstation]   (default: .build/release/workstation)
# Environment: REQUESTS (measured requests, default 20000), WARMUP (requests before counting starts, default 2000),
#              CONNS (client connections, requests sent in waves of one per connection, default 8),
#              MODE (peer: unix socket, front-proxy check; jwt: TCP, token verified once then found in the cache;
#              both: one after the other, the default), UPSTREAM_KEEPALIVE_REQUESTS (default 1000, as run.sh),
#              TOP (functions listed from callgrind_annotate, default 0), KEEP=1 (keep the callgrind output),
#              MALLOC_ARENA_MAX (default 2, as deploy/workstation-dispatch.service sets it).
# The same set-up as run.sh: the stand-in upstream is nginx answering 200 with 24 bytes, run as nobody, the routed
# os_user; the client (fixedclient.c, built here) runs as www-data, the front proxy's account. Counting starts after
# the warm-up (callgrind_control -i on) and the dispatcher's whole process is counted until the last response.
# Prints: MODE instructions/request = Ir / REQUESTS. Needs valgrind, nginx, cc, openssl, perl, setpriv, curl; root.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="$(realpath "${1:-$here/../../.build/release/workstation}")"
requests="${REQUESTS:-20000}"
warmup="${WARMUP:-2000}"
conns="${CONNS:-8}"
modes="${MODE:-both}"
[ "$modes" = both ] && modes="peer jwt"
upstream_keepalive="${UPSTREAM_KEEPALIVE_REQUESTS:-1000}"
client=www-data upstream_user=nobody
[ "$(id -u)" = 0 ] || { echo "run as root: the upstream runs as $upstream_user and the client as $client" >&2; exit 1; }
for tool in valgrind callgrind_control objcopy nginx cc openssl perl setpriv curl; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y valgrind nginx-light gcc openssl perl curl)" >&2; exit 1; }
done
. "$here/lib.sh"
bench_workdir dispatch-instr
UP=18281 JWTP=18283 MET=18284 JMET=18285
sock="$work/sock/dispatch.sock"
printf '{"users":{"alice":{"os_user":"%s","port":%d,"ports":{"t3-serve@":%d}}},"version":1}\n' \
  "$upstream_user" $UP $UP > "$work/dispatch.json"
write_peer_settings "$sock" $MET
write_jwt_settings $JWTP $JMET
# The requests wrk sends in run.sh, byte for byte in the fields that matter.
printf 'GET / HTTP/1.1\r\nHost: 127.0.0.1:18193\r\nX-authentik-username: alice\r\nX-authentik-groups: Staff|T3 Users\r\n\r\n' \
  > "$work/peer.request"
printf 'GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX-authentik-username: alice\r\nX-authentik-groups: Staff|T3 Users\r\nX-authentik-jwt: %s\r\n\r\n' \
  $JWTP "$token" > "$work/jwt.request"
cc -O2 -o "$work/fixedclient" "$here/fixedclient.c"
# valgrind 3.19 cannot read the DWARF 5 the Swift toolchain writes: a copy without debug sections (symbols kept).
objcopy --strip-debug "$bin" "$work/workstation"
chmod 0755 "$work/fixedclient"
chmod 0644 "$work"/*.request

start_upstream
as_client() { setpriv --reuid="$client" --regid="$(id -g "$client")" --clear-groups "$@"; }

echo "binary: $bin; $requests requests after $warmup, $conns connections; $(valgrind --version)"
for mode in $modes; do
  if [ "$mode" = peer ]; then target=$sock met=$MET; else target=$JWTP met=$JMET; fi
  MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}" valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/callgrind.$mode" \
    "$work/workstation" dispatch --settings "$work/$mode.yaml" --log-level warning 2> "$work/valgrind.$mode.log" & vpid=$!
  pids+=($vpid)
  for i in $(seq 1 600); do
    curl -sf "http://127.0.0.1:$met/healthz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  if [ "$mode" = peer ]; then chown "root:$(id -gn "$client")" "$sock"; chmod 0660 "$sock"; fi
  as_client "$work/fixedclient" "$target" "$conns" "$warmup" "$work/$mode.request" > /dev/null
  callgrind_control -i on "$vpid" > /dev/null
  as_client "$work/fixedclient" "$target" "$conns" "$requests" "$work/$mode.request" > "$work/client.$mode"
  callgrind_control -i off "$vpid" > /dev/null
  kill "$vpid"
  wait "$vpid" 2>/dev/null || true
  ir=$(awk '/^totals:/ { print $2 }' "$work/callgrind.$mode")
  echo "$mode: $(cat "$work/client.$mode"); instructions $ir; per request $((ir / requests))"
  if [ "${TOP:-0}" -gt 0 ]; then
    callgrind_annotate --inclusive=no "$work/callgrind.$mode" > "$work/annotate.$mode" 2>/dev/null || true
    grep -m "$TOP" '^ *[0-9,]* (' "$work/annotate.$mode" | sed "s| \[$work/workstation\]||" || true
  fi
done
