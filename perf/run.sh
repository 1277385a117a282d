#!/usr/bin/env bash
# perf/run.sh: clusterns side by side with NSD and Knot DNS under dnsperf, and the floor of
# this machine's UDP packet path (tools/floor.rs), on 127.0.0.1 only.
#
#   bash perf/run.sh            # N=1,000,000 apps, 3 rounds x 10 s per server and run kind
#   bash perf/run.sh --small    # N=100,000, 2 rounds x 3 s: under 3 minutes once built
#
# What it does, in order:
#   1. installs dnsperf, nsd, knot and dig from Debian's packages if missing (apt-get), and
#      stops and disables the system instances the packages start (they must not hold :53);
#   2. builds clusterns (cargo build --release --bins --features synth; honours CARGO_TARGET_DIR);
#   3. generates the data with clusterns-gen into perf/out/data (clusterns.toml, journal.log,
#      zone.txt, queries.txt; kept between runs for the same N);
#   4. writes NSD and Knot configs into perf/out and starts the four servers, each on its own
#      port, ONE server thread each, all pinned to core $SERVER_CPU with taskset:
#      the floor, clusterns (--threads 1), NSD (server-count 1, RRL off, minimal responses),
#      Knot (udp-workers 1, tcp-workers 1, background-workers 1);
#   5. checks their answers with dig (a known name's A/AAAA, an unknown name's NXDOMAIN, a
#      NODATA, and 200 lines of the query file answered alike by all three);
#   6. runs dnsperf pinned to core $CLIENT_CPU against one server at a time (the others are
#      SIGSTOPped meanwhile so that their timers do not run on the measured core), in
#      alternating order, $ROUNDS rounds of two kinds: saturation (no -Q) and a fixed
#      offered rate (-Q $RATE). Per run it records queries/s, lost queries, average and p99
#      latency, the server's CPU (utime+stime of its processes from /proc/PID/stat), the
#      whole busy time of both cores from /proc/stat (core 0 includes the loopback softirq
#      and anything else scheduled there), dnsperf's own CPU, the bytes queued at the server's
#      and at dnsperf's sockets (/proc/net/udp), and says what limited the run;
#   7. appends a markdown report (perf/report.awk) to perf/RESULTS.md with the date and
#      commit, and stops every server it started (also on error or Ctrl-C).
#
# Environment (defaults in brackets; --small changes N, SECS, ROUNDS):
#   N [1000000 | 100000]  apps (each has two names)   SECS [10 | 3]  seconds per run
#   ROUNDS [3 | 2]        rounds                      RATE [50000]   the fixed offered rate
#   CLIENTS [8]           dnsperf -c                  OUTSTANDING [500]  dnsperf -q
#   DNSPERF_THREADS [1]   dnsperf -T (give CLIENT_CPU as many cores; CLIENTS >= it)
#   KINDS ["sat rate"]    which kinds of run: saturation, the fixed rate, or both
#   SERVER_CPU [0]        core(s) of the servers      CLIENT_CPU [1] core(s) of dnsperf
#   THREADS [1]           server threads (workers) each: floor/clusterns --threads, NSD
#                         server-count (with reuseport), Knot udp-workers. With more than one,
#                         give SERVER_CPU a list (e.g. THREADS=2 SERVER_CPU=0,1 CLIENT_CPU=0,1
#                         on a 2-core machine, where the servers then share cores with dnsperf)
#   PORT_BASE [15301]     floor, clusterns, NSD, Knot use PORT_BASE+0..3
#   SERVERS ["floor clusterns nsd knot"]             which to run (the floor is needed for x floor);
#                         add "before" to run a second clusterns binary beside this one
#   BEFORE_BIN []         the folder holding that binary (an earlier build's target/release):
#                         server "before", on PORT_BASE+4, same config and flags, for a
#                         before/after comparison of a change in one run
#   COALESCE_US [clusterns's default]  receive coalescing wait for clusterns AND the floor
#                         (server.udp_coalesce_us / clusterns-floor --coalesce-us)
#   P99_SAT [0]           1: also run dnsperf -v at saturation for a p99 there (costs dnsperf
#                         CPU, so the saturation figure is then lower)
#   NICE [-10]            niceness of the servers and dnsperf (0: unchanged). Each is started
#                         in its own session (setsid) and the niceness is also given to that
#                         session's autogroup (/proc/PID/autogroup): with autogroup scheduling
#                         a process's nice only counts within its session, so without it other
#                         people's builds take half of each core. Their work still runs in the
#                         gaps, and 'other %' shows how much of core 0 it got.
#   RMEM_DEFAULT [4194304]  net.core.rmem_default while the servers start (restored as soon as
#                         they listen; 0: not touched). Knot sets no socket buffer sizes and
#                         gets this default; with Linux's 208 KiB it drops ~300 of dnsperf's
#                         first burst of 500 queries. clusterns and NSD ask for 4 MiB themselves.
#   RESULTS [perf/RESULTS.md]  the file the report is appended to
#   SKIP_BUILD [0]        1: use the binaries already built
#   COMMIT [git rev-parse --short HEAD]  the commit the report names (for a copy without .git)
#   CARGO_TARGET_DIR      where cargo builds (default: target/)
#
# Needs root for apt-get, NICE < 0 and RMEM_DEFAULT; servers run as the caller on 127.0.0.1.
# dnsperf runs with -t 2: a query unanswered after 2 s is lost.

