"""Neighbour-discovery frames on one interface of a namespace, as a host on that link sees them:
ARP (gratuitous or not) and IPv6 neighbour solicitations/advertisements, both directions."""
import select
import socket
import struct
import threading
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def parse(d):
    """(kind, ip, src_mac) of an ARP or ND frame, else None. kind is garp-req, garp-rep,
    arp-req, arp-rep, ns or na; ip is the address the frame is about."""
    if len(d) < 14:
        return None
    src = ":".join(f"{b:02x}" for b in d[6:12])
    etype = struct.unpack("!H", d[12:14])[0]
    if etype == 0x0806 and len(d) >= 42:
        op = struct.unpack("!H", d[20:22])[0]
        spa, tpa = socket.inet_ntoa(d[28:32]), socket.inet_ntoa(d[38:42])
        if spa == tpa:
            return ("garp-req" if op == 1 else "garp-rep", spa, src)
        return ("arp-req" if op == 1 else "arp-rep", tpa if op == 1 else spa, src)
    if etype == 0x86dd and len(d) >= 78 and d[20] == 58:
        typ = d[54]
        target = socket.inet_ntop(socket.AF_INET6, d[62:78])
        if typ == 136:
            return ("na", target, src)
        if typ == 135:
            return ("ns", target, src)
    return None


class Sniffer:
    """Records every ARP and ND frame on ifname in ns (a netns.Netns) until close()."""

    def __init__(self, ns, ifname):
        with ns.entered():
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.bind((ifname, 0))
        self.frames = []  # (time, kind, ip, src_mac, outgoing)
        self.lock = threading.Lock()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            r, _, _ = select.select([self.sock], [], [], 0.1)
            if not r:
                continue
            data, addr = self.sock.recvfrom(2048)
            rec = parse(data)
            if rec:
                with self.lock:
                    self.frames.append((time.time(),) + rec + (addr[2] == PACKET_OUTGOING,))

    def _times(self, kinds, ip, src, since, until, outgoing):
        with self.lock:
            return [t for t, k, a, s, o in self.frames
                    if k in kinds and a == ip and (src is None or s == src) and t >= since
                    and (until is None or t <= until) and (outgoing is None or o == outgoing)]

    def count(self, kind, ip, src=None, since=0.0, until=None, outgoing=None):
        return len(self._times((kind,), ip, src, since, until, outgoing))

    @staticmethod
    def _announce_kinds(ip):
        return ("na",) if ":" in ip else ("garp-req", "garp-rep")

    def announcements(self, ip, src=None, since=0.0, until=None):
        """Gratuitous ARPs (IPv4) or neighbour advertisements (IPv6) about ip."""
        return len(self._times(self._announce_kinds(ip), ip, src, since, until, None))

    def first_announcement(self, ip, since):
        times = self._times(self._announce_kinds(ip), ip, None, since, None, None)
        return min(times) if times else None

    def close(self):
        self.stopping = True
        self.thread.join(2)
        self.sock.close()
