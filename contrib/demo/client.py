"""The demo's client: real connections through the VIP, reporting which backend answered.

    client.py spread VIP PORT COUNT [udp]   COUNT connections (or datagrams); prints
                                            {"backend": count, ...} as JSON
    client.py hold VIP PORT NAME SECONDS    opens connections until one lands on backend NAME,
                                            keeps it, echoes through it every 100 ms for
                                            SECONDS; prints {"backend":..., "echoes":...,
                                            "errors":...}
    client.py stream VIP PORT SECONDS       one connection echoing 64 KiB chunks for SECONDS;
                                            prints {"backend":..., "bytes":..., "errors":...}

Every socket has a timeout and every loop a bound; errors are counted, not raised.
"""
import json
import socket
import sys
import time

TIMEOUT = 2.0


def connect(vip, port):
    s = socket.create_connection((vip, port), timeout=TIMEOUT)
    name = b""
    while not name.endswith(b"\n"):
        d = s.recv(64)
        if not d:
            raise ConnectionError("closed before the greeting")
        name += d
    return s, name.strip().decode()


def echo(s, data):
    s.sendall(data)
    got = 0
    while got < len(data):
        d = s.recv(65536)
        if not d:
            raise ConnectionError("closed")
        got += len(d)


def spread(vip, port, count, proto="tcp"):
    seen = {}
    for _ in range(count):
        try:
            if proto == "udp":
                fam = socket.AF_INET6 if ":" in vip else socket.AF_INET
                with socket.socket(fam, socket.SOCK_DGRAM) as s:
                    s.settimeout(TIMEOUT)
                    s.sendto(b"who", (vip, port))
                    name = s.recv(64).decode()
            else:
                s, name = connect(vip, port)
                s.close()
        except OSError as e:
            name = "error: " + type(e).__name__
        seen[name] = seen.get(name, 0) + 1
    return seen


def hold(vip, port, want, seconds):
    deadline = time.time() + 30
    while time.time() < deadline:
        s, name = connect(vip, port)
        if name == want:
            break
        s.close()
    else:
        return {"backend": None, "echoes": 0, "errors": 1}
    sys.stdout.write(json.dumps({"holding": name}) + "\n")
    sys.stdout.flush()
    echoes = errors = 0
    end = time.time() + seconds
    while time.time() < end:
        try:
            echo(s, b"x" * 100)
            echoes += 1
        except OSError:
            errors += 1
            break
        time.sleep(0.1)
    s.close()
    return {"backend": name, "echoes": echoes, "errors": errors}


def stream(vip, port, seconds):
    s, name = connect(vip, port)
    total = errors = 0
    end = time.time() + seconds
    chunk = b"y" * 65536
    while time.time() < end:
        try:
            echo(s, chunk)
            total += len(chunk)
        except OSError:
            errors += 1
            break
    s.close()
    return {"backend": name, "bytes": total, "errors": errors}


def main():
    cmd, vip, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if cmd == "spread":
        r = spread(vip, port, int(sys.argv[4]), sys.argv[5] if len(sys.argv) > 5 else "tcp")
    elif cmd == "hold":
        r = hold(vip, port, sys.argv[4], float(sys.argv[5]))
    elif cmd == "stream":
        r = stream(vip, port, float(sys.argv[4]))
    else:
        sys.exit(f"unknown command {cmd}")
    print(json.dumps(r, sort_keys=True))


main()
