/* vipd's record of its Equinix Metal reservations; see metal_state.h. */
#include "metal_state.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/util.h"

#define FIELD_MAX 64 /* longer than any valid field: a uuid is 36, an id at most 63 */

static const char header[] =
	"# vipd's Equinix Metal reservations: load balancer uuid (- while being released),\n"
	"# reservation id, address. Written by vipd before it uses or releases an address;\n"
	"# do not edit while vipd runs.\n";

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}


/* The field as text for a message: printable, cut short. */
static const char *shown(const char *s, size_t n, char *buf, size_t buflen)
{
	size_t o = 0;

	for (size_t i = 0; i < n && o + 5 < buflen; i++)
		buf[o++] = isprint((unsigned char)s[i]) ? s[i] : '?';
	buf[o] = '\0';
	return buf;
}

/* Splits line[0..len) at blanks into at most 4 fields (a 4th means too many). */
static size_t split(const char *line, size_t len, const char *f[4], size_t fl[4])
{
	size_t n = 0, i = 0;

	while (i < len && n < 4) {
		while (i < len && is_blank(line[i]))
			i++;
		if (i == len)
			break;
		f[n] = line + i;
		while (i < len && !is_blank(line[i]))
			i++;
		fl[n] = (size_t)(line + i - f[n]);
		n++;
	}
	return n;
}

static int parse_line(const char *line, size_t len, unsigned lineno, struct metal_state_entry *e,
		      char *err, size_t errlen)
{
	const char *f[4];
	size_t fl[4], nf = split(line, len, f, fl);
	char buf[FIELD_MAX + 1], q[48];

	memset(e, 0, sizeof(*e));
	if (nf != 3) {
		errbuf_printf(err, errlen, "line %u: expected 3 fields (load balancer, id, address), "
			      "found %s", lineno, nf > 3 ? "more" : nf == 2 ? "2" : "1");
		return -EINVAL;
	}
	if (!(fl[0] == 1 && f[0][0] == '-')) {
		if (fl[0] != UUID_STR_LEN - 1) {
			errbuf_printf(err, errlen, "line %u: \"%s\" is not a load balancer uuid or -",
				      lineno, shown(f[0], fl[0], q, sizeof(q)));
			return -EINVAL;
		}
		memcpy(e->lb, f[0], fl[0]);
		e->lb[fl[0]] = '\0';
		if (!uuid_is_valid(e->lb)) {
			errbuf_printf(err, errlen, "line %u: \"%s\" is not a load balancer uuid or -",
				      lineno, shown(f[0], fl[0], q, sizeof(q)));
			return -EINVAL;
		}
		for (char *p = e->lb; *p; p++)
			*p = (char)tolower((unsigned char)*p);
	}
	if (fl[1] < METAL_ID_MAX) {
		memcpy(e->id, f[1], fl[1]);
		e->id[fl[1]] = '\0';
	}
	if (fl[1] >= METAL_ID_MAX || !metal_id_ok(e->id)) {
		errbuf_printf(err, errlen, "line %u: \"%s\" is not a reservation id (1..%d letters, "
			      "digits and '-')", lineno, shown(f[1], fl[1], q, sizeof(q)),
			      METAL_ID_MAX - 1);
		return -EINVAL;
	}
	if (fl[2] <= FIELD_MAX) {
		memcpy(buf, f[2], fl[2]);
		buf[fl[2]] = '\0';
	}
	if (fl[2] > FIELD_MAX || ip_addr_parse(buf, &e->addr) || e->addr.family != AF_INET) {
		errbuf_printf(err, errlen, "line %u: \"%s\" is not an IPv4 address", lineno,
			      shown(f[2], fl[2], q, sizeof(q)));
		return -EINVAL;
	}
	return 0;
}

/* Whether e clashes with one of the n before it; err says how. */
static int check_unique(const struct metal_state_entry *all, size_t n,
			const struct metal_state_entry *e, unsigned lineno, char *err,
			size_t errlen)
{
	char a[IP_ADDR_STRLEN];

	for (size_t i = 0; i < n; i++) {
		if (strcmp(all[i].id, e->id) == 0) {
			errbuf_printf(err, errlen, "line %u: reservation %s is listed twice", lineno,
				      e->id);
			return -EINVAL;
		}
		if (e->lb[0] && strcmp(all[i].lb, e->lb) == 0) {
			errbuf_printf(err, errlen, "line %u: load balancer %s has two reservations",
				      lineno, e->lb);
			return -EINVAL;
		}
		if (ip_addr_equal(&all[i].addr, &e->addr)) {
			errbuf_printf(err, errlen, "line %u: address %s is listed twice", lineno,
				      ip_addr_str(&e->addr, a));
			return -EINVAL;
		}
	}
	return 0;
}

int metal_state_parse(const char *text, size_t len, struct metal_state_entry **out, size_t *n,
		      char *err, size_t errlen)
{
	struct metal_state_entry *v = NULL, *nv, e;
	size_t cnt = 0, cap = 0, off = 0;
	unsigned lineno = 0;
	int r = 0;

	*out = NULL;
	*n = 0;
	if (err && errlen)
		err[0] = '\0';
	if (len && memchr(text, '\0', len)) {
		const char *nul = memchr(text, '\0', len);
		unsigned at = 1;

		for (const char *p = text; p < nul; p++)
			at += *p == '\n';
		errbuf_printf(err, errlen, "line %u: a NUL byte", at);
		return -EINVAL;
	}
	while (off < len) {
		const char *line = text + off, *nl = memchr(line, '\n', len - off);
		size_t ll = nl ? (size_t)(nl - line) : len - off, i = 0;

		off += ll + (nl ? 1 : 0);
		lineno++;
		while (i < ll && is_blank(line[i]))
			i++;
		if (i == ll || line[i] == '#')
			continue;
		r = parse_line(line, ll, lineno, &e, err, errlen);
		if (!r)
			r = check_unique(v, cnt, &e, lineno, err, errlen);
		if (r)
			break;
		if (cnt == METAL_STATE_MAX) {
			errbuf_printf(err, errlen, "line %u: more than %d reservations", lineno,
				      METAL_STATE_MAX);
			r = -E2BIG;
			break;
		}
		nv = array_grow(v, &cap, cnt, sizeof(*v), 16);
		if (!nv) {
			r = -ENOMEM;
			break;
		}
		v = nv;
		v[cnt++] = e;
	}
	if (r) {
		free(v);
		return r;
	}
	*out = v;
	*n = cnt;
	return 0;
}

int metal_state_format(const struct metal_state_entry *e, size_t n, char **out, size_t *len)
{
	/* uuid, id, address, two blanks and the newline */
	size_t cap = sizeof(header) + n * (UUID_STR_LEN + METAL_ID_MAX + IP_ADDR_STRLEN + 3), used;
	char *s = malloc(cap);

	*out = NULL;
	*len = 0;
	if (!s)
		return -ENOMEM;
	used = (size_t)snprintf(s, cap, "%s", header);
	for (size_t i = 0; i < n; i++) {
		char a[IP_ADDR_STRLEN];

		used += (size_t)snprintf(s + used, cap - used, "%s %s %s\n", e[i].lb[0] ? e[i].lb : "-",
					 e[i].id, ip_addr_str(&e[i].addr, a));
	}
	*out = s;
	*len = used;
	return 0;
}
