#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "options.h"

#define ARGV(...) ((char *[]){ "vipd", __VA_ARGS__, NULL })
#define ARGC(...) ((int)(sizeof((char *[]){ "vipd", __VA_ARGS__ }) / sizeof(char *)))
#define PARSE(o, err, ...) options_parse(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), o, err, sizeof(err))

static void test_every_flag(void **st)
{
	struct options o;
	char err[256];

	(void)st;
	assert_int_equal(PARSE(&o, err, "--arp", "--adapter", "eth0", "--ipam-range",
			       "192.168.1.200-192.168.1.250", "--ipam-range", "2001:db8::/120",
			       "--project", "p", "--facility", "f", "--metro", "am",
			       "--api-listen", "[::1]:10002", "--api-token-file", "/t",
			       "--bird-socket", "/b.ctl", "--dataplane", "none", "--config", "/c.json",
			       "--state-dir", "/s", "--log-level", "debug", "--foreground",
			       "--arp-refresh", "1s", "--graceful-shutdown", "2500ms",
			       "--drain-timeout", "90s", "--keep-on-exit"),
			 0);
	assert_false(o.cli.cleanup_on_exit);
	assert_true(o.cli.set & SET_CLEANUP);
	assert_int_equal(o.cli.arp_refresh_ms, 1000);
	assert_int_equal(o.cli.graceful_shutdown_ms, 2500);
	assert_int_equal(o.cli.drain_timeout_ms, 90000);
	assert_true(o.cli.set & SET_DRAIN_TIMEOUT);
	assert_int_equal(o.action, OPT_RUN);
	assert_true(o.cli.arp);
	assert_false(o.cli.bgp);
	assert_string_equal(o.cli.adapter, "eth0");
	assert_int_equal(o.cli.n_ipam_ranges, 2);
	assert_string_equal(o.cli.ipam_ranges[1], "2001:db8::/120");
	assert_string_equal(o.cli.project, "p");
	assert_string_equal(o.cli.facility, "f");
	assert_string_equal(o.cli.metro, "am");
	assert_string_equal(o.cli.api_listen, "[::1]:10002");
	assert_string_equal(o.cli.api_token_file, "/t");
	assert_string_equal(o.cli.bird_socket, "/b.ctl");
	assert_int_equal(o.cli.dataplane, DATAPLANE_NONE);
	assert_string_equal(o.config_path, "/c.json");
	assert_string_equal(o.cli.state_dir, "/s");
	assert_int_equal(o.cli.log_level, LOG_LVL_DEBUG);
	assert_true(o.cli.foreground);
	assert_true(o.cli.set & SET_ARP);
	assert_false(o.cli.set & SET_BGP);
	assert_true(o.cli.set & SET_IPAM_RANGES);
	options_clear(&o);
}

static void test_metal_flags(void **st)
{
	struct options o;
	char err[256];

	(void)st;
	assert_int_equal(PARSE(&o, err, "--bgp", "--project", "p", "--metro", "ny", "--device", "d-1",
			       "--token-file", "/run/t", "--metal-api-url",
			       "http://127.0.0.1:1/metal/v1", "--metal-metadata-url",
			       "https://127.0.0.1:2/metadata", "--keep-ips"),
			 0);
	assert_string_equal(o.cli.device, "d-1");
	assert_string_equal(o.cli.metal_token_file, "/run/t");
	assert_string_equal(o.cli.metal_api_url, "http://127.0.0.1:1/metal/v1");
	assert_string_equal(o.cli.metal_metadata_url, "https://127.0.0.1:2/metadata");
	assert_true(o.cli.keep_ips);
	assert_true(o.cli.set & SET_KEEP_IPS);
	assert_true(o.cli.set & SET_METAL_TOKEN_FILE);
	options_clear(&o);

	assert_int_equal(PARSE(&o, err, "--bgp"), 0);
	assert_string_equal(o.cli.metal_api_url, VIPD_DEFAULT_METAL_API_URL);
	assert_string_equal(o.cli.metal_metadata_url, VIPD_DEFAULT_METAL_METADATA_URL);
	assert_false(o.cli.keep_ips);
	assert_false(o.cli.set & (SET_DEVICE | SET_METAL_API_URL | SET_KEEP_IPS));
	options_clear(&o);

	assert_int_not_equal(PARSE(&o, err, "--metal-api-url", "ftp://x"), 0);
	assert_non_null(strstr(err, "--metal-api-url"));
	/* the token itself is refused, also as an abbreviation's lookalike */
	assert_int_not_equal(PARSE(&o, err, "--token", "abc"), 0);
	assert_non_null(strstr(err, "METAL_AUTH_TOKEN"));
	assert_null(strstr(err, "abc"));
	assert_int_not_equal(PARSE(&o, err, "--token=abc"), 0);
}

