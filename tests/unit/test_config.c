#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cloud/ipam.h"
#include "config.h"
#include "settings.h"

static const char good[] =
	"{\n"
	"  \"arp\": false,\n"
	"  \"bgp\": true,\n"
	"  \"adapter\": \"eth0\",\n"
	"  \"ipam_ranges\": [\"192.168.1.200-192.168.1.249\", \"2001:db8:5::/120\"],\n"
	"  \"project\": \"p-1\",\n"
	"  \"facility\": \"ny5\",\n"
	"  \"metro\": \"ny\",\n"
	"  \"api_listen\": \"[::1]:10002\",\n"
	"  \"api_token_file\": \"/etc/vipd/token\",\n"
	"  \"bird_socket\": \"/run/bird/bird6.ctl\",\n"
	"  \"dataplane\": \"none\",\n"
	"  \"state_dir\": \"/tmp/vipd-state\",\n"
	"  \"log_level\": \"debug\",\n"
	"  \"foreground\": true,\n"
	"  \"loadbalancers\": [\n"
	"    {\"name\": \"web\", \"port\": 80, \"backends\": [{\"ip\": \"10.0.0.11\", \"port\": "
		"8080}]},\n"
	"    {\"name\": \"dns\", \"vip\": \"192.168.1.250\", \"port\": \"53\", \"protocol\": "
		"\"udp\"},\n"
	"    {\"name\": \"dns-tcp\", \"vip\": \"192.168.1.250\", \"port\": 53},\n"
	"    {\"uuid\": \"087fcb0f-8e07-4123-a32f-e8e83a281023\", \"name\": \"x\", \"port\": 80}\n"
	"  ]\n"
	"}\n";

static struct config cfg;
static struct config_error errs;

static int parse(const char *text)
{
	config_clear(&cfg);
	config_error_clear(&errs);
	return config_parse(text, strlen(text), &cfg, &errs);
}

static void dump_errs(void)
{
	for (size_t i = 0; i < errs.n; i++)
		print_message("  error: %s\n", errs.msgs[i]);
}

static bool has_err(const char *want)
{
	for (size_t i = 0; i < errs.n; i++)
		if (strcmp(errs.msgs[i], want) == 0)
			return true;
	return false;
}

/* text must fail with exactly this one error. */
static void fails_with(const char *text, const char *want)
{
	int r = parse(text);

	if (r != -EINVAL || errs.n != 1 || strcmp(errs.msgs[0], want) != 0) {
		dump_errs();
		fail_msg("for %s: r=%d, want the single error: %s", text, r, want);
	}
	/* a failed parse leaves nothing behind */
	assert_int_equal(cfg.n_lbs, 0);
	assert_null(cfg.lbs);
	assert_null(cfg.settings.api_listen);
}

static int teardown(void **st)
{
	(void)st;
	config_clear(&cfg);
	config_error_clear(&errs);
	return 0;
}

