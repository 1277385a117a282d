# perf/lib.sh: shell functions perf/run.sh and perf/dnssec.sh share (sourced, not run). They
# use the caller's log, NICE, RMEM_SAVED and PID (server name -> pid).

usage() { sed -n '2,/^$/{s/^# \{0,1\}//;p}' "$0"; }

# A process and all its descendants (NSD forks its server and xfrd processes).
tree_pids() {
    local p=$1 c
    [ -d "/proc/$p" ] || return 0
    echo "$p"
    for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do tree_pids "$c"; done
}

# utime+stime, in clock ticks, of the given processes (all their threads).
proc_ticks() {
    local t=0 p s
    local -a f
    for p in "$@"; do
        s=$(cat "/proc/$p/stat" 2>/dev/null) || continue
        s=${s##*) } # the fields after "pid (comm) ": f[0] is field 3
        read -r -a f <<<"$s"
        t=$((t + f[11] + f[12]))
    done
    echo "$t"
}

signal_all() { # signal name...
    local sig=$1 s p
    shift
    for s in "$@"; do
        [ -n "${PID[$s]:-}" ] || continue
        for p in $(tree_pids "${PID[$s]}"); do kill -"$sig" "$p" 2>/dev/null || true; done
    done
}

restore_rmem() {
    [ -n "$RMEM_SAVED" ] || return 0
    sysctl -qw net.core.rmem_default="$RMEM_SAVED" || log "warning: could not restore net.core.rmem_default=$RMEM_SAVED"
    RMEM_SAVED=""
}

# Gives NICE to the autogroup of pid $1, which must lead its own session (setsid).
boost() {
    [ "$NICE" != 0 ] || return 0
    local i
    for i in $(seq 30); do # until setsid has run in the child
        [ "$(cut -d' ' -f6 "/proc/$1/stat" 2>/dev/null)" = "$1" ] && break
        sleep 0.1
    done
    [ "$(cut -d' ' -f6 "/proc/$1/stat" 2>/dev/null)" = "$1" ] || { log "warning: pid $1 is not a session leader; autogroup not changed"; return 0; }
    echo "$NICE" >"/proc/$1/autogroup" 2>/dev/null || log "warning: cannot set the autogroup nice of pid $1"
}

port_free() { ! ss -Hlun "sport = :$1" | grep -q . && ! ss -Hltn "sport = :$1" | grep -q .; }

# Reads the script's arguments: --small sets SMALL=1, --help prints the usage; anything else
# is refused.
read_args() {
    local arg
    SMALL=0
    for arg in "$@"; do
        case $arg in
        --small) SMALL=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "$0: unknown argument $arg (try --help)" >&2; exit 2 ;;
        esac
    done
}
