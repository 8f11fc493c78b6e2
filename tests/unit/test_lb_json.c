#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lb_json.h"

static char err[8192];

/* Parses text in mode; on failure returns NULL with the message in err. */
static struct lb *parse(const char *text, enum lb_json_mode mode, const char *path)
{
	cJSON *j = cJSON_Parse(text);
	struct lb *lb = (struct lb *)1;
	int r;

	assert_non_null(j);
	r = lb_from_json(j, mode, path, &lb, err, sizeof(err));
	cJSON_Delete(j);
	if (r) {
		assert_int_equal(r, -EINVAL);
		assert_null(lb);
		assert_true(err[0] != '\0');
		return NULL;
	}
	assert_non_null(lb);
	return lb;
}

static struct lb *parse_ok(const char *text, enum lb_json_mode mode)
{
	struct lb *lb = parse(text, mode, "");

	if (!lb)
		fail_msg("unexpected error for %s: %s", text, err);
	return lb;
}

/* The whole error text must be exactly want. */
static void parse_fails(const char *text, enum lb_json_mode mode, const char *path,
			const char *want)
{
	struct lb *lb = parse(text, mode, path);

	if (lb) {
		lb_free(lb);
		fail_msg("accepted: %s", text);
	}
	if (strcmp(err, want) != 0)
		fail_msg("for %s\n  got:  %s\n  want: %s", text, err, want);
}

static bool err_has_line(const char *want)
{
	const char *p = err;
	size_t n = strlen(want);

	while (p) {
		if (strncmp(p, want, n) == 0 && (p[n] == '\n' || p[n] == '\0'))
			return true;
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return false;
}

static const char *addr_str(const struct ip_addr *a)
{
	static char buf[IP_ADDR_STRLEN];

	return ip_addr_str(a, buf);
}

static void test_api_minimal_defaults(void **st)
{
	struct lb *lb = parse_ok("{\"name\":\"web\",\"port\":80}", LB_JSON_API);

	(void)st;
	assert_string_equal(lb->name, "web");
	assert_int_equal(lb->port, 80);
	assert_int_equal(lb->protocol, LB_PROTO_TCP);
	assert_int_equal(lb->scheduler, LB_SCHED_MH);
	assert_int_equal(lb->forwarding, LB_FWD_FULLNAT);
	assert_int_equal(lb->origin, LB_ORIGIN_API);
	assert_int_equal(lb->status, LB_STATUS_PENDING);
	assert_false(ip_addr_is_set(&lb->vip));
	assert_true(uuid_is_valid(lb->uuid));
	assert_int_equal(lb->n_backends, 0);
	assert_int_equal(lb->hc.type, HC_TCP);
	assert_int_equal(lb->hc.interval_ms, 5000);
	assert_int_equal(lb->hc.timeout_ms, 2000);
	assert_int_equal(lb->hc.fail_count, 3);
	assert_int_equal(lb->hc.rise_count, 2);
	assert_true(lb->hc.tls_verify);
	lb_free(lb);
}

static void test_api_ignores_uuids(void **st)
{
	static const char body[] =
		"{\"uuid\":\"087fcb0f-8e07-4123-a32f-e8e83a281023\",\"name\":\"web\",\"port\":80,"
		"\"backends\":[{\"uuid\":\"187fcb0f-8e07-4123-a32f-e8e83a281023\","
		"\"ip\":\"10.0.0.1\",\"port\":80},{\"ip\":\"10.0.0.2\",\"port\":80}]}";
	struct lb *a = parse_ok(body, LB_JSON_API), *b = parse_ok(body, LB_JSON_API);

	(void)st;
	assert_string_not_equal(a->uuid, "087fcb0f-8e07-4123-a32f-e8e83a281023");
	assert_string_not_equal(a->uuid, b->uuid);
	assert_int_equal(a->n_backends, 2);
	assert_string_not_equal(a->backends[0].uuid, "187fcb0f-8e07-4123-a32f-e8e83a281023");
	assert_string_not_equal(a->backends[0].uuid, b->backends[0].uuid);
	assert_string_not_equal(a->backends[0].uuid, a->backends[1].uuid);
	assert_true(uuid_is_valid(a->backends[1].uuid));
	/* even a malformed uuid is ignored, as slb clients may send anything there */
	lb_free(b);
	b = parse_ok("{\"uuid\":42,\"name\":\"web\",\"port\":80}", LB_JSON_API);
	lb_free(a);
	lb_free(b);
}

static void test_numeric_string_ports(void **st)
{
	struct lb *lb = parse_ok("{\"name\":\"k8s\",\"port\":\"6443\",\"health_check\":"
				 "{\"port\":\"0\",\"fail_count\":\"5\"},\"backends\":[{\"ip\":"
				 "\"10.0.0.1\",\"port\":\"6443\",\"weight\":\"7\"}]}",
				 LB_JSON_API);

	(void)st;
	assert_int_equal(lb->port, 6443);
	assert_int_equal(lb->hc.port, 0);
	assert_int_equal(lb->hc.fail_count, 5);
	assert_int_equal(lb->backends[0].port, 6443);
	assert_int_equal(lb->backends[0].weight, 7);
	lb_free(lb);
	lb = parse_ok("{\"name\":\"a\",\"port\":\"00080\"}", LB_JSON_API);
	assert_int_equal(lb->port, 80);
	lb_free(lb);
	lb = parse_ok("{\"name\":\"a\",\"port\":65535.0}", LB_JSON_API);
	assert_int_equal(lb->port, 65535);
	lb_free(lb);
}

static void test_port_errors(void **st)
{
	static const struct {
		const char *port, *want;
	} cases[] = {
		{ "0", "port: must be 1..65535" },
		{ "65536", "port: must be 1..65535" },
		{ "-1", "port: must be 1..65535" },
		{ "80.5", "port: must be 1..65535" },
		{ "1e300", "port: must be 1..65535" },
		{ "\"0\"", "port: must be 1..65535" },
		{ "\"-80\"", "port: must be 1..65535" },
		{ "\"99999999999999999999999\"", "port: must be 1..65535" },
		{ "\"80a\"", "port: must be a number or a numeric string, not a string" },
		{ "\"\"", "port: must be a number or a numeric string, not a string" },
		{ "\" 80\"", "port: must be a number or a numeric string, not a string" },
		{ "\"+80\"", "port: must be a number or a numeric string, not a string" },
		{ "true", "port: must be a number or a numeric string, not a boolean" },
		{ "null", "port: must be a number or a numeric string, not null" },
		{ "[80]", "port: must be a number or a numeric string, not an array" },
		{ "{}", "port: must be a number or a numeric string, not an object" },
	};
	char body[128];

	(void)st;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(body, sizeof(body), "{\"name\":\"a\",\"port\":%s}", cases[i].port);
		parse_fails(body, LB_JSON_API, "", cases[i].want);
	}
	parse_fails("{\"name\":\"a\"}", LB_JSON_API, "", "port: required");
}

