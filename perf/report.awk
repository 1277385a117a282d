# perf/report.awk: turns perf/out/mem.tsv and perf/out/runs.tsv (written by perf/run.sh)
# into the markdown section appended to perf/RESULTS.md. Portable awk (Debian's mawk); needs
# perf/stats.awk loaded first (awk -f perf/stats.awk -f perf/report.awk).
#
# mem.tsv:  server ready_s vmrss_kib pss_kib processes threads affinity_ok autogroup
# runs.tsv: server kind round qps sent completed lost runtime avg_ms p99_ms max_ms resp_bytes
#           wall_s server_ticks core0_busy core0_softirq core0_total core1_busy core1_softirq
#           core1_total dnsperf_cpu_s rcvbuf_drops queued_kib_server queued_kib_dnsperf

BEGIN { FS = "\t"; nsrv = 0 }

function ratio(a, b, fmt) { return (a == "NA" || b == "NA" || b + 0 == 0) ? "n/a" : sprintf(fmt, a / b) }
function join(a, b) { return a == "" ? b : a "; " b }

FNR == NR {
    srv[++nsrv] = $1
    ready[$1] = $2; rss[$1] = $3 / 1024; pss[$1] = $4 / 1024; procs[$1] = $5; threads[$1] = $6
    aff[$1] = $7; ag[$1] = $8
    next
}

{
    s = $1; kind = $2; done = $6
    nrun++
    ran[kind] = 1
    if (done <= 0) done = 1
    srv_spm = $14 / hz / done * 1e6
    c0_spm = $15 / hz / done * 1e6
    ss_spm = ($14 + $16) / hz / done * 1e6
    c0 = $17 > 0 ? $15 / $17 * 100 : 0
    soft = $17 > 0 ? $16 / $17 * 100 : 0
    other = $17 > 0 ? ($15 - $16 - $14) / $17 * 100 : 0
    if (other < 0) other = 0
    srvp = $13 > 0 ? $14 / hz / $13 * 100 : 0
    dp = $8 > 0 ? $21 / $8 * 100 : 0
    c1 = $20 > 0 ? $18 / $20 * 100 : 0
    # Where the outstanding queries wait says which side is behind; the cores say why.
    sq = $23; cq = $24
    lim = ""
    if (kind == "rate" && $4 >= 0.97 * rate) lim = "offered rate"
    else if (sq != "NA" && sq + 0 > 2 * cq && sq + 0 >= 8) lim = "server (queries wait at the server)"
    else if (sq != "NA" && cq + 0 > 2 * sq && cq + 0 >= 8) lim = "dnsperf (answers wait at dnsperf)"
    else if (sq != "NA" && sq + cq >= 8) lim = "both (queries wait at both sides)"
    else {
        if (c1 >= 90) lim = join(lim, sprintf("dnsperf/core 1 (%.0f%%)", c1))
        if (c0 >= 90) lim = join(lim, sprintf("core 0 (%.0f%%)", c0))
        if (lim == "") lim = "neither side: outstanding queries/latency"
    }
    if (kind == "sat" && lim !~ /^server/ && c1 >= 90) lim = lim sprintf(", core 1 %.0f%% busy", c1)
    if (kind == "sat" && lim !~ /^dnsperf/ && c0 >= 90) lim = lim sprintf(", core 0 %.0f%% busy", c0)
    main = lim
    if (other >= 20) lim = lim sprintf(", core 0 shared with other work (%.0f%%)", other)
    if ($7 > 0) lim = lim sprintf(", %d lost", $7)
    if ($22 > 0) lim = lim sprintf(", %d dropped at a full socket buffer", $22)
    drops[s SUBSEP kind] += $22
    k = s SUBSEP kind
    add(k SUBSEP "qps", $4); add(k SUBSEP "avg", $9); add(k SUBSEP "p99", $10)
    add(k SUBSEP "srv", srv_spm); add(k SUBSEP "c0", c0_spm); add(k SUBSEP "c0p", c0); add(k SUBSEP "ss", ss_spm)
    if (other > maxother[k]) maxother[k] = other
    add(k SUBSEP "c1p", c1); add(k SUBSEP "other", other); add(k SUBSEP "resp", $12)
    add(k SUBSEP "sq", sq); add(k SUBSEP "cq", cq); add(k SUBSEP "dp", dp)
    lost[k] += $7
    sub(/, core [01] [0-9]+% busy.*/, "", main)
    if (index("|" lims[k] "|", "|" main "|") == 0) lims[k] = lims[k] == "" ? main : lims[k] "|" main
    row[nrun] = sprintf("| %s | %s | %s | %.0f | %d | %d | %.2f | %s | %s | %.0f | %.0f / %.0f / %.0f | %.0f / %.0f | %s / %s | %.2f | %.2f | %.2f | %s |",
        $3, kind, label(s), $4, $7, $22, $9, f($10, "%.2f"), $12, srvp, c0, soft, other, dp, c1, f(sq, "%.0f"), f(cq, "%.0f"), srv_spm, ss_spm, c0_spm, lim)
}

