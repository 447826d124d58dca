"""The tests' own DNS server (stdlib only): answers made-up names from a
zone given as JSON on the command line, on 127.0.0.1:53 and [::1]:53 of
the namespace it runs in, over UDP and TCP, then prints "ready".

Zone: {"name": [["A", ttl, "127.0.0.77"], ["AAAA", ttl, "fd00::77"],
["CNAME", ttl, "target.name"]], ...}. A query follows CNAMEs as a
recursive resolver would, answering the chain and then the final name's
records of the asked type, owners compressed where they are the
question's name. Unknown names get NXDOMAIN. Over TCP each answer leaves
with its 2-byte length prefix in one write, so in one segment, as resolvers
send theirs. Each query is counted, and the
count printed on stdout as "queries N" when stdin closes (for the bench).
"""

import json
import socket
import struct
import sys
import threading

TYPES = {"A": 1, "CNAME": 5, "AAAA": 28}
zone = {k.lower(): v for k, v in json.loads(sys.argv[1]).items()}
queries = 0
lock = threading.Lock()


def wire(name):
    out = b""
    for label in name.split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def rdata(kind, value):
    if kind == "A":
        return socket.inet_pton(socket.AF_INET, value)
    if kind == "AAAA":
        return socket.inet_pton(socket.AF_INET6, value)
    return wire(value)


def answer(query):
    global queries
    with lock:
        queries += 1
    i, labels = 12, []
    while query[i]:
        labels.append(query[i + 1 : i + 1 + query[i]].decode())
        i += 1 + query[i]
    qtype = struct.unpack(">H", query[i + 1 : i + 3])[0]
    qend = i + 5
    asked = name = ".".join(labels).lower()
    records = []
    for _ in range(16):
        rrs = zone.get(name)
        if rrs is None:
            break
        cname = [r for r in rrs if r[0] == "CNAME"]
        if cname:
            records.append((name, cname[0]))
            name = cname[0][2].lower()
            continue
        records += [(name, r) for r in rrs if TYPES[r[0]] == qtype]
        break
    flags = 0x8180 if asked in zone else 0x8183
    body = b""
    for owner, (kind, ttl, value) in records:
        data = rdata(kind, value)
        body += (b"\xc0\x0c" if owner == asked else wire(owner)) + struct.pack(
            ">HHIH", TYPES[kind], 1, ttl, len(data)
        ) + data
    head = query[:2] + struct.pack(">HHHHH", flags, 1, len(records), 0, 0)
    return head + query[12:qend] + body


def serve(sock):
    while True:
        query, peer = sock.recvfrom(4096)
        try:
            sock.sendto(answer(query), peer)
        except (IndexError, struct.error, UnicodeDecodeError):
            pass


def read_exactly(conn, n):
    data = b""
    while len(data) < n:
        more = conn.recv(n - len(data))
        if not more:
            return None
        data += more
    return data


def serve_connection(conn):
    with conn:
        while True:
            prefix = read_exactly(conn, 2)
            query = prefix and read_exactly(conn, struct.unpack(">H", prefix)[0])
            if not query:
                return
            try:
                reply = answer(query)
            except (IndexError, struct.error, UnicodeDecodeError):
                return
            conn.sendall(struct.pack(">H", len(reply)) + reply)


def serve_tcp(sock):
    while True:
        conn, _ = sock.accept()
        threading.Thread(target=serve_connection, args=(conn,), daemon=True).start()


for family, addr in [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]:
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind((addr, 53))
    threading.Thread(target=serve, args=(s,), daemon=True).start()
    t = socket.socket(family, socket.SOCK_STREAM)
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind((addr, 53))
    t.listen(64)
    threading.Thread(target=serve_tcp, args=(t,), daemon=True).start()
print("ready", flush=True)
sys.stdin.read()
print(f"queries {queries}", flush=True)