static void test_name_errors(void **st)
{
	char body[512], name[300];

	(void)st;
	parse_fails("{\"port\":80}", LB_JSON_API, "", "name: required");
	parse_fails("{\"name\":\"\",\"port\":80}", LB_JSON_API, "", "name: must be 1..253 "
		"characters");
	parse_fails("{\"name\":7,\"port\":80}", LB_JSON_API, "", "name: must be a string, not a "
		"number");
	parse_fails("{\"name\":\"a\\tb\",\"port\":80}", LB_JSON_API, "",
		    "name: must be printable UTF-8 text without control characters");
	parse_fails("{\"name\":\"a\\u007fb\",\"port\":80}", LB_JSON_API, "",
		    "name: must be printable UTF-8 text without control characters");
	parse_fails("{\"name\":\"a\xff\",\"port\":80}", LB_JSON_API, "",
		    "name: must be printable UTF-8 text without control characters");
	parse_fails("{\"name\":\"\xc0\xaf\",\"port\":80}", LB_JSON_API, "",
		    "name: must be printable UTF-8 text without control characters");
	memset(name, 'n', 254);
	name[254] = '\0';
	snprintf(body, sizeof(body), "{\"name\":\"%s\",\"port\":80}", name);
	parse_fails(body, LB_JSON_API, "", "name: must be 1..253 characters");
	name[253] = '\0';
	snprintf(body, sizeof(body), "{\"name\":\"%s\",\"port\":80}", name);
	lb_free(parse_ok(body, LB_JSON_API));
	lb_free(parse_ok("{\"name\":\"caf\xc3\xa9 web 1\",\"port\":80}", LB_JSON_API));
}

static void test_vip_eip(void **st)
{
	struct lb *lb;

	(void)st;
	lb = parse_ok("{\"name\":\"a\",\"port\":80,\"vip\":\"192.0.2.1\"}", LB_JSON_API);
	assert_string_equal(addr_str(&lb->vip), "192.0.2.1");
	assert_int_equal(lb->status, LB_STATUS_ACTIVE);
	lb_free(lb);
	lb = parse_ok("{\"name\":\"a\",\"port\":80,\"eip\":\"192.0.2.2\"}", LB_JSON_API);
	assert_string_equal(addr_str(&lb->vip), "192.0.2.2");
	lb_free(lb);
	lb = parse_ok("{\"name\":\"a\",\"port\":80,\"vip\":\"2001:DB8::1\","
		"\"eip\":\"2001:db8::1\"}",
		      LB_JSON_API);
	assert_string_equal(addr_str(&lb->vip), "2001:db8::1");
	lb_free(lb);
	lb = parse_ok("{\"name\":\"a\",\"port\":80,\"vip\":\"\",\"eip\":\"\"}", LB_JSON_API);
	assert_false(ip_addr_is_set(&lb->vip));
	assert_int_equal(lb->status, LB_STATUS_PENDING);
	lb_free(lb);

	parse_fails("{\"name\":\"a\",\"port\":80,\"vip\":\"192.0.2.1\",\"eip\":\"192.0.2.2\"}",
		    LB_JSON_API, "", "eip: must equal vip (eip is slb's name for it)");
	parse_fails("{\"name\":\"a\",\"port\":80,\"vip\":\"\",\"eip\":\"192.0.2.2\"}",
		    LB_JSON_API, "", "eip: must equal vip (eip is slb's name for it)");
	parse_fails("{\"name\":\"a\",\"port\":80,\"vip\":\"1.2.3\"}", LB_JSON_API, "",
		    "vip: not an IPv4 or IPv6 address: \"1.2.3\"");
	parse_fails("{\"name\":\"a\",\"port\":80,\"eip\":\"10.0.0.0/24\"}", LB_JSON_API, "",
		    "eip: not an IPv4 or IPv6 address: \"10.0.0.0/24\"");
	parse_fails("{\"name\":\"a\",\"port\":80,\"vip\":\"224.0.0.1\"}", LB_JSON_API, "",
		    "vip: must be a unicast address, not 224.0.0.1");
	parse_fails("{\"name\":\"a\",\"port\":80,\"vip\":\"0.0.0.0\"}", LB_JSON_API, "",
		    "vip: must be a unicast address, not 0.0.0.0");
	parse_fails("{\"name\":\"a\",\"port\":80,\"vip\":\"::\"}", LB_JSON_API, "",
		    "vip: must be a unicast address, not ::");
	parse_fails("{\"name\":\"a\",\"port\":80,\"vip\":\"ff02::1\"}", LB_JSON_API, "",
		    "vip: must be a unicast address, not ff02::1");
	parse_fails("{\"name\":\"a\",\"port\":80,\"vip\":1}", LB_JSON_API, "",
		    "vip: must be a string, not a number");
}

static void test_unknown_and_duplicate_keys(void **st)
{
	(void)st;
	parse_fails("{\"name\":\"a\",\"port\":80,\"colour\":\"red\"}", LB_JSON_CONFIG,
		    "loadbalancers[0]", "loadbalancers[0]: unknown key \"colour\"");
	parse_fails("{\"name\":\"a\",\"port\":80,\"colour\":\"red\"}", LB_JSON_API, "",
		    "unknown key \"colour\"");
	parse_fails("{\"name\":\"a\",\"port\":80,\"a\\nb\":1}", LB_JSON_API, "",
		    "unknown key \"a\\x0ab\"");
	parse_fails("{\"name\":\"a\",\"port\":80,\"port\":81}", LB_JSON_API, "",
		    "duplicate key \"port\"");
	parse_fails("[1]", LB_JSON_API, "", "must be an object, not an array");
	parse_fails("[1]", LB_JSON_CONFIG, "loadbalancers[3]",
		    "loadbalancers[3]: must be an object, not an array");
	parse_fails("{\"name\":\"a\",\"port\":80,\"origin\":\"api\"}", LB_JSON_API, "",
		    "origin: only allowed in the state file");
	parse_fails("{\"name\":\"a\",\"port\":80,\"origin\":\"config\"}", LB_JSON_CONFIG, "",
		    "origin: only allowed in the state file");
}

