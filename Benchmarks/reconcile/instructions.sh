#!/usr/bin/env bash
# Benchmarks/reconcile/instructions.sh [BINARY...]: user-space instructions (valgrind's callgrind, all threads) of a
# no-op `plan --json` and a no-op `apply --json` of a converged temp root, for one or more workstation binaries side
# by side: a figure that does not drift with the machine's load, for checking that a change (a restructure) does not
# make the reconcile engine slower.
#
# Binaries: the arguments, or else BEFORE and AFTER from the environment (labelled before and after). The first is
# the baseline of the ratio columns.
# Environment: USERS (roster size, default 1000), RUNS (runs per figure, default 3; the median is printed),
#              BENCH_DIR (where the temp dir goes, default /tmp), TOP=N (list the N functions whose own instructions
#              grew and shrank most from the first binary to the last, from callgrind_annotate, per command),
#              KEEP=1 (keep the temp dir with the callgrind output files, cg.BINARY-INDEX.COMMAND.RUN).
#
# The root is the one Benchmarks/reconcile/run measures (lib.sh): seeded (`apply --init-root` of an empty roster) and
# converged (the first apply) once, by the last binary, then checked to be a no-op for every binary
# (`plan --detailed-exitcode`), and kept as a pristine copy. Every measured run starts from a fresh copy of it at the
# same path (a no-op apply appends its clean time to state.log), so every binary reads byte-identical input. Each
# binary runs as a copy without debug sections (objcopy --strip-debug: valgrind 3.19 cannot read the DWARF 5 the Swift
# toolchain writes) at one path, so the command lines are identical too.
# Every command gets --root; nothing outside the temp dir is written. Needs valgrind and objcopy (binutils); runs as
# root (the first apply's useradd --prefix and systemctl --root edit the temp root only).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/lib.sh"

