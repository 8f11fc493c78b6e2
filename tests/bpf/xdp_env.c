/*
 * The bpf test bed. The namespace is anonymous (unshare): it and everything in it vanish
 * when the test process exits, however it exits, so there is nothing to clean up on failure.
 */
#include "xdp_env.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/bpf.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pkt.h"
#include "vipd.skel.h"

const struct env_vip env_vips[ENV_N_VIPS] = {
	{ 4, VIPD_MODE_FULLNAT, IPPROTO_TCP, "10.9.0.1", 80, 8080, 3, NULL, 0 },
	{ 4, VIPD_MODE_FULLNAT, IPPROTO_UDP, "10.9.0.1", 53, 5353, 3, NULL, 0 },
	{ 4, VIPD_MODE_NAT, IPPROTO_TCP, "10.9.0.2", 80, 8080, 3, NULL, 0 },
	{ 4, VIPD_MODE_NAT, IPPROTO_UDP, "10.9.0.2", 53, 5353, 3, NULL, 0 },
	{ 4, VIPD_MODE_DSR, IPPROTO_TCP, "10.9.0.3", 80, 80, 3, NULL, 0 },
	{ 4, VIPD_MODE_DSR, IPPROTO_UDP, "10.9.0.3", 53, 53, 3, NULL, 0 },
	{ 6, VIPD_MODE_FULLNAT, IPPROTO_TCP, "fd00:9::1", 80, 8080, 3, NULL, 0 },
	{ 6, VIPD_MODE_FULLNAT, IPPROTO_UDP, "fd00:9::1", 53, 5353, 3, NULL, 0 },
	{ 6, VIPD_MODE_NAT, IPPROTO_TCP, "fd00:9::2", 80, 8080, 3, NULL, 0 },
	{ 6, VIPD_MODE_NAT, IPPROTO_UDP, "fd00:9::2", 53, 5353, 3, NULL, 0 },
	{ 6, VIPD_MODE_DSR, IPPROTO_TCP, "fd00:9::3", 80, 80, 3, NULL, 0 },
	{ 6, VIPD_MODE_DSR, IPPROTO_UDP, "fd00:9::3", 53, 53, 3, NULL, 0 },
	[ENV_VIP_NO_RING] = { 4, VIPD_MODE_FULLNAT, IPPROTO_TCP, "10.9.0.9", 80, 80, 0, NULL, 1 },
	[ENV_VIP_EMPTY_RING] = { 4, VIPD_MODE_FULLNAT, IPPROTO_TCP, "10.9.0.9", 81, 81, 0, NULL,
				 0 },
	[ENV_VIP_DSR_OFFLINK] = { 4, VIPD_MODE_DSR, IPPROTO_TCP, "10.9.0.3", 443, 443, 0,
				  "10.2.0.5", 0 },
	[ENV_VIP_NO_NEIGH] = { 4, VIPD_MODE_NAT, IPPROTO_TCP, "10.9.0.2", 8443, 8443, 0,
			       "10.1.0.99", 0 },
	[ENV_VIP_NO_ROUTE] = { 4, VIPD_MODE_NAT, IPPROTO_TCP, "10.9.0.2", 8444, 8444, 0,
			       "10.3.0.5", 0 },
};

static const char *const env_be_v4[] = { "10.1.0.11", "10.1.0.12", "10.1.0.13" };
static const char *const env_be_v6[] = { "fd00:2::11", "fd00:2::12", "fd00:2::13" };
static const char *const env_be_mac[] = { "02:00:00:00:0b:11", "02:00:00:00:0b:12",
					  "02:00:00:00:0b:13" };

