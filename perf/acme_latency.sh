#!/usr/bin/env bash
# The time from an UPDATE's response to another edge's answer (issue #16): two release servers
# fed by one private PostgreSQL, 1,000 TSIG-signed updates sent to one, the other polled until
# it answers each new value (tests/e2e_acme_pg.rs). Appends the figures to perf/RESULTS.md.
#
#   CLUSTERNS_TEST_PG=/usr/lib/postgresql/15/bin bash perf/acme_latency.sh [UPDATES]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000}
if [ -z "${CLUSTERNS_TEST_PG:-}" ]; then
  CLUSTERNS_TEST_PG="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
  export CLUSTERNS_TEST_PG
fi
[ -n "$CLUSTERNS_TEST_PG" ] || { echo "PostgreSQL not found: set CLUSTERNS_TEST_PG" >&2; exit 1; }
# With NOTIFY (n updates), then polling alone (NOTIFY triggers off; n/10 updates: each waits
# up to the 500 ms poll interval).
run() {
  local out
  out=$(CLUSTERNS_ACME_LATENCY_UPDATES=$1 CLUSTERNS_ACME_LATENCY_NO_NOTIFY=$2 \
    cargo test --release --locked --test e2e_acme_pg -- --nocapture 2>&1) || {
    echo "$out" >&2
    exit 1
  }
  grep -o 'acme update -> .*' <<<"$out"
}
notify=$(run "$n" 0)
echo "$notify"
poll=$(run $((n / 10)) 1)
echo "$poll"
{
  echo
  echo "### ACME update propagation, $(date -u +%Y-%m-%d) (git $(git rev-parse --short HEAD), $(nproc) cores)"
  echo
  echo "perf/acme_latency.sh, two release servers on one PostgreSQL, time from the UPDATE's"
  echo "answer (server A) to server B answering the new value:"
  echo
  echo "- $notify"
  echo "- $poll"
} >> perf/RESULTS.md
