#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloud/ipam.h"
#include "store.h"

/*
 * Test doubles for the state module (link-time substitution: src/state.c is not
 * linked into this test). They count calls and fail on demand.
 */
struct state {
	int puts, dels, compacts;
	int fail_put, fail_del; /* errno to fail with; 0: succeed */
	char last_put[UUID_STR_LEN];
	size_t last_put_backends;
};

int state_put_lb(struct state *st, const struct lb *lb)
{
	if (st->fail_put)
		return -st->fail_put;
	st->puts++;
	memcpy(st->last_put, lb->uuid, UUID_STR_LEN);
	st->last_put_backends = lb->n_backends;
	return 0;
}

int state_del_lb(struct state *st, const char *uuid)
{
	(void)uuid;
	if (st->fail_del)
		return -st->fail_del;
	st->dels++;
	return 0;
}

int state_maybe_compact(struct state *st, const struct model *m)
{
	(void)m;
	st->compacts++;
	return 0;
}

struct fixture {
	struct store s;
	struct state st;
	int changes;
	char err[256];
};

static void on_changed(void *arg)
{
	((struct fixture *)arg)->changes++;
}

static struct fixture *fixture_new(const char *const *ranges, size_t n, bool with_state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct ipam_range r[4];

	assert_non_null(f);
	f->s.model = model_new();
	assert_non_null(f->s.model);
	if (n) {
		for (size_t i = 0; i < n; i++)
			assert_int_equal(ipam_range_parse(ranges[i], &r[i], f->err, sizeof(f->err)),
					 0);
		f->s.vips = ipam_new(r, n);
		assert_non_null(f->s.vips);
	}
	f->s.state = with_state ? &f->st : NULL;
	f->s.changed = on_changed;
	f->s.changed_arg = f;
	return f;
}

static void fixture_free(struct fixture *f)
{
	if (f->s.vips)
		f->s.vips->ops->free(f->s.vips);
	model_free(f->s.model);
	free(f);
}

static const char *const range3[] = { "192.0.2.1-192.0.2.3" };

static struct ip_addr addr(const char *s)
{
	struct ip_addr a;

	assert_int_equal(ip_addr_parse(s, &a), 0);
	return a;
}

static struct lb *new_lb(const char *vip, uint16_t port, enum lb_protocol proto)
{
	struct lb *lb = lb_new();

	assert_non_null(lb);
	assert_int_equal(lb_set_name(lb, "web"), 0);
	if (vip)
		lb->vip = addr(vip);
	lb->port = port;
	lb->protocol = proto;
	return lb;
}

static const char *vip_of(const struct lb *lb)
{
	static char buf[IP_ADDR_STRLEN];

	return ip_addr_str(&lb->vip, buf);
}

/* Creates a load balancer that must succeed; returns the model's object. */
static struct lb *create(struct fixture *f, const char *vip, uint16_t port, enum lb_protocol proto)
{
	struct lb *lb = new_lb(vip, port, proto);

	assert_int_equal(store_create_lb(&f->s, lb, f->err, sizeof(f->err)), 0);
	assert_ptr_equal(model_find(f->s.model, lb->uuid), lb);
	return lb;
}

/* Creates a load balancer that must fail with want; the model and the source stay as they were. */
static void create_fails(struct fixture *f, const char *vip, uint16_t port, enum lb_protocol proto,
			 int want)
{
	struct lb *lb = new_lb(vip, port, proto);
	size_t count = model_count(f->s.model);
	uint64_t used0 = 0, used1 = 0, total;
	int changes = f->changes;

	if (f->s.vips)
		f->s.vips->ops->usage(f->s.vips, &used0, &total);
	f->err[0] = '\0';
	assert_int_equal(store_create_lb(&f->s, lb, f->err, sizeof(f->err)), want);
	assert_true(f->err[0] != '\0');
	assert_int_equal(model_count(f->s.model), count);
	assert_null(model_find(f->s.model, lb->uuid));
	if (f->s.vips) {
		f->s.vips->ops->usage(f->s.vips, &used1, &total);
		assert_int_equal(used1, used0);
	}
	assert_int_equal(f->changes, changes);
	/* the caller's object is handed back as it came */
	if (vip)
		assert_string_equal(vip_of(lb), vip);
	else
		assert_false(ip_addr_is_set(&lb->vip));
	lb_free(lb);
}