static void test_slb_spelling_and_short_flags(void **st)
{
	struct options o;
	char err[256];

	(void)st;
	assert_int_equal(PARSE(&o, err, "--bgp", "--ipamRange", "10.0.0.0/24", "-c", "x.json", "-t"),
			 0);
	assert_true(o.cli.bgp);
	assert_int_equal(o.cli.n_ipam_ranges, 1);
	assert_string_equal(o.config_path, "x.json");
	assert_int_equal(o.action, OPT_CHECK_CONFIG);
	options_clear(&o);

	assert_int_equal(PARSE(&o, err, "-v"), 0);
	assert_int_equal(o.action, OPT_VERSION);
	options_clear(&o);
	assert_int_equal(PARSE(&o, err, "-h"), 0);
	assert_int_equal(o.action, OPT_HELP);
	options_clear(&o);
}

static void test_defaults_untouched_without_flags(void **st)
{
	struct options o;
	char *argv[] = { "vipd", NULL };
	char err[256];

	(void)st;
	assert_int_equal(options_parse(1, argv, &o, err, sizeof(err)), 0);
	assert_int_equal(o.cli.set, 0);
	assert_null(o.config_path);
	assert_int_equal(o.action, OPT_RUN);
	options_clear(&o);
}

static void test_bad_input(void **st)
{
	struct options o;
	char err[256];

	(void)st;
	assert_int_not_equal(PARSE(&o, err, "--dataplane", "dpdk"), 0);
	assert_non_null(strstr(err, "--dataplane"));
	assert_non_null(strstr(err, "dpdk"));
	assert_int_not_equal(PARSE(&o, err, "--log-level", "loud"), 0);
	assert_non_null(strstr(err, "--log-level"));
	assert_int_not_equal(PARSE(&o, err, "--api-listen", "nope"), 0);
	assert_non_null(strstr(err, "--api-listen"));
	assert_int_not_equal(PARSE(&o, err, "--drain-timeout", "soon"), 0);
	assert_non_null(strstr(err, "--drain-timeout: expected a duration"));
	assert_int_not_equal(PARSE(&o, err, "--bogus"), 0);
	assert_non_null(strstr(err, "--bogus"));
	assert_int_not_equal(PARSE(&o, err, "--adapter"), 0);
	assert_non_null(strstr(err, "needs a value"));
	assert_int_not_equal(PARSE(&o, err, "stray"), 0);
	assert_non_null(strstr(err, "stray"));
	/* no token on the command line: secrets never come from argv */
	assert_int_not_equal(PARSE(&o, err, "--token", "abc"), 0);
}

static void test_help_lists_every_flag(void **st)
{
	static const char *const flags[] = {
		"--arp", "--bgp", "--adapter", "--ipam-range", "--project", "--facility",
		"--metro", "--api-listen", "--api-token-file", "--bird-socket", "--dataplane",
		"--config", "--state-dir", "--check-config", "--log-level", "--foreground",
		"--version", "--help", "--arp-refresh", "--graceful-shutdown", "--drain-timeout",
		"--bird-routes", "--bpf-pin-dir", "--xdp-unload", "--keep-on-exit", "--device",
		"--token-file", "--metal-api-url", "--metal-metadata-url", "--keep-ips",
		"METAL_AUTH_TOKEN",
	};

	(void)st;
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
		assert_non_null(strstr(options_usage(), flags[i]));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_flag),
		cmocka_unit_test(test_metal_flags),
		cmocka_unit_test(test_slb_spelling_and_short_flags),
		cmocka_unit_test(test_defaults_untouched_without_flags),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_help_lists_every_flag),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
