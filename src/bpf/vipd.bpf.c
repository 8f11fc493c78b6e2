// SPDX-License-Identifier: GPL-2.0
/*
 * vipd's XDP data plane: L4 load balancing of VIP traffic (IPv4/IPv6, TCP/UDP) to backends
 * chosen by a per-VIP Maglev table, in FULLNAT, NAT or DSR mode. The map layout and the
 * loader's side of the contract are in vipd_bpf.h.
 *
 * Verdicts:
 *  - anything that is not an unfragmented IPv4/IPv6 TCP/UDP packet with complete, consistent
 *    headers, or that is neither VIP traffic nor a reply to a translated flow: XDP_PASS,
 *    untouched (ARP, ICMP, SSH or BGP to the node, VLAN-tagged frames, IPv6 with extension
 *    headers, IP fragments, truncated or malformed packets);
 *  - VIP or reply packet with TTL / hop limit <= 1: XDP_PASS untouched, so the kernel answers
 *    it (time exceeded) as a router would;
 *  - VIP packet with no ALIVE backend to go to: XDP_DROP (nothing can serve it; passing it
 *    would have the node answer for a service it does not run);
 *  - forwarded packet: XDP_TX if the next hop is out of the ingress interface, else
 *    bpf_redirect() to it; MACs come from bpf_fib_lookup();
 *  - next hop known but its neighbour unresolved (BPF_FIB_LKUP_RET_NO_NEIGH): the packet is
 *    rewritten and XDP_PASSed, so the kernel forwards it and resolves the neighbour; the
 *    flow's state is in place, so once the neighbour is known packets take the fast path.
 *    (The kernel accepts an IPv4 FULLNAT packet, whose source is the node's own address,
 *    only with accept_local on the ingress interface; DSR packets still carry the VIP as
 *    destination, so the loader should get DSR backends' neighbours resolved itself.)
 *  - any other bpf_fib_lookup() failure (no route, forwarding disabled, MTU exceeded): XDP_DROP.
 *
 * Next hops (MACs, egress interface) are cached for VIPD_NH_CACHE_NS per backend and per
 * reverse entry; VIP lookup comes first, so removing a VIP stops its traffic at once.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "vipd_bpf.h"

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff
#define EEXIST 17
#define ETH_HLEN 14
#define ETH_ALEN 6
#define IPV4_MAX_HLEN 60
#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

#define VIPD_HASH_SEED 0x7669706eu /* fixed: every node must hash a flow alike */

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, VIPD_MAX_VIPS);
	__type(key, struct vipd_vip_key);
	__type(value, struct vipd_vip);
} vips SEC(".maps");

struct vipd_ring {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VIPD_RING_SIZE);
	__type(key, __u32);
	__type(value, __u32);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, VIPD_MAX_VIPS);
	__type(key, __u32);
	__array(values, struct vipd_ring);
} rings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VIPD_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct vipd_backend);
} backends SEC(".maps");

/*
 * One LRU for all CPUs: BPF_F_NO_COMMON_LRU would make new flows some 15% cheaper but splits
 * the capacity evenly over the CPUs, so a CPU taking most flows (few RX queues, veth) would
 * evict live flows early. The loader may still set it (bpf_map__set_map_flags).
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, VIPD_CONNS_MAX);
	__type(key, struct vipd_flow);
	__type(value, struct vipd_conn);
} conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, VIPD_CONNS_MAX);
	__type(key, struct vipd_flow);
	__type(value, struct vipd_rev);
} rev SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VIPD_MAX_VIPS);
	__type(key, __u32);
	__type(value, __u32);
} vip_gen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, VIPD_MAX_SNAT_IFS);
	__type(key, __u32);
	__type(value, struct vipd_snat_addr);
} snat_addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vipd_port_filter);
} port_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VIPD_MAX_VIPS);
	__type(key, __u32);
	__type(value, struct vipd_stats);
} vip_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VIPD_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct vipd_stats);
} backend_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VIPD_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/* The next hop towards a backend (at addr; ids may be reused), per CPU. */
struct vipd_backend_nh {
	struct vipd_nexthop nh;
	__u8 addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VIPD_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct vipd_backend_nh);
} backend_nh SEC(".maps");

/* Temporaries of the new-flow path, which would not fit the 512-byte stack. */
struct vipd_scratch {
	struct vipd_rev rv;
	struct vipd_flow key;
	struct vipd_flow owner;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vipd_scratch);
} scratch SEC(".maps");

