/*
 * Load balancers to and from JSON.
 *
 * The parsers report every problem they find, not only the first: err holds
 * one "path: reason" line per error, separated by '\n', so the config loader
 * can list them all and the API can return them in one answer. User text
 * quoted in a message is escaped, so a message never holds a newline of its own.
 */
#include "lb_json.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "health/http_parse.h"
#include "util.h"

#define JPATH_MAX 256
#define HC_STR_MAX 4096
#define HC_INTERVAL_MIN_MS 100
#define HC_INTERVAL_MAX_MS 3600000
#define HC_COUNT_MAX 100
#define HC_MIN_HEALTHY_MAX 4096
#define PERSISTENCE_MAX_MS (24u * 86400 * 1000)

/* Collects error lines into the caller's buffer; whole lines only. */
struct jerr {
	char *buf;
	size_t cap, len;
	unsigned n;
	bool nomem;
};

static void jerr_init(struct jerr *e, char *buf, size_t cap)
{
	e->buf = cap ? buf : NULL;
	e->cap = cap;
	e->len = 0;
	e->n = 0;
	e->nomem = false;
	if (e->buf)
		e->buf[0] = '\0';
}

static void jerr_add(struct jerr *e, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void jerr_add(struct jerr *e, const char *path, const char *fmt, ...)
{
	char line[768];
	size_t off = 0, need;
	va_list ap;
	int r;

	e->n++;
	if (!e->buf)
		return;
	if (path && path[0]) {
		r = snprintf(line, sizeof(line), "%s: ", path);
		off = r < 0 ? 0 : ((size_t)r < sizeof(line) ? (size_t)r : sizeof(line) - 1);
	}
	va_start(ap, fmt);
	vsnprintf(line + off, sizeof(line) - off, fmt, ap);
	va_end(ap);
	need = strlen(line) + (e->len ? 1 : 0);
	if (e->len + need + 1 > e->cap)
		return;
	if (e->len)
		e->buf[e->len++] = '\n';
	memcpy(e->buf + e->len, line, strlen(line) + 1);
	e->len += strlen(line);
}

static void jerr_nomem(struct jerr *e)
{
	if (!e->nomem)
		jerr_add(e, "", "out of memory");
	e->nomem = true;
}

static int jerr_result(const struct jerr *e)
{
	if (e->nomem)
		return -ENOMEM;
	return e->n ? -EINVAL : 0;
}

/* A path that did not fit ends in "..."; it still names where to look. */
static const char *jpath_done(char *out, int r)
{
	if (r < 0 || r >= JPATH_MAX)
		memcpy(out + JPATH_MAX - 4, "...", 4);
	return out;
}

static const char *jpath(char *out, const char *prefix, const char *key)
{
	if (!prefix || !prefix[0])
		return jpath_done(out, snprintf(out, JPATH_MAX, "%s", key));
	return jpath_done(out, snprintf(out, JPATH_MAX, "%s.%s", prefix, key));
}

/* prefix.key[i], or key[i] without a prefix; key NULL gives prefix[i]. */
static const char *jpath_idx(char *out, const char *prefix, const char *key, size_t i)
{
	if (!key)
		return jpath_done(out, snprintf(out, JPATH_MAX, "%s[%zu]", prefix, i));
	if (!prefix || !prefix[0])
		return jpath_done(out, snprintf(out, JPATH_MAX, "%s[%zu]", key, i));
	return jpath_done(out, snprintf(out, JPATH_MAX, "%s.%s[%zu]", prefix, key, i));
}

/* Length of the well-formed UTF-8 sequence at s (no overlongs, no surrogates), or 0. */
static int utf8_len(const unsigned char *s)
{
	uint32_t cp;
	int n;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0)
		n = 1, cp = s[0] & 0x1f;
	else if ((s[0] & 0xf0) == 0xe0)
		n = 2, cp = s[0] & 0x0f;
	else if ((s[0] & 0xf8) == 0xf0)
		n = 3, cp = s[0] & 0x07;
	else
		return 0;
	for (int i = 1; i <= n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n + 1;
}

static bool utf8_valid(const char *s)
{
	const unsigned char *u = (const unsigned char *)s;

	while (*u) {
		int n = utf8_len(u);

		if (!n)
			return false;
		u += n;
	}
	return true;
}

/*
 * User text for a message, shortened. Control characters, quotes and broken
 * UTF-8 are escaped, so the message stays on one line and is valid JSON text
 * when the API returns it.
 */
static const char *quoted(const char *s, char *buf, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t o = 0;

	while (*u && o + 8 < n) {
		int len = utf8_len(u);

		if (len > 1) {
			memcpy(buf + o, u, (size_t)len);
			o += (size_t)len;
			u += len;
			continue;
		}
		if (!len || *u < 0x20 || *u == 0x7f || *u == '"' || *u == '\\')
			o += (size_t)snprintf(buf + o, n - o, "\\x%02x", *u);
		else
			buf[o++] = (char)*u;
		u++;
	}
	if (*u)
		o += (size_t)snprintf(buf + o, n - o, "...");
	buf[o] = '\0';
	return buf;
}

const char *json_type_name(const cJSON *v)
{
	if (cJSON_IsString(v))
		return "a string";
	if (cJSON_IsNumber(v))
		return "a number";
	if (cJSON_IsBool(v))
		return "a boolean";
	if (cJSON_IsNull(v))
		return "null";
	if (cJSON_IsArray(v))
		return "an array";
	if (cJSON_IsObject(v))
		return "an object";
	return "invalid";
}

/*
 * A non-negative integer from a number or a string of digits ("6443").
 * -EINVAL when v is not numeric at all, -ERANGE when it is but not in 0..max.
 */
static int json_uint(const cJSON *v, uint64_t max, uint64_t *out)
{
	if (cJSON_IsNumber(v)) {
		double d = v->valuedouble;

		if (!(d >= 0 && d <= (double)max) || (double)(uint64_t)d != d)
			return -ERANGE;
		*out = (uint64_t)d;
		return 0;
	}
	if (cJSON_IsString(v) && v->valuestring) {
		const char *s = v->valuestring;
		uint64_t x = 0;
		size_t i = 0;

		if (s[0] == '-')
			i = 1;
		if (!s[i])
			return -EINVAL;
		for (; s[i]; i++) {
			if (s[i] < '0' || s[i] > '9')
				return -EINVAL;
			if (x <= max)
				x = x * 10 + (uint64_t)(s[i] - '0');
		}
		if (s[0] == '-' || x > max)
			return -ERANGE;
		*out = x;
		return 0;
	}
	return -EINVAL;
}

/* An integer field in lo..hi; reports under path. */
static int get_uint(const cJSON *v, const char *path, uint64_t lo, uint64_t hi, uint64_t *out,
		    struct jerr *e)
{
	int r = json_uint(v, hi, out);

	if (r == -EINVAL) {
		jerr_add(e, path, "must be a number or a numeric string, not %s",
			 json_type_name(v));
		return r;
	}
	if (r || *out < lo) {
		jerr_add(e, path, "must be %llu..%llu", (unsigned long long)lo,
			 (unsigned long long)hi);
		return -ERANGE;
	}
	return 0;
}

int json_port(const cJSON *v, uint16_t *out)
{
	uint64_t x;

	if (json_uint(v, 65535, &x) || x == 0)
		return -EINVAL;
	*out = (uint16_t)x;
	return 0;
}

cJSON *json_parse_doc(const char *text, size_t len, char *err, size_t errlen)
{
	const char *end = NULL;
	unsigned line, col;
	cJSON *root;
	size_t off;

	if (!text) {
		text = "";
		len = 0;
	}
	root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
	if (!root) {
		off = end && end >= text ? (size_t)(end - text) : 0;
		if (off > len)
			off = len;
		text_position(text, off, &line, &col);
		errbuf_printf(err, errlen, "line %u, column %u: JSON syntax error%s", line, col,
			      off >= len || text_only_space(text + off, len - off)
				      ? ": unexpected end of the document"
				      : "");
		return NULL;
	}
	off = (size_t)(end - text);
	if (off < len && !text_only_space(text + off, len - off)) {
		while (off < len && text_only_space(text + off, 1))
			off++;
		text_position(text, off, &line, &col);
		errbuf_printf(err, errlen, "line %u, column %u: JSON syntax error: text after the end "
			      "of the document", line, col);
		cJSON_Delete(root);
		return NULL;
	}
	return root;
}

int duration_parse_ms(const char *s, uint32_t *out)
{
	static const struct {
		const char *unit;
		uint64_t ms;
	} units[] = { { "", 1 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 } };
	uint64_t v = 0;
	size_t i = 0;

	if (!s)
		return -EINVAL;
	for (; s[i] >= '0' && s[i] <= '9'; i++) {
		v = v * 10 + (uint64_t)(s[i] - '0');
		if (v > UINT32_MAX)
			return -EINVAL;
	}
	if (i == 0)
		return -EINVAL;
	for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
		if (strcmp(s + i, units[u].unit) == 0) {
			if (v * units[u].ms > UINT32_MAX)
				return -EINVAL;
			*out = (uint32_t)(v * units[u].ms);
			return 0;
		}
	}
	return -EINVAL;
}