static const char *const env_setup_cmds[] = {
	"ip link set lo up",
	"ip link add vc0 address 02:00:00:00:0c:00 type veth peer name vc1",
	"ip link add vb0 address 02:00:00:00:0b:00 type veth peer name vb1",
	"ip link set vc0 up",
	"ip link set vc1 up",
	"ip link set vb0 up",
	"ip link set vb1 up",
	"ip addr add 10.0.0.1/24 dev vc0",
	"ip addr add 10.1.0.1/24 dev vb0",
	"ip -6 addr add fd00:1::1/64 dev vc0 nodad",
	"ip -6 addr add fd00:2::1/64 dev vb0 nodad",
	"ip neigh add 10.0.0.2 lladdr 02:00:00:00:0c:02 dev vc0 nud permanent",
	"ip neigh add 10.0.0.254 lladdr 02:00:00:00:0c:fe dev vc0 nud permanent",
	"ip -6 neigh add fd00:1::2 lladdr 02:00:00:00:0c:02 dev vc0 nud permanent",
	"ip -6 neigh add fd00:1::fe lladdr 02:00:00:00:0c:fe dev vc0 nud permanent",
	"ip route add 198.51.100.0/24 via 10.0.0.254",
	"ip -6 route add 2001:db8:100::/64 via fd00:1::fe",
	"ip neigh add 10.1.0.11 lladdr 02:00:00:00:0b:11 dev vb0 nud permanent",
	"ip neigh add 10.1.0.12 lladdr 02:00:00:00:0b:12 dev vb0 nud permanent",
	"ip neigh add 10.1.0.13 lladdr 02:00:00:00:0b:13 dev vb0 nud permanent",
	"ip neigh add 10.1.0.14 lladdr 02:00:00:00:0b:14 dev vb0 nud permanent",
	"ip neigh add 10.1.0.50 lladdr 02:00:00:00:0b:50 dev vb0 nud permanent",
	"ip neigh add 10.1.0.254 lladdr 02:00:00:00:0b:fe dev vb0 nud permanent",
	"ip -6 neigh add fd00:2::11 lladdr 02:00:00:00:0b:11 dev vb0 nud permanent",
	"ip -6 neigh add fd00:2::12 lladdr 02:00:00:00:0b:12 dev vb0 nud permanent",
	"ip -6 neigh add fd00:2::13 lladdr 02:00:00:00:0b:13 dev vb0 nud permanent",
	"ip route add 10.2.0.0/24 via 10.1.0.254",
	"sysctl -qw net.ipv4.ip_forward=1",
	"sysctl -qw net.ipv6.conf.all.forwarding=1",
};

static const uint16_t env_vip_ports[] = { 80, 53, 81, 443, 8443, 8444 };

const char *env_backend_addr(int family, int i)
{
	return family == 4 ? env_be_v4[i] : env_be_v6[i];
}

const char *env_backend_mac(int i)
{
	return env_be_mac[i];
}

uint32_t env_vip_id(int family, uint8_t mode, uint8_t proto)
{
	uint32_t i;

	for (i = 0; i < ENV_N_MAIN_VIPS; i++)
		if (env_vips[i].family == family && env_vips[i].mode == mode &&
		    env_vips[i].proto == proto)
			return i;
	return VIPD_NO_BACKEND;
}

int env_netns(void)
{
	size_t i;

	if (unshare(CLONE_NEWNET)) {
		perror("unshare(CLONE_NEWNET)");
		return -1;
	}
	for (i = 0; i < sizeof(env_setup_cmds) / sizeof(env_setup_cmds[0]); i++) {
		if (system(env_setup_cmds[i]) != 0) {
			fprintf(stderr, "netns setup failed: %s\n", env_setup_cmds[i]);
			return -1;
		}
	}
	return 0;
}

int env_backend_set(struct xdp_env *e, uint32_t id, int family, const char *addr, uint16_t port,
		    uint8_t flags)
{
	struct vipd_backend b;

	memset(&b, 0, sizeof(b));
	pkt_addr(family, b.addr, addr);
	b.port = htons(port);
	b.family = family == 4 ? VIPD_FAMILY_V4 : VIPD_FAMILY_V6;
	b.flags = flags;
	return bpf_map_update_elem(e->backends, &id, &b, BPF_ANY) ? -errno : 0;
}