/* What the parser found; flow holds the packet's addresses and ports as received. */
struct vipd_pkt {
	struct vipd_flow flow;
	__u32 l4_off;
	__u32 len;    /* frame length */
	__u16 ip_len; /* IP packet length, for the next hop's MTU check */
	__u8 ttl;
	__u8 tcp_flags; /* 0 for UDP */
};

static __always_inline void vipd_count(__u32 what)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &what);

	if (v)
		(*v)++;
}

/* A port's word in a 65536-bit bitmap. The mask is a no-op for the CPU but keeps the index
 * provably below 2048 for verifiers (Linux 6.1's) that lose the bound through bpf_ntohs. */
static __always_inline __u32 vipd_port_word(__u32 port)
{
	__u32 idx = port >> 5;

	asm volatile("%0 &= 2047" : "+r"(idx));
	return idx;
}

static __always_inline int vipd_port_bit(const __u32 *words, __u16 port_be)
{
	__u32 port = bpf_ntohs(port_be);

	return words[vipd_port_word(port)] & (1u << (port & 31));
}

static __always_inline int vipd_addr_eq(const __u8 *a, const __u8 *b)
{
	const __u32 *x = (const __u32 *)a, *y = (const __u32 *)b;

	return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3])) == 0;
}

static __always_inline int vipd_addr_zero(const __u8 *a, __u8 family)
{
	const __u32 *x = (const __u32 *)a;

	if (family == VIPD_FAMILY_V4)
		return x[0] == 0;
	return (x[0] | x[1] | x[2] | x[3]) == 0;
}

static __always_inline __u32 vipd_rotl(__u32 x, int r)
{
	return (x << r) | (x >> (32 - r));
}

/* MurmurHash3's round and finaliser: cheap, and no per-boot seed (ECMP peers must agree). */
static __always_inline __u32 vipd_mix(__u32 h, __u32 k)
{
	k *= 0xcc9e2d51u;
	k = vipd_rotl(k, 15);
	k *= 0x1b873593u;
	h ^= k;
	h = vipd_rotl(h, 13);
	return h * 5 + 0xe6546b64u;
}

