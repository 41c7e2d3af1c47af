#!/usr/bin/env python3
"""fake_http.py PORT MODE: a TCP listener on 127.0.0.1:PORT standing in for
another node's HTTP API in tests/peers/test_gb_nodes.sh.
  silent   accepts and reads, never answers (the caller's deadline must end it)
  garbage  answers bytes that are not HTTP, then closes
Runs until killed."""
import socket
import sys
import threading

port, mode = int(sys.argv[1]), sys.argv[2]
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(16)
held = []


def serve(conn):
    try:
        conn.recv(65536)
        if mode == "garbage":
            conn.sendall(b"SSH-2.0-not-http\r\n\r\n")
            conn.close()
        else:
            held.append(conn)  # keep it open, say nothing
    except OSError:
        pass


while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
