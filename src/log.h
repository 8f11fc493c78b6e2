/* Logging: one line per event, "level=... msg" with key=value fields by convention. */
#ifndef VIPD_LOG_H
#define VIPD_LOG_H

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* Parses "error", "warn", "info", "debug". 0 or -EINVAL. */
int log_level_parse(const char *s, enum log_level *out);
const char *log_level_name(enum log_level l);
void log_set_level(enum log_level l);
enum log_level log_get_level(void);
/* Send lines to syslog instead of stderr (daemon not under systemd or a terminal). */
void log_use_syslog(int on);

void vlog(enum log_level l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) vlog(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...) vlog(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) vlog(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) vlog(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
