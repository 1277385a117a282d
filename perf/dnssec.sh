#!/usr/bin/env bash
# perf/dnssec.sh: online signing under dnsperf -D (DO on every query), side by side in one run:
# clusterns signing (a CSK from `clusterns dnssec keygen`), clusterns unsigned (the same data
# and the same DO queries, no key), and Knot DNS with mod-onlinesign on the same names as a
# static zone. 127.0.0.1 only.
#
#   bash perf/dnssec.sh            # N=100,000 apps, 3 rounds x 10 s per server and pass
#   bash perf/dnssec.sh --small    # N=20,000, 2 rounds x 5 s: about 1.5 minutes once built
#
# What it does:
#   1. builds clusterns (cargo build --release --bins --features synth; honours
#      CARGO_TARGET_DIR) unless SKIP_BUILD=1, and generates N apps with clusterns-gen into
#      perf/out/dnssec/data (config, journal, zone file; kept for the same N);
#   2. makes a key (`clusterns dnssec keygen`, ECDSA P-256 CSK) and two clusterns configs:
#      "signed" (the key active, metrics on PORT_BASE+10) and "unsigned" (no key); and a Knot
#      config: mod-onlinesign (ECDSA P-256, single-type signing) on the generated zone file;
#   3. writes the query files: "hit", QUERIES lines drawn at random from NAMES distinct
#      queries (both names of NAMES/2 apps, A and every fourth AAAA), so that a warm
#      signature cache hits nearly always; "miss", written anew each round (MISS_QUERIES
#      lines), the same mix with MISS_PCT % of the lines a non-existent name used once (a new
#      compact-denial NSEC to sign every time: a miss, limited by [dnssec] misses_per_sec);
#   4. starts the three servers, one thread each, pinned to SERVER_CPU, at niceness NICE, and
#      checks with dig +dnssec: the same A set from all three, RRSIGs from the signers, none
#      from "unsigned";
#   5. warms the signed server's cache (each of the NAMES queries once, at WARM_QPS, below the
#      miss limit), then runs dnsperf -D (saturation: -c CLIENTS -q OUTSTANDING) pinned to
#      CLIENT_CPU against one server at a time (the others SIGSTOPped), order rotated per
#      round, ROUNDS rounds of each pass; per run: q/s, lost, server CPU per answered query (/proc/PID/stat utime+stime),
#      dnsperf's CPU share (near 100 %: the load generator was the limit);
#   6. prints clusterns's clusterns_dnssec_* metrics per pass (signatures, cache hits and
#      misses, miss-limited answers), and a report with medians and the ratios signed/unsigned
#      (CPU per query and q/s) and clusterns-signed/Knot (q/s), appended to RESULTS.
#
# Environment (defaults in brackets; --small changes N, SECS, ROUNDS, QUERIES):
#   N [100000 | 20000]    apps generated (each has two names; Knot gets them all as records)
#   NAMES [10000]         distinct names in the query files (<= 2N)
#   QUERIES [1000000 | 300000]  lines of the hit pass's file (dnsperf loops over it)
#   MISS_QUERIES [200000 x SECS]  lines of each round's miss file (more than a run sends)
#   WARM_QPS [3/4 of misses_per_sec x THREADS]  the warm-up's rate
#   MISS_PCT [10]         percent of the "miss" pass's lines that are new non-existent names
#   PASSES ["hit miss"]   which passes to run
#   SECS [10 | 5]   ROUNDS [3 | 2]   CLIENTS [8]   OUTSTANDING [500]
#   SERVERS ["signed unsigned knot"]  PORT_BASE [15321]: signed, unsigned, knot = +0, +1, +2
#   SERVER_CPU [0]  CLIENT_CPU [1]   THREADS [1] (server threads each)
#   MISSES_PER_SEC []     when set, [dnssec] misses_per_sec for the signed server (e.g.
#                         1000000: no limit, so that the miss pass measures what signing costs)
#   CACHE_ENTRIES []      when set, [dnssec] cache_entries for the signed server
#   NICE [-10]  RMEM_DEFAULT [4194304]  (as perf/run.sh: autogroup niceness; the socket
#                         buffer Knot gets while the servers start)
#   RESULTS [perf/RESULTS.md]  SKIP_BUILD [0]  COMMIT [git rev-parse --short HEAD]
#   CARGO_TARGET_DIR      where cargo builds (default: target/)
#
# Needs dnsperf, knotd + keymgr (Debian's knot), dig, taskset, bc, curl. Root for NICE < 0 and
# RMEM_DEFAULT (set NICE=0 RMEM_DEFAULT=0 otherwise).