set -euo pipefail
# Shared helpers: usage, read_args, tree_pids, proc_ticks, signal_all, restore_rmem, boost,
# port_free.
# shellcheck source=perf/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

read_args "$@"

cd "$(dirname "$0")/.."
ROOT=$PWD
if [ "$SMALL" = 1 ]; then
    N=${N:-100000} SECS=${SECS:-3} ROUNDS=${ROUNDS:-2} MODE=small
else
    N=${N:-1000000} SECS=${SECS:-10} ROUNDS=${ROUNDS:-3} MODE=default
fi
RATE=${RATE:-50000}
CLIENTS=${CLIENTS:-8}
DNSPERF_THREADS=${DNSPERF_THREADS:-1}
KINDS=${KINDS:-"sat rate"}
OUTSTANDING=${OUTSTANDING:-500}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
THREADS=${THREADS:-1}
PORT_BASE=${PORT_BASE:-15301}
SERVERS=${SERVERS:-"floor clusterns nsd knot"}
P99_SAT=${P99_SAT:-0}
COALESCE_US=${COALESCE_US:-}
RESULTS=${RESULTS:-perf/RESULTS.md}
SKIP_BUILD=${SKIP_BUILD:-0}
NICE=${NICE:--10}
RMEM_DEFAULT=${RMEM_DEFAULT:-4194304}
RMEM_SAVED=""
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release
OUT=$ROOT/perf/out
DATA=$OUT/data
HZ=$(getconf CLK_TCK)
T0=$(date +%s)

declare -A PORT=([floor]=$PORT_BASE [clusterns]=$((PORT_BASE + 1)) [nsd]=$((PORT_BASE + 2)) [knot]=$((PORT_BASE + 3)) [before]=$((PORT_BASE + 4)))
BEFORE_BIN=${BEFORE_BIN:-}
declare -A PID=()

