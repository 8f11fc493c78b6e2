/* Small helpers shared by the parsers and the modules that report through err buffers. */
#ifndef VIPD_UTIL_H
#define VIPD_UTIL_H

#include <stddef.h>

/* Formats into a caller's error buffer; does nothing when err is NULL or errlen 0. */
void errbuf_printf(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* 1-based line and column of byte offset off in text, for parse errors. */
void text_position(const char *text, size_t off, unsigned *line, unsigned *col);

#endif
