#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "log.h"

static void test_destination(void **st)
{
	(void)st;
	/* --foreground: stderr whatever else holds. */
	assert_int_equal(log_destination(false, NULL, NULL, true), LOG_DEST_STDERR);
	/* Under systemd either variable is enough: journald reads stderr. */
	assert_int_equal(log_destination(false, "8:1234", NULL, false), LOG_DEST_STDERR);
	assert_int_equal(log_destination(false, NULL, "0123abcd", false), LOG_DEST_STDERR);
	assert_int_equal(log_destination(false, "8:1234", "0123abcd", false), LOG_DEST_STDERR);
	/* A person at a terminal reads stderr. */
	assert_int_equal(log_destination(true, NULL, NULL, false), LOG_DEST_STDERR);
	/* Nobody reads stderr: an init script, cron, a daemon detached from its terminal. */
	assert_int_equal(log_destination(false, NULL, NULL, false), LOG_DEST_SYSLOG);
	/* Set but empty is not systemd (env -u style scrubbing leaves "" behind). */
	assert_int_equal(log_destination(false, "", "", false), LOG_DEST_SYSLOG);
}

static void test_recent_keeps_problems_only(void **st)
{
	struct log_recent rec[LOG_RECENT_MAX];
	char want[32];
	size_t n;

	(void)st;
	log_set_level(LOG_LVL_ERROR);
	log_info("msg=\"info is not a problem\"");
	log_warn("msg=\"filtered out but kept\" n=0");
	n = log_recent(rec);
	assert_int_equal(n, 1);
	assert_int_equal(rec[0].level, LOG_LVL_WARN);
	assert_string_equal(rec[0].msg, "msg=\"filtered out but kept\" n=0");
	assert_true(rec[0].time > 1e9);
	/* The ring keeps the newest LOG_RECENT_MAX, oldest first. */
	for (int i = 1; i <= LOG_RECENT_MAX + 2; i++)
		log_error("msg=\"boom\" n=%d", i);
	n = log_recent(rec);
	assert_int_equal(n, LOG_RECENT_MAX);
	assert_string_equal(rec[0].msg, "msg=\"boom\" n=3");
	snprintf(want, sizeof(want), "msg=\"boom\" n=%d", LOG_RECENT_MAX + 2);
	assert_string_equal(rec[LOG_RECENT_MAX - 1].msg, want);
	assert_int_equal(rec[LOG_RECENT_MAX - 1].level, LOG_LVL_ERROR);
}

static void test_recent_cuts_long_lines(void **st)
{
	struct log_recent rec[LOG_RECENT_MAX];
	char big[LOG_RECENT_LEN * 2];
	size_t n;

	(void)st;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_set_level(LOG_LVL_ERROR);
	log_error("%s", big);
	n = log_recent(rec);
	assert_int_equal(strlen(rec[n - 1].msg), LOG_RECENT_LEN - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_destination),
		cmocka_unit_test(test_recent_keeps_problems_only),
		cmocka_unit_test(test_recent_cuts_long_lines),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
