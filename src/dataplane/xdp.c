#include "dataplane/xdp.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/if_link.h>
#include <linux/magic.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "dataplane/maglev.h"
#include "dataplane/route.h"
#include "log.h"
#include "model.h"
#include "vipd.skel.h"
#include "bpf/vipd_bpf.h"

#define XDP_PROG_NAME "vipd_xdp"
#define XDP_BPFFS_ROOT "/sys/fs/bpf"
#define XDP_MAX_IFACES 64
/* Open-addressing index over backends, at most half full. */
#define XDP_BK_INDEX (2 * VIPD_MAX_BACKENDS)
/* How long a backend's route (egress interface, source address) is trusted before asking again. */
#define XDP_ROUTE_TTL_S 30

struct xdp_vip {
	bool used;
	bool seen; /* in the model at this sync */
	bool ring_valid;
	uint64_t ring_sig;
	struct vipd_vip_key key;
	struct vipd_vip val;
};

/* Userspace's copy of backends[id], who owns it and the kernel's route to it. */
struct xdp_backend {
	struct vipd_backend val; /* as written to the kernel; family 0: unused */
	bool retired;            /* gone from the model: keeps its flows, reusable last */
	bool seen;               /* in the model at this sync */
	struct route_info route; /* oif 0: no route */
	time_t route_at;         /* when route was asked for; 0: never (for this address) */
	__u64 alive_since_ns;    /* CLOCK_MONOTONIC_COARSE when last made ALIVE; 0: before us */
};

struct xdp_iface {
	int ifindex;
	__u32 mode; /* XDP_FLAGS_DRV_MODE or XDP_FLAGS_SKB_MODE */
	bool fresh; /* attached where no program was, not in place of an older vipd's */
	struct vipd_snat_addr snat;
	bool snat_written;
};

struct xdp_plane {
	struct dataplane dp;
	struct vipd_bpf *skel;
	char *pin_dir;
	int adapter;
	int ncpus;
	struct xdp_iface ifaces[XDP_MAX_IFACES]; /* the adapter first */
	size_t n_ifaces;
	struct xdp_vip vips[VIPD_MAX_VIPS];
	struct xdp_backend backends[VIPD_MAX_BACKENDS];
	uint32_t next_backend; /* where the search for a free id starts: ids are reused late */
	uint32_t bk_index[XDP_BK_INDEX]; /* (vip_id, address, port) -> id + 1; 0: empty */
	struct vipd_port_filter pf;
	uint32_t *table;       /* maglev scratch: VIPD_RING_SIZE slots */
	uint32_t *ring_keys;   /* 0..VIPD_RING_SIZE-1 for batch updates */
	uint32_t *ring_vals;
	struct maglev_backend *mb;
	uint32_t *mb_ids;
	size_t cap_mb;
	size_t unsupported;    /* load balancers this plane cannot serve, last sync */
	size_t local_backends; /* backends of type LOCAL it leaves out, last sync */
	/* Active flows per backend id and per VIP id, from the last walk of conns. */
	uint32_t active_bk[VIPD_MAX_BACKENDS];
	uint32_t active_vip[VIPD_MAX_VIPS];
	uint64_t active_at;   /* CLOCK_MONOTONIC ns of that walk; 0: none yet */
	int active_err;       /* its result: 0 or -errno */
	bool active_no_batch; /* the kernel has no batch lookup for conns: key by key */
};

/* Maps that carry state across a restart; backend_nh and scratch are recomputed. */
static const char *const xdp_persistent_maps[] = {
	"vips", "vip_gen", "rings", "backends", "conns", "rev", "snat_addrs", "port_filter",
	"vip_stats", "backend_stats", "counters",
};

static bool map_persistent(const char *name)
{
	for (size_t i = 0; i < sizeof(xdp_persistent_maps) / sizeof(xdp_persistent_maps[0]); i++)
		if (strcmp(xdp_persistent_maps[i], name) == 0)
			return true;
	return false;
}

/*
 * Set while a native attach is tried. Its failure is handled and logged by the caller, so
 * what libbpf warns then (the kernel's reason) is passed on as info.
 */
static bool trying_native;

static int libbpf_log(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char buf[512];
	size_t n;

	if (level == LIBBPF_DEBUG && log_get_level() < LOG_LVL_DEBUG)
		return 0;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	n = strlen(buf);
	if (n && buf[n - 1] == '\n')
		buf[n - 1] = 0;
	if (level == LIBBPF_WARN && trying_native)
		log_info("msg=\"libbpf: %s\"", buf);
	else if (level == LIBBPF_WARN)
		log_warn("msg=\"libbpf: %s\"", buf);
	else
		log_debug("msg=\"libbpf: %s\"", buf);
	return 0;
}

/* Writes val to a /proc/sys file unless it already holds it, and logs a change. */
static int sysctl_set(const char *path, const char *val)
{
	char cur[32] = "";
	ssize_t n;
	int fd = open(path, O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		log_error("msg=\"cannot open sysctl\" path=%s err=\"%s\"", path, strerror(errno));
		return -errno;
	}
	n = read(fd, cur, sizeof(cur) - 1);
	if (n > 0 && (size_t)n >= strlen(val) && strncmp(cur, val, strlen(val)) == 0) {
		close(fd);
		return 0;
	}
	if (pwrite(fd, val, strlen(val), 0) < 0) {
		int err = -errno;

		log_error("msg=\"cannot set sysctl\" path=%s value=%s err=\"%s\"", path, val,
			  strerror(errno));
		close(fd);
		return err;
	}
	close(fd);
	log_info("msg=\"sysctl set for XDP forwarding\" path=%s value=%s", path, val);
	return 0;
}

static const char *ifname(int ifindex, char *buf)
{
	if (!if_indextoname((unsigned)ifindex, buf))
		snprintf(buf, IF_NAMESIZE, "#%d", ifindex);
	return buf;
}

/* ---- bpffs and pins ---- */

static bool on_bpffs(const char *path)
{
	struct statfs st;

	return statfs(path, &st) == 0 && st.f_type == BPF_FS_MAGIC;
}

/*
 * The pin directory must sit on a bpf filesystem. Inside `ip netns exec` /sys is a fresh
 * sysfs without one, so vipd mounts it (as systemd would at boot).
 */
static int pin_dir_prepare(const char *dir)
{
	char parent[PATH_MAX];
	char *slash;

	if (strlen(dir) >= sizeof(parent))
		return -ENAMETOOLONG;
	strcpy(parent, dir);
	slash = strrchr(parent, '/');
	if (!slash || slash == parent) {
		log_error("msg=\"bpf pin dir must be an absolute path below a bpffs mount\" dir=%s",
			  dir);
		return -EINVAL;
	}
	*slash = 0;
	if (!on_bpffs(parent)) {
		if (strcmp(parent, XDP_BPFFS_ROOT) != 0) {
			log_error("msg=\"bpf pin dir is not on a bpf filesystem\" dir=%s", dir);
			return -EINVAL;
		}
		if (mount("bpf", XDP_BPFFS_ROOT, "bpf", 0, "mode=0700")) {
			log_error("msg=\"cannot mount bpffs\" path=" XDP_BPFFS_ROOT " err=\"%s\"",
				  strerror(errno));
			return -errno;
		}
		log_info("msg=\"mounted bpffs\" path=" XDP_BPFFS_ROOT);
	}
	if (mkdir(dir, 0700) && errno != EEXIST) {
		log_error("msg=\"cannot create bpf pin dir\" dir=%s err=\"%s\"", dir, strerror(errno));
		return -errno;
	}
	return 0;
}