/* The address the next create without a vip would get (taken and given back). */
static const char *next_free(struct fixture *f)
{
	static char buf[IP_ADDR_STRLEN];
	struct ip_addr a;

	if (f->s.vips->ops->allocate(f->s.vips, "probe", 0, &a))
		return "none";
	assert_int_equal(f->s.vips->ops->release(f->s.vips, &a), 0);
	return ip_addr_str(&a, buf);
}

static void test_create_allocates(void **st)
{
	struct fixture *f = fixture_new(range3, 1, true);
	struct lb *a, *b;

	(void)st;
	a = create(f, NULL, 80, LB_PROTO_TCP);
	assert_string_equal(vip_of(a), "192.0.2.1");
	assert_true(a->vip_from_source);
	assert_int_equal(a->status, LB_STATUS_ACTIVE);
	assert_int_equal(f->changes, 1);
	assert_int_equal(f->st.puts, 1);
	assert_string_equal(f->st.last_put, a->uuid);
	assert_int_equal(f->st.compacts, 1);
	b = create(f, NULL, 80, LB_PROTO_TCP);
	assert_string_equal(vip_of(b), "192.0.2.2");
	create(f, NULL, 80, LB_PROTO_TCP);
	create_fails(f, NULL, 80, LB_PROTO_TCP, -ENOSPC);
	assert_string_equal(f->err, "vip: no free address left in the configured ranges");
	assert_int_equal(f->changes, 3);
	fixture_free(f);
}

static void test_create_without_source(void **st)
{
	struct fixture *f = fixture_new(NULL, 0, false);
	struct lb *a;

	(void)st;
	create_fails(f, NULL, 80, LB_PROTO_TCP, -EINVAL);
	assert_string_equal(f->err, "vip: required, no --ipam-range configured");
	a = create(f, "203.0.113.5", 80, LB_PROTO_TCP);
	assert_false(a->vip_from_source);
	create_fails(f, "203.0.113.5", 80, LB_PROTO_TCP, -EEXIST);
	fixture_free(f);
}

static void test_create_explicit_vip(void **st)
{
	struct fixture *f = fixture_new(range3, 1, false);
	struct lb *in, *out;
	uint64_t used, total;

	(void)st;
	in = create(f, "192.0.2.2", 443, LB_PROTO_TCP);
	assert_true(in->vip_from_source);
	assert_int_equal(in->status, LB_STATUS_ACTIVE);
	/* a named address inside the range is never handed out to someone else */
	assert_string_equal(vip_of(create(f, NULL, 80, LB_PROTO_TCP)), "192.0.2.1");
	assert_string_equal(vip_of(create(f, NULL, 80, LB_PROTO_TCP)), "192.0.2.3");
	out = create(f, "198.51.100.7", 80, LB_PROTO_TCP);
	assert_false(out->vip_from_source);
	f->s.vips->ops->usage(f->s.vips, &used, &total);
	assert_int_equal(used, 3);
	assert_int_equal(model_count(f->s.model), 4);
	fixture_free(f);
}

