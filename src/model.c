#include "model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

struct model {
	struct lb **lbs; /* insertion order */
	size_t n, cap;
	struct lb **slots; /* open addressing on the uuid; TOMBSTONE marks a removed entry */
	size_t n_slots, n_used; /* n_used counts live entries and tombstones */
	uint64_t generation;
	struct vip_mirror *mirror;
};

/*
 * The VIPs of lbs[], in the same order, as of a generation: the VIP questions scan this one
 * array instead of reaching into every load balancer's own allocation (10,000 cache misses
 * a question). Behind a pointer so a const model can bring it up to date.
 */
struct vip_mirror {
	struct ip_addr *vips;
	size_t cap;
	uint64_t generation; /* 0: never filled */
};

static struct lb tombstone_lb;
/* One sequence for every model, so two models never share a generation: a follower
 * that is handed another model (a unit test's) sees it as changed. */
static uint64_t model_generations;
#define TOMBSTONE (&tombstone_lb)

void health_check_init(struct health_check *hc)
{
	memset(hc, 0, sizeof(*hc));
	hc->type = HC_TCP;
	hc->interval_ms = 5000;
	hc->timeout_ms = 2000;
	hc->fail_count = 3;
	hc->rise_count = 2;
	hc->tls_verify = true;
	hc->min_healthy = 1;
}

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

bool health_check_probes_equal(const struct health_check *a, const struct health_check *b)
{
	return a->type == b->type && a->interval_ms == b->interval_ms &&
	       a->timeout_ms == b->timeout_ms && a->fail_count == b->fail_count &&
	       a->rise_count == b->rise_count && a->port == b->port &&
	       a->tls_verify == b->tls_verify && a->n_expected_status == b->n_expected_status &&
	       !memcmp(a->expected_status, b->expected_status,
		       a->n_expected_status * sizeof(a->expected_status[0])) &&
	       str_eq(a->http_path, b->http_path) && str_eq(a->host, b->host) &&
	       str_eq(a->expect_body, b->expect_body) && str_eq(a->udp_payload, b->udp_payload) &&
	       str_eq(a->udp_expect, b->udp_expect);
}

void health_check_clear(struct health_check *hc)
{
	free(hc->http_path);
	free(hc->host);
	free(hc->expect_body);
	free(hc->udp_payload);
	free(hc->udp_expect);
	memset(hc, 0, sizeof(*hc));
}

static int dup_str(char **dst, const char *src)
{
	*dst = NULL;
	if (!src)
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : -ENOMEM;
}

int health_check_copy(struct health_check *dst, const struct health_check *src)
{
	*dst = *src;
	dst->http_path = dst->host = dst->expect_body = dst->udp_payload = dst->udp_expect = NULL;
	if (dup_str(&dst->http_path, src->http_path) || dup_str(&dst->host, src->host) ||
	    dup_str(&dst->expect_body, src->expect_body) ||
	    dup_str(&dst->udp_payload, src->udp_payload) ||
	    dup_str(&dst->udp_expect, src->udp_expect)) {
		health_check_clear(dst);
		return -ENOMEM;
	}
	return 0;
}

struct lb *lb_new(void)
{
	struct lb *lb = calloc(1, sizeof(*lb));

	if (!lb)
		return NULL;
	uuid_generate_v4(lb->uuid);
	lb->protocol = LB_PROTO_TCP;
	lb->scheduler = LB_SCHED_MH;
	lb->forwarding = LB_FWD_FULLNAT;
	lb->origin = LB_ORIGIN_API;
	lb->status = LB_STATUS_ACTIVE;
	health_check_init(&lb->hc);
	return lb;
}

struct lb *lb_dup(const struct lb *src)
{
	struct lb *lb = calloc(1, sizeof(*lb));

	if (!lb)
		return NULL;
	*lb = *src;
	lb->name = NULL;
	lb->backends = NULL;
	lb->n_backends = lb->cap_backends = 0;
	memset(&lb->hc, 0, sizeof(lb->hc));
	if (dup_str(&lb->name, src->name) || health_check_copy(&lb->hc, &src->hc))
		goto fail;
	if (src->n_backends) {
		lb->backends = malloc(src->n_backends * sizeof(*lb->backends));
		if (!lb->backends)
			goto fail;
		memcpy(lb->backends, src->backends, src->n_backends * sizeof(*lb->backends));
		lb->n_backends = lb->cap_backends = src->n_backends;
	}
	return lb;
fail:
	lb_free(lb);
	return NULL;
}

void lb_free(struct lb *lb)
{
	if (!lb)
		return;
	free(lb->name);
	health_check_clear(&lb->hc);
	free(lb->backends);
	free(lb);
}

