/*
 * BIRD's control-socket replies, parsed as bytes arrive. Pure: no I/O, no allocation.
 *
 * The protocol (BIRD 2, doc/reply_codes and sysdep/unix/main.c): every line ends in '\n'.
 *   "DDDD-text"  a line of a reply that goes on; DDDD is a four-digit code
 *   " text"      the same, with the code of the previous numbered line
 *   "DDDD text"  the reply's last line; its code is the reply's verdict
 *                (0xxx done, 1xxx/2xxx table rows and headings, 8xxx run-time error,
 *                9xxx parse error)
 *   "+text"      an asynchronous line (a log echo), at any time, outside any reply
 * The greeting, "0001 BIRD 2.0.12 ready.", is a one-line reply.
 *
 * A line longer than the buffer is dropped and reported, so a peer cannot make the reader
 * hold unbounded data; partial reads are kept until their newline arrives.
 */
#ifndef VIPD_BIRD_REPLY_H
#define VIPD_BIRD_REPLY_H

#include <stdbool.h>
#include <stddef.h>

/* BIRD formats each CLI line into 512 bytes (CLI_LINE_SIZE); room to spare for partial reads. */
#define BIRD_READER_BUF 8192

enum bird_line_kind {
	BIRD_LINE_MORE,  /* "DDDD-text" or " text": the reply goes on */
	BIRD_LINE_LAST,  /* "DDDD text": the reply is complete */
	BIRD_LINE_ASYNC, /* "+text" */
};

struct bird_line {
	enum bird_line_kind kind;
	int code;         /* 0..9999; -1 for BIRD_LINE_ASYNC */
	const char *text; /* after the code and separator; not NUL-terminated */
	size_t len;       /* without the newline */
};

struct bird_reader {
	char buf[BIRD_READER_BUF];
	size_t start;	/* first byte not yet returned as a line */
	size_t len;	/* bytes held (buf[start..len) unparsed) */
	int last_code;	/* code of the reply's previous numbered line, -1 between replies */
	bool skipping;	/* dropping the rest of an over-long line */
};

void bird_reader_init(struct bird_reader *r);
/*
 * Where the next read may write, and how much (never 0 unless a line is pending in
 * the buffer: call bird_reader_next until it returns 0 first). Invalidates the last
 * line's text.
 */
char *bird_reader_space(struct bird_reader *r, size_t *room);
/* n bytes were written at bird_reader_space(). */
void bird_reader_commit(struct bird_reader *r, size_t n);
/* Copies up to n bytes in (space + commit); returns how many it took. */
size_t bird_reader_feed(struct bird_reader *r, const void *data, size_t n);
/*
 * The next complete line: 1 with *line filled (valid until the next space/feed call),
 * 0 when more bytes are needed, -EBADMSG for a line that breaks the protocol (it is
 * consumed), -EMSGSIZE once for a line longer than the buffer (it is dropped).
 */
int bird_reader_next(struct bird_reader *r, struct bird_line *line);

#endif