static void test_create_duplicate_uuid(void **st)
{
	struct fixture *f = fixture_new(range3, 1, false);
	struct lb *a = create(f, NULL, 80, LB_PROTO_TCP), *b = new_lb(NULL, 81, LB_PROTO_TCP);
	char want[128];

	(void)st;
	memcpy(b->uuid, a->uuid, UUID_STR_LEN);
	assert_int_equal(store_create_lb(&f->s, b, f->err, sizeof(f->err)), -EEXIST);
	snprintf(want, sizeof(want), "uuid: %s is already used by load balancer \"web\"", a->uuid);
	assert_string_equal(f->err, want);
	assert_string_equal(next_free(f), "192.0.2.2");
	lb_free(b);
	fixture_free(f);
}

static void test_shared_vip_and_listener_conflict(void **st)
{
	static const char *const ranges[] = { "192.0.2.1-192.0.2.3", "2001:db8::/126" };
	struct fixture *f = fixture_new(ranges, 2, false);
	struct lb *a, *b, *c, *v6;
	char want[160];

	(void)st;
	a = create(f, NULL, 80, LB_PROTO_TCP);
	assert_string_equal(vip_of(a), "192.0.2.1");
	b = create(f, "192.0.2.1", 443, LB_PROTO_TCP);
	c = create(f, "192.0.2.1", 80, LB_PROTO_UDP);
	assert_true(b->vip_from_source && c->vip_from_source);
	assert_int_equal(model_vip_users(f->s.model, &a->vip), 3);
	create_fails(f, "192.0.2.1", 80, LB_PROTO_TCP, -EEXIST);
	snprintf(want, sizeof(want), "port: 192.0.2.1:80/tcp is already used by load balancer %s",
		 a->uuid);
	assert_string_equal(f->err, want);
	create_fails(f, "192.0.2.1", 80, LB_PROTO_UDP, -EEXIST);
	assert_string_equal(next_free(f), "192.0.2.2");

	v6 = create(f, "2001:db8::2", 53, LB_PROTO_UDP);
	create_fails(f, "2001:db8::2", 53, LB_PROTO_UDP, -EEXIST);
	snprintf(want, sizeof(want),
		 "port: [2001:db8::2]:53/udp is already used by load balancer %s", v6->uuid);
	assert_string_equal(f->err, want);
	fixture_free(f);
}

static void test_delete_releases_when_last_user(void **st)
{
	struct fixture *f = fixture_new(range3, 1, true);
	struct lb *a = create(f, NULL, 80, LB_PROTO_TCP), *b, *out;
	char ua[UUID_STR_LEN], ub[UUID_STR_LEN], uo[UUID_STR_LEN];

	(void)st;
	b = create(f, "192.0.2.1", 443, LB_PROTO_TCP);
	out = create(f, "198.51.100.1", 80, LB_PROTO_TCP);
	memcpy(ua, a->uuid, UUID_STR_LEN);
	memcpy(ub, b->uuid, UUID_STR_LEN);
	memcpy(uo, out->uuid, UUID_STR_LEN);
	f->changes = 0;
	assert_int_equal(store_delete_lb(&f->s, ua, f->err, sizeof(f->err)), 0);
	assert_null(model_find(f->s.model, ua));
	assert_int_equal(f->st.dels, 1);
	assert_int_equal(f->changes, 1);
	/* b still serves 192.0.2.1 */
	assert_string_equal(next_free(f), "192.0.2.2");
	assert_int_equal(store_delete_lb(&f->s, ub, f->err, sizeof(f->err)), 0);
	assert_string_equal(next_free(f), "192.0.2.1");
	assert_int_equal(store_delete_lb(&f->s, uo, f->err, sizeof(f->err)), 0);
	assert_int_equal(model_count(f->s.model), 0);
	assert_int_equal(store_delete_lb(&f->s, ua, f->err, sizeof(f->err)), -ENOENT);
	assert_non_null(strstr(f->err, ua));
	assert_int_equal(f->st.dels, 3);
	assert_int_equal(f->changes, 3);
	fixture_free(f);
}

static struct backend make_backend(const char *ip, uint16_t port)
{
	struct backend b;

	backend_init(&b);
	b.ip = addr(ip);
	b.port = port;
	return b;
}

