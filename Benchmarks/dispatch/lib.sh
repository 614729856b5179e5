# The set-up run.sh and instructions.sh share, sourced by both: the work directory and its clean-up, the stand-in
# upstream, the dispatcher's settings for identity: peer and identity: jwt, and the token. Every server binds
# 127.0.0.1 or a unix socket under the work directory; every process started goes into `pids` and is stopped by pid.
# Expects: upstream_user, client, upstream_keepalive, UP (upstream port).

# bench_workdir PREFIX: makes $work (mode 0755, so nobody and www-data can reach their sockets) and the EXIT trap that
# stops every pid in `pids` and removes $work (kept with KEEP=1).
bench_workdir() {
  work="$(mktemp -d "/tmp/$1.XXXXXX")"
  chmod 0755 "$work"
  pids=()
  trap bench_cleanup EXIT
  mkdir -p "$work/up" "$work/sock"
  chmod 0755 "$work/sock"
  chown "$upstream_user" "$work/up"
}
bench_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "${KEEP:-0}" = 1 ]; then echo "kept: $work"; else rm -rf "$work"; fi
}

# The stand-in instance: one nginx worker answering 200 with a 24-byte body, run wholly as $upstream_user (master
# included: the listening socket, and so every accepted one, must belong to the os_user in dispatch.json).
start_upstream() {
  cat > "$work/upstream.conf" <<NGINX
worker_processes 1;
daemon off;
pid $work/up/nginx.pid;
error_log $work/up/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests $upstream_keepalive;
  client_body_temp_path $work/up/body;
  proxy_temp_path $work/up/proxy;
  fastcgi_temp_path $work/up/fastcgi;
  uwsgi_temp_path $work/up/uwsgi;
  scgi_temp_path $work/up/scgi;
  server { listen 127.0.0.1:$UP; location / { return 200 "hello from the upstream\n"; } }
}
NGINX
  setpriv --reuid="$upstream_user" --regid="$(id -g "$upstream_user")" --clear-groups \
    nginx -p "$work/up" -e "$work/up/error.log" -c "$work/upstream.conf" & pids+=($!)
}

# write_peer_settings SOCKET METRICS_PORT: $work/peer.yaml, the dispatcher on a unix socket believing $client.
write_peer_settings() {
  cat > "$work/peer.yaml" <<YAML
dispatch:
  identity: peer
  listen: unix:$1
  front_proxy_users: [$client]
  metrics_listen: 127.0.0.1:$2
  dispatch_file: $work/dispatch.json
YAML
}

# write_jwt_settings PORT METRICS_PORT: an RS256 key, its JWKS (RFC 7517) in $work/jwks.json, one token for alice
# valid for a day in $token (reused on every request as Authentik's outpost reuses a session's token), and
# $work/jwt.yaml, the dispatcher on 127.0.0.1:PORT verifying it. openssl and perl only.
write_jwt_settings() {
  b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
  openssl genrsa -out "$work/jwt.key" 2048 2>/dev/null
  local modulus n issuer header payload signature
  modulus=$(openssl rsa -in "$work/jwt.key" -noout -modulus | cut -d= -f2)
  n=$(perl -e 'print pack("H*", $ARGV[0])' "$modulus" | b64url)
  printf '{"keys":[{"kty":"RSA","kid":"bench","use":"sig","alg":"RS256","n":"%s","e":"AQAB"}]}\n' "$n" > "$work/jwks.json"
  issuer="https://auth.bench.invalid/application/o/t3/"
  header=$(printf '{"alg":"RS256","kid":"bench","typ":"JWT"}' | b64url)
  payload=$(printf '{"iss":"%s","aud":"t3","sub":"bench","exp":%d,"iat":%d,"preferred_username":"alice","email":"alice@bench.invalid","groups":["Staff","T3 Users"]}' \
    "$issuer" $(($(date +%s) + 86400)) "$(date +%s)" | b64url)
  signature=$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -sign "$work/jwt.key" | b64url)
  token="$header.$payload.$signature"
  cat > "$work/jwt.yaml" <<YAML
dispatch:
  identity: jwt
  listen: 127.0.0.1:$1
  metrics_listen: 127.0.0.1:$2
  dispatch_file: $work/dispatch.json
  jwt:
    jwks_file: $work/jwks.json
    issuer: $issuer
    audience: t3
YAML
}
