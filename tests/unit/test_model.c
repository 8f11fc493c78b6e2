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

#include "addr.h"
#include "model.h"

static void test_addr_parse_and_print(void **st)
{
	struct ip_addr a, b;
	char buf[IP_ADDR_STRLEN];

	(void)st;
	assert_int_equal(ip_addr_parse("192.0.2.1", &a), 0);
	assert_int_equal(a.family, AF_INET);
	assert_string_equal(ip_addr_str(&a, buf), "192.0.2.1");
	assert_int_equal(ip_addr_parse("2001:DB8::1", &b), 0);
	assert_int_equal(b.family, AF_INET6);
	assert_string_equal(ip_addr_str(&b, buf), "2001:db8::1");
	assert_true(ip_addr_cmp(&a, &b) < 0);
	assert_true(ip_addr_cmp(&b, &a) > 0);
	assert_int_not_equal(ip_addr_parse("192.0.2.256", &a), 0);
	assert_int_not_equal(ip_addr_parse("example.com", &a), 0);
	assert_int_not_equal(ip_addr_parse("10.0.0.0/8", &a), 0);
	assert_int_not_equal(ip_addr_parse("", &a), 0);
}

static void test_uuid(void **st)
{
	char a[UUID_STR_LEN], b[UUID_STR_LEN];

	(void)st;
	uuid_generate_v4(a);
	uuid_generate_v4(b);
	assert_true(uuid_is_valid(a));
	assert_string_not_equal(a, b);
	assert_int_equal(a[14], '4');
	uuid_from_name("web", a);
	uuid_from_name("web", b);
	assert_string_equal(a, b);
	assert_true(uuid_is_valid(a));
	uuid_from_name("web2", b);
	assert_string_not_equal(a, b);
	assert_false(uuid_is_valid("087fcb0f-8e07-4123-a32f-e8e83a28102"));
	assert_false(uuid_is_valid("087fcb0f-8e07-4123-a32f-e8e83a2810233"));
	assert_false(uuid_is_valid("087fcb0fx8e07-4123-a32f-e8e83a281023"));
	assert_true(uuid_is_valid("087fcb0f-8e07-4123-a32f-e8e83a281023"));
}

static void test_names(void **st)
{
	enum lb_forwarding f;
	enum lb_scheduler s;
	enum backend_type t;

	(void)st;
	assert_int_equal(lb_forwarding_parse("masq", &f), 0);
	assert_int_equal(f, LB_FWD_NAT);
	assert_string_equal(lb_forwarding_name(f), "nat");
	assert_int_equal(lb_forwarding_parse("droute", &f), 0);
	assert_string_equal(lb_forwarding_name(f), "dsr");
	assert_int_equal(lb_scheduler_parse("maglev", &s), 0);
	assert_string_equal(lb_scheduler_name(s), "mh");
	assert_int_not_equal(lb_scheduler_parse("random", &s), 0);
	assert_int_equal(backend_type_parse("local", &t), 0);
	assert_string_equal(backend_type_name(t), "LOCAL");
}

static struct lb *make_lb(const char *vip, uint16_t port)
{
	struct lb *lb = lb_new();

	assert_non_null(lb);
	assert_int_equal(lb_set_name(lb, "x"), 0);
	assert_int_equal(ip_addr_parse(vip, &lb->vip), 0);
	lb->port = port;
	return lb;
}

static void test_backends(void **st)
{
	struct lb *lb = make_lb("192.0.2.1", 80), *copy;
	struct backend b;
	char uuid[UUID_STR_LEN];

	(void)st;
	for (int i = 0; i < 10; i++) {
		backend_init(&b);
		assert_int_equal(ip_addr_parse("10.0.0.1", &b.ip), 0);
		b.port = (uint16_t)(8000 + i);
		assert_int_equal(lb_add_backend(lb, &b), 0);
	}
	assert_int_equal(lb->n_backends, 10);
	memcpy(uuid, lb->backends[3].uuid, sizeof(uuid));
	assert_non_null(lb_find_backend(lb, uuid));
	assert_non_null(lb_find_backend_addr(lb, &b.ip, 8009));
	assert_int_equal(lb_remove_backend(lb, uuid), 0);
	assert_null(lb_find_backend(lb, uuid));
	assert_int_equal(lb_remove_backend(lb, uuid), -ENOENT);
	assert_int_equal(lb->n_backends, 9);
	assert_int_equal(lb->backends[3].port, 8004);

	lb->backends[0].drained = true;
	assert_int_equal(backend_effective_weight(lb, &lb->backends[0]), 0);
	lb->backends[1].health = BACKEND_HEALTH_DOWN;
	assert_int_equal(backend_effective_weight(lb, &lb->backends[1]), 0);
	assert_int_equal(backend_effective_weight(lb, &lb->backends[2]), 1);

	assert_int_equal(lb_set_name(lb, "renamed"), 0);
	lb->hc.http_path = strdup("/health");
	copy = lb_dup(lb);
	assert_non_null(copy);
	assert_string_equal(copy->name, "renamed");
	assert_string_equal(copy->hc.http_path, "/health");
	assert_ptr_not_equal(copy->hc.http_path, lb->hc.http_path);
	assert_int_equal(copy->n_backends, 9);
	assert_memory_equal(copy->backends, lb->backends, 9 * sizeof(struct backend));
	lb_free(copy);
	lb_free(lb);
}