set -euo pipefail
# Shared helpers: usage, read_args, tree_pids, proc_ticks, signal_all, restore_rmem, boost,
# port_free.
# shellcheck source=perf/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

read_args "$@"

cd "$(dirname "$0")/.."
ROOT=$PWD
if [ "$SMALL" = 1 ]; then
    N=${N:-20000} SECS=${SECS:-5} ROUNDS=${ROUNDS:-2} QUERIES=${QUERIES:-300000} MODE=small
else
    N=${N:-100000} SECS=${SECS:-10} ROUNDS=${ROUNDS:-3} QUERIES=${QUERIES:-1000000} MODE=default
fi
NAMES=${NAMES:-10000}
MISS_QUERIES=${MISS_QUERIES:-$((200000 * SECS))}
MISS_PCT=${MISS_PCT:-10}
PASSES=${PASSES:-"hit miss"}
CLIENTS=${CLIENTS:-8}
OUTSTANDING=${OUTSTANDING:-500}
SERVERS=${SERVERS:-"signed unsigned knot"}
PORT_BASE=${PORT_BASE:-15321}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
THREADS=${THREADS:-1}
MISSES_PER_SEC=${MISSES_PER_SEC:-}
WARM_QPS=${WARM_QPS:-$((${MISSES_PER_SEC:-2000} * THREADS * 3 / 4))}
CACHE_ENTRIES=${CACHE_ENTRIES:-}
NICE=${NICE:--10}
RMEM_DEFAULT=${RMEM_DEFAULT:-4194304}
RMEM_SAVED=""
RESULTS=${RESULTS:-perf/RESULTS.md}
SKIP_BUILD=${SKIP_BUILD:-0}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release
OUT=$ROOT/perf/out/dnssec
DATA=$OUT/data
HZ=$(getconf CLK_TCK)
T0=$(date +%s)

declare -A PORT=([signed]=$PORT_BASE [unsigned]=$((PORT_BASE + 1)) [knot]=$((PORT_BASE + 2)))
METRICS_PORT=$((PORT_BASE + 10))
declare -A PID=()