log() { printf '[perf %3ss] %s\n' $(($(date +%s) - T0)) "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- processes


# A process's start time (field 22 of /proc/PID/stat), empty once it is gone.
started() { local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0; s=${s##*) }; set -- $s; echo "${20}"; }


# "busy softirq total" ticks of one core from /proc/stat.
core_ticks() { # core list (e.g. 0, 0,1 or 8-15) -> busy softirq total, summed over the cores
    awk -v list="$1" 'BEGIN { n = split(list, l, ",")
            for (i = 1; i <= n; i++) { m = split(l[i], r, "-"); for (c = r[1]; c <= r[m]; c++) want["cpu" c] = 1 } }
        $1 in want { b += $2 + $3 + $4 + $7 + $8 + $9; s += $8; t += $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }
        END { print b, s, t }' /proc/stat
}




DNSPERF_PID=""
cleanup() {
    local s p i
    trap - EXIT INT TERM
    restore_rmem
    if [ -n "$DNSPERF_PID" ]; then
        for p in $(tree_pids "$DNSPERF_PID"); do kill "$p" 2>/dev/null || true; done
    fi
    [ ${#PID[@]} -gt 0 ] || return 0
    # Every process of every server (NSD's children too), with its start time so that a
    # recycled pid is never mistaken for ours.
    local all="" left
    for s in "${!PID[@]}"; do
        for p in $(tree_pids "${PID[$s]}"); do all="$all $p:$(started "$p")"; done
    done
    signal_all CONT "${!PID[@]}"
    signal_all TERM "${!PID[@]}"
    for i in $(seq 50); do
        left=""
        for s in $all; do [ "$(started "${s%%:*}")" = "${s#*:}" ] && left="$left ${s%%:*}"; done
        [ -z "$left" ] && break
        sleep 0.1
    done
    for p in $left; do kill -KILL "$p" 2>/dev/null || true; done
    for s in "${!PID[@]}"; do wait "${PID[$s]}" 2>/dev/null || true; done
    PID=()
    log "servers stopped"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- 1. packages

install_missing() {
    local pkgs=() before p
    command -v dnsperf >/dev/null || pkgs+=(dnsperf)
    case " $SERVERS " in *" nsd "*) command -v nsd >/dev/null || [ -x /usr/sbin/nsd ] || pkgs+=(nsd) ;; esac
    case " $SERVERS " in *" knot "*) command -v knotd >/dev/null || [ -x /usr/sbin/knotd ] || pkgs+=(knot) ;; esac
    command -v dig >/dev/null || pkgs+=(dnsutils)
    command -v taskset >/dev/null || pkgs+=(util-linux)
    [ ${#pkgs[@]} -gt 0 ] || return 0
    log "installing ${pkgs[*]}"
    before=" $(pgrep -x 'nsd|knotd' | tr '\n' ' ' || true) "
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y "${pkgs[@]}" >"$OUT/apt.log" 2>&1 ||
        { apt-get update >>"$OUT/apt.log" 2>&1 && apt-get install -y "${pkgs[@]}" >>"$OUT/apt.log" 2>&1; } ||
        die "apt-get install ${pkgs[*]} failed (see $OUT/apt.log)"
    # The packages enable nsd.service and knot.service and start them where they can.
    for p in nsd knot; do
        if [ -d /run/systemd/system ]; then
            systemctl disable --now "$p" >/dev/null 2>&1 || true
        else
            service "$p" stop >/dev/null 2>&1 || true
            update-rc.d "$p" disable >/dev/null 2>&1 || true
        fi
    done
    # Whatever the install started and is still running (a PID not there before): stop it.
    for p in $(pgrep -x 'nsd|knotd'); do
        case $before in *" $p "*) continue ;; esac
        log "stopping the system instance the install started: $(tr '\0' ' ' </proc/"$p"/cmdline) (pid $p)"
        kill "$p" 2>/dev/null || true
    done
}

# ---------------------------------------------------------------- 4. servers

write_configs() {
    mkdir -p "$OUT/nsd" "$OUT/knot/db"
    cat >"$OUT/nsd/nsd.conf" <<EOF
# Written by perf/run.sh: NSD with one server process on 127.0.0.1:${PORT[nsd]}.
server:
    ip-address: 127.0.0.1
    port: ${PORT[nsd]}
    do-ip6: no
    server-count: $THREADS
    reuseport: $([ "$THREADS" = 1 ] && echo no || echo yes)
    # Debian builds NSD with response rate limiting on (200 q/s per source): off.
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
    # No NS and glue added to every answer: the same answers as clusterns and Knot.
    minimal-responses: yes
    # The socket buffers clusterns asks for.
    receive-buffer-size: 4194304
    send-buffer-size: 4194304
    username: ""
    chroot: ""
    database: ""
    zonelistfile: "$OUT/nsd/zone.list"
    xfrdfile: "$OUT/nsd/xfrd.state"
    xfrdir: "$OUT/nsd"
    zonesdir: "$OUT/nsd"
    pidfile: "$OUT/nsd/nsd.pid"
    logfile: "$OUT/nsd/nsd.log"
    verbosity: 1
    hide-version: yes
remote-control:
    control-enable: no
zone:
    name: repl.co
    zonefile: "$DATA/zone.txt"
EOF
    cat >"$OUT/knot/knot.conf" <<EOF
# Written by perf/run.sh: Knot DNS with one UDP worker on 127.0.0.1:${PORT[knot]}.
server:
    rundir: "$OUT/knot"
    pidfile: "$OUT/knot/knot.pid"
    listen: 127.0.0.1@${PORT[knot]}
    udp-workers: $THREADS
    tcp-workers: 1
    background-workers: 1
database:
    storage: "$OUT/knot/db"
control:
    listen: "$OUT/knot/knot.sock"
log:
  - target: stderr
    any: info
zone:
  - domain: repl.co
    file: "$DATA/zone.txt"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
EOF
}


# Starts one server pinned to SERVER_CPU; returns once it answers.
start_server() {
    local s=$1 port=${PORT[$1]} t0 i
    port_free "$port" || die "port $port (for $s) is in use: set PORT_BASE"
    local -a cmd
    case $s in
    floor) cmd=("$BIN/clusterns-floor" --listen "127.0.0.1:$port" --threads "$THREADS" --coalesce-us "$FLOOR_COALESCE") ;;
    clusterns) cmd=("$BIN/clusterns" serve --config "$CLUSTERNS_CONFIG" --listen "127.0.0.1:$port" --threads "$THREADS") ;;
    before) cmd=("$BEFORE_BIN/clusterns" serve --config "$CLUSTERNS_CONFIG" --listen "127.0.0.1:$port" --threads "$THREADS") ;;
    nsd) cmd=(nsd -d -c "$OUT/nsd/nsd.conf") ;;
    knot) cmd=(knotd -c "$OUT/knot/knot.conf") ;;
    esac
    t0=$(date +%s.%N)
    setsid nice -n "$NICE" taskset -c "$SERVER_CPU" "${cmd[@]}" >"$OUT/$s.log" 2>&1 &
    PID[$s]=$!
    boost "${PID[$s]}"
    local probe=repl.co type=SOA
    [ "$s" = floor ] && probe=floor.repl.co type=A
    for i in $(seq 6000); do
        kill -0 "${PID[$s]}" 2>/dev/null || { tail -20 "$OUT/$s.log" >&2; die "$s exited while starting"; }
        if dig +short +time=1 +tries=1 @127.0.0.1 -p "$port" "$probe" "$type" 2>/dev/null | grep -q .; then
            READY[$s]=$(echo "$(date +%s.%N) - $t0" | bc)
            # Knot pins its UDP workers to cores 0..n-1 itself, whatever taskset said: every
            # thread of every server goes back to SERVER_CPU (check_affinity verifies it).
            for p in $(tree_pids "${PID[$s]}"); do taskset -a -p -c "$SERVER_CPU" "$p" >/dev/null 2>&1 || true; done
            return 0
        fi
        sleep 0.1
    done
    die "$s did not answer within 600 s"
}

