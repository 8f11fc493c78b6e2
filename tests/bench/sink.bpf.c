// SPDX-License-Identifier: GPL-2.0
/*
 * The far end of the live-frames benchmark (xdp_live.py) and its ceiling; attached with
 * `ip link set dev IF xdpdrv obj sink.bpf.o sec SECTION` (ip sets the program type, so the
 * second section needs no name libbpf knows):
 *  - sink (section xdp), on the backend's veth: counts and drops IPv4 UDP to SINK_PORT (what
 *    pktgen_live sends, after whatever the node did to it); the per-CPU count, read before and
 *    after a run, is the delivered rate. Everything else (ARP, the iperf3 TCP streams) passes
 *    to the stack. Being there, it is also what lets the node's redirects into the veth pair be
 *    delivered at all. On the node's ingress veth it measures the benchmark's fixed cost.
 *  - fwd (section xdp_fwd), on the node's ingress veth: see below.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define SINK_PORT 9 /* discard */
#define ETH_P_IP 0x0800
#define ETH_ALEN 6
#define AF_INET 2

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} sink_count SEC(".maps");

SEC("xdp")
int sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);
	struct udphdr *udp;
	__u32 key = 0;
	__u64 *n;

	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP) ||
	    ip->protocol != IPPROTO_UDP)
		return XDP_PASS;
	udp = (void *)ip + ip->ihl * 4;
	if ((void *)(udp + 1) > data_end || udp->dest != bpf_htons(SINK_PORT))
		return XDP_PASS;
	n = bpf_map_lookup_elem(&sink_count, &key);
	if (n)
		*n += 1;
	return XDP_DROP;
}

/*
 * fwd: the least an XDP router does (as the kernel's samples/bpf/xdp_fwd): route by
 * bpf_fib_lookup(), decrement the TTL, rewrite the MACs, bpf_redirect() to the egress. On the
 * node's ingress veth it gives the benchmark's ceiling for any XDP forwarder, vipd's included.
 * Anything it cannot forward (no neighbour, not IPv4, TTL <= 1) goes to the stack.
 */
SEC("xdp_fwd")
int fwd(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct bpf_fib_lookup fib = {};
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);
	__u32 sum;

	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->ttl <= 1)
		return XDP_PASS;
	fib.family = AF_INET;
	fib.tos = ip->tos;
	fib.l4_protocol = ip->protocol;
	fib.tot_len = bpf_ntohs(ip->tot_len);
	fib.ipv4_src = ip->saddr;
	fib.ipv4_dst = ip->daddr;
	fib.ifindex = ctx->ingress_ifindex;
	if (bpf_fib_lookup(ctx, &fib, sizeof(fib), 0) != BPF_FIB_LKUP_RET_SUCCESS)
		return XDP_PASS;
	/* TTL - 1: the checksum grows by 0x0100 (RFC 1624), folded once. */
	sum = ip->check + bpf_htons(0x0100);
	ip->check = (__u16)(sum + (sum >> 16));
	ip->ttl--;
	__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
	return bpf_redirect(fib.ifindex, 0);
}