static __always_inline __u32 vipd_fmix(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

static __always_inline __u32 vipd_flow_hash(const struct vipd_flow *f)
{
	const __u32 *s = (const __u32 *)f->src;
	__u32 h = VIPD_HASH_SEED;

	h = vipd_mix(h, s[0]);
	h = vipd_mix(h, s[1]);
	h = vipd_mix(h, s[2]);
	h = vipd_mix(h, s[3]);
	h = vipd_mix(h, ((__u32)f->sport << 16) | f->dport);
	h = vipd_mix(h, ((__u32)f->family << 8) | f->proto);
	return vipd_fmix(h);
}

/* RFC 1624 incremental checksum update: sum ~old + new over the changed words, then fold. */
static __always_inline __u64 vipd_csum32(__u64 d, __u32 old, __u32 new)
{
	return d + (__u32)~old + new;
}

static __always_inline __u64 vipd_csum16(__u64 d, __u16 old, __u16 new)
{
	return d + (__u16)~old + new;
}

static __always_inline __u16 vipd_csum_fold(__u64 s)
{
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

static __always_inline __u16 vipd_csum_replace(__u16 check, __u64 d)
{
	return (__u16)~vipd_csum_fold((__u16)~check + d);
}

/* Ports and TCP flags; the L4 header must be complete. */
static __always_inline int vipd_parse_l4(__u16 *ports, void *data_end, __u8 proto,
					 struct vipd_pkt *p)
{
	if (proto == IPPROTO_TCP) {
		struct tcphdr *th = (void *)ports;

		if ((void *)(th + 1) > data_end)
			return -1;
		p->tcp_flags = ((__u8 *)th)[13];
	} else if ((void *)ports + sizeof(struct udphdr) > data_end) {
		return -1;
	}
	p->flow.sport = ports[0];
	p->flow.dport = ports[1];
	return 0;
}

static __always_inline int vipd_parse_v4(void *data, void *data_end, struct vipd_pkt *p)
{
	struct iphdr *iph = data + ETH_HLEN;
	__u32 hlen, tot, need;

	if ((void *)(iph + 1) > data_end)
		return -1;
	if (iph->version != 4 || iph->ihl < 5)
		return -1;
	if (iph->protocol == IPPROTO_TCP)
		need = sizeof(struct tcphdr);
	else if (iph->protocol == IPPROTO_UDP)
		need = sizeof(struct udphdr);
	else
		return -1;
	if (iph->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return -1;
	hlen = iph->ihl * 4;
	tot = bpf_ntohs(iph->tot_len);
	if (tot < hlen + need || tot > (__u32)(data_end - (void *)iph))
		return -1;
	if (vipd_parse_l4((void *)iph + hlen, data_end, iph->protocol, p))
		return -1;
	*(__u32 *)p->flow.src = iph->saddr;
	*(__u32 *)p->flow.dst = iph->daddr;
	p->flow.proto = iph->protocol;
	p->flow.family = VIPD_FAMILY_V4;
	p->l4_off = ETH_HLEN + hlen;
	p->ip_len = tot;
	p->ttl = iph->ttl;
	return 0;
}

static __always_inline int vipd_parse_v6(void *data, void *data_end, struct vipd_pkt *p)
{
	struct ipv6hdr *ip6 = data + ETH_HLEN;
	__u32 plen, need;

	if ((void *)(ip6 + 1) > data_end)
		return -1;
	if (ip6->version != 6)
		return -1;
	/* Extension headers (fragments included) are left to the kernel. */
	if (ip6->nexthdr == IPPROTO_TCP)
		need = sizeof(struct tcphdr);
	else if (ip6->nexthdr == IPPROTO_UDP)
		need = sizeof(struct udphdr);
	else
		return -1;
	plen = bpf_ntohs(ip6->payload_len);
	if (plen < need || sizeof(*ip6) + plen > (__u32)(data_end - (void *)ip6))
		return -1;
	if (vipd_parse_l4((void *)(ip6 + 1), data_end, ip6->nexthdr, p))
		return -1;
	__builtin_memcpy(p->flow.src, &ip6->saddr, 16);
	__builtin_memcpy(p->flow.dst, &ip6->daddr, 16);
	p->flow.proto = ip6->nexthdr;
	p->flow.family = VIPD_FAMILY_V6;
	p->l4_off = ETH_HLEN + sizeof(*ip6);
	p->ip_len = sizeof(*ip6) + plen;
	p->ttl = ip6->hop_limit;
	return 0;
}

/*
 * Rewrites the L4 ports and checksum for address delta d (already summed) and the port
 * changes. UDP without a checksum (0) keeps none; a computed UDP checksum of 0 is sent as
 * 0xffff (0 means "none" on the wire).
 */
static __always_inline int vipd_rewrite_l4(void *data, void *data_end, __u32 l4_off, __u8 proto,
					   __u64 d, __u16 sport, __u16 dport)
{
	__u16 *ports, *check;

	if (l4_off > ETH_HLEN + IPV4_MAX_HLEN)
		return -1;
	ports = data + l4_off;
	if (proto == IPPROTO_TCP) {
		struct tcphdr *th = (void *)ports;

		if ((void *)(th + 1) > data_end)
			return -1;
		check = &th->check;
	} else {
		struct udphdr *uh = (void *)ports;

		if ((void *)(uh + 1) > data_end)
			return -1;
		check = &uh->check;
	}
	d = vipd_csum16(d, ports[0], sport);
	d = vipd_csum16(d, ports[1], dport);
	ports[0] = sport;
	ports[1] = dport;
	if (proto == IPPROTO_UDP) {
		__u16 c;

		if (*check == 0)
			return 0;
		c = vipd_csum_replace(*check, d);
		*check = c ? c : 0xffff;
		return 0;
	}
	*check = vipd_csum_replace(*check, d);
	return 0;
}

/*
 * Rewrites addresses and ports (network order; IPv4 addresses in the first word of saddr and
 * daddr), decrements the TTL / hop limit and updates the checksums. 0 or -1 if the packet
 * moved under us (it cannot; the bounds are re-checked for the verifier).
 */
static __always_inline int vipd_rewrite(struct xdp_md *ctx, const struct vipd_pkt *p,
					const __u8 *saddr, const __u8 *daddr, __u16 sport,
					__u16 dport)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	const __u32 *s = (const __u32 *)saddr, *t = (const __u32 *)daddr;
	__u64 d = 0;

	if (p->flow.family == VIPD_FAMILY_V4) {
		struct iphdr *iph = data + ETH_HLEN;
		__u16 old_ttl, new_ttl;
		__u64 dip;

		if ((void *)(iph + 1) > data_end)
			return -1;
		d = vipd_csum32(d, iph->saddr, s[0]);
		d = vipd_csum32(d, iph->daddr, t[0]);
		/* TTL and protocol as one word, the new one computed rather than stored and read
		 * back (the reload stalls); TTL > 1 here, so no borrow into the protocol. */
		old_ttl = *(__u16 *)&iph->ttl;
		new_ttl = bpf_htons(bpf_ntohs(old_ttl) - 0x100);
		*(__u16 *)&iph->ttl = new_ttl;
		dip = vipd_csum16(d, old_ttl, new_ttl);
		iph->check = vipd_csum_replace(iph->check, dip);
		iph->saddr = s[0];
		iph->daddr = t[0];
	} else {
		struct ipv6hdr *ip6 = data + ETH_HLEN;
		__u32 *os, *od;
		int i;

		if ((void *)(ip6 + 1) > data_end)
			return -1;
		os = (__u32 *)&ip6->saddr;
		od = (__u32 *)&ip6->daddr;
#pragma unroll
		for (i = 0; i < 4; i++) {
			d = vipd_csum32(d, os[i], s[i]);
			d = vipd_csum32(d, od[i], t[i]);
			os[i] = s[i];
			od[i] = t[i];
		}
		ip6->hop_limit--;
	}
	return vipd_rewrite_l4(data, data_end, p->l4_off, p->flow.proto, d, sport, dport);
}

/*
 * Next hop towards dst (src only informs policy routing). Fills fib; returns the
 * bpf_fib_lookup() code.
 */
static __always_inline int vipd_fib(struct xdp_md *ctx, struct bpf_fib_lookup *fib,
				    const struct vipd_pkt *p, const __u8 *src, const __u8 *dst)
{
	__builtin_memset(fib, 0, sizeof(*fib));
	fib->family = p->flow.family;
	fib->l4_protocol = p->flow.proto;
	fib->tot_len = p->ip_len;
	fib->ifindex = ctx->ingress_ifindex;
	if (p->flow.family == VIPD_FAMILY_V4) {
		fib->ipv4_src = *(const __u32 *)src;
		fib->ipv4_dst = *(const __u32 *)dst;
	} else {
		__builtin_memcpy(fib->ipv6_src, src, 16);
		__builtin_memcpy(fib->ipv6_dst, dst, 16);
	}
	return bpf_fib_lookup(ctx, fib, sizeof(*fib), 0);
}

/* Only NO_NEIGH (resolved by the kernel, see the top) goes on; the rest is counted here. */
static __always_inline int vipd_fib_usable(int rc)
{
	if (rc == BPF_FIB_LKUP_RET_SUCCESS)
		return 1;
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		vipd_count(VIPD_CNT_NO_NEIGH);
		return 1;
	}
	vipd_count(VIPD_CNT_FIB_FAIL);
	return 0;
}

static __always_inline void vipd_nh_set(struct vipd_nexthop *nh, const struct bpf_fib_lookup *fib,
					__u64 now)
{
	nh->ifindex = fib->ifindex;
	__builtin_memcpy(nh->smac, fib->smac, ETH_ALEN);
	__builtin_memcpy(nh->dmac, fib->dmac, ETH_ALEN);
	nh->ns = now;
}

static __always_inline int vipd_nh_fresh(const struct vipd_nexthop *nh, __u64 now)
{
	return nh->ns && now - nh->ns < VIPD_NH_CACHE_NS;
}

/*
 * The next hop towards backend bid: its cached one, else bpf_fib_lookup(). 0 with *nh set
 * (NULL: neighbour unresolved, the kernel gets the packet) and *egress the interface it
 * leaves through; -1 to drop (counted).
 */
static __always_inline int vipd_backend_nh(struct xdp_md *ctx, const struct vipd_pkt *p,
					   __u32 bid, const struct vipd_backend *be, __u8 mode,
					   __u64 now, struct vipd_nexthop **nh, __u32 *egress)
{
	struct vipd_backend_nh *bn = bpf_map_lookup_elem(&backend_nh, &bid);
	struct bpf_fib_lookup fib;
	int rc;

	if (!bn)
		return -1;
	if (vipd_nh_fresh(&bn->nh, now) && vipd_addr_eq(bn->addr, be->addr)) {
		*nh = &bn->nh;
		*egress = bn->nh.ifindex;
		return 0;
	}
	rc = vipd_fib(ctx, &fib, p, p->flow.src, be->addr);
	if (!vipd_fib_usable(rc))
		return -1;
	/* L2 DSR needs the backend on-link: a gateway would bounce the VIP back to us. */
	if (mode == VIPD_MODE_DSR &&
	    (p->flow.family == VIPD_FAMILY_V4 ? fib.ipv4_dst != *(__u32 *)be->addr :
						!vipd_addr_eq((__u8 *)fib.ipv6_dst, be->addr))) {
		vipd_count(VIPD_CNT_DSR_OFFLINK);
		return -1;
	}
	*egress = fib.ifindex;
	*nh = NULL;
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return 0;
	__builtin_memcpy(bn->addr, be->addr, 16);
	vipd_nh_set(&bn->nh, &fib, now);
	*nh = &bn->nh;
	return 0;
}

/* Out through nh, or to the kernel when the neighbour was unresolved (nh NULL). */
static __always_inline int vipd_emit(struct xdp_md *ctx, const struct vipd_nexthop *nh)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if (!nh)
		return XDP_PASS;
	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	__builtin_memcpy(eth->h_dest, nh->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, nh->smac, ETH_ALEN);
	if (nh->ifindex == ctx->ingress_ifindex)
		return XDP_TX;
	return bpf_redirect(nh->ifindex, 0);
}