int json_duration_ms(const cJSON *v, uint32_t *out)
{
	if (cJSON_IsString(v))
		return duration_parse_ms(v->valuestring, out);
	if (cJSON_IsNumber(v)) {
		double d = v->valuedouble;

		if (!(d >= 0 && d <= (double)UINT32_MAX) || (double)(uint32_t)d != d)
			return -EINVAL;
		*out = (uint32_t)d;
		return 0;
	}
	return -EINVAL;
}

static const char *duration_str(uint32_t ms, char buf[24])
{
	if (ms && ms % 3600000 == 0)
		snprintf(buf, 24, "%uh", ms / 3600000);
	else if (ms && ms % 60000 == 0)
		snprintf(buf, 24, "%um", ms / 60000);
	else if (ms && ms % 1000 == 0)
		snprintf(buf, 24, "%us", ms / 1000);
	else
		snprintf(buf, 24, "%ums", ms);
	return buf;
}

static const char *get_string(const cJSON *v, const char *path, struct jerr *e)
{
	if (cJSON_IsString(v) && v->valuestring)
		return v->valuestring;
	jerr_add(e, path, "must be a string, not %s", json_type_name(v));
	return NULL;
}

static int get_bool(const cJSON *v, const char *path, bool *out, struct jerr *e)
{
	if (!cJSON_IsBool(v)) {
		jerr_add(e, path, "must be true or false, not %s", json_type_name(v));
		return -EINVAL;
	}
	*out = cJSON_IsTrue(v);
	return 0;
}

static bool has_ctrl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

static bool has_space_or_ctrl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || *s == 0x7f)
			return true;
	return false;
}