static void test_enums_and_aliases(void **st)
{
	struct lb *lb;

	(void)st;
	lb = parse_ok("{\"name\":\"a\",\"port\":53,\"protocol\":\"UDP\",\"scheduler\":\"maglev\","
		      "\"forwarding\":\"masq\"}", LB_JSON_API);
	assert_int_equal(lb->protocol, LB_PROTO_UDP);
	assert_int_equal(lb->scheduler, LB_SCHED_MH);
	assert_int_equal(lb->forwarding, LB_FWD_NAT);
	lb_free(lb);
	lb = parse_ok("{\"name\":\"a\",\"port\":53,\"scheduler\":\"wlc\",\"forwarding\":\"dr\"}",
		      LB_JSON_API);
	assert_int_equal(lb->scheduler, LB_SCHED_WLC);
	assert_int_equal(lb->forwarding, LB_FWD_DSR);
	lb_free(lb);
	lb = parse_ok("{\"name\":\"a\",\"port\":53,\"forwarding\":\"droute\"}", LB_JSON_API);
	assert_int_equal(lb->forwarding, LB_FWD_DSR);
	lb_free(lb);
	lb = parse_ok("{\"name\":\"a\",\"port\":53,\"forwarding\":\"ipip\"}", LB_JSON_API);
	assert_int_equal(lb->forwarding, LB_FWD_TUNNEL);
	lb_free(lb);
	/* status is output only: any value is ignored */
	lb = parse_ok("{\"name\":\"a\",\"port\":53,\"status\":\"active\"}", LB_JSON_API);
	assert_int_equal(lb->status, LB_STATUS_PENDING);
	lb_free(lb);

	parse_fails("{\"name\":\"a\",\"port\":80,\"protocol\":\"sctp\"}", LB_JSON_API, "",
		    "protocol: must be one of tcp, udp, not \"sctp\"");
	parse_fails("{\"name\":\"a\",\"port\":80,\"scheduler\":\"random\"}", LB_JSON_API, "",
		    "scheduler: must be one of mh, rr, wrr, lc, wlc, sh, dh, maglev, not "
		    	"\"random\"");
	parse_fails("{\"name\":\"a\",\"port\":80,\"forwarding\":\"gre\"}", LB_JSON_API, "",
		    "forwarding: must be one of fullnat, nat, dsr, tunnel, masq, droute, dr, ipip, "
		    "not \"gre\"");
	parse_fails("{\"name\":\"a\",\"port\":80,\"protocol\":6}", LB_JSON_API, "",
		    "protocol: must be a string, not a number");
}

static void test_backends(void **st)
{
	struct lb *lb;

	(void)st;
	lb = parse_ok("{\"name\":\"a\",\"port\":80,\"backends\":[{\"ip\":\"10.0.0.1\","
		"\"port\":8080},"
		      "{\"ip\":\"10.0.0.2\",\"port\":8080,\"weight\":3,\"type\":\"local\","
		      "\"state\":\"Drained\",\"health\":\"down\"}]}", LB_JSON_API);
	assert_int_equal(lb->n_backends, 2);
	assert_string_equal(addr_str(&lb->backends[0].ip), "10.0.0.1");
	assert_int_equal(lb->backends[0].weight, 1);
	assert_int_equal(lb->backends[0].type, BACKEND_MASQ);
	assert_false(lb->backends[0].drained);
	assert_int_equal(lb->backends[1].weight, 3);
	assert_int_equal(lb->backends[1].type, BACKEND_LOCAL);
	assert_true(lb->backends[1].drained);
	assert_int_equal(lb->backends[1].health, BACKEND_HEALTH_UNKNOWN);
	lb_free(lb);

	/* slb printed null for an empty list */
	lb = parse_ok("{\"name\":\"a\",\"port\":80,\"backends\":null}", LB_JSON_API);
	assert_int_equal(lb->n_backends, 0);
	lb_free(lb);

	parse_fails("{\"name\":\"a\",\"port\":80,\"backends\":[{\"ip\":\"10.0.0.1\","
		"\"port\":70000}]}",
		    LB_JSON_CONFIG, "loadbalancers[2]",
		    "loadbalancers[2].backends[0].port: must be 1..65535");
	parse_fails("{\"name\":\"a\",\"port\":80,\"backends\":[{\"port\":80}]}", LB_JSON_API, "",
		    "backends[0].ip: required");
	parse_fails("{\"name\":\"a\",\"port\":80,"
		"\"backends\":[{\"ip\":\"10.0.0.1\"}]}", LB_JSON_API,
		    "", "backends[0].port: required");
	parse_fails("{\"name\":\"a\",\"port\":80,\"backends\":[{\"ip\":\"x\",\"port\":1}]}",
		    LB_JSON_API, "", "backends[0].ip: not an IPv4 or IPv6 address: \"x\"");
	parse_fails("{\"name\":\"a\",\"port\":80,\"backends\":[{\"ip\":\"10.0.0.1\",\"port\":1,"
		    "\"weight\":0}]}", LB_JSON_API, "", "backends[0].weight: must be 1..65535");
	parse_fails("{\"name\":\"a\",\"port\":80,\"backends\":[{\"ip\":\"10.0.0.1\",\"port\":1,"
		    "\"weight\":65536}]}", LB_JSON_API, "", "backends[0].weight: must be 1..65535");
	parse_fails("{\"name\":\"a\",\"port\":80,\"backends\":[{\"ip\":\"10.0.0.1\",\"port\":1,"
		    "\"type\":\"TUN\"}]}", LB_JSON_API, "",
		    "backends[0].type: must be \"MASQ\" or \"LOCAL\", not \"TUN\"");
	parse_fails("{\"name\":\"a\",\"port\":80,\"backends\":[{\"ip\":\"10.0.0.1\",\"port\":1,"
		    "\"state\":\"off\"}]}", LB_JSON_API, "",
		    "backends[0].state: must be \"enabled\" or \"drained\", not \"off\"");
	parse_fails("{\"name\":\"a\",\"port\":80,\"backends\":[{\"ip\":\"10.0.0.1\",\"port\":1,"
		    "\"colour\":1}]}", LB_JSON_API, "", "backends[0]: unknown key \"colour\"");
	parse_fails("{\"name\":\"a\",\"port\":80,\"backends\":{}}", LB_JSON_API, "",
		    "backends: must be an array, not an object");
	parse_fails("{\"name\":\"a\",\"port\":80,\"backends\":[3]}", LB_JSON_API, "",
		    "backends[0]: must be an object, not a number");
}

