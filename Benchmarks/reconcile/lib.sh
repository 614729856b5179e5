# Benchmarks/reconcile/lib.sh: the generated input the reconcile benchmarks share (sourced by run and
# instructions.sh, so both measure the same roster, settings and seeded root).

# bench_settings FILE: one per-user unit template with a port range, and an admission ceiling above every size
# (the default of 5 active users would refuse the generated rosters).
bench_settings() {
  cat >"$1" <<'YAML'
units:
  - template: t3-serve@
    port_range: [20000, 29999]
    port_env: T3CODE_PORT
capacity:
  max_active_users: 10000   # the admission gate's ceiling (default 5) would refuse the generated rosters
YAML
}

# bench_roster N FILE: a roster of N power-users, u00000 to u(N-1).
bench_roster() {
  local n=$1 i
  {
    echo "users:"
    for i in $(seq 0 $((n - 1))); do
      printf '  u%05d: { authentik_user: id-u%05d, k8s_user: u%05d, tier: power-user }\n' "$i" "$i" "$i"
    done
  } >"$2"
}

# bench_seed BIN ROOT SETTINGS: seeds ROOT (created if missing) as a fresh Debian host, with no one on it yet
# (`apply --init-root` of an empty roster, written beside ROOT as ROOT.empty.yaml). Never touches the real host.
bench_seed() {
  local bin=$1 root=$2 settings=$3
  mkdir -p "$root"
  echo "users: {}" >"$root.empty.yaml"
  "$bin" apply --roster "$root.empty.yaml" --settings "$settings" --root "$root" --init-root >/dev/null 2>&1
}
