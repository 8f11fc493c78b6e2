/*
 * BIRD's control-socket replies as arbitrary bytes, cut into arbitrary reads: the reader
 * never reads or writes out of bounds, never stalls with a full buffer, and every line it
 * returns is well formed (a code in range, text inside its buffer, no newline in it).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "announce/bird_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct bird_reader r;
	size_t off = 0;
	/* The first byte picks the read size, so partial reads get explored too. */
	size_t step = size ? (size_t)data[0] % 64 + 1 : 1;

	bird_reader_init(&r);
	while (off < size) {
		struct bird_line l;
		size_t room, n;
		char *p = bird_reader_space(&r, &room);
		int rc;

		if (room == 0)
			abort(); /* next() returned 0 with a full buffer: the reader would stall */
		n = size - off < step ? size - off : step;
		if (n > room)
			n = room;
		memcpy(p, data + off, n);
		bird_reader_commit(&r, n);
		off += n;
		while ((rc = bird_reader_next(&r, &l)) != 0) {
			if (rc < 0) {
				if (rc != -EBADMSG && rc != -EMSGSIZE)
					abort();
				continue;
			}
			if (l.text < r.buf || l.text + l.len > r.buf + sizeof(r.buf) ||
			    memchr(l.text, '\n', l.len))
				abort();
			if (l.kind == BIRD_LINE_ASYNC ? l.code != -1 : l.code < 0 || l.code > 9999)
				abort();
		}
	}
	return 0;
}
