// SPDX-License-Identifier: GPL-2.0
/*
 * pktgen_live: sends 60-byte (64 on the wire) IPv4/UDP frames out of a veth as fast as XDP can,
 * for the live-frames benchmark (xdp_live.py). One thread per CPU runs pktgen_live.bpf.c through
 * BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES and the veth as ingress interface: the program
 * varies the source port and returns XDP_TX, which transmits the frame out of the veth (its peer
 * must be able to receive XDP frames: an XDP program or GRO on). Thread i runs on CPU i and
 * sends its own --sports/--threads flows (source ports). Bounded by --seconds and
 * --max-packets. Prints one line:
 *
 *   sent=FRAMES seconds=ELAPSED threads=N
 *
 * FRAMES counts frames given to XDP_TX; what arrived is for the receiver to count.
 *
 *   pktgen_live --dev IF --src-mac MAC --dst-mac MAC --src IP --dst IP --dport PORT
 *               [--sport-base PORT] [--sports N] [--seconds S] [--max-packets N] [--threads N]
 *
 * Defaults: source ports 10000.., 1024 of them, 5 s, 100M frames, a thread per CPU.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "pktgen_live.skel.h"

#define PKTGEN_FRAME_LEN 60  /* 64-byte Ethernet frame less the FCS */
#define PKTGEN_CHUNK 65536   /* frames per BPF_PROG_RUN: keeps the time bound tight */
#define PKTGEN_MAX_THREADS 64

struct pktgen_cfg {
	unsigned int ifindex;
	uint8_t frame[PKTGEN_FRAME_LEN];
	double seconds;
	unsigned long long max_packets;
	int prog_fd;
};

struct pktgen_thread {
	pthread_t tid;
	int cpu;
	int err;
	const struct pktgen_cfg *cfg;
};

static atomic_ullong pktgen_sent;
static atomic_int pktgen_stop;
static struct timespec pktgen_t0;

static double pktgen_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

static uint16_t pktgen_csum(const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint32_t sum = 0;
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons((uint16_t)~sum);
}

