#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into fuzz/corpus/<target>/.

- packet: real queries for the fuzz snapshot (clusterns::testkit, src/testkit.rs): hits, NODATA, NXDOMAIN,
  refusals, EDNS variants, a TCP-sized answer and a few malformed ones;
- tcp_stream: those queries pipelined with length prefixes, cut into chunks (the input format
  is in fuzz_targets/tcp_stream.rs), one with a zero-length frame;
- journal: journal texts (sets, deletes, moves, renames, bad lines, UUID ids);
- config: the example configuration, the fuzz configuration, and small broken ones;
- pg_row: change rows as tab-separated columns (seq, op, id, user, slug, cluster; \\N = NULL).
- nats_message: fan-out messages: a mode byte (1: Clusterns-Seq, 2: Clusterns-Reset), the
  header value, a newline, the body (journal lines).

The checkpoint seeds are real checkpoints written by clusterns itself:
  cargo test --test fuzz_regressions -- --ignored write_checkpoint_seeds
and query_struct (inputs for `arbitrary`) starts from a few inputs the fuzzer found, kept
after `cargo fuzz cmin`; neither is written here.

Run from anywhere: python3 fuzz/make_corpus.py
"""
import os
import re
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")

A, NS, SOA, MX, TXT, AAAA, OPT, AXFR, ANY, CAA = 1, 2, 6, 15, 16, 28, 41, 252, 255, 257


def name(text):
    out = b""
    for label in text.strip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\x00"


def opt(size=1232, version=0, do=False, options=b""):
    flags = 0x8000 if do else 0
    return b"\x00" + struct.pack(">HHBBHH", OPT, size, 0, version, flags, len(options)) + options


def query(qname, qtype=A, qclass=1, qid=0x1234, flags=0x0100, edns=None, extra=b""):
    arcount = 1 if edns is not None else 0
    pkt = struct.pack(">HHHHHH", qid, flags, 1, 0, 0, arcount)
    pkt += name(qname) + struct.pack(">HH", qtype, qclass)
    if edns is not None:
        pkt += edns
    return pkt + extra


S63, U63 = "s" * 63, "u" * 63

SEEDS = {
    "hit_a": query("CoOlGaMe.MaRk.RePl.Co"),
    "hit_aaaa_id": query("r0.repl.co", AAAA, edns=opt(4096)),
    "hit_dev_any": query("site.ann.repl.dev", ANY),
    "nodata_user": query("mark.repl.co", A),
    "nxdomain": query("nobody.repl.co", A, edns=opt(1232, do=True)),
    "servfail": query("r7.repl.co", A),
    "acme_cname": query("_acme-challenge.coolgame.mark.repl.co", TXT),
    "acme_long_target": query("_acme-challenge.%s.%s.x.co" % (S63, U63), TXT),
    "apex_ns_glue": query("repl.co", NS, edns=opt(512)),
    "apex_soa": query("repl.co", SOA),
    "apex_caa": query("Repl.Co", CAA),
    "host_ent": query("infra.repl.co", AAAA),
    "refused_ch": query("version.bind", TXT, qclass=3),
    "refused_axfr": query("repl.co", AXFR),
    "badvers": query("r0.repl.co", A, edns=opt(1232, version=1)),
    "edns_cookie": query("r1.repl.co", A, edns=opt(1232, options=b"\x00\x0a\x00\x08" + b"\x01" * 8)),
    "wide_udp_512": query("wide.ann.repl.co", AAAA),
    "huge_tcp": query("huge.ann.repl.co", AAAA, edns=opt(65535)),
    "notify": query("repl.co", SOA, flags=0x2000),
    "compressed": struct.pack(">HHHHHH", 7, 0x0100, 1, 0, 0, 0) + b"\xc0\x04" + struct.pack(">HH", A, 1),
    "two_opt": struct.pack(">HHHHHH", 8, 0x0100, 1, 0, 0, 2) + name("r0.repl.co") + struct.pack(">HH", A, 1) + opt() + opt(),
}



def frame(pkt):
    return struct.pack(">H", len(pkt)) + pkt


def tcp(stream, lens=(), drains=()):
    """A tcp_stream input: the cuts (chunk lengths, then how much of the pending answers
    is written after each chunk, in 255ths) and the stream."""
    assert len(lens) == len(drains) < 32
    return bytes([len(lens)]) + bytes(lens) + bytes(drains) + stream


PIPELINE = b"".join(frame(SEEDS[k]) for k in ["hit_a", "nxdomain", "huge_tcp", "badvers", "compressed", "acme_cname"])

TCP_SEEDS = {
    "one_query": tcp(frame(SEEDS["hit_a"])),
    "pipeline_whole": tcp(PIPELINE),
    "pipeline_cut": tcp(PIPELINE, (1, 13, 40, 2, 90), (255, 0, 128, 255, 7)),
    "zero_length": tcp(frame(SEEDS["hit_aaaa_id"]) + b"\x00\x00" + frame(SEEDS["hit_a"]), (3, 30), (0, 255)),
    "dropped_and_short": tcp(frame(b"\x12\x34\x81\x00" + b"\x00" * 8) + frame(b"\x01\x02\x03") + b"\x00", (2,), (255,)),
    "backlog": tcp(frame(SEEDS["huge_tcp"]) * 48, (200, 255, 255), (0, 0, 0)),
}

JOURNAL_SEEDS = {
    "example": open(os.path.join(HERE, "..", "examples", "journal.log"), "rb").read(),
    "moves_renames": b"""# moves, renames, a freed name taken by another app