static void test_duplicate_backends(void **st)
{
	(void)st;
	parse_fails("{\"name\":\"a\",\"port\":80,\"backends\":[{\"ip\":\"10.0.0.1\",\"port\":80},"
		    "{\"ip\":\"10.0.0.2\",\"port\":80},{\"ip\":\"10.0.0.1\",\"port\":\"80\"}]}",
		    LB_JSON_API, "", "backends[2]: duplicate backend 10.0.0.1:80 (also "
		    	"backends[0])");
	parse_fails("{\"name\":\"a\",\"port\":80,\"backends\":[{\"ip\":\"2001:db8::1\","
		"\"port\":80},"
		    "{\"ip\":\"2001:DB8::1\",\"port\":80}]}", LB_JSON_CONFIG, "loadbalancers[1]",
		    "loadbalancers[1].backends[1]: duplicate backend [2001:db8::1]:80 "
		    "(also backends[0])");
	parse_fails("{\"uuid\":\"087fcb0f-8e07-4123-a32f-e8e83a281023\",\"name\":\"a\",\"port\":80,"
		    "\"backends\":[{\"uuid\":\"187fcb0f-8e07-4123-a32f-e8e83a281023\","
		    "\"ip\":\"10.0.0.1\",\"port\":80},"
		    	"{\"uuid\":\"187FCB0F-8e07-4123-a32f-e8e83a281023\","
		    "\"ip\":\"10.0.0.2\",\"port\":80}]}", LB_JSON_STATE, "",
		    "backends[1].uuid: duplicate uuid (also backends[0])");
	/* same address on another port is another backend */
	lb_free(parse_ok("{\"name\":\"a\",\"port\":80,\"backends\":[{\"ip\":\"10.0.0.1\","
		"\"port\":80},"
			 "{\"ip\":\"10.0.0.1\",\"port\":81}]}", LB_JSON_API));
}

static void test_backend_family(void **st)
{
	(void)st;
	parse_fails("{\"name\":\"a\",\"port\":80,\"vip\":\"192.0.2.1\",\"forwarding\":\"nat\","
		    "\"backends\":[{\"ip\":\"10.0.0.1\",\"port\":80},{\"ip\":\"2001:db8::1\","
		    "\"port\":80}]}", LB_JSON_API, "",
		    "backends[1].ip: must be IPv4 like the vip, as forwarding \"nat\" keeps "
		    "addresses (only fullnat mixes families)");
	parse_fails("{\"name\":\"a\",\"port\":80,\"vip\":\"2001:db8::9\",\"forwarding\":\"dsr\","
		    "\"backends\":[{\"ip\":\"10.0.0.1\",\"port\":80}]}", LB_JSON_CONFIG, "lbs[0]",
		    "lbs[0].backends[0].ip: must be IPv6 like the vip, as forwarding \"dsr\" keeps "
		    "addresses (only fullnat mixes families)");
	lb_free(parse_ok("{\"name\":\"a\",\"port\":80,\"vip\":\"192.0.2.1\",\"backends\":[{\"ip\":"
			 "\"2001:db8::1\",\"port\":80}]}", LB_JSON_API));
	/* without a vip yet the family is not known */
	lb_free(parse_ok("{\"name\":\"a\",\"port\":80,\"forwarding\":\"nat\",\"backends\":[{\"ip\":"
			 "\"2001:db8::1\",\"port\":80},{\"ip\":\"10.0.0.1\",\"port\":80}]}",
			 LB_JSON_API));
}

static void test_config_mode_uuids(void **st)
{
	char want[UUID_STR_LEN];
	struct lb *a, *b;

	(void)st;
	a = parse_ok("{\"name\":\"web\",\"port\":80,\"backends\":[{\"ip\":\"10.0.0.1\","
		"\"port\":80},"
		     "{\"ip\":\"2001:db8::1\",\"port\":443}]}", LB_JSON_CONFIG);
	b = parse_ok("{\"name\":\"web\",\"port\":80,\"backends\":[{\"ip\":\"2001:db8::1\","
		"\"port\":443},"
		     "{\"ip\":\"10.0.0.1\",\"port\":80}]}", LB_JSON_CONFIG);
	uuid_from_name("web", want);
	assert_string_equal(a->uuid, want);
	assert_string_equal(b->uuid, want);
	assert_int_equal(a->origin, LB_ORIGIN_CONFIG);
	uuid_from_name("web/10.0.0.1:80", want);
	assert_string_equal(a->backends[0].uuid, want);
	assert_string_equal(b->backends[1].uuid, want);
	uuid_from_name("web/2001:db8::1:443", want);
	assert_string_equal(a->backends[1].uuid, want);
	lb_free(a);
	lb_free(b);

	a = parse_ok("{\"uuid\":\"087FCB0F-8E07-4123-A32F-E8E83A281023\",\"name\":\"web\","
		"\"port\":80,"
		     "\"backends\":[{\"uuid\":\"187fcb0f-8e07-4123-a32f-e8e83a281023\",\"ip\":"
		     "\"10.0.0.1\",\"port\":80}]}", LB_JSON_CONFIG);
	assert_string_equal(a->uuid, "087fcb0f-8e07-4123-a32f-e8e83a281023");
	assert_string_equal(a->backends[0].uuid, "187fcb0f-8e07-4123-a32f-e8e83a281023");
	lb_free(a);

	parse_fails("{\"uuid\":\"nope\",\"name\":\"web\",\"port\":80}", LB_JSON_CONFIG,
		    "loadbalancers[0]", "loadbalancers[0].uuid: not a uuid: \"nope\"");
	parse_fails("{\"uuid\":5,\"name\":\"web\",\"port\":80}", LB_JSON_CONFIG, "",
		    "uuid: must be a string, not a number");
	parse_fails("{\"name\":\"web\",\"port\":80,\"backends\":[{\"uuid\":\"x\","
		"\"ip\":\"10.0.0.1\","
		    "\"port\":80}]}", LB_JSON_CONFIG, "", "backends[0].uuid: not a uuid: \"x\"");
}

static void test_state_mode(void **st)
{
	struct lb *lb;

	(void)st;
	lb = parse_ok("{\"uuid\":\"087fcb0f-8e07-4123-a32f-e8e83a281023\",\"name\":\"web\","
		"\"port\":80,"
		      "\"origin\":\"config\",\"backends\":[{\"uuid\":"
		      "\"187fcb0f-8e07-4123-a32f-e8e83a281023\",\"ip\":\"10.0.0.1\",\"port\":80}]}",
		      LB_JSON_STATE);
	assert_string_equal(lb->uuid, "087fcb0f-8e07-4123-a32f-e8e83a281023");
	assert_int_equal(lb->origin, LB_ORIGIN_CONFIG);
	assert_string_equal(lb->backends[0].uuid, "187fcb0f-8e07-4123-a32f-e8e83a281023");
	lb_free(lb);
	lb = parse_ok("{\"uuid\":\"087fcb0f-8e07-4123-a32f-e8e83a281023\",\"name\":\"web\","
		      "\"port\":80}", LB_JSON_STATE);
	assert_int_equal(lb->origin, LB_ORIGIN_API);
	lb_free(lb);

	parse_fails("{\"name\":\"web\",\"port\":80}", LB_JSON_STATE, "loadbalancers[4]",
		    "loadbalancers[4].uuid: required in the state file");
	parse_fails("{\"uuid\":\"087fcb0f-8e07-4123-a32f-e8e83a281023\",\"name\":\"web\","
		"\"port\":80,"
		    "\"backends\":[{\"ip\":\"10.0.0.1\",\"port\":80}]}", LB_JSON_STATE, "",
		    "backends[0].uuid: required in the state file");
	parse_fails("{\"uuid\":\"087fcb0f-8e07-4123-a32f-e8e83a281023\",\"name\":\"web\","
		"\"port\":80,"
		    "\"origin\":\"cli\"}", LB_JSON_STATE, "",
		    "origin: must be one of api, config, not \"cli\"");
}