# Memory of a server's processes: "VmRSS-sum-KiB PSS-sum-KiB processes threads".
mem_of() {
    local rss=0 pss=0 n=0 th=0 p v
    for p in $(tree_pids "${PID[$1]}"); do
        v=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null) && rss=$((rss + ${v:-0}))
        v=$(awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null) && pss=$((pss + ${v:-0}))
        v=$(awk '/^Threads:/ { print $2 }' "/proc/$p/status" 2>/dev/null) && th=$((th + ${v:-0}))
        n=$((n + 1))
    done
    echo "$rss $pss $n $th"
}

# Every thread of the server must be allowed on SERVER_CPU only.
check_affinity() {
    local p t a bad=0 want
    want=$(taskset -c "$SERVER_CPU" awk '/^Cpus_allowed_list:/ { print $2 }' /proc/self/status)
    for p in $(tree_pids "${PID[$1]}"); do
        for t in /proc/"$p"/task/*; do
            a=$(awk '/^Cpus_allowed_list:/ { print $2 }' "$t/status" 2>/dev/null) || continue
            [ -z "$a" ] || [ "$a" = "$want" ] || { log "warning: $1 thread ${t##*/} may run on cores $a"; bad=1; }
        done
    done
    return $bad
}

# ---------------------------------------------------------------- 5. checks

ask() { # server name type -> "STATUS answer answer..." (answers sorted)
    local out st
    out=$(dig +time=2 +tries=2 +nocookie @127.0.0.1 -p "${PORT[$1]}" "$2" "$3" 2>&1) || true
    st=$(sed -n 's/.*status: \([A-Z]*\),.*/\1/p' <<<"$out")
    echo "${st:-NO-ANSWER}" $(awk '/^[^;]/ && NF >= 5 && $4 == "'"$3"'" { print tolower($5) }' <<<"$out" | sort)
}

expect() { # server name type expected...
    local s=$1 name=$2 type=$3 got want
    shift 3
    want="$*"
    got=$(ask "$s" "$name" "$type")
    [ "$got" = "$want" ] || die "$s: $name $type gave '$got', expected '$want'"
}

# 200 lines of the query file, answered alike (rcode, flags, answer records) by every server.
answers_of() {
    dig +time=2 +tries=2 +nocookie @127.0.0.1 -p "${PORT[$1]}" -f "$OUT/check-queries.txt" \
        +noall +comments +question +answer 2>&1 | awk '
        /->>HEADER<<-/ { st = $6; sub(/,/, "", st) }
        /^;; flags:/ { fl = $0; sub(/^;; flags: /, "", fl); sub(/;.*/, "", fl) }
        /^;[^; ]/ { q = tolower(substr($1, 2)) " " $NF; print q " | " st " | " fl }
        /^[^;]/ && NF >= 5 { print q " | " tolower($1) " " $2 " " $4 " " tolower($5) }' | sort -u
}

check_servers() {
    local line id user slug cluster v4 v6 s
    line=$(awk '$2 == "set" { print; exit }' "$DATA/journal.log")
    read -r _ _ id user slug cluster <<<"$line"
    v4=$(awk -v c="\"$cluster\"" '$1 == "name" && $3 == c { f = 1; next } f && $1 == "ipv4" { gsub(/[]["]/, ""); gsub(/,/, " "); $1 = $2 = ""; print; exit }' "$DATA/clusterns.toml" | tr ' ' '\n' | grep . | sort | tr '\n' ' ')
    v6=$(awk -v c="\"$cluster\"" '$1 == "name" && $3 == c { f = 1; next } f && $1 == "ipv6" { gsub(/[]["]/, ""); gsub(/,/, " "); $1 = $2 = ""; print; exit }' "$DATA/clusterns.toml" | tr ' ' '\n' | grep . | sort | tr '\n' ' ')
    [ -n "$v4" ] && [ -n "$v6" ] || die "cannot find cluster $cluster's addresses in $DATA/clusterns.toml"
    awk 'NR % 5000 == 1' "$DATA/queries.txt" | head -200 >"$OUT/check-queries.txt"
    for s in $SERVERS; do
        case $s in
        floor) expect floor floor.repl.co A NOERROR 192.0.2.1 192.0.2.2 ;;
        *)
            expect "$s" "$slug.$user.repl.co" A NOERROR $v4
            expect "$s" "$(tr 'a-f' 'A-F' <<<"$id").repl.co" A NOERROR $v4
            expect "$s" "$id.repl.co" AAAA NOERROR $v6
            expect "$s" "$slug.$user.repl.co" MX NOERROR
            expect "$s" "nouser-perf-check.repl.co" A NXDOMAIN
            answers_of "$s" >"$OUT/check-$s.txt"
            [ -s "$OUT/check-$s.txt" ] || die "$s answered none of $OUT/check-queries.txt"
            ;;
        esac
    done
    local ref=""
    for s in $SERVERS; do
        [ "$s" = floor ] && continue
        if [ -z "$ref" ]; then ref=$s; continue; fi
        diff -q "$OUT/check-$ref.txt" "$OUT/check-$s.txt" >/dev/null || {
            diff "$OUT/check-$ref.txt" "$OUT/check-$s.txt" | head -20 >&2
            die "$ref and $s answer $OUT/check-queries.txt differently"
        }
    done
    log "answers check out ($slug.$user / $id in $cluster; $(grep -c '' "$OUT/check-queries.txt") sample queries answered alike)"
}

