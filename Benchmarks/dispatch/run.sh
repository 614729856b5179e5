#!/usr/bin/env bash
# Benchmarks the dispatcher against a direct loopback upstream and nginx configured as the same header-routed proxy.
# Usage: Benchmarks/dispatch/run.sh [path/to/workstation]   (default: .build/release/workstation)
# Needs: wrk, nginx (Debian nginx-light). Everything binds 127.0.0.1 only and is stopped by pid at the end.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${1:-$here/../../.build/release/workstation}"
duration="${DURATION:-10s}"
conns="${CONNS:-32}"
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
rss() { awk '/^VmRSS/ {print $2/1024 " MiB"}' /proc/$dpid/status; }
hwm() { awk '/^VmHWM/ {print $2/1024 " MiB"}' /proc/$dpid/status; }
echo "== machine"; echo "$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -srm)"
grep -m1 "model name" /proc/cpuinfo || true
echo "== dispatcher RSS idle: $(rss)"
for target in "direct:$UP" "nginx:$NGX" "dispatch:$DSP"; do
  name="${target%%:*}" port="${target##*:}"
  echo "== throughput $name (wrk -t1 -c$conns -d$duration)"
  wrk -t1 -c"$conns" -d"$duration" --latency -s "$work/headers.lua" "http://127.0.0.1:$port/" | grep -E "Requests/sec|50%|99%|Non-2xx|Socket errors"
  [ "$name" = dispatch ] && echo "dispatcher RSS after load: $(rss), peak $(hwm)"
done
for target in "direct:$UP" "nginx:$NGX" "dispatch:$DSP"; do
  name="${target%%:*}" port="${target##*:}"
  echo "== paced latency $name (one connection, 1 ms think time, about 900 req/s)"
  wrk -t1 -c1 -d"$duration" --latency -s "$work/paced.lua" "http://127.0.0.1:$port/" | grep -E "Requests/sec|50%|99%|Non-2xx"
done
echo "== refusals: unknown user through the dispatcher"
curl -s -o /dev/null -w "%{http_code}\n" -H "X-authentik-username: mallory" -H "X-authentik-groups: T3 Users" "http://127.0.0.1:$DSP/"