1 set r1 mark game c0
2 set r2 mark site c1
3 set r1 mark game wide
4 set r2 ann site c1
5 set r3 mark site huge
6 delete r1
7 set r4 Mark GAME c0
8 delete r4
9 set r1 mark game c0
""",
    "bad_lines": b"""1 set r1 mark game c0
2 set r2 mark game c1
2 set r3 ann x c0
x set r4 ann y c0
3 set r5 ann y nowhere
4 delete nobody
5 delete r1 extra
6 set r6 ann y.z c0
7\tset\tr7\tann\tz\tc1
0 set r8 a b c0
18446744073709551616 set r9 a b c0
8 bogus r1
9 set _x -y _ c0
""",
    "uuids": b"""1 set 3F2B9C1E-0B7A-4C1E-9A53-1D2E3F4A5B6C mark coolgame c0
2 set 3f2b9c1e-0b7a-4c1e-9a53-1d2e3f4a5b6c mark coolgame c1
3 set aaaaaaaa-0b7a-4c1e-9a53-1d2e3f4a5b6c 3f2b9c1e-0b7a-4c1e-9a53-1d2e3f4a5b6c x c0
4 set 3f2b9c1e-0b7a-4c1e-9a53-1d2e3f4a5b6 u s c0
5 delete 3f2b9c1e-0b7a-4c1e-9a53-1d2e3f4a5b6c
""",
}

BROKEN_CONFIGS = {
    "syntax": b"[feed\njournal = 'j'\n",
    "bad_ip": b"""[feed]
journal = "j"
[[zone]]
apex = "repl.co"
ns = ["ns.example.net"]
soa = { rname = "hostmaster.repl.co" }
[[cluster]]
name = "c0"
ipv4 = ["203.0.113.300"]
""",
    "glue_missing": b"""[server]
udp_payload = 4096
[feed]
source = "postgres"
postgres = "host=/tmp dbname=x"
[[zone]]
apex = "repl.co"
ns = ["ns1.repl.co"]
txt = ["%s"]
soa = { rname = "hostmaster.repl.co", mname = "ns1.repl.co" }
[[cluster]]
name = "c0"
ipv4 = ["203.0.113.1"]
""" % (b"t" * 600),
    "health_policy": b"""[feed]
journal = "j"
[health]
checker = "fra-1"
interval_ms = 500
timeout_ms = 400
rise = 2
fall = 3
lease_secs = 20
metrics = "127.0.0.1:9154"
[[zone]]
apex = "a.b"
ns = ["ns.example.net"]
soa = { rname = "h.a.b" }
[[cluster]]
name = "c0"
ipv4 = ["203.0.113.1", { address = "203.0.113.2", weight = 3, priority = 2 }]
ipv6 = [{ address = "2001:db8::1", weight = 0 }, "2001:db8::2"]
max_answers = 1
failover = "c1"
degraded_ttl = 20
[cluster.check]
kind = "https"
port = 8443
path = "/healthz"
expect_status = 204
host = "lb.a.b"
[[cluster]]
name = "c1"
ipv4 = ["203.0.113.9"]
[cluster.check]
kind = "tcp"
port = 443
""",
    "dup_cluster": b"""[feed]