static int pin_path(char *buf, size_t len, const char *dir, const char *name)
{
	int n = snprintf(buf, len, "%s/%s", dir, name);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* The maps of vipd's program attached to ifindex, by name (fds the caller closes), or 0 found. */
static int attached_map_fds(int ifindex, const char *name, int *fd_out)
{
	struct bpf_prog_info pinfo;
	struct bpf_map_info minfo;
	__u32 ids[64], len, prog_id = 0;
	int pfd, found = -ENOENT;

	if (bpf_xdp_query_id(ifindex, 0, &prog_id) || !prog_id)
		return -ENOENT;
	pfd = bpf_prog_get_fd_by_id(prog_id);
	if (pfd < 0)
		return -errno;
	memset(&pinfo, 0, sizeof(pinfo));
	pinfo.nr_map_ids = sizeof(ids) / sizeof(ids[0]);
	pinfo.map_ids = (__u64)(unsigned long)ids;
	len = sizeof(pinfo);
	if (bpf_obj_get_info_by_fd(pfd, &pinfo, &len) || strcmp(pinfo.name, XDP_PROG_NAME)) {
		close(pfd);
		return -ENOENT;
	}
	close(pfd);
	for (__u32 i = 0; i < pinfo.nr_map_ids && i < sizeof(ids) / sizeof(ids[0]); i++) {
		int mfd = bpf_map_get_fd_by_id(ids[i]);

		if (mfd < 0)
			continue;
		memset(&minfo, 0, sizeof(minfo));
		len = sizeof(minfo);
		if (!bpf_obj_get_info_by_fd(mfd, &minfo, &len) && strcmp(minfo.name, name) == 0) {
			*fd_out = mfd;
			found = 0;
			break;
		}
		close(mfd);
	}
	return found;
}

/* The kernel map behind fd has the layout this build's program expects. */
static bool map_compatible(const struct bpf_map *map, int fd)
{
	struct bpf_map_info info;
	__u32 len = sizeof(info);

	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return false;
	return info.type == (__u32)bpf_map__type(map) && info.key_size == bpf_map__key_size(map) &&
	       info.value_size == bpf_map__value_size(map) &&
	       info.max_entries == bpf_map__max_entries(map) &&
	       info.map_flags == bpf_map__map_flags(map);
}

/*
 * Points each persistent map of the unloaded skeleton at the map already in the kernel: the
 * pin, else the map of the vipd program on the adapter. A map of another layout (an older
 * vipd) is not reused: a fresh map is made, which costs its entries, and pin_all() puts it in
 * place of the old pin (not here: a start that fails later must leave the pins as they were).
 */
static int adopt_maps(struct xdp_plane *x, size_t *adopted)
{
	struct bpf_map *map;
	char path[PATH_MAX];

	*adopted = 0;
	bpf_object__for_each_map(map, x->skel->obj) {
		const char *name = bpf_map__name(map);
		int fd, err;

		if (!map_persistent(name))
			continue;
		if (pin_path(path, sizeof(path), x->pin_dir, name))
			return -ENAMETOOLONG;
		fd = bpf_obj_get(path);
		if (fd < 0 && attached_map_fds(x->adapter, name, &fd))
			continue;
		if (!map_compatible(map, fd)) {
			log_warn("msg=\"existing map has another layout (older vipd?); starting it "
				 "afresh, its entries are lost\" map=%s",
				 name);
			close(fd);
			continue;
		}
		err = bpf_map__reuse_fd(map, fd);
		close(fd);
		if (err) {
			log_error("msg=\"cannot reuse map\" map=%s err=%d", name, err);
			return err;
		}
		(*adopted)++;
	}
	return 0;
}

static __u32 map_id(int fd)
{
	struct bpf_map_info info;
	__u32 len = sizeof(info);

	memset(&info, 0, sizeof(info));
	return bpf_obj_get_info_by_fd(fd, &info, &len) ? 0 : info.id;
}

/* Whether the pin at path holds the map behind fd (else it is absent or an older vipd's). */
static bool pin_holds(const char *path, int fd)
{
	int pfd = bpf_obj_get(path);
	__u32 id;

	if (pfd < 0)
		return false;
	id = map_id(pfd);
	close(pfd);
	return id && id == map_id(fd);
}

static int pin_all(struct xdp_plane *x)
{
	struct bpf_map *map;
	char path[PATH_MAX];
	int err;

	bpf_object__for_each_map(map, x->skel->obj) {
		const char *name = bpf_map__name(map);

		if (!map_persistent(name))
			continue;
		if (pin_path(path, sizeof(path), x->pin_dir, name))
			return -ENAMETOOLONG;
		if (pin_holds(path, bpf_map__fd(map)))
			continue;
		unlink(path);
		err = bpf_obj_pin(bpf_map__fd(map), path);
		if (err) {
			log_error("msg=\"cannot pin map\" path=%s err=\"%s\"", path, strerror(errno));
			return -errno;
		}
	}
	/* The program pin is for inspection (bpftool); each start replaces it. */
	if (pin_path(path, sizeof(path), x->pin_dir, "prog"))
		return -ENAMETOOLONG;
	unlink(path);
	if (bpf_obj_pin(bpf_program__fd(x->skel->progs.vipd_xdp), path)) {
		log_error("msg=\"cannot pin program\" path=%s err=\"%s\"", path, strerror(errno));
		return -errno;
	}
	return 0;
}

/*
 * Packets the program hands to the kernel after rewriting (next hop not yet resolved) carry a
 * source that is this node's own when the VIP or the FULLNAT address is local (a VIP on the
 * adapter in L2 mode, on lo in BGP mode); DSR backends answering through the node do too.
 * The kernel forwards them only with accept_local on the interface they arrive on.
 */
static int accept_local(int ifindex)
{
	char path[128], ifn[IF_NAMESIZE];

	if (!if_indextoname((unsigned)ifindex, ifn))
		return -errno;
	snprintf(path, sizeof(path), "/proc/sys/net/ipv4/conf/%s/accept_local", ifn);
	return sysctl_set(path, "1");
}

/* ---- attaching ---- */

/* The XDP program on ifindex: 0 and its id, name and mode, or -ENOENT if none. */
static int attached_prog(int ifindex, __u32 *id, char name[BPF_OBJ_NAME_LEN], __u32 *mode)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	struct bpf_prog_info info;
	__u32 len = sizeof(info);
	int fd;

	if (bpf_xdp_query(ifindex, 0, &q))
		return -errno;
	if (!q.prog_id)
		return -ENOENT;
	*id = q.prog_id;
	*mode = q.attach_mode == XDP_ATTACHED_SKB ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE;
	name[0] = 0;
	fd = bpf_prog_get_fd_by_id(q.prog_id);
	if (fd < 0)
		return 0;
	memset(&info, 0, sizeof(info));
	if (!bpf_obj_get_info_by_fd(fd, &info, &len))
		snprintf(name, BPF_OBJ_NAME_LEN, "%s", info.name);
	close(fd);
	return 0;
}