static int set_str(char **dst, const char *s, struct jerr *e)
{
	char *c = strdup(s);

	if (!c) {
		jerr_nomem(e);
		return -ENOMEM;
	}
	free(*dst);
	*dst = c;
	return 0;
}

static bool addr_usable(const struct ip_addr *a)
{
	static const uint8_t zero[16];

	if (a->family == AF_INET)
		return a->v4.s_addr != 0 && (a->bytes[0] & 0xf0) != 0xe0 &&
		       a->v4.s_addr != 0xffffffffu;
	return memcmp(a->bytes, zero, 16) != 0 && a->bytes[0] != 0xff;
}

/* An address literal; "" leaves *out unset when allow_empty. */
static int get_addr(const cJSON *v, const char *path, bool allow_empty, struct ip_addr *out,
		    struct jerr *e)
{
	const char *s = get_string(v, path, e);
	char q[96];

	memset(out, 0, sizeof(*out));
	if (!s)
		return -EINVAL;
	if (!s[0] && allow_empty)
		return 0;
	if (ip_addr_parse(s, out)) {
		jerr_add(e, path, "not an IPv4 or IPv6 address: \"%s\"", quoted(s, q, sizeof(q)));
		return -EINVAL;
	}
	if (!addr_usable(out)) {
		jerr_add(e, path, "must be a unicast address, not %s", quoted(s, q, sizeof(q)));
		memset(out, 0, sizeof(*out));
		return -EINVAL;
	}
	return 0;
}

static int get_uuid(const cJSON *v, const char *path, char out[UUID_STR_LEN], struct jerr *e)
{
	const char *s = get_string(v, path, e);
	char q[96];

	if (!s)
		return -EINVAL;
	if (!uuid_is_valid(s)) {
		jerr_add(e, path, "not a uuid: \"%s\"", quoted(s, q, sizeof(q)));
		return -EINVAL;
	}
	for (int i = 0; i < UUID_STR_LEN; i++)
		out[i] = (char)tolower((unsigned char)s[i]);
	return 0;
}

/*
 * Keys are looked up by walking the object once, so unknown and repeated keys
 * are caught; `seen` has one bit per entry of the table.
 */
static int key_index(const char *const *keys, const char *k)
{
	for (int i = 0; keys[i]; i++)
		if (strcmp(keys[i], k) == 0)
			return i;
	return -1;
}

/* Returns the key's index, or -1 after reporting an unknown or repeated key. */
static int key_check(const char *const *keys, const cJSON *item, const char *path,
		     uint32_t *seen, struct jerr *e)
{
	char q[96];
	int k = key_index(keys, item->string ? item->string : "");

	if (k < 0) {
		jerr_add(e, path, "unknown key \"%s\"", quoted(item->string ? item->string : "", q,
							       sizeof(q)));
		return -1;
	}
	if (*seen & (1u << k)) {
		jerr_add(e, path, "duplicate key \"%s\"", keys[k]);
		return -1;
	}
	*seen |= 1u << k;
	return k;
}

static int check_object(const cJSON *obj, const char *path, struct jerr *e)
{
	if (cJSON_IsObject(obj))
		return 0;
	jerr_add(e, path, "must be an object, not %s", json_type_name(obj));
	return -EINVAL;
}

/* ---- health checks ---- */

enum {
	HK_TYPE, HK_INTERVAL, HK_TIMEOUT, HK_FAIL, HK_RISE, HK_PORT, HK_PATH, HK_STATUS, HK_HOST,
	HK_BODY, HK_TLS, HK_UDP_PAYLOAD, HK_UDP_EXPECT, HK_MIN_HEALTHY,
};

static const char *const hc_keys[] = {
	[HK_TYPE] = "type", [HK_INTERVAL] = "interval", [HK_TIMEOUT] = "timeout",
	[HK_FAIL] = "fail_count", [HK_RISE] = "rise_count", [HK_PORT] = "port",
	[HK_PATH] = "http_path", [HK_STATUS] = "http_expected_status", [HK_HOST] = "host",
	[HK_BODY] = "expect_body", [HK_TLS] = "tls_verify", [HK_UDP_PAYLOAD] = "udp_payload",
	[HK_UDP_EXPECT] = "udp_expect", [HK_MIN_HEALTHY] = "min_healthy", NULL,
};

static void hc_status(const cJSON *v, const char *path, struct health_check *hc, struct jerr *e)
{
	char p[JPATH_MAX];
	size_t n = 0, i = 0;
	const cJSON *it;
	uint64_t x;

	if (cJSON_IsNumber(v) || cJSON_IsString(v)) {
		if (!get_uint(v, path, 100, 599, &x, e)) {
			hc->expected_status[0] = (uint16_t)x;
			hc->n_expected_status = 1;
		}
		return;
	}
	if (!cJSON_IsArray(v)) {
		jerr_add(e, path, "must be a status or an array of statuses, not %s",
			 json_type_name(v));
		return;
	}
	n = (size_t)cJSON_GetArraySize(v);
	if (n < 1 || n > HC_MAX_STATUS) {
		jerr_add(e, path, "must hold 1..%d statuses", HC_MAX_STATUS);
		return;
	}
	cJSON_ArrayForEach(it, v) {
		if (!get_uint(it, jpath_idx(p, path, NULL, i), 100, 599, &x, e))
			hc->expected_status[i] = (uint16_t)x;
		i++;
	}
	hc->n_expected_status = n;
}