log() { printf '[dnssec %3ss] %s\n' $(($(date +%s) - T0)) "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- processes (as perf/run.sh)






DNSPERF_PID=""
cleanup() {
    local s p i left
    trap - EXIT INT TERM
    restore_rmem
    if [ -n "$DNSPERF_PID" ]; then
        for p in $(tree_pids "$DNSPERF_PID"); do kill "$p" 2>/dev/null || true; done
    fi
    [ ${#PID[@]} -gt 0 ] || return 0
    signal_all CONT "${!PID[@]}"
    signal_all TERM "${!PID[@]}"
    for i in $(seq 50); do
        left=""
        for s in "${!PID[@]}"; do kill -0 "${PID[$s]}" 2>/dev/null && left="$left $s"; done
        [ -z "$left" ] && break
        sleep 0.1
    done
    [ -z "$left" ] || signal_all KILL $left
    for s in "${!PID[@]}"; do wait "${PID[$s]}" 2>/dev/null || true; done
    PID=()
    log "servers stopped"
}
trap cleanup EXIT
trap 'exit 130' INT TERM


# ---------------------------------------------------------------- configs and data

# The generated config with a key (signed) or without (unsigned); the key block goes at the
# end of the zone's tables, before the first [[cluster]].
clusterns_config() { # signed|unsigned -> path
    local kind=$1 f=$DATA/clusterns-$1.toml # beside the journal it names
    awk -v kind="$kind" -v key="$OUT/repl.co.key" '
        kind == "signed" && !done && /^\[\[cluster\]\]/ {
            print "[[zone.dnssec.key]]\nfile = \"" key "\"\nstate = \"active\"\n"; done = 1 }
        { print }' "$DATA/clusterns.toml" >"$f"
    if [ "$kind" = signed ]; then
        printf '\n[metrics]\nlisten = "127.0.0.1:%s"\n' "$METRICS_PORT" >>"$f"
        if [ -n "$MISSES_PER_SEC$CACHE_ENTRIES" ]; then
            printf '\n[dnssec]\n' >>"$f"
            [ -z "$MISSES_PER_SEC" ] || printf 'misses_per_sec = %s\n' "$MISSES_PER_SEC" >>"$f"
            [ -z "$CACHE_ENTRIES" ] || printf 'cache_entries = %s\n' "$CACHE_ENTRIES" >>"$f"
        fi
    fi
    echo "$f"
}

write_knot_config() {
    mkdir -p "$OUT/knot/db"
    cat >"$OUT/knot/knot.conf" <<EOF
# Written by perf/dnssec.sh: Knot DNS signing every answer online (mod-onlinesign).
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
policy:
  - id: csk
    algorithm: ecdsap256sha256
    single-type-signing: on
mod-onlinesign:
  - id: csk
    policy: csk
zone:
  - domain: repl.co
    file: "$DATA/zone.txt"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
    module: mod-onlinesign/csk
EOF
}

# The query files. lines.txt: NAMES distinct queries (both names of the first NAMES/2 apps,
# every fourth AAAA, the rest A), also the warm-up file; queries-hit.txt: QUERIES lines drawn
# from them at random.
write_queries() {
    awk -v names="$NAMES" '$2 == "set" { print $5 "." $4 ".repl.co"; print $3 ".repl.co"; if (++n * 2 >= names) exit }' \
        "$DATA/journal.log" | head -n "$NAMES" | awk '{ print $1, (NR % 4 == 0) ? "AAAA" : "A" }' >"$OUT/lines.txt"
    [ "$(grep -c '' "$OUT/lines.txt")" -ge "$NAMES" ] || die "N=$N apps give fewer than NAMES=$NAMES names"
    awk -v q="$QUERIES" '{ line[n++] = $0 } END { srand(42); for (i = 0; i < q; i++) print line[int(rand() * n)] }' \
        "$OUT/lines.txt" >"$OUT/queries-hit.txt"
}

# The miss pass's file for one round: the hit mix with MISS_PCT % of the lines names that exist
# nowhere and appear nowhere else (a new file each round, MISS_QUERIES lines: enough that
# dnsperf does not come back to a name within a run, so each is a miss wherever it is sent).
write_miss_queries() { # round
    awk -v q="$MISS_QUERIES" -v miss="$MISS_PCT" -v round="$1" '
        { line[n++] = $0 }
        END { srand(42 + round)
              for (i = 0; i < q; i++)
                  if (rand() * 100 < miss) printf "nx%d-%d.repl.co A\n", round, i
                  else print line[int(rand() * n)] }' "$OUT/lines.txt" >"$OUT/queries-miss.txt"
}

# Fills the signed server's cache with every name of the hit pass once, below the miss limit,
# so that the hit pass measures a warm cache.
warm_up() {
    local rate=$WARM_QPS
    log "warming the signed server's cache: $NAMES queries at $rate q/s"
    local before after
    before=$(dnssec_metrics)
    taskset -c "$CLIENT_CPU" dnsperf -D -s 127.0.0.1 -p "${PORT[signed]}" -d "$OUT/lines.txt" -n 1 -Q "$rate" \
        -c 1 -q 200 -t 2 >"$OUT/warm-up.txt" 2>&1 || { cat "$OUT/warm-up.txt" >&2; die "the warm-up failed"; }
    after=$(dnssec_metrics)
    log "warm-up: $(($(metric_sum "$after" clusterns_dnssec_signatures_total) - $(metric_sum "$before" clusterns_dnssec_signatures_total))) signatures made, $(($(metric_sum "$after" clusterns_dnssec_miss_limited_total) - $(metric_sum "$before" clusterns_dnssec_miss_limited_total))) miss-limited"
}

# ---------------------------------------------------------------- servers

start_server() {
    local s=$1 port=${PORT[$1]} i
    port_free "$port" || die "port $port (for $s) is in use: set PORT_BASE"
    local -a cmd
    case $s in
    signed | unsigned) cmd=("$BIN/clusterns" serve --config "$(clusterns_config "$s")" --listen "127.0.0.1:$port" --threads "$THREADS") ;;
    knot) cmd=(knotd -c "$OUT/knot/knot.conf") ;;
    esac
    setsid nice -n "$NICE" taskset -c "$SERVER_CPU" "${cmd[@]}" >"$OUT/$s.log" 2>&1 &
    PID[$s]=$!
    boost "${PID[$s]}"
    for i in $(seq 3000); do
        kill -0 "${PID[$s]}" 2>/dev/null || { tail -20 "$OUT/$s.log" >&2; die "$s exited while starting (log: $OUT/$s.log)"; }
        if dig +short +time=1 +tries=1 @127.0.0.1 -p "$port" repl.co SOA 2>/dev/null | grep -q .; then
            # Knot pins its UDP workers itself: every thread back to SERVER_CPU.
            for p in $(tree_pids "${PID[$s]}"); do taskset -a -p -c "$SERVER_CPU" "$p" >/dev/null 2>&1 || true; done
            return 0
        fi
        sleep 0.1
    done
    die "$s did not answer within 300 s"
}

# "A-set | RRSIG-count" of one name, with DO.
signed_answer() { # server name
    local out
    out=$(dig +dnssec +time=2 +tries=2 +nocookie @127.0.0.1 -p "${PORT[$1]}" "$2" A 2>&1) || true
    echo "$(awk '/^[^;]/ && $4 == "A" { print $5 }' <<<"$out" | sort | tr '\n' ' ')| $(awk '/^[^;]/ && $4 == "RRSIG" && $5 == "A"' <<<"$out" | grep -c '' || true)"
}

check_servers() {
    local name s got a ref=""
    name=$(awk '{ print $1; exit }' "$OUT/lines.txt")
    for s in $SERVERS; do
        got=$(signed_answer "$s" "$name")
        a=${got%|*}
        [ -n "${a// /}" ] || die "$s: no A for $name with DO: $got"
        case $s in
        unsigned) [ "${got##*| }" = 0 ] || die "unsigned: $name A carries an RRSIG: $got" ;;
        *) [ "${got##*| }" -ge 1 ] || die "$s: $name A with DO carries no RRSIG: $got" ;;
        esac
        [ -z "$ref" ] || [ "$a" = "$ref" ] || die "$s answers $name with $a, another server with $ref"
        ref=$a
        log "$s: $name A -> $got RRSIG(s)"
    done
}

