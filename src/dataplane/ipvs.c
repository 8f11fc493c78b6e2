#include "dataplane/ipvs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/ip_vs.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dataplane/fullnat.h"
#include "dataplane/ipvs_msg.h"
#include "log.h"
#include "model.h"
#include "util.h"

#define IPVS_OWNED_FILE "ipvs-services"
/*
 * Changes go out in batches, one send() each, and only the last message of a batch asks for
 * an acknowledgement; failures are answered anyway. A batch is bounded so that even all its
 * error answers fit the socket's receive buffer.
 */
#define IPVS_BATCH_MSGS 128
#define IPVS_BATCH_BYTES (IPVS_BATCH_MSGS * 256)
/* The kernel fills dump datagrams up to 32 KiB when the reader offers that much. */
#define IPVS_RECV_BYTES 65536
#define IPVS_RX_SLOTS 4 /* datagrams taken per receive call */
#define IPVS_RCVBUF (1 << 20)
#define IPVS_TIMEOUT_S 5
/* Counters are read from a dump at most this often; a status page asks per backend. */
#define IPVS_STATS_TTL_S 1.0
#define IPVS_ERRORS_LOGGED 8
/* The flags IPVS keeps for itself and reports back (the entry is in its hash table). */
#define IPVS_SVC_F_KERNEL IP_VS_SVC_F_HASHED
/* The mh scheduler's flags (ipvsadm's mh-fallback, mh-port); the uapi header names only sh's. */
#define IPVS_SVC_F_MH_FALLBACK IP_VS_SVC_F_SCHED1
#define IPVS_SVC_F_MH_PORT IP_VS_SVC_F_SCHED2

/* Open-addressing index from a service key to a position in an array whose elements start
 * with that key. */
struct keyindex {
	uint32_t *slots; /* position + 1; 0: empty */
	size_t cap;      /* a power of two, more than twice the entries */
};

struct keyset {
	struct ipvs_service_key *keys;
	size_t n, cap;
	struct keyindex idx;
};

/* A service as the kernel holds it, with its destinations sorted when they were read. */
struct kservice {
	struct ipvs_service s; /* first: keyed by s.key */
	struct ipvs_dest *dests;
	size_t n_dests, cap_dests;
};

struct kview {
	struct kservice *svcs;
	size_t n, cap;
	struct keyindex idx;
	double at; /* monotonic_s() of the read; 0: stale */
};

/* A change in flight: what to log, and what to record when the kernel answers. */
struct pending {
	uint8_t cmd;
	struct ipvs_service_key key;
	struct ip_addr dest;
	uint16_t dport;
	char sched[IPVS_SCHED_MAX];
	bool failed;
};

struct ipvs_plane {
	struct dataplane dp;
	struct nl_sock *sk;
	int fd;
	uint16_t family;
	uint32_t seq;
	bool dirty; /* a reply may still be queued from a request that timed out */
	bool cleanup_on_exit;
	char *state_dir;
	char *owned_path;
	struct keyset owned;     /* services vipd created */
	struct keyset conflicts; /* model keys held by foreign services, as last logged */
	struct kview view;
	size_t messages, dumps;
	char *rbuf;
	/* the batch being filled */
	char *batch;
	size_t batch_len;
	size_t last_off; /* where its last message starts */
	struct pending pend[IPVS_BATCH_MSGS];
	size_t n_pend;
	uint32_t seq0;
	/* one sync's bookkeeping */
	struct keyset want, next_owned, next_conflicts, gone, failed;
	const struct lb **want_lb;
	size_t cap_want_lb;
	bool *matched;
	size_t cap_matched;
	int err;          /* the first failure the kernel reported */
	size_t n_errors;
	size_t local_backends, mixed_backends; /* left out, as last logged */
	/* fullnat's SNAT: the services the table was last written with, and this sync's */
	struct fullnat *fullnat;
	struct keyset fn_have, fn_want, fn_next;
};

/* ---- keys and sets ---- */

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return h;
}

static size_t key_hash(const struct ipvs_service_key *k)
{
	uint64_t h = 1469598103934665603ull;

	h = fnv1a(h, &k->addr.family, sizeof(k->addr.family));
	h = fnv1a(h, k->addr.bytes, ip_addr_len(&k->addr));
	h = fnv1a(h, &k->protocol, sizeof(k->protocol));
	h = fnv1a(h, &k->port, sizeof(k->port));
	return (size_t)(h ^ (h >> 32));
}

static bool key_equal(const struct ipvs_service_key *a, const struct ipvs_service_key *b)
{
	return a->protocol == b->protocol && a->port == b->port && ip_addr_equal(&a->addr, &b->addr);
}

static const char *key_str(const struct ipvs_service_key *k, char buf[IPVS_KEY_STRLEN])
{
	char ip[IP_ADDR_STRLEN];

	snprintf(buf, IPVS_KEY_STRLEN, k->addr.family == AF_INET6 ? "%s/[%s]:%u" : "%s/%s:%u",
		 k->protocol == IPPROTO_UDP ? "udp" : "tcp", ip_addr_str(&k->addr, ip), k->port);
	return buf;
}

static const struct ipvs_service_key *key_at(const void *base, size_t stride, size_t i)
{
	return (const struct ipvs_service_key *)((const char *)base + i * stride);
}

static void ki_put(struct keyindex *ix, const void *base, size_t stride, size_t pos)
{
	size_t i = key_hash(key_at(base, stride, pos)) & (ix->cap - 1);

	while (ix->slots[i])
		i = (i + 1) & (ix->cap - 1);
	ix->slots[i] = (uint32_t)pos + 1;
}