static void test_good_config(void **st)
{
	char uuid[UUID_STR_LEN], ip[IP_ADDR_STRLEN];

	(void)st;
	if (parse(good)) {
		dump_errs();
		fail();
	}
	assert_int_equal(errs.n, 0);
	assert_false(cfg.settings.arp);
	assert_true(cfg.settings.bgp);
	assert_string_equal(cfg.settings.adapter, "eth0");
	assert_int_equal(cfg.settings.n_ipam_ranges, 2);
	assert_string_equal(cfg.settings.ipam_ranges[1], "2001:db8:5::/120");
	assert_string_equal(cfg.settings.project, "p-1");
	assert_string_equal(cfg.settings.facility, "ny5");
	assert_string_equal(cfg.settings.metro, "ny");
	assert_string_equal(cfg.settings.api_listen, "[::1]:10002");
	assert_string_equal(cfg.settings.api_token_file, "/etc/vipd/token");
	assert_string_equal(cfg.settings.bird_socket, "/run/bird/bird6.ctl");
	assert_int_equal(cfg.settings.dataplane, DATAPLANE_NONE);
	assert_string_equal(cfg.settings.state_dir, "/tmp/vipd-state");
	assert_int_equal(cfg.settings.log_level, LOG_LVL_DEBUG);
	assert_true(cfg.settings.foreground);
	assert_int_equal(cfg.settings.set,
			 SET_ARP | SET_BGP | SET_ADAPTER | SET_IPAM_RANGES | SET_PROJECT |
			 SET_FACILITY | SET_METRO | SET_API_LISTEN | SET_API_TOKEN_FILE |
			 SET_BIRD_SOCKET | SET_DATAPLANE | SET_STATE_DIR | SET_LOG_LEVEL |
			 SET_FOREGROUND);

	assert_int_equal(cfg.n_lbs, 4);
	uuid_from_name("web", uuid);
	assert_string_equal(cfg.lbs[0]->uuid, uuid);
	assert_int_equal(cfg.lbs[0]->origin, LB_ORIGIN_CONFIG);
	assert_int_equal(cfg.lbs[0]->n_backends, 1);
	uuid_from_name("web/10.0.0.11:8080", uuid);
	assert_string_equal(cfg.lbs[0]->backends[0].uuid, uuid);
	assert_string_equal(ip_addr_str(&cfg.lbs[1]->vip, ip), "192.168.1.250");
	assert_int_equal(cfg.lbs[1]->port, 53);
	assert_int_equal(cfg.lbs[1]->protocol, LB_PROTO_UDP);
	assert_string_equal(cfg.lbs[3]->uuid, "087fcb0f-8e07-4123-a32f-e8e83a281023");
}

static void test_defaults_when_absent(void **st)
{
	(void)st;
	assert_int_equal(parse("{}"), 0);
	assert_int_equal(cfg.settings.set, 0);
	assert_string_equal(cfg.settings.api_listen, VIPD_DEFAULT_API_LISTEN);
	assert_string_equal(cfg.settings.state_dir, VIPD_DEFAULT_STATE_DIR);
	assert_string_equal(cfg.settings.bird_socket, VIPD_DEFAULT_BIRD_SOCKET);
	assert_int_equal(cfg.settings.dataplane, DATAPLANE_AUTO);
	assert_int_equal(cfg.settings.log_level, LOG_LVL_INFO);
	assert_int_equal(cfg.n_lbs, 0);

	assert_int_equal(parse("{\"ipam_ranges\": \"10.0.0.0/24\", \"loadbalancers\": []}"), 0);
	assert_int_equal(cfg.settings.n_ipam_ranges, 1);
	assert_string_equal(cfg.settings.ipam_ranges[0], "10.0.0.0/24");
	assert_int_equal(cfg.settings.set, SET_IPAM_RANGES);

	/* an empty list is given, and replaces the ranges from elsewhere */
	assert_int_equal(parse("{\"ipam_ranges\": []}"), 0);
	assert_int_equal(cfg.settings.n_ipam_ranges, 0);
	assert_int_equal(cfg.settings.set, SET_IPAM_RANGES);
}

static void test_metal_keys(void **st)
{
	(void)st;
	assert_int_equal(parse("{\"project\": \"p\", \"metro\": \"ny\", \"device\": \"d-1\", "
			       "\"token_file\": \"/etc/vipd/metal-token\", "
			       "\"metal_api_url\": \"http://127.0.0.1:8080/metal/v1\", "
			       "\"metal_metadata_url\": \"http://127.0.0.1:8081/metadata\", "
			       "\"keep_ips\": true}"),
			 0);
	assert_string_equal(cfg.settings.device, "d-1");
	assert_string_equal(cfg.settings.metal_token_file, "/etc/vipd/metal-token");
	assert_string_equal(cfg.settings.metal_api_url, "http://127.0.0.1:8080/metal/v1");
	assert_string_equal(cfg.settings.metal_metadata_url, "http://127.0.0.1:8081/metadata");
	assert_true(cfg.settings.keep_ips);
	assert_true(cfg.settings.set & SET_KEEP_IPS);
	fails_with("{\"metal_api_url\": \"api.equinix.com\"}",
		   "metal_api_url: expected an http:// or https:// URL, not \"api.equinix.com\"");
	fails_with("{\"keep_ips\": \"yes\"}", "keep_ips: must be true or false, not a string");
	fails_with("{\"token\": \"abc\"}", "unknown key \"token\"");
}