int lb_set_name(struct lb *lb, const char *name)
{
	char *n = strdup(name);

	if (!n)
		return -ENOMEM;
	free(lb->name);
	lb->name = n;
	return 0;
}

void backend_init(struct backend *b)
{
	memset(b, 0, sizeof(*b));
	uuid_generate_v4(b->uuid);
	b->weight = 1;
	b->type = BACKEND_MASQ;
	b->health = BACKEND_HEALTH_UNKNOWN;
}

int lb_add_backend(struct lb *lb, const struct backend *b)
{
	if (lb->n_backends == lb->cap_backends) {
		size_t cap = lb->cap_backends ? lb->cap_backends * 2 : 4;
		struct backend *nb = realloc(lb->backends, cap * sizeof(*nb));

		if (!nb)
			return -ENOMEM;
		lb->backends = nb;
		lb->cap_backends = cap;
	}
	lb->backends[lb->n_backends++] = *b;
	return 0;
}

struct backend *lb_find_backend(struct lb *lb, const char *uuid)
{
	for (size_t i = 0; i < lb->n_backends; i++)
		if (strcmp(lb->backends[i].uuid, uuid) == 0)
			return &lb->backends[i];
	return NULL;
}

struct backend *lb_find_backend_addr(struct lb *lb, const struct ip_addr *ip, uint16_t port)
{
	for (size_t i = 0; i < lb->n_backends; i++)
		if (lb->backends[i].port == port && ip_addr_equal(&lb->backends[i].ip, ip))
			return &lb->backends[i];
	return NULL;
}

int lb_remove_backend(struct lb *lb, const char *uuid)
{
	struct backend *b = lb_find_backend(lb, uuid);
	size_t i;

	if (!b)
		return -ENOENT;
	i = (size_t)(b - lb->backends);
	memmove(&lb->backends[i], &lb->backends[i + 1],
		(lb->n_backends - i - 1) * sizeof(*lb->backends));
	lb->n_backends--;
	return 0;
}

uint32_t backend_effective_weight(const struct lb *lb, const struct backend *b)
{
	if (b->drained)
		return 0;
	if (lb->hc.type != HC_NONE && b->health == BACKEND_HEALTH_DOWN)
		return 0;
	return b->weight;
}

size_t lb_usable_backends(const struct lb *lb)
{
	size_t n = 0;

	for (size_t i = 0; i < lb->n_backends; i++)
		if (backend_effective_weight(lb, &lb->backends[i]) > 0)
			n++;
	return n;
}

bool lb_serving(const struct lb *lb)
{
	uint32_t need = lb->hc.min_healthy ? lb->hc.min_healthy : 1;

	return lb->status == LB_STATUS_ACTIVE && ip_addr_is_set(&lb->vip) &&
	       lb_usable_backends(lb) >= need;
}

struct name_map {
	const char *name;
	int value;
};

static const char *map_name(const struct name_map *m, int v)
{
	for (; m->name; m++)
		if (m->value == v)
			return m->name;
	return "?";
}

static int map_parse(const struct name_map *m, const char *s, int *out)
{
	for (; m->name; m++) {
		if (strcasecmp(m->name, s) == 0) {
			*out = m->value;
			return 0;
		}
	}
	return -EINVAL;
}

/* The first entry of each value is its canonical name; later ones are accepted aliases. */
static const struct name_map proto_names[] = {
	{ "tcp", LB_PROTO_TCP }, { "udp", LB_PROTO_UDP }, { NULL, 0 },
};
static const struct name_map fwd_names[] = {
	{ "fullnat", LB_FWD_FULLNAT }, { "nat", LB_FWD_NAT }, { "dsr", LB_FWD_DSR },
	{ "tunnel", LB_FWD_TUNNEL }, { "masq", LB_FWD_NAT }, { "droute", LB_FWD_DSR },
	{ "dr", LB_FWD_DSR }, { "ipip", LB_FWD_TUNNEL }, { NULL, 0 },
};
static const struct name_map sched_names[] = {
	{ "mh", LB_SCHED_MH }, { "rr", LB_SCHED_RR }, { "wrr", LB_SCHED_WRR },
	{ "lc", LB_SCHED_LC }, { "wlc", LB_SCHED_WLC }, { "sh", LB_SCHED_SH },
	{ "dh", LB_SCHED_DH }, { "maglev", LB_SCHED_MH }, { NULL, 0 },
};
static const struct name_map status_names[] = {
	{ "active", LB_STATUS_ACTIVE }, { "pending", LB_STATUS_PENDING }, { NULL, 0 },
};
static const struct name_map hc_names[] = {
	{ "none", HC_NONE }, { "tcp", HC_TCP }, { "http", HC_HTTP },
	{ "https", HC_HTTPS }, { "udp", HC_UDP }, { NULL, 0 },
};
static const struct name_map btype_names[] = {
	{ "MASQ", BACKEND_MASQ }, { "LOCAL", BACKEND_LOCAL }, { NULL, 0 },
};
static const struct name_map health_names[] = {
	{ "unknown", BACKEND_HEALTH_UNKNOWN }, { "up", BACKEND_HEALTH_UP },
	{ "down", BACKEND_HEALTH_DOWN }, { NULL, 0 },
};