# ---------------------------------------------------------------- 6. runs

# RcvbufErrors from /proc/net/snmp: datagrams dropped because a socket's receive buffer was full.
rcvbuf_errors() { awk '/^Udp:/ { if (h) { print $6; exit } h = 1 }' /proc/net/snmp; }

# Samples, every 0.25 s until "$3.stop" exists, the bytes waiting in the receive queues of the
# server's UDP sockets (port $1) and of dnsperf's (found under pid $2), from /proc/net/udp; then
# writes their averages in KiB to "$3". Where the outstanding queries wait shows which side is
# behind: queries queued at the server, or answers queued at dnsperf.
sample_queues() {
    local hexport dp="" inodes="" p i
    hexport=$(printf '%04X' "$1")
    for i in $(seq 40); do
        for p in $(tree_pids "$2"); do [ "$(cat "/proc/$p/comm" 2>/dev/null)" = dnsperf ] && dp=$p; done
        [ -n "$dp" ] && inodes=$(ls -l "/proc/$dp/fd" 2>/dev/null | sed -n 's/.*socket:\[\([0-9]*\)\].*/\1/p' | tr '\n' ' ')
        [ -n "$inodes" ] && break
        sleep 0.05
    done
    sleep 0.3 # dnsperf opens its sockets before it starts sending
    [ -n "$dp" ] && inodes=$(ls -l "/proc/$dp/fd" 2>/dev/null | sed -n 's/.*socket:\[\([0-9]*\)\].*/\1/p' | tr '\n' ' ')
    while [ ! -e "$3.stop" ]; do
        awk -v port=":$hexport" -v inodes=" $inodes " '
            function hex(s,    i, n) { n = 0; s = toupper(s); for (i = 1; i <= length(s); i++) n = n * 16 + index("0123456789ABCDEF", substr(s, i, 1)) - 1; return n }
            NR > 1 { split($5, q, ":"); rx = hex(q[2])
                     if (substr($2, index($2, ":")) == port) srv += rx
                     else if (index(inodes, " " $10 " ")) cli += rx }
            END { print srv + 0, cli + 0 }' /proc/net/udp
        sleep 0.25
    done >"$3.samples"
    awk '{ s += $1; c += $2; n++ } END { if (n) printf "%.1f %.1f\n", s / n / 1024, c / n / 1024; else print "NA NA" }' "$3.samples" >"$3"
}