static void test_key_errors(void **st)
{
	struct ipam_range r;
	char ipam_err[256], want[512];

	(void)st;
	fails_with("{\"colour\": 1}", "unknown key \"colour\"");
	fails_with("{\"arp\": true, \"arp\": false}", "duplicate key \"arp\"");
	fails_with("{\"arp\": \"yes\"}", "arp: must be true or false, not a string");
	fails_with("{\"bgp\": 1}", "bgp: must be true or false, not a number");
	fails_with("{\"foreground\": null}", "foreground: must be true or false, not null");
	fails_with("{\"adapter\": \"eth0/1\"}",
		   "adapter: not an interface name: \"eth0/1\" (1..15 characters, no '/', ':' or "
		   "spaces)");
	fails_with("{\"adapter\": \"a-very-long-name0\"}",
		   "adapter: not an interface name: \"a-very-long-name0\" (1..15 characters, no "
		   "'/', ':' or spaces)");
	fails_with("{\"adapter\": 3}", "adapter: must be a string, not a number");
	fails_with("{\"project\": 3}", "project: must be a string, not a number");
	fails_with("{\"metro\": \"\"}", "metro: must be non-empty, without control characters");
	fails_with("{\"facility\": \"a\\u0001\"}",
		   "facility: must be non-empty, without control characters");
	fails_with("{\"state_dir\": \"\"}",
		   "state_dir: must be non-empty, without control characters");
	fails_with("{\"api_token_file\": []}", "api_token_file: must be a string, not an array");
	fails_with("{\"bird_socket\": {}}", "bird_socket: must be a string, not an object");
	fails_with("{\"api_listen\": \"127.0.0.1\"}",
		   "api_listen: expected HOST:PORT, [V6]:PORT or :PORT with port 1..65535, not "
		   "\"127.0.0.1\"");
	fails_with("{\"api_listen\": \"127.0.0.1:0\"}",
		   "api_listen: expected HOST:PORT, [V6]:PORT or :PORT with port 1..65535, not "
		   "\"127.0.0.1:0\"");
	fails_with("{\"dataplane\": \"fast\"}",
		   "dataplane: must be one of auto, xdp, ipvs, none, not \"fast\"");
	fails_with("{\"log_level\": \"loud\"}",
		   "log_level: must be one of error, warn, info, debug, not \"loud\"");
	fails_with("{\"ipam_ranges\": 5}",
		   "ipam_ranges: must be an array of strings or a string, not a number");
	fails_with("{\"ipam_ranges\": [\"10.0.0.0/24\", 5]}",
		   "ipam_ranges[1]: must be a string, not a number");
	assert_int_not_equal(ipam_range_parse("10.0.0.9-10.0.0.1", &r, ipam_err, sizeof(ipam_err)),
			     0);
	snprintf(want, sizeof(want), "ipam_ranges[1]: %s", ipam_err);
	fails_with("{\"ipam_ranges\": [\"10.0.0.0/24\", \"10.0.0.9-10.0.0.1\"]}", want);
	/* a quoted newline stays on the error's one line */
	assert_int_not_equal(ipam_range_parse("a\nb", &r, ipam_err, sizeof(ipam_err)), 0);
	assert_non_null(strchr(ipam_err, '\n'));
	assert_int_equal(parse("{\"ipam_ranges\": \"a\\nb\"}"), -EINVAL);
	assert_int_equal(errs.n, 1);
	assert_null(strchr(errs.msgs[0], '\n'));
	assert_non_null(strstr(errs.msgs[0], "\\x0a"));
	fails_with("{\"loadbalancers\": {}}",
		   "loadbalancers: must be an array of objects, not an object");
	fails_with("{\"loadbalancers\": [1]}", "loadbalancers[0]: must be an object, not a number");
	fails_with("{\"loadbalancers\": [{\"name\": \"a\", \"port\": 80, \"colour\": \"red\"}]}",
		   "loadbalancers[0]: unknown key \"colour\"");
	fails_with("{\"loadbalancers\": [{\"name\": \"a\", \"port\": 80}, {\"name\": \"b\", "
		   "\"port\": 80}, {\"name\": \"c\", \"port\": 1, \"backends\": [{\"ip\": "
		   "\"10.0.0.1\", \"port\": 0}]}]}",
		   "loadbalancers[2].backends[0].port: must be 1..65535");
}

