#!/usr/bin/env bash
# perf/fanout.sh: the NATS JetStream fan-out, measured on 127.0.0.1 only, appended to
# perf/RESULTS.md with the date and commit.
#
#   bash perf/fanout.sh                 # both parts, the defaults below
#   PARTS=latency bash perf/fanout.sh   # one part
#
# 1. latency: `clusterns-fanout` (tools/fanout.rs): a private nats-server -js, `clusterns relay`
#    on a journal, CONSUMERS ordered consumers in one process as simulated edges (they decode
#    each message as an edge does; the edge's builder is not in the figure), RATE changes/s
#    for SECS seconds written to the journal: latency from the journal write to each
#    consumer (p50/p90/p99/max), completeness and order, and the CPU of the relay, nats-server
#    and the consumers per 10,000 changes.
# 2. startup: a new edge at N apps: `clusterns-gen` writes N apps, `clusterns relay --once`
#    publishes them and puts the snapshot in the object store, then `clusterns serve` with
#    `feed.source = "nats"` and no checkpoint is started and timed to its first answer for an
#    app (bootstrap: download, verify, load).
#
# Environment (defaults in brackets): RATE [10000] SECS [10] CONSUMERS [50] N [10000000]
# PARTS ["latency startup"] NATS_SERVER [/usr/sbin/nats-server] RESULTS [perf/RESULTS.md]
# SKIP_BUILD [0]. Needs nats-server (Debian: nats-server), dig (bind9-dnsutils).

set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RATE=${RATE:-10000}
SECS=${SECS:-10}
CONSUMERS=${CONSUMERS:-50}
N=${N:-10000000}
PARTS=${PARTS:-"latency startup"}
NATS_SERVER=${NATS_SERVER:-/usr/sbin/nats-server}
RESULTS=${RESULTS:-perf/RESULTS.md}
SKIP_BUILD=${SKIP_BUILD:-0}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release
T0=$(date +%s)

log() { printf '[fanout %3ss] %s\n' $(($(date +%s) - T0)) "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ -x "$NATS_SERVER" ] || die "no $NATS_SERVER (apt-get install nats-server)"
if [ "$SKIP_BUILD" != 1 ]; then
    log "building (cargo build --release --bins --features synth)"
    cargo build --release --bins --features synth >&2
fi
for b in clusterns clusterns-gen clusterns-fanout; do [ -x "$BIN/$b" ] || die "$BIN/$b is missing"; done

commit=$(git rev-parse --short HEAD)
dirty=""
git diff --quiet HEAD -- src tools Cargo.toml || dirty=" (plus uncommitted changes)"
report=$(mktemp)
trap 'rm -f "$report"' EXIT
{
    echo
    echo "## $(date -u '+%Y-%m-%d %H:%M') UTC, commit $commit$dirty: NATS fan-out (perf/fanout.sh)"
    echo
    echo "$(nproc) cores; load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)."
} >"$report"

case " $PARTS " in *" latency "*)
    log "latency: $RATE changes/s for $SECS s to $CONSUMERS consumers"
    line=$("$BIN/clusterns-fanout" --clusterns "$BIN/clusterns" --nats-server "$NATS_SERVER" \
        --rate "$RATE" --secs "$SECS" --consumers "$CONSUMERS") || die "clusterns-fanout failed: $line"
    log "$line"
    {
        echo
        echo "### Change to delivery: journal write -> relay -> JetStream -> $CONSUMERS simulated edges"
        echo
        echo "Simulated edges: ordered consumers in one process that decode every message as an"
        echo "edge's source does; an edge's builder adds its apply-and-publish step (see the"
        echo "feed benchmark). CPU is utime+stime per 10,000 changes."
        echo
        echo "| load | edges | complete | p50 | p90 | p99 | max | relay CPU | nats-server CPU | consumers' CPU |"
        echo "|---|---|---|---|---|---|---|---|---|---|"
        echo "$line"
    } >>"$report"
    ;;
esac

case " $PARTS " in *" startup "*)
    data=$ROOT/perf/out/fanout-$N
    if [ ! -s "$data/journal.log" ]; then
        log "generating $N apps into $data"
        mkdir -p "$data"
        "$BIN/clusterns-gen" --apps "$N" --clusters 8 --out "$data" >&2
    fi
    work=$(mktemp -d /tmp/clusterns-fanout-startup.XXXX)
    nats_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    dns_port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    "$NATS_SERVER" -js -a 127.0.0.1 -p "$nats_port" -sd "$work/js" >"$work/nats.log" 2>&1 &
    nats_pid=$!
    cleanup_startup() { kill "$nats_pid" 2>/dev/null || true; [ -n "${edge_pid:-}" ] && kill "$edge_pid" 2>/dev/null; rm -rf "$work"; }
    trap 'cleanup_startup; rm -f "$report"' EXIT
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$nats_port") 2>/dev/null && break; sleep 0.1; done
    nats_block="[nats]
servers = [\"nats://127.0.0.1:$nats_port\"]
retention_secs = 3600"
    # The relay: the generated config with its journal, and [nats].
    sed "s|^journal = .*|journal = \"$data/journal.log\"|" "$data/clusterns.toml" >"$work/relay.toml"
    printf '\n%s\n' "$nats_block" >>"$work/relay.toml"
    log "relay --once: publishing $N apps and the snapshot"
    t=$(date +%s.%N)
    "$BIN/clusterns" relay --once --config "$work/relay.toml" 2>"$work/relay.log" || die "relay --once failed: $(tail -5 "$work/relay.log")"
    relay_secs=$(echo "$(date +%s.%N) - $t" | bc)
    # The edge: the same config fed by nats, no checkpoint, on its own port.
    sed -e 's|^source = .*|source = "nats"|' -e '/^journal = /d' -e '/^checkpoint = /d' \
        "$data/clusterns.toml" >"$work/edge.toml"
    printf '\n%s\n' "$nats_block" >>"$work/edge.toml"
    name=$(awk '!/^#/ {print $5 "." $4 ".repl.co"; exit}' "$data/journal.log")
    log "starting an edge; first answer for $name"
    t=$(date +%s.%N)
    "$BIN/clusterns" serve --config "$work/edge.toml" --listen "127.0.0.1:$dns_port" --threads 1 2>"$work/edge.log" &
    edge_pid=$!
    answered=""
    for _ in $(seq 1200); do
        if dig +short +tries=1 +time=1 -p "$dns_port" @127.0.0.1 "$name" A 2>/dev/null | grep -q .; then answered=1; break; fi
        sleep 0.05
    done
    startup_secs=$(echo "$(date +%s.%N) - $t" | bc)
    [ -n "$answered" ] || die "the edge did not answer within 60 s: $(tail -5 "$work/edge.log")"
    rss=$(awk '/VmRSS/ {print int($2/1024)}' "/proc/$edge_pid/status")
    snap_bytes=$(du -sb "$work/js" | cut -f1)
    log "edge answered after $startup_secs s (relay --once took $relay_secs s)"
    {
        echo
        echo "### A new edge at $N apps, bootstrapped from the object-store snapshot"
        echo
        echo "| apps | relay --once (publish + snapshot), s | edge start to first answer, s | edge VmRSS MiB | JetStream store bytes |"
        echo "|---:|---:|---:|---:|---:|"
        printf '| %s | %.2f | %.2f | %s | %s |\n' "$N" "$relay_secs" "$startup_secs" "$rss" "$snap_bytes"
    } >>"$report"
    ;;
esac

cat "$report" >>"$RESULTS"
cat "$report"
log "appended to $RESULTS"