int env_ring_set(struct xdp_env *e, uint32_t vip_id, const uint32_t *ids, size_t n)
{
	static uint32_t keys[VIPD_RING_SIZE], vals[VIPD_RING_SIZE];
	uint32_t i, count = VIPD_RING_SIZE;
	int fd, err = 0;

	fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "vipd_ring", 4, 4, VIPD_RING_SIZE, NULL);
	if (fd < 0)
		return -errno;
	for (i = 0; i < VIPD_RING_SIZE; i++) {
		keys[i] = i;
		vals[i] = n ? ids[i % n] : VIPD_NO_BACKEND;
	}
	if (bpf_map_update_batch(fd, keys, vals, &count, NULL) || count != VIPD_RING_SIZE)
		err = -EIO;
	else if (bpf_map_update_elem(e->rings, &vip_id, &fd, BPF_ANY))
		err = -errno;
	close(fd);
	return err;
}

static int env_vip_install(struct xdp_env *e, uint32_t id)
{
	const struct env_vip *v = &env_vips[id];
	struct vipd_vip_key k;
	struct vipd_vip val;
	uint32_t ids[3];
	int i, n = 0, err;

	memset(&k, 0, sizeof(k));
	pkt_addr(v->family, k.addr, v->addr);
	k.port = htons(v->port);
	k.proto = v->proto;
	k.family = v->family == 4 ? VIPD_FAMILY_V4 : VIPD_FAMILY_V6;
	memset(&val, 0, sizeof(val));
	val.vip_id = id;
	val.mode = v->mode;
	if (bpf_map_update_elem(e->vips, &k, &val, BPF_NOEXIST))
		return -errno;
	if (v->be_addr) {
		ids[n] = ENV_SPECIAL_BE + id;
		err = env_backend_set(e, ids[n++], v->family, v->be_addr, v->bport,
				      VIPD_BACKEND_F_ALIVE);
		if (err)
			return err;
	}
	for (i = 0; i < v->n_backends; i++) {
		ids[n] = id * 3 + i;
		err = env_backend_set(e, ids[n++], v->family, env_backend_addr(v->family, i),
				      v->bport, VIPD_BACKEND_F_ALIVE);
		if (err)
			return err;
	}
	if (v->no_ring)
		return 0;
	return env_ring_set(e, id, ids, n);
}

static int env_snat_set(struct xdp_env *e, int ifindex, const char *v4, const char *v6)
{
	struct vipd_snat_addr sa;
	uint32_t key = ifindex;
	uint8_t a[16];

	memset(&sa, 0, sizeof(sa));
	pkt_addr(4, a, v4);
	memcpy(sa.v4, a, 4);
	pkt_addr(6, sa.v6, v6);
	return bpf_map_update_elem(e->snat_addrs, &key, &sa, BPF_ANY) ? -errno : 0;
}

int env_load(struct xdp_env *e)
{
	struct vipd_port_filter *pf;
	uint32_t id, zero = 0;
	size_t i;
	int err;

	memset(e, 0, sizeof(*e));
	e->ifc = if_nametoindex("vc0");
	e->ifb = if_nametoindex("vb0");
	if (!e->ifc || !e->ifb) {
		fprintf(stderr, "env_load: test interfaces missing (env_netns not run?)\n");
		return -1;
	}
	e->skel = vipd_bpf__open_and_load();
	if (!e->skel) {
		fprintf(stderr, "env_load: cannot load the XDP object: %s\n", strerror(errno));
		return -1;
	}
	e->prog_fd = bpf_program__fd(e->skel->progs.vipd_xdp);
	e->vips = bpf_map__fd(e->skel->maps.vips);
	e->rings = bpf_map__fd(e->skel->maps.rings);
	e->backends = bpf_map__fd(e->skel->maps.backends);
	e->conns = bpf_map__fd(e->skel->maps.conns);
	e->rev = bpf_map__fd(e->skel->maps.rev);
	e->snat_addrs = bpf_map__fd(e->skel->maps.snat_addrs);
	e->port_filter = bpf_map__fd(e->skel->maps.port_filter);
	e->vip_stats = bpf_map__fd(e->skel->maps.vip_stats);
	e->backend_stats = bpf_map__fd(e->skel->maps.backend_stats);
	e->counters = bpf_map__fd(e->skel->maps.counters);
	e->vip_gen = bpf_map__fd(e->skel->maps.vip_gen);

	pf = calloc(1, sizeof(*pf));
	if (!pf)
		goto fail;
	for (i = 0; i < sizeof(env_vip_ports) / sizeof(env_vip_ports[0]); i++)
		pf->vip[env_vip_ports[i] / 32] |= 1u << (env_vip_ports[i] % 32);
	err = bpf_map_update_elem(e->port_filter, &zero, pf, BPF_ANY);
	free(pf);
	if (err)
		goto fail;
	if (env_snat_set(e, e->ifb, "10.1.0.1", "fd00:2::1") ||
	    env_snat_set(e, e->ifc, "10.0.0.1", "fd00:1::1"))
		goto fail;
	for (id = 0; id < ENV_N_VIPS; id++) {
		err = env_vip_install(e, id);
		if (err) {
			fprintf(stderr, "env_load: VIP %u: %s\n", id, strerror(-err));
			goto fail;
		}
	}
	return 0;
fail:
	fprintf(stderr, "env_load: map setup failed: %s\n", strerror(errno));
	env_unload(e);
	return -1;
}