/* A string for a health check: bounded, and free of controls where it goes into a request. */
static void hc_str(const cJSON *v, const char *path, bool no_space, char **dst, struct jerr *e)
{
	const char *s = get_string(v, path, e);

	if (!s)
		return;
	if (strlen(s) > HC_STR_MAX) {
		jerr_add(e, path, "must be at most %d bytes", HC_STR_MAX);
		return;
	}
	if (no_space && (!s[0] || has_space_or_ctrl(s))) {
		jerr_add(e, path, "must be non-empty, without spaces or control characters");
		return;
	}
	set_str(dst, s, e);
}

static void hc_parse(const cJSON *obj, const char *path, struct health_check *hc, struct jerr *e)
{
	char p[JPATH_MAX], q[96];
	uint32_t seen = 0, ms;
	const cJSON *it;
	uint64_t x;
	bool times_ok = true;

	health_check_init(hc);
	if (check_object(obj, path, e))
		return;
	cJSON_ArrayForEach(it, obj) {
		int k = key_check(hc_keys, it, path, &seen, e);
		const char *s;

		if (k >= 0)
			jpath(p, path, hc_keys[k]);
		switch (k) {
		case HK_TYPE:
			s = get_string(it, p, e);
			if (s && hc_type_parse(s, &hc->type))
				jerr_add(e, p, "must be tcp, http, https, udp or none, not \"%s\"",
					 quoted(s, q, sizeof(q)));
			break;
		case HK_INTERVAL:
		case HK_TIMEOUT:
			if (json_duration_ms(it, &ms)) {
				jerr_add(e, p, "must be milliseconds or a duration such as "
					 "\"500ms\", \"5s\", \"1m\"");
				times_ok = false;
			} else if (k == HK_INTERVAL)
				hc->interval_ms = ms;
			else
				hc->timeout_ms = ms;
			break;
		case HK_FAIL:
		case HK_RISE:
			if (!get_uint(it, p, 1, HC_COUNT_MAX, &x, e))
				*(k == HK_FAIL ? &hc->fail_count : &hc->rise_count) = (uint32_t)x;
			break;
		case HK_PORT:
			if (!get_uint(it, p, 0, 65535, &x, e))
				hc->port = (uint16_t)x;
			break;
		case HK_PATH:
			s = get_string(it, p, e);
			if (!s)
				break;
			if (s[0] != '/')
				jerr_add(e, p, "must start with \"/\"");
			else
				hc_str(it, p, true, &hc->http_path, e);
			break;
		case HK_STATUS:
			hc_status(it, p, hc, e);
			break;
		case HK_HOST:
			hc_str(it, p, true, &hc->host, e);
			break;
		case HK_BODY:
			s = get_string(it, p, e);
			if (s && strlen(s) > HTTP_EXPECT_MAX)
				jerr_add(e, p, "must be at most %d bytes", HTTP_EXPECT_MAX);
			else if (s)
				hc_str(it, p, false, &hc->expect_body, e);
			break;
		case HK_TLS:
			get_bool(it, p, &hc->tls_verify, e);
			break;
		case HK_UDP_PAYLOAD:
			hc_str(it, p, false, &hc->udp_payload, e);
			break;
		case HK_UDP_EXPECT:
			hc_str(it, p, false, &hc->udp_expect, e);
			break;
		case HK_MIN_HEALTHY:
			if (!get_uint(it, p, 1, HC_MIN_HEALTHY_MAX, &x, e))
				hc->min_healthy = (uint32_t)x;
			break;
		default:
			break;
		}
	}
	if (!times_ok)
		return;
	if (hc->interval_ms < HC_INTERVAL_MIN_MS || hc->interval_ms > HC_INTERVAL_MAX_MS) {
		jerr_add(e, jpath(p, path, "interval"), "must be 100ms..1h");
		return;
	}
	/* Only a timeout the user gave is an error; the default follows a short interval. */
	if (!(seen & (1u << HK_TIMEOUT)) && hc->timeout_ms > hc->interval_ms)
		hc->timeout_ms = hc->interval_ms;
	if (hc->timeout_ms == 0 || hc->timeout_ms > hc->interval_ms) {
		char d[24];

		jerr_add(e, jpath(p, path, "timeout"),
			 "must be more than 0 and at most interval (%s)",
			 duration_str(hc->interval_ms, d));
	}
}

int health_check_from_json(const cJSON *obj, const char *path, struct health_check *out,
			   char *err, size_t errlen)
{
	struct jerr e;
	int r;

	jerr_init(&e, err, errlen);
	hc_parse(obj, path ? path : "", out, &e);
	r = jerr_result(&e);
	if (r) {
		health_check_clear(out);
		health_check_init(out);
	}
	return r;
}

/* ---- backends ---- */

enum { BK_UUID, BK_IP, BK_PORT, BK_WEIGHT, BK_TYPE, BK_STATE, BK_HEALTH };

static const char *const backend_keys[] = {
	[BK_UUID] = "uuid", [BK_IP] = "ip", [BK_PORT] = "port", [BK_WEIGHT] = "weight",
	[BK_TYPE] = "type", [BK_STATE] = "state", [BK_HEALTH] = "health", NULL,
};

/* *has_uuid: the object named its uuid (kept in config and state modes). */
static void backend_parse(const cJSON *obj, enum lb_json_mode mode, const char *path,
			  struct backend *b, bool *has_uuid, struct jerr *e)
{
	char p[JPATH_MAX], q[96];
	uint32_t seen = 0;
	const cJSON *it;
	uint64_t x;