static void test_health_check(void **st)
{
	struct lb *lb;

	(void)st;
	lb = parse_ok("{\"name\":\"a\",\"port\":80,\"health_check\":{\"type\":\"HTTPS\","
		      "\"interval\":\"1m\",\"timeout\":1500,\"fail_count\":100,\"rise_count\":1,"
		      "\"port\":8443,\"http_path\":\"/healthz?x=1\",\"http_expected_status\":"
		      "[200,\"204\"],\"host\":\"example.com\",\"expect_body\":\"ok then\","
		      "\"tls_verify\":false,\"udp_payload\":\"ping\",\"udp_expect\":\"pong\"}}",
		      LB_JSON_API);
	assert_int_equal(lb->hc.type, HC_HTTPS);
	assert_int_equal(lb->hc.interval_ms, 60000);
	assert_int_equal(lb->hc.timeout_ms, 1500);
	assert_int_equal(lb->hc.fail_count, 100);
	assert_int_equal(lb->hc.rise_count, 1);
	assert_int_equal(lb->hc.port, 8443);
	assert_string_equal(lb->hc.http_path, "/healthz?x=1");
	assert_int_equal(lb->hc.n_expected_status, 2);
	assert_int_equal(lb->hc.expected_status[0], 200);
	assert_int_equal(lb->hc.expected_status[1], 204);
	assert_string_equal(lb->hc.host, "example.com");
	assert_string_equal(lb->hc.expect_body, "ok then");
	assert_false(lb->hc.tls_verify);
	assert_string_equal(lb->hc.udp_payload, "ping");
	assert_string_equal(lb->hc.udp_expect, "pong");
	lb_free(lb);

	lb = parse_ok("{\"name\":\"a\",\"port\":80,\"health_check\":{\"http_expected_status\":301,"
		      "\"interval\":\"1h\",\"timeout\":\"1h\"}}", LB_JSON_API);
	assert_int_equal(lb->hc.n_expected_status, 1);
	assert_int_equal(lb->hc.expected_status[0], 301);
	assert_int_equal(lb->hc.interval_ms, 3600000);
	lb_free(lb);

	/* the default timeout (2s) follows a shorter interval instead of failing */
	lb = parse_ok("{\"name\":\"a\",\"port\":80,\"health_check\":{\"interval\":\"500ms\"}}",
		      LB_JSON_API);
	assert_int_equal(lb->hc.interval_ms, 500);
	assert_int_equal(lb->hc.timeout_ms, 500);
	lb_free(lb);
	lb = parse_ok("{\"name\":\"a\",\"port\":80,\"health_check\":{\"type\":\"none\"}}",
		      LB_JSON_API);
	assert_int_equal(lb->hc.type, HC_NONE);
	assert_int_equal(lb->hc.min_healthy, 1);
	lb_free(lb);

	/* TCP is checked by default; UDP only when asked (a service need not answer any datagram) */
	lb = parse_ok("{\"name\":\"a\",\"port\":53}", LB_JSON_API);
	assert_int_equal(lb->hc.type, HC_TCP);
	lb_free(lb);
	lb = parse_ok("{\"name\":\"a\",\"port\":53,\"protocol\":\"udp\"}", LB_JSON_API);
	assert_int_equal(lb->hc.type, HC_NONE);
	lb_free(lb);
	lb = parse_ok("{\"name\":\"a\",\"port\":53,\"protocol\":\"udp\",\"health_check\":"
		      "{\"type\":\"udp\",\"min_healthy\":2}}", LB_JSON_API);
	assert_int_equal(lb->hc.type, HC_UDP);
	assert_int_equal(lb->hc.min_healthy, 2);
	lb_free(lb);

	/* IPVS persistence, in whole seconds */
	lb = parse_ok("{\"name\":\"a\",\"port\":80,\"persistence\":\"10m\"}", LB_JSON_API);
	assert_int_equal(lb->persistence_ms, 600000);
	lb_free(lb);

	/* "draining", as the API shows a drain in progress, reads back as drained */
	lb = parse_ok("{\"name\":\"a\",\"port\":80,\"backends\":[{\"ip\":\"10.0.0.1\","
		      "\"port\":80,\"state\":\"draining\"}]}", LB_JSON_API);
	assert_true(lb->backends[0].drained);
	lb_free(lb);
}

#define X16 "xxxxxxxxxxxxxxxx"
#define X256 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16

static void test_health_check_errors(void **st)
{
	static const struct {
		const char *hc, *want;
	} cases[] = {
		{ "{\"interval\":\"50ms\"}", "health_check.interval: must be 100ms..1h" },
		{ "{\"interval\":99}", "health_check.interval: must be 100ms..1h" },
		{ "{\"interval\":\"2h\"}", "health_check.interval: must be 100ms..1h" },
		{ "{\"interval\":\"5x\"}", "health_check.interval: must be milliseconds or a "
			"duration "
					   "such as \"500ms\", \"5s\", \"1m\"" },
		{ "{\"interval\":\"1.5s\"}", "health_check.interval: must be milliseconds or a "
					     "duration such as \"500ms\", \"5s\", \"1m\"" },
		{ "{\"interval\":-5}", "health_check.interval: must be milliseconds or a duration "
				       "such as \"500ms\", \"5s\", \"1m\"" },
		{ "{\"timeout\":0}",
		  "health_check.timeout: must be more than 0 and at most interval (5s)" },
		{ "{\"interval\":\"1s\",\"timeout\":\"2s\"}",
		  "health_check.timeout: must be more than 0 and at most interval (1s)" },
		{ "{\"fail_count\":0}", "health_check.fail_count: must be 1..100" },
		{ "{\"fail_count\":101}", "health_check.fail_count: must be 1..100" },
		{ "{\"rise_count\":0}", "health_check.rise_count: must be 1..100" },
		{ "{\"port\":65536}", "health_check.port: must be 0..65535" },
		{ "{\"http_path\":\"healthz\"}", "health_check.http_path: must start with \"/\"" },
		{ "{\"http_path\":\"/a b\"}", "health_check.http_path: must be non-empty, without "
					      "spaces or control characters" },
		{ "{\"host\":\"\"}",
		  "health_check.host: must be non-empty, without spaces or control characters" },
		{ "{\"http_expected_status\":99}",
		  "health_check.http_expected_status: must be 100..599" },
		{ "{\"http_expected_status\":600}",
		  "health_check.http_expected_status: must be 100..599" },
		{ "{\"http_expected_status\":[200,700]}",
		  "health_check.http_expected_status[1]: must be 100..599" },
		{ "{\"http_expected_status\":[]}",
		  "health_check.http_expected_status: must hold 1..16 statuses" },
		{ "{\"http_expected_status\":[200,201,202,203,204,205,206,207,208,226,300,301,302,"
		  "303,304,305,307]}", "health_check.http_expected_status: must hold 1..16 "
		  	"statuses" },
		{ "{\"http_expected_status\":{}}", "health_check.http_expected_status: must be a "
						  "status or an array of statuses, not an object" },
		{ "{\"type\":\"icmp\"}",
		  "health_check.type: must be tcp, http, https, udp or none, not \"icmp\"" },
		{ "{\"tls_verify\":\"yes\"}",
		  "health_check.tls_verify: must be true or false, not a string" },
		{ "{\"udp_payload\":5}", "health_check.udp_payload: must be a string, not a "
			"number" },
		{ "{\"foo\":1}", "health_check: unknown key \"foo\"" },
		{ "{\"min_healthy\":0}", "health_check.min_healthy: must be 1..4096" },
		{ "{\"expect_body\":\"" X256 "x\"}", "health_check.expect_body: must be at most "
		  "256 bytes" },
		{ "[]", "health_check: must be an object, not an array" },
	};
	char body[512];

	(void)st;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(body, sizeof(body), "{\"name\":\"a\",\"port\":80,\"health_check\":%s}",
			 cases[i].hc);
		parse_fails(body, LB_JSON_API, "", cases[i].want);
	}
}

