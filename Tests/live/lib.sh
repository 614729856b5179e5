# Tests/live/lib.sh: a throw-away systemd box with workstation installed, for the live scripts that need one host
# of their own (Tests/live/kill9, Benchmarks/live/run). Source it, then call the functions; bash only.
#
#   box_boot NAME [NSPAWN-ARGS...]   boot a box from ../shared/tools/systemd-box (or $WORKSTATION_SYSTEMD_BOX) with
#                                    --private-network; every booted box is deleted by box_cleanup_all (EXIT trap)
#   box_down NAME                    power a box off and delete it now
#   box_root NAME                    the box's root directory on this machine
#   inbox NAME CMD...                run a command in the box as root with a clean environment (time limit: $INBOX_TIMEOUT s, default 120)
#   box_install NAME BIN             install BIN as /usr/local/sbin/workstation, a stand-in `t3` (HTTP on its port,
#                                    answering with its uid), and the template unit t3-serve@.service and sample
#                                    config base from workstation's own sandbox seed (as Tests/live/run does), and
#                                    bench_settings as /etc/workstation/workstation.yaml
#
# The box has its own network namespace (only loopback): nothing in it reaches this machine's accounts, units or ports.

live_box_tool=${WORKSTATION_SYSTEMD_BOX:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/../shared/tools/systemd-box}
live_boxes=()

box_boot() {
  local name=$1
  shift
  live_boxes+=("$name")  # registered before it boots: a half-made box is deleted too
  "$live_box_tool" up "$name" --private-network "$@"
}
# The nspawn arguments BIN needs: a dynamically linked binary needs the Swift runtime at the same path inside the box.
box_args_for() {
  local lib
  lib=$(ldd "$1" 2>/dev/null | awk '/libswiftCore\.so/ { print $3; exit }')
  if [ -n "$lib" ] && [ "$lib" != "not" ]; then echo "--bind-ro=$(dirname "$lib")"; fi
}
box_root() { "$live_box_tool" root "$1"; }
inbox() {
  local name=$1
  shift
  timeout "${INBOX_TIMEOUT:-120}" "$live_box_tool" run "$name" env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 NO_COLOR=1 "$@"
}
box_down() {
  local b keep=()
  for b in "${live_boxes[@]}"; do [ "$b" = "$1" ] || keep+=("$b"); done
  live_boxes=("${keep[@]}")
  "$live_box_tool" down "$1" >/dev/null 2>&1 || echo "# could not delete box $1: run $live_box_tool down $1" >&2
}
box_cleanup_all() {
  local b
  for b in "${live_boxes[@]}"; do
    if [ "${WORKSTATION_LIVE_KEEP:-0}" = 1 ]; then echo "# kept box $b (delete it with: $live_box_tool down $b)" >&2
    else "$live_box_tool" down "$b" >/dev/null 2>&1 || echo "# could not delete box $b: run $live_box_tool down $b" >&2; fi
  done
  live_boxes=()
}

box_install() {
  local name=$1 bin=$2 root
  root=$(box_root "$name") || return 1
  install -D -m 0755 "$bin" "$root/usr/local/sbin/workstation" || return 1
  # The stand-in for `t3 serve --host H --port P` (or $T3CODE_PORT): answers every request with its uid and port.
  install -D -m 0755 /dev/stdin "$root/usr/local/bin/t3" <<'EOF'
#!/usr/bin/perl
use strict;
use warnings;
use IO::Socket::INET;
my @args = @ARGV;
shift @args if @args && $args[0] eq 'serve';
my %opt;
while (@args) { my $k = shift @args; $opt{$k} = shift @args; }
my $port = $opt{'--port'} || $ENV{T3CODE_PORT} || 3773;
my $host = $opt{'--host'} || '127.0.0.1';
my $server = IO::Socket::INET->new(LocalAddr => $host, LocalPort => $port, Listen => 16, ReuseAddr => 1)
  or die "t3 stand-in: cannot listen on $host:$port: $!\n";
while (my $c = $server->accept) {
  my $request = <$c>;
  my $body = "t3 stand-in uid=$< port=$port\n";
  print $c "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " . length($body) . "\r\n\r\n" . $body;
  close $c;
}
EOF
  bench_settings | install -D -m 0644 /dev/stdin "$root/etc/workstation/workstation.yaml" || return 1
  install -D -m 0644 /dev/stdin "$root/var/tmp/ws-seed-roster.yaml" <<<'users: {}'
  inbox "$name" workstation apply --roster /var/tmp/ws-seed-roster.yaml --settings /etc/workstation/workstation.yaml \
    --root /var/tmp/ws-seed --init-root >/dev/null 2>&1 &&
    inbox "$name" install -D -m 0644 '/var/tmp/ws-seed/etc/systemd/system/t3-serve@.service' '/etc/systemd/system/t3-serve@.service' &&
    inbox "$name" mkdir -p /srv/workstation && inbox "$name" cp -a /var/tmp/ws-seed/srv/workstation/config-base /srv/workstation/ &&
    inbox "$name" rm -rf /var/tmp/ws-seed /var/tmp/ws-seed-roster.yaml && inbox "$name" systemctl daemon-reload
}

# gen_roster FIRST COUNT: a roster of COUNT power-users u<FIRST>.. u<FIRST+COUNT-1> (five digits).
gen_roster() {
  local i
  echo "users:"
  for ((i = $1; i < $1 + $2; i++)); do printf '  u%05d: { authentik_user: id-u%05d, k8s_user: u%05d, tier: power-user }\n' "$i" "$i" "$i"; done
}

# The host settings of these scripts: power-users with small budgets (a thousand stand-ins fit in a few GiB), a
# port range and admission ceiling for a thousand people.
bench_settings() {
  cat <<'YAML'
config_base: /srv/workstation/config-base
inherited_items: [skills, rules, agents, commands]
accounts:
  group: workstation
  shell: /bin/bash
units:
  - template: t3-serve@
    port_range: [20000, 29999]
    port_env: T3CODE_PORT
capacity:
  reserve: 256M
  min_swap: 0
  max_active_users: 10000
  budgets:
    power-user: {high: 12M, max: 16M, swap_max: 0}
  tasks_max:
    power-user: 64
YAML
}
