#!/usr/bin/env python3
"""Writes the seed corpus for the `packet` fuzz target into fuzz/corpus/packet/.

Each seed is a real query for the fuzz target's snapshot (see fuzz_targets/packet.rs):
hits, NODATA, NXDOMAIN, refusals, EDNS variants, a TCP-sized answer and a few malformed ones.
Run from anywhere: python3 fuzz/make_corpus.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "packet")

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


def main():
    os.makedirs(OUT, exist_ok=True)
    for key, pkt in sorted(SEEDS.items()):
        with open(os.path.join(OUT, key), "wb") as f:
            f.write(pkt)
    print("wrote %d seeds to %s" % (len(SEEDS), OUT))


if __name__ == "__main__":
    main()