/*
 * Puts this vipd's program on ifindex: atomically in place of an older vipd program (in its
 * mode), else on a free interface as want says (see enum xdp_plane_mode). Never displaces a
 * program that is not vipd's.
 */
static int attach_iface(struct xdp_plane *x, int ifindex, enum xdp_plane_mode want)
{
	char name[BPF_OBJ_NAME_LEN], ifn[IF_NAMESIZE];
	int prog = bpf_program__fd(x->skel->progs.vipd_xdp);
	__u32 old_id, mode;
	bool fresh = false;
	int err;

	for (size_t i = 0; i < x->n_ifaces; i++)
		if (x->ifaces[i].ifindex == ifindex)
			return 0;
	if (x->n_ifaces == XDP_MAX_IFACES) {
		log_error("msg=\"too many interfaces to attach XDP to\" max=%d", XDP_MAX_IFACES);
		return -ENOSPC;
	}
	ifname(ifindex, ifn);
	err = attached_prog(ifindex, &old_id, name, &mode);
	if (err == 0) {
		LIBBPF_OPTS(bpf_xdp_attach_opts, o);
		int old_fd;

		if (strcmp(name, XDP_PROG_NAME) != 0) {
			log_error("msg=\"interface has another XDP program; vipd does not replace "
				  "it\" iface=%s prog_id=%u prog=\"%s\"",
				  ifn, old_id, name);
			return -EBUSY;
		}
		old_fd = bpf_prog_get_fd_by_id(old_id);
		if (old_fd < 0)
			return -errno;
		o.old_prog_fd = old_fd;
		err = bpf_xdp_attach(ifindex, prog, mode | XDP_FLAGS_REPLACE, &o);
		close(old_fd);
		if (err) {
			log_error("msg=\"cannot replace vipd's XDP program\" iface=%s err=\"%s\"", ifn,
				  strerror(-err));
			return err;
		}
		log_info("msg=\"XDP program replaced\" iface=%s mode=%s old_prog_id=%u", ifn,
			 mode == XDP_FLAGS_SKB_MODE ? "generic" : "native", old_id);
	} else if (err == -ENOENT) {
		mode = XDP_FLAGS_DRV_MODE;
		err = -EOPNOTSUPP;
		if (want != XDP_PLANE_GENERIC) {
			trying_native = true;
			err = bpf_xdp_attach(ifindex, prog, mode | XDP_FLAGS_UPDATE_IF_NOEXIST, NULL);
			trying_native = false;
		}
		if (err && want == XDP_PLANE_NATIVE) {
			/* Whatever the driver's reason (no XDP support, MTU, LRO), not natively. */
			log_info("msg=\"no native XDP on this interface\" iface=%s err=\"%s\"", ifn,
				 strerror(-err));
			return -EOPNOTSUPP;
		}
		if (err) {
			if (want == XDP_PLANE_ANY)
				log_warn("msg=\"no native XDP on this interface; using generic mode, "
					 "which is much slower\" iface=%s err=\"%s\"",
					 ifn, strerror(-err));
			mode = XDP_FLAGS_SKB_MODE;
			err = bpf_xdp_attach(ifindex, prog, mode | XDP_FLAGS_UPDATE_IF_NOEXIST, NULL);
		}
		if (err) {
			log_error("msg=\"cannot attach XDP program\" iface=%s err=\"%s\"", ifn,
				  strerror(-err));
			return err;
		}
		log_info("msg=\"XDP program attached\" iface=%s mode=%s", ifn,
			 mode == XDP_FLAGS_SKB_MODE ? "generic" : "native");
		fresh = true;
	} else {
		log_error("msg=\"cannot query XDP program\" iface=%s err=\"%s\"", ifn, strerror(-err));
		return err;
	}
	x->ifaces[x->n_ifaces++] =
		(struct xdp_iface){ .ifindex = ifindex, .mode = mode, .fresh = fresh };
	return accept_local(ifindex);
}

/* ---- the backend index ---- */

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
	const uint8_t *s = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * 0x100000001b3ull;
	return h;
}

/* A backend's identity for one VIP: what the index is keyed by. */
static bool backend_same(const struct vipd_backend *a, const struct vipd_backend *b)
{
	return a->family == b->family && a->vip_id == b->vip_id && a->port == b->port &&
	       memcmp(a->addr, b->addr, sizeof(a->addr)) == 0;
}

static uint32_t backend_slot(const struct vipd_backend *v)
{
	uint64_t h = fnv1a(0xcbf29ce484222325ull, v->addr, sizeof(v->addr));

	h = fnv1a(h, &v->port, sizeof(v->port));
	h = fnv1a(h, &v->family, sizeof(v->family));
	h = fnv1a(h, &v->vip_id, sizeof(v->vip_id));
	return (uint32_t)(h ^ (h >> 32)) % XDP_BK_INDEX;
}

static int index_find(const struct xdp_plane *x, const struct vipd_backend *v, __u32 *id)
{
	for (uint32_t s = backend_slot(v);; s = (s + 1) % XDP_BK_INDEX) {
		uint32_t e = x->bk_index[s];

		if (!e)
			return -ENOENT;
		if (backend_same(&x->backends[e - 1].val, v)) {
			*id = e - 1;
			return 0;
		}
	}
}

static void index_insert(struct xdp_plane *x, __u32 id)
{
	uint32_t s = backend_slot(&x->backends[id].val);

	while (x->bk_index[s])
		s = (s + 1) % XDP_BK_INDEX;
	x->bk_index[s] = id + 1;
}

/* Linear probing's deletion: later entries of the run move up into the hole. */
static void index_remove(struct xdp_plane *x, __u32 id)
{
	uint32_t hole, s = backend_slot(&x->backends[id].val);

	while (x->bk_index[s] != id + 1)
		s = (s + 1) % XDP_BK_INDEX;
	hole = s;
	x->bk_index[hole] = 0;
	for (s = (hole + 1) % XDP_BK_INDEX; x->bk_index[s]; s = (s + 1) % XDP_BK_INDEX) {
		uint32_t home = backend_slot(&x->backends[x->bk_index[s] - 1].val);

		/* Move the entry if its home is not between the hole and its slot. */
		if ((s > hole && (home <= hole || home > s)) || (s < hole && home <= hole && home > s)) {
			x->bk_index[hole] = x->bk_index[s];
			x->bk_index[s] = 0;
			hole = s;
		}
	}
}

/* ---- reading back what the kernel holds ---- */

static void vip_key_from_lb(const struct lb *lb, struct vipd_vip_key *k)
{
	memset(k, 0, sizeof(*k));
	memcpy(k->addr, lb->vip.bytes, ip_addr_len(&lb->vip));
	k->port = htons(lb->port);
	k->proto = lb->protocol == LB_PROTO_UDP ? IPPROTO_UDP : IPPROTO_TCP;
	k->family = lb->vip.family == AF_INET ? VIPD_FAMILY_V4 : VIPD_FAMILY_V6;
}