static void test_model_index(void **st)
{
	struct model *m = model_new();
	char uuids[3000][UUID_STR_LEN];
	struct ip_addr vip;

	(void)st;
	for (int i = 0; i < 3000; i++) {
		char a[32];
		struct lb *lb;

		snprintf(a, sizeof(a), "10.%d.%d.1", i / 256, i % 256);
		lb = make_lb(a, 80);
		memcpy(uuids[i], lb->uuid, UUID_STR_LEN);
		assert_int_equal(model_add(m, lb), 0);
	}
	assert_int_equal(model_count(m), 3000);
	for (int i = 0; i < 3000; i += 2)
		lb_free(model_take(m, uuids[i]));
	assert_int_equal(model_count(m), 1500);
	for (int i = 0; i < 3000; i++) {
		struct lb *lb = model_find(m, uuids[i]);

		if (i % 2)
			assert_non_null(lb);
		else
			assert_null(lb);
	}
	/* insertion order survives removals */
	assert_string_equal(model_at(m, 0)->uuid, uuids[1]);
	assert_string_equal(model_at(m, 1499)->uuid, uuids[2999]);
	assert_null(model_take(m, uuids[0]));

	assert_int_equal(ip_addr_parse("10.0.1.1", &vip), 0);
	assert_non_null(model_find_listener(m, &vip, 80, LB_PROTO_TCP));
	assert_null(model_find_listener(m, &vip, 81, LB_PROTO_TCP));
	assert_null(model_find_listener(m, &vip, 80, LB_PROTO_UDP));
	assert_int_equal(model_vip_users(m, &vip), 1);

	{
		struct lb *dup = make_lb("10.9.9.9", 1);

		memcpy(dup->uuid, uuids[1], UUID_STR_LEN);
		assert_int_equal(model_add(m, dup), -EEXIST);
		lb_free(dup);
	}
	model_free(m);
}

/* The generation moves with every change of the set and with model_touch, not with
 * lookups, and two models never share one. */
static void test_model_generation(void **st)
{
	struct model *a = model_new(), *b = model_new();
	struct lb *lb = make_lb("10.0.0.1", 80);
	uint64_t g = model_generation(a);
	char uuid[UUID_STR_LEN];

	(void)st;
	assert_int_not_equal(g, model_generation(b));
	memcpy(uuid, lb->uuid, UUID_STR_LEN);
	assert_int_equal(model_add(a, lb), 0);
	assert_int_not_equal(model_generation(a), g);
	g = model_generation(a);
	assert_non_null(model_find(a, uuid));
	assert_int_equal(model_vip_users(a, &lb->vip), 1);
	assert_int_equal(model_generation(a), g);
	model_touch(a);
	assert_int_not_equal(model_generation(a), g);
	g = model_generation(a);
	lb = make_lb("10.0.0.2", 80);
	assert_int_equal(model_add(a, lb), 0);
	assert_int_equal(model_add(a, lb), -EEXIST);
	g = model_generation(a);
	lb_free(model_take(a, uuid));
	assert_int_not_equal(model_generation(a), g);
	g = model_generation(a);
	assert_null(model_take(a, uuid));
	assert_int_equal(model_generation(a), g);

	/* A VIP changed in place: before the touch the old VIP is no longer counted (the store
	 * asks exactly that, to release it); after it the new one is. */
	{
		struct ip_addr old = lb->vip, nv;

		assert_int_equal(model_vip_users(a, &old), 1);
		assert_int_equal(ip_addr_parse("10.0.0.9", &nv), 0);
		lb->vip = nv;
		assert_int_equal(model_vip_users(a, &old), 0);
		assert_false(model_vip_serving(a, &old));
		model_touch(a);
		assert_int_equal(model_vip_users(a, &nv), 1);
		assert_int_equal(model_vip_users(a, &old), 0);
	}
	model_free(a);
	model_free(b);
}

static void test_addr_sort_unique(void **st)
{
	const char *in[] = { "10.0.0.2", "::1", "10.0.0.1", "10.0.0.2", "", "10.0.0.1", "::1",
			     "192.168.0.1" };
	const char *want[] = { "10.0.0.1", "10.0.0.2", "192.168.0.1", "::1" };
	struct ip_addr a[8], probe;
	char buf[IP_ADDR_STRLEN];
	size_t n;

	(void)st;
	memset(a, 0, sizeof(a));
	for (size_t i = 0; i < 8; i++)
		if (in[i][0])
			assert_int_equal(ip_addr_parse(in[i], &a[i]), 0);
	n = ip_addr_sort_unique(a, 8);
	assert_int_equal(n, 4);
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(ip_addr_str(&a[i], buf), want[i]);
		assert_true(ip_addr_in_sorted(a, n, &a[i]));
	}
	assert_int_equal(ip_addr_parse("10.0.0.3", &probe), 0);
	assert_false(ip_addr_in_sorted(a, n, &probe));
	assert_false(ip_addr_in_sorted(a, 0, &a[0]));
	assert_int_equal(ip_addr_sort_unique(a, 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addr_parse_and_print),
		cmocka_unit_test(test_uuid),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_backends),
		cmocka_unit_test(test_model_index),
		cmocka_unit_test(test_model_generation),
		cmocka_unit_test(test_addr_sort_unique),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
