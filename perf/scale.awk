# perf/scale.awk: the scaling table perf/scale.sh appends to perf/RESULTS.md, from the
# runs.tsv that perf/run.sh wrote for each thread count (given as `t=N file` pairs; the
# columns are listed at the top of perf/report.awk). Portable awk (Debian's mawk); needs
# perf/stats.awk loaded first.

BEGIN { FS = "\t"; nt = 0; ns = 0 }

function ratio(a, b) { return (a == "NA" || b == "NA" || b + 0 == 0) ? "NA" : a / b }

FNR == 1 { ts[++nt] = t }

$2 == "sat" {
    s = $1
    if (!(s in seen)) { seen[s] = 1; srv[++ns] = s }
    done = $6 > 0 ? $6 : 1
    k = s SUBSEP t
    add(k SUBSEP "qps", $4)
    add(k SUBSEP "cpu", $14 / hz / done * 1e6)
    add(k SUBSEP "ss", ($14 + $16) / hz / done * 1e6)
    lost[k] += $7
    runs[k]++
    # Where the outstanding queries waited (perf/report.awk's rule): at the server, or not.
    if ($23 != "NA" && $23 + 0 > 2 * $24 && $23 + 0 >= 8) atserver[k]++
    else if ($23 != "NA" && $24 + 0 > 2 * $23 && $24 + 0 >= 8) atclient[k]++
}

END {
    printf "\n## %s, commit %s, scaling with server threads (perf/scale.sh)\n\n", date, commit
    printf "- Data: %d apps. Saturation only: dnsperf `-c %d -T %d -q %d` on core(s) %s, %d rounds x %d s per server and thread count; ", n, clients, dthreads, outstanding, ccpu, rounds, secs
    printf "with T threads each server is pinned to the first T of cores %s. Machine: %d x %s. Each thread count's own report is in the sections just above this one (\"Every run\" there has each run).\n", scpu, ncpu, cpu_model
    if (shared) print "- **This machine has fewer than 8 cores: servers and dnsperf shared cores, so these figures say nothing about scaling.**"
    print "- speed-up = q/s with T threads / q/s with 1 thread (medians); CPU = server CPU seconds per million answered queries (user + system, all threads); \"at server\" = runs in which the outstanding queries waited at the server's sockets, i.e. the server was the bottleneck; runs where they waited at dnsperf's are counted under \"at dnsperf\"."
    print ""
    hdr = "| server |"; sep = "|---|"
    for (i = 1; i <= nt; i++) { hdr = hdr sprintf(" q/s, %d thr |", ts[i]); sep = sep "---:|" }
    for (i = 2; i <= nt; i++) { hdr = hdr sprintf(" speed-up %d/1 |", ts[i]); sep = sep "---:|" }
    for (i = 1; i <= nt; i++) { hdr = hdr sprintf(" CPU s/M, %d thr |", ts[i]); sep = sep "---:|" }
    hdr = hdr " lost | runs at server / at dnsperf / of |"; sep = sep "---:|---|"
    print hdr; print sep
    for (j = 1; j <= ns; j++) {
        s = srv[j]; line = "| " label(s) " |"
        q1 = median(s SUBSEP ts[1] SUBSEP "qps")
        for (i = 1; i <= nt; i++) line = line " " f(median(s SUBSEP ts[i] SUBSEP "qps"), "%.0f") " |"
        for (i = 2; i <= nt; i++) {
            up[s, ts[i]] = ratio(median(s SUBSEP ts[i] SUBSEP "qps"), q1)
            line = line " " f(up[s, ts[i]], "%.2f") " |"
        }
        for (i = 1; i <= nt; i++) line = line " " f(median(s SUBSEP ts[i] SUBSEP "cpu"), "%.2f") " |"
        l = 0; a = ""; c = ""; r = ""
        for (i = 1; i <= nt; i++) {
            k = s SUBSEP ts[i]; l += lost[k]
            a = a (i > 1 ? " + " : "") (atserver[k] + 0); c = c (i > 1 ? " + " : "") (atclient[k] + 0); r = r (i > 1 ? " + " : "") (runs[k] + 0)
        }
        print line " " l " | " a " / " c " / " r " |"
    }
    for (i = 2; i <= nt; i++) {
        printf "\n- %d threads: clusterns speed-up %s", ts[i], f(up["clusterns", ts[i]], "%.2f")
        for (j = 1; j <= ns; j++) {
            s = srv[j]
            if (s == "clusterns" || s == "floor") continue
            printf "; %s %s (clusterns/%s %s)", label(s), f(up[s, ts[i]], "%.2f"), label(s), f(ratio(up["clusterns", ts[i]], up[s, ts[i]]), "%.2f")
        }
        if (("floor" SUBSEP ts[i]) in up) printf "; floor %s", f(up["floor", ts[i]], "%.2f")
        printf "."
    }
    print ""
}
