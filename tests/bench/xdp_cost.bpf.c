// SPDX-License-Identifier: GPL-2.0
/*
 * Benchmark wrappers around vipd's XDP program, run by tests/bench/xdp_cost.c through
 * BPF_PROG_TEST_RUN. With repeat = N the kernel runs a program N times on one buffer, each
 * pass seeing what the previous pass wrote (a NAT'd packet is no longer VIP traffic). So
 * every wrapper first writes the original frame back, then does its work, and the floor does
 * the same restore: its cost is in both figures of a ratio.
 *
 * The globals are set by the runner between runs (the skeleton maps .bss). A test run keeps
 * all its passes on one CPU, so plain globals serve as the pass counter and verdict tally.
 */
#include "vipd.bpf.c"

#define XCOST_FRAME_MAX 128
#define XCOST_PORT_BASE 1024
#define XCOST_PORTS 64000

__u8 xcost_frame[XCOST_FRAME_MAX]; /* the frame every pass starts from */
__u32 xcost_len;
/*
 * IPPROTO_TCP / IPPROTO_UDP: each pass is a new flow, its source port
 * XCOST_PORT_BASE + the pass number (checksum updated); 0: the frame as it is.
 */
__u32 xcost_vary;
__u32 xcost_seq;
__u64 xcost_verdicts[8]; /* passes by verdict (XDP_ABORTED: the restore failed) */

static __always_inline int xcost_new_flow(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 l4, coff;
	__u16 *ports, *check, old, new, c;

	if ((void *)(eth + 1) > data_end)
		return -1;
	/* The runner's frames carry no IPv4 options and no IPv6 extension headers. */
	l4 = eth->h_proto == bpf_htons(ETH_P_IP) ? ETH_HLEN + 20 : ETH_HLEN + 40;
	coff = xcost_vary == IPPROTO_TCP ? 16 : 6;
	ports = data + l4;
	check = data + l4 + coff;
	if ((void *)(ports + 1) > data_end || (void *)(check + 1) > data_end)
		return -1;
	old = ports[0];
	new = bpf_htons(XCOST_PORT_BASE + xcost_seq++ % XCOST_PORTS);
	ports[0] = new;
	if (xcost_vary == IPPROTO_UDP && *check == 0)
		return 0;
	c = vipd_csum_replace(*check, vipd_csum16(0, old, new));
	*check = c || xcost_vary == IPPROTO_TCP ? c : 0xffff;
	return 0;
}

static __always_inline int xcost_restore(struct xdp_md *ctx)
{
	__u32 len = xcost_len;

	if (len < ETH_HLEN || len > XCOST_FRAME_MAX)
		return -1;
	if (bpf_xdp_store_bytes(ctx, 0, xcost_frame, len))
		return -1;
	if (xcost_vary)
		return xcost_new_flow(ctx);
	return 0;
}

static __always_inline int xcost_swap_macs(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u8 tmp[ETH_ALEN];

	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	__builtin_memcpy(tmp, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, tmp, ETH_ALEN);
	return XDP_TX;
}

SEC("xdp")
int xcost_vipd(struct xdp_md *ctx)
{
	int v = xcost_restore(ctx) ? XDP_ABORTED : vipd_process(ctx);

	xcost_verdicts[v & 7]++;
	return v;
}

SEC("xdp")
int xcost_floor(struct xdp_md *ctx)
{
	int v = xcost_restore(ctx) ? XDP_ABORTED : xcost_swap_macs(ctx);

	xcost_verdicts[v & 7]++;
	return v;
}

/* The floor without restore or tally: what a plain MAC-swap benchmark measures. */
SEC("xdp")
int xcost_bare(struct xdp_md *ctx)
{
	return xcost_swap_macs(ctx);
}