static __always_inline void vipd_account(void *map, __u32 id, __u32 len, int fresh, int reply)
{
	struct vipd_stats *st = bpf_map_lookup_elem(map, &id);

	if (!st)
		return;
	if (reply) {
		st->reply_packets++;
		st->reply_bytes += len;
		return;
	}
	st->packets++;
	st->bytes += len;
	if (fresh)
		st->conns++;
}

/* Maglev choice for a new flow; a non-ALIVE pick (table not rebuilt yet) tries other slots. */
static __always_inline struct vipd_backend *vipd_pick(__u32 vip_id, __u32 hash, __u32 *bid_out)
{
	struct vipd_backend *be;
	void *ring;
	int i;

	ring = bpf_map_lookup_elem(&rings, &vip_id);
	if (!ring)
		return NULL;
	for (i = 0; i <= VIPD_RING_PROBES; i++) {
		__u32 idx = (i ? vipd_fmix(hash + i) : hash) % VIPD_RING_SIZE;
		__u32 *slot, bid;

		slot = bpf_map_lookup_elem(ring, &idx);
		if (!slot)
			return NULL;
		bid = *slot;
		if (bid == VIPD_NO_BACKEND)
			return NULL;
		be = bpf_map_lookup_elem(&backends, &bid);
		if (be && (be->flags & VIPD_BACKEND_F_ALIVE)) {
			*bid_out = bid;
			return be;
		}
	}
	return NULL;
}