# clusterns_dnssec_* samples from the signed server (empty when it is not running).
dnssec_metrics() {
    curl -s --max-time 2 "http://127.0.0.1:$METRICS_PORT/metrics" 2>/dev/null | grep '^clusterns_dnssec_' || true
}

metric_sum() { # metrics-text name
    awk -v m="$2" '{ k = $1; sub(/\{.*/, "", k) } k == m { s += $NF } END { printf "%.0f", s }' <<<"$1"
}

# ---------------------------------------------------------------- runs

run_one() { # server pass round -> a line in runs.tsv
    local s=$1 pass=$2 round=$3 o logf="$OUT/runs/$1-$2-$3.txt"
    for o in $SERVERS; do [ "$o" = "$s" ] || signal_all STOP "$o"; done
    sleep 0.2
    local pids ta tb tp w0 dcpu
    pids=$(tree_pids "${PID[$s]}")
    ta=$(proc_ticks $pids)
    w0=$(date +%s.%N)
    setsid bash -c 'timeout "$1" nice -n "$2" taskset -c "$3" "${@:5}"; times >"$4"' _ \
        $((SECS + 30)) "$NICE" "$CLIENT_CPU" "$logf.times" dnsperf -D -s 127.0.0.1 -p "${PORT[$s]}" \
        -d "$OUT/queries-$pass.txt" -l "$SECS" -c "$CLIENTS" -q "$OUTSTANDING" -t 2 >"$logf" 2>&1 &
    tp=$!
    DNSPERF_PID=$tp
    boost "$tp"
    local left
    left=$(echo "$w0 + $SECS - $(date +%s.%N)" | bc)
    case $left in -*) ;; *) sleep "$left" ;; esac
    tb=$(proc_ticks $pids)
    wait "$tp" || true
    DNSPERF_PID=""
    for o in $SERVERS; do [ "$o" = "$s" ] || signal_all CONT "$o"; done
    grep -q 'Queries completed' "$logf" || { cat "$logf" >&2; die "dnsperf against $s failed"; }
    dcpu=$(awk 'END { n = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); n += a[1] * 60 + a[2] } print n }' "$logf.times" 2>/dev/null)
    awk -v s="$s" -v pass="$pass" -v round="$round" -v srv=$((tb - ta)) -v hz="$HZ" -v dcpu="${dcpu:-0}" '
        /Queries completed:/ { done = $3 }
        /Queries lost:/ { lost = $3 }
        /Run time \(s\):/ { rt = $4 }
        /Queries per second:/ { qps = $4 }
        /Average Latency \(s\):/ { avg = $4 * 1000 }
        /Average packet size:/ { resp = $NF }
        END { printf "%s\t%s\t%s\t%.0f\t%d\t%d\t%.3f\t%.2f\t%.0f\t%s\n", s, pass, round, qps, done, lost,
                  srv / hz / (done > 0 ? done : 1) * 1e6, avg, dcpu / (rt > 0 ? rt : 1) * 100, resp }' "$logf" >>"$OUT/runs.tsv"
    log "$(printf '%-8s %-4s round %s: ' "$s" "$pass" "$round")$(tail -1 "$OUT/runs.tsv" | awk -F'\t' '{ printf "%s q/s, %s lost, server %s us/q, avg %s ms, dnsperf %s%% of a core, answers %s B", $4, $6, $7, $8, $9, $10 }')"
}