# One dnsperf run against server $1, kind $2 (sat|rate), round $3: appends a line to runs.tsv.
# CPU and core figures cover the SECS seconds dnsperf sends for, not the wait for stragglers.
run_one() {
    local s=$1 kind=$2 round=$3 o
    local logf="$OUT/runs/$s-$kind-$round.txt"
    local -a extra=()
    [ "$kind" = rate ] && extra+=(-Q "$RATE")
    local verbose=0
    { [ "$kind" = rate ] || [ "$P99_SAT" = 1 ]; } && verbose=1 && extra+=(-v)
    for o in $SERVERS; do [ "$o" = "$s" ] || signal_all STOP "$o"; done
    sleep 0.2
    local pids c0a c1a c0b c1b ta tb w0 w1 tp dcpu drops0 drops1 left
    pids=$(tree_pids "${PID[$s]}")
    drops0=$(rcvbuf_errors)
    ta=$(proc_ticks $pids)
    c0a=$(core_ticks "$SERVER_CPU") c1a=$(core_ticks "$CLIENT_CPU")
    w0=$(date +%s.%N)
    # dnsperf's own CPU: the wrapping shell's `times` (its waited-for children's user and system).
    setsid bash -c 'timeout "$1" nice -n "$2" taskset -c "$3" "${@:5}"; times >"$4"' _ \
        $((SECS + 30)) "$NICE" "$CLIENT_CPU" "$logf.times" dnsperf -s 127.0.0.1 -p "${PORT[$s]}" \
        -d "$DATA/queries.txt" -l "$SECS" -c "$CLIENTS" -T "$DNSPERF_THREADS" -q "$OUTSTANDING" -t 2 "${extra[@]}" >"$logf" 2>&1 &
    tp=$!
    DNSPERF_PID=$tp
    boost "$tp"
    rm -f "$logf.queues.stop"
    sample_queues "${PORT[$s]}" "$tp" "$logf.queues" &
    local sampler=$!
    left=$(echo "$w0 + $SECS - $(date +%s.%N)" | bc)
    case $left in -*) ;; *) sleep "$left" ;; esac
    c0b=$(core_ticks "$SERVER_CPU") c1b=$(core_ticks "$CLIENT_CPU")
    tb=$(proc_ticks $pids)
    w1=$(date +%s.%N)
    touch "$logf.queues.stop"
    wait "$sampler" || true
    wait "$tp" || true
    DNSPERF_PID=""
    drops1=$(rcvbuf_errors)
    # "XmY.YYYs XmY.YYYs" on the last line: children's user and system time.
    dcpu=$(awk 'END { n = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); n += a[1] * 60 + a[2] } print n }' "$logf.times" 2>/dev/null)
    for o in $SERVERS; do [ "$o" = "$s" ] || signal_all CONT "$o"; done
    local p99=NA
    if [ "$verbose" = 1 ]; then
        p99=$(awk '/^> / && $2 != "T" { print $NF }' "$logf" | sort -g |
            awk '{ a[NR] = $1 } END { if (NR == 0) { print "NA"; exit } i = int(NR * 0.99); if (i < NR * 0.99) i++; print a[i] * 1000 }')
        grep -v '^> ' "$logf" >"$logf.tmp" && mv "$logf.tmp" "$logf" # keep the summary only
    fi
    grep -q 'Queries completed' "$logf" || { cat "$logf" >&2; die "dnsperf against $s failed"; }
    awk -v s="$s" -v kind="$kind" -v round="$round" -v p99="$p99" -v dcpu="${dcpu:-0}" -v queues="$(cat "$logf.queues" 2>/dev/null || echo NA NA)" \
        -v wall="$(echo "$w1 - $w0" | bc)" -v srv=$((tb - ta)) -v drops=$((drops1 - drops0)) \
        -v c0="$c0a $c0b" -v c1="$c1a $c1b" '
        /Queries sent:/ { sent = $3 }
        /Queries completed:/ { done = $3 }
        /Queries lost:/ { lost = $3 }
        /Run time \(s\):/ { rt = $4 }
        /Queries per second:/ { qps = $4 }
        /Average Latency \(s\):/ { avg = $4 * 1000; mx = $8; sub(/\)/, "", mx); mx *= 1000 }
        /Average packet size:/ { resp = $NF }
        END {
            split(c0, a, " "); split(c1, b, " "); split(queues, qq, " ")
            print s, kind, round, qps, sent, done, lost, rt, avg, p99, mx, resp, wall, srv, \
                a[4] - a[1], a[5] - a[2], a[6] - a[3], b[4] - b[1], b[5] - b[2], b[6] - b[3], dcpu, drops, qq[1], qq[2]
        }' OFS='\t' "$logf" >>"$OUT/runs.tsv"
    log "$(printf '%-9s %-4s round %s: ' "$s" "$kind" "$round")$(tail -1 "$OUT/runs.tsv" | awk -F'\t' -v hz="$HZ" '{ printf "%.0f q/s, %d lost (%d rcvbuf drops), avg %.2f ms, p99 %s ms, server %.2f us/q, dnsperf %.0f%% of core, queued KiB at server %s / dnsperf %s", $4, $7, $22, $9, $10, $14 / hz / ($6 > 0 ? $6 : 1) * 1e6, $21 / ($8 > 0 ? $8 : 1) * 100, $23, $24 }')"
}

# ---------------------------------------------------------------- main

mkdir -p "$OUT"
log "mode $MODE: N=$N SECS=$SECS ROUNDS=$ROUNDS RATE=$RATE; $(uptime)"
install_missing
command -v bc >/dev/null || die "bc is missing (apt-get install bc)"
for s in $SERVERS; do [ -n "${PORT[$s]:-}" ] || die "unknown server $s in SERVERS"; done
case " $SERVERS " in *" before "*) [ -x "$BEFORE_BIN/clusterns" ] || die "server before needs BEFORE_BIN (a folder with the earlier clusterns)" ;; esac
for kind in $KINDS; do case $kind in sat | rate) ;; *) die "unknown kind $kind in KINDS (sat, rate)" ;; esac; done
[ "$CLIENTS" -ge "$DNSPERF_THREADS" ] || die "CLIENTS ($CLIENTS) must be at least DNSPERF_THREADS ($DNSPERF_THREADS)"

# The system instances must not run during the benchmark.
if pgrep -x 'nsd|knotd' >/dev/null; then
    for p in $(pgrep -x 'nsd|knotd'); do
        case "$(tr '\0' ' ' </proc/"$p"/cmdline)" in
        *"$OUT"*) ;;
        *) log "warning: another $(cat /proc/"$p"/comm) is running (pid $p): $(tr '\0' ' ' </proc/"$p"/cmdline)" ;;
        esac
    done
fi

if [ "$SKIP_BUILD" != 1 ]; then
    log "building (cargo build --release --bins --features synth, target $TARGET)"
    cargo build --release --bins --features synth --quiet || die "cargo build failed"
fi
for b in clusterns clusterns-gen clusterns-floor; do [ -x "$BIN/$b" ] || die "$BIN/$b is missing"; done

