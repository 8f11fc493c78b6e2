// SPDX-License-Identifier: GPL-2.0
/*
 * Packet generator for the live-frames benchmark (xdp_live.py): pktgen_live runs this program
 * through BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES and the client's veth as ingress
 * interface, so XDP_TX sends each frame out of that veth. Userspace builds one Ethernet/IPv4/UDP
 * frame with a zero UDP checksum (valid for IPv4, and it stays valid whatever the port); here
 * the source port changes: CPU c cycles through its own flows_per_cpu ports from
 * sport_base + c * flows_per_cpu, so a flow always comes from one CPU, as receive-side scaling
 * would have it (flows shared by CPUs would bounce the node's per-flow state between caches).
 * The frame is written whole from the template every time: the test-run page pool recycles the
 * pages it sends without restoring their content, and whoever took a page's previous frame
 * changed it in place (routing decrements the TTL, NAT rewrites addresses and ports, the egress
 * writes new MACs).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define PKTGEN_UDP_OFF (14 + 20) /* Ethernet + IPv4 without options, as userspace builds it */
#define PKTGEN_FRAME_WORDS 15    /* the 60-byte frame in 32-bit words */

char LICENSE[] SEC("license") = "GPL";

const volatile __u16 sport_base = 10000; /* host order */
const volatile __u32 flows_per_cpu = 512;  /* userspace pins one thread to each CPU 0..n-1 */
/* The frame as userspace built it (the same bytes as BPF_PROG_RUN's data_in). */
const volatile __u32 frame[PKTGEN_FRAME_WORDS];

/* Frames handed to XDP_TX on this CPU: the source port cycle position. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} pktgen_seq SEC(".maps");

SEC("xdp")
int pktgen_live(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct udphdr *udp = data + PKTGEN_UDP_OFF;
	__u32 *word = data;
	__u32 key = 0;
	__u32 *seq;
	int i;

	if (data + PKTGEN_FRAME_WORDS * 4 > data_end)
		return XDP_ABORTED;
#pragma unroll
	for (i = 0; i < PKTGEN_FRAME_WORDS; i++)
		word[i] = frame[i];
	seq = bpf_map_lookup_elem(&pktgen_seq, &key);
	if (!seq)
		return XDP_ABORTED;
	udp->source = bpf_htons(sport_base + bpf_get_smp_processor_id() * flows_per_cpu +
				*seq % flows_per_cpu);
	*seq += 1;
	return XDP_TX;
}