/* The reverse entry a flow's old backend answered through; forgotten when it moves. */
static __always_inline void vipd_rev_forget(const struct vipd_pkt *p, const struct vipd_conn *c,
					    const struct vipd_backend *old)
{
	struct vipd_scratch *s;
	struct vipd_flow *k;
	__u32 zero = 0;

	s = bpf_map_lookup_elem(&scratch, &zero);
	if (!s)
		return;
	k = &s->key;
	__builtin_memset(k, 0, sizeof(*k));
	__builtin_memcpy(k->src, old->addr, 16);
	k->sport = old->port;
	k->proto = p->flow.proto;
	k->family = p->flow.family;
	if (c->snat_port) {
		__builtin_memcpy(k->dst, c->snat_addr, 16);
		k->dport = c->snat_port;
	} else {
		__builtin_memcpy(k->dst, p->flow.src, 16);
		k->dport = p->flow.sport;
	}
	bpf_map_delete_elem(&rev, k);
}

static __always_inline int vipd_rev_same(const struct vipd_rev *a, const struct vipd_rev *b)
{
	return vipd_addr_eq(a->client, b->client) && vipd_addr_eq(a->vip, b->vip) &&
	       a->client_port == b->client_port && a->vip_port == b->vip_port;
}

static __always_inline void vipd_rev_mark_port(__u16 port_be)
{
	struct vipd_port_filter *pf;
	__u16 port = bpf_ntohs(port_be);
	__u32 zero = 0, bit = 1u << (port & 31), idx = vipd_port_word(port);

	pf = bpf_map_lookup_elem(&port_filter, &zero);
	if (pf && !(pf->rev[idx] & bit))
		__sync_fetch_and_or(&pf->rev[idx], bit);
}

/*
 * Whether the flow holding FULLNAT translation k (reverse entry cur) is over: its conns
 * entry gone or pointing elsewhere, or both directions idle past the timeout. An idle
 * owner's conns entry is removed with it, so that it cannot come back on a taken port.
 */
static __always_inline int vipd_rev_stale(const struct vipd_flow *k, const struct vipd_rev *cur,
					  struct vipd_flow *ok, __u64 now)
{
	struct vipd_conn *oc;
	__u64 last, limit;

