#!/usr/bin/env bash
# Benchmarks the dispatcher in its secure deployment against nginx configured as the same header-routed proxy,
# side by side in one run (issue 16, item 8).
# Usage: Benchmarks/dispatch/run.sh [path/to/workstation]   (default: .build/release/workstation)
# Environment: DURATION (wrk run length, default 10s), CONNS (throughput connections, default 32),
#              ROUNDS (how many times the whole comparison is repeated, default 3; the summary takes medians),
#              JWT (1: also measure identity: jwt against nginx on TCP, the default; 0: peer only),
#              CLIENT_USER (the front proxy's account, default www-data: wrk runs as it, and the dispatcher believes it),
#              UPSTREAM_KEEPALIVE_REQUESTS (requests the upstream serves on one connection before closing it, default
#              1000, nginx's own default: both proxies then open a new upstream connection every 1,000 requests, and the
#              dispatcher checks the owner of each).
# Targets: the upstream directly (TCP, as in production: t3 listens on 127.0.0.1); nginx and the dispatcher with
# identity: peer, both on a unix socket; with JWT=1 also nginx and the dispatcher with identity: jwt on 127.0.0.1 TCP.
# Each round: throughput on kept-alive connections (wrk -t1 -cCONNS) with CPU time per request, and a paced run (one
# connection, 1 ms think time, about 800 req/s) for added latency. Then 256 connections to each unix-socket proxy,
# the rounds of throughput with a new client connection per request (Connection: close, -c8), and kept-alive and
# 256-connection runs again while the TIME_WAIT sockets those leave fill the socket table ("busy table").
# SETUP_ONLY=1 sets everything up, prints where, and waits until stopped (to look at it by hand).
# wrk speaks TCP only: unixconnect.so (LD_PRELOAD, built here from unixconnect.c) turns its connect(2) to the two
# unused ports $NGX_UNIX_PORT and $DSP_UNIX_PORT into connects to the unix sockets; see README.md.
# Needs: wrk, nginx (Debian nginx-light), cc, openssl, perl, setpriv, curl; run as root (the upstream runs as
# `nobody`, wrk as CLIENT_USER). Everything binds 127.0.0.1 or unix sockets under /tmp, and is stopped by pid at the end.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="$(realpath "${1:-$here/../../.build/release/workstation}")"
duration="${DURATION:-10s}"
conns="${CONNS:-32}"
rounds="${ROUNDS:-3}"
jwt="${JWT:-1}"
client="${CLIENT_USER:-www-data}"
upstream_keepalive="${UPSTREAM_KEEPALIVE_REQUESTS:-1000}"
upstream_user=nobody
[ "$(id -u)" = 0 ] || { echo "run as root: the upstream runs as $upstream_user and wrk as $client" >&2; exit 1; }
for tool in wrk nginx cc openssl perl setpriv curl; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y wrk nginx-light gcc openssl perl curl)" >&2; exit 1; }
done
. "$here/lib.sh"
bench_workdir dispatch-bench

UP=18181 NGX=18182 JWTP=18183 MET=18184 JMET=18185 NGX_UNIX_PORT=18191 DSP_UNIX_PORT=18193 FOREIGN=18186
ngx_sock="$work/sock/nginx.sock" dsp_sock="$work/sock/dispatch.sock"
mkdir -p "$work/proxy"
# nginx as the same header-routed proxy, on a unix socket (as the peer dispatcher) and on TCP (as the jwt one):
# routing map on X-authentik-username, gate-group regex on X-authentik-groups, the X-authentik-* fields the client
# sends stripped except the username (the dispatcher removes every X-authentik-* and re-adds the checked username),
# keep-alive upstream pool, 2 workers (the dispatcher runs 2 event loops). keepalive_requests is raised so nginx, like
# the dispatcher, never closes a client connection after 1,000 requests (less work for nginx, not more).
# Workers run as www-data, as Debian's nginx does. A listener on another port (created by root, accepted by www-data):
# the target of the upstream-owner refusal check at the end.
cat > "$work/proxy.conf" <<NGINX
user www-data;
worker_processes 2;
daemon off;
pid $work/proxy/nginx.pid;
error_log $work/proxy/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  map \$http_x_authentik_username \$user_port { default ""; alice $UP; }
  map \$http_x_authentik_groups \$in_gate { default 0; "~(^|\\|)T3 Users(\\||\$)" 1; }
  upstream alice_up { server 127.0.0.1:$UP; keepalive 64; }
  server {
    listen unix:$ngx_sock;
    listen 127.0.0.1:$NGX;
    location / {
      if (\$in_gate = 0) { return 403; }
      if (\$user_port = "") { return 403; }
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-authentik-groups "";
      proxy_set_header X-authentik-jwt "";
      proxy_set_header X-authentik-email "";
      proxy_set_header X-authentik-name "";
      proxy_set_header X-authentik-uid "";
      proxy_pass http://alice_up;
    }
  }
  server { listen 127.0.0.1:$FOREIGN; location / { return 200 "not bob's\n"; } }
}
NGINX
# alice is served by the upstream, which runs as nobody; bob's port is held by root (the nginx above), so the
# dispatcher must refuse to send to it (502).
printf '{"users":{"alice":{"os_user":"%s","port":%d,"ports":{"t3-serve@":%d}},"bob":{"os_user":"%s","port":%d,"ports":{"t3-serve@":%d}}},"version":1}\n' \
  "$upstream_user" $UP $UP "$upstream_user" $FOREIGN $FOREIGN > "$work/dispatch.json"