static void test_syntax_errors(void **st)
{
	(void)st;
	fails_with("{\n  \"arp\": tru\n}\n", "line 2, column 10: JSON syntax error");
	fails_with("{\n  \"loadbalancers\": [\n", "line 2, column 21: JSON syntax error: "
						   "unexpected end of the document");
	fails_with("{} x", "line 1, column 4: JSON syntax error: text after the end of the "
		"document");
	fails_with("{}\n\n  {}", "line 3, column 3: JSON syntax error: text after the end of the "
				 "document");
	fails_with("", "line 1, column 1: JSON syntax error: unexpected end of the document");
	fails_with("[]", "the document must be a JSON object, not an array");
	/* the length bounds the text: nothing past it is read */
	config_clear(&cfg);
	config_error_clear(&errs);
	assert_int_equal(config_parse("{}garbage", 2, &cfg, &errs), 0);
	/* a NUL inside the length is not the end */
	config_clear(&cfg);
	assert_int_equal(config_parse("{}\0x", 4, &cfg, &errs), -EINVAL);
	assert_int_equal(errs.n, 1);
}

static void test_duplicates_across(void **st)
{
	char uuid[UUID_STR_LEN], want[256];

	(void)st;
	assert_int_equal(parse("{\"loadbalancers\": [{\"name\": \"web\", \"port\": 80},"
			       "{\"name\": \"api\", \"port\": 81}, {\"name\": \"web\", \"port\": "
			       	"82},"
			       "{\"name\": \"web\", \"port\": 83}]}"), -EINVAL);
	assert_int_equal(errs.n, 2);
	assert_string_equal(errs.msgs[0], "loadbalancers[2].name: \"web\" is already used by "
					  "loadbalancers[0]");
	assert_string_equal(errs.msgs[1], "loadbalancers[3].name: \"web\" is already used by "
					  "loadbalancers[0]");

	uuid_from_name("web", uuid);
	snprintf(want, sizeof(want), "loadbalancers[1].uuid: %s is already used by "
		 "loadbalancers[0]", uuid);
	{
		char text[512];

		snprintf(text, sizeof(text), "{\"loadbalancers\": [{\"name\": \"web\", \"port\": "
			"80},"
			 "{\"uuid\": \"%s\", \"name\": \"other\", \"port\": 81}]}", uuid);
		fails_with(text, want);
	}

	fails_with("{\"loadbalancers\": [{\"name\": \"a\", \"vip\": \"192.0.2.1\", \"port\": 80},"
		   "{\"name\": \"b\", \"eip\": \"192.0.2.1\", \"port\": \"80\", \"protocol\": "
		   	"\"TCP\"}]}",
		   "loadbalancers[1]: 192.0.2.1:80/tcp is already used by loadbalancers[0]");
	fails_with("{\"loadbalancers\": [{\"name\": \"a\", \"vip\": \"2001:db8::1\", \"port\": 53, "
		   "\"protocol\": \"udp\"}, {\"name\": \"b\", \"vip\": \"2001:DB8::1\", \"port\": "
		   	"53, "
		   "\"protocol\": \"udp\"}]}",
		   "loadbalancers[1]: [2001:db8::1]:53/udp is already used by loadbalancers[0]");
	/* one VIP, other port or protocol; or no VIP yet: all fine */
	assert_int_equal(parse("{\"loadbalancers\": [{\"name\": \"a\", \"vip\": \"192.0.2.1\", "
			       "\"port\": 80}, {\"name\": \"b\", \"vip\": \"192.0.2.1\", "
			       	"\"port\": 443},"
			       "{\"name\": \"c\", \"vip\": \"192.0.2.1\", \"port\": 80, "
			       	"\"protocol\": "
			       "\"udp\"}, {\"name\": \"d\", \"port\": 80}, {\"name\": \"e\", "
			       "\"port\": 80}]}"), 0);
	assert_int_equal(cfg.n_lbs, 5);
}