static int load_mirror(struct xdp_plane *x)
{
	int vips = bpf_map__fd(x->skel->maps.vips), bk = bpf_map__fd(x->skel->maps.backends);
	struct vipd_vip_key key, next, *prev = NULL;
	struct vipd_vip val;
	__u32 zero = 0, max_id = 0;

	while (bpf_map_get_next_key(vips, prev, &next) == 0) {
		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(vips, &key, &val) || val.vip_id >= VIPD_MAX_VIPS)
			continue;
		x->vips[val.vip_id] = (struct xdp_vip){ .used = true, .key = key, .val = val };
	}
	for (__u32 id = 0; id < VIPD_MAX_BACKENDS; id++) {
		struct xdp_backend *b = &x->backends[id];

		if (bpf_map_lookup_elem(bk, &id, &b->val))
			return -errno;
		if (!b->val.family)
			continue;
		/* Until the first sync says otherwise, every backend found is a leftover. */
		b->retired = true;
		index_insert(x, id);
		max_id = id + 1;
	}
	x->next_backend = max_id % VIPD_MAX_BACKENDS;
	if (bpf_map_lookup_elem(bpf_map__fd(x->skel->maps.port_filter), &zero, &x->pf))
		return -errno;
	return 0;
}

/* ---- writing ---- */

static int zero_stats(struct xdp_plane *x, int fd, __u32 id)
{
	struct vipd_stats *z = calloc((size_t)x->ncpus, sizeof(*z));
	int err;

	if (!z)
		return -ENOMEM;
	err = bpf_map_update_elem(fd, &id, z, BPF_ANY) ? -errno : 0;
	free(z);
	return err;
}

static uint64_t clock_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int backend_write(struct xdp_plane *x, __u32 id, const struct vipd_backend *v)
{
	struct xdp_backend *b = &x->backends[id];
	bool moved = !backend_same(&b->val, v);

	if (memcmp(&b->val, v, sizeof(*v)) == 0)
		return 0;
	if (bpf_map_update_elem(bpf_map__fd(x->skel->maps.backends), &id, v, BPF_ANY)) {
		log_error("msg=\"cannot write XDP backend\" id=%u err=\"%s\"", id, strerror(errno));
		return -errno;
	}
	if (moved && b->val.family)
		index_remove(x, id);
	if (v->flags & VIPD_BACKEND_F_ALIVE && (moved || !(b->val.flags & VIPD_BACKEND_F_ALIVE)))
		b->alive_since_ns = clock_ns(CLOCK_MONOTONIC_COARSE);
	b->val = *v;
	if (moved) {
		index_insert(x, id);
		b->route_at = 0;
	}
	return 0;
}

/*
 * A free backend id, searched round-robin from the last one handed out so that an id that
 * conns may still name is reused as late as possible; retired ids only when no other is left.
 */
static int backend_alloc(struct xdp_plane *x, __u32 *id)
{
	for (int pass = 0; pass < 2; pass++) {
		for (__u32 i = 0; i < VIPD_MAX_BACKENDS; i++) {
			__u32 c = (x->next_backend + i) % VIPD_MAX_BACKENDS;
			struct xdp_backend *b = &x->backends[c];

			if (b->val.family && !(pass == 1 && b->retired))
				continue;
			*id = c;
			x->next_backend = (c + 1) % VIPD_MAX_BACKENDS;
			b->retired = false;
			return zero_stats(x, bpf_map__fd(x->skel->maps.backend_stats), c);
		}
	}
	log_error("msg=\"no free XDP backend id\" max=%d", VIPD_MAX_BACKENDS);
	return -ENOSPC;
}

static void backend_value(struct vipd_backend *v, __u32 vip_id, const struct backend *b)
{
	memset(v, 0, sizeof(*v));
	memcpy(v->addr, b->ip.bytes, ip_addr_len(&b->ip));
	v->port = htons(b->port);
	v->family = b->ip.family == AF_INET ? VIPD_FAMILY_V4 : VIPD_FAMILY_V6;
	v->vip_id = vip_id;
}

/* The id of a backend of vip_id; -ENOENT if it has none. */
static int backend_find(const struct xdp_plane *x, __u32 vip_id, const struct backend *b, __u32 *id)
{
	struct vipd_backend v;

	backend_value(&v, vip_id, b);
	return index_find(x, &v, id);
}

static int mb_reserve(struct xdp_plane *x, size_t n)
{
	struct maglev_backend *mb;
	uint32_t *ids;

	if (n <= x->cap_mb)
		return 0;
	mb = realloc(x->mb, n * sizeof(*mb));
	if (!mb)
		return -ENOMEM;
	x->mb = mb;
	ids = realloc(x->mb_ids, n * sizeof(*ids));
	if (!ids)
		return -ENOMEM;
	x->mb_ids = ids;
	x->cap_mb = n;
	return 0;
}

/*
 * Builds the VIP's Maglev table into a new inner map and swaps it in with one update of
 * rings, unless the same backends and weights produced the table already there.
 */
static int ring_sync(struct xdp_plane *x, struct xdp_vip *v, const struct lb *lb, uint8_t proto)
{
	uint64_t sig = 0xcbf29ce484222325ull;
	__u32 count = VIPD_RING_SIZE, vip_id = v->val.vip_id;
	size_t n = 0;
	int fd, err;

	err = mb_reserve(x, lb->n_backends ? lb->n_backends : 1);
	if (err)
		return err;
	for (size_t i = 0; i < lb->n_backends; i++) {
		const struct backend *b = &lb->backends[i];
		__u32 id;

		if (b->type != BACKEND_MASQ || backend_find(x, vip_id, b, &id))
			continue;
		maglev_backend_set_key(&x->mb[n], &b->ip, b->port, proto);
		x->mb[n].weight = backend_effective_weight(lb, b);
		x->mb_ids[n] = id;
		sig = fnv1a(sig, &id, sizeof(id));
		sig = fnv1a(sig, &x->mb[n].weight, sizeof(x->mb[n].weight));
		sig = fnv1a(sig, x->mb[n].key, x->mb[n].key_len);
		n++;
	}
	if (v->ring_valid && v->ring_sig == sig)
		return 0;
	err = maglev_build(x->mb, n, VIPD_RING_SIZE, x->table);
	if (err) {
		log_error("msg=\"cannot build Maglev table\" lb=%s err=%d", lb->uuid, err);
		return err;
	}
	for (__u32 i = 0; i < VIPD_RING_SIZE; i++)
		x->ring_vals[i] = x->table[i] == MAGLEV_NO_BACKEND ? VIPD_NO_BACKEND
								   : x->mb_ids[x->table[i]];
	fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "vipd_ring", sizeof(__u32), sizeof(__u32),
			    VIPD_RING_SIZE, NULL);
	if (fd < 0) {
		log_error("msg=\"cannot create Maglev ring map\" err=\"%s\"", strerror(errno));
		return -errno;
	}
	err = bpf_map_update_batch(fd, x->ring_keys, x->ring_vals, &count, NULL);
	if (!err && bpf_map_update_elem(bpf_map__fd(x->skel->maps.rings), &vip_id, &fd, BPF_ANY))
		err = -errno;
	close(fd);
	if (err) {
		log_error("msg=\"cannot install Maglev ring\" lb=%s err=\"%s\"", lb->uuid,
			  strerror(-err));
		return err;
	}
	v->ring_sig = sig;
	v->ring_valid = true;
	return 0;
}

