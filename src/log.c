#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

static enum log_level cur_level = LOG_LVL_INFO;
static int to_syslog;
static struct log_recent recent[LOG_RECENT_MAX];
static size_t recent_next, recent_n;

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

enum log_dest log_destination(bool stderr_tty, const char *journal_stream,
			       const char *invocation_id, bool foreground)
{
	bool systemd = (journal_stream && journal_stream[0]) || (invocation_id && invocation_id[0]);

	return foreground || systemd || stderr_tty ? LOG_DEST_STDERR : LOG_DEST_SYSLOG;
}

size_t log_recent(struct log_recent out[LOG_RECENT_MAX])
{
	size_t first = (recent_next + LOG_RECENT_MAX - recent_n) % LOG_RECENT_MAX;

	for (size_t i = 0; i < recent_n; i++)
		out[i] = recent[(first + i) % LOG_RECENT_MAX];
	return recent_n;
}

static void remember(enum log_level l, const struct timespec *ts, const char *msg)
{
	struct log_recent *r = &recent[recent_next];
	size_t n = strnlen(msg, sizeof(r->msg) - 1);

	r->time = (double)ts->tv_sec + ts->tv_nsec / 1e9;
	r->level = l;
	memcpy(r->msg, msg, n);
	r->msg[n] = '\0';
	recent_next = (recent_next + 1) % LOG_RECENT_MAX;
	if (recent_n < LOG_RECENT_MAX)
		recent_n++;
}

void vlog(enum log_level l, const char *fmt, ...)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	struct timespec ts;
	char msg[2048];
	va_list ap;

	/* Problems are kept even when filtered out: vipctl status shows them. */
	if (l > cur_level && l > LOG_LVL_WARN)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	clock_gettime(CLOCK_REALTIME, &ts);
	if (l <= LOG_LVL_WARN)
		remember(l, &ts, msg);
	if (l > cur_level)
		return;
	if (to_syslog) {
		syslog(prio[l], "level=%s %s", names[l], msg);
		return;
	}
	struct tm tm;
	char when[32];

	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(stderr, "%s.%03ldZ level=%s %s\n", when, ts.tv_nsec / 1000000, names[l], msg);
}