static void test_health_check_from_json_direct(void **st)
{
	struct health_check hc;
	cJSON *j = cJSON_Parse("{\"type\":\"udp\",\"udp_payload\":\"hi\"}");

	(void)st;
	assert_int_equal(health_check_from_json(j, "", &hc, err, sizeof(err)), 0);
	assert_int_equal(hc.type, HC_UDP);
	assert_string_equal(hc.udp_payload, "hi");
	assert_int_equal(hc.interval_ms, 5000);
	health_check_clear(&hc);
	cJSON_Delete(j);
	j = cJSON_Parse("{\"interval\":1,\"http_path\":\"x\"}");
	assert_int_equal(health_check_from_json(j, "", &hc, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "http_path: must start with \"/\"\ninterval: must be 100ms..1h");
	/* on error hc is left with the defaults, nothing to free */
	assert_int_equal(hc.interval_ms, 5000);
	assert_null(hc.http_path);
	health_check_clear(&hc);
	cJSON_Delete(j);
}

static void test_backend_from_json_direct(void **st)
{
	struct backend b;
	cJSON *j = cJSON_Parse("{\"uuid\":\"187fcb0f-8e07-4123-a32f-e8e83a281023\","
			       "\"ip\":\"10.0.0.1\",\"port\":\"80\",\"weight\":2}");

	(void)st;
	assert_int_equal(backend_from_json(j, LB_JSON_API, "", &b, err, sizeof(err)), 0);
	assert_string_not_equal(b.uuid, "187fcb0f-8e07-4123-a32f-e8e83a281023");
	assert_int_equal(b.port, 80);
	assert_int_equal(b.weight, 2);
	assert_int_equal(backend_from_json(j, LB_JSON_STATE, "", &b, err, sizeof(err)), 0);
	assert_string_equal(b.uuid, "187fcb0f-8e07-4123-a32f-e8e83a281023");
	cJSON_Delete(j);
	j = cJSON_Parse("{\"ip\":\"10.0.0.1\",\"port\":0}");
	assert_int_equal(backend_from_json(j, LB_JSON_API, "body", &b, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "body.port: must be 1..65535");
	cJSON_Delete(j);
}

static void test_all_errors_reported(void **st)
{
	struct lb *lb;

	(void)st;
	lb = parse("{\"name\":\"\",\"port\":0,\"protocol\":\"x\",\"colour\":1,\"vip\":\"v\","
		   "\"health_check\":{\"fail_count\":0,\"rise_count\":0},"
		   "\"backends\":[{\"ip\":\"10.0.0.1\",\"port\":0},{\"port\":1}]}",
		   LB_JSON_CONFIG, "loadbalancers[1]");
	assert_null(lb);
	assert_true(err_has_line("loadbalancers[1].name: must be 1..253 characters"));
	assert_true(err_has_line("loadbalancers[1].port: must be 1..65535"));
	assert_true(err_has_line("loadbalancers[1].protocol: must be one of tcp, udp, not \"x\""));
	assert_true(err_has_line("loadbalancers[1]: unknown key \"colour\""));
	assert_true(err_has_line("loadbalancers[1].vip: not an IPv4 or IPv6 address: \"v\""));
	assert_true(err_has_line("loadbalancers[1].health_check.fail_count: must be 1..100"));
	assert_true(err_has_line("loadbalancers[1].health_check.rise_count: must be 1..100"));
	assert_true(err_has_line("loadbalancers[1].backends[0].port: must be 1..65535"));
	assert_true(err_has_line("loadbalancers[1].backends[1].ip: required"));
	{
		size_t lines = 1;

		for (const char *p = err; *p; p++)
			lines += *p == '\n';
		assert_int_equal(lines, 9);
	}
}

/* Paths name the input's positions even when earlier entries were refused. */
static void test_error_paths_use_input_positions(void **st)
{
	struct lb *lb;

	(void)st;
	lb = parse("{\"name\":\"a\",\"port\":80,\"vip\":\"192.0.2.1\",\"forwarding\":\"dsr\","
		   "\"health_check\":{\"interval\":\"50ms\",\"http_path\":\"x\"},"
		   "\"backends\":[{\"ip\":\"10.0.0.1\",\"port\":70000},{\"ip\":\"2001:db8::1\","
		   "\"port\":80},{\"ip\":\"10.0.0.3\",\"port\":80},{\"ip\":\"10.0.0.3\","
		   "\"port\":80}]}", LB_JSON_CONFIG, "loadbalancers[2]");
	assert_null(lb);
	assert_true(err_has_line("loadbalancers[2].health_check.http_path: must start with \"/\""));
	assert_true(err_has_line("loadbalancers[2].health_check.interval: must be 100ms..1h"));
	assert_true(err_has_line("loadbalancers[2].backends[0].port: must be 1..65535"));
	assert_true(err_has_line("loadbalancers[2].backends[3]: duplicate backend 10.0.0.3:80 "
				 "(also backends[2])"));
	assert_true(err_has_line("loadbalancers[2].backends[1].ip: must be IPv4 like the vip, as "
				 "forwarding \"dsr\" keeps addresses (only fullnat mixes "
				 	"families)"));
	{
		size_t lines = 1;

		for (const char *p = err; *p; p++)
			lines += *p == '\n';
		assert_int_equal(lines, 5);
	}
}

static void test_small_err_buffer(void **st)
{
	char small[24];
	struct lb *lb = (struct lb *)1;
	cJSON *j = cJSON_Parse("{\"name\":\"\",\"port\":0}");

	(void)st;
	memset(small, 'x', sizeof(small));
	assert_int_equal(lb_from_json(j, LB_JSON_API, "", &lb, small, sizeof(small)), -EINVAL);
	assert_null(lb);
	assert_true(strlen(small) < sizeof(small));
	assert_int_equal(lb_from_json(j, LB_JSON_API, "", &lb, small, 1), -EINVAL);
	assert_string_equal(small, "");
	assert_int_equal(lb_from_json(j, LB_JSON_API, NULL, &lb, NULL, 0), -EINVAL);
	cJSON_Delete(j);
}

static struct lb *full_lb(void)
{
	struct lb *lb = lb_new();
	struct backend b;

	lb_set_name(lb, "full \xc3\xa9");
	ip_addr_parse("2001:db8::10", &lb->vip);
	lb->port = 8443;
	lb->protocol = LB_PROTO_UDP;
	lb->scheduler = LB_SCHED_WRR;
	lb->forwarding = LB_FWD_TUNNEL;
	lb->origin = LB_ORIGIN_CONFIG;
	lb->hc.type = HC_HTTP;
	lb->hc.interval_ms = 1500;
	lb->hc.timeout_ms = 1200;
	lb->hc.fail_count = 7;
	lb->hc.rise_count = 9;
	lb->hc.port = 9000;
	lb->hc.http_path = strdup("/ready");
	lb->hc.host = strdup("svc.example");
	lb->hc.expect_body = strdup("\"ok\"\n");
	lb->hc.expected_status[0] = 200;
	lb->hc.expected_status[1] = 418;
	lb->hc.n_expected_status = 2;
	lb->hc.tls_verify = false;
	lb->hc.udp_payload = strdup("\x01\x02");
	lb->hc.udp_expect = strdup("pong");
	backend_init(&b);
	ip_addr_parse("2001:db8::20", &b.ip);
	b.port = 9443;
	b.weight = 65535;
	b.type = BACKEND_LOCAL;
	b.drained = true;
	lb_add_backend(lb, &b);
	backend_init(&b);
	ip_addr_parse("2001:db8::21", &b.ip);
	b.port = 1;
	lb_add_backend(lb, &b);
	return lb;
}

static void assert_str_or_null(const char *a, const char *b)
{
	if (!a || !b)
		assert_ptr_equal(a, b);
	else
		assert_string_equal(a, b);
}

static void assert_lb_equal(const struct lb *a, const struct lb *b)
{
	assert_string_equal(a->uuid, b->uuid);
	assert_string_equal(a->name, b->name);
	assert_true(ip_addr_equal(&a->vip, &b->vip));
	assert_int_equal(a->port, b->port);
	assert_int_equal(a->protocol, b->protocol);
	assert_int_equal(a->scheduler, b->scheduler);
	assert_int_equal(a->forwarding, b->forwarding);
	assert_int_equal(a->origin, b->origin);
	assert_int_equal(a->hc.type, b->hc.type);
	assert_int_equal(a->hc.interval_ms, b->hc.interval_ms);
	assert_int_equal(a->hc.timeout_ms, b->hc.timeout_ms);
	assert_int_equal(a->hc.fail_count, b->hc.fail_count);
	assert_int_equal(a->hc.rise_count, b->hc.rise_count);
	assert_int_equal(a->hc.port, b->hc.port);
	assert_str_or_null(a->hc.http_path, b->hc.http_path);
	assert_str_or_null(a->hc.host, b->hc.host);
	assert_str_or_null(a->hc.expect_body, b->hc.expect_body);
	assert_str_or_null(a->hc.udp_payload, b->hc.udp_payload);
	assert_str_or_null(a->hc.udp_expect, b->hc.udp_expect);
	assert_int_equal(a->hc.n_expected_status, b->hc.n_expected_status);
	for (size_t i = 0; i < a->hc.n_expected_status; i++)
		assert_int_equal(a->hc.expected_status[i], b->hc.expected_status[i]);
	assert_int_equal(a->hc.tls_verify, b->hc.tls_verify);
	assert_int_equal(a->n_backends, b->n_backends);
	for (size_t i = 0; i < a->n_backends; i++) {
		const struct backend *x = &a->backends[i], *y = &b->backends[i];

		assert_string_equal(x->uuid, y->uuid);
		assert_true(ip_addr_equal(&x->ip, &y->ip));
		assert_int_equal(x->port, y->port);
		assert_int_equal(x->weight, y->weight);
		assert_int_equal(x->type, y->type);
		assert_int_equal(x->drained, y->drained);
	}
}

static struct lb *round_trip(const struct lb *lb, enum lb_json_view view, enum lb_json_mode mode)
{
	cJSON *j = lb_to_json(lb, view);
	char *text;
	struct lb *back;

	assert_non_null(j);
	text = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	back = parse(text, mode, "");
	if (!back)
		fail_msg("%s: %s", text, err);
	free(text);
	return back;
}

static void test_round_trip(void **st)
{
	struct lb *lb = full_lb(), *back, *pending;

	(void)st;
	back = round_trip(lb, LB_VIEW_STATE, LB_JSON_STATE);
	assert_lb_equal(lb, back);
	lb_free(back);

	/* GET output pasted into a config file keeps its uuids */
	lb->origin = LB_ORIGIN_CONFIG;
	back = round_trip(lb, LB_VIEW_API, LB_JSON_CONFIG);
	assert_lb_equal(lb, back);
	lb_free(back);

	/* defaults survive too, with NULL strings staying NULL */
	pending = lb_new();
	lb_set_name(pending, "p");
	pending->port = 1;
	back = round_trip(pending, LB_VIEW_STATE, LB_JSON_STATE);
	assert_lb_equal(pending, back);
	assert_false(ip_addr_is_set(&back->vip));
	lb_free(back);
	lb_free(pending);
	lb_free(lb);
}

static void test_to_json_views(void **st)
{
	struct lb *lb = full_lb();
	cJSON *api, *state, *b;
	char *t;

	(void)st;
	lb->backends[0].health = BACKEND_HEALTH_DOWN;
	api = lb_to_json(lb, LB_VIEW_API);
	state = lb_to_json(lb, LB_VIEW_STATE);
	assert_string_equal(cJSON_GetObjectItem(api, "vip")->valuestring, "2001:db8::10");
	assert_string_equal(cJSON_GetObjectItem(api, "eip")->valuestring, "2001:db8::10");
	assert_string_equal(cJSON_GetObjectItem(api, "status")->valuestring, "active");
	assert_null(cJSON_GetObjectItem(api, "origin"));
	assert_int_equal(cJSON_GetObjectItem(api, "port")->valueint, 8443);
	b = cJSON_GetArrayItem(cJSON_GetObjectItem(api, "backends"), 0);
	assert_string_equal(cJSON_GetObjectItem(b, "health")->valuestring, "down");
	assert_string_equal(cJSON_GetObjectItem(b, "state")->valuestring, "drained");
	assert_string_equal(cJSON_GetObjectItem(b, "type")->valuestring, "LOCAL");
	assert_null(cJSON_GetObjectItem(state, "status"));
	assert_string_equal(cJSON_GetObjectItem(state, "origin")->valuestring, "config");
	b = cJSON_GetArrayItem(cJSON_GetObjectItem(state, "backends"), 0);
	assert_null(cJSON_GetObjectItem(b, "health"));
	t = cJSON_PrintUnformatted(cJSON_GetObjectItem(state, "health_check"));
	assert_string_equal(t, "{\"type\":\"http\",\"interval\":\"1500ms\",\"timeout\":\"1200ms\","
			       "\"fail_count\":7,\"rise_count\":9,\"port\":9000,\"http_path\":"
			       "\"/ready\",\"http_expected_status\":[200,418],\"host\":"
			       "\"svc.example\",\"expect_body\":\"\\\"ok\\\"\\n\",\"tls_verify\":"
			       "false,\"udp_payload\":\"\\u0001\\u0002\",\"udp_expect\":\"pong\","
			       "\"min_healthy\":1}");
	free(t);
	cJSON_Delete(api);
	cJSON_Delete(state);
	lb_free(lb);

	/* a pending load balancer: empty vip and eip, an empty backends array */
	lb = lb_new();
	lb_set_name(lb, "p");
	lb->port = 80;
	lb->status = LB_STATUS_PENDING;
	api = lb_to_json(lb, LB_VIEW_API);
	t = cJSON_PrintUnformatted(api);
	{
		char want[1024];

		snprintf(want, sizeof(want),
			 "{\"uuid\":\"%s\",\"name\":\"p\",\"vip\":\"\",\"eip\":\"\",\"port\":80,"
			 "\"protocol\":\"tcp\",\"scheduler\":\"mh\",\"forwarding\":\"fullnat\","
			 "\"status\":\"pending\",\"health_check\":{\"type\":\"tcp\",\"interval\":"
			 "\"5s\",\"timeout\":\"2s\",\"fail_count\":3,\"rise_count\":2,\"port\":0,"
			 "\"tls_verify\":true,\"min_healthy\":1},\"backends\":[]}", lb->uuid);
		assert_string_equal(t, want);
	}
	free(t);
	cJSON_Delete(api);

	/* without health checks a backend counts as up, and says so */
	{
		struct backend bk;

		backend_init(&bk);
		ip_addr_parse("10.0.0.1", &bk.ip);
		bk.port = 80;
		lb->hc.type = HC_NONE;
		b = backend_to_json(lb, &bk, LB_VIEW_API);
		assert_string_equal(cJSON_GetObjectItem(b, "health")->valuestring, "up");
		cJSON_Delete(b);
	}
	lb_free(lb);
}

static void test_json_port_and_durations(void **st)
{
	static const struct {
		const char *s;
		int r;
		uint32_t ms;
	} durations[] = {
		{ "0", 0, 0 }, { "500", 0, 500 }, { "500ms", 0, 500 }, { "5s", 0, 5000 },
		{ "1m", 0, 60000 }, { "2h", 0, 7200000 }, { "4294967295", 0, 4294967295u },
		{ "4294967296", -EINVAL, 0 }, { "5000000h", -EINVAL, 0 }, { "", -EINVAL, 0 },
		{ "5 s", -EINVAL, 0 }, { "-5s", -EINVAL, 0 }, { "1.5s", -EINVAL, 0 },
		{ "s", -EINVAL, 0 }, { "5S", -EINVAL, 0 }, { "5sec", -EINVAL, 0 },
	};
	uint16_t port;
	uint32_t ms;
	cJSON *v;

	(void)st;
	for (size_t i = 0; i < sizeof(durations) / sizeof(durations[0]); i++) {
		ms = 12345;
		assert_int_equal(duration_parse_ms(durations[i].s, &ms), durations[i].r);
		if (!durations[i].r)
			assert_int_equal(ms, durations[i].ms);
	}
	assert_int_equal(duration_parse_ms(NULL, &ms), -EINVAL);

	v = cJSON_CreateNumber(2500);
	assert_int_equal(json_duration_ms(v, &ms), 0);
	assert_int_equal(ms, 2500);
	cJSON_SetNumberValue(v, 2.5);
	assert_int_equal(json_duration_ms(v, &ms), -EINVAL);
	cJSON_Delete(v);
	v = cJSON_CreateString("3s");
	assert_int_equal(json_duration_ms(v, &ms), 0);
	assert_int_equal(ms, 3000);
	cJSON_Delete(v);
	v = cJSON_CreateTrue();
	assert_int_equal(json_duration_ms(v, &ms), -EINVAL);
	assert_int_equal(json_port(v, &port), -EINVAL);
	cJSON_Delete(v);

	v = cJSON_CreateString("6443");
	assert_int_equal(json_port(v, &port), 0);
	assert_int_equal(port, 6443);
	cJSON_Delete(v);
	v = cJSON_CreateNumber(65535);
	assert_int_equal(json_port(v, &port), 0);
	assert_int_equal(port, 65535);
	cJSON_SetNumberValue(v, 0);
	assert_int_equal(json_port(v, &port), -EINVAL);
	cJSON_SetNumberValue(v, 65536);
	assert_int_equal(json_port(v, &port), -EINVAL);
	cJSON_Delete(v);
	v = cJSON_CreateString("80 ");
	assert_int_equal(json_port(v, &port), -EINVAL);
	cJSON_Delete(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_api_minimal_defaults),
		cmocka_unit_test(test_api_ignores_uuids),
		cmocka_unit_test(test_numeric_string_ports),
		cmocka_unit_test(test_port_errors),
		cmocka_unit_test(test_name_errors),
		cmocka_unit_test(test_vip_eip),
		cmocka_unit_test(test_unknown_and_duplicate_keys),
		cmocka_unit_test(test_enums_and_aliases),
		cmocka_unit_test(test_backends),
		cmocka_unit_test(test_duplicate_backends),
		cmocka_unit_test(test_backend_family),
		cmocka_unit_test(test_config_mode_uuids),
		cmocka_unit_test(test_state_mode),
		cmocka_unit_test(test_health_check),
		cmocka_unit_test(test_health_check_errors),
		cmocka_unit_test(test_health_check_from_json_direct),
		cmocka_unit_test(test_backend_from_json_direct),
		cmocka_unit_test(test_all_errors_reported),
		cmocka_unit_test(test_error_paths_use_input_positions),
		cmocka_unit_test(test_small_err_buffer),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_to_json_views),
		cmocka_unit_test(test_json_port_and_durations),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
