#include "bird_reply.h"

#include <errno.h>
#include <string.h>

void bird_reader_init(struct bird_reader *r)
{
	r->start = 0;
	r->len = 0;
	r->last_code = -1;
	r->skipping = false;
}

char *bird_reader_space(struct bird_reader *r, size_t *room)
{
	if (r->start) {
		memmove(r->buf, r->buf + r->start, r->len - r->start);
		r->len -= r->start;
		r->start = 0;
	}
	*room = sizeof(r->buf) - r->len;
	return r->buf + r->len;
}

void bird_reader_commit(struct bird_reader *r, size_t n)
{
	r->len += n;
}

size_t bird_reader_feed(struct bird_reader *r, const void *data, size_t n)
{
	size_t room;
	char *p = bird_reader_space(r, &room);

	if (n > room)
		n = room;
	if (n)
		memcpy(p, data, n);
	bird_reader_commit(r, n);
	return n;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int parse_line(struct bird_reader *r, const char *p, size_t n, struct bird_line *l)
{
	if (n >= 1 && p[0] == '+') {
		l->kind = BIRD_LINE_ASYNC;
		l->code = -1;
		l->text = p + 1;
		l->len = n - 1;
		return 1;
	}
	if (n >= 1 && p[0] == ' ') {
		/* A bare continuation only makes sense after a numbered line of the same reply. */
		if (r->last_code < 0)
			return -EBADMSG;
		l->kind = BIRD_LINE_MORE;
		l->code = r->last_code;
		l->text = p + 1;
		l->len = n - 1;
		return 1;
	}
	if (n < 5 || !is_digit(p[0]) || !is_digit(p[1]) || !is_digit(p[2]) || !is_digit(p[3]) ||
	    (p[4] != ' ' && p[4] != '-'))
		return -EBADMSG;
	l->code = (p[0] - '0') * 1000 + (p[1] - '0') * 100 + (p[2] - '0') * 10 + (p[3] - '0');
	l->text = p + 5;
	l->len = n - 5;
	if (p[4] == '-') {
		l->kind = BIRD_LINE_MORE;
		r->last_code = l->code;
	} else {
		l->kind = BIRD_LINE_LAST;
		r->last_code = -1;
	}
	return 1;
}

int bird_reader_next(struct bird_reader *r, struct bird_line *line)
{
	for (;;) {
		const char *p = r->buf + r->start;
		size_t avail = r->len - r->start;
		const char *nl = memchr(p, '\n', avail);
		size_t n;

		if (!nl) {
			if (r->skipping) {
				r->start = r->len = 0;
				return 0;
			}
			if (avail == sizeof(r->buf)) {
				/* Full and no end in sight: drop what we hold and the rest of the line. */
				r->start = r->len = 0;
				r->skipping = true;
				return -EMSGSIZE;
			}
			return 0;
		}
		n = (size_t)(nl - p);
		r->start += n + 1;
		if (r->skipping) {
			r->skipping = false;
			continue;
		}
		return parse_line(r, p, n, line);
	}
}