static void test_backends(void **st)
{
	struct fixture *f = fixture_new(range3, 1, true);
	struct lb *lb = create(f, NULL, 80, LB_PROTO_TCP), *other = new_lb("192.0.2.3", 1,
									      LB_PROTO_TCP);
	struct backend b1 = make_backend("10.0.0.1", 80), b2 = make_backend("10.0.0.2", 80);
	struct backend dup = make_backend("10.0.0.1", 80), v6 = make_backend("2001:db8::1", 80);
	struct backend bad = make_backend("10.0.0.9", 80);
	char want[160];

	(void)st;
	f->changes = 0;
	assert_int_equal(store_add_backend(&f->s, lb, &b1, f->err, sizeof(f->err)), 0);
	assert_int_equal(store_add_backend(&f->s, lb, &b2, f->err, sizeof(f->err)), 0);
	assert_int_equal(store_add_backend(&f->s, lb, &v6, f->err, sizeof(f->err)), 0);
	assert_int_equal(lb->n_backends, 3);
	assert_string_equal(lb->backends[0].uuid, b1.uuid);
	assert_int_equal(f->st.last_put_backends, 3);
	assert_int_equal(f->changes, 3);

	assert_int_equal(store_add_backend(&f->s, lb, &dup, f->err, sizeof(f->err)), -EEXIST);
	snprintf(want, sizeof(want), "backend 10.0.0.1:80 already exists (uuid %s)", b1.uuid);
	assert_string_equal(f->err, want);
	dup = make_backend("2001:db8::1", 80);
	assert_int_equal(store_add_backend(&f->s, lb, &dup, f->err, sizeof(f->err)), -EEXIST);
	snprintf(want, sizeof(want), "backend [2001:db8::1]:80 already exists (uuid %s)", v6.uuid);
	assert_string_equal(f->err, want);
	dup = make_backend("10.0.0.1", 81);
	memcpy(dup.uuid, b2.uuid, UUID_STR_LEN);
	assert_int_equal(store_add_backend(&f->s, lb, &dup, f->err, sizeof(f->err)), -EEXIST);
	bad.port = 0;
	assert_int_equal(store_add_backend(&f->s, lb, &bad, f->err, sizeof(f->err)), -EINVAL);
	assert_string_equal(f->err, "port: must be 1..65535");
	bad.port = 80;
	bad.weight = 0;
	assert_int_equal(store_add_backend(&f->s, lb, &bad, f->err, sizeof(f->err)), -EINVAL);
	/* a load balancer the store does not hold */
	assert_int_equal(store_add_backend(&f->s, other, &b1, f->err, sizeof(f->err)), -ENOENT);
	assert_int_equal(lb->n_backends, 3);
	assert_int_equal(f->changes, 3);

	assert_int_equal(store_set_drained(&f->s, lb, &lb->backends[1], true, f->err,
					   sizeof(f->err)), 0);
	assert_true(lb->backends[1].drained);
	assert_int_equal(backend_effective_weight(lb, &lb->backends[1]), 0);
	assert_int_equal(f->changes, 4);
	/* no change, nothing to persist */
	assert_int_equal(store_set_drained(&f->s, lb, &lb->backends[1], true, f->err,
					   sizeof(f->err)), 0);
	assert_int_equal(f->changes, 4);
	assert_int_equal(store_set_drained(&f->s, lb, &lb->backends[1], false, f->err,
					   sizeof(f->err)), 0);
	assert_false(lb->backends[1].drained);
	assert_int_equal(store_set_drained(&f->s, lb, &b1, true, f->err, sizeof(f->err)),
			 -ENOENT);

	assert_int_equal(store_remove_backend(&f->s, lb, b2.uuid, f->err, sizeof(f->err)), 0);
	assert_int_equal(lb->n_backends, 2);
	assert_null(lb_find_backend(lb, b2.uuid));
	assert_int_equal(store_remove_backend(&f->s, lb, b2.uuid, f->err, sizeof(f->err)),
			 -ENOENT);
	snprintf(want, sizeof(want), "backend %s not found", b2.uuid);
	assert_string_equal(f->err, want);
	assert_int_equal(f->st.last_put_backends, 2);
	lb_free(other);
	fixture_free(f);
}