static struct xdp_vip *vip_find(struct xdp_plane *x, const struct vipd_vip_key *k)
{
	for (size_t i = 0; i < VIPD_MAX_VIPS; i++)
		if (x->vips[i].used && memcmp(&x->vips[i].key, k, sizeof(*k)) == 0)
			return &x->vips[i];
	return NULL;
}

/* Flows of the VIP at id now go through the vips lookup again (see vipd_bpf.h). */
static int vip_gen_bump(struct xdp_plane *x, __u32 id)
{
	int fd = bpf_map__fd(x->skel->maps.vip_gen);
	__u32 gen = 0;

	if (bpf_map_lookup_elem(fd, &id, &gen) == 0) {
		gen++;
		if (bpf_map_update_elem(fd, &id, &gen, BPF_ANY) == 0)
			return 0;
	}
	log_error("msg=\"cannot update XDP VIP generation\" vip_id=%u err=\"%s\"", id,
		  strerror(errno));
	return -errno;
}

static int vip_alloc(struct xdp_plane *x, const struct vipd_vip_key *k, struct xdp_vip **out)
{
	for (__u32 i = 0; i < VIPD_MAX_VIPS; i++) {
		struct xdp_vip *v = &x->vips[i];
		int err;

		if (v->used)
			continue;
		err = zero_stats(x, bpf_map__fd(x->skel->maps.vip_stats), i);
		if (!err)
			err = vip_gen_bump(x, i);
		if (err)
			return err;
		*v = (struct xdp_vip){ .used = true, .key = *k };
		v->val.vip_id = i;
		v->val.mode = 0xff; /* not yet written */
		*out = v;
		return 0;
	}
	log_error("msg=\"no free XDP VIP id\" max=%d", VIPD_MAX_VIPS);
	return -ENOSPC;
}

static __u8 xdp_mode(enum lb_forwarding f)
{
	return f == LB_FWD_NAT ? VIPD_MODE_NAT : f == LB_FWD_DSR ? VIPD_MODE_DSR : VIPD_MODE_FULLNAT;
}

/* Backends of the model get ids and values; those that left it retire with their flows. */
static int backends_sync(struct xdp_plane *x, struct xdp_vip *v, const struct lb *lb)
{
	__u32 vip_id = v->val.vip_id;
	int err;

	for (size_t i = 0; i < lb->n_backends; i++) {
		const struct backend *b = &lb->backends[i];
		struct vipd_backend val;
		__u32 id;

		if (b->type != BACKEND_MASQ)
			continue;
		if (backend_find(x, vip_id, b, &id)) {
			err = backend_alloc(x, &id);
			if (err)
				return err;
		}
		backend_value(&val, vip_id, b);
		/* A failed backend's flows move on; a drained or removed one keeps its flows. */
		val.flags = lb->hc.type != HC_NONE && b->health == BACKEND_HEALTH_DOWN
				    ? 0
				    : VIPD_BACKEND_F_ALIVE;
		err = backend_write(x, id, &val);
		if (err)
			return err;
		x->backends[id].retired = false;
		x->backends[id].seen = true;
	}
	return 0;
}

static int vip_sync(struct xdp_plane *x, const struct lb *lb)
{
	struct vipd_vip_key k;
	struct xdp_vip *v;
	__u8 mode = xdp_mode(lb->forwarding);
	int err;

	vip_key_from_lb(lb, &k);
	v = vip_find(x, &k);
	if (!v) {
		err = vip_alloc(x, &k, &v);
		if (err)
			return err;
	}
	v->seen = true;
	err = backends_sync(x, v, lb);
	if (!err)
		err = ring_sync(x, v, lb, k.proto);
	if (err)
		return err;
	/* The ring is in place before the VIP: no packet finds a VIP without a table. */
	if (v->val.mode != mode) {
		bool changed = v->val.mode != 0xff;

		v->val.mode = mode;
		if (bpf_map_update_elem(bpf_map__fd(x->skel->maps.vips), &k, &v->val, BPF_ANY)) {
			v->val.mode = 0xff;
			log_error("msg=\"cannot write XDP VIP\" lb=%s err=\"%s\"", lb->uuid,
				  strerror(errno));
			return -errno;
		}
		/* After the write, so that flows looking the VIP up again find the new mode. */
		if (changed)
			return vip_gen_bump(x, v->val.vip_id);
	}
	return 0;
}

static int vip_remove(struct xdp_plane *x, struct xdp_vip *v)
{
	__u32 id = v->val.vip_id;

	if (bpf_map_delete_elem(bpf_map__fd(x->skel->maps.vips), &v->key) && errno != ENOENT) {
		log_error("msg=\"cannot delete XDP VIP\" vip_id=%u err=\"%s\"", id, strerror(errno));
		return -errno;
	}
	bpf_map_delete_elem(bpf_map__fd(x->skel->maps.rings), &id);
	if (vip_gen_bump(x, id))
		return -EIO;
	memset(v, 0, sizeof(*v));
	return 0;
}

static int port_filter_sync(struct xdp_plane *x)
{
	struct vipd_port_filter pf;
	__u32 zero = 0;
	int fd = bpf_map__fd(x->skel->maps.port_filter);

	/* rev[] belongs to the program: read it back so that this write keeps its bits. */
	if (bpf_map_lookup_elem(fd, &zero, &pf))
		return -errno;
	memset(pf.vip, 0, sizeof(pf.vip));
	for (size_t i = 0; i < VIPD_MAX_VIPS; i++) {
		if (x->vips[i].used) {
			unsigned p = ntohs(x->vips[i].key.port);

			pf.vip[p / 32] |= 1u << (p % 32);
		}
	}
	if (memcmp(pf.vip, x->pf.vip, sizeof(pf.vip)) == 0)
		return 0;
	/*
	 * The program may set a rev[] bit between the read above and the write below, which this
	 * write would undo; the bits it sets are backend ports, so set all of those here too.
	 */
	for (__u32 i = 0; i < VIPD_MAX_BACKENDS; i++) {
		if (x->backends[i].val.family) {
			unsigned p = ntohs(x->backends[i].val.port);

			pf.rev[p / 32] |= 1u << (p % 32);
		}
	}
	if (bpf_map_update_elem(fd, &zero, &pf, BPF_ANY)) {
		log_error("msg=\"cannot write XDP port filter\" err=\"%s\"", strerror(errno));
		return -errno;
	}
	x->pf = pf;
	return 0;
}

/* The kernel's route to backend b at address a, asked again after XDP_ROUTE_TTL_S; NULL if none. */
static const struct route_info *route_lookup(struct xdp_backend *b, const struct ip_addr *a,
					     time_t now)
{
	if (b->route_at && now - b->route_at < XDP_ROUTE_TTL_S)
		return b->route.oif ? &b->route : NULL;
	b->route_at = now;
	if (route_get(a, &b->route)) {
		char ip[IP_ADDR_STRLEN];

		log_warn("msg=\"no route to backend\" backend=%s", ip_addr_str(a, ip));
		memset(&b->route, 0, sizeof(b->route));
		return NULL;
	}
	/* bpf_fib_lookup only sees resolved neighbours: have the kernel resolve the next hop. */
	route_neigh_probe(b->route.oif, ip_addr_is_set(&b->route.via) ? &b->route.via : a);
	return &b->route;
}