void env_unload(struct xdp_env *e)
{
	vipd_bpf__destroy(e->skel);
	e->skel = NULL;
}

int env_run_prog(int prog_fd, int ifindex, const uint8_t *in, size_t len, unsigned int repeat,
		 uint8_t *out, size_t *out_len, uint32_t *ns, uint32_t *verdict)
{
	struct xdp_md ctx;
	LIBBPF_OPTS(bpf_test_run_opts, opts);
	int err;

	memset(&ctx, 0, sizeof(ctx));
	ctx.data_end = (uint32_t)len;
	ctx.ingress_ifindex = (uint32_t)ifindex;
	opts.data_in = in;
	opts.data_size_in = (uint32_t)len;
	opts.data_out = out;
	opts.data_size_out = (uint32_t)*out_len;
	opts.ctx_in = &ctx;
	opts.ctx_size_in = sizeof(ctx);
	opts.repeat = repeat;
	err = bpf_prog_test_run_opts(prog_fd, &opts);
	if (err)
		return -errno;
	*out_len = opts.data_size_out;
	if (ns)
		*ns = opts.duration;
	*verdict = opts.retval;
	return 0;
}

int env_run(struct xdp_env *e, int ifindex, const uint8_t *in, size_t len, uint8_t *out,
	    size_t *out_len, uint32_t *verdict)
{
	return env_run_prog(e->prog_fd, ifindex, in, len, 1, out, out_len, NULL, verdict);
}

int env_stats(struct xdp_env *e, int map_fd, uint32_t id, struct vipd_stats *sum)
{
	int ncpu = libbpf_num_possible_cpus(), i;
	struct vipd_stats *per;

	(void)e;
	memset(sum, 0, sizeof(*sum));
	if (ncpu <= 0)
		return -1;
	per = calloc(ncpu, sizeof(*per));
	if (!per)
		return -1;
	if (bpf_map_lookup_elem(map_fd, &id, per)) {
		free(per);
		return -1;
	}
	for (i = 0; i < ncpu; i++) {
		sum->packets += per[i].packets;
		sum->bytes += per[i].bytes;
		sum->conns += per[i].conns;
		sum->reply_packets += per[i].reply_packets;
		sum->reply_bytes += per[i].reply_bytes;
	}
	free(per);
	return 0;
}

uint64_t env_counter(struct xdp_env *e, uint32_t idx)
{
	int ncpu = libbpf_num_possible_cpus(), i;
	uint64_t per[1024], sum = 0;

	if (ncpu <= 0 || ncpu > 1024 || bpf_map_lookup_elem(e->counters, &idx, per))
		return UINT64_MAX;
	for (i = 0; i < ncpu; i++)
		sum += per[i];
	return sum;
}

int env_map_count(int map_fd, size_t key_size)
{
	uint8_t key[64], next[64];
	int n = 0;

	if (key_size > sizeof(key))
		return -1;
	if (bpf_map_get_next_key(map_fd, NULL, next))
		return 0;
	do {
		n++;
		memcpy(key, next, key_size);
	} while (!bpf_map_get_next_key(map_fd, key, next));
	return n;
}