static void test_state_failure_undoes(void **st)
{
	struct fixture *f = fixture_new(range3, 1, true);
	struct lb *lb = create(f, NULL, 80, LB_PROTO_TCP);
	struct backend b1 = make_backend("10.0.0.1", 80), b2 = make_backend("10.0.0.2", 80);
	struct backend b3 = make_backend("10.0.0.3", 80);
	char uuid[UUID_STR_LEN];

	(void)st;
	assert_int_equal(store_add_backend(&f->s, lb, &b1, f->err, sizeof(f->err)), 0);
	assert_int_equal(store_add_backend(&f->s, lb, &b2, f->err, sizeof(f->err)), 0);
	assert_int_equal(store_add_backend(&f->s, lb, &b3, f->err, sizeof(f->err)), 0);
	f->changes = 0;
	f->st.compacts = 0;
	f->st.fail_put = ENOSPC;
	f->st.fail_del = EIO;

	/* create: neither in the model nor holding an address */
	create_fails(f, NULL, 81, LB_PROTO_TCP, -EIO);
	assert_string_equal(f->err,
			    "state: cannot write the state file (No space left on device); "
			    "nothing was changed");
	create_fails(f, "192.0.2.3", 81, LB_PROTO_TCP, -EIO);
	assert_string_equal(next_free(f), "192.0.2.2");
	create_fails(f, "198.51.100.1", 81, LB_PROTO_TCP, -EIO);

	assert_int_equal(store_add_backend(&f->s, lb, &(struct backend){ 0 }, f->err,
					   sizeof(f->err)), -EINVAL);
	{
		struct backend b4 = make_backend("10.0.0.4", 80);

		assert_int_equal(store_add_backend(&f->s, lb, &b4, f->err, sizeof(f->err)), -EIO);
		assert_int_equal(lb->n_backends, 3);
		assert_null(lb_find_backend(lb, b4.uuid));
	}
	/* the backend comes back in its place */
	assert_int_equal(store_remove_backend(&f->s, lb, b2.uuid, f->err, sizeof(f->err)), -EIO);
	assert_int_equal(lb->n_backends, 3);
	assert_string_equal(lb->backends[0].uuid, b1.uuid);
	assert_string_equal(lb->backends[1].uuid, b2.uuid);
	assert_string_equal(lb->backends[2].uuid, b3.uuid);
	assert_true(ip_addr_equal(&lb->backends[1].ip, &b2.ip));
	assert_int_equal(store_set_drained(&f->s, lb, &lb->backends[0], true, f->err,
					   sizeof(f->err)), -EIO);
	assert_false(lb->backends[0].drained);

	memcpy(uuid, lb->uuid, UUID_STR_LEN);
	assert_int_equal(store_delete_lb(&f->s, uuid, f->err, sizeof(f->err)), -EIO);
	assert_ptr_equal(model_find(f->s.model, uuid), lb);
	assert_string_equal(next_free(f), "192.0.2.2");
	assert_int_equal(f->changes, 0);
	assert_int_equal(f->st.compacts, 0);

	f->st.fail_put = f->st.fail_del = 0;
	assert_int_equal(store_delete_lb(&f->s, uuid, f->err, sizeof(f->err)), 0);
	assert_string_equal(next_free(f), "192.0.2.1");
	assert_int_equal(f->st.compacts, 1);
	fixture_free(f);
}