static struct xdp_iface *iface_find(struct xdp_plane *x, int ifindex)
{
	for (size_t i = 0; i < x->n_ifaces; i++)
		if (x->ifaces[i].ifindex == ifindex)
			return &x->ifaces[i];
	return NULL;
}

/*
 * For every backend still in use: attach to the interface its packets (and replies) use and
 * record the node's address there, which FULLNAT puts as the source.
 */
static int egress_sync(struct xdp_plane *x)
{
	int fd = bpf_map__fd(x->skel->maps.snat_addrs), err = 0;
	time_t now = time(NULL);
	struct vipd_snat_addr want[XDP_MAX_IFACES];

	memset(want, 0, sizeof(want));
	for (__u32 i = 0; i < VIPD_MAX_BACKENDS; i++) {
		struct xdp_backend *b = &x->backends[i];
		const struct route_info *ri;
		struct xdp_iface *ifc;
		struct ip_addr a = { 0 };

		if (!b->val.family || b->retired)
			continue;
		a.family = b->val.family == VIPD_FAMILY_V4 ? AF_INET : AF_INET6;
		memcpy(a.bytes, b->val.addr, ip_addr_len(&a));
		ri = route_lookup(b, &a, now);
		if (!ri || ri->local)
			continue;
		/* Native where the driver has it, whatever the adapter's mode: --dataplane
		 * auto's rule is about the adapter, where VIP traffic arrives. */
		if (attach_iface(x, ri->oif, XDP_PLANE_ANY)) {
			err = -EIO;
			continue;
		}
		ifc = iface_find(x, ri->oif);
		if (!ip_addr_is_set(&ri->src))
			continue;
		if (a.family == AF_INET)
			memcpy(want[ifc - x->ifaces].v4, ri->src.bytes, 4);
		else
			memcpy(want[ifc - x->ifaces].v6, ri->src.bytes, 16);
	}
	for (size_t i = 0; i < x->n_ifaces; i++) {
		struct xdp_iface *ifc = &x->ifaces[i];
		__u32 key = (__u32)ifc->ifindex;

		if (ifc->snat_written && memcmp(&ifc->snat, &want[i], sizeof(want[i])) == 0)
			continue;
		if (bpf_map_update_elem(fd, &key, &want[i], BPF_ANY)) {
			log_error("msg=\"cannot write XDP source address\" err=\"%s\"", strerror(errno));
			err = -errno;
			continue;
		}
		ifc->snat = want[i];
		ifc->snat_written = true;
	}
	return err;
}

static int xdp_sync(struct dataplane *dp, const struct model *m)
{
	struct xdp_plane *x = (struct xdp_plane *)dp;
	size_t unsupported = 0, local = 0;
	int err = 0, e;

	for (size_t i = 0; i < VIPD_MAX_VIPS; i++)
		x->vips[i].seen = false;
	for (__u32 i = 0; i < VIPD_MAX_BACKENDS; i++)
		x->backends[i].seen = false;
	for (size_t i = 0; i < model_count(m); i++) {
		const struct lb *lb = model_at(m, i);

		if (lb->status != LB_STATUS_ACTIVE || !ip_addr_is_set(&lb->vip))
			continue;
		if (lb->forwarding == LB_FWD_TUNNEL) {
			unsupported++;
			continue;
		}
		for (size_t j = 0; j < lb->n_backends; j++)
			local += lb->backends[j].type == BACKEND_LOCAL;
		e = vip_sync(x, lb);
		if (e && !err)
			err = e;
	}
	if (unsupported != x->unsupported && unsupported)
		log_warn("msg=\"load balancers with forwarding tunnel are not served by the XDP "
			 "plane (fullnat, nat and dsr are)\" count=%zu",
			 unsupported);
	x->unsupported = unsupported;
	if (local != x->local_backends && local)
		log_warn("msg=\"backends of type LOCAL are left out by the XDP plane: it forwards to "
			 "addresses, it does not hand packets to this node's own services\" count=%zu",
			 local);
	x->local_backends = local;
	/* Backends no load balancer has now (removed, or their VIP gone) keep their flows. */
	for (__u32 i = 0; i < VIPD_MAX_BACKENDS; i++)
		if (x->backends[i].val.family && !x->backends[i].seen)
			x->backends[i].retired = true;
	for (size_t i = 0; i < VIPD_MAX_VIPS; i++) {
		if (x->vips[i].used && !x->vips[i].seen) {
			e = vip_remove(x, &x->vips[i]);
			if (e && !err)
				err = e;
		}
	}
	e = port_filter_sync(x);
	if (e && !err)
		err = e;
	e = egress_sync(x);
	if (e && !err)
		err = e;
	return err;
}

/* Sums one per-CPU stats entry (vip_stats or backend_stats) into out. */
static int stats_read(struct xdp_plane *x, int fd, __u32 id, struct dataplane_stats *out)
{
	struct vipd_stats *s = calloc((size_t)x->ncpus, sizeof(*s));
	int err = 0;

	if (!s)
		return -ENOMEM;
	memset(out, 0, sizeof(*out));
	if (bpf_map_lookup_elem(fd, &id, s)) {
		err = -errno;
	} else {
		for (int c = 0; c < x->ncpus; c++) {
			out->packets += s[c].packets + s[c].reply_packets;
			out->bytes += s[c].bytes + s[c].reply_bytes;
			out->connections += s[c].conns;
		}
	}
	free(s);
	return err;
}

/*
 * A flow counts as active while it is open and was seen within these windows. IPVS keeps idle
 * entries for 900 s (TCP) and 300 s (UDP); the count here is what a drain is watched by, so it
 * should fall soon after the last real traffic. A drain reports done after its own timeout
 * (300 s by default) whatever the count says, so a longer TCP window would never show; a UDP
 * flow has no close to see, and 30 s of silence is taken as its end (request/response
 * exchanges are long over by then, streams send more often).
 */
#define XDP_ACTIVE_IDLE_TCP_NS (300ull * 1000000000)
#define XDP_ACTIVE_IDLE_UDP_NS (30ull * 1000000000)
/*
 * One walk of conns answers every stats call for this long: GET /loadbalancers asks for each
 * backend of each load balancer, and a walk of a full conns takes tens of milliseconds.
 */
#define XDP_ACTIVE_CACHE_NS 1000000000ull
/* Flows per batch lookup; must exceed the longest hash bucket, or the kernel says ENOSPC. */
#define XDP_WALK_CHUNK 4096
/* The kernel's ENOTSUPP, which libc has no name for: a map type without batch lookups. */
#define XDP_ENOTSUPP 524

/*
 * Whether flow k (value c) is open and recent; gen: vip_gen as read before the walk, now:
 * CLOCK_MONOTONIC_COARSE, the program's clock.
 *
 * Only the client's side of a flow is looked at. The reply side (rev's flags, NAT and FULLNAT)
 * would catch a backend's RST that the client never answers, but its FIN/RST mark outlives
 * the connection: a client reusing its port sends a SYN that clears conns' flags, while the
 * backend's SYN-ACK leaves rev's flags as they were, so the new, live connection would count
 * as closed and a drain would look finished with a connection still open. Erring the other
 * way costs at most the idle window (and reading rev would take a second walk).
 */