/* Makes room for n entries (rebuilding from base[0..have)). 0 or -ENOMEM. */
static int ki_reserve(struct keyindex *ix, const void *base, size_t stride, size_t have,
		      size_t n)
{
	size_t cap = ix->cap ? ix->cap : 64;
	uint32_t *slots;

	if (2 * n < ix->cap)
		return 0;
	while (2 * n >= cap)
		cap *= 2;
	slots = calloc(cap, sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	free(ix->slots);
	ix->slots = slots;
	ix->cap = cap;
	for (size_t i = 0; i < have; i++)
		ki_put(ix, base, stride, i);
	return 0;
}

static long ki_find(const struct keyindex *ix, const void *base, size_t stride,
		    const struct ipvs_service_key *k)
{
	size_t i;

	if (!ix->cap)
		return -1;
	for (i = key_hash(k) & (ix->cap - 1); ix->slots[i]; i = (i + 1) & (ix->cap - 1))
		if (key_equal(key_at(base, stride, ix->slots[i] - 1), k))
			return (long)ix->slots[i] - 1;
	return -1;
}

static void ki_clear(struct keyindex *ix)
{
	if (ix->cap)
		memset(ix->slots, 0, ix->cap * sizeof(*ix->slots));
}

static long ks_find(const struct keyset *s, const struct ipvs_service_key *k)
{
	return ki_find(&s->idx, s->keys, sizeof(*s->keys), k);
}

static bool ks_has(const struct keyset *s, const struct ipvs_service_key *k)
{
	return ks_find(s, k) >= 0;
}

/* Adds k unless present. 0 or -ENOMEM. */
static int ks_add(struct keyset *s, const struct ipvs_service_key *k)
{
	struct ipvs_service_key *keys;

	if (ks_has(s, k))
		return 0;
	keys = array_grow(s->keys, &s->cap, s->n, sizeof(*s->keys), 64);
	if (!keys)
		return -ENOMEM;
	s->keys = keys;
	if (ki_reserve(&s->idx, s->keys, sizeof(*s->keys), s->n, s->n + 1))
		return -ENOMEM;
	s->keys[s->n] = *k;
	ki_put(&s->idx, s->keys, sizeof(*s->keys), s->n++);
	return 0;
}

static void ks_reset(struct keyset *s)
{
	s->n = 0;
	ki_clear(&s->idx);
}

static bool ks_same(const struct keyset *a, const struct keyset *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (!ks_has(b, &a->keys[i]))
			return false;
	return true;
}

static void ks_swap(struct keyset *a, struct keyset *b)
{
	struct keyset t = *a;

	*a = *b;
	*b = t;
}

static void ks_free(struct keyset *s)
{
	free(s->keys);
	free(s->idx.slots);
}

/* ---- the model as IPVS sees it ---- */

static const char *const ipvs_sched_names[] = {
	[LB_SCHED_MH] = "mh", [LB_SCHED_RR] = "rr", [LB_SCHED_WRR] = "wrr",
	[LB_SCHED_LC] = "lc", [LB_SCHED_WLC] = "wlc", [LB_SCHED_SH] = "sh",
	[LB_SCHED_DH] = "dh",
};

static void key_of_lb(const struct lb *lb, struct ipvs_service_key *k)
{
	memset(k, 0, sizeof(*k));
	k->addr = lb->vip;
	k->protocol = lb->protocol == LB_PROTO_UDP ? IPPROTO_UDP : IPPROTO_TCP;
	k->port = lb->port;
}

static void service_of_lb(const struct lb *lb, struct ipvs_service *s)
{
	memset(s, 0, sizeof(*s));
	key_of_lb(lb, &s->key);
	snprintf(s->sched, sizeof(s->sched), "%s", ipvs_sched_names[lb->scheduler]);
	/* IPVS counts persistence in seconds: round up so a client sticks at least as asked. */
	s->timeout = lb->persistence_ms / 1000 + (lb->persistence_ms % 1000 != 0);
	s->flags = s->timeout ? IP_VS_SVC_F_PERSISTENT : 0;
	/* Like the XDP plane's Maglev: hash the flow, not only the client address (mh-port), and
	 * let a flow whose backend has weight 0 (drained, failed) take the next one instead of
	 * failing (mh-fallback). sh keeps client affinity but gets the same fallback. */
	if (lb->scheduler == LB_SCHED_MH)
		s->flags |= IPVS_SVC_F_MH_FALLBACK | IPVS_SVC_F_MH_PORT;
	else if (lb->scheduler == LB_SCHED_SH)
		s->flags |= IP_VS_SVC_F_SCHED_SH_FALLBACK;
	/* One client address per template: a /32 (IPv4, as a mask) or a /128 (IPv6, a length). */
	s->netmask = lb->vip.family == AF_INET6 ? 128 : 0xffffffffu;
}

static uint32_t fwd_of_lb(const struct lb *lb)
{
	switch (lb->forwarding) {
	case LB_FWD_DSR:
		return IP_VS_CONN_F_DROUTE;
	case LB_FWD_TUNNEL:
		return IP_VS_CONN_F_TUNNEL;
	default: /* nat, and fullnat whose source rewrite is fullnat.c's nftables table */
		return IP_VS_CONN_F_MASQ;
	}
}

static void dest_of_backend(const struct lb *lb, const struct backend *b, struct ipvs_dest *d)
{
	memset(d, 0, sizeof(*d));
	d->addr = b->ip;
	d->port = b->port;
	d->fwd = fwd_of_lb(lb);
	d->weight = backend_effective_weight(lb, b);
	d->tun_type = IP_VS_CONN_F_TUNNEL_TYPE_IPIP;
}

/* Backends IPVS can take: not LOCAL, and of the VIP's family unless tunnelled. */
static bool backend_usable(const struct lb *lb, const struct backend *b)
{
	return b->type != BACKEND_LOCAL &&
	       (b->ip.family == lb->vip.family || lb->forwarding == LB_FWD_TUNNEL);
}

static bool service_differs(const struct ipvs_service *have, const struct ipvs_service *want)
{
	return strcmp(have->sched, want->sched) != 0 ||
	       (have->flags & ~IPVS_SVC_F_KERNEL) != want->flags ||
	       have->timeout != want->timeout || have->netmask != want->netmask;
}

static bool dest_differs(const struct ipvs_dest *have, const struct ipvs_dest *want)
{
	return (have->fwd & IP_VS_CONN_F_FWD_MASK) != want->fwd || have->weight != want->weight ||
	       have->u_thresh != want->u_thresh || have->l_thresh != want->l_thresh ||
	       (want->fwd == IP_VS_CONN_F_TUNNEL && have->tun_type != want->tun_type);
}

static int dest_cmp(const struct ip_addr *a, uint16_t aport, const struct ipvs_dest *b)
{
	int c = ip_addr_cmp(a, &b->addr);

	return c ? c : (int)aport - (int)b->port;
}

static int dest_sort_cmp(const void *a, const void *b)
{
	const struct ipvs_dest *x = a;

	return dest_cmp(&x->addr, x->port, b);
}

static long dest_find(const struct kservice *ks, const struct ip_addr *a, uint16_t port)
{
	size_t lo = 0, hi = ks->n_dests;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = dest_cmp(a, port, &ks->dests[mid]);

		if (!c)
			return (long)mid;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return -1;
}

/* ---- talking to the kernel ---- */

struct rx {
	struct ipvs_plane *x;
	const struct ipvs_reply_ops *ops;
	int dest_af;         /* for a dest dump: the service's family */
	bool is_dump;        /* ends with NLMSG_DONE; else with the answer to seq */
	uint32_t seq;        /* the dump's, or the last message of the batch */
	struct kservice *ks; /* whose destinations a dest dump fills */
	bool done;           /* the batch's last message was answered */
};

/*
 * Receives what is queued, waiting for the first datagram only: recvmmsg takes a dump's
 * entries and its NLMSG_DONE (queued by the kernel while the entries are read) in one call.
 */
static int rx_recv(struct ipvs_plane *x, struct mmsghdr *mm, int flags)
{
	struct iovec iov[IPVS_RX_SLOTS];
	int n;

	memset(mm, 0, IPVS_RX_SLOTS * sizeof(*mm));
	for (int i = 0; i < IPVS_RX_SLOTS; i++) {
		iov[i].iov_base = x->rbuf + (size_t)i * IPVS_RECV_BYTES;
		iov[i].iov_len = IPVS_RECV_BYTES;
		mm[i].msg_hdr.msg_iov = &iov[i];
		mm[i].msg_hdr.msg_iovlen = 1;
	}
	do
		n = recvmmsg(x->fd, mm, IPVS_RX_SLOTS, flags | MSG_WAITFORONE, NULL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
	for (int i = 0; i < n; i++)
		if (mm[i].msg_hdr.msg_flags & MSG_TRUNC)
			return -EMSGSIZE;
	return n;
}

/* One receive, walked: 1 when the dump or batch is complete, 0 for more, or -errno. */
static int rx_round(struct rx *rx)
{
	struct ipvs_plane *x = rx->x;
	struct mmsghdr mm[IPVS_RX_SLOTS];
	int n = rx_recv(x, mm, 0);

	for (int i = 0; i < n; i++) {
		int r = ipvs_reply_parse(x->rbuf + (size_t)i * IPVS_RECV_BYTES, mm[i].msg_len,
					 x->family, rx->dest_af, rx->ops, rx);

		if (r < 0)
			return r;
		/* A batch skips the end of a dump given up on earlier. */
		if ((rx->is_dump && r == 1) || (!rx->is_dump && rx->done))
			return 1;
	}
	return n < 0 ? n : 0;
}

/* Throws away answers to requests given up on, so they cannot be taken for new ones. */
static void rx_drain(struct ipvs_plane *x)
{
	struct mmsghdr mm[IPVS_RX_SLOTS];

	if (!x->dirty)
		return;
	while (rx_recv(x, mm, MSG_DONTWAIT) > 0)
		;
	x->dirty = false;
}

static int tx(struct ipvs_plane *x, const void *buf, size_t len)
{
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	ssize_t n;

	rx_drain(x);
	do
		n = sendto(x->fd, buf, len, 0, (struct sockaddr *)&kernel, sizeof(kernel));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

/* Sends the dump request req[0..len) and hands its entries to rx's ops. 0 or -errno. */
static int dump(struct ipvs_plane *x, const void *req, size_t len, struct rx *rx)
{
	int err = tx(x, req, len);

	x->dumps++;
	rx->is_dump = true;
	while (!err) {
		err = rx_round(rx);
		if (err == 1)
			return 0;
	}
	x->dirty = true;
	return err;
}

static int rx_service(void *arg, uint32_t seq, const struct ipvs_service *s)
{
	struct rx *rx = arg;
	struct kview *v = &rx->x->view;
	struct kservice *svcs;

	/* Firewall-mark services have no address key: never vipd's, nothing to compare. */
	if (seq != rx->seq || s->fwmark)
		return 0;
	svcs = array_grow(v->svcs, &v->cap, v->n, sizeof(*v->svcs), 64);
	if (!svcs)
		return -ENOMEM;
	v->svcs = svcs;
	v->svcs[v->n++] = (struct kservice){ .s = *s };
	return 0;
}

static int rx_dest(void *arg, uint32_t seq, const struct ipvs_dest *d)
{
	struct rx *rx = arg;
	struct kservice *ks = rx->ks;
	struct ipvs_dest *dests;

	if (seq != rx->seq)
		return 0;
	dests = array_grow(ks->dests, &ks->cap_dests, ks->n_dests, sizeof(*ks->dests), 8);
	if (!dests)
		return -ENOMEM;
	ks->dests = dests;
	ks->dests[ks->n_dests++] = *d;
	return 0;
}

/* A dump answers with an error instead of entries when it cannot run. */
static int rx_dump_ack(void *arg, uint32_t seq, int error)
{
	struct rx *rx = arg;

	return seq == rx->seq && error ? error : 0;
}

static void view_clear(struct kview *v)
{
	for (size_t i = 0; i < v->n; i++)
		free(v->svcs[i].dests);
	v->n = 0;
	v->at = 0;
	ki_clear(&v->idx);
}

static long view_find(const struct kview *v, const struct ipvs_service_key *k)
{
	return ki_find(&v->idx, v->svcs, sizeof(*v->svcs), k);
}

/* Reads every service, and the destinations of vipd's own. 0 or -errno (logged). */
static int view_read(struct ipvs_plane *x)
{
	static const struct ipvs_reply_ops svc_ops = { .service = rx_service, .ack = rx_dump_ack };
	static const struct ipvs_reply_ops dest_ops = { .dest = rx_dest, .ack = rx_dump_ack };
	struct kview *v = &x->view;
	struct rx rx = { .x = x, .ops = &svc_ops };
	char ks[IPVS_KEY_STRLEN], req[256] __attribute__((aligned(NLMSG_ALIGNTO)));
	size_t len = 0;
	int err;

	view_clear(v);
	rx.seq = ++x->seq;
	err = ipvs_msg_dump_services(req, sizeof(req), &len, x->family, rx.seq);
	if (!err)
		err = dump(x, req, len, &rx);
	if (!err)
		err = ki_reserve(&v->idx, v->svcs, sizeof(*v->svcs), 0, v->n);
	if (err) {
		log_error("msg=\"cannot list IPVS services\" err=\"%s\"", strerror(-err));
		view_clear(v);
		return err;
	}
	for (size_t i = 0; i < v->n; i++)
		ki_put(&v->idx, v->svcs, sizeof(*v->svcs), i);
	for (size_t i = 0; i < v->n; i++) {
		struct kservice *k = &v->svcs[i];

		if (!ks_has(&x->owned, &k->s.key))
			continue;
		len = 0;
		rx.seq = ++x->seq;
		rx.ks = k;
		rx.ops = &dest_ops;
		rx.dest_af = k->s.key.addr.family;
		err = ipvs_msg_dump_dests(req, sizeof(req), &len, x->family, rx.seq, &k->s.key);
		if (!err)
			err = dump(x, req, len, &rx);
		/* Gone between the two dumps: nothing left to compare. */
		if (err == -ESRCH) {
			k->n_dests = 0;
			err = 0;
		}
		if (err) {
			log_error("msg=\"cannot list IPVS destinations\" service=%s err=\"%s\"",
				  key_str(&k->s.key, ks), strerror(-err));
			view_clear(v);
			return err;
		}
		qsort(k->dests, k->n_dests, sizeof(*k->dests), dest_sort_cmp);
	}
	v->at = monotonic_s();
	return 0;
}

static void change_failed(struct ipvs_plane *x, const struct pending *p, int error)
{
	char ks[IPVS_KEY_STRLEN], ip[IP_ADDR_STRLEN];
	const char *what;

	/* Deleting what is already gone reached the goal. */
	if (p->cmd == IPVS_CMD_DEL_SERVICE && error == -ESRCH) {
		ks_add(&x->gone, &p->key);
		return;
	}
	/* The service's own failure was reported; its destinations fail with it. */
	if ((p->cmd == IPVS_CMD_NEW_DEST || p->cmd == IPVS_CMD_SET_DEST ||
	     p->cmd == IPVS_CMD_DEL_DEST) && ks_has(&x->failed, &p->key))
		return;
	if (p->cmd == IPVS_CMD_NEW_SERVICE)
		ks_add(&x->failed, &p->key);
	if (!x->err)
		x->err = error;
	if (x->n_errors++ >= IPVS_ERRORS_LOGGED)
		return;
	switch (p->cmd) {
	case IPVS_CMD_NEW_SERVICE: what = "cannot create IPVS service"; break;
	case IPVS_CMD_SET_SERVICE: what = "cannot update IPVS service"; break;
	case IPVS_CMD_DEL_SERVICE: what = "cannot delete IPVS service"; break;
	case IPVS_CMD_NEW_DEST: what = "cannot add IPVS destination"; break;
	case IPVS_CMD_SET_DEST: what = "cannot update IPVS destination"; break;
	default: what = "cannot delete IPVS destination"; break;
	}
	if (p->cmd == IPVS_CMD_NEW_DEST || p->cmd == IPVS_CMD_SET_DEST ||
	    p->cmd == IPVS_CMD_DEL_DEST)
		log_error(p->dest.family == AF_INET6 ?
			  "msg=\"%s\" service=%s dest=[%s]:%u err=\"%s\"" :
			  "msg=\"%s\" service=%s dest=%s:%u err=\"%s\"", what,
			  key_str(&p->key, ks), ip_addr_str(&p->dest, ip), p->dport, strerror(-error));
	else if (error == -ENOENT && p->cmd != IPVS_CMD_DEL_SERVICE)
		log_error("msg=\"%s: the kernel has no such IPVS scheduler (modprobe ip_vs_%s)\" "
			  "service=%s scheduler=%s", what, p->sched, key_str(&p->key, ks), p->sched);
	else
		log_error("msg=\"%s\" service=%s err=\"%s\"", what, key_str(&p->key, ks),
			  strerror(-error));
}

static int rx_batch_ack(void *arg, uint32_t seq, int error)
{
	struct rx *rx = arg;
	struct ipvs_plane *x = rx->x;
	uint32_t i = seq - x->seq0;

	if (i >= x->n_pend)
		return 0;
	if (error) {
		x->pend[i].failed = true;
		change_failed(x, &x->pend[i], error);
	}
	if (seq == rx->seq)
		rx->done = true;
	return 0;
}

/* Sends the batch and waits for its last message's answer. 0 or -errno (logged). */
static int flush(struct ipvs_plane *x)
{
	static const struct ipvs_reply_ops ops = { .ack = rx_batch_ack };
	struct rx rx = { .x = x, .ops = &ops, .seq = x->seq0 + (uint32_t)x->n_pend - 1 };
	int err = 0;

	if (!x->n_pend)
		return 0;
	((struct nlmsghdr *)(x->batch + x->last_off))->nlmsg_flags |= NLM_F_ACK;
	err = tx(x, x->batch, x->batch_len);
	if (!err)
		x->messages += x->n_pend;
	while (!err && !rx.done)
		if ((err = rx_round(&rx)) > 0)
			err = 0;
	/* The kernel works through a batch in order: once the last message is answered, every
	 * message it said nothing about succeeded. */
	for (size_t i = 0; !err && i < x->n_pend; i++)
		if (!x->pend[i].failed && x->pend[i].cmd == IPVS_CMD_DEL_SERVICE &&
		    ks_add(&x->gone, &x->pend[i].key))
			err = -ENOMEM;
	if (err) {
		x->dirty = true;
		log_error("msg=\"IPVS changes not confirmed\" messages=%zu err=\"%s\"", x->n_pend,
			  strerror(-err));
		if (!x->err)
			x->err = err;
	}
	x->n_pend = 0;
	x->batch_len = 0;
	return err;
}

/* Room for the next message: flushes a full batch first. */
static int batch_room(struct ipvs_plane *x)
{
	if (x->n_pend == IPVS_BATCH_MSGS || IPVS_BATCH_BYTES - x->batch_len < 512)
		return flush(x);
	return 0;
}

static struct pending *batch_add(struct ipvs_plane *x, uint8_t cmd,
				 const struct ipvs_service_key *k, uint32_t seq, size_t off)
{
	struct pending *p = &x->pend[x->n_pend];

	if (!x->n_pend)
		x->seq0 = seq;
	x->n_pend++;
	x->last_off = off;
	memset(p, 0, sizeof(*p));
	p->cmd = cmd;
	p->key = *k;
	return p;
}

static int queue_service(struct ipvs_plane *x, uint8_t cmd, const struct ipvs_service *s)
{
	size_t off;
	int err = batch_room(x);
	struct pending *p;

	if (err)
		return err;
	off = x->batch_len;
	err = ipvs_msg_service(x->batch, IPVS_BATCH_BYTES, &x->batch_len, x->family, cmd,
			       x->seq + 1, s);
	if (err)
		return err;
	p = batch_add(x, cmd, &s->key, ++x->seq, off);
	memcpy(p->sched, s->sched, sizeof(p->sched));
	return 0;
}

static int queue_dest(struct ipvs_plane *x, uint8_t cmd, const struct ipvs_service_key *k,
		      const struct ipvs_dest *d)
{
	size_t off;
	int err = batch_room(x);
	struct pending *p;

	if (err)
		return err;
	off = x->batch_len;
	err = ipvs_msg_dest(x->batch, IPVS_BATCH_BYTES, &x->batch_len, x->family, cmd,
			    x->seq + 1, k, d);
	if (err)
		return err;
	p = batch_add(x, cmd, k, ++x->seq, off);
	p->dest = d->addr;
	p->dport = d->port;
	return 0;
}

/* ---- the ownership file ---- */

static int owned_load(struct ipvs_plane *x)
{
	FILE *f = fopen(x->owned_path, "re");
	char *line = NULL;
	size_t cap = 0, lineno = 0, bad = 0;
	ssize_t n;
	int err = 0;

	if (!f) {
		if (errno == ENOENT)
			return 0;
		log_error("msg=\"cannot read the IPVS ownership file\" path=%s err=\"%s\"",
			  x->owned_path, strerror(errno));
		return -errno;
	}
	while (!err && (n = getline(&line, &cap, f)) >= 0) {
		struct ipvs_service_key k;

		lineno++;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			n--;
		if (n == 0 || line[0] == '#')
			continue;
		if (ipvs_key_parse(line, (size_t)n, &k)) {
			if (!bad++)
				log_warn("msg=\"ignoring a bad line of the IPVS ownership file\" "
					 "path=%s line=%zu", x->owned_path, lineno);
			continue;
		}
		err = ks_add(&x->owned, &k);
	}
	free(line);
	fclose(f);
	return err;
}

/* Replaces the file with keys: temp file, fsync, rename, fsync of the directory. */
static int owned_save(struct ipvs_plane *x, const struct keyset *keys)
{
	char tmp[PATH_MAX], buf[IPVS_KEY_STRLEN];
	FILE *f = NULL;
	int fd, err = 0, dfd;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", x->owned_path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0)
		f = fdopen(fd, "w");
	if (!f) {
		err = -errno;
		if (fd >= 0)
			close(fd);
		goto out;
	}
	fputs("# IPVS services vipd created (protocol address port); it touches no other\n", f);
	for (size_t i = 0; i < keys->n; i++)
		fprintf(f, "%s\n", ipvs_key_format(&keys->keys[i], buf));
	if (fflush(f) || ferror(f) || fsync(fd))
		err = errno ? -errno : -EIO;
	if (fclose(f) && !err)
		err = -errno;
	if (!err && rename(tmp, x->owned_path))
		err = -errno;
	if (!err) {
		dfd = open(x->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0 || fsync(dfd))
			err = -errno;
		if (dfd >= 0)
			close(dfd);
	}
out:
	if (err) {
		unlink(tmp);
		log_error("msg=\"cannot write the IPVS ownership file\" path=%s err=\"%s\"",
			  x->owned_path, strerror(-err));
	}
	return err;
}

/* ---- sync ---- */

static int want_add(struct ipvs_plane *x, const struct lb *lb)
{
	struct ipvs_service_key k;
	const struct lb **a;

	key_of_lb(lb, &k);
	if (ks_has(&x->want, &k))
		return 0; /* the model holds one load balancer per listener */
	a = array_grow(x->want_lb, &x->cap_want_lb, x->want.n, sizeof(*x->want_lb), 64);
	if (!a)
		return -ENOMEM;
	x->want_lb = a;
	x->want_lb[x->want.n] = lb;
	return ks_add(&x->want, &k);
}

/* Destinations of one of vipd's services, against its load balancer's backends. */
static int dests_sync(struct ipvs_plane *x, const struct lb *lb, const struct kservice *ks)
{
	const struct ipvs_service_key *k = &ks->s.key;
	struct ipvs_dest d;
	int err = 0;

	if (ks->n_dests > x->cap_matched) {
		bool *m = realloc(x->matched, ks->n_dests * sizeof(*m));

		if (!m)
			return -ENOMEM;
		x->matched = m;
		x->cap_matched = ks->n_dests;
	}
	if (ks->n_dests)
		memset(x->matched, 0, ks->n_dests * sizeof(*x->matched));
	for (size_t i = 0; i < lb->n_backends && !err; i++) {
		const struct backend *b = &lb->backends[i];
		long j;

		if (!backend_usable(lb, b))
			continue;
		dest_of_backend(lb, b, &d);
		j = dest_find(ks, &b->ip, b->port);
		if (j < 0) {
			err = queue_dest(x, IPVS_CMD_NEW_DEST, k, &d);
			continue;
		}
		if (x->matched[j])
			continue; /* the same address twice: the first one counts */
		x->matched[j] = true;
		if (dest_differs(&ks->dests[j], &d))
			err = queue_dest(x, IPVS_CMD_SET_DEST, k, &d);
	}
	for (size_t j = 0; j < ks->n_dests && !err; j++)
		if (!x->matched[j])
			err = queue_dest(x, IPVS_CMD_DEL_DEST, k, &ks->dests[j]);
	return err;
}

static int service_create(struct ipvs_plane *x, const struct lb *lb, const struct ipvs_service *s)
{
	struct ipvs_dest d;
	int err = queue_service(x, IPVS_CMD_NEW_SERVICE, s);

	for (size_t i = 0; i < lb->n_backends && !err; i++) {
		if (!backend_usable(lb, &lb->backends[i]))
			continue;
		dest_of_backend(lb, &lb->backends[i], &d);
		err = queue_dest(x, IPVS_CMD_NEW_DEST, &s->key, &d);
	}
	return err;
}

static void skipped_backends_log(struct ipvs_plane *x)
{
	size_t local = 0, mixed = 0;

	for (size_t i = 0; i < x->want.n; i++) {
		const struct lb *lb = x->want_lb[i];

		for (size_t j = 0; j < lb->n_backends; j++) {
			local += lb->backends[j].type == BACKEND_LOCAL;
			mixed += lb->backends[j].type != BACKEND_LOCAL &&
				 !backend_usable(lb, &lb->backends[j]);
		}
	}
	if (local != x->local_backends && local)
		log_warn("msg=\"backends of type LOCAL are left out by the IPVS plane\" count=%zu",
			 local);
	if (mixed != x->mixed_backends && mixed)
		log_warn("msg=\"backends of the other address family than their VIP are left out: "
			 "IPVS mixes families only when tunnelling\" count=%zu", mixed);
	x->local_backends = local;
	x->mixed_backends = mixed;
}

/*
 * Decides which services are vipd's after this sync and records the ones it is about to
 * create before creating them. 0 or -errno.
 */
static int ownership_plan(struct ipvs_plane *x)
{
	char ks[IPVS_KEY_STRLEN];
	int err = 0;

	ks_reset(&x->next_owned);
	ks_reset(&x->next_conflicts);
	for (size_t i = 0; i < x->want.n && !err; i++) {
		const struct ipvs_service_key *k = &x->want.keys[i];

		if (view_find(&x->view, k) >= 0 && !ks_has(&x->owned, k)) {
			if (!ks_has(&x->conflicts, k))
				log_warn("msg=\"an IPVS service vipd did not create holds this load "
					 "balancer's address; leaving both alone\" lb=%s service=%s",
					 x->want_lb[i]->uuid, key_str(k, ks));
			err = ks_add(&x->next_conflicts, k);
		} else {
			err = ks_add(&x->next_owned, k);
		}
	}
	/* What the model dropped stays ours until the kernel confirms it is deleted. */
	for (size_t i = 0; i < x->owned.n && !err; i++)
		if (!ks_has(&x->want, &x->owned.keys[i]) &&
		    view_find(&x->view, &x->owned.keys[i]) >= 0)
			err = ks_add(&x->next_owned, &x->owned.keys[i]);
	if (!err && !ks_same(&x->owned, &x->next_owned))
		err = owned_save(x, &x->next_owned);
	if (err)
		return err;
	ks_swap(&x->owned, &x->next_owned);
	ks_swap(&x->conflicts, &x->next_conflicts);
	return 0;
}

/* Forgets services deleted, and those whose creation the kernel refused. */
static int ownership_settle(struct ipvs_plane *x)
{
	if (!x->gone.n && !x->failed.n)
		return 0;
	ks_reset(&x->next_owned);
	for (size_t i = 0; i < x->owned.n; i++)
		if (!ks_has(&x->gone, &x->owned.keys[i]) && !ks_has(&x->failed, &x->owned.keys[i]) &&
		    ks_add(&x->next_owned, &x->owned.keys[i]))
			return -ENOMEM;
	ks_swap(&x->owned, &x->next_owned);
	return owned_save(x, &x->owned);
}

static void sync_begin(struct ipvs_plane *x)
{
	x->err = 0;
	x->n_errors = 0;
	ks_reset(&x->gone);
	ks_reset(&x->failed);
}

static int sync_end(struct ipvs_plane *x, int err, size_t sent_before)
{
	int e = flush(x);

	if (!err)
		err = e;
	e = ownership_settle(x);
	if (!err)
		err = e;
	if (x->n_errors > IPVS_ERRORS_LOGGED)
		log_error("msg=\"more IPVS changes failed\" count=%zu",
			  x->n_errors - IPVS_ERRORS_LOGGED);
	if (x->messages != sent_before)
		x->view.at = 0;
	return err ? err : x->err;
}

/* ---- fullnat's SNAT ---- */

/* Writes the table with fn_next's services; they become fn_have. 0 or -errno (logged). */
static int fn_commit(struct ipvs_plane *x)
{
	int err = fullnat_sync(x->fullnat, x->fn_next.keys, x->fn_next.n);

	if (!err)
		ks_swap(&x->fn_have, &x->fn_next);
	return err;
}

/*
 * Before IPVS changes: the table takes this sync's fullnat services (those of vipd's own
 * services: a foreign service keeps its behaviour) and keeps the ones it has, so a new
 * fullnat service is masqueraded before IPVS forwards to it. 0 or -errno.
 */
static int fn_extend(struct ipvs_plane *x)
{
	int err = 0;

	ks_reset(&x->fn_want);
	ks_reset(&x->fn_next);
	for (size_t i = 0; i < x->want.n && !err; i++)
		if (x->want_lb[i]->forwarding == LB_FWD_FULLNAT &&
		    !ks_has(&x->conflicts, &x->want.keys[i]))
			err = ks_add(&x->fn_want, &x->want.keys[i]);
	for (size_t i = 0; i < x->fn_want.n && !err; i++)
		err = ks_add(&x->fn_next, &x->fn_want.keys[i]);
	for (size_t i = 0; i < x->fn_have.n && !err; i++)
		err = ks_add(&x->fn_next, &x->fn_have.keys[i]);
	return err ? err : fn_commit(x);
}

/*
 * After IPVS changes: the table drops what is no longer fullnat, except a service that
 * the model dropped and IPVS still holds (its deletion failed), so no forwarded connection
 * loses its SNAT while the service lives. 0 or -errno.
 */
static int fn_settle(struct ipvs_plane *x)
{
	int err = 0;

	ks_reset(&x->fn_next);
	for (size_t i = 0; i < x->fn_want.n && !err; i++)
		err = ks_add(&x->fn_next, &x->fn_want.keys[i]);
	for (size_t i = 0; i < x->fn_have.n && !err; i++) {
		const struct ipvs_service_key *k = &x->fn_have.keys[i];

		if (!ks_has(&x->want, k) && ks_has(&x->owned, k))
			err = ks_add(&x->fn_next, k);
	}
	return err ? err : fn_commit(x);
}

static int ipvs_sync(struct dataplane *dp, const struct model *m)
{
	struct ipvs_plane *x = (struct ipvs_plane *)dp;
	size_t sent = x->messages, calls = fullnat_calls(x->fullnat);
	int err, ferr;

	sync_begin(x);
	ks_reset(&x->want);
	err = view_read(x);
	for (size_t i = 0; i < model_count(m) && !err; i++) {
		const struct lb *lb = model_at(m, i);

		if (lb->status == LB_STATUS_ACTIVE && ip_addr_is_set(&lb->vip))
			err = want_add(x, lb);
	}
	if (!err)
		err = ownership_plan(x);
	if (err)
		return err;
	skipped_backends_log(x);
	ferr = fn_extend(x);
	for (size_t i = 0; i < x->owned.n && !err; i++) {
		const struct ipvs_service_key *k = &x->owned.keys[i];
		long j = view_find(&x->view, k);

		if (!ks_has(&x->want, k) && j >= 0)
			err = queue_service(x, IPVS_CMD_DEL_SERVICE, &x->view.svcs[j].s);
	}
	for (size_t i = 0; i < x->want.n && !err; i++) {
		const struct lb *lb = x->want_lb[i];
		struct ipvs_service s;
		long j;

		if (ks_has(&x->conflicts, &x->want.keys[i]))
			continue;
		/* Without its SNAT a fullnat service would forward connections that cannot work:
		 * it waits for a sync that can write the table. */
		if (ferr && lb->forwarding == LB_FWD_FULLNAT &&
		    !ks_has(&x->fn_have, &x->want.keys[i]))
			continue;
		service_of_lb(lb, &s);
		j = view_find(&x->view, &s.key);
		if (j < 0) {
			err = service_create(x, lb, &s);
			continue;
		}
		if (service_differs(&x->view.svcs[j].s, &s))
			err = queue_service(x, IPVS_CMD_SET_SERVICE, &s);
		if (!err)
			err = dests_sync(x, lb, &x->view.svcs[j]);
	}
	err = sync_end(x, err, sent);
	if (!ferr)
		ferr = fn_settle(x);
	if (!err)
		err = ferr;
	log_debug("msg=\"IPVS synced\" services=%zu messages=%zu err=%d fullnat=%zu nft_calls=%zu",
		  x->owned.n, x->messages - sent, err, fullnat_services(x->fullnat),
		  fullnat_calls(x->fullnat) - calls);
	return err;
}

/* ---- counters ---- */

/* The service's last dump, read again when older than IPVS_STATS_TTL_S or than not_before (a
 * drain's start: a count from before the drain cannot say that no connection is left). */
static const struct kservice *stats_service(struct ipvs_plane *x, const struct lb *lb,
					    double not_before)
{
	struct ipvs_service_key k;
	long i;

	/* A failed read leaves an empty view for a while: one error line per TTL, not per call. */
	if (!x->view.at || monotonic_s() - x->view.at > IPVS_STATS_TTL_S ||
	    x->view.at < not_before)
		if (view_read(x))
			x->view.at = monotonic_s();
	key_of_lb(lb, &k);
	if (!ks_has(&x->owned, &k) || (i = view_find(&x->view, &k)) < 0)
		return NULL;
	return &x->view.svcs[i];
}

static void stats_fill(const struct ipvs_stats *s, struct dataplane_stats *out)
{
	out->packets = s->inpkts + s->outpkts;
	out->bytes = s->inbytes + s->outbytes;
	out->connections = s->conns;
}

static int ipvs_backend_stats(struct dataplane *dp, const struct lb *lb, const struct backend *b,
			      struct dataplane_stats *out)
{
	const struct kservice *ks =
		stats_service((struct ipvs_plane *)dp, lb, b->drained ? b->drain_since : 0);
	long j = ks ? dest_find(ks, &b->ip, b->port) : -1;

	memset(out, 0, sizeof(*out));
	if (j < 0)
		return -ENOENT;
	stats_fill(&ks->dests[j].stats, out);
	out->active_connections = ks->dests[j].active_conns;
	return 0;
}

static int ipvs_lb_stats(struct dataplane *dp, const struct lb *lb, struct dataplane_stats *out)
{
	const struct kservice *ks = stats_service((struct ipvs_plane *)dp, lb, 0);

	memset(out, 0, sizeof(*out));
	if (!ks)
		return -ENOENT;
	stats_fill(&ks->s.stats, out);
	for (size_t j = 0; j < ks->n_dests; j++)
		out->active_connections += ks->dests[j].active_conns;
	return 0;
}

/* ---- lifetime ---- */

static void ipvs_cleanup(struct dataplane *dp)
{
	struct ipvs_plane *x = (struct ipvs_plane *)dp;
	size_t n = x->owned.n;
	struct ipvs_service s;
	int err = 0;

	if (!x->cleanup_on_exit) {
		log_info("msg=\"keeping vipd's IPVS services (cleanup_on_exit is off)\" count=%zu",
			 n);
		if (fullnat_services(x->fullnat))
			log_info("msg=\"keeping vipd's fullnat SNAT table (cleanup_on_exit is "
				 "off)\" services=%zu", fullnat_services(x->fullnat));
		return;
	}
	sync_begin(x);
	memset(&s, 0, sizeof(s));
	for (size_t i = 0; i < x->owned.n && !err; i++) {
		s.key = x->owned.keys[i];
		err = queue_service(x, IPVS_CMD_DEL_SERVICE, &s);
	}
	err = sync_end(x, err, x->messages);
	x->view.at = 0;
	if (err)
		log_error("msg=\"IPVS services left behind\" count=%zu", x->owned.n);
	else if (n)
		log_info("msg=\"IPVS services removed\" count=%zu", n);
	/* The table goes after the services; one left behind keeps its SNAT. */
	ks_reset(&x->want);
	ks_reset(&x->fn_want);
	fn_settle(x);
}

static void ipvs_free(struct dataplane *dp)
{
	struct ipvs_plane *x = (struct ipvs_plane *)dp;

	if (!x)
		return;
	if (x->sk)
		nl_socket_free(x->sk);
	fullnat_free(x->fullnat);
	view_clear(&x->view);
	free(x->view.svcs);
	free(x->view.idx.slots);
	ks_free(&x->owned);
	ks_free(&x->conflicts);
	ks_free(&x->want);
	ks_free(&x->next_owned);
	ks_free(&x->next_conflicts);
	ks_free(&x->gone);
	ks_free(&x->failed);
	ks_free(&x->fn_have);
	ks_free(&x->fn_want);
	ks_free(&x->fn_next);
	free(x->want_lb);
	free(x->matched);
	free(x->rbuf);
	free(x->batch);
	free(x->state_dir);
	free(x->owned_path);
	free(x);
}

static const struct dataplane_ops ipvs_ops = {
	.name = "ipvs",
	.sync = ipvs_sync,
	.backend_stats = ipvs_backend_stats,
	.lb_stats = ipvs_lb_stats,
	.cleanup = ipvs_cleanup,
	.free = ipvs_free,
};

size_t ipvs_plane_messages(const struct dataplane *dp)
{
	return ((const struct ipvs_plane *)dp)->messages;
}

size_t ipvs_plane_dumps(const struct dataplane *dp)
{
	return ((const struct ipvs_plane *)dp)->dumps;
}

/* Writes val to a /proc/sys file unless it already holds it, and logs a change. */
static int sysctl_set(const char *path, const char *val, const char *why)
{
	char cur[32] = "";
	ssize_t n;
	int fd = open(path, O_RDWR | O_CLOEXEC), err = 0;

	if (fd < 0) {
		err = -errno;
		log_error("msg=\"cannot open sysctl\" path=%s err=\"%s\"", path, strerror(errno));
		return err;
	}
	n = read(fd, cur, sizeof(cur) - 1);
	while (n > 0 && (cur[n - 1] == '\n' || cur[n - 1] == ' '))
		cur[--n] = 0;
	if (n >= 0 && strcmp(cur, val) == 0) {
		close(fd);
		return 0;
	}
	if (pwrite(fd, val, strlen(val), 0) < 0) {
		err = -errno;
		log_error("msg=\"cannot set sysctl\" path=%s value=%s err=\"%s\"", path, val,
			  strerror(errno));
	} else {
		log_info("msg=\"sysctl set for IPVS\" path=%s value=%s was=%s why=\"%s\"", path, val,
			 cur, why);
	}
	close(fd);
	return err;
}

static int ipvs_sysctls(void)
{
	static const struct { const char *path, *why; } s[] = {
		{ "/proc/sys/net/ipv4/ip_forward", "forward to backends" },
		{ "/proc/sys/net/ipv4/vs/conntrack", "connections seen by netfilter (fullnat SNAT)" },
		{ "/proc/sys/net/ipv4/vs/expire_nodest_conn",
		  "drop connections of deleted destinations at once" },
		{ "/proc/sys/net/ipv6/conf/all/forwarding", "forward IPv6 to backends" },
	};
	int err = 0;

	for (size_t i = 0; i < sizeof(s) / sizeof(s[0]) && !err; i++) {
		/* A kernel without IPv6 has nothing of it to forward. */
		if (strstr(s[i].path, "ipv6") && access("/proc/sys/net/ipv6", F_OK))
			continue;
		err = sysctl_set(s[i].path, "1", s[i].why);
	}
	return err;
}

static int connect_family(struct ipvs_plane *x, bool probing)
{
	int one = 1, rcvbuf = IPVS_RCVBUF, err, id;
	struct timeval tv = { .tv_sec = IPVS_TIMEOUT_S };

	x->sk = nl_socket_alloc();
	if (!x->sk)
		return -ENOMEM;
	err = genl_connect(x->sk);
	if (err) {
		log_error("msg=\"cannot open a generic netlink socket\" err=\"%s\"",
			  nl_geterror(err));
		return -ENOTCONN;
	}
	id = genl_ctrl_resolve(x->sk, IPVS_GENL_NAME);
	if (id < 0) {
		if (probing)
			log_info("msg=\"the kernel has no IPVS\" err=\"%s\"", nl_geterror(id));
		else
			log_error("msg=\"the kernel has no IPVS (modprobe ip_vs)\" err=\"%s\"",
				  nl_geterror(id));
		return -EPROTONOSUPPORT;
	}
	x->family = (uint16_t)id;
	x->fd = nl_socket_get_fd(x->sk);
	/* Error answers without a copy of the request keep a failing batch small. */
	setsockopt(x->fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
	if (setsockopt(x->fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)))
		setsockopt(x->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	if (setsockopt(x->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)))
		return -errno;
	return 0;
}

int ipvs_plane_new(const struct ipvs_options *o, struct dataplane **out)
{
	struct ipvs_plane *x;
	int err;

	if (!o->state_dir || !*o->state_dir) {
		log_error("msg=\"the IPVS plane needs a state directory to record its services\"");
		return -EINVAL;
	}
	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->dp.ops = &ipvs_ops;
	x->fd = -1;
	x->cleanup_on_exit = o->cleanup_on_exit;
	x->state_dir = strdup(o->state_dir);
	x->rbuf = malloc((size_t)IPVS_RX_SLOTS * IPVS_RECV_BYTES);
	x->batch = malloc(IPVS_BATCH_BYTES);
	if (!x->state_dir || !x->rbuf || !x->batch ||
	    asprintf(&x->owned_path, "%s/" IPVS_OWNED_FILE, o->state_dir) < 0) {
		x->owned_path = NULL;
		err = -ENOMEM;
		goto fail;
	}
	if (mkdir(x->state_dir, 0700) && errno != EEXIST) {
		err = -errno;
		log_error("msg=\"cannot create the state directory\" dir=%s err=\"%s\"",
			  x->state_dir, strerror(errno));
		goto fail;
	}
	err = connect_family(x, o->probing);
	if (!err)
		err = fullnat_new(&x->fullnat);
	if (!err)
		err = owned_load(x);
	if (!err)
		err = ipvs_sysctls();
	if (err)
		goto fail;
	log_info("msg=\"IPVS plane ready\" owned_services=%zu cleanup_on_exit=%s", x->owned.n,
		 x->cleanup_on_exit ? "true" : "false");
	*out = &x->dp;
	return 0;
fail:
	ipvs_free(&x->dp);
	return err;
}