if [ "$(cat "$DATA/.apps" 2>/dev/null)" != "$N" ]; then
    log "generating $N apps into $DATA"
    rm -rf "$DATA"
    "$BIN/clusterns-gen" --apps "$N" --clusters 8 --out "$DATA" || die "clusterns-gen failed"
    echo "$N" >"$DATA/.apps"
else
    log "reusing the data in $DATA ($N apps)"
fi

# clusterns's config: the generated one, with COALESCE_US when set; the floor coalesces as
# clusterns does (its default when COALESCE_US is not set).
CLUSTERNS_CONFIG=$DATA/clusterns.toml
if [ -n "$COALESCE_US" ]; then
    CLUSTERNS_CONFIG=$DATA/clusterns-coalesce.toml
    sed "s/^\[server\]\$/[server]\nudp_coalesce_us = $COALESCE_US/" "$DATA/clusterns.toml" >"$CLUSTERNS_CONFIG"
    grep -q "^udp_coalesce_us = $COALESCE_US\$" "$CLUSTERNS_CONFIG" || die "cannot set udp_coalesce_us in $CLUSTERNS_CONFIG"
fi
FLOOR_COALESCE=$("$BIN/clusterns" check-config "$CLUSTERNS_CONFIG" 2>/dev/null | awk '$1 == "udp_coalesce_us" { print $2 }')
FLOOR_COALESCE=${FLOOR_COALESCE:-${COALESCE_US:-0}}

# The load average once the build and the data generation are done.
UPTIME_START=$(uptime)
write_configs
rm -rf "$OUT/runs" "$OUT/knot/db"
mkdir -p "$OUT/runs" "$OUT/knot/db"
: >"$OUT/runs.tsv"
: >"$OUT/mem.tsv"
declare -A READY=()
RMEM_NOTE="net.core.rmem_default $(sysctl -n net.core.rmem_default) (not changed)"
if [ "$RMEM_DEFAULT" != 0 ]; then
    RMEM_SAVED=$(sysctl -n net.core.rmem_default)
    if sysctl -qw net.core.rmem_default="$RMEM_DEFAULT" 2>/dev/null; then
        RMEM_NOTE="net.core.rmem_default $RMEM_DEFAULT while the servers started (then $RMEM_SAVED again)"
        log "net.core.rmem_default=$RMEM_DEFAULT until the servers listen (was $RMEM_SAVED)"
    else
        RMEM_SAVED=""
        log "warning: cannot set net.core.rmem_default; Knot keeps the system default buffer"
    fi
fi
for s in $SERVERS; do
    log "starting $s on 127.0.0.1:${PORT[$s]} (core $SERVER_CPU)"
    start_server "$s"
    affinity=yes
    check_affinity "$s" || affinity=no
    printf '%s\t%s\t%s\t%s\t%s\n' "$s" "${READY[$s]}" "$(mem_of "$s" | tr ' ' '\t')" "$affinity" "$(cat "/proc/${PID[$s]}/autogroup" 2>/dev/null | tr ' ' '_')" >>"$OUT/mem.tsv"
    log "$s answers after ${READY[$s]} s; VmRSS/PSS/processes/threads: $(mem_of "$s")"
done
restore_rmem
check_servers

