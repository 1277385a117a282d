#!/usr/bin/env bash
# perf/scale.sh: how clusterns, NSD, Knot DNS and the floor scale with server threads.
# Runs perf/run.sh once per thread count (saturation runs only), each server given that many
# cores of its own and dnsperf the machine's upper half, then appends a scaling table
# (queries/s and CPU per query at each count, and the speed-up over one thread) to
# perf/RESULTS.md after each count's own report.
#
#   bash perf/scale.sh                       # THREAD_COUNTS="1 2", N=1,000,000, 3 rounds x 5 s
#   THREAD_COUNTS="1 2 4" bash perf/scale.sh
#
# It needs a machine with cores to spare: the servers run on T cores of their own (never two
# hyperthreads of one core) and dnsperf on CLIENT_CPU with one dnsperf thread per core, so that the
# load generator is not what limits the servers (the "limited by" column of each report says
# whether it was). On a machine with fewer than 8 cores it still runs, with servers and dnsperf
# sharing cores, and says that its figures then measure nothing.
#
# Environment (defaults in brackets); anything else is passed on to perf/run.sh:
#   THREAD_COUNTS ["1 2"]      server threads per server, one perf/run.sh run each
#   N [1000000] SECS [5] ROUNDS [3]
#   SERVER_CPUS [one core per physical core from SERVER_FIRST_CPU up, as many as the largest
#                count; e.g. 2,3]   with T threads a server gets the first T of them
#   SERVER_FIRST_CPU [2]       (below 8 cores: every core, shared with dnsperf)
#   CLIENT_CPU [the upper half of the cores less the servers' and their hyperthread siblings,
#              e.g. 8,9,...,15]   cores of dnsperf
#   DNSPERF_THREADS [one per CLIENT_CPU core]   CLIENTS [64]   OUTSTANDING [2000]
#   RESULTS [perf/RESULTS.md]

set -euo pipefail

case ${1:-} in
-h | --help) sed -n '2,/^$/{s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
"") ;;
*) echo "perf/scale.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
esac

cd "$(dirname "$0")/.."
NCPU=$(nproc)
THREAD_COUNTS=${THREAD_COUNTS:-"1 2"}
export N=${N:-1000000} SECS=${SECS:-5} ROUNDS=${ROUNDS:-3}
export RESULTS=${RESULTS:-perf/RESULTS.md}
export KINDS=sat
export OUTSTANDING=${OUTSTANDING:-2000}
SHARED=0
MAX_T=0
for t in $THREAD_COUNTS; do [ "$t" -gt "$MAX_T" ] && MAX_T=$t; done

# "2,10", "2-3" or "0-1,8-9" -> one core per line.
expand_cpus() { local part c; for part in ${1//,/ }; do
    case $part in *-*) for c in $(seq "${part%-*}" "${part#*-}"); do echo "$c"; done ;; *) echo "$part" ;; esac
done; }
siblings() { expand_cpus "$(cat "/sys/devices/system/cpu/cpu$1/topology/thread_siblings_list" 2>/dev/null || echo "$1")"; }

if [ "$NCPU" -ge 8 ]; then
    # Server cores from SERVER_FIRST_CPU up, one per physical core (no two hyperthreads of one
    # core); dnsperf gets the upper half of the machine less those cores and their siblings.
    SERVER_FIRST_CPU=${SERVER_FIRST_CPU:-2}
    if [ -z "${SERVER_CPUS:-}" ]; then
        taken=" " picked=()
        for c in $(seq "$SERVER_FIRST_CPU" $((NCPU - 1))); do
            [ ${#picked[@]} -lt "$MAX_T" ] || break
            case $taken in *" $c "*) continue ;; esac
            picked+=("$c")
            for s in $(siblings "$c"); do taken="$taken$s "; done
        done
        SERVER_CPUS=$(IFS=,; echo "${picked[*]}")
    fi
    if [ -z "${CLIENT_CPU:-}" ]; then
        busy=" "
        for c in $(expand_cpus "$SERVER_CPUS"); do for s in $(siblings "$c"); do busy="$busy$s "; done; done
        CLIENT_CPU=$(for c in $(seq $((NCPU / 2)) $((NCPU - 1))); do case $busy in *" $c "*) ;; *) echo "$c" ;; esac; done | paste -sd,)
    fi
else
    SERVER_CPUS=${SERVER_CPUS:-$(seq 0 $((NCPU - 1)) | paste -sd,)}
    CLIENT_CPU=${CLIENT_CPU:-0-$((NCPU - 1))}
    SHARED=1
fi
[ "$(expand_cpus "$SERVER_CPUS" | wc -l)" -ge "$MAX_T" ] || { echo "perf/scale.sh: $MAX_T threads need $MAX_T server cores; SERVER_CPUS is $SERVER_CPUS" >&2; exit 1; }
[ -n "$CLIENT_CPU" ] || { echo "perf/scale.sh: no cores left for dnsperf" >&2; exit 1; }
export CLIENT_CPU
export DNSPERF_THREADS=${DNSPERF_THREADS:-$(expand_cpus "$CLIENT_CPU" | wc -l)}
export CLIENTS=${CLIENTS:-64}
[ "$CLIENTS" -ge "$DNSPERF_THREADS" ] || CLIENTS=$DNSPERF_THREADS

OUT=perf/out
mkdir -p "$OUT/scale"
rm -f "$OUT"/scale/runs-*.tsv "$OUT"/scale/mem-*.tsv
build_done=0
for t in $THREAD_COUNTS; do
    server_cpu=$(expand_cpus "$SERVER_CPUS" | head -n "$t" | paste -sd,)
    echo "[scale] $t server thread(s) on core(s) $server_cpu, dnsperf -T $DNSPERF_THREADS -c $CLIENTS on $CLIENT_CPU" >&2
    skip=${SKIP_BUILD:-0}
    [ "$build_done" = 1 ] && skip=1
    THREADS=$t SERVER_CPU=$server_cpu SKIP_BUILD=$skip bash perf/run.sh
    build_done=1
    cp "$OUT/runs.tsv" "$OUT/scale/runs-$t.tsv"
    cp "$OUT/mem.tsv" "$OUT/scale/mem-$t.tsv"
done

COMMIT=${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
args=()
for t in $THREAD_COUNTS; do args+=("t=$t" "$OUT/scale/runs-$t.tsv"); done
awk -v date="$(date -u '+%Y-%m-%d %H:%M UTC')" -v commit="$COMMIT" -v n="$N" -v ncpu="$NCPU" \
    -v scpu="$SERVER_CPUS" -v ccpu="$CLIENT_CPU" -v dthreads="$DNSPERF_THREADS" -v clients="$CLIENTS" \
    -v outstanding="$OUTSTANDING" -v secs="$SECS" -v rounds="$ROUNDS" -v shared="$SHARED" \
    -v hz="$(getconf CLK_TCK)" -v cpu_model="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" \
    -f perf/stats.awk -f perf/scale.awk "${args[@]}" >"$OUT/scale/report.md"
cat "$OUT/scale/report.md" >>"$RESULTS"
cat "$OUT/scale/report.md"
echo "[scale] appended to $RESULTS" >&2