static bool flow_active(const struct xdp_plane *x, const __u32 *gen, __u64 now,
			const struct vipd_flow *k, const struct vipd_conn *c)
{
	__u64 idle = k->proto == IPPROTO_TCP ? XDP_ACTIVE_IDLE_TCP_NS : XDP_ACTIVE_IDLE_UDP_NS;

	/*
	 * An older generation: the VIP was removed (its id may be another VIP's now), or it
	 * changed mode and the flow has sent nothing since.
	 */
	if (c->vip_id >= VIPD_MAX_VIPS || !x->vips[c->vip_id].used || c->gen != gen[c->vip_id])
		return false;
	/* As IPVS's ActiveConn: a handshake never completed (a SYN flood) is no connection. */
	if (k->proto == IPPROTO_TCP &&
	    (c->flags & VIPD_CONN_F_CLOSING || !(c->flags & VIPD_CONN_F_ESTABLISHED)))
		return false;
	return c->last_seen_ns >= now || now - c->last_seen_ns < idle;
}

static void flow_count(struct xdp_plane *x, const __u32 *gen, __u64 now,
		       const struct vipd_flow *k, const struct vipd_conn *c)
{
	const struct vipd_backend *b;
	const struct xdp_backend *xb;

	if (!flow_active(x, gen, now, k, c))
		return;
	x->active_vip[c->vip_id]++;
	if (c->backend_id >= VIPD_MAX_BACKENDS)
		return;
	xb = &x->backends[c->backend_id];
	b = &xb->val;
	/*
	 * Not a failed backend's (its flows leave it on their next packet), nor a reused id's,
	 * nor one left from before the backend last came back: while it was down its flows
	 * moved on, and one that stayed silent since was most likely reset by the backend
	 * failing (a reset from the backend is not seen on the client's side).
	 */
	if (b->family && b->vip_id == c->vip_id && b->flags & VIPD_BACKEND_F_ALIVE &&
	    c->last_seen_ns >= xb->alive_since_ns)
		x->active_bk[c->backend_id]++;
}

static void active_clear(struct xdp_plane *x)
{
	memset(x->active_bk, 0, sizeof(x->active_bk));
	memset(x->active_vip, 0, sizeof(x->active_vip));
}

/* Counts the flows of conns (fd) through batch lookups. 0 or -errno. */
static int conns_walk_batch(struct xdp_plane *x, int fd, const __u32 *gen, __u64 now)
{
	struct vipd_flow *keys = calloc(XDP_WALK_CHUNK, sizeof(*keys));
	struct vipd_conn *vals = calloc(XDP_WALK_CHUNK, sizeof(*vals));
	struct vipd_flow pos[2]; /* opaque positions in and out, never larger than a key */
	void *in = NULL;
	int err = -ENOMEM;

	/* Ends: the kernel moves on by at least one bucket per call and says ENOENT at the last. */
	while (keys && vals) {
		__u32 n = XDP_WALK_CHUNK;

		err = bpf_map_lookup_batch(fd, in, &pos[1], keys, vals, &n, NULL);
		if (err && err != -ENOENT)
			break;
		for (__u32 i = 0; i < n; i++)
			flow_count(x, gen, now, &keys[i], &vals[i]);
		if (err) {
			err = 0;
			break;
		}
		pos[0] = pos[1];
		in = &pos[0];
	}
	free(keys);
	free(vals);
	return err;
}

/* The same key by key, for kernels without batch lookups. 0 or -errno. */
static int conns_walk_keys(struct xdp_plane *x, int fd, const __u32 *gen, __u64 now)
{
	__u32 max = bpf_map__max_entries(x->skel->maps.conns);
	struct vipd_flow key, next, *prev = NULL;
	struct vipd_conn c;
	int err;

	/* Bounded: when the key in hand is evicted, get_next_key starts over from the first. */
	for (__u32 i = 0; i < max; i++) {
		err = bpf_map_get_next_key(fd, prev, &next);
		if (err)
			return err == -ENOENT ? 0 : err;
		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(fd, &key, &c) == 0)
			flow_count(x, gen, now, &key, &c);
	}
	return 0;
}

/*
 * Active flows per backend and per VIP (active_bk, active_vip) from one walk of conns, done
 * when stats are asked for and at most once per XDP_ACTIVE_CACHE_NS after the last one. The
 * walk races the program: a flow evicted or moved meanwhile may be missed or counted twice.
 * not_before: CLOCK_MONOTONIC ns; a walk older than that is redone. 0 or -errno (logged).
 */
static int active_refresh(struct xdp_plane *x, uint64_t not_before)
{
	int fd = bpf_map__fd(x->skel->maps.conns), gfd = bpf_map__fd(x->skel->maps.vip_gen);
	uint64_t start = clock_ns(CLOCK_MONOTONIC);
	__u32 gen[VIPD_MAX_VIPS] = { 0 };
	__u64 now;
	int err = 0;

	if (x->active_at && x->active_at >= not_before && start - x->active_at < XDP_ACTIVE_CACHE_NS)
		return x->active_err;
	active_clear(x);
	for (__u32 i = 0; i < VIPD_MAX_VIPS && !err; i++)
		if (x->vips[i].used && bpf_map_lookup_elem(gfd, &i, &gen[i]))
			err = -errno;
	now = clock_ns(CLOCK_MONOTONIC_COARSE);
	if (!err && !x->active_no_batch) {
		err = conns_walk_batch(x, fd, gen, now);
		if (err == -EINVAL || err == -EOPNOTSUPP || err == -XDP_ENOTSUPP) {
			log_info("msg=\"no batch lookup on conns; counting active connections key by "
				 "key\" err=%d",
				 err);
			x->active_no_batch = true;
			active_clear(x);
			err = 0;
		}
	}
	if (!err && x->active_no_batch)
		err = conns_walk_keys(x, fd, gen, now);
	if (err) {
		active_clear(x);
		if (err != x->active_err)
			log_warn("msg=\"cannot count active connections\" err=\"%s\"", strerror(-err));
	}
	x->active_err = err;
	/* From the end: a slow walk (key by key, ~1 s when full) must not run back to back. */
	x->active_at = clock_ns(CLOCK_MONOTONIC);
	log_debug("msg=\"active connections counted\" walk_us=%llu",
		  (unsigned long long)(x->active_at - start) / 1000);
	return err;
}

static struct xdp_vip *vip_of_lb(struct xdp_plane *x, const struct lb *lb)
{
	struct vipd_vip_key k;

	if (!ip_addr_is_set(&lb->vip))
		return NULL;
	vip_key_from_lb(lb, &k);
	return vip_find(x, &k);
}

static int xdp_backend_stats(struct dataplane *dp, const struct lb *lb, const struct backend *b,
			     struct dataplane_stats *out)
{
	struct xdp_plane *x = (struct xdp_plane *)dp;
	struct xdp_vip *v = vip_of_lb(x, lb);
	__u32 id;
	int err;

	if (!v || backend_find(x, v->val.vip_id, b, &id))
		return -ENOENT;
	err = stats_read(x, bpf_map__fd(x->skel->maps.backend_stats), id, out);
	/* No count rather than a 0 that would tell a drain watcher the backend is idle; and
	 * none taken before the drain began, which says nothing about it. */
	if (!err)
		err = active_refresh(x, b->drained ? (uint64_t)(b->drain_since * 1e9) : 0);
	if (!err)
		out->active_connections = x->active_bk[id];
	return err;
}