for round in $(seq "$ROUNDS"); do
    # Rotate the order every round so that no server always runs first or last.
    read -r -a order <<<"$SERVERS"
    k=$(((round - 1) % ${#order[@]}))
    order=("${order[@]:k}" "${order[@]:0:k}")
    for kind in $KINDS; do
        for s in "${order[@]}"; do run_one "$s" "$kind" "$round"; done
    done
done
UPTIME_END=$(uptime)

# Memory again after the runs (the report shows the figures after loading).
for s in $SERVERS; do log "$s after the runs: VmRSS/PSS/processes/threads $(mem_of "$s")"; check_affinity "$s" || true; done
cleanup

# ---------------------------------------------------------------- 7. report

COMMIT=${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
DIRTY=""
git diff --quiet HEAD -- src tools Cargo.toml 2>/dev/null || DIRTY=" (plus uncommitted changes in src/, tools/ or Cargo.toml)"
[ -z "$(git ls-files --others --exclude-standard -- src tools 2>/dev/null)" ] || DIRTY=" (plus uncommitted changes in src/, tools/ or Cargo.toml)"
NSD_V=$(nsd -v 2>&1 | awk 'NR == 1 { print $3 }' || true)
KNOT_V=$(knotd --version 2>&1 | awk '{ print $NF }' || true)
DNSPERF_V=$(dnsperf -h 2>&1 | awk '/^Version/ { print $2 }')
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)

if [ ! -s "$RESULTS" ]; then
    cat >"$RESULTS" <<'EOF'
# Performance results

Appended by `bash perf/run.sh` (see perf/README.md): clusterns, NSD and Knot DNS answering the
same generated zone on 127.0.0.1, one server thread each pinned to core 0, dnsperf pinned to
core 1, and `clusterns-floor` (tools/floor.rs: a fixed answer per datagram with the same
recvmmsg/sendmmsg path, no DNS work) as the floor of the packet path.

Columns:

- **run**: `sat` = saturation (dnsperf with `-c 8 -q 500`, no rate limit); `rate` = a fixed
  offered rate (`-Q`, 50,000 q/s unless stated), which every server should sustain.
- **q/s**: answered queries per second (dnsperf's "Queries per second").
- **lost**: queries dnsperf got no answer for within 2 s (`-t 2`), summed over the rounds.
  **rcvbuf drops** (per run): UDP datagrams the kernel dropped at a full socket receive
  buffer during the run (/proc/net/snmp RcvbufErrors, machine-wide).
- **avg ms / p99 ms**: latency from dnsperf's send to its receive. dnsperf 2.10 has no latency
  histogram: p99 is computed from its per-query `-v` output, which is enabled in the fixed-rate
  runs only (at saturation the extra output would slow the load generator, and latency there
  is mostly the 500 outstanding queries queued; `P99_SAT=1` measures it anyway).
- **srv CPU s/M**: CPU seconds (user + system) of the server's own processes per million
  answered queries, from /proc/PID/stat at the start and at the end of dnsperf's sending
  time (equal to microseconds per query). The loopback softirq work is not in it.
- **srv+softirq s/M**: the server's CPU plus core 0's softirq time (/proc/stat), per million
  answered queries: the whole cost of answering on core 0, loopback delivery of the answers
  included, without other processes' time.
- **core0 busy s/M**: busy time of the whole server core (core 0) from /proc/stat per million
  answered queries: the server, the loopback softirq, and anything else that ran on core 0
  (the other servers are SIGSTOPped during a run; other people's work on a shared machine is
  not, see **other %**). On a shared machine other work fills whatever time the server leaves
  idle, so at a fixed rate this reads ~1/rate for every server and means nothing; use
  srv+softirq there.
- **x floor**: a figure divided by the floor's in the same kind of run.
- **core0 % busy / softirq / other**: of core 0's time during the run: busy, in softirq, and
  busy with neither the server nor softirq (other processes: noise; they also fill whatever
  time the server leaves idle, so core 0 reads ~100% busy on a shared machine).
- **dnsperf %** / **core1 %**: dnsperf's own CPU (user + system, /proc/PID/stat) and core 1's
  busy time. At ~100% of core 1 the load generator, not the server, is the bottleneck.
- **queued KiB srv / dnsperf**: the average bytes (kernel accounting, ~0.8 KiB per small
  datagram) waiting in the server's socket receive queue and in dnsperf's, sampled every
  0.25 s from /proc/net/udp. With 500 queries outstanding they wait at the slower side.
- **limited by**: what capped the run: the offered rate (q/s within 3% of it); otherwise where
  the queries waited: at the server (the server is the bottleneck), at dnsperf (the load
  generator is), or at both; with the busy share of each core, and "core 0 shared with other
  work" where 20% or more of core 0 went to neither the server nor softirq.
- **VmRSS / PSS**: memory of the server's processes once it answers (NSD is three processes
  sharing the zone copy-on-write, so its VmRSS sum counts it more than once; PSS does not).
- Servers and dnsperf run at niceness -10 in their own sessions, whose autogroups get -10 too
  (`NICE`), so that other people's work on a shared machine only gets the gaps; Knot gets a
  4 MiB socket receive buffer like the others through `net.core.rmem_default`, raised only
  while the servers start (`RMEM_DEFAULT`). Both are stated in each entry.
- Medians over the rounds; ratios are clusterns / peer (below 1 is better for CPU, latency
  and memory; above 1 is better for q/s).
EOF
fi

awk -v hz="$HZ" -v rate="$RATE" -f perf/stats.awk -f perf/report.awk \
    -v date="$(date -u '+%Y-%m-%d %H:%M UTC')" -v commit="$COMMIT$DIRTY" -v mode="$MODE" \
    -v n="$N" -v secs="$SECS" -v rounds="$ROUNDS" -v clients="$CLIENTS" -v dthreads="$DNSPERF_THREADS" -v outstanding="$OUTSTANDING" \
    -v nthreads="$THREADS" -v scpu="$SERVER_CPU" -v ccpu="$CLIENT_CPU" -v coalesce="$FLOOR_COALESCE" \
    -v versions="NSD $NSD_V, Knot DNS $KNOT_V, dnsperf $DNSPERF_V" \
    -v machine="$(nproc) x $CPU_MODEL, Linux $(uname -r)" -v ncpu="$(nproc)" \
    -v nice="$NICE" -v rmem="$RMEM_NOTE" -v up0="$UPTIME_START" -v up1="$UPTIME_END" -v queries="$(grep -c '' "$DATA/queries.txt")" \
    "$OUT/mem.tsv" "$OUT/runs.tsv" >"$OUT/report.md"
cat "$OUT/report.md" >>"$RESULTS"
cat "$OUT/report.md"
log "appended to $RESULTS (raw: $OUT/runs.tsv, $OUT/mem.tsv, dnsperf output in $OUT/runs/)"
