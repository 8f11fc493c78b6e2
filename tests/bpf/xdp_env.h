/*
 * The bpf test bed: a private network namespace with the node's two interfaces, and the XDP
 * object loaded through its skeleton with VIPs, backends and rings filled in.
 *
 * Topology (all inside the namespace; peers vc1/vb1 have no addresses):
 *   vc0 02:00:00:00:0c:00  10.0.0.1/24 fd00:1::1/64   clients: 10.0.0.2 / fd00:1::2
 *                          (02:00:00:00:0c:02), gateway 10.0.0.254 / fd00:1::fe
 *                          (02:00:00:00:0c:fe) to 198.51.100.0/24 and 2001:db8:100::/64
 *   vb0 02:00:00:00:0b:00  10.1.0.1/24 fd00:2::1/64   backends 10.1.0.11-14 / fd00:2::11-13
 *                          (02:00:00:00:0b:11-14), a client on the backend side 10.1.0.50
 *                          (02:00:00:00:0b:50), gateway 10.1.0.254 (02:00:00:00:0b:fe) to
 *                          10.2.0.0/24; 10.1.0.99 has no neighbour entry; 10.3.0.0/24 has
 *                          no route.
 */
#ifndef VIPD_TEST_XDP_ENV_H
#define VIPD_TEST_XDP_ENV_H

#include <stddef.h>
#include <stdint.h>

#include "vipd_bpf.h"

struct vipd_bpf;

struct xdp_env {
	struct vipd_bpf *skel;
	int prog_fd;
	int vips, rings, backends, conns, rev, snat_addrs, port_filter;
	int vip_stats, backend_stats, counters, vip_gen;
	int ifc, ifb; /* ifindex of vc0 (clients) and vb0 (backends) */
};

/* The VIP table env_load() installs; vip_id is the index. */
struct env_vip {
	int family;
	uint8_t mode;
	uint8_t proto;
	const char *addr;
	uint16_t port;	/* host order */
	uint16_t bport; /* backends' port */
	int n_backends; /* backend ids id*3 .. id*3+n-1: the first n of env_backend_addr() */
	const char *be_addr; /* instead: one backend with this address, id ENV_SPECIAL_BE + id */
	int no_ring;	     /* no ring at all */
};

#define ENV_N_MAIN_VIPS 12 /* {fullnat, nat, dsr} x {tcp, udp} x {v4, v6} */
#define ENV_VIP_NO_RING 12
#define ENV_VIP_EMPTY_RING 13
#define ENV_VIP_DSR_OFFLINK 14
#define ENV_VIP_NO_NEIGH 15
#define ENV_VIP_NO_ROUTE 16
#define ENV_N_VIPS 17
#define ENV_SPECIAL_BE 1000

extern const struct env_vip env_vips[ENV_N_VIPS];

/* Address and MAC of main backend i (0..2) of the family, as strings. */
const char *env_backend_addr(int family, int i);
const char *env_backend_mac(int i);
/* The main VIP for family (4/6), mode and protocol. */
uint32_t env_vip_id(int family, uint8_t mode, uint8_t proto);

/* Enters a new network namespace and builds the topology; once per process. 0 or -1. */
int env_netns(void);
/* Loads a fresh object and installs the VIP table (rings alternate the VIP's backends). */
int env_load(struct xdp_env *e);
void env_unload(struct xdp_env *e);

/*
 * One BPF_PROG_TEST_RUN of prog_fd on in (ingress ifindex), repeat times; the last pass's
 * frame in out, the mean ns per pass in *ns (if not NULL), the verdict. 0 or -errno.
 */
int env_run_prog(int prog_fd, int ifindex, const uint8_t *in, size_t len, unsigned int repeat,
		 uint8_t *out, size_t *out_len, uint32_t *ns, uint32_t *verdict);
/* The same with vipd's program, repeat 1. */
int env_run(struct xdp_env *e, int ifindex, const uint8_t *in, size_t len, uint8_t *out,
	    size_t *out_len, uint32_t *verdict);

/* Replaces the VIP's ring by a new inner map: slot i = ids[i % n] (n = 0: all empty). */
int env_ring_set(struct xdp_env *e, uint32_t vip_id, const uint32_t *ids, size_t n);
int env_backend_set(struct xdp_env *e, uint32_t id, int family, const char *addr, uint16_t port,
		    uint8_t flags);
/* Sums of a PERCPU stats map (vip_stats or backend_stats) entry, and of a counter. */
int env_stats(struct xdp_env *e, int map_fd, uint32_t id, struct vipd_stats *sum);
uint64_t env_counter(struct xdp_env *e, uint32_t idx);
/* Entries in an LRU map (conns or rev). */
int env_map_count(int map_fd, size_t key_size);

#endif
