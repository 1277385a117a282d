# perf/stats.awk: the helpers perf/report.awk and perf/scale.awk share (loaded before them
# with a second -f). Values are kept per key in the globals cnt[key] and val[key, i].

# A server's name as the reports print it.
function label(s) {
    if (s == "nsd") return "NSD"
    if (s == "knot") return "Knot"
    if (s == "before") return "clusterns before"
    return s
}

# The median of the values added under `key` ("NA" when there are none).
function median(key,    i, j, x, m, a) {
    m = cnt[key]
    if (m == 0) return "NA"
    for (i = 1; i <= m; i++) a[i] = val[key, i]
    for (i = 2; i <= m; i++) {
        x = a[i]
        for (j = i - 1; j >= 1 && a[j] + 0 > x + 0; j--) a[j + 1] = a[j]
        a[j + 1] = x
    }
    if (m % 2) return a[(m + 1) / 2]
    return (a[m / 2] + a[m / 2 + 1]) / 2
}

# Adds value `v` under `key` ("NA" is not a value and is skipped).
function add(key, v) {
    if (v == "NA") return
    cnt[key]++
    val[key, cnt[key]] = v
}

# `v` formatted with `fmt`, or "n/a".
function f(v, fmt) { return v == "NA" || v == "" ? "n/a" : sprintf(fmt, v) }
