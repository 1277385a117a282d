#!/usr/bin/env bash
# perf/bundle.sh: packs what perf/run.sh and perf/scale.sh need into one directory, for a
# machine that has no package registry (a lent benchmark host): the release binaries of
# clusterns (stripped), dnsperf, nsd, knotd, dig and the helper tools the scripts call, each
# behind a wrapper that runs it with the shared libraries it was linked against here, copied
# beside it (glibc, libgcc and libstdc++ excepted: the host's own are used; they are newer or
# equal on any current x86-64 Linux).
#
#   bash perf/bundle.sh DIR     # e.g. .bench (then: git-ignore it, copy it to the host)
#
# On the host:
#   PATH=$PWD/DIR/bin:$PATH CARGO_TARGET_DIR=$PWD/DIR/target SKIP_BUILD=1 bash perf/scale.sh
#
# Builds with cargo first unless SKIP_BUILD=1 (honours CARGO_TARGET_DIR); installs the Debian
# packages here if missing (as perf/run.sh does).

set -euo pipefail
[ $# = 1 ] || { sed -n '2,/^$/{s/^# \{0,1\}//;p}' "$0"; exit 2; }
cd "$(dirname "$0")/.."
DEST=$1
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
[ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release --bins --features synth --quiet

missing=()
for c in dnsperf nsd knotd dig bc ss; do command -v "$c" >/dev/null || [ -x "/usr/sbin/$c" ] || missing+=("$c"); done
if [ ${#missing[@]} -gt 0 ]; then
    echo "perf/bundle.sh: missing ${missing[*]}: run perf/run.sh --small once, or apt-get install dnsperf nsd knot dnsutils bc iproute2" >&2
    exit 1
fi

rm -rf "$DEST"
mkdir -p "$DEST/bin" "$DEST/real" "$DEST/lib" "$DEST/target/release"
for b in clusterns clusterns-gen clusterns-floor; do
    strip -o "$DEST/target/release/$b" "$TARGET/release/$b"
done

# The host's C and C++ runtime are used, never copies of them: glibc's libraries must all
# come from one build.
host_lib() {
    case ${1##*/} in
    ld-linux* | libc.so.* | libm.so.* | libpthread.so.* | libdl.so.* | librt.so.* | libresolv.so.* | \
        libutil.so.* | libnsl.so.* | libanl.so.* | libgcc_s.so.* | libstdc++.so.* | libmvec.so.*) return 0 ;;
    esac
    return 1
}

for c in dnsperf nsd knotd dig bc ss pgrep sysctl uptime diff taskset setsid mawk; do
    path=$(command -v "$c" || echo "/usr/sbin/$c")
    cp -L "$path" "$DEST/real/$c"
    ldd "$path" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | while read -r lib; do
        host_lib "$lib" || cp -Ln "$lib" "$DEST/lib/" 2>/dev/null || true
    done
    name=$c
    [ "$c" = mawk ] && name=awk
    cat >"$DEST/bin/$name" <<EOF
#!/bin/sh
# Written by perf/bundle.sh: $c from $(. /etc/os-release && echo "$PRETTY_NAME") with its libraries.
d=\$(dirname "\$(readlink -f "\$0")")/..
LD_LIBRARY_PATH="\$d/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "\$d/real/$c" "\$@"
EOF
    chmod +x "$DEST/bin/$name"
done

# Every library resolves inside the bundle or to the host's C runtime.
for c in "$DEST"/real/*; do
    if LD_LIBRARY_PATH="$DEST/lib" ldd "$c" | grep -q 'not found'; then
        echo "perf/bundle.sh: $c has unresolved libraries" >&2
        exit 1
    fi
done
echo "perf/bundle.sh: $(du -sh "$DEST" | cut -f1) in $DEST ($(ls "$DEST/lib" | wc -l) libraries)" >&2
