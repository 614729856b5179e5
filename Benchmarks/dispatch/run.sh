#!/usr/bin/env bash
# Benchmarks the dispatcher against a direct loopback upstream and nginx configured as the same header-routed proxy.
# Usage: Benchmarks/dispatch/run.sh [path/to/workstation]   (default: .build/release/workstation)
# Environment: DURATION (wrk run length, default 10s), CONNS (throughput connections, default 32),
#              ROUNDS (how many times the whole comparison is repeated, default 3; the summary takes medians).
# Three loads per target: throughput on kept-alive connections (wrk -t1 -cCONNS), throughput with a new client
# connection per request (Connection: close, -c8: what upstream connection reuse is for), and a paced run (one
# connection, 1 ms think time, about 900 req/s) for added latency.
# Needs: wrk, nginx (Debian nginx-light). Everything binds 127.0.0.1 only and is stopped by pid at the end.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${1:-$here/../../.build/release/workstation}"
duration="${DURATION:-10s}"
conns="${CONNS:-32}"
rounds="${ROUNDS:-3}"
work="$(mktemp -d /tmp/dispatch-bench.XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

UP=18181 NGX=18182 DSP=18183 MET=18184
mkdir -p "$work/nginx"
cat > "$work/upstream.conf" <<NGINX
worker_processes 1;
daemon off;
pid $work/upstream.pid;
error_log $work/upstream.err warn;
events { worker_connections 4096; }
http {
  access_log off;
  server { listen 127.0.0.1:$UP; location / { return 200 "hello from the upstream\n"; } }
}
NGINX
cat > "$work/proxy.conf" <<NGINX
worker_processes 2;
daemon off;
pid $work/proxy.pid;
error_log $work/proxy.err warn;
events { worker_connections 4096; }
http {
  access_log off;
  map \$http_x_authentik_username \$user_port { default ""; alice $UP; }
  map \$http_x_authentik_groups \$in_gate { default 0; "~(^|\\|)T3 Users(\\||\$)" 1; }
  upstream alice_up { server 127.0.0.1:$UP; keepalive 64; }
  server {
    listen 127.0.0.1:$NGX;
    location / {
      if (\$in_gate = 0) { return 403; }
      if (\$user_port = "") { return 403; }
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-authentik-jwt "";
      proxy_set_header X-authentik-email "";
      proxy_pass http://alice_up;
    }
  }
}
NGINX
printf '{"users":{"alice":{"os_user":"alice","port":%d,"ports":{"t3-serve@":%d}}},"version":1}\n' $UP $UP > "$work/dispatch.json"
cat > "$work/headers.lua" <<'LUA'
wrk.headers["X-authentik-username"] = "alice"
wrk.headers["X-authentik-groups"] = "Staff|T3 Users"
LUA
cat > "$work/close.lua" <<'LUA'
wrk.headers["X-authentik-username"] = "alice"
wrk.headers["X-authentik-groups"] = "Staff|T3 Users"
wrk.headers["Connection"] = "close"
LUA
cat > "$work/paced.lua" <<'LUA'
wrk.headers["X-authentik-username"] = "alice"
wrk.headers["X-authentik-groups"] = "Staff|T3 Users"
function delay() return 1 end
LUA

nginx -p "$work/nginx" -c "$work/upstream.conf" & pids+=($!)
nginx -p "$work/nginx" -c "$work/proxy.conf" & pids+=($!)
"$bin" dispatch --settings /nonexistent --listen 127.0.0.1:$DSP --metrics-listen 127.0.0.1:$MET \
  --dispatch-file "$work/dispatch.json" --trusted-proxy 127.0.0.1 --log-level warning & dpid=$!; pids+=($dpid)
for i in $(seq 1 50); do
  curl -sf "http://127.0.0.1:$MET/healthz" >/dev/null 2>&1 && curl -s -o /dev/null "http://127.0.0.1:$UP/" && curl -s -o /dev/null "http://127.0.0.1:$NGX/" && break
  sleep 0.1
done
rss() { awk '/^VmRSS/ {printf "%.1f MiB", $2/1024}' /proc/$dpid/status; }
hwm() { awk '/^VmHWM/ {printf "%.1f MiB", $2/1024}' /proc/$dpid/status; }
threads() { awk '/^Threads/ {print $2}' /proc/$dpid/status; }
# user+system CPU ticks of the given pids (and their children's threads); used for CPU time per request
ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' /proc/$p/stat))); done; echo $t; }
hz=$(getconf CLK_TCK)
serving_pids() {  # the processes doing the work for a target: nginx workers (children of the master) or the dispatcher
  case $1 in
    direct) pgrep -P "${pids[0]}" | tr '\n' ' ' ;;
    nginx) pgrep -P "${pids[1]}" | tr '\n' ' ' ;;
    dispatch) echo "$dpid" ;;
  esac
}