	__builtin_memset(ok, 0, sizeof(*ok));
	__builtin_memcpy(ok->src, cur->client, 16);
	__builtin_memcpy(ok->dst, cur->vip, 16);
	ok->sport = cur->client_port;
	ok->dport = cur->vip_port;
	ok->proto = k->proto;
	ok->family = k->family;
	oc = bpf_map_lookup_elem(&conns, ok);
	if (!oc || oc->snat_port != k->dport || oc->backend_id != cur->backend_id ||
	    !vipd_addr_eq(oc->snat_addr, k->dst))
		return 1;
	last = oc->last_seen_ns > cur->last_seen_ns ? oc->last_seen_ns : cur->last_seen_ns;
	if ((oc->flags | cur->flags) & VIPD_CONN_F_CLOSING ||
	    (k->proto == IPPROTO_TCP && !(oc->flags & VIPD_CONN_F_ESTABLISHED)))
		limit = VIPD_SNAT_IDLE_CLOSED_NS;
	else if (k->proto == IPPROTO_TCP)
		limit = VIPD_SNAT_IDLE_TCP_NS;
	else
		limit = VIPD_SNAT_IDLE_UDP_NS;
	if (now - last < limit)
		return 0;
	bpf_map_delete_elem(&conns, ok);
	return 1;
}

/*
 * FULLNAT source port for a new flow towards be: the first hash-derived candidate that is
 * free, already this very flow's (its conns entry was evicted but the reverse entry lives:
 * keep the port the backend knows), or held by a finished flow. Returns the port (network
 * order) or 0.
 */
static __always_inline __u16 vipd_snat_alloc(const struct vipd_pkt *p, __u32 hash,
					     const struct vipd_backend *be, const __u8 *snat,
					     struct vipd_scratch *s, __u64 now)
{
	__u32 range = VIPD_SNAT_PORT_MAX - VIPD_SNAT_PORT_MIN + 1;
	__u32 h = vipd_fmix(hash ^ 0x5a17u);
	struct vipd_flow *k = &s->key;
	struct vipd_rev *rv = &s->rv;
	int i;

	__builtin_memset(k, 0, sizeof(*k));
	__builtin_memcpy(k->src, be->addr, 16);
	__builtin_memcpy(k->dst, snat, 16);
	k->sport = be->port;
	k->proto = p->flow.proto;
	k->family = p->flow.family;
	for (i = 0; i < VIPD_SNAT_PROBES; i++) {
		__u16 port = bpf_htons(VIPD_SNAT_PORT_MIN + (h + i * 7919u) % range);
		struct vipd_rev *cur;
		long err;

		k->dport = port;
		/* Look first: a failed BPF_NOEXIST insert still costs an LRU eviction. */
		cur = bpf_map_lookup_elem(&rev, k);
		if (cur && vipd_rev_same(cur, rv)) {
			cur->vip_id = rv->vip_id;
			cur->backend_id = rv->backend_id;
			cur->last_seen_ns = now;
			return port;
		}
		if (cur && !vipd_rev_stale(k, cur, &s->owner, now))
			continue;
		err = bpf_map_update_elem(&rev, k, rv, cur ? BPF_ANY : BPF_NOEXIST);
		if (!err) {
			if (cur)
				vipd_count(VIPD_CNT_SNAT_REUSED);
			return port;
		}
		if (err != -EEXIST) {
			vipd_count(VIPD_CNT_MAP_FULL);
			return 0;
		}
	}
	vipd_count(VIPD_CNT_SNAT_EXHAUSTED);
	return 0;
}

