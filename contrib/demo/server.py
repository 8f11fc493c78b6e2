"""A backend for the demo: answers TCP and UDP on PORT with its NAME, then echoes.

    server.py NAME PORT

TCP: sends "NAME\\n" on accept, then echoes whatever arrives. UDP: answers every datagram with
"NAME". Listens on IPv4 and IPv6. Runs until killed.
"""
import socket
import sys
import threading

NAME, PORT = sys.argv[1], int(sys.argv[2])


def tcp_client(c):
    with c:
        try:
            c.sendall(NAME.encode() + b"\n")
            while True:
                d = c.recv(65536)
                if not d:
                    return
                c.sendall(d)
        except OSError:
            return


def tcp(family, addr):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((addr, PORT))
    s.listen(512)
    while True:
        c, _ = s.accept()
        threading.Thread(target=tcp_client, args=(c,), daemon=True).start()


def udp(family, addr):
    s = socket.socket(family, socket.SOCK_DGRAM)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((addr, PORT))
    while True:
        _, peer = s.recvfrom(2048)
        s.sendto(NAME.encode(), peer)


for fn, fam, a in ((tcp, socket.AF_INET, "0.0.0.0"), (tcp, socket.AF_INET6, "::"),
                   (udp, socket.AF_INET, "0.0.0.0"), (udp, socket.AF_INET6, "::")):
    threading.Thread(target=fn, args=(fam, a), daemon=True).start()
threading.Event().wait()
