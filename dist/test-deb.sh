#!/usr/bin/env bash
# Installs the Debian package system-wide and checks what it installed, then removes and
# purges it and checks that nothing is left: the package's test in CI (.ci/run, as root on a
# fresh Debian). It refuses to run outside CI (CI=true) unless given --system, since it
# installs, changes and removes system files, and it refuses where clusterns is installed.
#
#   dist/test-deb.sh [--system] [PACKAGE.deb]     # default: the newest target/debian/clusterns_*.deb
#
# The clusterns user and group, if this script's install created them, are deleted at the end
# (the package itself keeps them on purge, as Debian does).
set -euo pipefail
cd "$(dirname "$0")/.."

system=no
deb=
for arg in "$@"; do
    case $arg in
        --system) system=yes ;;
        -h | --help)
            sed -n '2,11p' "$0"
            exit 0
            ;;
        -*)
            echo "test-deb: unknown option $arg" >&2
            exit 2
            ;;
        *) deb=$arg ;;
    esac
done

die() {
    echo "test-deb: FAILED: $*" >&2
    exit 1
}
ok() { echo "ok: $*"; }

if [ "${CI:-}" != "true" ] && [ $system != yes ]; then
    echo "test-deb: this installs and purges the clusterns package system-wide; outside CI" >&2
    echo "test-deb: run it only on a machine you can change, with --system" >&2
    exit 2
fi
[ "$(id -u)" = 0 ] || die "must run as root (dpkg -i)"
if dpkg-query -W -f '${Status}' clusterns 2>/dev/null | grep -q 'installed'; then
    die "clusterns is installed on this machine already: this test would replace and purge it"
fi

if [ -z "$deb" ]; then
    target_dir=$(cargo metadata --no-deps --format-version 1 --locked |
        grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)
    deb=$(ls -t "$target_dir"/debian/clusterns_*.deb 2>/dev/null | head -n 1 || true)
    [ -n "$deb" ] || die "no package in $target_dir/debian: run dist/build-deb.sh first"
fi
[ -f "$deb" ] || die "$deb: no such file"
echo "package: $deb ($(du -h "$deb" | cut -f1))"

user_existed=no
getent passwd clusterns >/dev/null && user_existed=yes
group_existed=no
getent group clusterns >/dev/null && group_existed=yes

cleanup() {
    # After a failure: leave the machine as it was (the package purged, the user gone).
    if dpkg-query -W -f '${Status}' clusterns 2>/dev/null | grep -q 'installed\|config-files'; then
        dpkg -P clusterns >/dev/null 2>&1 || true
    fi
    if [ $user_existed = no ] && getent passwd clusterns >/dev/null; then
        deluser --system clusterns >/dev/null 2>&1 || userdel clusterns || true
    fi
    if [ $group_existed = no ] && getent group clusterns >/dev/null; then
        delgroup --system clusterns >/dev/null 2>&1 || groupdel clusterns || true
    fi
}
trap cleanup EXIT

config=/etc/clusterns/clusterns.toml
state=/var/lib/clusterns
# From /, which every user may enter (runuser keeps the working directory).
as_clusterns() { (cd / && runuser -u clusterns -- "$@"); }

# --- install --------------------------------------------------------------------------------
dpkg -i "$deb"
dpkg-query -W -f '${Status}' clusterns | grep -q 'install ok installed' || die "not installed"
ok "dpkg -i"

version=$(dpkg-query -W -f '${Version}' clusterns)
out=$(clusterns --version)
case $out in
    "clusterns ${version%-*} (git "*) ok "clusterns --version: $out" ;;
    *) die "clusterns --version says '$out', the package is $version" ;;
esac
[ "$(command -v clusterns)" = /usr/bin/clusterns ] || die "clusterns is not /usr/bin/clusterns"

# Man pages: one per command, gzipped.
for page in clusterns clusterns-serve clusterns-check-config; do
    [ -f "/usr/share/man/man1/$page.1.gz" ] || die "no man page $page.1.gz"
done
zcat /usr/share/man/man1/clusterns.1.gz | grep -q '^\.TH clusterns' || die "clusterns.1 is not a man page"
if command -v man >/dev/null; then
    [ "$(man -w clusterns)" = /usr/share/man/man1/clusterns.1.gz ] || die "man -w clusterns: $(man -w clusterns)"
fi
ok "man pages"

# Shell completions where bash-completion, zsh and fish look for them.
bash -c 'source /usr/share/bash-completion/completions/clusterns && complete -p clusterns' >/dev/null ||
    die "the bash completion does not load"
grep -q '^#compdef clusterns' /usr/share/zsh/vendor-completions/_clusterns || die "zsh completion"
grep -q 'complete -c clusterns' /usr/share/fish/vendor_completions.d/clusterns.fish || die "fish completion"
ok "completions"

for f in README.md copyright LICENSE-MIT LICENSE-APACHE; do
    [ -s "/usr/share/doc/clusterns/$f" ] || die "no /usr/share/doc/clusterns/$f"
done
ok "documentation and licenses"

