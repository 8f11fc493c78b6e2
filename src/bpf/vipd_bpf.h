/*
 * The layout shared by the XDP program (vipd.bpf.c) and the userspace loader: map keys and
 * values, sizes and flags. Plain fixed-size types only, no padding the compiler could fill
 * with garbage: every key is hashed byte for byte, so userspace must zero a key (memset) before
 * filling it, and the explicit pad fields must stay 0.
 *
 * Byte order: addresses and ports are stored as they appear on the wire (network order);
 * counters, ids and flags are host order. An IPv4 address takes the first 4 bytes of a
 * 16-byte addr field, the other 12 bytes are 0.
 *
 * Contract for the loader (what the program assumes):
 *  - vips: one entry per (VIP address, port, protocol); vip_id indexes rings and vip_stats.
 *  - rings[vip_id]: an inner ARRAY of VIPD_RING_SIZE u32 backend ids (VIPD_NO_BACKEND for an
 *    empty slot). Build a complete new inner map, then store its fd into rings[vip_id]: the
 *    outer update is one pointer swap, so no packet sees a half-written table. A VIP without a
 *    ring, or whose slot holds VIPD_NO_BACKEND, drops its new flows (nothing can serve them).
 *  - backends[id]: a backend's address and port for one VIP (family 0: id unused); clear VIPD_BACKEND_F_ALIVE for a
 *    failed backend (its flows move to the ring's current choice) and take a draining backend
 *    out of the ring only (its established flows stay). Do not reuse an id for another
 *    address while conns may still name it: clear ALIVE first and let the flows move.
 *  - snat_addrs[ifindex]: the node's own IPv4/IPv6 address on each interface that FULLNAT
 *    traffic leaves through (an all-zero address: none; new FULLNAT flows that would leave
 *    through such an interface are dropped and counted).
 *  - vip_gen[vip_id]: change it (increment) whenever the VIP at vip_id is removed, replaced by
 *    another VIP or changes mode; flows whose entry carries an older generation go through
 *    the vips lookup again (so removing a VIP stops its traffic at once).
 *  - port_filter[0].vip: bit p set (p in host order) for every port some VIP listens on;
 *    packets to other ports skip the VIP lookup. The program maintains .rev itself.
 *  - The node forwards: net.ipv4.ip_forward / net.ipv6.conf.all.forwarding must be on for the
 *    ingress interface, else bpf_fib_lookup() refuses and VIP packets are dropped (counted).
 *  - Across a restart, reuse (pin) every map but backend_nh and scratch, which only hold
 *    what the program recomputes: conns and rev carry the live flows.
 */
#ifndef VIPD_BPF_H
#define VIPD_BPF_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Maglev lookup table size: a prime; every ring inner map has exactly this many slots. */
#define VIPD_RING_SIZE 65537
#define VIPD_NO_BACKEND 0xFFFFFFFFu

#define VIPD_MAX_VIPS 1024	/* vip ids 0..VIPD_MAX_VIPS-1 */
#define VIPD_MAX_BACKENDS 16384 /* backend ids 0..VIPD_MAX_BACKENDS-1 */
#define VIPD_MAX_SNAT_IFS 256	/* interfaces with a snat address */
/*
 * Flows in conns and in rev (default; the loader may resize both before load). At this size
 * the two take about 85 MB of kernel memory; larger tables make new flows dearer (cache
 * misses), not established ones.
 */
#define VIPD_CONNS_MAX 262144

/*
 * FULLNAT source ports: kept below Linux's default ephemeral range (32768..60999) so the
 * node's own connections to a backend never share a 4-tuple with a translated flow.
 */
#define VIPD_SNAT_PORT_MIN 1024
#define VIPD_SNAT_PORT_MAX 32767
/* Candidate ports tried per new FULLNAT flow before giving up (counted). */
#define VIPD_SNAT_PROBES 8
/*
 * A FULLNAT port is taken over from another flow once that flow is gone: its conns entry
 * evicted or moved, or both directions idle this long (TCP closing or never established,
 * e.g. a SYN flood: CLOSED).
 */
#define VIPD_SNAT_IDLE_TCP_NS (600ull * 1000000000)
#define VIPD_SNAT_IDLE_UDP_NS (120ull * 1000000000)
#define VIPD_SNAT_IDLE_CLOSED_NS (10ull * 1000000000)
/* How long a cached next hop (see struct vipd_nexthop) is used. */
#define VIPD_NH_CACHE_NS 1000000000ull
/* Further ring slots tried when the chosen backend is not ALIVE. */
#define VIPD_RING_PROBES 4

/*
 * Keys and address-carrying values are 4-byte aligned (their sizes are multiples of 4, so the
 * attribute changes no size or offset): the program reads addresses as 32-bit words.
 */
#define VIPD_ALIGNED __attribute__((aligned(4)))

/* Address families, numerically equal to AF_INET / AF_INET6. */
#define VIPD_FAMILY_V4 2
#define VIPD_FAMILY_V6 10

enum vipd_mode {
	VIPD_MODE_FULLNAT = 0, /* dst -> backend, src -> node address + allocated port */
	VIPD_MODE_NAT = 1,     /* dst -> backend; replies (routed via the node) rewritten back */
	VIPD_MODE_DSR = 2,     /* MAC rewrite only; the backend holds the VIP on loopback */
};

/* vips: HASH key. */
struct vipd_vip_key {
	__u8 addr[16];
	__u16 port; /* network order */
	__u8 proto; /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 family;
} VIPD_ALIGNED;

/* vips: value. */
struct vipd_vip {
	__u32 vip_id;
	__u8 mode; /* enum vipd_mode */
	__u8 pad;
	__u16 flags; /* none defined yet; keep 0 */
};

