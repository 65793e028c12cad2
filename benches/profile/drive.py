#!/usr/bin/env python3
"""Sends exactly N GET requests over C keep-alive connections (one thread each, one request in
flight per connection) and checks every answer is a 200.

usage: drive.py URL N C [Header: value]...

A fixed amount of work for callgrind (see callgrind.sh); wrk runs for a duration instead.
"""
import socket
import sys
import threading
import time
from urllib.parse import urlsplit


def main():
    url, n, c = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    headers = sys.argv[4:]
    parts = urlsplit(url)
    host, port, path = parts.hostname, parts.port, parts.path or "/"
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        + "".join(h + "\r\n" for h in headers)
        + "\r\n"
    ).encode()
    counts = [n // c + (1 if i < n % c else 0) for i in range(c)]
    errors = []

    def lane(count):
        s = socket.create_connection((host, port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = b""
        for _ in range(count):
            s.sendall(request)
            while b"\r\n\r\n" not in buf:
                chunk = s.recv(65536)
                if not chunk:
                    errors.append("closed")
                    return
                buf += chunk
            head, _, buf = buf.partition(b"\r\n\r\n")
            status = head.split(b" ", 2)[1]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            while len(buf) < length:
                chunk = s.recv(65536)
                if not chunk:
                    errors.append("closed")
                    return
                buf += chunk
            buf = buf[length:]
            if status != b"200":
                errors.append(status.decode())
        s.close()

    started = time.monotonic()
    threads = [threading.Thread(target=lane, args=(k,)) for k in counts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    print(f"{n} requests over {c} connections in {elapsed:.1f} s; {len(errors)} errors {errors[:3]}")
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
