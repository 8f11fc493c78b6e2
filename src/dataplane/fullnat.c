#include "dataplane/fullnat.h"

#include <errno.h>
#include <netinet/in.h>
#include <nftables/libnftables.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define FULLNAT_TEXT_MIN 4096
#define FULLNAT_ERR_MAX 512
#define FULLNAT_WHAT "table=\"" FULLNAT_FAMILY " " FULLNAT_TABLE "\""

struct fullnat {
	struct nft_ctx *nft;
	struct ipvs_service_key *svcs;
	size_t cap_svcs;
	char *text, *last; /* the script being made, the one last applied */
	size_t cap_text, cap_last;
	bool known;        /* last holds what the table was made to be */
	bool present;      /* the table exists as last written */
	size_t n_present;  /* its services */
	size_t calls;
	char last_err[FULLNAT_ERR_MAX]; /* the failure last logged; "" after a success */
};

/* ---- the script ---- */

static int key_cmp(const void *a, const void *b)
{
	const struct ipvs_service_key *x = a, *y = b;
	int c = ip_addr_cmp(&x->addr, &y->addr);

	if (!c)
		c = (int)x->protocol - (int)y->protocol;
	return c ? c : (int)x->port - (int)y->port;
}

size_t fullnat_services_sort(struct ipvs_service_key *s, size_t n)
{
	size_t m = 0;

	if (!n)
		return 0;
	qsort(s, n, sizeof(*s), key_cmp);
	for (size_t i = 1; i < n; i++)
		if (key_cmp(&s[m], &s[i]))
			s[++m] = s[i];
	return m + 1;
}

struct out {
	char *p;
	size_t size, len;
	bool full;
};

static void __attribute__((format(printf, 2, 3))) out_printf(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->full)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->p + o->len, o->size - o->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->size - o->len)
		o->full = true;
	else
		o->len += (size_t)n;
}

static const char *proto_name(uint16_t p)
{
	return p == IPPROTO_UDP ? "udp" : "tcp";
}

static void render_set(struct out *o, const struct ipvs_service_key *s, size_t n, int family)
{
	char ip[IP_ADDR_STRLEN];
	bool any = false;

	out_printf(o, "\tset fullnat%c {\n\t\ttype %s . inet_proto . inet_service\n",
		   family == AF_INET6 ? '6' : '4', family == AF_INET6 ? "ipv6_addr" : "ipv4_addr");
	for (size_t i = 0; i < n; i++) {
		if (s[i].addr.family != family)
			continue;
		if (!any)
			out_printf(o, "\t\telements = {\n");
		any = true;
		out_printf(o, "\t\t\t%s . %s . %u,\n", ip_addr_str(&s[i].addr, ip),
			   proto_name(s[i].protocol), s[i].port);
	}
	if (any)
		out_printf(o, "\t\t}\n");
	out_printf(o, "\t}\n");
}

ssize_t fullnat_render(const struct ipvs_service_key *s, size_t n, char *buf, size_t size)
{
	static const char *const fams[] = { "ip", "ip6" };
	static const char *const protos[] = { "tcp", "udp" };
	struct out o = { .p = buf, .size = size };

	if (!size)
		return -ENOSPC;
	buf[0] = 0;
	if (!n) {
		out_printf(&o, "delete table " FULLNAT_FAMILY " " FULLNAT_TABLE "\n");
		return o.full ? -ENOSPC : (ssize_t)o.len;
	}
	/* Declaring the table first makes the delete succeed when it is absent: one batch that
	 * creates or replaces. */
	out_printf(&o, "table " FULLNAT_FAMILY " " FULLNAT_TABLE " {}\n"
		   "delete table " FULLNAT_FAMILY " " FULLNAT_TABLE "\n"
		   "table " FULLNAT_FAMILY " " FULLNAT_TABLE " {\n");
	render_set(&o, s, n, AF_INET);
	render_set(&o, s, n, AF_INET6);
	out_printf(&o, "\tchain postrouting {\n"
		   "\t\ttype nat hook postrouting priority srcnat; policy accept;\n");
	/* nft types "ct original proto-dst" (as inet_service) only once the rule has fixed the
	 * transport protocol, and a set key needs typed parts: one rule per protocol. */
	for (size_t f = 0; f < 2; f++)
		for (size_t p = 0; p < 2; p++)
			out_printf(&o, "\t\tmeta l4proto %s ct original %s daddr . meta l4proto . "
				   "ct original proto-dst @fullnat%c masquerade\n", protos[p],
				   fams[f], f ? '6' : '4');
	out_printf(&o, "\t}\n}\n");
	return o.full ? -ENOSPC : (ssize_t)o.len;
}

/* ---- libnftables ---- */

/* libnftables' error text as one line: its "Error: " lines, without the script echoed under
 * them. */