static void test_update(void **st)
{
	struct fixture *f = fixture_new(range3, 1, true);
	struct lb *cur = create(f, NULL, 80, LB_PROTO_TCP), *other, *next;
	struct backend b1 = make_backend("10.0.0.1", 80), b2 = make_backend("10.0.0.2", 80);
	char want[160];

	(void)st;
	other = create(f, "198.51.100.1", 80, LB_PROTO_TCP);
	assert_int_equal(store_add_backend(&f->s, cur, &b1, f->err, sizeof(f->err)), 0);
	assert_int_equal(store_add_backend(&f->s, cur, &b2, f->err, sizeof(f->err)), 0);
	cur->backends[0].health = BACKEND_HEALTH_UP;
	cur->backends[1].health = BACKEND_HEALTH_DOWN;

	/* no vip named: keeps its address; health of staying backends survives */
	next = lb_dup(cur);
	assert_non_null(next);
	memset(&next->vip, 0, sizeof(next->vip));
	next->vip_from_source = false;
	next->port = 8080;
	assert_int_equal(lb_set_name(next, "renamed"), 0);
	next->backends[0].health = BACKEND_HEALTH_UNKNOWN;
	next->backends[1].health = BACKEND_HEALTH_UNKNOWN;
	next->backends[1].port = 81; /* another address: its health is unknown again */
	assert_int_equal(store_update_lb(&f->s, next, f->err, sizeof(f->err)), 0);
	assert_ptr_equal(model_find(f->s.model, cur->uuid), cur);
	assert_string_equal(cur->name, "renamed");
	assert_int_equal(cur->port, 8080);
	assert_string_equal(vip_of(cur), "192.0.2.1");
	assert_true(cur->vip_from_source);
	assert_int_equal(cur->backends[0].health, BACKEND_HEALTH_UP);
	assert_int_equal(cur->backends[1].health, BACKEND_HEALTH_UNKNOWN);
	assert_string_equal(f->st.last_put, cur->uuid);

	/* moving onto another load balancer's listener is refused, nothing changes */
	next = lb_dup(cur);
	next->vip = other->vip;
	next->port = 80;
	assert_int_equal(store_update_lb(&f->s, next, f->err, sizeof(f->err)), -EEXIST);
	snprintf(want, sizeof(want),
		 "port: 198.51.100.1:80/tcp is already used by load balancer %s", other->uuid);
	assert_string_equal(f->err, want);
	assert_string_equal(vip_of(next), "198.51.100.1");
	lb_free(next);
	assert_int_equal(cur->port, 8080);

	/* a failed write leaves the old load balancer and gives the new vip back */
	next = lb_dup(cur);
	next->vip = addr("192.0.2.3");
	f->st.fail_put = EIO;
	assert_int_equal(store_update_lb(&f->s, next, f->err, sizeof(f->err)), -EIO);
	f->st.fail_put = 0;
	lb_free(next);
	assert_string_equal(vip_of(cur), "192.0.2.1");
	assert_string_equal(next_free(f), "192.0.2.2");

	/* a new vip: reserved; the old one released as cur was its last user */
	next = lb_dup(cur);
	next->vip = addr("192.0.2.3");
	assert_int_equal(store_update_lb(&f->s, next, f->err, sizeof(f->err)), 0);
	assert_string_equal(vip_of(cur), "192.0.2.3");
	assert_true(cur->vip_from_source);
	assert_string_equal(next_free(f), "192.0.2.1");
	assert_int_equal(cur->backends[0].health, BACKEND_HEALTH_UP);

	/* onto an address outside the ranges */
	next = lb_dup(cur);
	next->vip = addr("203.0.113.9");
	assert_int_equal(store_update_lb(&f->s, next, f->err, sizeof(f->err)), 0);
	assert_false(cur->vip_from_source);
	assert_string_equal(next_free(f), "192.0.2.1");
	{
		struct ip_addr a = addr("192.0.2.3");

		assert_int_equal(f->s.vips->ops->reserve(f->s.vips, "x", &a), 0);
		assert_int_equal(f->s.vips->ops->release(f->s.vips, &a), 0);
	}

	next = lb_new();
	assert_int_equal(store_update_lb(&f->s, next, f->err, sizeof(f->err)), -ENOENT);
	lb_free(next);
	fixture_free(f);
}