static int xdp_lb_stats(struct dataplane *dp, const struct lb *lb, struct dataplane_stats *out)
{
	struct xdp_plane *x = (struct xdp_plane *)dp;
	struct xdp_vip *v = vip_of_lb(x, lb);
	int err;

	if (!v)
		return -ENOENT;
	err = stats_read(x, bpf_map__fd(x->skel->maps.vip_stats), v->val.vip_id, out);
	if (!err)
		err = active_refresh(x, 0);
	if (!err)
		out->active_connections = x->active_vip[v->val.vip_id];
	return err;
}

static int detach_all(void)
{
	struct if_nameindex *ifs = if_nameindex(), *i;
	int err = 0;

	if (!ifs)
		return -errno;
	for (i = ifs; i->if_index; i++) {
		char name[BPF_OBJ_NAME_LEN];
		__u32 id, mode;
		LIBBPF_OPTS(bpf_xdp_attach_opts, o);
		int fd;

		if (attached_prog((int)i->if_index, &id, name, &mode) ||
		    strcmp(name, XDP_PROG_NAME) != 0)
			continue;
		fd = bpf_prog_get_fd_by_id(id);
		if (fd < 0)
			continue;
		o.old_prog_fd = fd;
		if (bpf_xdp_detach((int)i->if_index, mode | XDP_FLAGS_REPLACE, &o)) {
			log_error("msg=\"cannot detach XDP program\" iface=%s err=\"%s\"", i->if_name,
				  strerror(errno));
			err = -errno;
		} else {
			log_info("msg=\"XDP program detached\" iface=%s", i->if_name);
		}
		close(fd);
	}
	if_freenameindex(ifs);
	return err;
}

static int unpin_all(const char *dir)
{
	char path[PATH_MAX];
	const char *extra[] = { "prog" };

	for (size_t i = 0; i < sizeof(xdp_persistent_maps) / sizeof(xdp_persistent_maps[0]); i++)
		if (!pin_path(path, sizeof(path), dir, xdp_persistent_maps[i]))
			unlink(path);
	if (!pin_path(path, sizeof(path), dir, extra[0]))
		unlink(path);
	if (rmdir(dir) && errno != ENOENT) {
		log_error("msg=\"cannot remove bpf pin dir\" dir=%s err=\"%s\"", dir, strerror(errno));
		return -errno;
	}
	return 0;
}

static void xdp_free(struct dataplane *dp)
{
	struct xdp_plane *x = (struct xdp_plane *)dp;

	if (!x)
		return;
	vipd_bpf__destroy(x->skel);
	free(x->pin_dir);
	free(x->table);
	free(x->ring_keys);
	free(x->ring_vals);
	free(x->mb);
	free(x->mb_ids);
	free(x);
}

static const struct dataplane_ops xdp_ops = {
	.name = "xdp",
	.sync = xdp_sync,
	.backend_stats = xdp_backend_stats,
	.lb_stats = xdp_lb_stats,
	.cleanup = NULL, /* the program keeps forwarding across restarts; --xdp-unload */
	.free = xdp_free,
};

/* The kernel must forward for bpf_fib_lookup() to answer. */
static int forwarding_sysctls(void)
{
	int err = sysctl_set("/proc/sys/net/ipv4/ip_forward", "1");

	return err ? err : sysctl_set("/proc/sys/net/ipv6/conf/all/forwarding", "1");
}

/* Takes the program off the adapter again where this start put it on a free interface. */
static void unattach_adapter(struct xdp_plane *x)
{
	LIBBPF_OPTS(bpf_xdp_attach_opts, o);
	char ifn[IF_NAMESIZE];

	if (!x->n_ifaces || !x->ifaces[0].fresh)
		return;
	o.old_prog_fd = bpf_program__fd(x->skel->progs.vipd_xdp);
	if (bpf_xdp_detach(x->adapter, x->ifaces[0].mode | XDP_FLAGS_REPLACE, &o))
		log_error("msg=\"cannot detach XDP program after a failed start\" iface=%s err=\"%s\"",
			  ifname(x->adapter, ifn), strerror(errno));
	x->n_ifaces = 0;
}

int xdp_plane_new(const struct xdp_options *opt, struct dataplane **out)
{
	struct xdp_plane *x;
	size_t adopted = 0;
	int err;

	libbpf_set_print(libbpf_log);
	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->dp.ops = &xdp_ops;
	x->adapter = opt->adapter ? (int)if_nametoindex(opt->adapter) : 0;
	if (!x->adapter) {
		log_error("msg=\"--dataplane xdp needs --adapter naming an interface\" adapter=%s",
			  opt->adapter ? opt->adapter : "(none)");
		free(x);
		return -ENODEV;
	}
	x->ncpus = libbpf_num_possible_cpus();
	x->pin_dir = strdup(opt->pin_dir);
	x->table = calloc(VIPD_RING_SIZE, sizeof(*x->table));
	x->ring_keys = calloc(VIPD_RING_SIZE, sizeof(*x->ring_keys));
	x->ring_vals = calloc(VIPD_RING_SIZE, sizeof(*x->ring_vals));
	if (x->ncpus <= 0 || !x->pin_dir || !x->table || !x->ring_keys || !x->ring_vals) {
		err = x->ncpus < 0 ? x->ncpus : -ENOMEM;
		goto fail;
	}
	for (__u32 i = 0; i < VIPD_RING_SIZE; i++)
		x->ring_keys[i] = i;
	x->skel = vipd_bpf__open();
	if (!x->skel) {
		err = -errno;
		log_error("msg=\"cannot open the XDP object\" err=\"%s\"", strerror(-err));
		goto fail;
	}
	err = adopt_maps(x, &adopted);
	if (err)
		goto fail;
	err = vipd_bpf__load(x->skel);
	if (err) {
		log_error("msg=\"cannot load the XDP program (kernel too old, or no BPF "
			  "privileges?)\" err=\"%s\"",
			  strerror(-err));
		goto fail;
	}
	err = load_mirror(x);
	if (err)
		goto fail;
	/*
	 * Attached before anything is set or pinned: XDP_PLANE_NATIVE learns here whether the
	 * adapter runs XDP natively, and a no must leave the host as it was (--dataplane auto
	 * goes on to another plane). The sysctls follow within microseconds; on a restart they
	 * are set already.
	 */
	err = attach_iface(x, x->adapter, opt->mode);
	if (!err)
		err = forwarding_sysctls();
	if (!err)
		err = pin_dir_prepare(x->pin_dir);
	if (!err)
		err = pin_all(x);
	if (err) {
		unattach_adapter(x);
		goto fail;
	}
	log_info("msg=\"XDP plane ready\" pin_dir=%s maps_adopted=%zu", x->pin_dir, adopted);
	*out = &x->dp;
	return 0;
fail:
	xdp_free(&x->dp);
	return err;
}

bool xdp_plane_native(const struct dataplane *dp)
{
	const struct xdp_plane *x = (const struct xdp_plane *)dp;

	return x->n_ifaces && x->ifaces[0].mode == XDP_FLAGS_DRV_MODE;
}

int xdp_plane_remove(const struct xdp_options *opt)
{
	int err = detach_all(), e = unpin_all(opt->pin_dir);

	return err ? err : e;
}