static int pktgen_parse_mac(const char *s, uint8_t mac[ETH_ALEN])
{
	unsigned int b[ETH_ALEN];
	int i;

	if (sscanf(s, "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != ETH_ALEN)
		return -EINVAL;
	for (i = 0; i < ETH_ALEN; i++) {
		if (b[i] > 0xff)
			return -EINVAL;
		mac[i] = (uint8_t)b[i];
	}
	return 0;
}

/* Ethernet + IPv4 (no options, DF, TTL 64) + UDP with a zero checksum and a zero payload. */
static void pktgen_build(uint8_t *frame, const uint8_t *smac, const uint8_t *dmac,
			 struct in_addr src, struct in_addr dst, uint16_t sport, uint16_t dport)
{
	struct ethhdr *eth = (struct ethhdr *)frame;
	struct iphdr *ip = (struct iphdr *)(eth + 1);
	struct udphdr *udp = (struct udphdr *)(ip + 1);

	memset(frame, 0, PKTGEN_FRAME_LEN);
	memcpy(eth->h_dest, dmac, ETH_ALEN);
	memcpy(eth->h_source, smac, ETH_ALEN);
	eth->h_proto = htons(ETH_P_IP);
	ip->version = 4;
	ip->ihl = 5;
	ip->tot_len = htons(PKTGEN_FRAME_LEN - sizeof(*eth));
	ip->frag_off = htons(0x4000);
	ip->ttl = 64;
	ip->protocol = IPPROTO_UDP;
	ip->saddr = src.s_addr;
	ip->daddr = dst.s_addr;
	ip->check = pktgen_csum(ip, sizeof(*ip));
	udp->source = htons(sport);
	udp->dest = htons(dport);
	udp->len = htons(PKTGEN_FRAME_LEN - sizeof(*eth) - sizeof(*ip));
}

static void *pktgen_thread_main(void *arg)
{
	struct pktgen_thread *t = arg;
	const struct pktgen_cfg *cfg = t->cfg;
	struct xdp_md ctx = {
		.data_end = PKTGEN_FRAME_LEN,
		.ingress_ifindex = cfg->ifindex,
	};
	LIBBPF_OPTS(bpf_test_run_opts, opts,
		.data_in = cfg->frame,
		.data_size_in = PKTGEN_FRAME_LEN,
		.ctx_in = &ctx,
		.ctx_size_in = sizeof(ctx),
		.repeat = PKTGEN_CHUNK,
		.flags = BPF_F_TEST_XDP_LIVE_FRAMES,
	);
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(t->cpu, &set);
	/* The program picks a flow by CPU: thread i must stay on CPU i, alone. */
	t->err = -pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	while (!t->err && !atomic_load(&pktgen_stop)) {
		unsigned long long sent;

		if (pktgen_since(&pktgen_t0) >= cfg->seconds)
			break;
		if (bpf_prog_test_run_opts(cfg->prog_fd, &opts)) {
			t->err = -errno;
			break;
		}
		sent = atomic_fetch_add(&pktgen_sent, PKTGEN_CHUNK) + PKTGEN_CHUNK;
		if (sent >= cfg->max_packets)
			break;
	}
	atomic_store(&pktgen_stop, 1);
	return NULL;
}

static void pktgen_usage(FILE *f)
{
	fprintf(f, "usage: pktgen_live --dev IF --src-mac MAC --dst-mac MAC --src IPV4 --dst IPV4 "
		   "--dport PORT\n"
		   "                   [--sport-base PORT] [--sports N] [--seconds S] "
		   "[--max-packets N] [--threads N (at most one a CPU)]\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "dev", required_argument, NULL, 'i' },
		{ "src-mac", required_argument, NULL, 'm' },
		{ "dst-mac", required_argument, NULL, 'M' },
		{ "src", required_argument, NULL, 's' },
		{ "dst", required_argument, NULL, 'd' },
		{ "dport", required_argument, NULL, 'p' },
		{ "sport-base", required_argument, NULL, 'b' },
		{ "sports", required_argument, NULL, 'n' },
		{ "seconds", required_argument, NULL, 't' },
		{ "max-packets", required_argument, NULL, 'c' },
		{ "threads", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	static struct pktgen_thread threads[PKTGEN_MAX_THREADS];
	static struct pktgen_cfg cfg = { .seconds = 5, .max_packets = 100000000ull };
	uint8_t smac[ETH_ALEN], dmac[ETH_ALEN];
	struct in_addr src = { 0 }, dst = { 0 };
	long sport_base = 10000, sports = 1024, dport = -1;
	long nthreads = sysconf(_SC_NPROCESSORS_ONLN);
	const char *dev = NULL;
	struct pktgen_live_bpf *skel;
	int have = 0, opt, i, err = 0;
	double elapsed;

	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'i':
			dev = optarg;
			break;
		case 'm':
			have |= pktgen_parse_mac(optarg, smac) ? 0x100 : 1;
			break;
		case 'M':
			have |= pktgen_parse_mac(optarg, dmac) ? 0x100 : 2;
			break;
		case 's':
			have |= inet_pton(AF_INET, optarg, &src) == 1 ? 4 : 0x100;
			break;
		case 'd':
			have |= inet_pton(AF_INET, optarg, &dst) == 1 ? 8 : 0x100;
			break;
		case 'p':
			dport = strtol(optarg, NULL, 10);
			break;
		case 'b':
			sport_base = strtol(optarg, NULL, 10);
			break;
		case 'n':
			sports = strtol(optarg, NULL, 10);
			break;
		case 't':
			cfg.seconds = strtod(optarg, NULL);
			break;
		case 'c':
			cfg.max_packets = strtoull(optarg, NULL, 10);
			break;
		case 'T':
			nthreads = strtol(optarg, NULL, 10);
			break;
		case 'h':
			pktgen_usage(stdout);
			return 0;
		default:
			pktgen_usage(stderr);
			return 2;
		}
	}
	if (!dev || have != 0xf || dport < 1 || dport > 65535 || sport_base < 1 || sports < 1 ||
	    sport_base + sports > 65536 || !(cfg.seconds > 0 && cfg.seconds <= 600) ||
	    !cfg.max_packets || nthreads < 1 || nthreads > PKTGEN_MAX_THREADS ||
	    nthreads > sysconf(_SC_NPROCESSORS_ONLN) || sports < nthreads) {
		pktgen_usage(stderr);
		return 2;
	}
	cfg.ifindex = if_nametoindex(dev);
	if (!cfg.ifindex) {
		fprintf(stderr, "pktgen_live: %s: %s\n", dev, strerror(errno));
		return 1;
	}
	pktgen_build(cfg.frame, smac, dmac, src, dst, (uint16_t)sport_base, (uint16_t)dport);

	skel = pktgen_live_bpf__open();
	if (!skel) {
		fprintf(stderr, "pktgen_live: open: %s\n", strerror(errno));
		return 1;
	}
	skel->rodata->sport_base = (__u16)sport_base;
	skel->rodata->flows_per_cpu = (__u32)(sports / nthreads);
	_Static_assert(sizeof(skel->rodata->frame) == PKTGEN_FRAME_LEN, "frame template size");
	memcpy((void *)skel->rodata->frame, cfg.frame, PKTGEN_FRAME_LEN);
	err = pktgen_live_bpf__load(skel);
	if (err) {
		fprintf(stderr, "pktgen_live: load: %s\n", strerror(-err));
		goto out;
	}
	cfg.prog_fd = bpf_program__fd(skel->progs.pktgen_live);

	clock_gettime(CLOCK_MONOTONIC, &pktgen_t0);
	for (i = 0; i < nthreads; i++) {
		threads[i].cpu = i;
		threads[i].cfg = &cfg;
		err = -pthread_create(&threads[i].tid, NULL, pktgen_thread_main, &threads[i]);
		if (err) {
			atomic_store(&pktgen_stop, 1);
			nthreads = i;
			break;
		}
	}
	for (i = 0; i < nthreads; i++) {
		pthread_join(threads[i].tid, NULL);
		if (threads[i].err && !err)
			err = threads[i].err;
	}
	elapsed = pktgen_since(&pktgen_t0);
	if (err) {
		fprintf(stderr, "pktgen_live: %s\n", strerror(-err));
		goto out;
	}
	printf("sent=%llu seconds=%.6f threads=%ld\n", (unsigned long long)atomic_load(&pktgen_sent),
	       elapsed, nthreads);
out:
	pktgen_live_bpf__destroy(skel);
	return err ? 1 : 0;
}
