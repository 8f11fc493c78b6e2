/* Small helpers shared by the parsers and the modules that report through err buffers. */
#ifndef VIPD_UTIL_H
#define VIPD_UTIL_H

#include <stdbool.h>
#include <stddef.h>

/* Formats into a caller's error buffer; does nothing when err is NULL or errlen 0. */
void errbuf_printf(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* 1-based line and column of byte offset off in text, for parse errors. */
void text_position(const char *text, size_t off, unsigned *line, unsigned *col);
/* Whether s[0..n) is only JSON whitespace (space, tab, newline, carriage return). */
bool text_only_space(const char *s, size_t n);

/*
 * Room for element n of an array of `each`-byte elements that has *cap slots: the array
 * itself while n < *cap, else moved to double the slots (`first` when it had none) with *cap
 * updated. NULL when memory runs out, the array then as it was.
 */
void *array_grow(void *items, size_t *cap, size_t n, size_t each, size_t first);
/*
 * Room for need bytes in *buf, which has *cap: the buffer itself while that is enough, else
 * moved to *cap doubled (`first` when it had none) as often as need takes, with *cap
 * updated. 0, or -ENOMEM with the buffer as it was.
 */
int buf_reserve(char **buf, size_t *cap, size_t need, size_t first);

/* Seconds on CLOCK_MONOTONIC: for durations that must not jump with the wall clock. */
double monotonic_s(void);

#endif