#define DEFINE_NAMES(fn, type, map)                                 \
	const char *fn##_name(type v) { return map_name(map, (int)v); } \
	int fn##_parse(const char *s, type *out)                    \
	{                                                           \
		int v;                                              \
		if (map_parse(map, s, &v))                          \
			return -EINVAL;                             \
		*out = (type)v;                                     \
		return 0;                                           \
	}

DEFINE_NAMES(lb_protocol, enum lb_protocol, proto_names)
DEFINE_NAMES(lb_forwarding, enum lb_forwarding, fwd_names)
DEFINE_NAMES(lb_scheduler, enum lb_scheduler, sched_names)
DEFINE_NAMES(hc_type, enum hc_type, hc_names)
DEFINE_NAMES(backend_type, enum backend_type, btype_names)

const char *lb_status_name(enum lb_status s)
{
	return map_name(status_names, (int)s);
}

const char *backend_health_name(enum backend_health h)
{
	return map_name(health_names, (int)h);
}

static void uuid_format(uint8_t b[16], char out[UUID_STR_LEN])
{
	snprintf(out, UUID_STR_LEN,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
		 b[12], b[13], b[14], b[15]);
}

void uuid_generate_v4(char out[UUID_STR_LEN])
{
	uint8_t b[16];
	size_t got = 0;

	while (got < sizeof(b)) {
		ssize_t r = getrandom(b + got, sizeof(b) - got, 0);

		if (r > 0)
			got += (size_t)r;
	}
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
	uuid_format(b, out);
}

static uint64_t fnv1a64(const char *s, uint64_t h)
{
	for (; *s; s++) {
		h ^= (uint8_t)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

void uuid_from_name(const char *name, char out[UUID_STR_LEN])
{
	/* RFC 9562 version 8 (vendor-defined): two independent 64-bit hashes of the name. */
	uint64_t h1 = fnv1a64(name, 0xcbf29ce484222325ULL);
	uint64_t h2 = fnv1a64(name, h1 ^ 0x9e3779b97f4a7c15ULL);
	uint8_t b[16];

	for (int i = 0; i < 8; i++) {
		b[i] = (uint8_t)(h1 >> (56 - 8 * i));
		b[8 + i] = (uint8_t)(h2 >> (56 - 8 * i));
	}
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x80);
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
	uuid_format(b, out);
}

bool uuid_is_valid(const char *s)
{
	for (int i = 0; i < 36; i++) {
		char c = s[i];

		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (c != '-')
				return false;
		} else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
			     (c >= 'A' && c <= 'F'))) {
			return false;
		}
	}
	return s[36] == '\0';
}

struct model *model_new(void)
{
	struct model *m = calloc(1, sizeof(struct model));

	if (!m)
		return NULL;
	m->mirror = calloc(1, sizeof(*m->mirror));
	if (!m->mirror) {
		free(m);
		return NULL;
	}
	m->generation = ++model_generations;
	return m;
}

void model_free(struct model *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n; i++)
		lb_free(m->lbs[i]);
	free(m->lbs);
	free(m->slots);
	free(m->mirror->vips);
	free(m->mirror);
	free(m);
}

size_t model_count(const struct model *m)
{
	return m->n;
}

struct lb *model_at(const struct model *m, size_t i)
{
	return i < m->n ? m->lbs[i] : NULL;
}

static size_t slot_of(const struct model *m, const char *uuid, bool for_insert)
{
	size_t mask = m->n_slots - 1;
	size_t i = (size_t)fnv1a64(uuid, 0xcbf29ce484222325ULL) & mask;
	size_t first_free = (size_t)-1;

	for (;;) {
		struct lb *e = m->slots[i];

		if (!e)
			return (for_insert && first_free != (size_t)-1) ? first_free : i;
		if (e == TOMBSTONE) {
			if (first_free == (size_t)-1)
				first_free = i;
		} else if (strcmp(e->uuid, uuid) == 0) {
			return i;
		}
		i = (i + 1) & mask;
	}
}