	backend_init(b);
	*has_uuid = false;
	if (check_object(obj, path, e))
		return;
	cJSON_ArrayForEach(it, obj) {
		int k = key_check(backend_keys, it, path, &seen, e);
		const char *s;

		if (k >= 0)
			jpath(p, path, backend_keys[k]);
		switch (k) {
		case BK_UUID:
			/* The API makes backend uuids itself; what a client sends is ignored. */
			if (mode != LB_JSON_API && !get_uuid(it, p, b->uuid, e))
				*has_uuid = true;
			break;
		case BK_IP:
			get_addr(it, p, false, &b->ip, e);
			break;
		case BK_PORT:
			if (!get_uint(it, p, 1, 65535, &x, e))
				b->port = (uint16_t)x;
			break;
		case BK_WEIGHT:
			if (!get_uint(it, p, 1, 65535, &x, e))
				b->weight = (uint32_t)x;
			break;
		case BK_TYPE:
			s = get_string(it, p, e);
			if (s && backend_type_parse(s, &b->type))
				jerr_add(e, p, "must be \"MASQ\" or \"LOCAL\", not \"%s\"",
					 quoted(s, q, sizeof(q)));
			break;
		case BK_STATE:
			s = get_string(it, p, e);
			if (!s)
				break;
			if (strcasecmp(s, "enabled") == 0)
				b->drained = false;
			else if (strcasecmp(s, "drained") == 0 || strcasecmp(s, "draining") == 0)
				b->drained = true;
			else
				jerr_add(e, p, "must be \"enabled\" or \"drained\", not \"%s\"",
					 quoted(s, q, sizeof(q)));
			break;
		case BK_HEALTH:
			/* Output only: what the health checker found is not taken back. */
			break;
		default:
			break;
		}
	}
	if (!(seen & (1u << BK_IP)))
		jerr_add(e, jpath(p, path, "ip"), "required");
	if (!(seen & (1u << BK_PORT)))
		jerr_add(e, jpath(p, path, "port"), "required");
	if (mode == LB_JSON_STATE && !(seen & (1u << BK_UUID)))
		jerr_add(e, jpath(p, path, "uuid"), "required in the state file");
}

/*
 * In config mode a backend without "uuid" keeps a random one here; lb_from_json
 * replaces it by one derived from the load balancer's name and the address.
 */
int backend_from_json(const cJSON *obj, enum lb_json_mode mode, const char *path,
		      struct backend *out, char *err, size_t errlen)
{
	struct jerr e;
	bool has_uuid;

	jerr_init(&e, err, errlen);
	backend_parse(obj, mode, path ? path : "", out, &has_uuid, &e);
	return jerr_result(&e);
}

struct backend_ref {
	const struct backend *b;
	size_t idx;
};

static int cmp_by_addr(const void *x, const void *y)
{
	const struct backend_ref *a = x, *b = y;
	int c = ip_addr_cmp(&a->b->ip, &b->b->ip);

	if (c)
		return c;
	if (a->b->port != b->b->port)
		return a->b->port < b->b->port ? -1 : 1;
	return a->idx < b->idx ? -1 : (a->idx > b->idx);
}

static int cmp_by_uuid(const void *x, const void *y)
{
	const struct backend_ref *a = x, *b = y;
	int c = strcmp(a->b->uuid, b->b->uuid);

	if (c)
		return c;
	return a->idx < b->idx ? -1 : (a->idx > b->idx);
}

/*
 * Sorting finds repeats in O(n log n), so a huge list cannot stall the loop.
 * pos[i] is where lb->backends[i] stood in the input (bad entries are skipped).
 */
static void backends_check_dups(const struct lb *lb, const size_t *pos, const char *path,
				struct jerr *e)
{
	struct backend_ref *refs;
	char p[JPATH_MAX], p2[JPATH_MAX], ip[IP_ADDR_STRLEN];

	if (lb->n_backends < 2)
		return;
	refs = malloc(lb->n_backends * sizeof(*refs));
	if (!refs) {
		jerr_nomem(e);
		return;
	}
	for (size_t i = 0; i < lb->n_backends; i++)
		refs[i] = (struct backend_ref){ &lb->backends[i], pos[i] };
	qsort(refs, lb->n_backends, sizeof(*refs), cmp_by_addr);
	for (size_t i = 1; i < lb->n_backends; i++) {
		const struct backend *a = refs[i - 1].b, *b = refs[i].b;

		if (a->port != b->port || !ip_addr_equal(&a->ip, &b->ip))
			continue;
		jpath_idx(p, path, "backends", refs[i].idx);
		jpath_idx(p2, "", "backends", refs[i - 1].idx);
		jerr_add(e, p, b->ip.family == AF_INET6 ? "duplicate backend [%s]:%u (also %s)"
							: "duplicate backend %s:%u (also %s)",
			 ip_addr_str(&b->ip, ip), b->port, p2);
	}
	qsort(refs, lb->n_backends, sizeof(*refs), cmp_by_uuid);
	for (size_t i = 1; i < lb->n_backends; i++) {
		const struct backend *a = refs[i - 1].b, *b = refs[i].b;
		char pu[JPATH_MAX];

		/* Uuids derived from one address repeat with it: reported above already. */
		if (strcmp(a->uuid, b->uuid) != 0 ||
		    (a->port == b->port && ip_addr_equal(&a->ip, &b->ip)))
			continue;
		jpath_idx(p, path, "backends", refs[i].idx);
		jpath_idx(p2, "", "backends", refs[i - 1].idx);
		jerr_add(e, jpath(pu, p, "uuid"), "duplicate uuid (also %s)", p2);
	}
	free(refs);
}

