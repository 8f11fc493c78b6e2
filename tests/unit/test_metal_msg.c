/*
 * cloud/metal_msg: request bodies, the parsers on the samples in tests/data/metal (their
 * sources are in its README.md: Metal's OpenAPI spec, packngo, packethost/network-helpers,
 * a metadata document captured by siderolabs/talos), wrong and hostile input, BIRD's peer
 * file (checked by BIRD itself when it is installed) and the retry schedule.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cloud/metal_msg.h"

#define LB_A "0b7c3f1e-5a2d-4c8e-9f10-3d2e1c0b9a87"
#define LB_B "3a1f9e2d-7c4b-4d6a-8e5f-0a1b2c3d4e5f"
#define LB_C "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f"
#define LB_D "d4e5f6a7-b8c9-4d0e-8f1a-2b3c4d5e6f7a"
#define BIRD_BIN "/usr/sbin/bird"

static char err[512];

/* A file of tests/data/metal, NUL-terminated; fails the test when missing. */
static char *data(const char *name, size_t *len)
{
	const char *src = getenv("SRCDIR");
	char path[4096];
	struct stat st;
	char *buf;
	FILE *f;

	snprintf(path, sizeof(path), "%s/tests/data/metal/%s", src ? src : ".", name);
	f = fopen(path, "rb");
	if (!f)
		fail_msg("cannot open %s (set SRCDIR)", path);
	assert_int_equal(fstat(fileno(f), &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)st.st_size, f), (size_t)st.st_size);
	fclose(f);
	buf[st.st_size] = '\0';
	*len = (size_t)st.st_size;
	return buf;
}

static const char *addr(const struct ip_addr *a)
{
	static char buf[4][IP_ADDR_STRLEN];
	static int i;

	i = (i + 1) % 4;
	return ip_addr_str(a, buf[i]);
}

static bool has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* --- the reservation request ------------------------------------------------------------ */

static cJSON *body_of(const struct metal_reserve *r)
{
	char *text;
	cJSON *j;

	assert_int_equal(metal_reserve_body(r, &text), 0);
	j = cJSON_Parse(text);
	assert_non_null(j);
	free(text);
	return j;
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void test_reserve_body(void **st)
{
	struct metal_reserve r = {
		.metro = "NY", .lb_uuid = "0B7C3F1E-5A2D-4C8E-9F10-3D2E1C0B9A87",
		.lb_name = "web \"front\" \xc3\xa9", .hostname = "vipd-node-1",
	};
	const cJSON *tags;
	cJSON *j;
	char *text;

	(void)st;
	j = body_of(&r);
	assert_string_equal(jstr(j, "type"), "public_ipv4");
	assert_true(cJSON_GetObjectItem(j, "quantity")->valuedouble == 1);
	assert_string_equal(jstr(j, "metro"), "ny");
	assert_null(cJSON_GetObjectItem(j, "facility"));
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "fail_on_approval_required")));
	tags = cJSON_GetObjectItem(j, "tags");
	assert_int_equal(cJSON_GetArraySize(tags), 3);
	assert_string_equal(cJSON_GetArrayItem(tags, 0)->valuestring, "vipd");
	assert_string_equal(cJSON_GetArrayItem(tags, 1)->valuestring, "vipd:lb=" LB_A);
	assert_string_equal(cJSON_GetArrayItem(tags, 2)->valuestring, "vipd:host=vipd-node-1");
	assert_string_equal(jstr(j, "details"),
			    "vipd load balancer " LB_A " (web \"front\" \xc3\xa9)");
	assert_null(cJSON_GetObjectItem(j, "comments"));
	cJSON_Delete(j);

	/* By facility, no host, no name, with comments: exactly the keys the API knows. */
	r = (struct metal_reserve){ .facility = "ny5", .lb_uuid = LB_A, .comments = "x\ny" };
	assert_int_equal(metal_reserve_body(&r, &text), 0);
	assert_string_equal(text, "{\"type\":\"public_ipv4\",\"quantity\":1,\"facility\":\"ny5\","
			    "\"fail_on_approval_required\":true,\"tags\":[\"vipd\",\"vipd:lb="
			    LB_A "\"],\"details\":\"vipd load balancer " LB_A "\","
			    "\"comments\":\"x\\ny\"}");
	free(text);

	/* What it refuses. */
	text = (char *)1;
	r = (struct metal_reserve){ .metro = "ny", .facility = "ny5", .lb_uuid = LB_A };
	assert_int_equal(metal_reserve_body(&r, &text), -EINVAL);
	assert_null(text);
	r = (struct metal_reserve){ .lb_uuid = LB_A };
	assert_int_equal(metal_reserve_body(&r, &text), -EINVAL);
	r = (struct metal_reserve){ .metro = "", .facility = "", .lb_uuid = LB_A };
	assert_int_equal(metal_reserve_body(&r, &text), -EINVAL);
	r = (struct metal_reserve){ .metro = "n y", .lb_uuid = LB_A };
	assert_int_equal(metal_reserve_body(&r, &text), -EINVAL);
	r = (struct metal_reserve){ .metro = "ny\",\"x\":\"", .lb_uuid = LB_A };
	assert_int_equal(metal_reserve_body(&r, &text), -EINVAL);
	r = (struct metal_reserve){ .metro = "ny", .lb_uuid = "web" };
	assert_int_equal(metal_reserve_body(&r, &text), -EINVAL);
	r = (struct metal_reserve){ .metro = "ny", .lb_uuid = LB_A "0" };
	assert_int_equal(metal_reserve_body(&r, &text), -EINVAL);
	r = (struct metal_reserve){ .metro = "ny", .lb_uuid = NULL };
	assert_int_equal(metal_reserve_body(&r, &text), -EINVAL);
	r = (struct metal_reserve){ .metro = "ny", .lb_uuid = LB_A, .hostname = "a b" };
	assert_int_equal(metal_reserve_body(&r, &text), -EINVAL);
	r = (struct metal_reserve){ .metro = "ny", .lb_uuid = LB_A, .hostname = "" };
	assert_int_equal(metal_reserve_body(&r, &text), -EINVAL);
	assert_null(text);
}

/* What vipd asks for is what it recognises as its own: build, pretend the API echoed the
 * tags back on a reservation, parse. */
static void test_reserve_round_trip(void **st)
{
	struct metal_reserve r = { .metro = "sv", .lb_uuid = LB_C, .hostname = "n.example" };
	struct metal_ip ip;
	cJSON *j, *res;
	char *text;

	(void)st;
	j = body_of(&r);
	res = cJSON_Parse("{\"id\":\"0a0b0c0d-0000-4000-8000-000000000001\",\"type\":"
			  "\"public_ipv4\",\"state\":\"created\",\"address_family\":4,"
			  "\"cidr\":32,\"public\":true,\"address\":\"198.51.100.200\","
			  "\"metro\":{\"code\":\"sv\"},\"facility\":null}");
	assert_non_null(res);
	cJSON_AddItemToObject(res, "tags", cJSON_DetachItemFromObject(j, "tags"));
	text = cJSON_PrintUnformatted(res);
	assert_int_equal(metal_ip_parse(text, strlen(text), &ip, err, sizeof(err)), 0);
	assert_true(ip.vipd);
	assert_string_equal(ip.lb_uuid, LB_C);
	assert_string_equal(ip.host, "n.example");
	assert_string_equal(ip.metro, "sv");
	free(text);
	cJSON_Delete(res);
	cJSON_Delete(j);
}

/* --- reservations -------------------------------------------------------------------------- */

