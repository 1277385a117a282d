#!/usr/bin/env bash
# Builds the Debian package of clusterns: target/debian/clusterns_<version>-1_<arch>.deb (under
# $CARGO_TARGET_DIR when set). cargo-deb cannot run generators, so this script does the steps
# it cannot: a release build, then the man pages (`clusterns manpages`, gzipped) and shell
# completions (`clusterns completions`) into target/release/pkg/, which the assets in
# Cargo.toml's [package.metadata.deb] name; then `cargo deb --no-build`.
#
#   dist/build-deb.sh
#
# Needs: cargo-deb (installed with `cargo install cargo-deb --locked` when missing), dpkg-dev
# (dpkg-shlibdeps computes the package's library dependencies), binutils (strip).
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
    echo "build-deb: $*" >&2
    exit 1
}

if ! cargo deb --version >/dev/null 2>&1; then
    # 3.x: the unit goes to /usr/lib/systemd/system, the flags below exist.
    # Not in this build's target directory: cargo install builds in a temporary one.
    env -u CARGO_TARGET_DIR cargo install cargo-deb --locked --version '^3.8'
fi
command -v dpkg-shlibdeps >/dev/null || die "dpkg-shlibdeps not found: apt-get install dpkg-dev"
command -v strip >/dev/null || die "strip not found: apt-get install binutils"

# Where cargo builds (CARGO_TARGET_DIR, a config's build.target-dir, or ./target).
target_dir=$(cargo metadata --no-deps --format-version 1 --locked |
    grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)
[ -n "$target_dir" ] || die "cargo metadata did not name the target directory"

cargo build --release --locked --bin clusterns
bin="$target_dir/release/clusterns"

# The generated assets, made anew each time so no stale page or script is packaged.
pkg="$target_dir/release/pkg"
rm -rf "$pkg"
mkdir -p "$pkg/man" "$pkg/completions"
"$bin" manpages "$pkg/man"
# -n: no name or time stamp in the gzip header, so the same page gives the same bytes.
gzip -9n "$pkg"/man/*.1
"$bin" completions bash >"$pkg/completions/clusterns"
"$bin" completions zsh >"$pkg/completions/_clusterns"
"$bin" completions fish >"$pkg/completions/clusterns.fish"
[ -s "$pkg/man/clusterns.1.gz" ] || die "no man page clusterns.1 was generated"

# --strip: the release profile keeps line tables for profiling; the package ships without.
deb=$(cargo deb --no-build --locked --strip)
[ -f "$deb" ] || die "cargo deb did not report a package file (it said: $deb)"
echo "$deb"