# The unit: installed, valid, hardened, enabled, not started.
# cargo-deb 3 installs it in /usr/lib/systemd/system, which is /lib/systemd/system on a
# merged-/usr system (every Debian 12 install); systemd reads both.
unit=/lib/systemd/system/clusterns.service
[ -f $unit ] || unit=/usr/lib/systemd/system/clusterns.service
[ -f $unit ] || die "no /lib/systemd/system/clusterns.service"
grep -q '^ExecStart=/usr/bin/clusterns serve' $unit || die "the unit does not run /usr/bin/clusterns"
systemd-analyze verify $unit || die "systemd-analyze verify $unit"
score=$(systemd-analyze security --offline=true --threshold=25 $unit 2>&1 | grep 'Overall exposure' ||
    die "systemd-analyze security: exposure over 2.5")
ok "unit verified; ${score#→ }"
[ -L /etc/systemd/system/multi-user.target.wants/clusterns.service ] || die "the unit is not enabled"
if [ -d /run/systemd/system ] && systemctl is-active --quiet clusterns; then
    die "the service was started before its config was edited"
fi
ok "unit enabled, not started"

# The user, its state directory and journal, the config's mode.
IFS=: read -r _ _ _ _ _ home shell < <(getent passwd clusterns) || die "no clusterns user"
if [ "$home" != $state ] || [ "$shell" != /usr/sbin/nologin ]; then
    die "clusterns user: home $home shell $shell"
fi
[ "$(stat -c '%U:%G %a' $state)" = "clusterns:clusterns 750" ] || die "$state: $(stat -c '%U:%G %a' $state)"
[ "$(stat -c '%U:%G %a %s' $state/journal.log)" = "clusterns:clusterns 640 0" ] ||
    die "$state/journal.log: $(stat -c '%U:%G %a %s' $state/journal.log)"
[ "$(stat -c '%U:%G %a' $config)" = "root:clusterns 640" ] || die "$config: $(stat -c '%U:%G %a' $config)"
dpkg-query -W -f '${Conffiles}' clusterns | grep -q " $config " || die "$config is not a conffile"
ok "user, $state, journal, config mode"

# The shipped config loads as the service loads it (the unit's ExecStartPre), and by default.
# The unit makes /run/clusterns (RuntimeDirectory=) before ExecStartPre; so does this test.
install -d -o clusterns -g clusterns -m 0750 /run/clusterns
as_clusterns clusterns check-config --config $config >/dev/null || die "check-config as clusterns"
as_clusterns clusterns check-config >/dev/null || die "check-config (default path) as clusterns"
# ... and the check can fail: another user may not read it.
if (cd / && runuser -u nobody -- clusterns check-config --config $config >/dev/null 2>&1); then
    die "the config is readable by nobody"
fi
ok "check-config on the installed config as clusterns (and refused to nobody)"

# The installed binary answers from the installed config and journal.
as_clusterns clusterns repl --config $config set 3f2b9c1e-0b7a-4c1e-9a53-1d2e3f4a5b6c mark coolgame us-east
answer=$(as_clusterns clusterns lookup --config $config coolgame.mark.apps.example.net A)
grep -q '203\.0\.113\.10' <<<"$answer" || die "lookup: $answer"
ok "repl set and lookup as clusterns"

# Installing again (the upgrade path) keeps the journal and the operator's edits.
echo "# edited by the operator" >>$config
journal_before=$(cat $state/journal.log)
dpkg -i "$deb" >/dev/null
[ "$(cat $state/journal.log)" = "$journal_before" ] || die "reinstalling changed the journal"
grep -q '^# edited by the operator' $config || die "reinstalling replaced the edited config"
[ "$(stat -c '%U:%G %a' $config)" = "root:clusterns 640" ] || die "$config after reinstall: $(stat -c '%U:%G %a' $config)"
ok "reinstall keeps journal, config edits and modes"

# --- remove: the program goes, the config and data stay --------------------------------------
dpkg -r clusterns
[ ! -e /usr/bin/clusterns ] || die "dpkg -r left /usr/bin/clusterns"
[ ! -e $unit ] || die "dpkg -r left $unit"
[ -f $config ] || die "dpkg -r removed the config"
[ -f $state/journal.log ] || die "dpkg -r removed the journal"
ok "dpkg -r"

# --- purge: the config, the data, the unit's state go ---------------------------------------
dpkg -P clusterns
! dpkg-query -W -f '${Status}' clusterns 2>/dev/null | grep -q 'installed\|config-files' ||
    die "still known to dpkg after purge"
for p in /etc/clusterns $state /run/clusterns /etc/systemd/system/clusterns.service \
    /etc/systemd/system/multi-user.target.wants/clusterns.service; do
    if [ -e "$p" ] || [ -L "$p" ]; then die "dpkg -P left $p"; fi
done
! dpkg-statoverride --list $config >/dev/null || die "dpkg -P left the statoverride on $config"
ok "dpkg -P"

trap - EXIT
cleanup
echo "test-deb: all checks passed"