/* New flow state: the conns entry and, for FULLNAT and NAT, the reverse entry. */
static __always_inline int vipd_flow_create(const struct vipd_pkt *p, __u32 vip_id, __u8 mode,
					    const struct vipd_backend *be, __u32 bid, __u32 hash,
					    __u32 egress, struct vipd_conn *nc, __u64 now)
{
	struct vipd_snat_addr *sa;
	struct vipd_scratch *s;
	struct vipd_flow *k;
	struct vipd_rev *rv;
	const __u8 *a;
	__u32 zero = 0;

	nc->backend_id = bid;
	nc->last_seen_ns = now;
	if (mode == VIPD_MODE_DSR)
		goto conn;

	s = bpf_map_lookup_elem(&scratch, &zero);
	if (!s)
		return -1;
	rv = &s->rv;
	__builtin_memset(rv, 0, sizeof(*rv));
	__builtin_memcpy(rv->client, p->flow.src, 16);
	__builtin_memcpy(rv->vip, p->flow.dst, 16);
	rv->client_port = p->flow.sport;
	rv->vip_port = p->flow.dport;
	rv->vip_id = vip_id;
	rv->backend_id = bid;
	rv->mode = mode;
	rv->last_seen_ns = now;
	if (mode == VIPD_MODE_FULLNAT) {
		sa = bpf_map_lookup_elem(&snat_addrs, &egress);
		a = sa ? (p->flow.family == VIPD_FAMILY_V4 ? sa->v4 : sa->v6) : NULL;
		if (!a || vipd_addr_zero(a, p->flow.family)) {
			vipd_count(VIPD_CNT_NO_SNAT);
			return -1;
		}
		if (p->flow.family == VIPD_FAMILY_V4)
			*(__u32 *)nc->snat_addr = *(const __u32 *)a;
		else
			__builtin_memcpy(nc->snat_addr, a, 16);
		nc->snat_port = vipd_snat_alloc(p, hash, be, nc->snat_addr, s, now);
		if (!nc->snat_port)
			return -1;
	} else {
		k = &s->key;
		__builtin_memset(k, 0, sizeof(*k));
		__builtin_memcpy(k->src, be->addr, 16);
		__builtin_memcpy(k->dst, p->flow.src, 16);
		k->sport = be->port;
		k->dport = p->flow.sport;
		k->proto = p->flow.proto;
		k->family = p->flow.family;
		if (bpf_map_update_elem(&rev, k, rv, BPF_ANY)) {
			vipd_count(VIPD_CNT_MAP_FULL);
			return -1;
		}
	}
	vipd_rev_mark_port(be->port);
conn:
	if (bpf_map_update_elem(&conns, &p->flow, nc, BPF_ANY)) {
		vipd_count(VIPD_CNT_MAP_FULL);
		return -1;
	}
	return 0;
}