static int rehash(struct model *m, size_t n_slots)
{
	struct lb **old = m->slots;
	size_t old_n = m->n_slots;

	m->slots = calloc(n_slots, sizeof(*m->slots));
	if (!m->slots) {
		m->slots = old;
		return -ENOMEM;
	}
	m->n_slots = n_slots;
	m->n_used = 0;
	for (size_t i = 0; i < old_n; i++) {
		if (old[i] && old[i] != TOMBSTONE) {
			m->slots[slot_of(m, old[i]->uuid, true)] = old[i];
			m->n_used++;
		}
	}
	free(old);
	return 0;
}

struct lb *model_find(const struct model *m, const char *uuid)
{
	struct lb *e;

	if (!m->n_slots)
		return NULL;
	e = m->slots[slot_of(m, uuid, false)];
	return (e && e != TOMBSTONE) ? e : NULL;
}

struct lb *model_find_listener(const struct model *m, const struct ip_addr *vip, uint16_t port,
			       enum lb_protocol proto)
{
	for (size_t i = 0; i < m->n; i++) {
		struct lb *lb = m->lbs[i];

		if (lb->port == port && lb->protocol == proto && ip_addr_equal(&lb->vip, vip))
			return lb;
	}
	return NULL;
}

/* The mirror brought up to the model's generation; NULL when it cannot grow (the callers
 * then read the load balancers themselves). */
static const struct ip_addr *vips_of(const struct model *m)
{
	struct vip_mirror *v = m->mirror;

	if (v->generation == m->generation)
		return v->vips;
	if (v->cap < m->n) {
		size_t cap = m->cap;
		struct ip_addr *n = realloc(v->vips, cap * sizeof(*n));

		if (!n)
			return NULL;
		v->vips = n;
		v->cap = cap;
	}
	for (size_t i = 0; i < m->n; i++)
		v->vips[i] = m->lbs[i]->vip;
	v->generation = m->generation;
	return v->vips;
}

/*
 * Whether lbs[i] is on vip. A store operation asks between an in-place change of a VIP and
 * the model_touch that follows it (the old VIP, to see whether it is still used): a match in
 * the mirror is checked against the load balancer itself, so a stale entry never counts.
 */
static bool on_vip(const struct model *m, const struct ip_addr *mirror, size_t i,
		   const struct ip_addr *vip)
{
	return (!mirror || ip_addr_equal(&mirror[i], vip)) && ip_addr_equal(&m->lbs[i]->vip, vip);
}

size_t model_vip_users(const struct model *m, const struct ip_addr *vip)
{
	const struct ip_addr *mirror = vips_of(m);
	size_t n = 0;

	for (size_t i = 0; i < m->n; i++)
		if (on_vip(m, mirror, i, vip))
			n++;
	return n;
}

bool model_vip_serving(const struct model *m, const struct ip_addr *vip)
{
	const struct ip_addr *mirror = vips_of(m);

	for (size_t i = 0; i < m->n; i++)
		if (on_vip(m, mirror, i, vip) && lb_serving(m->lbs[i]))
			return true;
	return false;
}

int model_add(struct model *m, struct lb *lb)
{
	size_t s;

	if (model_find(m, lb->uuid))
		return -EEXIST;
	if ((m->n_used + 1) * 2 > m->n_slots) {
		size_t want = m->n_slots ? m->n_slots : 64;

		while ((m->n + 1) * 4 > want)
			want *= 2;
		if (rehash(m, want))
			return -ENOMEM;
	}
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 64;
		struct lb **n = realloc(m->lbs, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		m->lbs = n;
		m->cap = cap;
	}
	s = slot_of(m, lb->uuid, true);
	if (!m->slots[s])
		m->n_used++;
	m->slots[s] = lb;
	m->lbs[m->n++] = lb;
	m->generation = ++model_generations;
	return 0;
}

struct lb *model_take(struct model *m, const char *uuid)
{
	struct lb *lb = model_find(m, uuid);

	if (!lb)
		return NULL;
	m->slots[slot_of(m, uuid, false)] = TOMBSTONE;
	m->generation = ++model_generations;
	for (size_t i = 0; i < m->n; i++) {
		if (m->lbs[i] == lb) {
			memmove(&m->lbs[i], &m->lbs[i + 1], (m->n - i - 1) * sizeof(*m->lbs));
			m->n--;
			break;
		}
	}
	return lb;
}

uint64_t model_generation(const struct model *m)
{
	return m->generation;
}

void model_touch(struct model *m)
{
	m->generation = ++model_generations;
}