# ---------------------------------------------------------------- main

mkdir -p "$OUT"
log "mode $MODE: N=$N NAMES=$NAMES QUERIES=$QUERIES MISS_PCT=$MISS_PCT SECS=$SECS ROUNDS=$ROUNDS; $(uptime)"
for t in dnsperf dig taskset bc curl; do command -v "$t" >/dev/null || die "$t is missing"; done
case " $SERVERS " in *" knot "*) command -v knotd >/dev/null || [ -x /usr/sbin/knotd ] || die "knotd is missing (apt-get install knot)" ;; esac
for s in $SERVERS; do [ -n "${PORT[$s]:-}" ] || die "unknown server $s in SERVERS (signed, unsigned, knot)"; done
for p in $PASSES; do case $p in hit | miss) ;; *) die "unknown pass $p in PASSES (hit, miss)" ;; esac; done

if [ "$SKIP_BUILD" != 1 ]; then
    log "building (cargo build --release --bins --features synth, target $TARGET)"
    cargo build --release --bins --features synth --quiet || die "cargo build failed"
fi
for b in clusterns clusterns-gen; do [ -x "$BIN/$b" ] || die "$BIN/$b is missing"; done

if [ "$(cat "$DATA/.apps" 2>/dev/null)" != "$N" ]; then
    log "generating $N apps into $DATA"
    rm -rf "$DATA"
    "$BIN/clusterns-gen" --apps "$N" --clusters 8 --queries 1 --out "$DATA" >/dev/null || die "clusterns-gen failed"
    echo "$N" >"$DATA/.apps"
fi
write_queries
log "query files: $OUT/queries-hit.txt ($QUERIES lines of $NAMES names); the miss pass: $MISS_QUERIES lines a round, $MISS_PCT % new non-existent names"