labels=() bins=()
if [ $# -gt 0 ]; then
  for b in "$@"; do labels+=("$b") bins+=("$b"); done
elif [ -n "${BEFORE:-}" ] || [ -n "${AFTER:-}" ]; then
  [ -n "${BEFORE:-}" ] && { labels+=(before) bins+=("$BEFORE"); }
  [ -n "${AFTER:-}" ] && { labels+=(after) bins+=("$AFTER"); }
else
  echo "usage: $0 BINARY... (or BEFORE=path AFTER=path $0)" >&2
  exit 64
fi
users=${USERS:-1000}
runs=${RUNS:-3}
top=${TOP:-0}
for tool in valgrind objcopy; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y valgrind binutils" >&2; exit 1; }
done
[ "$top" = 0 ] || command -v callgrind_annotate >/dev/null || { echo "TOP needs callgrind_annotate (valgrind)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "run as root: the first apply runs useradd --prefix and systemctl --root on the temp root" >&2; exit 1; }
for i in "${!bins[@]}"; do
  [ -x "${bins[$i]}" ] || { echo "${labels[$i]}: ${bins[$i]} is not an executable file" >&2; exit 1; }
  bins[i]=$(realpath "${bins[$i]}")
done

work=$(mktemp -d "${BENCH_DIR:-/tmp}/ws-instr.XXXXXX")
cleanup() { if [ "${KEEP:-0}" = 1 ]; then echo "kept: $work" >&2; else rm -rf "$work"; fi; }
trap cleanup EXIT
trap 'exit 130' INT TERM

root="$work/root" pristine="$work/pristine" roster="$work/roster.yaml" settings="$work/settings.yaml"
bench_settings "$settings"
bench_roster "$users" "$roster"
args=(--roster "$roster" --settings "$settings" --root "$root")
last=$((${#bins[@]} - 1))
echo "preparing a converged root of $users users with ${labels[$last]}" >&2
bench_seed "${bins[$last]}" "$root" "$settings"
"${bins[$last]}" apply "${args[@]}" --json >"$work/first.json" 2>"$work/first.err" || {
  tail -n 20 "$work/first.err" >&2
  exit 1
}
cp -a "$root" "$pristine"
restore() { rm -rf "$root" && cp -a "$pristine" "$root"; }
for i in "${!bins[@]}"; do
  restore
  "${bins[$i]}" plan "${args[@]}" --detailed-exitcode >"$work/check.txt" 2>&1 || {
    echo "${labels[$i]}: the prepared root is not a no-op for this binary (plan exit $?), so its figures would not be" \
      "comparable:" >&2
    head -n 20 "$work/check.txt" >&2
    exit 1
  }
done

irof() { awk '/^(totals|summary):/ { ir = $2 } END { print ir }' "$1"; }

# count INDEX COMMAND RUN: one run of COMMAND under callgrind, from a fresh copy of the pristine root.
count() {
  restore
  valgrind --tool=callgrind --callgrind-out-file="$work/cg.$1.$2.$3" "$work/bin/workstation" "$2" "${args[@]}" --json \
    >"$work/out.json" 2>"$work/valgrind.log" || {
    echo "${labels[$1]}: $2 failed under valgrind:" >&2
    tail -n 20 "$work/valgrind.log" >&2
    exit 1
  }
}

mkdir -p "$work/bin"
declare -A ir runof
for i in "${!bins[@]}"; do
  objcopy --strip-debug "${bins[$i]}" "$work/bin/workstation"
  for cmd in plan apply; do
    for r in $(seq "$runs"); do count "$i" "$cmd" "$r"; done
    # The run with the median count (its file is the one TOP reads), and the spread of the runs.
    read -r ir[$i.$cmd] runof[$i.$cmd] < <(for r in $(seq "$runs"); do echo "$(irof "$work/cg.$i.$cmd.$r") $r"; done |
      sort -n | sed -n "$(((runs + 1) / 2))p")
    echo "${labels[$i]} $cmd: $(for r in $(seq "$runs"); do irof "$work/cg.$i.$cmd.$r"; done | tr '\n' ' ')Ir" >&2
  done
done

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -sr); $(valgrind --version)"
echo "no-op plan --json and apply --json of a converged root of $users users; median of $runs runs; Ir: user-space instructions, all threads"
for i in "${!bins[@]}"; do echo "${labels[$i]}: ${bins[$i]}"; done
echo
ratio() { awk "BEGIN { printf \"%.4f\", $1 / $2 }"; }
thousands() { echo "$1" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta'; }
echo "| binary | plan Ir (median) | apply Ir (median) | plan ratio to ${labels[0]} | apply ratio to ${labels[0]} |"
echo "|---|---|---|---|---|"
for i in "${!bins[@]}"; do
  echo "| ${labels[$i]} | $(thousands "${ir[$i.plan]}") | $(thousands "${ir[$i.apply]}") |" \
    "$(ratio "${ir[$i.plan]}" "${ir[0.plan]}") | $(ratio "${ir[$i.apply]}" "${ir[0.apply]}") |"
done

# The functions whose own (exclusive) instructions changed most between the first and the last binary (their median
# runs), by demangled name: a private function's symbol names its file, so a function that moved to another file
# keeps its name only once demangled. A renamed function shows as one that shrank to 0 and one that grew from 0.
if [ "$top" != 0 ] && [ "$last" -gt 0 ]; then
  demangle=cat
  for d in swift-demangle /opt/swift/usr/bin/swift-demangle; do
    command -v "$d" >/dev/null && { demangle="$d --simplified"; break; }
  done
  for cmd in plan apply; do
    for i in 0 "$last"; do
      callgrind_annotate --inclusive=no --threshold=100 "$work/cg.$i.$cmd.${runof[$i.$cmd]}" 2>/dev/null |
        sed -n 's/^ *\([0-9,][0-9,]*\) ([ 0-9.%]*)  *\(.*\) \[[^]]*\]$/\1\t\2/p' |
        awk -F'\t' -v OFS='\t' '{ gsub(",", "", $1); sub(/^\?\?\?:/, "", $2); print }' | $demangle >"$work/self.$i.$cmd"
    done
    awk -F'\t' 'FNR == NR { a[$2] += $1; next } { b[$2] += $1 } END {
        for (f in a) if (!(f in b)) b[f] += 0
        for (f in b) if (b[f] != a[f]) printf "%d\t%d\t%d\t%s\n", b[f] - a[f], a[f], b[f], f
      }' "$work/self.0.$cmd" "$work/self.$last.$cmd" | sort -t$'\t' -k1,1nr >"$work/delta.$cmd"
    for way in grew shrank; do
      echo
      echo "$cmd: the $top functions whose own instructions $way most, ${labels[0]} -> ${labels[$last]}"
      echo "| function | ${labels[0]} Ir | ${labels[$last]} Ir | delta |"
      echo "|---|---|---|---|"
      if [ "$way" = grew ]; then cat "$work/delta.$cmd"; else tac "$work/delta.$cmd"; fi | awk -v n="$top" 'NR <= n' |
        awk -F'\t' '{ printf "| %s | %d | %d | %+d |\n", $4, $2, $3, $1 }'
    done
  done
fi