/* Fills pos[] with each kept backend's place in arr and derive[] with whether its uuid is made. */
static void backends_parse(const cJSON *arr, enum lb_json_mode mode, const char *path,
			   struct lb *lb, size_t *pos, bool *derive, struct jerr *e)
{
	char p[JPATH_MAX];
	const cJSON *it;
	size_t i = 0;

	if (cJSON_IsNull(arr))
		return;
	if (!cJSON_IsArray(arr)) {
		jerr_add(e, jpath(p, path, "backends"), "must be an array, not %s",
			 json_type_name(arr));
		return;
	}
	cJSON_ArrayForEach(it, arr) {
		unsigned before = e->n;
		struct backend b;
		bool has_uuid;

		backend_parse(it, mode, jpath_idx(p, path, "backends", i), &b, &has_uuid, e);
		if (e->n == before) {
			if (lb_add_backend(lb, &b)) {
				jerr_nomem(e);
				return;
			}
			pos[lb->n_backends - 1] = i;
			derive[lb->n_backends - 1] = mode == LB_JSON_CONFIG && !has_uuid;
		}
		i++;
	}
}

/* ---- load balancers ---- */

enum {
	LK_UUID, LK_NAME, LK_VIP, LK_EIP, LK_PORT, LK_PROTOCOL, LK_SCHEDULER, LK_FORWARDING,
	LK_STATUS, LK_ORIGIN, LK_HC, LK_BACKENDS, LK_PERSISTENCE,
};

static const char *const lb_keys[] = {
	[LK_UUID] = "uuid", [LK_NAME] = "name", [LK_VIP] = "vip", [LK_EIP] = "eip",
	[LK_PORT] = "port", [LK_PROTOCOL] = "protocol", [LK_SCHEDULER] = "scheduler",
	[LK_FORWARDING] = "forwarding", [LK_STATUS] = "status", [LK_ORIGIN] = "origin",
	[LK_HC] = "health_check", [LK_BACKENDS] = "backends", [LK_PERSISTENCE] = "persistence",
	NULL,
};

static void name_parse(const cJSON *v, const char *path, struct lb *lb, struct jerr *e)
{
	const char *s = get_string(v, path, e);
	size_t n;

	if (!s)
		return;
	n = strlen(s);
	if (n < 1 || n > LB_NAME_MAX) {
		jerr_add(e, path, "must be 1..%d characters", LB_NAME_MAX);
		return;
	}
	if (has_ctrl(s) || !utf8_valid(s)) {
		jerr_add(e, path, "must be printable UTF-8 text without control characters");
		return;
	}
	if (lb_set_name(lb, s))
		jerr_nomem(e);
}

static void enum_parse(const cJSON *v, const char *path, int (*parse)(const char *, void *),
		       void *out, const char *choices, struct jerr *e)
{
	const char *s = get_string(v, path, e);
	char q[96];

	if (s && parse(s, out))
		jerr_add(e, path, "must be one of %s, not \"%s\"", choices,
			 quoted(s, q, sizeof(q)));
}

static int parse_protocol(const char *s, void *out)
{
	return lb_protocol_parse(s, out);
}

static int parse_scheduler(const char *s, void *out)
{
	return lb_scheduler_parse(s, out);
}

static int parse_forwarding(const char *s, void *out)
{
	return lb_forwarding_parse(s, out);
}

static int parse_origin(const char *s, void *out)
{
	enum lb_origin *o = out;

	if (strcasecmp(s, "api") == 0)
		*o = LB_ORIGIN_API;
	else if (strcasecmp(s, "config") == 0)
		*o = LB_ORIGIN_CONFIG;
	else
		return -EINVAL;
	return 0;
}

/* In a family-preserving mode (everything but fullnat) backends speak the VIP's family. */
static void backends_check_family(const struct lb *lb, const size_t *pos, const char *path,
				  struct jerr *e)
{
	char p[JPATH_MAX], p2[JPATH_MAX];

	if (!ip_addr_is_set(&lb->vip) || lb->forwarding == LB_FWD_FULLNAT)
		return;
	for (size_t i = 0; i < lb->n_backends; i++) {
		if (lb->backends[i].ip.family == lb->vip.family)
			continue;
		jpath(p, jpath_idx(p2, path, "backends", pos[i]), "ip");
		jerr_add(e, p, "must be %s like the vip, as forwarding \"%s\" keeps addresses "
			 "(only fullnat mixes families)",
			 lb->vip.family == AF_INET ? "IPv4" : "IPv6",
			 lb_forwarding_name(lb->forwarding));
	}
}

static void backends_derive_uuids(struct lb *lb, const bool *derive, struct jerr *e)
{
	char ip[IP_ADDR_STRLEN];

	for (size_t i = 0; i < lb->n_backends; i++) {
		struct backend *b = &lb->backends[i];
		size_t n;
		char *key;

		if (!derive[i])
			continue;
		n = strlen(lb->name) + IP_ADDR_STRLEN + 16;
		key = malloc(n);
		if (!key) {
			jerr_nomem(e);
			return;
		}
		snprintf(key, n, "%s/%s:%u", lb->name, ip_addr_str(&b->ip, ip), b->port);
		uuid_from_name(key, b->uuid);
		free(key);
	}
}