END {
    print ""
    printf "## %s, commit %s, %s mode\n\n", date, commit, mode
    printf "- Data: %d apps (%d names), 8 clusters; %d queries in the dnsperf file (35%% A `<slug>.<user>`, 35%% A `<replid>`, 10%% AAAA, 10%% NXDOMAIN, 10%% NODATA; 25%% in mixed case).\n", n, 2 * n, queries
    printf "- Load: dnsperf `-c %d -T %d -q %d`, %d rounds x %d s per server and kind, servers in rotating order; fixed rate `-Q %d`. Servers pinned to core(s) %s (%d server thread(s) each), dnsperf to core(s) %s. Receive coalescing (clusterns and the floor): %s us.\n", clients, dthreads, outstanding, rounds, secs, rate, scpu, nthreads, ccpu, coalesce
    printf "- Servers and dnsperf at niceness %s, each in its own session whose autogroup has that niceness too; %s.\n", nice, rmem
    printf "- Versions: %s. Machine: %s.\n", versions, machine
    printf "- Load average at the start: `%s`; at the end: `%s`.", up0, up1
    split(up0, u0, "load average: "); split(up1, u1, "load average: ")
    if (u0[2] + 0 > 0.75 * ncpu || u1[2] + 0 > 0.75 * ncpu)
        printf " **The machine was shared and busy (1-minute load above %.1f on %d cores): other people's work competed for the cores; figures are noisy, see `other %%` in the runs.**", 0.75 * ncpu, ncpu
    print ""
    for (i = 1; i <= nsrv; i++) {
        if (aff[srv[i]] != "yes") printf "- Warning: some thread of %s was allowed on other cores than core 0.\n", label(srv[i])
        if (nice != 0 && ag[srv[i]] !~ ("_nice_" nice "$")) printf "- Warning: %s's autogroup (%s) did not get niceness %s.\n", label(srv[i]), ag[srv[i]], nice
    }

    for (pass = 1; pass <= 2; pass++) {
        kind = pass == 1 ? "sat" : "rate"
        if (!ran[kind]) continue
        printf "\n### %s (median of %d rounds)\n\n", kind == "sat" ? "Saturation" : sprintf("Fixed rate, %d q/s offered", rate), rounds
        print "| server | q/s | lost | avg ms | p99 ms | resp B | srv CPU s/M | x floor | srv+softirq s/M | x floor | core0 busy s/M | x floor | core0 other % | dnsperf % | queued KiB srv / dnsperf | limited by |"
        print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        fk = "floor" SUBSEP kind
        fs = median(fk SUBSEP "srv"); fc = median(fk SUBSEP "c0"); fss = median(fk SUBSEP "ss")
        for (i = 1; i <= nsrv; i++) {
            s = srv[i]; k = s SUBSEP kind
            if (cnt[k SUBSEP "qps"] == 0) continue
            ms = median(k SUBSEP "srv"); mc = median(k SUBSEP "c0"); mss = median(k SUBSEP "ss")
            gsub(/\|/, "; ", lims[k])
            if (maxother[k] >= 20) lims[k] = lims[k] sprintf("; core 0 shared with other work (up to %.0f%%)", maxother[k])
            printf "| %s | %.0f | %d | %s | %s | %s | %.2f | %s | %.2f | %s | %.2f | %s | %.0f | %.0f | %s / %s | %s |\n",
                label(s), median(k SUBSEP "qps"), lost[k], f(median(k SUBSEP "avg"), "%.2f"), f(median(k SUBSEP "p99"), "%.2f"),
                f(median(k SUBSEP "resp"), "%.0f"), ms, ratio(ms, fs, "%.2f"), mss, ratio(mss, fss, "%.2f"), mc, ratio(mc, fc, "%.2f"),
                median(k SUBSEP "other"), median(k SUBSEP "dp"), f(median(k SUBSEP "sq"), "%.0f"), f(median(k SUBSEP "cq"), "%.0f"), lims[k]
        }
    }

    print "\n### clusterns / peer\n"
    print "| figure | clusterns | NSD | Knot | clusterns/NSD | clusterns/Knot |"
    print "|---|---:|---:|---:|---:|---:|"
    split("qps avg p99 srv ss c0", figs, " ")
    split("q/s|avg ms|p99 ms|srv CPU s/M|srv+softirq s/M|core0 busy s/M", names, "|")
    for (pass = 1; pass <= 2; pass++) {
        kind = pass == 1 ? "sat" : "rate"
        if (!ran[kind]) continue
        for (j = 1; j <= 6; j++) {
            c = median("clusterns" SUBSEP kind SUBSEP figs[j])
            a = median("nsd" SUBSEP kind SUBSEP figs[j])
            b = median("knot" SUBSEP kind SUBSEP figs[j])
            printf "| %s, %s | %s | %s | %s | %s | %s |\n", names[j], kind, f(c, "%.2f"), f(a, "%.2f"), f(b, "%.2f"),
                ratio(c, a, "%.2f"), ratio(c, b, "%.2f")
        }
        printf "| lost, %s | %d | %d | %d | | |\n", kind, lost["clusterns" SUBSEP kind], lost["nsd" SUBSEP kind], lost["knot" SUBSEP kind]
    }
    printf "| VmRSS MiB after loading | %s | %s | %s | %s | %s |\n", f(rss["clusterns"], "%.0f"), f(rss["nsd"], "%.0f"), f(rss["knot"], "%.0f"),
        ratio(rss["clusterns"], rss["nsd"], "%.2f"), ratio(rss["clusterns"], rss["knot"], "%.2f")
    printf "| PSS MiB after loading | %s | %s | %s | %s | %s |\n", f(pss["clusterns"], "%.0f"), f(pss["nsd"], "%.0f"), f(pss["knot"], "%.0f"),
        ratio(pss["clusterns"], pss["nsd"], "%.2f"), ratio(pss["clusterns"], pss["knot"], "%.2f")
    printf "| start to first answer, s | %s | %s | %s | %s | %s |\n", f(ready["clusterns"], "%.1f"), f(ready["nsd"], "%.1f"), f(ready["knot"], "%.1f"),
        ratio(ready["clusterns"], ready["nsd"], "%.2f"), ratio(ready["clusterns"], ready["knot"], "%.2f")

    if ("before" in rss) {
        print "\n### clusterns / clusterns before (the same config, the earlier binary)\n"
        print "| figure | clusterns | before | clusterns/before |"
        print "|---|---:|---:|---:|"
        for (pass = 1; pass <= 2; pass++) {
            kind = pass == 1 ? "sat" : "rate"
            if (!ran[kind]) continue
            for (j = 1; j <= 6; j++) {
                c = median("clusterns" SUBSEP kind SUBSEP figs[j])
                a = median("before" SUBSEP kind SUBSEP figs[j])
                printf "| %s, %s | %s | %s | %s |\n", names[j], kind, f(c, "%.2f"), f(a, "%.2f"), ratio(c, a, "%.3f")
            }
        }
        printf "| PSS MiB after loading | %s | %s | %s |\n", f(pss["clusterns"], "%.0f"), f(pss["before"], "%.0f"), ratio(pss["clusterns"], pss["before"], "%.3f")
    }

    print "\n### Loading\n"
    print "| server | start to first answer, s | VmRSS MiB | PSS MiB | processes | threads |"
    print "|---|---:|---:|---:|---:|---:|"
    for (i = 1; i <= nsrv; i++)
        printf "| %s | %.1f | %.0f | %.0f | %d | %d |\n", label(srv[i]), ready[srv[i]], rss[srv[i]], pss[srv[i]], procs[srv[i]], threads[srv[i]]

    print "\n### Every run\n"
    print "| round | run | server | q/s | lost | rcvbuf drops | avg ms | p99 ms | resp B | srv CPU % | core0 % busy / softirq / other | dnsperf % / core1 % | queued KiB srv / dnsperf | srv CPU s/M | srv+softirq s/M | core0 busy s/M | limited by |"
    print "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|---:|---:|---:|---|"
    for (i = 1; i <= nrun; i++) print row[i]
}
