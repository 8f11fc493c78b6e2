#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

static enum log_level cur_level = LOG_LVL_INFO;
static int to_syslog;

static const char *const names[] = { "error", "warn", "info", "debug" };

int log_level_parse(const char *s, enum log_level *out)
{
	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	if (strcmp(s, "warning") == 0) {
		*out = LOG_LVL_WARN;
		return 0;
	}
	return -EINVAL;
}

const char *log_level_name(enum log_level l)
{
	return names[l];
}

void log_set_level(enum log_level l)
{
	cur_level = l;
}

enum log_level log_get_level(void)
{
	return cur_level;
}

void log_use_syslog(int on)
{
	if (on && !to_syslog)
		openlog("vipd", LOG_PID, LOG_DAEMON);
	to_syslog = on;
}

void vlog(enum log_level l, const char *fmt, ...)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char msg[2048];
	va_list ap;

	if (l > cur_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (to_syslog) {
		syslog(prio[l], "level=%s %s", names[l], msg);
		return;
	}
	struct timespec ts;
	struct tm tm;
	char when[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(stderr, "%s.%03ldZ level=%s %s\n", when, ts.tv_nsec / 1000000, names[l], msg);
}