static void lb_parse(const cJSON *obj, enum lb_json_mode mode, const char *path, struct lb *lb,
		     struct jerr *e)
{
	const cJSON *vip_v = NULL, *eip_v = NULL, *backends = NULL;
	struct ip_addr vip, eip;
	char p[JPATH_MAX];
	bool has_uuid = false, vip_ok = true, eip_ok = true, *derive = NULL;
	size_t *pos = NULL;
	uint32_t seen = 0;
	const cJSON *it;
	uint64_t x;
	uint32_t ms;

	if (check_object(obj, path, e))
		return;
	cJSON_ArrayForEach(it, obj) {
		int k = key_check(lb_keys, it, path, &seen, e);

		if (k >= 0)
			jpath(p, path, lb_keys[k]);
		switch (k) {
		case LK_UUID:
			if (mode != LB_JSON_API && !get_uuid(it, p, lb->uuid, e))
				has_uuid = true;
			break;
		case LK_NAME:
			name_parse(it, p, lb, e);
			break;
		case LK_VIP:
			vip_v = it;
			vip_ok = !get_addr(it, p, true, &vip, e);
			break;
		case LK_EIP:
			eip_v = it;
			eip_ok = !get_addr(it, p, true, &eip, e);
			break;
		case LK_PORT:
			if (!get_uint(it, p, 1, 65535, &x, e))
				lb->port = (uint16_t)x;
			break;
		case LK_PROTOCOL:
			enum_parse(it, p, parse_protocol, &lb->protocol, "tcp, udp", e);
			break;
		case LK_SCHEDULER:
			enum_parse(it, p, parse_scheduler, &lb->scheduler,
				   "mh, rr, wrr, lc, wlc, sh, dh, maglev", e);
			break;
		case LK_FORWARDING:
			enum_parse(it, p, parse_forwarding, &lb->forwarding,
				   "fullnat, nat, dsr, tunnel, masq, droute, dr, ipip", e);
			break;
		case LK_STATUS:
			/* Output only: the store decides whether the VIP is there. */
			break;
		case LK_ORIGIN:
			if (mode == LB_JSON_STATE)
				enum_parse(it, p, parse_origin, &lb->origin, "api, config", e);
			else
				jerr_add(e, p, "only allowed in the state file");
			break;
		case LK_HC:
			health_check_clear(&lb->hc);
			hc_parse(it, p, &lb->hc, e);
			break;
		case LK_BACKENDS:
			backends = it;
			break;
		case LK_PERSISTENCE:
			/* IPVS counts it in whole seconds, up to its own limit of about 24 days. */
			if (json_duration_ms(it, &ms) || ms % 1000 || ms > PERSISTENCE_MAX_MS)
				jerr_add(e, p, "must be whole seconds up to 24d, such as \"300s\" or "
					 "\"10m\" (0: off)");
			else
				lb->persistence_ms = ms;
			break;
		default:
			break;
		}
	}
	/* A UDP service need not answer an arbitrary datagram: without a check named, a
	 * UDP load balancer is not probed (TCP ones get the default TCP connect check). */
	if (!(seen & (1u << LK_HC)) && lb->protocol == LB_PROTO_UDP)
		lb->hc.type = HC_NONE;
	if (!(seen & (1u << LK_NAME)))
		jerr_add(e, jpath(p, path, "name"), "required");
	if (!(seen & (1u << LK_PORT)))
		jerr_add(e, jpath(p, path, "port"), "required");
	if (mode == LB_JSON_STATE && !has_uuid && !(seen & (1u << LK_UUID)))
		jerr_add(e, jpath(p, path, "uuid"), "required in the state file");
	if (vip_v && eip_v && vip_ok && eip_ok && !ip_addr_equal(&vip, &eip))
		jerr_add(e, jpath(p, path, "eip"), "must equal vip (eip is slb's name for it)");
	else if (vip_v && vip_ok)
		lb->vip = vip;
	else if (eip_v && eip_ok)
		lb->vip = eip;
	lb->status = ip_addr_is_set(&lb->vip) ? LB_STATUS_ACTIVE : LB_STATUS_PENDING;
	if (mode == LB_JSON_CONFIG)
		lb->origin = LB_ORIGIN_CONFIG;
	else if (mode == LB_JSON_API)
		lb->origin = LB_ORIGIN_API;
	if (mode == LB_JSON_CONFIG && !has_uuid && lb->name)
		uuid_from_name(lb->name, lb->uuid);

	if (!backends)
		return;
	if (cJSON_IsArray(backends)) {
		size_t n = (size_t)cJSON_GetArraySize(backends) + 1;

		derive = calloc(n, sizeof(*derive));
		pos = calloc(n, sizeof(*pos));
		if (!derive || !pos) {
			free(derive);
			free(pos);
			jerr_nomem(e);
			return;
		}
	}
	backends_parse(backends, mode, path, lb, pos, derive, e);
	if (lb->name && derive)
		backends_derive_uuids(lb, derive, e);
	if (pos) {
		backends_check_dups(lb, pos, path, e);
		backends_check_family(lb, pos, path, e);
	}
	free(derive);
	free(pos);
}