# wrk output -> "req/s p50_us p99_us non2xx"
summarize() {
  awk '
    function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000; if (v ~ /s$/) return v * 1000000; return v }
    /Requests\/sec/ { rps = $2 }
    /^ +50%/ { p50 = us($2) }
    /^ +99%/ { p99 = us($2) }
    /Non-2xx/ { bad = $NF }
    END { printf "%d %d %d %d\n", rps, p50, p99, bad + 0 }'
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo "== machine"
echo "$(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(uname -srm)"
grep -m1 "model name" /proc/cpuinfo || true
echo "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== dispatcher idle: RSS $(rss), $(threads) threads"

for r in $(seq 1 "$rounds"); do
  for target in "direct:$UP" "nginx:$NGX" "dispatch:$DSP"; do
    name="${target%%:*}" port="${target##*:}"
    sp=$(serving_pids "$name"); t0=$(ticks $sp)
    wrk -t1 -c"$conns" -d"$duration" --latency -s "$work/headers.lua" "http://127.0.0.1:$port/" > "$work/wrk.out"
    t1=$(ticks $sp)
    summarize < "$work/wrk.out" > "$work/tp.$name.$r"
    n=$(awk '/requests in/ {print $1}' "$work/wrk.out")
    awk -v c=$((t1 - t0)) -v hz="$hz" -v n="$n" 'BEGIN { printf "%.1f\n", c / hz / n * 1e6 }' > "$work/cpu.$name.$r"
    echo "round $r throughput $name (wrk -t1 -c$conns -d$duration): req/s p50_us p99_us non2xx = $(cat "$work/tp.$name.$r"), CPU $(cat "$work/cpu.$name.$r") us/request"
  done
  for target in "direct:$UP" "nginx:$NGX" "dispatch:$DSP"; do
    name="${target%%:*}" port="${target##*:}"
    wrk -t1 -c8 -d"$duration" --latency -s "$work/close.lua" "http://127.0.0.1:$port/" | summarize > "$work/cl.$name.$r"
    echo "round $r new connection per request $name (wrk -t1 -c8 -d$duration, Connection: close): req/s p50_us p99_us non2xx = $(cat "$work/cl.$name.$r")"
  done
  for target in "direct:$UP" "nginx:$NGX" "dispatch:$DSP"; do
    name="${target%%:*}" port="${target##*:}"
    wrk -t1 -c1 -d"$duration" --latency -s "$work/paced.lua" "http://127.0.0.1:$port/" | summarize > "$work/pc.$name.$r"
    echo "round $r paced $name (one connection, 1 ms think time): req/s p50_us p99_us non2xx = $(cat "$work/pc.$name.$r")"
  done
done
echo "== dispatcher after load: RSS $(rss), peak (VmHWM) $(hwm), $(threads) threads"
wrk -t1 -c256 -d5s --latency -s "$work/headers.lua" "http://127.0.0.1:$DSP/" | summarize > "$work/c256"
echo "== dispatcher with 256 connections (wrk -t1 -c256 -d5s, req/s p50_us p99_us non2xx = $(cat "$work/c256")): RSS $(rss), peak (VmHWM) $(hwm)"

col() { cat "$work/$1".* | awk -v c="$2" '{ print $c }' | median; }
d_rps=$(col tp.direct 1) n_rps=$(col tp.nginx 1) w_rps=$(col tp.dispatch 1)
echo "== summary (medians of $rounds rounds)"
printf '%-10s %10s %10s %10s %12s %12s %14s\n' target "req/s" "c$conns p50" "c$conns p99" "paced p50" "paced p99" "close req/s"
for name in direct nginx dispatch; do
  printf '%-10s %10s %8sus %8sus %10sus %10sus %14s\n' "$name" "$(col tp.$name 1)" "$(col tp.$name 2)" "$(col tp.$name 3)" "$(col pc.$name 2)" "$(col pc.$name 3)" "$(col cl.$name 1)"
done
awk -v w="$w_rps" -v n="$n_rps" 'BEGIN { printf "throughput dispatcher / nginx: %.2f (target >= 0.80)\n", w / n }'
echo "CPU time per request in the c$conns runs (user+system of the serving processes): upstream (direct) $(col cpu.direct 1) us, nginx proxy $(col cpu.nginx 1) us, dispatcher $(col cpu.dispatch 1) us"
awk -v w="$(col cl.dispatch 1)" -v n="$(col cl.nginx 1)" 'BEGIN { printf "new connection per request, dispatcher / nginx: %.2f\n", w / n }'
echo "paced added latency vs direct (per round, dispatcher minus direct; target p99 < 1000 us):"
for r in $(seq 1 "$rounds"); do
  read -r _ dp50 dp99 _ < "$work/pc.direct.$r"
  read -r _ np50 np99 _ < "$work/pc.nginx.$r"
  read -r _ wp50 wp99 _ < "$work/pc.dispatch.$r"
  echo "  round $r: dispatcher p50 +$((wp50 - dp50)) us, p99 +$((wp99 - dp99)) us; nginx p50 +$((np50 - dp50)) us, p99 +$((np99 - dp99)) us"
done
echo "== refusals: unknown user through the dispatcher"
curl -s -o /dev/null -w "%{http_code}\n" -H "X-authentik-username: mallory" -H "X-authentik-groups: T3 Users" "http://127.0.0.1:$DSP/"