/* A flow's VIPD_CONN_F_* after this packet (TCP); clients' packets alone mark ESTABLISHED. */
static __always_inline __u8 vipd_tcp_state(const struct vipd_pkt *p, __u8 flags, int client)
{
	if (p->tcp_flags & (TCP_FIN | TCP_RST))
		return flags | VIPD_CONN_F_CLOSING;
	if ((p->tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN)
		return 0;
	if (client && (p->tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_ACK)
		return flags | VIPD_CONN_F_ESTABLISHED;
	return flags;
}

/* A packet to a VIP. */
static __always_inline int vipd_forward(struct xdp_md *ctx, struct vipd_pkt *p, __u32 vip_id,
					__u8 mode, struct vipd_conn *c, __u32 *gen)
{
	__u32 bid = 0, hash = 0, egress = 0;
	struct vipd_nexthop *nh = NULL;
	struct vipd_backend *be = NULL;
	struct vipd_conn nc;
	const __u8 *src;
	__u16 sport;
	__u64 now;
	int fresh = 0;

	if (p->ttl <= 1) {
		vipd_count(VIPD_CNT_TTL);
		return XDP_PASS;
	}
	now = bpf_ktime_get_coarse_ns();
	if (c) {
		bid = c->backend_id;
		be = bpf_map_lookup_elem(&backends, &bid);
		if (be && !(be->flags & VIPD_BACKEND_F_ALIVE)) {
			if (mode != VIPD_MODE_DSR)
				vipd_rev_forget(p, c, be);
			be = NULL;
		} else if (be && mode == VIPD_MODE_FULLNAT && !c->snat_port) {
			be = NULL; /* the VIP changed mode under the flow */
		}
	}
	if (!be) {
		hash = vipd_flow_hash(&p->flow);
		be = vipd_pick(vip_id, hash, &bid);
		if (!be) {
			vipd_count(VIPD_CNT_NO_BACKEND);
			return XDP_DROP;
		}
		__builtin_memset(&nc, 0, sizeof(nc));
		c = &nc;
		fresh = 1;
	}
	if (!gen) {
		gen = bpf_map_lookup_elem(&vip_gen, &vip_id);
		if (!gen)
			return XDP_DROP;
	}
	if (be->family != p->flow.family) {
		vipd_count(VIPD_CNT_FAMILY);
		return XDP_DROP;
	}

	if (vipd_backend_nh(ctx, p, bid, be, mode, now, &nh, &egress))
		return XDP_DROP;
	if (fresh) {
		nc.flags = vipd_tcp_state(p, 0, 1);
		nc.vip_id = vip_id;
		nc.mode = mode;
		nc.gen = *gen;
		if (vipd_flow_create(p, vip_id, mode, be, bid, hash, egress, &nc, now))
			return XDP_DROP;
	} else {
		__u8 flags = vipd_tcp_state(p, c->flags, 1);

		if (c->last_seen_ns != now)
			c->last_seen_ns = now;
		if (c->flags != flags)
			c->flags = flags;
		/* Came through the vips lookup: the flow now belongs to this VIP as it is. */
		if (c->gen != *gen || c->vip_id != vip_id || c->mode != mode) {
			c->vip_id = vip_id;
			c->mode = mode;
			c->gen = *gen;
		}
	}

	if (mode == VIPD_MODE_FULLNAT) {
		src = c->snat_addr;
		sport = c->snat_port;
	} else {
		src = p->flow.src;
		sport = p->flow.sport;
	}
	if (mode != VIPD_MODE_DSR && vipd_rewrite(ctx, p, src, be->addr, sport, be->port))
		return XDP_DROP;

	vipd_account(&vip_stats, vip_id, p->len, fresh, 0);
	vipd_account(&backend_stats, bid, p->len, fresh, 0);
	return vipd_emit(ctx, nh);
}

/* A backend's answer to a FULLNAT or NAT flow: back to src = VIP, dst = client. */
static __always_inline int vipd_reply(struct xdp_md *ctx, struct vipd_pkt *p, struct vipd_rev *r)
{
	struct vipd_nexthop *nh = NULL;
	struct bpf_fib_lookup fib;
	__u64 now;
	__u8 flags;
	int rc;

	if (p->ttl <= 1) {
		vipd_count(VIPD_CNT_TTL);
		return XDP_PASS;
	}
	now = bpf_ktime_get_coarse_ns();
	if (vipd_nh_fresh(&r->nh, now)) {
		nh = &r->nh;
	} else {
		rc = vipd_fib(ctx, &fib, p, r->vip, r->client);
		if (!vipd_fib_usable(rc))
			return XDP_DROP;
		if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
			vipd_nh_set(&r->nh, &fib, now);
			nh = &r->nh;
		}
	}
	if (r->last_seen_ns != now)
		r->last_seen_ns = now;
	flags = vipd_tcp_state(p, r->flags, 0);
	if (r->flags != flags)
		r->flags = flags;
	if (vipd_rewrite(ctx, p, r->vip, r->client, r->vip_port, r->client_port))
		return XDP_DROP;
	vipd_account(&vip_stats, r->vip_id, p->len, 0, 1);
	vipd_account(&backend_stats, r->backend_id, p->len, 0, 1);
	return vipd_emit(ctx, nh);
}

/* The whole program; a separate function so that benchmark wrappers can include this file. */
static __always_inline int vipd_process(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct vipd_port_filter *pf;
	struct vipd_pkt p __attribute__((aligned(8)));
	__u32 zero = 0;
	int err;

	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	__builtin_memset(&p, 0, sizeof(p));
	if (eth->h_proto == bpf_htons(ETH_P_IP))
		err = vipd_parse_v4(data, data_end, &p);
	else if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		err = vipd_parse_v6(data, data_end, &p);
	else
		return XDP_PASS;
	if (err)
		return XDP_PASS;
	p.len = data_end - data;

	pf = bpf_map_lookup_elem(&port_filter, &zero);
	if (!pf)
		return XDP_PASS;
	if (vipd_port_bit(pf->vip, p.flow.dport)) {
		struct vipd_vip_key vk;
		struct vipd_vip *vip;
		struct vipd_conn *c;
		__u32 *gen;

		/*
		 * A known flow whose VIP has not changed since skips the vips lookup: one hash
		 * lookup less on the path almost every packet takes.
		 */
		c = bpf_map_lookup_elem(&conns, &p.flow);
		if (c) {
			__u32 id = c->vip_id;

			gen = bpf_map_lookup_elem(&vip_gen, &id);
			if (gen && *gen == c->gen)
				return vipd_forward(ctx, &p, id, c->mode, c, gen);
		}

		__builtin_memcpy(vk.addr, p.flow.dst, 16);
		vk.port = p.flow.dport;
		vk.proto = p.flow.proto;
		vk.family = p.flow.family;
		vip = bpf_map_lookup_elem(&vips, &vk);
		if (vip)
			return vipd_forward(ctx, &p, vip->vip_id, vip->mode, c, NULL);
	}
	if (vipd_port_bit(pf->rev, p.flow.sport)) {
		struct vipd_rev *r = bpf_map_lookup_elem(&rev, &p.flow);

		if (r)
			return vipd_reply(ctx, &p, r);
	}
	return XDP_PASS;
}

SEC("xdp")
int vipd_xdp(struct xdp_md *ctx)
{
	return vipd_process(ctx);
}