/* backends: ARRAY value, indexed by backend id. */
#define VIPD_BACKEND_F_ALIVE 0x1

struct vipd_backend {
	__u8 addr[16];
	__u16 port;  /* network order; ignored by DSR (the VIP's port is kept) */
	__u8 family; /* must equal the VIP's family */
	__u8 flags;  /* VIPD_BACKEND_F_* */
	__u32 vip_id; /* the VIP this id serves: the loader's record, read back on restart */
} VIPD_ALIGNED;

/*
 * A flow as seen in one packet: the key of conns (the client's packet towards the VIP) and of
 * rev (a backend's reply as it reaches the node: src = backend, dst = snat address for
 * FULLNAT or the client for NAT).
 */
struct vipd_flow {
	__u8 src[16];
	__u8 dst[16];
	__u16 sport; /* network order */
	__u16 dport; /* network order */
	__u8 proto;
	__u8 family;
	__u8 pad[2];
} VIPD_ALIGNED;

/*
 * A bpf_fib_lookup() result kept for VIPD_NH_CACHE_NS (per CPU for each backend, with each
 * reverse entry for the client side), so that most packets skip the FIB, the costliest
 * step (IPv6 most of all). Only successful lookups are kept; a route or neighbour change
 * takes effect within VIPD_NH_CACHE_NS.
 */
struct vipd_nexthop {
	__u64 ns; /* bpf_ktime_get_coarse_ns() of the lookup; 0: none */
	__u32 ifindex;
	__u8 smac[6];
	__u8 dmac[6];
};

/* TCP state as far as FULLNAT port reuse cares; a new SYN clears both. */
#define VIPD_CONN_F_CLOSING 0x1	    /* FIN or RST seen */
#define VIPD_CONN_F_ESTABLISHED 0x2 /* the client sent a bare ACK (handshake done) */

/*
 * conns: LRU_HASH value. vip_id, mode and gen let a packet of a known flow skip the vips
 * lookup: the entry is trusted only while vip_gen[vip_id] still equals gen.
 */
struct vipd_conn {
	__u32 backend_id;
	__u16 snat_port; /* network order; FULLNAT only */
	__u8 flags;	 /* VIPD_CONN_F_* */
	__u8 mode;	 /* enum vipd_mode of the VIP when the flow was last seen */
	__u64 last_seen_ns; /* bpf_ktime_get_coarse_ns(): CLOCK_MONOTONIC_COARSE */
	__u8 snat_addr[16]; /* FULLNAT only */
	__u32 vip_id;
	__u32 gen; /* vip_gen[vip_id] when the flow was last seen */
};

/* rev: LRU_HASH value; the reply is rewritten to src = vip:vip_port, dst = client:client_port. */
struct vipd_rev {
	__u8 client[16];
	__u8 vip[16];
	__u16 client_port; /* network order */
	__u16 vip_port;	   /* network order */
	__u32 vip_id;
	__u32 backend_id;
	__u8 mode;
	__u8 flags; /* VIPD_CONN_F_* seen on replies */
	__u8 pad[2];
	__u64 last_seen_ns; /* of the last reply (creation time before any) */
	struct vipd_nexthop nh; /* towards the client */
};

/* snat_addrs: HASH ifindex -> the node's address on that interface. */
struct vipd_snat_addr {
	__u8 v4[4];
	__u8 v6[16];
} VIPD_ALIGNED;

/*
 * port_filter: ARRAY with one element. Bit p of vip[] (word p / 32, bit p % 32): some VIP
 * uses port p (set by userspace). Bit p of rev[]: some reverse entry has backend port p (set
 * by the program when it creates one; never cleared, a stale bit only costs a lookup).
 */
#define VIPD_PORT_WORDS (65536 / 32)

struct vipd_port_filter {
	__u32 vip[VIPD_PORT_WORDS];
	__u32 rev[VIPD_PORT_WORDS];
};

/*
 * vip_stats[vip_id] and backend_stats[backend_id]: PERCPU_ARRAY values (sum over CPUs).
 * packets/bytes: client -> VIP direction (frame bytes as received); reply_*: backend ->
 * client packets rewritten by the node (FULLNAT and NAT); conns: flows assigned to it.
 */
struct vipd_stats {
	__u64 packets;
	__u64 bytes;
	__u64 conns;
	__u64 reply_packets;
	__u64 reply_bytes;
};

/* counters: PERCPU_ARRAY of __u64, events that are not per VIP or backend. */
enum vipd_counter {
	VIPD_CNT_NO_BACKEND = 0, /* VIP hit, no ring or no ALIVE backend: dropped */
	VIPD_CNT_FAMILY,	 /* backend family differs from the VIP's: dropped */
	VIPD_CNT_NO_SNAT,	 /* FULLNAT: no snat address on the egress interface: dropped */
	VIPD_CNT_SNAT_EXHAUSTED, /* FULLNAT: every candidate port taken: dropped */
	VIPD_CNT_TTL,		 /* TTL / hop limit <= 1: passed to the kernel untouched */
	VIPD_CNT_NO_NEIGH,	 /* next hop unresolved: rewritten packet passed to the kernel */
	VIPD_CNT_FIB_FAIL,	 /* other bpf_fib_lookup() failures: dropped */
	VIPD_CNT_DSR_OFFLINK,	 /* DSR backend reached through a gateway: dropped */
	VIPD_CNT_MAP_FULL,	 /* conns or rev insert failed: dropped */
	VIPD_CNT_SNAT_REUSED,	 /* FULLNAT port taken over from a finished flow */
	VIPD_CNT_MAX,
};

#endif