case " $SERVERS " in
*" signed "*)
    rm -f "$OUT/repl.co.key"
    if ! "$BIN/clusterns" dnssec keygen --zone repl.co --algorithm ecdsap256sha256 --role csk \
        --out "$OUT/repl.co.key" >"$OUT/keygen.txt" 2>&1; then
        cat "$OUT/keygen.txt" >&2
        die "clusterns dnssec keygen failed: this build cannot sign (SERVERS=\"unsigned knot\" runs the rest)"
    fi
    log "key: $(grep ' DS ' "$OUT/keygen.txt" || true)"
    ;;
esac
write_knot_config
rm -rf "$OUT/runs" "$OUT/knot/db"
mkdir -p "$OUT/runs" "$OUT/knot/db"
: >"$OUT/runs.tsv"

if [ "$RMEM_DEFAULT" != 0 ]; then
    RMEM_SAVED=$(sysctl -n net.core.rmem_default)
    sysctl -qw net.core.rmem_default="$RMEM_DEFAULT" 2>/dev/null || { RMEM_SAVED=""; log "warning: cannot set net.core.rmem_default"; }
fi
for s in $SERVERS; do
    log "starting $s on 127.0.0.1:${PORT[$s]} (core $SERVER_CPU)"
    start_server "$s"
done
restore_rmem
check_servers

case " $SERVERS " in *" signed "*) warm_up ;; esac