/* Puts into the model what state_load would have read. */
static struct lb *loaded(struct fixture *f, const char *vip, uint16_t port)
{
	struct lb *lb = new_lb(vip, port, LB_PROTO_TCP);

	if (!vip)
		lb->status = LB_STATUS_PENDING;
	assert_int_equal(model_add(f->s.model, lb), 0);
	return lb;
}

static void test_restore(void **st)
{
	struct fixture *f = fixture_new(range3, 1, true);
	struct lb *a = loaded(f, "192.0.2.2", 80), *b = loaded(f, "192.0.2.2", 443);
	struct lb *outside = loaded(f, "198.51.100.1", 80), *pending = loaded(f, NULL, 80), *n;
	char ua[UUID_STR_LEN], ub[UUID_STR_LEN];

	(void)st;
	assert_int_equal(store_restore(&f->s), 0);
	assert_true(a->vip_from_source && b->vip_from_source);
	assert_false(outside->vip_from_source);
	assert_string_equal(vip_of(outside), "198.51.100.1");
	/* the pending one gets the lowest free address, persisted */
	assert_string_equal(vip_of(pending), "192.0.2.1");
	assert_int_equal(pending->status, LB_STATUS_ACTIVE);
	assert_int_equal(f->st.puts, 1);
	assert_string_equal(f->st.last_put, pending->uuid);

	/* a restored vip is never handed out again */
	n = create(f, NULL, 80, LB_PROTO_TCP);
	assert_string_equal(vip_of(n), "192.0.2.3");
	create_fails(f, NULL, 80, LB_PROTO_TCP, -ENOSPC);

	memcpy(ua, a->uuid, UUID_STR_LEN);
	memcpy(ub, b->uuid, UUID_STR_LEN);
	assert_int_equal(store_delete_lb(&f->s, ua, f->err, sizeof(f->err)), 0);
	assert_string_equal(next_free(f), "none");
	assert_int_equal(store_delete_lb(&f->s, ub, f->err, sizeof(f->err)), 0);
	assert_string_equal(next_free(f), "192.0.2.2");
	fixture_free(f);
}

static void test_restore_failures(void **st)
{
	struct fixture *f = fixture_new(NULL, 0, false);
	struct lb *pending = loaded(f, NULL, 80), *named = loaded(f, "192.0.2.1", 80);

	(void)st;
	/* no source: a pending load balancer stays so, a named one is kept */
	assert_int_equal(store_restore(&f->s), -EINVAL);
	assert_int_equal(pending->status, LB_STATUS_PENDING);
	assert_false(ip_addr_is_set(&pending->vip));
	assert_int_equal(named->status, LB_STATUS_ACTIVE);
	fixture_free(f);

	f = fixture_new(range3, 1, true);
	pending = loaded(f, NULL, 80);
	f->st.fail_put = EIO;
	assert_int_equal(store_restore(&f->s), -EIO);
	assert_int_equal(pending->status, LB_STATUS_PENDING);
	assert_false(ip_addr_is_set(&pending->vip));
	assert_string_equal(next_free(f), "192.0.2.1");
	fixture_free(f);
}

/* A source that answers later, like a cloud API. */
static int later_allocate(struct vip_source *src, const char *owner, int family,
			  struct ip_addr *out)
{
	(void)src, (void)owner, (void)family, (void)out;
	return -EINPROGRESS;
}

static int later_reserve(struct vip_source *src, const char *owner, const struct ip_addr *a)
{
	(void)src, (void)owner, (void)a;
	return -ERANGE;
}

static int later_releases;
static char later_cancelled[UUID_STR_LEN];