journal = "j"
[[zone]]
apex = "a.b"
ns = ["ns.example.net"]
soa = { rname = "h.a.b" }
[[zone.host]]
name = "x.y"
aaaa = ["::1"]
[[cluster]]
name = "c0"
ipv4 = ["203.0.113.1"]
[[cluster]]
name = "C0"
ipv4 = ["203.0.113.2"]
""",
}


def fuzz_config():
    """The configuration of the fuzz snapshot: clusterns::testkit::config_text(), composed here
    from the blocks that src/testkit.rs writes out (FEED, REPL_CO, OTHER_ZONES, C0, C1) and its
    x.co, wide and huge parts."""
    src = open(os.path.join(HERE, "..", "src", "testkit.rs")).read()

    def const(name):
        m = re.search(r'pub const %s: &str = (r#"(.*?)"#|"(.*?)");' % name, src, re.S)
        return m.group(2) if m.group(2) is not None else m.group(3).encode().decode("unicode_escape")

    v6 = lambda n, net: ", ".join('"2001:db8:%x::%x"' % (net, i + 1) for i in range(n))
    cluster = lambda name, v4, n, net: '\n[[cluster]]\nname = "%s"\nipv4 = ["%s"]\nipv6 = [%s]\n' % (name, v4, v6(n, net))
    long = "l" * 60 + "." + "m" * 50 + ".example.net"
    x_co = ('\n[[zone]]\napex = "x.co"\nns = ["ns.example.net"]\nacme_validation_zone = "%s"\n'
            'soa = { rname = "hostmaster.repl.co" }\n' % long)
    return (const("FEED") + const("REPL_CO") + const("OTHER_ZONES") + x_co + const("C0") + const("C1")
            + cluster("wide", "198.51.100.3", 40, 1) + cluster("huge", "198.51.100.4", 60, 2)).encode()


CONFIG_SEEDS = dict(BROKEN_CONFIGS)
CONFIG_SEEDS["example"] = open(os.path.join(HERE, "..", "examples", "clusterns.toml"), "rb").read()
CONFIG_SEEDS["fuzz"] = fuzz_config()

PG_SEEDS = {
    "set": b"7\tset\tr1\tMark\tgame\tus-east",
    "delete": b"8\tdelete\t3f2b9c1e-0b7a-4c1e-9a53-1d2e3f4a5b6c\t\\N\t\\N\t\\N",
    "null_slug": b"9\tset\tr2\tann\t\\N\tc0",
    "bad_seq": b"-1\tset\tr1\tmark\tgame\tc0",
    "bad_op": b"10\tmove\tr1\tmark\tgame\tc0",
    "bad_label": b"11\tset\tr1\tma rk\tgame\tc0",
}

NATS_SEEDS = {
    "changes": b"\x013-9\n3 set r1 mark coolgame us-east\n5 delete r2\n"
    b"6 txt-add _acme-challenge.mark.repl.co 1700000000 6869\n"
    b"9 health eu-1 us-east 192.0.2.1 down 1700000030\n",
    "one": b"\x017-7\n7 set r1 mark game c0\n",
    "reset": b"\x0212\n",
    "both": b"\x033-3\n3 delete r1\n",
    "range_mismatch": b"\x013-5\n3 delete r1\n",
    "out_of_order": b"\x013-4\n4 delete r1\n3 delete r2\n",
}


def write(target, seeds):
    out = os.path.join(CORPUS, target)
    os.makedirs(out, exist_ok=True)
    for key, data in sorted(seeds.items()):
        with open(os.path.join(out, key), "wb") as f:
            f.write(data)
    print("wrote %d seeds to %s" % (len(seeds), out))


def main():
    write("packet", SEEDS)
    write("tcp_stream", TCP_SEEDS)
    write("journal", JOURNAL_SEEDS)
    write("config", CONFIG_SEEDS)
    write("pg_row", PG_SEEDS)
    write("nats_message", NATS_SEEDS)


if __name__ == "__main__":
    main()
