/* Logging: one line per event, "level=... msg" with key=value fields by convention. */
#ifndef VIPD_LOG_H
#define VIPD_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* Parses "error", "warn", "info", "debug". 0 or -EINVAL. */
int log_level_parse(const char *s, enum log_level *out);
const char *log_level_name(enum log_level l);
void log_set_level(enum log_level l);
enum log_level log_get_level(void);
/* Send lines to syslog instead of stderr (daemon not under systemd or a terminal). */
void log_use_syslog(int on);

enum log_dest { LOG_DEST_STDERR, LOG_DEST_SYSLOG };

/*
 * Where lines go, pure: stderr with --foreground, under systemd (journald keeps stderr;
 * it sets JOURNAL_STREAM or INVOCATION_ID, either may be NULL) or while stderr is a
 * terminal; syslog otherwise (a daemon started by an init script or detached from its
 * terminal has no one reading its stderr).
 */
enum log_dest log_destination(bool stderr_tty, const char *journal_stream,
			       const char *invocation_id, bool foreground);

/* The last warn and error lines, whatever the level filter, for GET /status. */
#define LOG_RECENT_MAX 8
#define LOG_RECENT_LEN 256

struct log_recent {
	double time; /* wall clock, seconds since the epoch */
	enum log_level level;
	char msg[LOG_RECENT_LEN]; /* the line without time and level, cut to fit */
};

/* Copies them into out, oldest first; returns how many (at most LOG_RECENT_MAX). */
size_t log_recent(struct log_recent out[LOG_RECENT_MAX]);

void vlog(enum log_level l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) vlog(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...) vlog(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) vlog(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) vlog(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