static int later_release(struct vip_source *src, const struct ip_addr *a)
{
	(void)src, (void)a;
	later_releases++;
	return 0;
}

static void later_cancel(struct vip_source *src, const char *owner)
{
	(void)src;
	snprintf(later_cancelled, sizeof(later_cancelled), "%s", owner);
}

static int later_contains(const struct vip_source *src, const struct ip_addr *a)
{
	(void)src, (void)a;
	return 0;
}

static void test_pending(void **st)
{
	static const struct vip_source_ops later_ops = {
		.name = "later",
		.allocate = later_allocate,
		.reserve = later_reserve,
		.release = later_release,
		.contains = later_contains,
		.cancel = later_cancel,
	};
	struct vip_source later = { .ops = &later_ops };
	struct fixture *f = fixture_new(NULL, 0, true);
	struct lb *a, *b;
	char ua[UUID_STR_LEN];

	(void)st;
	f->s.vips = &later;
	a = create(f, NULL, 80, LB_PROTO_TCP);
	assert_int_equal(a->status, LB_STATUS_PENDING);
	assert_false(ip_addr_is_set(&a->vip));
	/* two pending load balancers on one port do not clash: neither has an address yet */
	b = create(f, NULL, 80, LB_PROTO_TCP);
	assert_int_equal(b->status, LB_STATUS_PENDING);
	assert_int_equal(f->st.puts, 2);
	assert_int_equal(store_restore(&f->s), 0);
	assert_int_equal(a->status, LB_STATUS_PENDING);
	memcpy(ua, a->uuid, UUID_STR_LEN);
	assert_int_equal(store_delete_lb(&f->s, ua, f->err, sizeof(f->err)), 0);
	/* deleting a pending load balancer stops its allocation */
	assert_string_equal(later_cancelled, ua);

	/* the answer arrives: b gets its address, persisted, and a reconcile is asked for */
	int changes = f->changes, puts = f->st.puts;
	struct ip_addr got = addr("198.51.100.7");

	store_vip_result(&f->s, b->uuid, 0, &got);
	assert_int_equal(b->status, LB_STATUS_ACTIVE);
	assert_string_equal(vip_of(b), "198.51.100.7");
	assert_true(b->vip_from_source);
	assert_int_equal(f->st.puts, puts + 1);
	assert_int_equal(f->changes, changes + 1);
	/* a second answer for b, and one for the deleted a, are given back, b keeps its own */
	store_vip_result(&f->s, b->uuid, 0, &(struct ip_addr){ .family = 0 });
	store_vip_result(&f->s, ua, 0, &got);
	assert_int_equal(later_releases, 2);
	assert_string_equal(vip_of(b), "198.51.100.7");

	/* an error leaves a load balancer pending; a state write that fails too */
	struct lb *c = create(f, NULL, 81, LB_PROTO_TCP);

	store_vip_result(&f->s, c->uuid, -ETIMEDOUT, NULL);
	assert_int_equal(c->status, LB_STATUS_PENDING);
	f->st.fail_put = EIO;
	store_vip_result(&f->s, c->uuid, 0, &got);
	assert_int_equal(c->status, LB_STATUS_PENDING);
	assert_false(ip_addr_is_set(&c->vip));
	f->s.vips = NULL;
	fixture_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_allocates),
		cmocka_unit_test(test_create_without_source),
		cmocka_unit_test(test_create_explicit_vip),
		cmocka_unit_test(test_create_duplicate_uuid),
		cmocka_unit_test(test_shared_vip_and_listener_conflict),
		cmocka_unit_test(test_delete_releases_when_last_user),
		cmocka_unit_test(test_backends),
		cmocka_unit_test(test_state_failure_undoes),
		cmocka_unit_test(test_update),
		cmocka_unit_test(test_restore),
		cmocka_unit_test(test_restore_failures),
		cmocka_unit_test(test_pending),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