int lb_from_json(const cJSON *obj, enum lb_json_mode mode, const char *path, struct lb **out,
		 char *err, size_t errlen)
{
	struct jerr e;
	struct lb *lb;
	int r;

	*out = NULL;
	jerr_init(&e, err, errlen);
	lb = lb_new();
	if (!lb) {
		jerr_nomem(&e);
		return -ENOMEM;
	}
	lb_parse(obj, mode, path ? path : "", lb, &e);
	r = jerr_result(&e);
	if (r) {
		lb_free(lb);
		return r;
	}
	*out = lb;
	return 0;
}

/* ---- output ---- */

static cJSON *hc_to_json(const struct health_check *hc)
{
	cJSON *o = cJSON_CreateObject(), *st;
	char d[24];
	bool ok;

	if (!o)
		return NULL;
	ok = cJSON_AddStringToObject(o, "type", hc_type_name(hc->type)) &&
	     cJSON_AddStringToObject(o, "interval", duration_str(hc->interval_ms, d)) &&
	     cJSON_AddStringToObject(o, "timeout", duration_str(hc->timeout_ms, d)) &&
	     cJSON_AddNumberToObject(o, "fail_count", hc->fail_count) &&
	     cJSON_AddNumberToObject(o, "rise_count", hc->rise_count) &&
	     cJSON_AddNumberToObject(o, "port", hc->port) &&
	     (!hc->http_path || cJSON_AddStringToObject(o, "http_path", hc->http_path));
	if (ok && hc->n_expected_status) {
		st = cJSON_AddArrayToObject(o, "http_expected_status");
		ok = st != NULL;
		for (size_t i = 0; ok && i < hc->n_expected_status && i < HC_MAX_STATUS; i++) {
			cJSON *n = cJSON_CreateNumber(hc->expected_status[i]);

			ok = n && cJSON_AddItemToArray(st, n);
		}
	}
	ok = ok && (!hc->host || cJSON_AddStringToObject(o, "host", hc->host)) &&
	     (!hc->expect_body || cJSON_AddStringToObject(o, "expect_body", hc->expect_body)) &&
	     cJSON_AddBoolToObject(o, "tls_verify", hc->tls_verify) &&
	     (!hc->udp_payload || cJSON_AddStringToObject(o, "udp_payload", hc->udp_payload)) &&
	     (!hc->udp_expect || cJSON_AddStringToObject(o, "udp_expect", hc->udp_expect)) &&
	     cJSON_AddNumberToObject(o, "min_healthy", hc->min_healthy);
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* With no health check a backend counts as up (see backend_effective_weight), so say so. */
cJSON *backend_to_json(const struct lb *lb, const struct backend *b, enum lb_json_view view)
{
	enum backend_health h = b->health;
	cJSON *o = cJSON_CreateObject();
	char ip[IP_ADDR_STRLEN];
	bool ok;

	if (!o)
		return NULL;
	if (lb && lb->hc.type == HC_NONE)
		h = BACKEND_HEALTH_UP;
	ok = cJSON_AddStringToObject(o, "uuid", b->uuid) &&
	     cJSON_AddStringToObject(o, "ip", ip_addr_str(&b->ip, ip)) &&
	     cJSON_AddNumberToObject(o, "port", b->port) &&
	     cJSON_AddNumberToObject(o, "weight", b->weight) &&
	     cJSON_AddStringToObject(o, "type", backend_type_name(b->type)) &&
	     cJSON_AddStringToObject(o, "state", b->drained ? "drained" : "enabled") &&
	     (view != LB_VIEW_API || cJSON_AddStringToObject(o, "health", backend_health_name(h)));
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

cJSON *lb_to_json(const struct lb *lb, enum lb_json_view view)
{
	cJSON *o = cJSON_CreateObject(), *hc, *arr;
	char ip[IP_ADDR_STRLEN], d[24];
	bool ok;

	if (!o)
		return NULL;
	ip_addr_str(&lb->vip, ip);
	ok = cJSON_AddStringToObject(o, "uuid", lb->uuid) &&
	     cJSON_AddStringToObject(o, "name", lb->name ? lb->name : "") &&
	     cJSON_AddStringToObject(o, "vip", ip) && cJSON_AddStringToObject(o, "eip", ip) &&
	     cJSON_AddNumberToObject(o, "port", lb->port) &&
	     cJSON_AddStringToObject(o, "protocol", lb_protocol_name(lb->protocol)) &&
	     cJSON_AddStringToObject(o, "scheduler", lb_scheduler_name(lb->scheduler)) &&
	     cJSON_AddStringToObject(o, "forwarding", lb_forwarding_name(lb->forwarding)) &&
	     (!lb->persistence_ms ||
	      cJSON_AddStringToObject(o, "persistence", duration_str(lb->persistence_ms, d))) &&
	     (view != LB_VIEW_API ||
	      cJSON_AddStringToObject(o, "status", lb_status_name(lb->status))) &&
	     (view != LB_VIEW_STATE ||
	      cJSON_AddStringToObject(o, "origin",
				      lb->origin == LB_ORIGIN_CONFIG ? "config" : "api"));
	hc = ok ? hc_to_json(&lb->hc) : NULL;
	if (!hc || !cJSON_AddItemToObject(o, "health_check", hc)) {
		cJSON_Delete(hc);
		cJSON_Delete(o);
		return NULL;
	}
	arr = cJSON_AddArrayToObject(o, "backends");
	ok = arr != NULL;
	for (size_t i = 0; ok && i < lb->n_backends; i++) {
		cJSON *b = backend_to_json(lb, &lb->backends[i], view);

		ok = b && cJSON_AddItemToArray(arr, b);
		if (!ok)
			cJSON_Delete(b);
	}
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}