static void test_all_errors_reported(void **st)
{
	(void)st;
	assert_int_equal(parse("{\n"
			       "  \"arp\": \"no\",\n"
			       "  \"colour\": \"blue\",\n"
			       "  \"dataplane\": \"warp\",\n"
			       "  \"loadbalancers\": [\n"
			       "    {\"name\": \"a\", \"port\": 0, \"size\": 1},\n"
			       "    {\"name\": \"b\", \"port\": 80},\n"
			       "    {\"name\": \"b\", \"port\": 81, \"backends\": [{\"ip\": \"x\", "
			       "\"port\": 1}]},\n"
			       "    {\"name\": \"b\", \"port\": 82}\n"
			       "  ],\n"
			       "  \"api_listen\": \"nowhere\"\n"
			       "}\n"), -EINVAL);
	if (errs.n != 8)
		dump_errs();
	assert_int_equal(errs.n, 8);
	assert_true(has_err("arp: must be true or false, not a string"));
	assert_true(has_err("unknown key \"colour\""));
	assert_true(has_err("dataplane: must be one of auto, xdp, ipvs, none, not \"warp\""));
	assert_true(has_err("loadbalancers[0].port: must be 1..65535"));
	assert_true(has_err("loadbalancers[0]: unknown key \"size\""));
	assert_true(has_err("loadbalancers[2].backends[0].ip: not an IPv4 or IPv6 address: \"x\""));
	assert_true(has_err("loadbalancers[3].name: \"b\" is already used by loadbalancers[1]"));
	assert_true(has_err("api_listen: expected HOST:PORT, [V6]:PORT or :PORT with port "
			    "1..65535, not \"nowhere\""));
}

static char tmpdir[64];

static int rm_one(const char *p, const struct stat *sb, int type, struct FTW *f)
{
	(void)sb, (void)type, (void)f;
	return remove(p);
}