declare -A M0=() M1=()
for pass in $PASSES; do
    M0[$pass]=$(dnssec_metrics)
    for round in $(seq "$ROUNDS"); do
        [ "$pass" = miss ] && write_miss_queries "$round"
        read -r -a order <<<"$SERVERS"
        k=$(((round - 1) % ${#order[@]}))
        order=("${order[@]:k}" "${order[@]:0:k}")
        for s in "${order[@]}"; do run_one "$s" "$pass" "$round"; done
    done
    M1[$pass]=$(dnssec_metrics)
done
cleanup

# ---------------------------------------------------------------- report

MISS_SIGS=0 MISS_LIMITED=0
if [ -n "${M1[miss]:-}" ]; then
    MISS_SIGS=$(($(metric_sum "${M1[miss]}" clusterns_dnssec_signatures_total) - $(metric_sum "${M0[miss]}" clusterns_dnssec_signatures_total)))
    MISS_LIMITED=$(($(metric_sum "${M1[miss]}" clusterns_dnssec_miss_limited_total) - $(metric_sum "${M0[miss]}" clusterns_dnssec_miss_limited_total)))
fi
COMMIT=${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
KNOT_V=$(knotd --version 2>&1 | awk '{ print $NF }' || true)
DNSPERF_V=$(dnsperf -h 2>&1 | awk '/^Version/ { print $2 }')
{
    echo
    echo "## DNSSEC online signing: $(date -u '+%Y-%m-%d %H:%M UTC'), commit $COMMIT ($MODE)"
    echo
    echo "perf/dnssec.sh: dnsperf -D (DO on every query), -c $CLIENTS -q $OUTSTANDING, $SECS s x $ROUNDS round(s) per server and pass;"
    echo "$N apps, $NAMES distinct query names, miss pass $MISS_PCT % new non-existent names; $THREADS server thread(s) on core $SERVER_CPU,"
    echo "dnsperf on core $CLIENT_CPU; Knot DNS $KNOT_V mod-onlinesign (ECDSA P-256), dnsperf $DNSPERF_V; $(nproc) x $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)."
    echo "Medians over the rounds. srv us/q: server CPU (user+system, /proc/PID/stat) per answered query."
    echo
    awk -F'\t' '
        # The median of the values kept under key (insertion sort: a few rounds).
        function med(key,    i, j, x, m, a) {
            m = cnt[key]; if (m == 0) return 0
            for (i = 1; i <= m; i++) a[i] = val[key, i]
            for (i = 2; i <= m; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > x + 0; j--) a[j + 1] = a[j]; a[j + 1] = x }
            return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
        }
        function add(key, v) { cnt[key]++; val[key, cnt[key]] = v }
        {
            k = $2 "|" $1
            if (!(k in seen)) { seen[k] = 1; order[++m] = k }
            if (!($2 in pseen)) { pseen[$2] = 1; passes[++np] = $2 }
            add(k "|qps", $4); add(k "|us", $7); add(k "|avg", $8); add(k "|dnsperf", $9); lost[k] += $6; bytes[k] = $10
        }
        END {
            print "| pass | server | q/s | srv us/q | lost | avg ms | dnsperf % | answer B |"
            print "|---|---|---|---|---|---|---|---|"
            for (i = 1; i <= m; i++) {
                k = order[i]; split(k, p, "|")
                printf "| %s | %s | %.0f | %.2f | %d | %.2f | %.0f | %s |\n", p[1], p[2], med(k "|qps"), med(k "|us"), lost[k], med(k "|avg"), med(k "|dnsperf"), bytes[k]
            }
            print ""
            for (i = 1; i <= np; i++) {
                s = passes[i] "|signed"; u = passes[i] "|unsigned"; kn = passes[i] "|knot"
                if ((s in seen) && (u in seen))
                    printf "- %s pass: signed / unsigned: CPU per query %.2fx, q/s %.2fx\n", passes[i], med(s "|us") / med(u "|us"), med(s "|qps") / med(u "|qps")
                if ((s in seen) && (kn in seen))
                    printf "- %s pass: clusterns signed / Knot onlinesign: q/s %.2fx, CPU per query %.2fx\n", passes[i], med(s "|qps") / med(kn "|qps"), med(s "|us") / med(kn "|us")
                if ((u in seen) && (kn in seen))
                    printf "- %s pass: clusterns unsigned / Knot onlinesign: q/s %.2fx, CPU per query %.2fx\n", passes[i], med(u "|qps") / med(kn "|qps"), med(u "|us") / med(kn "|us")
            }
            # The cost of a miss: the extra CPU per query of the miss pass over the hit pass,
            # times its queries per round, over the signatures it made per round.
            if (("hit|signed" in seen) && ("miss|signed" in seen) && sigs > 0 && limited * 10 > sigs)
                printf "- cost of a miss: not measured, %d of the miss pass\047s misses were miss-limited (MISSES_PER_SEC=1000000 measures it)\n", limited
            else if (("hit|signed" in seen) && ("miss|signed" in seen) && sigs > 0)
                printf "- cost of a miss: %.1f us of server CPU per signature made (CPU of the miss pass over the hit pass, per signature made)\n",
                    (med("miss|signed|us") - med("hit|signed|us")) * med("miss|signed|qps") * secs / (sigs / rounds)
        }' secs="$SECS" rounds="$ROUNDS" sigs="${MISS_SIGS:-0}" limited="${MISS_LIMITED:-0}" "$OUT/runs.tsv"
    for pass in $PASSES; do
        [ -n "${M1[$pass]:-}" ] || continue
        h=$(($(metric_sum "${M1[$pass]}" clusterns_dnssec_cache_hits_total) - $(metric_sum "${M0[$pass]}" clusterns_dnssec_cache_hits_total)))
        mi=$(($(metric_sum "${M1[$pass]}" clusterns_dnssec_cache_misses_total) - $(metric_sum "${M0[$pass]}" clusterns_dnssec_cache_misses_total)))
        sg=$(($(metric_sum "${M1[$pass]}" clusterns_dnssec_signatures_total) - $(metric_sum "${M0[$pass]}" clusterns_dnssec_signatures_total)))
        li=$(($(metric_sum "${M1[$pass]}" clusterns_dnssec_miss_limited_total) - $(metric_sum "${M0[$pass]}" clusterns_dnssec_miss_limited_total)))
        echo "- $pass pass, clusterns signed: cache hits $h, misses $mi (hit rate $(awk -v h="$h" -v m="$mi" 'BEGIN { printf "%.4f", (h + m > 0 ? h / (h + m) : 0) }')), signatures made $sg, miss-limited $li"
    done
    if [ -n "${M1[${PASSES##* }]:-}" ]; then
        echo
        echo '```text'
        echo "${M1[${PASSES##* }]}"
        echo '```'
    fi
} >"$OUT/report.md"
cat "$OUT/report.md" >>"$RESULTS"
cat "$OUT/report.md"
log "appended to $RESULTS (raw: $OUT/runs.tsv, dnsperf output in $OUT/runs/)"