static void test_ip_samples(void **st)
{
	struct metal_ip ip;
	size_t len;
	char *t;

	(void)st;
	t = data("reservation-created.json", &len);
	assert_int_equal(metal_ip_parse(t, len, &ip, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_string_equal(ip.id, "6d4f2a3e-9b1c-4e7a-8f05-2c3b4d5e6f70");
	assert_int_equal(ip.state, METAL_IP_CREATED);
	assert_string_equal(addr(&ip.address), "198.51.100.7");
	assert_false(ip.global);
	assert_string_equal(ip.metro, "ny");
	assert_string_equal(ip.facility, "");
	assert_string_equal(ip.created_at, "2024-05-01T12:00:00Z");
	assert_true(ip.vipd);
	assert_string_equal(ip.lb_uuid, LB_A);
	assert_string_equal(ip.host, "vipd-node-1");
	free(t);

	t = data("reservation-facility.json", &len);
	assert_int_equal(metal_ip_parse(t, len, &ip, err, sizeof(err)), 0);
	assert_string_equal(ip.facility, "am6");
	assert_string_equal(ip.metro, "am");
	assert_string_equal(ip.lb_uuid, LB_B); /* the tag was upper case */
	assert_string_equal(ip.host, "");
	assert_string_equal(addr(&ip.address), "147.75.80.222");
	free(t);

	t = data("reservation-pending.json", &len);
	assert_int_equal(metal_ip_parse(t, len, &ip, err, sizeof(err)), 0);
	assert_int_equal(ip.state, METAL_IP_PENDING);
	assert_false(ip_addr_is_set(&ip.address));
	assert_string_equal(ip.lb_uuid, LB_A);
	free(t);
}

/* A created /32 with one member replaced (or removed, value NULL). */
static const char *ip_with(const char *key, const char *value)
{
	static char out[4096];
	cJSON *j = cJSON_Parse("{\"id\":\"6d4f2a3e-9b1c-4e7a-8f05-2c3b4d5e6f70\",\"type\":"
			       "\"public_ipv4\",\"state\":\"created\",\"address_family\":4,"
			       "\"cidr\":32,\"public\":true,\"address\":\"198.51.100.7\","
			       "\"tags\":[\"vipd\"],\"metro\":{\"code\":\"ny\"},"
			       "\"created_at\":\"2024-05-01T12:00:00Z\"}");
	char *s;

	assert_non_null(j);
	cJSON_DeleteItemFromObject(j, key);
	if (value)
		cJSON_AddItemToObject(j, key, cJSON_Parse(value));
	s = cJSON_PrintUnformatted(j);
	snprintf(out, sizeof(out), "%s", s);
	free(s);
	cJSON_Delete(j);
	return out;
}

static void expect_ip_err(const char *text, const char *msg)
{
	struct metal_ip ip;

	memset(&ip, 0x5a, sizeof(ip));
	err[0] = '\0';
	if (metal_ip_parse(text, strlen(text), &ip, err, sizeof(err)) != -EINVAL)
		fail_msg("accepted: %s", text);
	if (!strstr(err, msg))
		fail_msg("for %s\n  got: %s\n want: %s", text, err, msg);
	assert_false(has_control(err));
	assert_false(ip.vipd); /* nothing half-parsed is left behind */
}

static void test_ip_errors(void **st)
{
	(void)st;
	expect_ip_err(ip_with("id", NULL), "id: missing");
	expect_ip_err(ip_with("id", "\"../projects/x\""), "id: not a Metal id: \"../projects/x\"");
	expect_ip_err(ip_with("id", "7"), "id: must be a string, not a number");
	expect_ip_err(ip_with("type", "\"private_ipv4\""),
		      "type: vipd uses public_ipv4 and global_ipv4 reservations, not "
		      "\"private_ipv4\"");
	expect_ip_err(ip_with("type", NULL), "type: missing");
	expect_ip_err(ip_with("state", NULL), "state: missing");
	expect_ip_err(ip_with("cidr", "29"), "cidr: must be 32 (vipd reserves single addresses)");
	expect_ip_err(ip_with("cidr", "\"32\""), "cidr: must be a number, not a string");
	expect_ip_err(ip_with("cidr", "32.5"), "cidr: must be an integer 0..128");
	expect_ip_err(ip_with("cidr", "null"), "cidr: missing");
	expect_ip_err(ip_with("public", "false"), "public: must be true");
	expect_ip_err(ip_with("public", "\"yes\""), "public: must be true or false, not a string");
	expect_ip_err(ip_with("address_family", "6"), "address_family: must be 4");
	expect_ip_err(ip_with("address", "\"2001:db8::1\""), "address: not an IPv4 address");
	expect_ip_err(ip_with("address", "\"198.51.100.7/32\""), "address: not an IPv4 address");
	expect_ip_err(ip_with("address", NULL), "address: missing");
	expect_ip_err(ip_with("tags", "\"vipd\""), "tags: must be an array, not a string");
	expect_ip_err(ip_with("tags", "[\"vipd\", 3]"), "tags[1]: must be a string, not a number");
	expect_ip_err(ip_with("tags", "[\"vipd:lb=web\"]"),
		      "tags[0]: \"vipd:lb=web\" does not name a load balancer uuid");
	expect_ip_err(ip_with("tags", "[\"vipd:lb=" LB_A "\", \"vipd:lb=" LB_B "\"]"),
		      "tags[1]: a second load balancer (" LB_A " and " LB_B ")");
	expect_ip_err(ip_with("metro", "{\"code\":\"n\\u001by\"}"),
		      "metro: not a location code: \"n\\x1by\"");
	expect_ip_err(ip_with("metro", "{\"code\":5}"), "metro.code: must be a string");
	expect_ip_err(ip_with("created_at", "\"2024 05\""), "created_at: not a time");
	expect_ip_err("[1]", "the document: must be an object, not an array");
	expect_ip_err("{\"id\":", "line 1, column 6: JSON syntax error");
	expect_ip_err("{} x", "text after the end of the document");
	expect_ip_err("", "unexpected end of the document");
}

static void test_ip_tolerant(void **st)
{
	struct metal_ip ip;
	const char *t;

	(void)st;
	/* The same tag twice, unknown fields, an unknown state (not usable, no address read). */
	t = ip_with("tags", "[\"vipd:lb=" LB_A "\", \"vipd:lb=" LB_A "\", \"other\"]");
	assert_int_equal(metal_ip_parse(t, strlen(t), &ip, err, sizeof(err)), 0);
	assert_true(ip.vipd);
	t = ip_with("state", "\"provisioning\"");
	assert_int_equal(metal_ip_parse(t, strlen(t), &ip, err, sizeof(err)), 0);
	assert_int_equal(ip.state, METAL_IP_OTHER);
	t = ip_with("metro", "\"SV\"");
	assert_int_equal(metal_ip_parse(t, strlen(t), &ip, err, sizeof(err)), 0);
	assert_string_equal(ip.metro, "sv");
	/* A host tag vipd could not have written is left out, not an error. */
	t = ip_with("tags", "[\"vipd\", \"vipd:host=a b\"]");
	assert_int_equal(metal_ip_parse(t, strlen(t), &ip, err, sizeof(err)), 0);
	assert_string_equal(ip.host, "");
	/* Not NUL-terminated: only len bytes are read. */
	t = ip_with("tags", "[]");
	assert_int_equal(metal_ip_parse(t, strlen(t), &ip, err, sizeof(err)), 0);
	assert_false(ip.vipd);
	assert_int_equal(metal_ip_parse(t, strlen(t) - 1, &ip, err, sizeof(err)), -EINVAL);
}

static void test_ip_list(void **st)
{
	struct metal_ip_list l = { 0 };
	struct metal_page pg;
	char url[1024];
	size_t len;
	char *t;

	(void)st;
	t = data("ip-list-page1.json", &len);
	assert_int_equal(metal_ip_list_parse(t, len, &l, &pg, err, sizeof(err)), 0);
	free(t);
	assert_int_equal(l.n, 3);
	assert_int_equal(l.n_other, 4);
	assert_int_equal(l.n_bad, 1);
	assert_string_equal(l.bad, "ip_addresses[7].cidr: must be 32 (vipd reserves single "
			    "addresses), not 29");
	assert_string_equal(l.ips[0].id, "6d4f2a3e-9b1c-4e7a-8f05-2c3b4d5e6f70");
	assert_string_equal(l.ips[1].host, "vipd-node-2");
	assert_string_equal(l.ips[2].metro, "am");
	assert_int_equal(pg.current, 1);
	assert_int_equal(pg.last, 2);
	assert_int_equal(pg.total, 12);
	assert_string_equal(pg.next, "/metal/v1/projects/c895ea67-40ce-4f98-bd97-fe0b2e771481/"
			    "ips?page=2&per_page=8");
	assert_int_equal(metal_page_next_url("https://api.equinix.com/metal/v1", &pg, url,
					     sizeof(url)), 0);
	assert_string_equal(url, "https://api.equinix.com/metal/v1/projects/"
			    "c895ea67-40ce-4f98-bd97-fe0b2e771481/ips?page=2&per_page=8");

	t = data("ip-list-page2.json", &len);
	assert_int_equal(metal_ip_list_parse(t, len, &l, &pg, err, sizeof(err)), 0);
	free(t);
	assert_int_equal(l.n, 7);
	assert_int_equal(l.n_other, 4);
	assert_int_equal(l.n_bad, 1);
	assert_string_equal(l.ips[3].facility, "ny5");
	assert_int_equal(l.ips[4].state, METAL_IP_PENDING);
	assert_string_equal(l.ips[5].lb_uuid, "");
	assert_true(l.ips[6].global);
	assert_string_equal(l.ips[6].metro, "");
	assert_int_equal(pg.current, 2);
	assert_string_equal(pg.next, "");
	assert_int_equal(metal_page_next_url("https://api.equinix.com/metal/v1", &pg, url,
					     sizeof(url)), -ENOENT);
	metal_ip_list_free(&l);
	assert_null(l.ips);
	assert_int_equal(l.n, 0);
}

static void test_next_url(void **st)
{
	struct metal_page pg = { .next = "/projects/p/ips?page=3" };
	char url[64];

	(void)st;
	/* next without the base's path, base with and without a trailing slash or a path. */
	assert_int_equal(metal_page_next_url("https://api.equinix.com/metal/v1/", &pg, url,
					     sizeof(url)), 0);
	assert_string_equal(url, "https://api.equinix.com/metal/v1/projects/p/ips?page=3");
	assert_int_equal(metal_page_next_url("http://127.0.0.1:4000", &pg, url, sizeof(url)), 0);
	assert_string_equal(url, "http://127.0.0.1:4000/projects/p/ips?page=3");
	snprintf(pg.next, sizeof(pg.next), "/metal/v1/devices?page=2");
	assert_int_equal(metal_page_next_url("http://[::1]:80/metal/v1", &pg, url, sizeof(url)),
			 0);
	assert_string_equal(url, "http://[::1]:80/metal/v1/devices?page=2");
	/* A path that only starts like the base's is not it. */
	snprintf(pg.next, sizeof(pg.next), "/metal/v10/x");
	assert_int_equal(metal_page_next_url("http://h/metal/v1", &pg, url, sizeof(url)), 0);
	assert_string_equal(url, "http://h/metal/v1/metal/v10/x");
	assert_int_equal(metal_page_next_url("http://h/metal/v1", &pg, url, 10), -ENAMETOOLONG);
	assert_int_equal(metal_page_next_url("h/metal/v1", &pg, url, sizeof(url)), -EINVAL);
	assert_int_equal(metal_page_next_url("http:///metal/v1", &pg, url, sizeof(url)), -EINVAL);
	assert_int_equal(metal_page_next_url("http://", &pg, url, sizeof(url)), -EINVAL);
}

static void expect_list_err(const char *text, const char *msg)
{
	struct metal_ip_list l = { 0 };
	struct metal_page pg;

	if (metal_ip_list_parse(text, strlen(text), &l, &pg, err, sizeof(err)) != -EINVAL)
		fail_msg("accepted: %s", text);
	if (!strstr(err, msg))
		fail_msg("for %s\n  got: %s\n want: %s", text, err, msg);
	metal_ip_list_free(&l);
}

static void test_ip_list_errors(void **st)
{
	(void)st;
	expect_list_err("{}", "ip_addresses: missing");
	expect_list_err("{\"ip_addresses\":{}}", "ip_addresses: must be an array, not an object");
	expect_list_err("{\"ip_addresses\":[7]}", "ip_addresses[0]: must be an object");
	expect_list_err("{\"ip_addresses\":[],\"meta\":[]}", "meta: must be an object");
	expect_list_err("{\"ip_addresses\":[],\"meta\":{\"last_page\":-1}}",
			"meta.last_page: must be an integer");
	expect_list_err("{\"ip_addresses\":[],\"meta\":{\"next\":\"/x\"}}",
			"meta.next: must be an object, not a string");
	expect_list_err("{\"ip_addresses\":[],\"meta\":{\"next\":{}}}", "meta.next.href: missing");
	expect_list_err("{\"ip_addresses\":[],\"meta\":{\"next\":{\"href\":\"https://evil/\"}}}",
			"meta.next.href: not a path on the API's host: \"https://evil/\"");
	expect_list_err("{\"ip_addresses\":[],\"meta\":{\"next\":{\"href\":\"//evil/x\"}}}",
			"meta.next.href: not a path");
	expect_list_err("{\"ip_addresses\":[],\"meta\":{\"next\":{\"href\":\"/a b\"}}}",
			"meta.next.href: not a path");
}

/* More vipd entries than METAL_LIST_MAX over two pages: -E2BIG, what was kept stays. */
static void test_ip_list_huge(void **st)
{
	struct metal_ip_list l = { 0 };
	size_t n = METAL_LIST_MAX / 2 + 1, cap = n * 96 + 64, used;
	char *t = malloc(cap);

	(void)st;
	assert_non_null(t);
	used = (size_t)snprintf(t, cap, "{\"ip_addresses\":[");
	for (size_t i = 0; i < n; i++)
		used += (size_t)snprintf(t + used, cap - used, "%s{\"id\":\"x%zu\",\"type\":"
					 "\"public_ipv4\",\"state\":\"pending\",\"tags\":"
					 "[\"vipd\"]}", i ? "," : "", i);
	used += (size_t)snprintf(t + used, cap - used, "]}");
	assert_int_equal(metal_ip_list_parse(t, used, &l, NULL, err, sizeof(err)), 0);
	assert_int_equal(l.n, n);
	assert_int_equal(metal_ip_list_parse(t, used, &l, NULL, err, sizeof(err)), -E2BIG);
	assert_string_equal(err, "ip_addresses: more than 10000 reservations tagged for vipd");
	assert_int_equal(l.n, METAL_LIST_MAX);
	metal_ip_list_free(&l);
	free(t);
}

static struct metal_ip_list both_pages(void)
{
	struct metal_ip_list l = { 0 };
	const char *names[] = { "ip-list-page1.json", "ip-list-page2.json" };

	for (int i = 0; i < 2; i++) {
		size_t len;
		char *t = data(names[i], &len);

		assert_int_equal(metal_ip_list_parse(t, len, &l, NULL, err, sizeof(err)), 0);
		free(t);
	}
	return l;
}

static void test_ip_own(void **st)
{
	struct metal_ip_list l = both_pages();
	const char *recorded[] = { NULL, "7E5A3B4F-0C2D-4F8B-9A16-3D4C5E6F7A81" };
	struct metal_owned o;
	const struct metal_own *w;

	(void)st;
	/* In New York (ny5): A's earliest, C's, the global D's; A's later one, the pending
	 * one and the one without an lb tag are extra; Amsterdam's B is neither. */
	assert_int_equal(metal_ip_list_own(&l, "ny", "ny5", NULL, 0, &o), 0);
	assert_int_equal(o.n_own, 3);
	assert_string_equal(o.own[0].lb_uuid, LB_A);
	assert_string_equal(l.ips[o.own[0].ip].id, "6d4f2a3e-9b1c-4e7a-8f05-2c3b4d5e6f70");
	assert_string_equal(o.own[1].lb_uuid, LB_C);
	assert_string_equal(o.own[2].lb_uuid, LB_D);
	assert_int_equal(o.n_extra, 3);
	assert_string_equal(l.ips[o.extra[0]].id, "7e5a3b4f-0c2d-4f8b-9a16-3d4c5e6f7a81");
	assert_string_equal(l.ips[o.extra[1]].id, "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a");
	assert_string_equal(l.ips[o.extra[2]].id, "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d");
	w = metal_own_find(&o, "0B7C3F1E-5A2D-4C8E-9F10-3D2E1C0B9A87");
	assert_ptr_equal(w, &o.own[0]);
	assert_null(metal_own_find(&o, LB_B));
	metal_owned_free(&o);

	/* The one on record wins even though it is younger. */
	assert_int_equal(metal_ip_list_own(&l, "ny", NULL, recorded, 2, &o), 0);
	w = metal_own_find(&o, LB_A);
	assert_non_null(w);
	assert_string_equal(l.ips[w->ip].id, "7e5a3b4f-0c2d-4f8b-9a16-3d4c5e6f7a81");
	assert_string_equal(l.ips[o.extra[0]].id, "6d4f2a3e-9b1c-4e7a-8f05-2c3b4d5e6f70");
	metal_owned_free(&o);

	/* Another facility: only the global one. A facility's reservation matches its
	 * facility although Metal names its metro too. */
	assert_int_equal(metal_ip_list_own(&l, NULL, "fr2", NULL, 0, &o), 0);
	assert_int_equal(o.n_own, 1);
	assert_string_equal(o.own[0].lb_uuid, LB_D);
	assert_int_equal(o.n_extra, 0);
	metal_owned_free(&o);
	assert_int_equal(metal_ip_list_own(&l, NULL, "AM6", NULL, 0, &o), 0);
	assert_int_equal(o.n_own, 2);
	assert_non_null(metal_own_find(&o, LB_B));
	assert_non_null(metal_own_find(&o, LB_D));
	metal_owned_free(&o);
	assert_int_equal(metal_ip_list_own(&l, "AM", NULL, NULL, 0, &o), 0);
	assert_int_equal(o.n_own, 2);
	assert_non_null(metal_own_find(&o, LB_B));
	metal_owned_free(&o);
	assert_int_equal(metal_ip_list_own(&l, NULL, NULL, NULL, 0, &o), 0);
	assert_int_equal(o.n_own, 4);
	assert_int_equal(o.n_extra, 3);
	metal_owned_free(&o);
	metal_ip_list_free(&l);

	/* Nothing at all. */
	assert_int_equal(metal_ip_list_own(&l, "ny", NULL, NULL, 0, &o), 0);
	assert_int_equal(o.n_own + o.n_extra, 0);
	assert_null(metal_own_find(&o, LB_A));
	metal_owned_free(&o);
}

/* --- devices ------------------------------------------------------------------------------- */

static void test_devices(void **st)
{
	struct metal_device_list l = { 0 };
	struct metal_page pg;
	size_t len, i = 99;
	char *t = data("devices.json", &len);

	(void)st;
	assert_int_equal(metal_device_list_parse(t, len, &l, &pg, err, sizeof(err)), 0);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.devices[2].hostname, "");
	assert_string_equal(pg.next, "");
	assert_int_equal(metal_device_find(&l, "vipd-node-1", &i), 0);
	assert_int_equal(i, 1);
	assert_string_equal(l.devices[i].id, "9307dc37-7f39-400b-9cd2-009087434a95");
	assert_int_equal(metal_device_find(&l, "vipd-node-10", &i), 0);
	assert_int_equal(i, 0);
	assert_int_equal(metal_device_find(&l, "vipd-node", &i), -ENOENT);
	assert_int_equal(metal_device_find(&l, "", &i), -ENOENT);
	/* The next page repeats a hostname: which device is this one? */
	assert_int_equal(metal_device_list_parse(t, len, &l, NULL, err, sizeof(err)), 0);
	assert_int_equal(l.n, 6);
	assert_int_equal(metal_device_find(&l, "vipd-node-1", &i), -EEXIST);
	free(t);
	metal_device_list_free(&l);

	t = "{\"devices\":[{\"id\":\"a/b\",\"hostname\":\"x\"}]}";
	assert_int_equal(metal_device_list_parse(t, strlen(t), &l, NULL, err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "devices[0].id: not a Metal id: \"a/b\"");
	t = "{\"devices\":[{\"id\":\"ab\",\"hostname\":[]}]}";
	assert_int_equal(metal_device_list_parse(t, strlen(t), &l, NULL, err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "devices[0].hostname: must be a string, not an array");
	t = "{\"device\":[]}";
	assert_int_equal(metal_device_list_parse(t, strlen(t), &l, NULL, err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "devices: missing");
	metal_device_list_free(&l);
}

/* --- BGP neighbours ------------------------------------------------------------------------ */

static void test_bgp_samples(void **st)
{
	const struct metal_bgp_neighbor *n4, *n6;
	struct metal_bgp b;
	size_t len;
	char *t = data("bgp-neighbors.json", &len);

	(void)st;
	assert_int_equal(metal_bgp_parse(t, len, &b, err, sizeof(err)), 0);
	free(t);
	assert_int_equal(b.n, 2);
	n4 = &b.nb[0];
	n6 = &b.nb[1];
	assert_int_equal(n4->family, AF_INET);
	assert_int_equal(n4->customer_as, 65000);
	assert_int_equal(n4->peer_as, 65530);
	assert_string_equal(addr(&n4->customer_ip), "10.99.182.129");
	assert_int_equal(n4->n_peer_ips, 2);
	assert_string_equal(addr(&n4->peer_ips[1]), "169.254.255.2");
	assert_true(n4->multihop);
	assert_true(n4->md5_enabled);
	assert_string_equal(n4->md5_password, "ValidPassword123");
	assert_int_equal(n4->n_routes_in, 2);
	assert_string_equal(addr(&n4->routes_in[1].net), "10.2.0.0");
	assert_int_equal(n4->routes_in[1].len, 29);
	assert_false(n4->routes_in[1].exact);
	assert_int_equal(n4->n_routes_out, 0);
	assert_int_equal(n6->family, AF_INET6);
	assert_string_equal(addr(&n6->peer_ips[0]), "fc00::e"); /* written out in full */
	assert_string_equal(addr(&n6->routes_in[0].net), "2604:1380:1:7400::");
	assert_int_equal(n6->routes_in[0].len, 56);
	metal_bgp_free(&b);
	assert_null(b.nb);

	t = data("bgp-neighbors-direct.json", &len);
	assert_int_equal(metal_bgp_parse(t, len, &b, err, sizeof(err)), 0);
	free(t);
	assert_int_equal(b.n, 1);
	assert_false(b.nb[0].multihop);
	assert_false(b.nb[0].md5_enabled);
	assert_string_equal(b.nb[0].md5_password, "");
	assert_int_equal(b.nb[0].n_routes_out, 1);
	assert_int_equal(b.nb[0].routes_out[0].len, 0);
	assert_true(b.nb[0].routes_out[0].exact);
	metal_bgp_free(&b);

	/* BGP not enabled for the device. */
	assert_int_equal(metal_bgp_parse("{\"bgp_neighbors\":[]}", 20, &b, err, sizeof(err)), 0);
	assert_int_equal(b.n, 0);
	metal_bgp_free(&b);
}

/* One neighbour with member key replaced by JSON value (removed when NULL). */
static const char *nb_with(const char *key, const char *value)
{
	static char out[256 * 1024];
	cJSON *j = cJSON_Parse("{\"address_family\":4,\"customer_as\":65000,\"customer_ip\":"
			       "\"10.99.182.129\",\"md5_enabled\":true,\"md5_password\":\"pw\","
			       "\"multihop\":true,\"peer_as\":65530,\"peer_ips\":"
			       "[\"169.254.255.1\",\"169.254.255.2\"],\"routes_in\":[],"
			       "\"routes_out\":[]}"), *v;
	char *s;

	assert_non_null(j);
	cJSON_DeleteItemFromObject(j, key);
	if (value) {
		v = cJSON_Parse(value);
		assert_non_null(v);
		cJSON_AddItemToObject(j, key, v);
	}
	s = cJSON_PrintUnformatted(j);
	snprintf(out, sizeof(out), "{\"bgp_neighbors\":[%s]}", s);
	free(s);
	cJSON_Delete(j);
	return out;
}

static void expect_bgp_err(const char *text, int code, const char *msg)
{
	struct metal_bgp b;

	memset(&b, 0x5a, sizeof(b));
	err[0] = '\0';
	if (metal_bgp_parse(text, strlen(text), &b, err, sizeof(err)) != code)
		fail_msg("not %d: %s (%s)", code, text, err);
	if (!strstr(err, msg))
		fail_msg("for %s\n  got: %s\n want: %s", text, err, msg);
	assert_false(has_control(err));
	assert_null(b.nb);
	assert_int_equal(b.n, 0);
}

static void test_bgp_errors(void **st)
{
	char pw[200], js[256];

	(void)st;
	expect_bgp_err("{}", -EINVAL, "bgp_neighbors: missing");
	expect_bgp_err("{\"bgp_neighbors\":null}", -EINVAL, "bgp_neighbors: missing");
	expect_bgp_err("{\"bgp_neighbors\":[1]}", -EINVAL, "bgp_neighbors[0]: must be an object");
	expect_bgp_err(nb_with("address_family", "5"), -EINVAL,
		       "bgp_neighbors[0].address_family: must be 4 or 6, not 5");
	expect_bgp_err(nb_with("address_family", "\"4\""), -EINVAL,
		       "address_family: must be a number, not a string");
	expect_bgp_err(nb_with("address_family", NULL), -EINVAL, "address_family: missing");
	expect_bgp_err(nb_with("customer_as", "0"), -EINVAL,
		       "customer_as: must be an integer 1..4294967295");
	expect_bgp_err(nb_with("customer_as", "4294967296"), -EINVAL,
		       "customer_as: must be an integer 1..4294967295");
	expect_bgp_err(nb_with("peer_as", "-1"), -EINVAL, "peer_as: must be an integer");
	expect_bgp_err(nb_with("peer_as", "65530.5"), -EINVAL, "peer_as: must be an integer");
	expect_bgp_err(nb_with("peer_as", "1e300"), -EINVAL, "peer_as: must be an integer");
	expect_bgp_err(nb_with("peer_as", NULL), -EINVAL, "bgp_neighbors[0].peer_as: missing");
	expect_bgp_err(nb_with("customer_ip", "\"2001:db8::1\""), -EINVAL,
		       "customer_ip: 2001:db8::1 is not an IPv4 address");
	expect_bgp_err(nb_with("customer_ip", "\"10.0.0.1/31\""), -EINVAL,
		       "customer_ip: not an IP address: \"10.0.0.1/31\"");
	expect_bgp_err(nb_with("customer_ip", "\"0.0.0.0\""), -EINVAL,
		       "customer_ip: 0.0.0.0 is the unspecified address");
	expect_bgp_err(nb_with("customer_ip", NULL), -EINVAL, "customer_ip: missing");
	expect_bgp_err(nb_with("peer_ips", "[]"), -EINVAL, "peer_ips: must list 1..8 addresses");
	expect_bgp_err(nb_with("peer_ips", "\"169.254.255.1\""), -EINVAL,
		       "peer_ips: must be an array of addresses");
	expect_bgp_err(nb_with("peer_ips", "[\"1.1.1.1\",\"1.1.1.2\",\"1.1.1.3\",\"1.1.1.4\","
			       "\"1.1.1.5\",\"1.1.1.6\",\"1.1.1.7\",\"1.1.1.8\",\"1.1.1.9\"]"),
		       -E2BIG, "peer_ips: more than 8 addresses");
	expect_bgp_err(nb_with("peer_ips", "[\"169.254.255.1\", \"127.0.0.1\"]"), -EINVAL,
		       "peer_ips[1]: 127.0.0.1 is a loopback address");
	expect_bgp_err(nb_with("peer_ips", "[\"224.0.0.5\"]"), -EINVAL,
		       "peer_ips[0]: 224.0.0.5 is a multicast or broadcast address");
	expect_bgp_err(nb_with("peer_ips", "[\"255.255.255.255\"]"), -EINVAL,
		       "is a multicast or broadcast address");
	expect_bgp_err(nb_with("peer_ips", "[null]"), -EINVAL, "peer_ips[0]: missing");
	expect_bgp_err(nb_with("peer_ips", "[\"fc00::e\"]"), -EINVAL,
		       "peer_ips[0]: fc00::e is not an IPv4 address");
	expect_bgp_err(nb_with("multihop", "\"yes\""), -EINVAL,
		       "multihop: must be true or false, not a string");
	expect_bgp_err(nb_with("md5_password", "null"), -EINVAL, "md5_password: missing");
	expect_bgp_err(nb_with("md5_password", "\"\""), -EINVAL,
		       "md5_password: must be 1..80 printable ASCII characters");
	expect_bgp_err(nb_with("routes_in", "{}"), -EINVAL, "routes_in: must be an array");
	expect_bgp_err(nb_with("routes_in", "[{\"route\":\"10.0.0.0/33\"}]"), -EINVAL,
		       "routes_in[0].route: not a prefix: \"10.0.0.0/33\"");
	expect_bgp_err(nb_with("routes_in", "[{\"route\":\"10.0.0.0\"}]"), -EINVAL,
		       "routes_in[0].route: not a prefix");
	expect_bgp_err(nb_with("routes_in", "[{\"route\":\"10.0.0.0/+1\"}]"), -EINVAL,
		       "not a prefix");
	expect_bgp_err(nb_with("routes_out", "[{\"route\":\"::/0\",\"exact\":1}]"), -EINVAL,
		       "routes_out[0].exact: must be true or false");
	expect_bgp_err(nb_with("routes_out", "[3]"), -EINVAL, "routes_out[0]: must be an object");

	/* An IPv6 neighbour: a link-local peer would need an interface BIRD is not given. */
	snprintf(js, sizeof(js), "[\"fe80::1\"]");
	{
		char doc[8192];

		snprintf(doc, sizeof(doc), "%s", nb_with("peer_ips", js));
		memcpy(strstr(doc, "\"address_family\":4"), "\"address_family\":6", 18);
		memcpy(strstr(doc, "\"10.99.182.129\""), "\"2001:db8::1\"  ", 15);
		expect_bgp_err(doc, -EINVAL, "peer_ips[0]: fe80::1 is link-local");
	}

	/* Passwords BIRD's strings cannot hold are refused, and never echoed. */
	{
		static const char *const bad[] = {
			"a\"b", "a\\\\b", "a\\nb", "a\\tb", "caf\\u00e9", "x\\u007f",
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			snprintf(js, sizeof(js), "\"%s\"", bad[i]);
			if (strcmp(bad[i], "a\"b") == 0)
				snprintf(js, sizeof(js), "\"a\\\"b\"");
			expect_bgp_err(nb_with("md5_password", js), -EINVAL,
				       "md5_password: must be 1..80 printable ASCII characters "
				       "other than '\"' and '\\' (BIRD's configuration cannot "
				       "hold others)");
			assert_null(strstr(err, "a\"b"));
		}
	}
	memset(pw, 'p', 81);
	pw[81] = '\0';
	snprintf(js, sizeof(js), "\"%s\"", pw);
	expect_bgp_err(nb_with("md5_password", js), -EINVAL,
		       "md5_password: longer than 80 characters");
	assert_null(strstr(err, "pppp"));
	/* Disabled: the password does not matter, whatever it is. */
	{
		struct metal_bgp b;
		const char *t;
		char doc[8192];

		snprintf(doc, sizeof(doc), "%s", nb_with("md5_password", "[\"x\\\"\"]"));
		memcpy(strstr(doc, "\"md5_enabled\":true"), "\"md5_enabled\":null", 18);
		t = doc;
		assert_int_equal(metal_bgp_parse(t, strlen(t), &b, err, sizeof(err)), 0);
		assert_false(b.nb[0].md5_enabled);
		assert_string_equal(b.nb[0].md5_password, "");
		metal_bgp_free(&b);
		/* The largest AS numbers and 80 characters of every kind BIRD takes. */
		t = nb_with("peer_as", "4294967295");
		assert_int_equal(metal_bgp_parse(t, strlen(t), &b, err, sizeof(err)), 0);
		assert_int_equal(b.nb[0].peer_as, 4294967295u);
		metal_bgp_free(&b);
		t = nb_with("md5_password", "\"pw;}{#'$ `~!@%^&*()_+=-[]|:,.<>?/ 0123456789AZaz"
			    "................................\"");
		assert_int_equal(metal_bgp_parse(t, strlen(t), &b, err, sizeof(err)), 0);
		assert_int_equal(strlen(b.nb[0].md5_password), 80);
		metal_bgp_free(&b);
	}
}

static void test_bgp_many(void **st)
{
	char *doc = malloc(1 << 20);
	size_t used;

	(void)st;
	assert_non_null(doc);
	/* 17 neighbours */
	used = (size_t)snprintf(doc, 1 << 20, "{\"bgp_neighbors\":[");
	for (int i = 0; i < 17; i++) {
		const char *one = strchr(nb_with("x", NULL), '[') + 1;

		used += (size_t)snprintf(doc + used, (1 << 20) - used, "%s%.*s", i ? "," : "",
					 (int)(strlen(one) - 2), one);
	}
	snprintf(doc + used, (1 << 20) - used, "]}");
	expect_bgp_err(doc, -E2BIG, "bgp_neighbors: more than 16 neighbours");
	/* 4097 routes in */
	used = (size_t)snprintf(doc, 1 << 20, "[");
	for (int i = 0; i < 4097; i++)
		used += (size_t)snprintf(doc + used, (1 << 20) - used, "%s{\"route\":\"10.%d.%d.0/24\"}",
					 i ? "," : "", i / 256, i % 256);
	snprintf(doc + used, (1 << 20) - used, "]");
	expect_bgp_err(nb_with("routes_in", doc), -E2BIG, "routes_in: more than 4096 routes");
	/* Nested a million deep: cJSON's limit stops it. */
	memset(doc, '[', (1 << 20) - 1);
	doc[(1 << 20) - 1] = '\0';
	expect_bgp_err(doc, -EINVAL, "JSON syntax error");
	free(doc);
}

/* --- metadata ------------------------------------------------------------------------------ */

static void test_metadata(void **st)
{
	struct metal_metadata m;
	size_t len;
	char *t = data("metadata.json", &len);

	(void)st;
	assert_int_equal(metal_metadata_parse(t, len, &m, err, sizeof(err)), 0);
	free(t);
	assert_string_equal(m.id, "X");
	assert_string_equal(m.hostname, "infra-green-ci");
	assert_string_equal(m.facility, "ny5");
	assert_string_equal(m.metro, "ny");
	assert_int_equal(m.n_addresses, 4);
	assert_string_equal(addr(&m.addresses[3].address), "10.66.142.17");
	assert_string_equal(addr(&m.addresses[3].gateway), "10.66.142.16");
	assert_false(m.addresses[3].public);
	assert_true(m.addresses[3].management);
	assert_int_equal(m.addresses[1].cidr, 127);
	assert_true(m.has_bgp);
	assert_int_equal(m.bgp.n, 2);
	assert_false(m.bgp.nb[0].md5_enabled);
	assert_string_equal(addr(&m.bgp.nb[1].peer_ips[1]), "fc00::f");
	metal_metadata_free(&m);

	t = data("metadata-nobgp.json", &len);
	assert_int_equal(metal_metadata_parse(t, len, &m, err, sizeof(err)), 0);
	free(t);
	assert_string_equal(m.id, "9307dc37-7f39-400b-9cd2-009087434a95");
	assert_string_equal(m.facility, "ewr1");
	assert_false(m.has_bgp);
	assert_int_equal(m.bgp.n, 0);
	assert_int_equal(m.n_addresses, 3);
	metal_metadata_free(&m);
}

static void expect_md_err(const char *text, int code, const char *msg)
{
	struct metal_metadata m;

	err[0] = '\0';
	if (metal_metadata_parse(text, strlen(text), &m, err, sizeof(err)) != code)
		fail_msg("not %d: %s (%s)", code, text, err);
	if (!strstr(err, msg))
		fail_msg("for %s\n  got: %s\n want: %s", text, err, msg);
	assert_null(m.bgp.nb);
	assert_false(m.has_bgp);
}

static void test_metadata_errors(void **st)
{
	char *many = malloc(65536);
	size_t used;

	(void)st;
	expect_md_err("{\"hostname\":\"h\"}", -EINVAL, "id: missing");
	expect_md_err("{\"id\":\"a\"}", -EINVAL, "hostname: missing");
	expect_md_err("{\"id\":\"a\",\"hostname\":\"h\\nx\"}", -EINVAL,
		      "hostname: not a host name: \"h\\x0ax\"");
	expect_md_err("{\"id\":\"a\",\"hostname\":\"h\",\"facility\":5}", -EINVAL,
		      "facility: must be a string, not a number");
	expect_md_err("{\"id\":\"a\",\"hostname\":\"h\",\"metro\":\"n.y\"}", -EINVAL,
		      "metro: not a location code: \"n.y\"");
	expect_md_err("{\"id\":\"a\",\"hostname\":\"h\",\"network\":[]}", -EINVAL,
		      "network: must be an object");
	expect_md_err("{\"id\":\"a\",\"hostname\":\"h\",\"network\":{\"addresses\":{}}}",
		      -EINVAL, "network.addresses: must be an array");
	expect_md_err("{\"id\":\"a\",\"hostname\":\"h\",\"network\":{\"addresses\":[{"
		      "\"address_family\":4,\"cidr\":31,\"address\":\"2001:db8::1\"}]}}",
		      -EINVAL, "network.addresses[0].address: not of address_family 4");
	expect_md_err("{\"id\":\"a\",\"hostname\":\"h\",\"network\":{\"addresses\":[{"
		      "\"address_family\":6,\"cidr\":129,\"address\":\"2001:db8::1\"}]}}",
		      -EINVAL, "network.addresses[0].cidr: must be an integer 0..128");
	expect_md_err("{\"id\":\"a\",\"hostname\":\"h\",\"network\":{\"addresses\":[{"
		      "\"address_family\":4,\"cidr\":31,\"address\":\"10.0.0.1\",\"gateway\":"
		      "\"fe80::1\"}]}}", -EINVAL,
		      "network.addresses[0].gateway: not of address_family 4");
	expect_md_err("{\"id\":\"a\",\"hostname\":\"h\",\"bgp_neighbors\":{}}", -EINVAL,
		      "bgp_neighbors: must be an array");
	expect_md_err("{\"id\":\"a\",\"hostname\":\"h\",\"bgp_neighbors\":[{\"address_family\":4}]}",
		      -EINVAL, "bgp_neighbors[0].customer_as: missing");
	used = (size_t)snprintf(many, 65536, "{\"id\":\"a\",\"hostname\":\"h\",\"network\":"
				"{\"addresses\":[");
	for (int i = 0; i < 33; i++)
		used += (size_t)snprintf(many + used, 65536 - used, "%s{\"address_family\":4,"
					 "\"cidr\":32,\"address\":\"10.0.0.%d\"}", i ? "," : "", i);
	snprintf(many + used, 65536 - used, "]}}");
	expect_md_err(many, -E2BIG, "network.addresses: more than 32 addresses");
	free(many);
}

/* --- BIRD's peer file ------------------------------------------------------------------------ */


static char *render(const char *file_or_json, bool is_file)
{
	struct metal_bgp b;
	size_t len, olen;
	char *t = is_file ? data(file_or_json, &len) : strdup(file_or_json), *out;

	if (!is_file)
		len = strlen(t);
	assert_int_equal(metal_bgp_parse(t, len, &b, err, sizeof(err)), 0);
	free(t);
	assert_int_equal(metal_bird_peers(&b, &out, &olen, err, sizeof(err)), 0);
	assert_int_equal(strlen(out), olen);
	metal_bgp_free(&b);
	return out;
}

static void test_bird_peers(void **st)
{
	struct metal_bgp b = { 0 };
	struct metal_bgp_neighbor nb[2];
	char *out, *golden;
	size_t len;

	(void)st;
	/* bird/metal-peers.conf.example shows this output: after its own preamble, exactly. */
	out = render("bgp-neighbors.json", true);
	golden = data("../../../bird/metal-peers.conf.example", &len);
	assert_non_null(strstr(golden, "\n\n# Written by vipd"));
	assert_string_equal(out, strstr(golden, "\n\n# Written by vipd") + 2);
	free(golden);
	free(out);

	/* Single hop, no MD5: neither line. */
	out = render("bgp-neighbors-direct.json", true);
	assert_non_null(strstr(out, "\tneighbor 10.99.182.128 as 65530;\n\tipv4 {"));
	assert_null(strstr(out, "multihop"));
	assert_null(strstr(out, "password"));
	free(out);

	/* No neighbours: the header only, still a file BIRD reads. */
	assert_int_equal(metal_bird_peers(&b, &out, &len, err, sizeof(err)), 0);
	assert_null(strstr(out, "protocol"));
	free(out);

	/* A peer twice (within and across neighbours) gets one session. */
	memset(nb, 0, sizeof(nb));
	nb[0].family = nb[1].family = AF_INET;
	nb[0].customer_as = nb[1].customer_as = 4294967295u;
	nb[0].peer_as = nb[1].peer_as = 65530;
	ip_addr_parse("10.0.0.2", &nb[0].customer_ip);
	nb[1].customer_ip = nb[0].customer_ip;
	ip_addr_parse("169.254.255.1", &nb[0].peer_ips[0]);
	nb[0].peer_ips[1] = nb[0].peer_ips[0];
	nb[1].peer_ips[0] = nb[0].peer_ips[0];
	ip_addr_parse("169.254.255.2", &nb[1].peer_ips[1]);
	nb[0].n_peer_ips = nb[1].n_peer_ips = 2;
	b.nb = nb;
	b.n = 2;
	assert_int_equal(metal_bird_peers(&b, &out, &len, err, sizeof(err)), 0);
	assert_non_null(strstr(out, "local as 4294967295;"));
	assert_non_null(strstr(out, "protocol bgp vipd_metal4_2 {"));
	assert_null(strstr(out, "vipd_metal4_3"));
	assert_non_null(strstr(out, "# bgp_neighbors[0] peer 169.254.255.1: a session to it is "
			       "above.\n"));
	assert_non_null(strstr(out, "# bgp_neighbors[1] peer 169.254.255.1: a session to it is "
			       "above.\n"));
	free(out);

	/* A struct not from the parser is checked all the same: nothing is written. */
	nb[1].md5_enabled = true;
	snprintf(nb[1].md5_password, sizeof(nb[1].md5_password), "x\"; } protocol bgp evil {");
	out = (char *)1;
	assert_int_equal(metal_bird_peers(&b, &out, &len, err, sizeof(err)), -EINVAL);
	assert_null(out);
	assert_string_equal(err, "bgp_neighbors[1].md5_password: must be 1..80 printable ASCII "
			    "characters other than '\"' and '\\' (BIRD's configuration cannot "
			    "hold others)");
	nb[1].md5_enabled = false;
	nb[1].family = AF_INET6;
	assert_int_equal(metal_bird_peers(&b, &out, &len, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "bgp_neighbors[1].customer_ip: 10.0.0.2 is not an IPv6 address");
	nb[1].family = 0;
	assert_int_equal(metal_bird_peers(&b, &out, &len, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "bgp_neighbors[1].address_family: must be 4 or 6");
	nb[1].family = AF_INET;
	nb[1].peer_as = 0;
	assert_int_equal(metal_bird_peers(&b, &out, &len, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "bgp_neighbors[1].peer_as: must be 1..4294967295");
	nb[1].peer_as = 1;
	nb[1].n_peer_ips = 0;
	assert_int_equal(metal_bird_peers(&b, &out, &len, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "bgp_neighbors[1].peer_ips: must list 1..8 addresses");
	nb[1].n_peer_ips = METAL_BGP_MAX_PEERS + 1;
	assert_int_equal(metal_bird_peers(&b, &out, &len, err, sizeof(err)), -EINVAL);
}

/* Runs bird -p (parse only) on a configuration that includes bird/vipd.conf and peers; the
 * exit status, with BIRD's words in why. */
static int bird_parses(const char *peers, char *why, size_t whylen)
{
	const char *src = getenv("SRCDIR");
	char dir[] = "/tmp/test_metal_msg.XXXXXX", conf[256], pf[256], log[256], vipd[4096];
	int status = -1, fd;
	FILE *f;
	pid_t pid;

	assert_non_null(mkdtemp(dir));
	snprintf(conf, sizeof(conf), "%s/bird.conf", dir);
	snprintf(pf, sizeof(pf), "%s/peers.conf", dir);
	snprintf(log, sizeof(log), "%s/log", dir);
	assert_non_null(realpath(src ? src : ".", vipd));
	strncat(vipd, "/bird/vipd.conf", sizeof(vipd) - strlen(vipd) - 1);
	f = fopen(pf, "w");
	assert_non_null(f);
	fputs(peers, f);
	fclose(f);
	f = fopen(conf, "w");
	assert_non_null(f);
	fprintf(f, "router id 192.0.2.10;\ninclude \"%s\";\nprotocol device {\n}\n"
		"include \"%s\";\n", vipd, pf);
	fclose(f);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl(BIRD_BIN, "bird", "-p", "-c", conf, (char *)NULL);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	why[0] = '\0';
	f = fopen(log, "r");
	if (f) {
		size_t n = fread(why, 1, whylen - 1, f);

		why[n] = '\0';
		fclose(f);
	}
	unlink(conf);
	unlink(pf);
	unlink(log);
	rmdir(dir);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static void test_bird_accepts(void **st)
{
	static const char *const docs[] = {
		"bgp-neighbors.json", "bgp-neighbors-direct.json",
	};
	char why[2048], *out;
	struct metal_metadata m;
	size_t len, olen;
	char *t;

	(void)st;
	if (access(BIRD_BIN, X_OK))
		skip();
	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		out = render(docs[i], true);
		if (bird_parses(out, why, sizeof(why)))
			fail_msg("BIRD refused the peers of %s: %s\n%s", docs[i], why, out);
		free(out);
	}
	t = data("metadata.json", &len);
	assert_int_equal(metal_metadata_parse(t, len, &m, err, sizeof(err)), 0);
	free(t);
	assert_int_equal(metal_bird_peers(&m.bgp, &out, &olen, err, sizeof(err)), 0);
	if (bird_parses(out, why, sizeof(why)))
		fail_msg("BIRD refused the metadata's peers: %s\n%s", why, out);
	free(out);
	metal_metadata_free(&m);

	/* The most hostile password the parser lets through is still one string to BIRD. */
	out = render(nb_with("md5_password", "\"p;} protocol bgp x { #'$ include /etc/x; /*\""),
		     false);
	if (bird_parses(out, why, sizeof(why)))
		fail_msg("BIRD refused a password the parser accepted: %s\n%s", why, out);
	free(out);
}

/* --- routes to multihop peers ------------------------------------------------------------- */

static void test_peer_routes(void **st)
{
	struct metal_peer_route r[8];
	struct metal_metadata m;
	struct metal_address a[2];
	struct metal_bgp b;
	size_t len, n = 99;
	char *t;

	(void)st;
	/* The captured metadata: customer_ip is none of the addresses, so the private IPv4 and
	 * public IPv6 management gateways are used. */
	t = data("metadata.json", &len);
	assert_int_equal(metal_metadata_parse(t, len, &m, err, sizeof(err)), 0);
	free(t);
	assert_int_equal(metal_peer_routes(&m.bgp, m.addresses, m.n_addresses, r, 8, &n, err,
					   sizeof(err)), 0);
	assert_int_equal(n, 4);
	assert_string_equal(addr(&r[0].dst), "169.254.255.1");
	assert_string_equal(addr(&r[0].via), "10.66.142.16");
	assert_string_equal(addr(&r[1].dst), "169.254.255.2");
	assert_string_equal(addr(&r[1].via), "10.66.142.16");
	assert_string_equal(addr(&r[2].dst), "fc00::e");
	assert_string_equal(addr(&r[2].via), "2604:1380:45d1:fd00::10");
	assert_string_equal(addr(&r[3].dst), "fc00::f");
	assert_int_equal(metal_peer_routes(&m.bgp, m.addresses, m.n_addresses, r, 3, &n, err,
					   sizeof(err)), -E2BIG);
	assert_string_equal(err, "more than 3 multihop peers");
	/* No IPv6 address: the IPv6 neighbour's peers cannot be reached. */
	assert_int_equal(metal_peer_routes(&m.bgp, &m.addresses[3], 1, r, 8, &n, err,
					   sizeof(err)), -ENOENT);
	assert_string_equal(err, "bgp_neighbors[1]: no public IPv6 address with a gateway for "
			    "customer_ip 2604:1380:45e1:5000::1 in the metadata");
	metal_metadata_free(&m);

	/* customer_ip is one of the addresses (as tests/fake-metal has it): that one's gateway,
	 * even though another private address comes first. */
	t = data("bgp-neighbors.json", &len);
	assert_int_equal(metal_bgp_parse(t, len, &b, err, sizeof(err)), 0);
	free(t);
	memset(a, 0, sizeof(a));
	ip_addr_parse("10.9.9.9", &a[0].address);
	ip_addr_parse("10.9.9.8", &a[0].gateway);
	a[0].management = true;
	ip_addr_parse("10.99.182.129", &a[1].address);
	ip_addr_parse("10.99.182.128", &a[1].gateway);
	b.n = 1;
	assert_int_equal(metal_peer_routes(&b, a, 2, r, 8, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 2);
	assert_string_equal(addr(&r[1].via), "10.99.182.128");
	/* Single hop needs no route. */
	b.nb[0].multihop = false;
	assert_int_equal(metal_peer_routes(&b, NULL, 0, r, 8, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 0);
	b.n = 2;
	metal_bgp_free(&b);
}

/* --- error messages ------------------------------------------------------------------------- */

static int msg(const char *body, size_t outlen, char *out)
{
	int r = metal_error_message(body, body ? strlen(body) : 0, out, outlen);

	assert_true(strlen(out) < outlen);
	assert_false(has_control(out));
	return r;
}

static void test_error_message(void **st)
{
	char out[256], big[300000];
	size_t len;
	char *t;

	(void)st;
	t = data("error-401.json", &len);
	assert_int_equal(metal_error_message(t, len, out, sizeof(out)), 0);
	assert_string_equal(out, "Invalid authentication token");
	free(t);
	t = data("error-404.json", &len);
	assert_int_equal(metal_error_message(t, len, out, sizeof(out)), 0);
	assert_string_equal(out, "Not found");
	free(t);
	t = data("error-422.json", &len);
	assert_int_equal(metal_error_message(t, len, out, sizeof(out)), 0);
	assert_string_equal(out, "The requested IP space exceeds the project's quota and needs "
			    "approval (fail_on_approval_required); Metro is not valid");
	free(t);

	/* Hostile text: control characters, escapes, blank and non-string entries. */
	assert_int_equal(msg("{\"errors\":[\"line1\\nline2\\u001b[31mred\\r\",\"  \",7,\"\","
			     "\"tab\\there;\",\"\\u0085x\\u00a0y\"]}", sizeof(out), out), 0);
	assert_string_equal(out, "line1 line2 [31mred; tab here;; x y");
	assert_int_equal(msg("{\"errors\":[],\"error\":\"  only  this  \"}", sizeof(out), out), 0);
	assert_string_equal(out, "only this");
	assert_int_equal(msg("{\"errors\":\"a string\"}", sizeof(out), out), -ENOMSG);
	assert_string_equal(out, "{\"errors\":\"a string\"}");
	assert_int_equal(msg("{\"error\":\"\\u00e9t\\u00e9 \\ud83d\\ude00\"}", sizeof(out), out), 0);
	assert_string_equal(out, "\xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80");

	/* Not the API's: the start of the body, cleaned. */
	assert_int_equal(msg("<html>\r\n<h1>502 Bad Gateway</h1>\r\n</html>", sizeof(out), out),
			 -ENOMSG);
	assert_string_equal(out, "<html> <h1>502 Bad Gateway</h1> </html>");
	assert_int_equal(msg("a\xff" "b\xc0\xaf" "c\xed\xa0\x80" "d\xe2\x82", sizeof(out), out),
			 -ENOMSG);
	assert_string_equal(out, "a?b??c???d??");
	assert_int_equal(msg("", sizeof(out), out), -ENOMSG);
	assert_string_equal(out, "(empty body)");
	assert_int_equal(msg(" \n\t ", sizeof(out), out), -ENOMSG);
	assert_string_equal(out, "(empty body)");
	assert_int_equal(msg(NULL, sizeof(out), out), -ENOMSG);
	assert_string_equal(out, "(empty body)");
	assert_int_equal(msg("{\"errors\":[\" \"]}", sizeof(out), out), -ENOMSG);

	/* Cut to fit, never inside a character. */
	assert_int_equal(msg("{\"error\":\"abcdefghijklmnopqrstuvwxyz\"}", 16, out), 0);
	assert_string_equal(out, "abcdefghijkl...");
	assert_int_equal(msg("{\"error\":\"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\"}", 10,
			     out), 0);
	assert_string_equal(out, "\xc3\xa9\xc3\xa9\xc3\xa9...");
	assert_int_equal(msg("{\"error\":\"abcdef\"}", 7, out), 0);
	assert_string_equal(out, "abcdef");
	assert_int_equal(msg("{\"error\":\"abcdefg\"}", 7, out), 0);
	assert_string_equal(out, "abc...");
	for (size_t n = 1; n < 6; n++)
		msg("{\"error\":\"abcdefg\"}", n, out);
	assert_int_equal(metal_error_message("x", 1, out, 0), -ENOMSG);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(msg(big, sizeof(out), out), -ENOMSG);
	assert_int_equal(strlen(out), sizeof(out) - 1);
}

/* --- retries ----------------------------------------------------------------------------- */

static uint32_t window(unsigned attempt)
{
	uint64_t w = attempt < 32 ? (uint64_t)METAL_BACKOFF_BASE_MS << attempt : UINT64_MAX;

	return w > METAL_BACKOFF_CAP_MS ? METAL_BACKOFF_CAP_MS : (uint32_t)w;
}

static void test_backoff(void **st)
{
	uint32_t x = 12345, lo, hi, prev = 0;

	(void)st;
	assert_int_equal(window(0), 1000);
	for (unsigned a = 0; a < 300; a++) {
		assert_true(window(a) >= prev); /* the cap never shrinks */
		prev = window(a);
		lo = UINT32_MAX;
		hi = 0;
		for (int i = 0; i < 2000; i++) {
			uint32_t d;

			x = x * 1664525u + 1013904223u;
			d = metal_backoff_ms(a, x, -1);
			assert_true(d >= METAL_BACKOFF_MIN_MS && d <= window(a));
			assert_true(d <= METAL_BACKOFF_CAP_MS);
			lo = d < lo ? d : lo;
			hi = d > hi ? d : hi;
			assert_int_equal(metal_backoff_ms(a, x, -1), d); /* pure */
		}
		/* Full jitter: the draws cover the window. */
		assert_true(lo < METAL_BACKOFF_MIN_MS + window(a) / 10);
		assert_true(hi > window(a) - window(a) / 10);
	}
	assert_int_equal(metal_backoff_ms(0, 0, -1), METAL_BACKOFF_MIN_MS);
	assert_int_equal(metal_backoff_ms(0, UINT32_MAX, -1) <= 1000, 1);
	assert_int_equal(metal_backoff_ms(UINT32_MAX, UINT32_MAX, -1) <= METAL_BACKOFF_CAP_MS, 1);

	/* Retry-After: never sooner, a little later at most, bounded. */
	for (int i = 0; i < 5000; i++) {
		uint32_t d;

		x = x * 1664525u + 1013904223u;
		d = metal_backoff_ms(0, x, 0);
		assert_true(d >= METAL_BACKOFF_MIN_MS && d <= 1000);
		d = metal_backoff_ms(0, x, 5);
		assert_true(d >= 5000 && d < 5000 + METAL_RETRY_AFTER_JITTER_MS);
		d = metal_backoff_ms(10, x, 5); /* the backoff is longer: it wins */
		assert_true(d >= 5000 && d <= METAL_BACKOFF_CAP_MS);
		d = metal_backoff_ms(3, x, 120);
		assert_true(d >= 120000 && d < 120000 + METAL_RETRY_AFTER_JITTER_MS);
		d = metal_backoff_ms(0, x, 100000);
		assert_true(d >= 900000 && d < 900000 + METAL_RETRY_AFTER_JITTER_MS);
		d = metal_backoff_ms(0, x, 2147483647L);
		assert_true(d >= 900000 && d < 900000 + METAL_RETRY_AFTER_JITTER_MS);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reserve_body),
		cmocka_unit_test(test_reserve_round_trip),
		cmocka_unit_test(test_ip_samples),
		cmocka_unit_test(test_ip_errors),
		cmocka_unit_test(test_ip_tolerant),
		cmocka_unit_test(test_ip_list),
		cmocka_unit_test(test_next_url),
		cmocka_unit_test(test_ip_list_errors),
		cmocka_unit_test(test_ip_list_huge),
		cmocka_unit_test(test_ip_own),
		cmocka_unit_test(test_devices),
		cmocka_unit_test(test_bgp_samples),
		cmocka_unit_test(test_bgp_errors),
		cmocka_unit_test(test_bgp_many),
		cmocka_unit_test(test_metadata),
		cmocka_unit_test(test_metadata_errors),
		cmocka_unit_test(test_bird_peers),
		cmocka_unit_test(test_bird_accepts),
		cmocka_unit_test(test_peer_routes),
		cmocka_unit_test(test_error_message),
		cmocka_unit_test(test_backoff),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