static int tmp_setup(void **st)
{
	(void)st;
	strcpy(tmpdir, "/tmp/vipd-test-config-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int tmp_teardown(void **st)
{
	teardown(st);
	return nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *write_tmp(const char *name, const char *text, size_t len)
{
	static char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
	return path;
}

static void test_load_file(void **st)
{
	static const char bad[] = "{\"arp\": 1,\n \"loadbalancers\": [{}]}";
	char want[256];
	const char *p;
	int fd;

	(void)st;

	p = write_tmp("good.json", good, strlen(good));
	config_clear(&cfg);
	assert_int_equal(config_load_file(p, &cfg, &errs), 0);
	assert_int_equal(cfg.n_lbs, 4);
	config_clear(&cfg);
	unlink(p);

	snprintf(want, sizeof(want), "cannot open %s/none.json: No such file or directory", tmpdir);
	{
		char path[128];

		snprintf(path, sizeof(path), "%s/none.json", tmpdir);
		assert_int_equal(config_load_file(path, &cfg, &errs), -EINVAL);
		assert_int_equal(errs.n, 1);
		assert_string_equal(errs.msgs[0], want);
		config_error_clear(&errs);
		config_clear(&cfg);
	}

	assert_int_equal(config_load_file(tmpdir, &cfg, &errs), -EINVAL);
	snprintf(want, sizeof(want), "cannot read %s: it is a directory", tmpdir);
	assert_string_equal(errs.msgs[0], want);
	config_error_clear(&errs);

	/* one byte over 16 MiB is refused before parsing */
	p = write_tmp("big.json", "{}", 2);
	fd = open(p, O_WRONLY);
	assert_int_equal(ftruncate(fd, (16 << 20) + 1), 0);
	close(fd);
	assert_int_equal(config_load_file(p, &cfg, &errs), -EINVAL);
	snprintf(want, sizeof(want), "cannot read %s: larger than 16 MiB", p);
	assert_int_equal(errs.n, 1);
	assert_string_equal(errs.msgs[0], want);
	config_error_clear(&errs);
	/* exactly 16 MiB is read (and here fails as JSON, at the first NUL) */
	fd = open(p, O_WRONLY);
	assert_int_equal(ftruncate(fd, 16 << 20), 0);
	close(fd);
	assert_int_equal(config_load_file(p, &cfg, &errs), -EINVAL);
	assert_string_equal(errs.msgs[0], "line 1, column 3: JSON syntax error: text after the end "
					  "of the document");
	config_error_clear(&errs);
	unlink(p);

	p = write_tmp("bad.json", bad, strlen(bad));
	assert_int_equal(config_load_file(p, &cfg, &errs), -EINVAL);
	assert_int_equal(errs.n, 3);
	assert_string_equal(errs.msgs[0], "arp: must be true or false, not a number");
	assert_string_equal(errs.msgs[1], "loadbalancers[0].name: required");
	assert_string_equal(errs.msgs[2], "loadbalancers[0].port: required");
	config_error_clear(&errs);
}

/* The example files in tests/data stay what their names say (skipped when not shipped). */
static void test_data_files(void **st)
{
	static const char *const files[] = {
		"good.json", "bad-keys.json", "bad-values.json", "bad-duplicates.json",
		"bad-syntax.json",
	};
	const char *src = getenv("SRCDIR");
	char path[4096];

	(void)st;
	snprintf(path, sizeof(path), "%s/tests/data/good.json", src ? src : ".");
	if (access(path, R_OK))
		skip();
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		int r;

		snprintf(path, sizeof(path), "%s/tests/data/%s", src ? src : ".", files[i]);
		r = config_load_file(path, &cfg, &errs);
		if (i == 0 && r) {
			dump_errs();
			fail_msg("%s rejected", path);
		}
		if (i > 0 && (r != -EINVAL || errs.n < 1))
			fail_msg("%s accepted", path);
		config_clear(&cfg);
		config_error_clear(&errs);
	}
}

/* ---- settings ---- */

static void test_settings_defaults_and_overlay(void **st)
{
	struct settings dst, file, cli;

	(void)st;
	settings_init(&dst);
	assert_int_equal(dst.set, 0);
	assert_string_equal(dst.api_listen, VIPD_DEFAULT_API_LISTEN);
	assert_string_equal(dst.state_dir, VIPD_DEFAULT_STATE_DIR);
	assert_string_equal(dst.bird_socket, VIPD_DEFAULT_BIRD_SOCKET);
	assert_int_equal(dst.dataplane, DATAPLANE_AUTO);
	assert_int_equal(dst.log_level, LOG_LVL_INFO);
	assert_null(dst.adapter);
	assert_false(dst.arp || dst.bgp || dst.foreground);

	settings_init(&file);
	file.set = SET_ADAPTER | SET_IPAM_RANGES | SET_STATE_DIR | SET_LOG_LEVEL | SET_ARP;
	file.adapter = strdup("eth1");
	assert_int_equal(settings_add_ipam_range(&file, "10.0.0.0/24"), 0);
	assert_int_equal(settings_add_ipam_range(&file, "10.0.1.0/24"), 0);
	free(file.state_dir);
	file.state_dir = strdup("/srv/vipd");
	file.log_level = LOG_LVL_WARN;
	file.arp = true;
	file.bgp = true; /* not in set: must not be copied */
	free(file.api_listen);
	file.api_listen = strdup("0.0.0.0:1"); /* not in set */

	settings_init(&cli);
	cli.set = SET_IPAM_RANGES | SET_LOG_LEVEL | SET_DATAPLANE | SET_FOREGROUND;
	assert_int_equal(settings_add_ipam_range(&cli, "192.0.2.0/28"), 0);
	cli.log_level = LOG_LVL_DEBUG;
	cli.dataplane = DATAPLANE_NONE;
	cli.foreground = true;

	assert_int_equal(settings_overlay(&dst, &file), 0);
	assert_int_equal(settings_overlay(&dst, &cli), 0);
	settings_clear(&file);
	settings_clear(&cli);

	assert_string_equal(dst.adapter, "eth1");
	assert_string_equal(dst.state_dir, "/srv/vipd");
	assert_string_equal(dst.api_listen, VIPD_DEFAULT_API_LISTEN);
	assert_true(dst.arp);
	assert_false(dst.bgp);
	/* the command line's ranges replace the file's as a whole */
	assert_int_equal(dst.n_ipam_ranges, 1);
	assert_string_equal(dst.ipam_ranges[0], "192.0.2.0/28");
	assert_int_equal(dst.log_level, LOG_LVL_DEBUG);
	assert_int_equal(dst.dataplane, DATAPLANE_NONE);
	assert_true(dst.foreground);
	assert_int_equal(dst.set, SET_ADAPTER | SET_IPAM_RANGES | SET_STATE_DIR | SET_LOG_LEVEL |
					  SET_ARP | SET_DATAPLANE | SET_FOREGROUND);
	settings_clear(&dst);
	assert_null(dst.api_listen);
	settings_clear(&dst); /* twice is harmless */

	/* a set string that is NULL clears the destination's */
	settings_init(&dst);
	settings_init(&file);
	free(file.api_token_file);
	file.api_token_file = NULL;
	dst.api_token_file = strdup("/t");
	file.set = SET_API_TOKEN_FILE;
	assert_int_equal(settings_overlay(&dst, &file), 0);
	assert_null(dst.api_token_file);
	settings_clear(&dst);
	settings_clear(&file);

	settings_init(&dst);
	assert_int_equal(settings_add_ipam_range(&dst, NULL), -EINVAL);
	settings_clear(&dst);
}

static void test_dataplane_kind(void **st)
{
	static const char *const names[] = { "auto", "xdp", "ipvs", "none" };
	enum dataplane_kind k;

	(void)st;
	for (int i = 0; i < 4; i++) {
		assert_int_equal(dataplane_kind_parse(names[i], &k), 0);
		assert_int_equal(k, i);
		assert_string_equal(dataplane_kind_name(k), names[i]);
	}
	assert_int_equal(dataplane_kind_parse("XDP ", &k), -EINVAL);
	assert_int_equal(dataplane_kind_parse("", &k), -EINVAL);
	assert_int_equal(dataplane_kind_parse(NULL, &k), -EINVAL);
}

static void test_listen_addr_parse(void **st)
{
	static const struct {
		const char *s, *host;
		uint16_t port;
	} good_cases[] = {
		{ "127.0.0.1:10001", "127.0.0.1", 10001 },
		{ "[::1]:10001", "::1", 10001 },
		{ "[2001:db8::1]:1", "2001:db8::1", 1 },
		{ ":10001", "", 10001 },
		{ "0.0.0.0:65535", "0.0.0.0", 65535 },
		{ "localhost:80", "localhost", 80 },
		{ "api.example.com:443", "api.example.com", 443 },
	};
	static const char *const bad[] = {
		"", ":", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536",
		"127.0.0.1:-1",
		"127.0.0.1:80x", "127.0.0.1: 80", "::1:10001", "[::1]", "[::1]10001", "[::1:10001",
		"[]:80", "[127.0.0.1]:80", "[fe80::1%eth0]:80", "host name:80", "a..b:80",
		".a:80", "-a:80", "999.1.1.1:80", "1.2.3:80", "127.0.0.1:100000", "a_b:80",
	};
	char host[64];
	uint16_t port;

	(void)st;
	for (size_t i = 0; i < sizeof(good_cases) / sizeof(good_cases[0]); i++) {
		port = 0;
		if (listen_addr_parse(good_cases[i].s, host, sizeof(host), &port))
			fail_msg("rejected %s", good_cases[i].s);
		assert_string_equal(host, good_cases[i].host);
		assert_int_equal(port, good_cases[i].port);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (listen_addr_parse(bad[i], host, sizeof(host), &port) != -EINVAL)
			fail_msg("accepted %s", bad[i]);
	assert_int_equal(listen_addr_parse(NULL, host, sizeof(host), &port), -EINVAL);
	/* host does not fit */
	assert_int_equal(listen_addr_parse("127.0.0.1:80", host, 9, &port), -EINVAL);
	assert_int_equal(listen_addr_parse("127.0.0.1:80", host, 10, &port), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_good_config, teardown),
		cmocka_unit_test_teardown(test_defaults_when_absent, teardown),
		cmocka_unit_test_teardown(test_key_errors, teardown),
		cmocka_unit_test_teardown(test_metal_keys, teardown),
		cmocka_unit_test_teardown(test_syntax_errors, teardown),
		cmocka_unit_test_teardown(test_duplicates_across, teardown),
		cmocka_unit_test_teardown(test_all_errors_reported, teardown),
		cmocka_unit_test_setup_teardown(test_load_file, tmp_setup, tmp_teardown),
		cmocka_unit_test_teardown(test_data_files, teardown),
		cmocka_unit_test(test_settings_defaults_and_overlay),
		cmocka_unit_test(test_dataplane_kind),
		cmocka_unit_test(test_listen_addr_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