write_peer_settings "$dsp_sock" $MET
write_jwt_settings $JWTP $JMET

# Requests as Authentik's outpost sends them through the front proxy: username and groups (peer), plus the token (jwt).
for mode in peer jwt; do
  for kind in headers close paced; do
    {
      echo 'wrk.headers["X-authentik-username"] = "alice"'
      echo 'wrk.headers["X-authentik-groups"] = "Staff|T3 Users"'
      [ "$mode" = jwt ] && echo "wrk.headers[\"X-authentik-jwt\"] = \"$token\""
      [ "$kind" = close ] && echo 'wrk.headers["Connection"] = "close"'
      [ "$kind" = paced ] && echo 'function delay() return 1 end'
      true
    } > "$work/$mode.$kind.lua"
  done
done
cc -O2 -shared -fPIC -o "$work/unixconnect.so" "$here/unixconnect.c" -ldl
chmod 0644 "$work"/*.lua "$work/unixconnect.so"

start_upstream
nginx -p "$work/proxy" -e "$work/proxy/error.log" -c "$work/proxy.conf" & pids+=($!)
# The environment deploy/workstation-dispatch.service sets.
MALLOC_ARENA_MAX=2 "$bin" dispatch --settings "$work/peer.yaml" --log-level warning & dpid=$!; pids+=($dpid)
jpid=
if [ "$jwt" = 1 ]; then MALLOC_ARENA_MAX=2 "$bin" dispatch --settings "$work/jwt.yaml" --log-level warning & jpid=$!; pids+=($jpid); fi
for i in $(seq 1 100); do
  [ -S "$dsp_sock" ] && curl -sf "http://127.0.0.1:$MET/healthz" >/dev/null 2>&1 && curl -s -o /dev/null "http://127.0.0.1:$UP/" \
    && curl -s -o /dev/null "http://127.0.0.1:$NGX/" && { [ -z "$jpid" ] || curl -sf "http://127.0.0.1:$JMET/healthz" >/dev/null 2>&1; } && break
  sleep 0.1
done
# As workstation-dispatch.socket sets it up: the socket usable by root and the front proxy's group only.
chown "root:$(id -gn "$client")" "$dsp_sock"
chmod 0660 "$dsp_sock"

as_client() { setpriv --reuid="$client" --regid="$(id -g "$client")" --clear-groups env LD_PRELOAD="$work/unixconnect.so" \
  UNIXCONNECT_MAP="$NGX_UNIX_PORT=$ngx_sock,$DSP_UNIX_PORT=$dsp_sock" "$@"; }
rss() { awk '/^VmRSS/ {r = $2} /^RssAnon/ {a = $2} /^RssFile/ {f = $2} END {printf "%.1f MiB (anonymous %.1f, file-backed %.1f)", r/1024, a/1024, f/1024}' "/proc/$1/status"; }
hwm() { awk '/^VmHWM/ {printf "%.1f MiB", $2/1024}' "/proc/$1/status"; }
threads() { awk '/^Threads/ {print $2}' "/proc/$1/status"; }
# user+system CPU ticks of the given pids (all their threads); used for CPU time per request
ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo $t; }
hz=$(getconf CLK_TCK)
serving_pids() {  # the processes doing the work for a target: nginx workers (children of the master) or a dispatcher
  case $1 in
    direct) pgrep -P "${pids[0]}" | tr '\n' ' ' ;;
    nginx-unix | nginx-tcp) pgrep -P "${pids[1]}" | tr '\n' ' ' ;;
    dispatch-peer) echo "$dpid" ;;
    dispatch-jwt) echo "$jpid" ;;
  esac
}
url() {
  case $1 in
    direct) echo "http://127.0.0.1:$UP/" ;;
    nginx-unix) echo "http://127.0.0.1:$NGX_UNIX_PORT/" ;;
    dispatch-peer) echo "http://127.0.0.1:$DSP_UNIX_PORT/" ;;
    nginx-tcp) echo "http://127.0.0.1:$NGX/" ;;
    dispatch-jwt) echo "http://127.0.0.1:$JWTP/" ;;
  esac
}
mode() { case $1 in nginx-tcp | dispatch-jwt) echo jwt ;; *) echo peer ;; esac; }
targets="direct nginx-unix dispatch-peer"
[ "$jwt" = 1 ] && targets="$targets nginx-tcp dispatch-jwt"

# wrk output -> "req/s p50_us p99_us non2xx socket_errors"
summarize() {
  awk '
    function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000; if (v ~ /s$/) return v * 1000000; return v }
    /Requests\/sec/ { rps = $2 }
    /^ +50%/ { p50 = us($2) }
    /^ +99%/ { p99 = us($2) }
    /Non-2xx/ { bad = $NF }
    /Socket errors/ { gsub(/,/, ""); err = $4 + $6 + $8 + $10 }
    END { printf "%d %d %d %d %d\n", rps, p50, p99, bad + 0, err + 0 }'
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
check() {  # warns when a run had non-2xx answers or socket errors: its figures would not measure proxying
  read -r _ _ _ bad err < "$1"
  if [ "$bad" != 0 ] || [ "$err" != 0 ]; then echo "WARNING: $2: $bad non-2xx responses, $err socket errors"; fi
}

if [ "${SETUP_ONLY:-0}" = 1 ]; then  # to look at the set-up by hand: everything stays up until this script is stopped
  echo "set up in $work: dispatcher (peer) pid $dpid on $dsp_sock, (jwt) pid ${jpid:-none}; token in $work/token"
  echo "$token" > "$work/token"
  sleep infinity & pids+=($!); wait $! || true
  exit 0
fi
echo "== machine"
echo "$(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(uname -srm)"
grep -m1 "model name" /proc/cpuinfo || true
echo "$(nginx -v 2>&1), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
echo "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg); upstream keepalive_requests $upstream_keepalive"
echo "== sanity (one request each, as $client)"
for t in $targets; do
  extra=()
  [ "$(mode "$t")" = jwt ] && extra=(-H "X-authentik-jwt: $token")
  echo "$t: $(as_client curl -s -o /dev/null -w '%{http_code}' -H 'X-authentik-username: alice' -H 'X-authentik-groups: Staff|T3 Users' \
    "${extra[@]}" "$(url "$t")")"
done
tcp_sockets() { cat /proc/net/tcp /proc/net/tcp6 | grep -vc "local_address"; }
# The dispatcher reads the whole socket table (/proc/self/net/tcp and tcp6) for each new upstream connection, so its
# cost depends on how many TCP sockets the host holds, TIME_WAIT included. The table size is printed with every run.
# The connection-per-request runs leave tens of thousands of TIME_WAIT sockets for 60 s, so they run after the
# kept-alive and paced rounds, which start from a drained table.
drain() {
  local i
  for i in $(seq 1 75); do [ "$(tcp_sockets)" -lt 1000 ] && break; sleep 1; done
}
drain
echo "== dispatcher (peer) idle: RSS $(rss $dpid), $(threads $dpid) threads; TCP sockets on the host: $(tcp_sockets)"
[ -n "$jpid" ] && echo "== dispatcher (jwt) idle: RSS $(rss $jpid), $(threads $jpid) threads"

throughput() {  # name file-prefix label: a kept-alive run with CPU time per request
  local name=$1 out=$2 label=$3 sp t0 t1 n before
  sp=$(serving_pids "$name"); t0=$(ticks $sp); before=$(tcp_sockets)
  as_client wrk -t1 -c"$conns" -d"$duration" --latency -s "$work/$(mode "$name").headers.lua" "$(url "$name")" > "$work/wrk.out"
  t1=$(ticks $sp)
  summarize < "$work/wrk.out" > "$out"
  n=$(awk '/requests in/ {print $1}' "$work/wrk.out")
  awk -v c=$((t1 - t0)) -v hz="$hz" -v n="$n" 'BEGIN { printf "%.1f\n", c / hz / n * 1e6 }' > "$out.cpu"
  echo "$label $name (wrk -t1 -c$conns -d$duration): req/s p50_us p99_us non2xx errors = $(cat "$out"), CPU $(cat "$out.cpu") us/request; TCP sockets $before -> $(tcp_sockets)"
  check "$out" "$label $name"
}
for r in $(seq 1 "$rounds"); do
  for name in $targets; do
    throughput "$name" "$work/tp.$name.$r" "round $r throughput"
    mv "$work/tp.$name.$r.cpu" "$work/cpu.$name.$r"
  done
  for name in $targets; do
    before=$(tcp_sockets)
    as_client wrk -t1 -c1 -d"$duration" --latency -s "$work/$(mode "$name").paced.lua" "$(url "$name")" | summarize > "$work/pc.$name.$r"
    echo "round $r paced $name (one connection, 1 ms think time): req/s p50_us p99_us non2xx errors = $(cat "$work/pc.$name.$r"); TCP sockets $before -> $(tcp_sockets)"
    check "$work/pc.$name.$r" "round $r paced $name"
  done
done
echo "== dispatcher (peer) after the kept-alive and paced rounds: RSS $(rss $dpid), peak (VmHWM) $(hwm $dpid), $(threads $dpid) threads"
[ -n "$jpid" ] && echo "== dispatcher (jwt) after the kept-alive and paced rounds: RSS $(rss $jpid), peak (VmHWM) $(hwm $jpid), $(threads $jpid) threads"
as_client wrk -t1 -c256 -d5s --latency -s "$work/peer.headers.lua" "$(url dispatch-peer)" | summarize > "$work/c256"
echo "== dispatcher (peer) with 256 connections (wrk -t1 -c256 -d5s, req/s p50_us p99_us non2xx errors = $(cat "$work/c256"); TCP sockets $(tcp_sockets)): RSS $(rss $dpid), peak (VmHWM) $(hwm $dpid)"
as_client wrk -t1 -c256 -d5s --latency -s "$work/peer.headers.lua" "$(url nginx-unix)" | summarize > "$work/c256.nginx"
echo "== nginx (unix) with 256 connections (wrk -t1 -c256 -d5s): req/s p50_us p99_us non2xx errors = $(cat "$work/c256.nginx")"
for r in $(seq 1 "$rounds"); do
  for name in $targets; do
    before=$(tcp_sockets)
    as_client wrk -t1 -c8 -d"$duration" --latency -s "$work/$(mode "$name").close.lua" "$(url "$name")" | summarize > "$work/cl.$name.$r"
    echo "round $r new connection per request $name (wrk -t1 -c8 -d$duration, Connection: close): req/s p50_us p99_us non2xx errors = $(cat "$work/cl.$name.$r"); TCP sockets $before -> $(tcp_sockets)"
    check "$work/cl.$name.$r" "round $r new connection per request $name"
  done
done
# A host with many sockets: right after the connection-per-request runs, their TIME_WAIT sockets fill the table.
echo "== busy socket table (TIME_WAIT left by the runs above): $(tcp_sockets) TCP sockets"
for name in nginx-unix dispatch-peer; do throughput "$name" "$work/busy.$name" "busy table, throughput"; done
as_client wrk -t1 -c256 -d5s --latency -s "$work/peer.headers.lua" "$(url dispatch-peer)" | summarize > "$work/c256.busy"
echo "busy table, dispatcher (peer) with 256 connections (wrk -t1 -c256 -d5s): req/s p50_us p99_us non2xx errors = $(cat "$work/c256.busy"); TCP sockets $(tcp_sockets)"
as_client wrk -t1 -c256 -d5s --latency -s "$work/peer.headers.lua" "$(url nginx-unix)" | summarize > "$work/c256.busy.nginx"
echo "busy table, nginx (unix) with 256 connections (wrk -t1 -c256 -d5s): req/s p50_us p99_us non2xx errors = $(cat "$work/c256.busy.nginx")"
echo "== dispatcher (peer) at the end: RSS $(rss $dpid), peak (VmHWM) $(hwm $dpid), $(threads $dpid) threads"
[ -n "$jpid" ] && echo "== dispatcher (jwt) at the end: RSS $(rss $jpid), peak (VmHWM) $(hwm $jpid), $(threads $jpid) threads"

echo "load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
col() { cat "$work/$1".* | awk -v c="$2" '{ print $c }' | median; }
echo "== summary (medians of $rounds rounds)"
printf '%-14s %10s %10s %10s %12s %12s %14s %12s\n' target "req/s" "c$conns p50" "c$conns p99" "paced p50" "paced p99" "close req/s" "CPU/request"
for name in $targets; do
  printf '%-14s %10s %8sus %8sus %10sus %10sus %14s %10sus\n' "$name" "$(col tp.$name 1)" "$(col tp.$name 2)" "$(col tp.$name 3)" \
    "$(col pc.$name 2)" "$(col pc.$name 3)" "$(col cl.$name 1)" "$(col cpu.$name 1)"
done
pairs="nginx-unix:dispatch-peer"
[ "$jwt" = 1 ] && pairs="$pairs nginx-tcp:dispatch-jwt"
for pair in $pairs; do
  ngx="${pair%%:*}" dsp="${pair##*:}"
  echo "-- $dsp against $ngx"
  echo "  throughput (c$conns) per round, dispatcher / nginx (target >= 1.00):" \
    "$(for r in $(seq 1 "$rounds"); do awk -v w="$(cut -d' ' -f1 "$work/tp.$dsp.$r")" -v n="$(cut -d' ' -f1 "$work/tp.$ngx.$r")" 'BEGIN { printf "%.2f ", w / n }'; done)"
  awk -v w="$(col tp.$dsp 1)" -v n="$(col tp.$ngx 1)" 'BEGIN { printf "  throughput, medians: %.2f\n", w / n }'
  awk -v w="$(col cl.$dsp 1)" -v n="$(col cl.$ngx 1)" 'BEGIN { printf "  new connection per request, medians: %.2f\n", w / n }'
  echo "  CPU per request (user+system of the serving processes, c$conns runs): nginx $(col cpu.$ngx 1) us, dispatcher $(col cpu.$dsp 1) us, upstream (direct) $(col cpu.direct 1) us"
  echo "  paced added latency vs direct, per round (target: dispatcher p99 added <= 1.5x nginx's):"
  for r in $(seq 1 "$rounds"); do
    read -r _ dp50 dp99 _ < "$work/pc.direct.$r"
    read -r _ np50 np99 _ < "$work/pc.$ngx.$r"
    read -r _ wp50 wp99 _ < "$work/pc.$dsp.$r"
    echo "$((wp99 - dp99)) $((np99 - dp99))" >> "$work/added.$dsp"
    awk -v r="$r" -v wp50=$((wp50 - dp50)) -v wp99=$((wp99 - dp99)) -v np50=$((np50 - dp50)) -v np99=$((np99 - dp99)) 'BEGIN {
      printf "    round %d: dispatcher p50 %+d us, p99 %+d us; nginx p50 %+d us, p99 %+d us; p99 added ratio %s\n",
        r, wp50, wp99, np50, np99, (np99 > 0 ? sprintf("%.2f", wp99 / np99) : "n/a") }'
  done
  awk '{ print $1 }' "$work/added.$dsp" | median > "$work/added.w"
  awk '{ print $2 }' "$work/added.$dsp" | median > "$work/added.n"
  awk -v w="$(cat "$work/added.w")" -v n="$(cat "$work/added.n")" 'BEGIN {
    printf "  p99 added latency, medians: dispatcher %+d us, nginx %+d us, ratio %s\n", w, n, (n > 0 ? sprintf("%.2f", w / n) : "n/a") }'
done
echo "== refusals (the checks are live in the measured processes)"
echo "peer socket, unknown user (mallory) as $client: $(as_client curl -s -o /dev/null -w '%{http_code}' -H 'X-authentik-username: mallory' -H 'X-authentik-groups: T3 Users' "$(url dispatch-peer)") (expect 403)"
echo "peer socket, alice's headers from root (not a front_proxy_users account): $(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$dsp_sock" -H 'X-authentik-username: alice' -H 'X-authentik-groups: T3 Users' http://localhost/) (expect 403)"
echo "peer socket, bob (port $FOREIGN served by nginx workers running as www-data, os_user $upstream_user): $(as_client curl -s -o /dev/null -w '%{http_code}' -H 'X-authentik-username: bob' -H 'X-authentik-groups: T3 Users' "$(url dispatch-peer)") (expect 502)"
if [ -n "$jpid" ]; then
  echo "jwt, alice's headers without a token: $(curl -s -o /dev/null -w '%{http_code}' -H 'X-authentik-username: alice' -H 'X-authentik-groups: T3 Users' "$(url dispatch-jwt)") (expect 403)"
  echo "jwt, a token whose signature was altered: $(curl -s -o /dev/null -w '%{http_code}' -H "X-authentik-jwt: ${token%?????}AAAAA" "$(url dispatch-jwt)") (expect 403)"
  echo "jwt, the token with bob's username header: $(curl -s -o /dev/null -w '%{http_code}' -H "X-authentik-jwt: $token" -H 'X-authentik-username: bob' "$(url dispatch-jwt)") (expect 403)"
fi
