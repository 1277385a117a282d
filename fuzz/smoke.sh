#!/usr/bin/env bash
# Smoke test of the fuzz targets: builds every target once, runs each for ${FUZZ_SECS:-30}
# seconds from its committed seeds, and fails if any of them crashes (a panic, an ASan
# report, a timeout over 10 s per input, or an allocation over the RSS limit).
#
#   fuzz/smoke.sh                    # all targets, 30 s each
#   FUZZ_SECS=60 fuzz/smoke.sh packet journal
#
# Environment: FUZZ_SECS (seconds per target), FUZZ_TARGET_DIR (cargo's target directory,
# default fuzz/target). New corpus entries go to a temporary directory, so the committed
# corpus stays as it is; crash inputs go to fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"

secs=${FUZZ_SECS:-30}
target_dir=${FUZZ_TARGET_DIR:-target}
# cargo-fuzz passes nightly-only flags (-Zsanitizer=address); allow them on stable.
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

dict_for() {
    case $1 in
        packet | tcp_stream) echo dict/dns.dict ;;
        journal | journal_reader | pg_row | nats_message) echo dict/journal.dict ;;
        config) echo dict/config.dict ;;
        control) echo dict/control.dict ;;
        update | update_keys) echo dict/update.dict ;;
        dnssec_key) echo dict/dnssec_key.dict ;;
    esac
}

cargo fuzz build --target-dir "$target_dir"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=()
summary=()
for t in "${targets[@]}"; do
    mkdir -p "$work/$t" "corpus/$t"
    args=(-max_total_time="$secs" -timeout=10 -print_final_stats=1)
    dict=$(dict_for "$t")
    [ -n "$dict" ] && args+=(-dict="$dict")
    echo "=== $t: ${secs}s"
    log="$work/$t.log"
    if cargo fuzz run --target-dir "$target_dir" "$t" "$work/$t" "corpus/$t" -- "${args[@]}" >"$log" 2>&1; then
        status=ok
    else
        status=CRASH
        failed+=("$t")
        tail -n 60 "$log"
    fi
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
    rate=$(grep -E 'stat::average_exec_per_sec' "$log" | awk '{print $2}' || true)
    summary+=("$(printf '%-15s %-6s exec/s %-6s %s' "$t" "$status" "${rate:-?}" "$(grep -oE 'cov: [0-9]+ ft: [0-9]+' <<<"$last" || true)")")
done

echo
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "crashed: ${failed[*]} (inputs in fuzz/artifacts/<target>/)" >&2
    exit 1
fi