static void error_line(const char *text, char *out, size_t size)
{
	struct out o = { .p = out, .size = size };
	const char *l = text ? text : "";

	out[0] = 0;
	while (*l) {
		size_t len = strcspn(l, "\n");

		if (!strncmp(l, "Error: ", 7))
			out_printf(&o, "%s%.*s", o.len ? "; " : "", (int)(len - 7), l + 7);
		l += len + (l[len] == '\n');
	}
	if (!o.len && text)
		out_printf(&o, "%.*s", (int)strcspn(text, "\n"), text);
	for (char *c = out; *c; c++)
		if (*c == '"')
			*c = '\'';
}

/* Runs the script. 0, or -errno with the error text in err. */
static int nft_run(struct fullnat *f, const char *script, char *err, size_t errlen)
{
	int rc, e;

	f->calls++;
	errno = 0;
	rc = nft_run_cmd_from_buffer(f->nft, script);
	e = errno;
	/* Read (and so reset) both buffers each time: they grow until read. */
	nft_ctx_get_output_buffer(f->nft);
	error_line(nft_ctx_get_error_buffer(f->nft), err, errlen);
	if (!rc)
		return 0;
	/* A batch the kernel refused leaves its answer in errno; a script refused before it was
	 * sent (syntax, types) leaves EAGAIN or nothing there. */
	return e && e != EAGAIN ? -e : -EINVAL;
}

static int grow(void *pp, size_t *cap, size_t want, size_t elem)
{
	void **p = pp;
	size_t c = *cap ? *cap : 1;
	void *q;

	if (want <= *cap)
		return 0;
	while (c < want)
		c *= 2;
	q = realloc(*p, c * elem);
	if (!q)
		return -ENOMEM;
	*p = q;
	*cap = c;
	return 0;
}

/* The script for s[0..n) in f->text. 0 or -ENOMEM. */
static int render_into(struct fullnat *f, size_t n)
{
	ssize_t len;

	if (grow(&f->text, &f->cap_text, FULLNAT_TEXT_MIN, 1))
		return -ENOMEM;
	while ((len = fullnat_render(f->svcs, n, f->text, f->cap_text)) == -ENOSPC)
		if (grow(&f->text, &f->cap_text, 2 * f->cap_text, 1))
			return -ENOMEM;
	return len < 0 ? (int)len : 0;
}

int fullnat_sync(struct fullnat *f, const struct ipvs_service_key *s, size_t n)
{
	char err[FULLNAT_ERR_MAX];
	bool was = f->present, deleted;
	char *t;
	size_t c;
	int rc;

	if (grow(&f->svcs, &f->cap_svcs, n, sizeof(*s)))
		return -ENOMEM;
	if (n)
		memcpy(f->svcs, s, n * sizeof(*s));
	n = fullnat_services_sort(f->svcs, n);
	rc = render_into(f, n);
	if (rc)
		return rc;
	if (f->known && !strcmp(f->text, f->last))
		return 0;
	rc = nft_run(f, f->text, err, sizeof(err));
	deleted = !n && !rc;
	/* Nothing to delete: absent already, or a kernel without inet tables cannot hold it. */
	if (!n && (rc == -ENOENT || rc == -EOPNOTSUPP || rc == -EAFNOSUPPORT))
		rc = 0;
	if (rc) {
		f->known = false;
		if (strcmp(err, f->last_err)) {
			log_error("msg=\"cannot write the fullnat SNAT table\" " FULLNAT_WHAT
				  " services=%zu err=\"%s\" errno=\"%s\"", n, err, strerror(-rc));
			snprintf(f->last_err, sizeof(f->last_err), "%s", err);
		}
		return rc;
	}
	f->last_err[0] = 0;
	/* What was written becomes the reference; the old reference's buffer is reused. */
	t = f->last;
	c = f->cap_last;
	f->last = f->text;
	f->cap_last = f->cap_text;
	f->text = t;
	f->cap_text = c;
	f->known = true;
	f->present = n > 0;
	f->n_present = n;
	if (n && !was)
		log_info("msg=\"fullnat SNAT table created\" " FULLNAT_WHAT " services=%zu", n);
	else if (n)
		log_debug("msg=\"fullnat SNAT table updated\" " FULLNAT_WHAT " services=%zu", n);
	else if (deleted)
		log_info("msg=\"fullnat SNAT table removed\" " FULLNAT_WHAT);
	return 0;
}

size_t fullnat_services(const struct fullnat *f)
{
	return f->present ? f->n_present : 0;
}

size_t fullnat_calls(const struct fullnat *f)
{
	return f->calls;
}

int fullnat_new(struct fullnat **out)
{
	struct fullnat *f = calloc(1, sizeof(*f));

	if (!f)
		return -ENOMEM;
	f->nft = nft_ctx_new(NFT_CTX_DEFAULT);
	if (!f->nft || nft_ctx_buffer_output(f->nft) || nft_ctx_buffer_error(f->nft)) {
		fullnat_free(f);
		return -ENOMEM;
	}
	*out = f;
	return 0;
}

void fullnat_free(struct fullnat *f)
{
	if (!f)
		return;
	if (f->nft)
		nft_ctx_free(f->nft);
	free(f->svcs);
	free(f->text);
	free(f->last);
	free(f);
}
