"""TLS handshakes with Python's ssl module against ringbroker (tests/security.rs).

usage: tls_probe.py EXPECT PORT CAFILE [CERT KEY]

Connects to 127.0.0.1:PORT verifying the server against CAFILE, presenting CERT/KEY when
given, then sends an ApiVersions v0 request and reads the answer.

- EXPECT=ok: the answer arrives (correlation id 7).
- EXPECT=untrusted: the client refuses the server's certificate.
- EXPECT=refused: the broker refuses the client (no answer: an alert or a closed
  connection, during the handshake or at the first read under TLS 1.3).

Prints OK on success.
"""
import socket
import ssl
import struct
import sys

expect, port, cafile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
cert = sys.argv[4] if len(sys.argv) > 5 else None
key = sys.argv[5] if len(sys.argv) > 5 else None


def check(cond, what):
    if not cond:
        print("FAILED:", what)
        sys.exit(1)


ctx = ssl.create_default_context(cafile=cafile)
if cert:
    ctx.load_cert_chain(cert, key)

outcome = None
try:
    raw = socket.create_connection(("127.0.0.1", port), timeout=20)
    tls = ctx.wrap_socket(raw, server_hostname="localhost")
    client_id = b"tls-probe"
    body = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    tls.sendall(struct.pack(">i", len(body)) + body)
    head = tls.recv(8)
    if len(head) == 8 and struct.unpack(">i", head[4:8])[0] == 7:
        outcome = "ok"
    else:
        outcome = "refused"
        print("no answer:", head)
except ssl.SSLCertVerificationError as e:
    outcome = "untrusted"
    print("untrusted:", e)
except (ssl.SSLError, ConnectionError, OSError) as e:
    outcome = "refused"
    print("refused:", type(e).__name__, e)

check(outcome == expect, f"expected {expect}, got {outcome}")
print("OK")
