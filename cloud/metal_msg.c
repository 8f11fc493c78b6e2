/*
 * Equinix Metal messages. Everything that comes from the API is checked before it is used:
 * ids go into URL paths, codes and hostnames into tags, addresses and the MD5 password into
 * BIRD's configuration, messages into the log. A field of the wrong type or out of range is an
 * error naming it; a field vipd does not read is ignored, so the API can grow.
 */
#include "metal_msg.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "../src/lb_json.h"
#include "../src/util.h"

#define MPATH_MAX 160
#define SHOWN_MAX 80
#define MAX_AS 4294967295ULL

/* --- field paths and quoting ------------------------------------------------------------ */

/* A path that did not fit ends in "..."; it still says where to look. */
static const char *mpath_done(char *out, int r)
{
	if (r < 0 || r >= MPATH_MAX)
		memcpy(out + MPATH_MAX - 4, "...", 4);
	return out;
}

static const char *mpath(char *out, const char *prefix, const char *key)
{
	return mpath_done(out, snprintf(out, MPATH_MAX, "%s%s%s", prefix, prefix[0] ? "." : "",
					key));
}

static const char *mpath_i(char *out, const char *prefix, size_t i)
{
	return mpath_done(out, snprintf(out, MPATH_MAX, "%s[%zu]", prefix, i));
}

/* s as a quoted, escaped, shortened string for a message: API text never reaches the log raw. */
static const char *shown(const char *s, char *buf)
{
	size_t o = 0;

	buf[o++] = '"';
	for (size_t i = 0; s[i]; i++) {
		unsigned char c = (unsigned char)s[i];

		if (o > SHOWN_MAX - 9) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		if (c == '"' || c == '\\') {
			buf[o++] = '\\';
			buf[o++] = (char)c;
		} else if (c < 0x20 || c >= 0x7f) {
			o += (size_t)snprintf(buf + o, SHOWN_MAX - o, "\\x%02x", c);
		} else {
			buf[o++] = (char)c;
		}
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

/* --- reading JSON members ------------------------------------------------------------------ */

static bool absent(const cJSON *v)
{
	return !v || cJSON_IsNull(v);
}

static const cJSON *member(const cJSON *obj, const char *key)
{
	return cJSON_GetObjectItemCaseSensitive(obj, key);
}

/* Copies string member key into out[cap]. 0; 1 when absent or null and not required; -EINVAL. */
static int get_str(const cJSON *obj, const char *key, const char *prefix, bool required,
		   char *out, size_t cap, char *err, size_t errlen)
{
	const cJSON *v = member(obj, key);
	char p[MPATH_MAX];
	size_t n;

	out[0] = '\0';
	if (absent(v)) {
		if (!required)
			return 1;
		errbuf_printf(err, errlen, "%s: missing", mpath(p, prefix, key));
		return -EINVAL;
	}
	if (!cJSON_IsString(v) || !v->valuestring) {
		errbuf_printf(err, errlen, "%s: must be a string, not %s", mpath(p, prefix, key),
			      json_type_name(v));
		return -EINVAL;
	}
	n = strlen(v->valuestring);
	if (n >= cap) {
		errbuf_printf(err, errlen, "%s: longer than %zu characters", mpath(p, prefix, key),
			      cap - 1);
		return -EINVAL;
	}
	memcpy(out, v->valuestring, n + 1);
	return 0;
}

/* A boolean member; absent or null gives def. */
static int get_bool(const cJSON *obj, const char *key, const char *prefix, bool def, bool *out,
		    char *err, size_t errlen)
{
	const cJSON *v = member(obj, key);
	char p[MPATH_MAX];

	if (absent(v)) {
		*out = def;
		return 0;
	}
	if (!cJSON_IsBool(v)) {
		errbuf_printf(err, errlen, "%s: must be true or false, not %s",
			      mpath(p, prefix, key), json_type_name(v));
		return -EINVAL;
	}
	*out = cJSON_IsTrue(v);
	return 0;
}

/* An integer member in lo..hi. 0; 1 when absent or null and not required; -EINVAL. */
static int get_uint(const cJSON *obj, const char *key, const char *prefix, bool required,
		    uint64_t lo, uint64_t hi, uint64_t *out, char *err, size_t errlen)
{
	const cJSON *v = member(obj, key);
	char p[MPATH_MAX];
	double d;

	if (absent(v)) {
		if (!required)
			return 1;
		errbuf_printf(err, errlen, "%s: missing", mpath(p, prefix, key));
		return -EINVAL;
	}
	if (!cJSON_IsNumber(v)) {
		errbuf_printf(err, errlen, "%s: must be a number, not %s", mpath(p, prefix, key),
			      json_type_name(v));
		return -EINVAL;
	}
	d = v->valuedouble;
	if (!(d >= (double)lo && d <= (double)hi) || (double)(uint64_t)d != d) {
		errbuf_printf(err, errlen, "%s: must be an integer %llu..%llu",
			      mpath(p, prefix, key), (unsigned long long)lo,
			      (unsigned long long)hi);
		return -EINVAL;
	}
	*out = (uint64_t)d;
	return 0;
}

/* --- what the API's strings may hold ---------------------------------------------------- */

bool metal_id_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= METAL_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-')
			return false;
	return true;
}

static bool code_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= METAL_CODE_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_')
			return false;
	return true;
}

static bool hostname_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= METAL_HOSTNAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("-_.", s[i]))
			return false;
	return true;
}

static void lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

/* A metro or facility: {"code": "ny", ...} in the API, a bare "ny" in the metadata. */
static int get_code(const cJSON *obj, const char *key, const char *prefix, char *out,
		    char *err, size_t errlen)
{
	const cJSON *v = member(obj, key);
	char p[MPATH_MAX], q[SHOWN_MAX];
	int r;

	out[0] = '\0';
	if (absent(v))
		return 0;
	if (cJSON_IsObject(v))
		r = get_str(v, "code", mpath(p, prefix, key), false, out, METAL_CODE_MAX, err,
			    errlen);
	else
		r = get_str(obj, key, prefix, false, out, METAL_CODE_MAX, err, errlen);
	if (r < 0)
		return r;
	if (r == 0 && !code_ok(out)) {
		errbuf_printf(err, errlen, "%s: not a location code: %s", mpath(p, prefix, key),
			      shown(out, q));
		out[0] = '\0';
		return -EINVAL;
	}
	lower(out);
	return 0;
}

/* --- building the reservation request ------------------------------------------------------ */

int metal_reserve_body(const struct metal_reserve *r, char **out)
{
	char uuid[UUID_STR_LEN], loc[METAL_CODE_MAX], *tag = NULL, *details = NULL;
	const char *loc_key;
	cJSON *o, *tags;
	size_t tag_len, details_len;
	int err = -ENOMEM;

	*out = NULL;
	if (!r->lb_uuid || !uuid_is_valid(r->lb_uuid))
		return -EINVAL;
	if (!!(r->metro && r->metro[0]) == !!(r->facility && r->facility[0]))
		return -EINVAL;
	loc_key = r->metro && r->metro[0] ? "metro" : "facility";
	if (!code_ok(r->metro && r->metro[0] ? r->metro : r->facility))
		return -EINVAL;
	if (r->hostname && !hostname_ok(r->hostname))
		return -EINVAL;
	memcpy(uuid, r->lb_uuid, sizeof(uuid));
	lower(uuid);
	snprintf(loc, sizeof(loc), "%s", r->metro && r->metro[0] ? r->metro : r->facility);
	lower(loc);

	o = cJSON_CreateObject();
	tag_len = sizeof(METAL_TAG_HOST) + (r->hostname ? strlen(r->hostname) : 0) + UUID_STR_LEN;
	tag = malloc(tag_len);
	details_len = sizeof("vipd load balancer  ()") + UUID_STR_LEN +
		      (r->lb_name ? strlen(r->lb_name) : 0);
	details = malloc(details_len);
	if (!o || !tag || !details)
		goto out;
	if (r->lb_name)
		snprintf(details, details_len, "vipd load balancer %s (%s)", uuid, r->lb_name);
	else
		snprintf(details, details_len, "vipd load balancer %s", uuid);
	/* The cJSON_Add* helpers free what they could not add. */
	if (!cJSON_AddStringToObject(o, "type", "public_ipv4") ||
	    !cJSON_AddNumberToObject(o, "quantity", 1) ||
	    !cJSON_AddStringToObject(o, loc_key, loc) ||
	    !cJSON_AddTrueToObject(o, "fail_on_approval_required") ||
	    !(tags = cJSON_AddArrayToObject(o, "tags")) ||
	    !cJSON_AddItemToArray(tags, cJSON_CreateString(METAL_TAG)))
		goto out;
	snprintf(tag, tag_len, "%s%s", METAL_TAG_LB, uuid);
	if (!cJSON_AddItemToArray(tags, cJSON_CreateString(tag)))
		goto out;
	if (r->hostname) {
		snprintf(tag, tag_len, "%s%s", METAL_TAG_HOST, r->hostname);
		if (!cJSON_AddItemToArray(tags, cJSON_CreateString(tag)))
			goto out;
	}
	if (!cJSON_AddStringToObject(o, "details", details) ||
	    (r->comments && !cJSON_AddStringToObject(o, "comments", r->comments)))
		goto out;
	*out = cJSON_PrintUnformatted(o);
	if (*out)
		err = 0;
out:
	cJSON_Delete(o);
	free(tag);
	free(details);
	return err;
}

/* --- reservations -------------------------------------------------------------------------- */

static bool tag_is_vipd(const char *t)
{
	return strcmp(t, METAL_TAG) == 0 || strncmp(t, METAL_TAG ":", sizeof(METAL_TAG)) == 0;
}

/* Whether obj's tags mark it as vipd's; malformed tags do not. */
static bool tagged_vipd(const cJSON *obj)
{
	const cJSON *t, *tags = member(obj, "tags");

	if (!cJSON_IsArray(tags))
		return false;
	cJSON_ArrayForEach(t, tags)
		if (cJSON_IsString(t) && t->valuestring && tag_is_vipd(t->valuestring))
			return true;
	return false;
}

static int tags_parse(const cJSON *obj, const char *prefix, struct metal_ip *ip, char *err,
		      size_t errlen)
{
	const cJSON *tags = member(obj, "tags"), *t;
	char p[MPATH_MAX], q[SHOWN_MAX];
	size_t i = 0;

	if (absent(tags))
		return 0;
	if (!cJSON_IsArray(tags)) {
		errbuf_printf(err, errlen, "%s: must be an array, not %s",
			      mpath(p, prefix, "tags"), json_type_name(tags));
		return -EINVAL;
	}
	cJSON_ArrayForEach(t, tags) {
		const char *s = cJSON_IsString(t) ? t->valuestring : NULL;
		char tp[MPATH_MAX];

		mpath_i(tp, mpath(p, prefix, "tags"), i++);
		if (!s) {
			errbuf_printf(err, errlen, "%s: must be a string, not %s", tp,
				      json_type_name(t));
			return -EINVAL;
		}
		if (!tag_is_vipd(s))
			continue;
		ip->vipd = true;
		if (strncmp(s, METAL_TAG_LB, strlen(METAL_TAG_LB)) == 0) {
			char uuid[UUID_STR_LEN];
			const char *v = s + strlen(METAL_TAG_LB);

			if (strlen(v) != UUID_STR_LEN - 1 || !uuid_is_valid(v)) {
				errbuf_printf(err, errlen, "%s: %s does not name a load balancer uuid",
					      tp, shown(s, q));
				return -EINVAL;
			}
			memcpy(uuid, v, UUID_STR_LEN);
			lower(uuid);
			if (ip->lb_uuid[0] && strcmp(ip->lb_uuid, uuid) != 0) {
				errbuf_printf(err, errlen, "%s: a second load balancer (%s and %s)",
					      tp, ip->lb_uuid, uuid);
				return -EINVAL;
			}
			memcpy(ip->lb_uuid, uuid, UUID_STR_LEN);
		} else if (strncmp(s, METAL_TAG_HOST, strlen(METAL_TAG_HOST)) == 0 &&
			   hostname_ok(s + strlen(METAL_TAG_HOST))) {
			/* Information only: a host tag vipd did not write is left out. */
			snprintf(ip->host, sizeof(ip->host), "%s", s + strlen(METAL_TAG_HOST));
		}
	}
	return 0;
}

static int ip_from_json(const cJSON *o, const char *prefix, struct metal_ip *ip, char *err,
			size_t errlen)
{
	static const struct {
		const char *name;
		enum metal_ip_state state;
	} states[] = {
		{ "created", METAL_IP_CREATED },
		{ "pending", METAL_IP_PENDING },
		{ "denied", METAL_IP_DENIED },
	};
	char p[MPATH_MAX], q[SHOWN_MAX], type[32], state[32], addr[IP_ADDR_STRLEN + 8];
	uint64_t x;
	bool pub;
	int r;

	memset(ip, 0, sizeof(*ip));
	if (!cJSON_IsObject(o)) {
		errbuf_printf(err, errlen, "%s: must be an object, not %s",
			      prefix[0] ? prefix : "the document", json_type_name(o));
		return -EINVAL;
	}
	if ((r = get_str(o, "id", prefix, true, ip->id, sizeof(ip->id), err, errlen)))
		return r;
	if (!metal_id_ok(ip->id)) {
		errbuf_printf(err, errlen, "%s: not a Metal id: %s", mpath(p, prefix, "id"),
			      shown(ip->id, q));
		return -EINVAL;
	}
	if ((r = get_str(o, "type", prefix, true, type, sizeof(type), err, errlen)))
		return r;
	if (strcmp(type, "public_ipv4") && strcmp(type, "global_ipv4")) {
		errbuf_printf(err, errlen, "%s: vipd uses public_ipv4 and global_ipv4 "
			      "reservations, not %s", mpath(p, prefix, "type"), shown(type, q));
		return -EINVAL;
	}
	ip->global = strcmp(type, "global_ipv4") == 0;
	if ((r = get_str(o, "state", prefix, true, state, sizeof(state), err, errlen)))
		return r;
	ip->state = METAL_IP_OTHER;
	for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
		if (strcmp(state, states[i].name) == 0)
			ip->state = states[i].state;
	if ((r = tags_parse(o, prefix, ip, err, errlen)) ||
	    (r = get_code(o, "metro", prefix, ip->metro, err, errlen)) ||
	    (r = get_code(o, "facility", prefix, ip->facility, err, errlen)))
		return r;
	r = get_str(o, "created_at", prefix, false, ip->created_at, sizeof(ip->created_at), err,
		    errlen);
	if (r < 0)
		return r;
	for (size_t i = 0; ip->created_at[i]; i++) {
		if (ip->created_at[i] < 0x21 || ip->created_at[i] > 0x7e) {
			errbuf_printf(err, errlen, "%s: not a time: %s",
				      mpath(p, prefix, "created_at"), shown(ip->created_at, q));
			return -EINVAL;
		}
	}
	if (ip->state != METAL_IP_CREATED)
		return 0;

	if ((r = get_uint(o, "address_family", prefix, true, 0, 255, &x, err, errlen)))
		return r;
	if (x != 4) {
		errbuf_printf(err, errlen, "%s: must be 4 (vipd reserves IPv4 addresses), not %llu",
			      mpath(p, prefix, "address_family"), (unsigned long long)x);
		return -EINVAL;
	}
	if ((r = get_uint(o, "cidr", prefix, true, 0, 128, &x, err, errlen)))
		return r;
	if (x != 32) {
		errbuf_printf(err, errlen, "%s: must be 32 (vipd reserves single addresses), "
			      "not %llu", mpath(p, prefix, "cidr"), (unsigned long long)x);
		return -EINVAL;
	}
	if ((r = get_bool(o, "public", prefix, false, &pub, err, errlen)))
		return r;
	if (!pub) {
		errbuf_printf(err, errlen, "%s: must be true (vipd announces public addresses)",
			      mpath(p, prefix, "public"));
		return -EINVAL;
	}
	if ((r = get_str(o, "address", prefix, true, addr, sizeof(addr), err, errlen)))
		return r;
	if (ip_addr_parse(addr, &ip->address) || ip->address.family != AF_INET) {
		errbuf_printf(err, errlen, "%s: not an IPv4 address: %s",
			      mpath(p, prefix, "address"), shown(addr, q));
		memset(&ip->address, 0, sizeof(ip->address));
		return -EINVAL;
	}
	return 0;
}

int metal_ip_parse(const char *text, size_t len, struct metal_ip *out, char *err, size_t errlen)
{
	cJSON *root = json_parse_doc(text, len, err, errlen);
	int r;

	memset(out, 0, sizeof(*out));
	if (!root)
		return -EINVAL;
	r = ip_from_json(root, "", out, err, errlen);
	cJSON_Delete(root);
	if (r)
		memset(out, 0, sizeof(*out));
	else if (err && errlen)
		err[0] = '\0';
	return r;
}

/* A path on the API's host: no scheme, no other host ("//h/"), nothing to escape. */
static bool href_ok(const char *s)
{
	if (s[0] != '/' || s[1] == '/')
		return false;
	for (; *s; s++)
		if (*s < 0x21 || *s > 0x7e || *s == '\\')
			return false;
	return true;
}

static int page_parse(const cJSON *root, struct metal_page *page, char *err, size_t errlen)
{
	const cJSON *meta = member(root, "meta"), *next;
	struct metal_page pg;
	char q[SHOWN_MAX];
	uint64_t x;
	int r;

	memset(&pg, 0, sizeof(pg));
	if (absent(meta))
		goto done;
	if (!cJSON_IsObject(meta)) {
		errbuf_printf(err, errlen, "meta: must be an object, not %s", json_type_name(meta));
		return -EINVAL;
	}
	if ((r = get_uint(meta, "current_page", "meta", false, 0, UINT32_MAX, &x, err,
			  errlen)) < 0)
		return r;
	pg.current = r ? 0 : (unsigned long)x;
	if ((r = get_uint(meta, "last_page", "meta", false, 0, UINT32_MAX, &x, err, errlen)) < 0)
		return r;
	pg.last = r ? 0 : (unsigned long)x;
	if ((r = get_uint(meta, "total", "meta", false, 0, UINT32_MAX, &x, err, errlen)) < 0)
		return r;
	pg.total = r ? 0 : (unsigned long)x;
	next = member(meta, "next");
	if (!absent(next)) {
		if (!cJSON_IsObject(next)) {
			errbuf_printf(err, errlen, "meta.next: must be an object, not %s",
				      json_type_name(next));
			return -EINVAL;
		}
		if ((r = get_str(next, "href", "meta.next", true, pg.next, sizeof(pg.next), err,
				 errlen)))
			return r;
		if (!href_ok(pg.next)) {
			errbuf_printf(err, errlen, "meta.next.href: not a path on the API's host: %s",
				      shown(pg.next, q));
			return -EINVAL;
		}
	}
done:
	if (page)
		*page = pg;
	return 0;
}

int metal_page_next_url(const char *base_url, const struct metal_page *p, char *out,
			size_t outlen)
{
	const char *host = strstr(base_url, "://"), *path;
	size_t origin, plen;
	int n;

	if (!p->next[0])
		return -ENOENT;
	if (!host || host == base_url || !host[3] || host[3] == '/')
		return -EINVAL;
	path = strchr(host + 3, '/');
	origin = path ? (size_t)(path - base_url) : strlen(base_url);
	plen = path ? strlen(path) : 0;
	while (plen && path[plen - 1] == '/')
		plen--;
	/* The API writes next either with its base path ("/metal/v1/projects/...") or without. */
	if (plen && strncmp(p->next, path, plen) == 0 &&
	    (p->next[plen] == '/' || p->next[plen] == '?' || p->next[plen] == '\0'))
		plen = 0;
	n = snprintf(out, outlen, "%.*s%.*s%s", (int)origin, base_url, (int)plen,
		     path ? path : "", p->next);
	if (n < 0 || (size_t)n >= outlen)
		return -ENAMETOOLONG;
	return 0;
}

/*
 * Room for entry n of size each in items[*cap]: the array, moved if it had to grow; NULL with
 * *r set (-E2BIG past METAL_LIST_MAX entries, -ENOMEM), and then items is unchanged.
 */
static void *grow(void *items, size_t *cap, size_t n, size_t each, int *r)
{
	void *p;

	if (n >= METAL_LIST_MAX) {
		*r = -E2BIG;
		return NULL;
	}
	p = array_grow(items, cap, n, each, 16);
	if (!p)
		*r = -ENOMEM;
	return p;
}

/* The document's root object with its array member key, or NULL with err set. */
static cJSON *doc_with_array(const char *text, size_t len, const char *key, const cJSON **arr,
			     char *err, size_t errlen)
{
	cJSON *root = json_parse_doc(text, len, err, errlen);

	if (!root)
		return NULL;
	if (!cJSON_IsObject(root)) {
		errbuf_printf(err, errlen, "the document must be an object, not %s",
			      json_type_name(root));
		cJSON_Delete(root);
		return NULL;
	}
	*arr = member(root, key);
	if (!cJSON_IsArray(*arr)) {
		if (absent(*arr))
			errbuf_printf(err, errlen, "%s: missing", key);
		else
			errbuf_printf(err, errlen, "%s: must be an array, not %s", key,
				      json_type_name(*arr));
		cJSON_Delete(root);
		return NULL;
	}
	return root;
}

int metal_ip_list_parse(const char *text, size_t len, struct metal_ip_list *l,
			struct metal_page *page, char *err, size_t errlen)
{
	const cJSON *arr, *e;
	cJSON *root = doc_with_array(text, len, "ip_addresses", &arr, err, errlen);
	size_t i = 0;
	int r = 0;

	if (!root)
		return -EINVAL;
	if ((r = page_parse(root, page, err, errlen)))
		goto out;
	cJSON_ArrayForEach(e, arr) {
		char p[MPATH_MAX], why[sizeof(l->bad)];
		struct metal_ip ip;
		void *grown;

		mpath_i(p, "ip_addresses", i++);
		if (!cJSON_IsObject(e)) {
			errbuf_printf(err, errlen, "%s: must be an object, not %s", p,
				      json_type_name(e));
			r = -EINVAL;
			goto out;
		}
		if (!tagged_vipd(e)) {
			l->n_other++;
			continue;
		}
		if (ip_from_json(e, p, &ip, why, sizeof(why))) {
			if (!l->n_bad++)
				snprintf(l->bad, sizeof(l->bad), "%s", why);
			continue;
		}
		if (!(grown = grow(l->ips, &l->cap, l->n, sizeof(*l->ips), &r))) {
			errbuf_printf(err, errlen, r == -E2BIG ? "ip_addresses: more than %d "
				      "reservations tagged for vipd" : "out of memory",
				      METAL_LIST_MAX);
			goto out;
		}
		l->ips = grown;
		l->ips[l->n++] = ip;
	}
	if (err && errlen)
		err[0] = '\0';
out:
	cJSON_Delete(root);
	return r;
}

void metal_ip_list_free(struct metal_ip_list *l)
{
	free(l->ips);
	memset(l, 0, sizeof(*l));
}

static bool ip_here(const struct metal_ip *ip, const char *metro, const char *facility)
{
	if (ip->global || (!metro && !facility))
		return true;
	/* Metal names the metro of a facility's reservation too: the facility decides. */
	if (ip->facility[0] && facility)
		return strcasecmp(ip->facility, facility) == 0;
	return ip->metro[0] && metro && strcasecmp(ip->metro, metro) == 0;
}

struct own_sort {
	const struct metal_ip *ips;
	const char *const *recorded;
	size_t n_recorded;
};

static bool is_recorded(const struct own_sort *s, const char *id)
{
	for (size_t i = 0; i < s->n_recorded; i++)
		if (s->recorded[i] && strcasecmp(s->recorded[i], id) == 0)
			return true;
	return false;
}

/* The winner of a load balancer sorts first: recorded, then earliest, then lowest id. */
static int own_cmp(const void *x, const void *y, void *arg)
{
	const struct own_sort *s = arg;
	const struct metal_ip *a = &s->ips[*(const size_t *)x], *b = &s->ips[*(const size_t *)y];
	int c = strcmp(a->lb_uuid, b->lb_uuid);
	bool ra, rb;

	if (c)
		return c;
	ra = is_recorded(s, a->id);
	rb = is_recorded(s, b->id);
	if (ra != rb)
		return ra ? -1 : 1;
	if (!a->created_at[0] != !b->created_at[0])
		return a->created_at[0] ? -1 : 1; /* an unknown time sorts last */
	if ((c = strcmp(a->created_at, b->created_at)))
		return c;
	return strcmp(a->id, b->id);
}

static int size_cmp(const void *x, const void *y)
{
	size_t a = *(const size_t *)x, b = *(const size_t *)y;

	return a < b ? -1 : a > b;
}

int metal_ip_list_own(const struct metal_ip_list *l, const char *metro, const char *facility,
		      const char *const *recorded, size_t n_recorded, struct metal_owned *out)
{
	struct own_sort s = { l->ips, recorded, n_recorded };
	size_t *cand = calloc(l->n + 1, sizeof(*cand)), n_cand = 0;

	memset(out, 0, sizeof(*out));
	out->own = calloc(l->n + 1, sizeof(*out->own));
	out->extra = calloc(l->n + 1, sizeof(*out->extra));
	if (!cand || !out->own || !out->extra) {
		free(cand);
		metal_owned_free(out);
		return -ENOMEM;
	}
	for (size_t i = 0; i < l->n; i++) {
		const struct metal_ip *ip = &l->ips[i];

		if (!ip->vipd || !ip_here(ip, metro, facility))
			continue;
		if (ip->state == METAL_IP_CREATED && ip->lb_uuid[0])
			cand[n_cand++] = i;
		else
			out->extra[out->n_extra++] = i;
	}
	qsort_r(cand, n_cand, sizeof(*cand), own_cmp, &s);
	for (size_t i = 0; i < n_cand; i++) {
		const struct metal_ip *ip = &l->ips[cand[i]];

		if (i && strcmp(ip->lb_uuid, l->ips[cand[i - 1]].lb_uuid) == 0) {
			out->extra[out->n_extra++] = cand[i];
			continue;
		}
		memcpy(out->own[out->n_own].lb_uuid, ip->lb_uuid, UUID_STR_LEN);
		out->own[out->n_own++].ip = cand[i];
	}
	qsort(out->extra, out->n_extra, sizeof(*out->extra), size_cmp);
	free(cand);
	return 0;
}

void metal_owned_free(struct metal_owned *o)
{
	free(o->own);
	free(o->extra);
	memset(o, 0, sizeof(*o));
}

static int own_key_cmp(const void *key, const void *e)
{
	return strcasecmp(key, ((const struct metal_own *)e)->lb_uuid);
}

const struct metal_own *metal_own_find(const struct metal_owned *o, const char *lb_uuid)
{
	/* The uuids are lowercase hex and '-', so strcasecmp orders them as strcmp did. */
	if (!o->n_own)
		return NULL;
	return bsearch(lb_uuid, o->own, o->n_own, sizeof(*o->own), own_key_cmp);
}

/* --- devices ------------------------------------------------------------------------------- */

int metal_device_list_parse(const char *text, size_t len, struct metal_device_list *l,
			    struct metal_page *page, char *err, size_t errlen)
{
	const cJSON *arr, *e;
	cJSON *root = doc_with_array(text, len, "devices", &arr, err, errlen);
	size_t i = 0;
	int r = 0;

	if (!root)
		return -EINVAL;
	if ((r = page_parse(root, page, err, errlen)))
		goto out;
	cJSON_ArrayForEach(e, arr) {
		char p[MPATH_MAX], q[SHOWN_MAX];
		struct metal_device d;
		void *grown;

		mpath_i(p, "devices", i++);
		if (!cJSON_IsObject(e)) {
			errbuf_printf(err, errlen, "%s: must be an object, not %s", p,
				      json_type_name(e));
			r = -EINVAL;
			goto out;
		}
		if ((r = get_str(e, "id", p, true, d.id, sizeof(d.id), err, errlen)))
			goto out;
		if (!metal_id_ok(d.id)) {
			errbuf_printf(err, errlen, "%s.id: not a Metal id: %s", p, shown(d.id, q));
			r = -EINVAL;
			goto out;
		}
		/* Other devices' hostnames are only compared, so any string will do. */
		if ((r = get_str(e, "hostname", p, false, d.hostname, sizeof(d.hostname), err,
				 errlen)) < 0)
			goto out;
		r = 0;
		if (!(grown = grow(l->devices, &l->cap, l->n, sizeof(*l->devices), &r))) {
			errbuf_printf(err, errlen, r == -E2BIG ? "devices: more than %d devices" :
				      "out of memory", METAL_LIST_MAX);
			goto out;
		}
		l->devices = grown;
		l->devices[l->n++] = d;
	}
	if (err && errlen)
		err[0] = '\0';
out:
	cJSON_Delete(root);
	return r;
}

void metal_device_list_free(struct metal_device_list *l)
{
	free(l->devices);
	memset(l, 0, sizeof(*l));
}

int metal_device_find(const struct metal_device_list *l, const char *hostname, size_t *index)
{
	int r = -ENOENT;

	for (size_t i = 0; i < l->n; i++) {
		if (!hostname[0] || strcasecmp(l->devices[i].hostname, hostname) != 0)
			continue;
		if (r == 0)
			return -EEXIST;
		*index = i;
		r = 0;
	}
	return r;
}

/* --- BGP neighbours ------------------------------------------------------------------------ */

/* Why a can not be this end or a peer of a session of family, or NULL. */
static const char *addr_problem(const struct ip_addr *a, int family, bool peer)
{
	static const uint8_t zero[16];

	if (a->family != family)
		return family == AF_INET ? "not an IPv4 address" : "not an IPv6 address";
	if (family == AF_INET) {
		uint32_t v = ntohl(a->v4.s_addr);

		if (v == 0)
			return "the unspecified address";
		if ((v >> 24) == 127)
			return "a loopback address";
		if ((v >> 28) == 0xe || v == 0xffffffffu)
			return "a multicast or broadcast address";
		return NULL;
	}
	if (!memcmp(a->bytes, zero, 16))
		return "the unspecified address";
	if (!memcmp(a->bytes, zero, 15) && a->bytes[15] == 1)
		return "the loopback address";
	if (a->bytes[0] == 0xff)
		return "a multicast address";
	if (peer && a->bytes[0] == 0xfe && (a->bytes[1] & 0xc0) == 0x80)
		return "link-local (BIRD would need the interface)";
	return NULL;
}

/* Whether a password can go between BIRD's quotes as it is (BIRD 2 strings have no escapes). */
static bool password_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > METAL_MD5_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e || s[i] == '"' || s[i] == '\\')
			return false;
	return true;
}

/* What metal_bgp_parse promises of a neighbour; also checked before anything is rendered. */
static int neighbor_check(const struct metal_bgp_neighbor *nb, const char *prefix, char *err,
			  size_t errlen)
{
	char p[MPATH_MAX], a[IP_ADDR_STRLEN];
	const char *why;

	if (nb->family != AF_INET && nb->family != AF_INET6) {
		errbuf_printf(err, errlen, "%s: must be 4 or 6",
			      mpath(p, prefix, "address_family"));
		return -EINVAL;
	}
	if (nb->customer_as == 0 || nb->peer_as == 0) {
		errbuf_printf(err, errlen, "%s: must be 1..4294967295",
			      mpath(p, prefix, nb->customer_as ? "peer_as" : "customer_as"));
		return -EINVAL;
	}
	if ((why = addr_problem(&nb->customer_ip, nb->family, false))) {
		errbuf_printf(err, errlen, "%s: %s%s%s", mpath(p, prefix, "customer_ip"),
			      ip_addr_is_set(&nb->customer_ip) ?
				      ip_addr_str(&nb->customer_ip, a) : "",
			      ip_addr_is_set(&nb->customer_ip) ? " is " : "", why);
		return -EINVAL;
	}
	if (nb->n_peer_ips == 0 || nb->n_peer_ips > METAL_BGP_MAX_PEERS) {
		errbuf_printf(err, errlen, "%s: must list 1..%d addresses",
			      mpath(p, prefix, "peer_ips"), METAL_BGP_MAX_PEERS);
		return -EINVAL;
	}
	for (size_t i = 0; i < nb->n_peer_ips; i++) {
		char pp[MPATH_MAX];

		if ((why = addr_problem(&nb->peer_ips[i], nb->family, true))) {
			errbuf_printf(err, errlen, "%s: %s%s%s",
				      mpath_i(pp, mpath(p, prefix, "peer_ips"), i),
				      ip_addr_is_set(&nb->peer_ips[i]) ?
					      ip_addr_str(&nb->peer_ips[i], a) : "",
				      ip_addr_is_set(&nb->peer_ips[i]) ? " is " : "", why);
			return -EINVAL;
		}
	}
	if (nb->md5_enabled && !password_ok(nb->md5_password)) {
		errbuf_printf(err, errlen, "%s: must be 1..%d printable ASCII characters other "
			      "than '\"' and '\\' (BIRD's configuration cannot hold others)",
			      mpath(p, prefix, "md5_password"), METAL_MD5_MAX);
		return -EINVAL;
	}
	return 0;
}

/* An address member of an object or an array element; family is checked by neighbor_check. */
static int parse_addr(const cJSON *v, const char *path, struct ip_addr *out, char *err,
		      size_t errlen)
{
	char q[SHOWN_MAX];

	memset(out, 0, sizeof(*out));
	if (!cJSON_IsString(v) || !v->valuestring) {
		errbuf_printf(err, errlen, "%s: %s", path, absent(v) ? "missing" : "must be a string");
		return -EINVAL;
	}
	if (ip_addr_parse(v->valuestring, out)) {
		errbuf_printf(err, errlen, "%s: not an IP address: %s", path,
			      shown(v->valuestring, q));
		return -EINVAL;
	}
	return 0;
}

static int parse_prefix(const char *s, struct metal_route *rt)
{
	char a[IP_ADDR_STRLEN], *end;
	const char *slash = strchr(s, '/');
	unsigned long len;

	if (!slash || (size_t)(slash - s) >= sizeof(a) || !isdigit((unsigned char)slash[1]))
		return -EINVAL;
	memcpy(a, s, (size_t)(slash - s));
	a[slash - s] = '\0';
	if (ip_addr_parse(a, &rt->net))
		return -EINVAL;
	errno = 0;
	len = strtoul(slash + 1, &end, 10);
	if (*end || errno || len > (rt->net.family == AF_INET ? 32u : 128u))
		return -EINVAL;
	rt->len = (uint8_t)len;
	return 0;
}

static int routes_parse(const cJSON *obj, const char *key, const char *prefix,
			struct metal_route **out, size_t *n, char *err, size_t errlen)
{
	const cJSON *arr = member(obj, key), *e;
	char p[MPATH_MAX], q[SHOWN_MAX];
	size_t i = 0, cnt;

	*out = NULL;
	*n = 0;
	if (absent(arr))
		return 0;
	mpath(p, prefix, key);
	if (!cJSON_IsArray(arr)) {
		errbuf_printf(err, errlen, "%s: must be an array, not %s", p, json_type_name(arr));
		return -EINVAL;
	}
	cnt = (size_t)cJSON_GetArraySize(arr);
	if (cnt > METAL_BGP_MAX_ROUTES) {
		errbuf_printf(err, errlen, "%s: more than %d routes", p, METAL_BGP_MAX_ROUTES);
		return -E2BIG;
	}
	if (!cnt)
		return 0;
	*out = calloc(cnt, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	cJSON_ArrayForEach(e, arr) {
		struct metal_route *rt = &(*out)[i];
		char ep[MPATH_MAX], route[2 * IP_ADDR_STRLEN];
		int r;

		mpath_i(ep, p, i++);
		if (!cJSON_IsObject(e)) {
			errbuf_printf(err, errlen, "%s: must be an object, not %s", ep,
				      json_type_name(e));
			return -EINVAL;
		}
		if ((r = get_str(e, "route", ep, true, route, sizeof(route), err, errlen)) ||
		    (r = get_bool(e, "exact", ep, false, &rt->exact, err, errlen)))
			return r;
		if (parse_prefix(route, rt)) {
			errbuf_printf(err, errlen, "%s.route: not a prefix: %s", ep, shown(route, q));
			return -EINVAL;
		}
		*n = i;
	}
	return 0;
}

static int neighbor_parse(const cJSON *o, const char *prefix, struct metal_bgp_neighbor *nb,
			  char *err, size_t errlen)
{
	const cJSON *peers, *e;
	char p[MPATH_MAX];
	uint64_t x;
	size_t i = 0;
	int r;

	if (!cJSON_IsObject(o)) {
		errbuf_printf(err, errlen, "%s: must be an object, not %s", prefix,
			      json_type_name(o));
		return -EINVAL;
	}
	if ((r = get_uint(o, "address_family", prefix, true, 0, 255, &x, err, errlen)))
		return r;
	if (x != 4 && x != 6) {
		errbuf_printf(err, errlen, "%s: must be 4 or 6, not %llu",
			      mpath(p, prefix, "address_family"), (unsigned long long)x);
		return -EINVAL;
	}
	nb->family = x == 4 ? AF_INET : AF_INET6;
	if ((r = get_uint(o, "customer_as", prefix, true, 1, MAX_AS, &x, err, errlen)))
		return r;
	nb->customer_as = (uint32_t)x;
	if ((r = get_uint(o, "peer_as", prefix, true, 1, MAX_AS, &x, err, errlen)))
		return r;
	nb->peer_as = (uint32_t)x;
	if ((r = parse_addr(member(o, "customer_ip"), mpath(p, prefix, "customer_ip"),
			    &nb->customer_ip, err, errlen)))
		return r;
	peers = member(o, "peer_ips");
	mpath(p, prefix, "peer_ips");
	if (!cJSON_IsArray(peers)) {
		errbuf_printf(err, errlen, "%s: %s", p, absent(peers) ? "missing" :
			      "must be an array of addresses");
		return -EINVAL;
	}
	if (cJSON_GetArraySize(peers) > METAL_BGP_MAX_PEERS) {
		errbuf_printf(err, errlen, "%s: more than %d addresses", p, METAL_BGP_MAX_PEERS);
		return -E2BIG;
	}
	cJSON_ArrayForEach(e, peers) {
		char ep[MPATH_MAX];

		if ((r = parse_addr(e, mpath_i(ep, p, i), &nb->peer_ips[i], err, errlen)))
			return r;
		nb->n_peer_ips = ++i;
	}
	if ((r = get_bool(o, "multihop", prefix, false, &nb->multihop, err, errlen)) ||
	    (r = get_bool(o, "md5_enabled", prefix, false, &nb->md5_enabled, err, errlen)))
		return r;
	/* The password only counts when enabled (it is null otherwise); never quote it. */
	if (nb->md5_enabled &&
	    (r = get_str(o, "md5_password", prefix, true, nb->md5_password,
			 sizeof(nb->md5_password), err, errlen)))
		return r;
	if ((r = routes_parse(o, "routes_in", prefix, &nb->routes_in, &nb->n_routes_in, err,
			      errlen)) ||
	    (r = routes_parse(o, "routes_out", prefix, &nb->routes_out, &nb->n_routes_out, err,
			      errlen)))
		return r;
	return neighbor_check(nb, prefix, err, errlen);
}

void metal_bgp_free(struct metal_bgp *b)
{
	for (size_t i = 0; b->nb && i < b->n; i++) {
		free(b->nb[i].routes_in);
		free(b->nb[i].routes_out);
		explicit_bzero(b->nb[i].md5_password, sizeof(b->nb[i].md5_password));
	}
	free(b->nb);
	memset(b, 0, sizeof(*b));
}

/* The bgp_neighbors array arr (already known to be one) into out. */
static int bgp_from_array(const cJSON *arr, struct metal_bgp *out, char *err, size_t errlen)
{
	size_t n = (size_t)cJSON_GetArraySize(arr), i = 0;
	const cJSON *e;

	memset(out, 0, sizeof(*out));
	if (n > METAL_BGP_MAX_NEIGHBORS) {
		errbuf_printf(err, errlen, "bgp_neighbors: more than %d neighbours",
			      METAL_BGP_MAX_NEIGHBORS);
		return -E2BIG;
	}
	if (!n)
		return 0;
	out->nb = calloc(n, sizeof(*out->nb));
	if (!out->nb)
		return -ENOMEM;
	out->n = n;
	cJSON_ArrayForEach(e, arr) {
		char p[MPATH_MAX];
		int r = neighbor_parse(e, mpath_i(p, "bgp_neighbors", i), &out->nb[i], err,
				       errlen);

		i++;
		if (r) {
			metal_bgp_free(out);
			return r;
		}
	}
	return 0;
}

int metal_bgp_parse(const char *text, size_t len, struct metal_bgp *out, char *err,
		    size_t errlen)
{
	const cJSON *arr;
	cJSON *root = doc_with_array(text, len, "bgp_neighbors", &arr, err, errlen);
	int r;

	memset(out, 0, sizeof(*out));
	if (!root)
		return -EINVAL;
	r = bgp_from_array(arr, out, err, errlen);
	cJSON_Delete(root);
	if (!r && err && errlen)
		err[0] = '\0';
	return r;
}

/* --- the metadata service ------------------------------------------------------------------ */

static int address_parse(const cJSON *o, const char *prefix, struct metal_address *a,
			 char *err, size_t errlen)
{
	char p[MPATH_MAX];
	uint64_t fam = 0, cidr = 0;
	int r;

	memset(a, 0, sizeof(*a));
	if (!cJSON_IsObject(o)) {
		errbuf_printf(err, errlen, "%s: must be an object, not %s", prefix,
			      json_type_name(o));
		return -EINVAL;
	}
	if ((r = get_uint(o, "address_family", prefix, true, 4, 6, &fam, err, errlen)) ||
	    (r = get_uint(o, "cidr", prefix, true, 0, fam == 4 ? 32 : 128, &cidr, err, errlen)) ||
	    (r = get_bool(o, "public", prefix, false, &a->public, err, errlen)) ||
	    (r = get_bool(o, "management", prefix, false, &a->management, err, errlen)) ||
	    (r = parse_addr(member(o, "address"), mpath(p, prefix, "address"), &a->address, err,
			    errlen)))
		return r;
	a->cidr = (uint8_t)cidr;
	if (a->address.family != (fam == 4 ? AF_INET : AF_INET6)) {
		errbuf_printf(err, errlen, "%s: not of address_family %llu", p,
			      (unsigned long long)fam);
		return -EINVAL;
	}
	if (absent(member(o, "gateway")))
		return 0;
	if ((r = parse_addr(member(o, "gateway"), mpath(p, prefix, "gateway"), &a->gateway, err,
			    errlen)))
		return r;
	if (a->gateway.family != a->address.family) {
		errbuf_printf(err, errlen, "%s: not of address_family %llu", p,
			      (unsigned long long)fam);
		return -EINVAL;
	}
	return 0;
}

static int addresses_parse(const cJSON *root, struct metal_metadata *m, char *err,
			   size_t errlen)
{
	const cJSON *net = member(root, "network"), *arr, *e;
	size_t i = 0;

	if (absent(net))
		return 0;
	if (!cJSON_IsObject(net)) {
		errbuf_printf(err, errlen, "network: must be an object, not %s",
			      json_type_name(net));
		return -EINVAL;
	}
	arr = member(net, "addresses");
	if (absent(arr))
		return 0;
	if (!cJSON_IsArray(arr)) {
		errbuf_printf(err, errlen, "network.addresses: must be an array, not %s",
			      json_type_name(arr));
		return -EINVAL;
	}
	if (cJSON_GetArraySize(arr) > METAL_MAX_ADDRESSES) {
		errbuf_printf(err, errlen, "network.addresses: more than %d addresses",
			      METAL_MAX_ADDRESSES);
		return -E2BIG;
	}
	cJSON_ArrayForEach(e, arr) {
		char p[MPATH_MAX];
		int r = address_parse(e, mpath_i(p, "network.addresses", i), &m->addresses[i],
				      err, errlen);

		if (r)
			return r;
		m->n_addresses = ++i;
	}
	return 0;
}

int metal_metadata_parse(const char *text, size_t len, struct metal_metadata *out, char *err,
			 size_t errlen)
{
	cJSON *root = json_parse_doc(text, len, err, errlen);
	const cJSON *bgp;
	char q[SHOWN_MAX];
	int r;

	memset(out, 0, sizeof(*out));
	if (!root)
		return -EINVAL;
	r = -EINVAL;
	if (!cJSON_IsObject(root)) {
		errbuf_printf(err, errlen, "the document must be an object, not %s",
			      json_type_name(root));
		goto out;
	}
	if ((r = get_str(root, "id", "", true, out->id, sizeof(out->id), err, errlen)))
		goto out;
	if (!metal_id_ok(out->id)) {
		errbuf_printf(err, errlen, "id: not a Metal id: %s", shown(out->id, q));
		r = -EINVAL;
		goto out;
	}
	if ((r = get_str(root, "hostname", "", true, out->hostname, sizeof(out->hostname), err,
			 errlen)))
		goto out;
	if (!hostname_ok(out->hostname)) {
		errbuf_printf(err, errlen, "hostname: not a host name: %s",
			      shown(out->hostname, q));
		r = -EINVAL;
		goto out;
	}
	if ((r = get_code(root, "facility", "", out->facility, err, errlen)) ||
	    (r = get_code(root, "metro", "", out->metro, err, errlen)) ||
	    (r = addresses_parse(root, out, err, errlen)))
		goto out;
	bgp = member(root, "bgp_neighbors");
	if (!absent(bgp)) {
		if (!cJSON_IsArray(bgp)) {
			errbuf_printf(err, errlen, "bgp_neighbors: must be an array, not %s",
				      json_type_name(bgp));
			r = -EINVAL;
			goto out;
		}
		if ((r = bgp_from_array(bgp, &out->bgp, err, errlen)))
			goto out;
		out->has_bgp = true;
	}
	if (err && errlen)
		err[0] = '\0';
out:
	cJSON_Delete(root);
	if (r)
		metal_metadata_free(out);
	return r;
}

void metal_metadata_free(struct metal_metadata *m)
{
	metal_bgp_free(&m->bgp);
	memset(m, 0, sizeof(*m));
}

/* --- BIRD's peer file ------------------------------------------------------------------------ */

struct sbuf {
	char *s;
	size_t len, cap;
	bool nomem;
};

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->nomem)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->nomem = true;
			return;
		}
		if (b->s && b->len + (size_t)n < b->cap) {
			b->len += (size_t)n;
			return;
		}
		if (buf_reserve(&b->s, &b->cap, b->len + (size_t)n + 1, 1024)) {
			b->nomem = true;
			return;
		}
	}
}

/* Whether peer j of neighbour i came earlier in the list (it is then written once only). */
static bool peer_seen(const struct metal_bgp *b, size_t i, size_t j)
{
	for (size_t k = 0; k <= i; k++)
		for (size_t l = 0; l < (k == i ? j : b->nb[k].n_peer_ips); l++)
			if (ip_addr_equal(&b->nb[k].peer_ips[l], &b->nb[i].peer_ips[j]))
				return true;
	return false;
}

int metal_bird_peers(const struct metal_bgp *b, char **out, size_t *len, char *err,
		     size_t errlen)
{
	struct sbuf sb = { 0 };
	unsigned n4 = 0, n6 = 0;

	*out = NULL;
	*len = 0;
	for (size_t i = 0; i < b->n; i++) {
		char p[MPATH_MAX];
		int r = neighbor_check(&b->nb[i], mpath_i(p, "bgp_neighbors", i), err, errlen);

		if (r)
			return r;
	}
	sb_printf(&sb, "# Written by vipd from Equinix Metal's BGP neighbours. Replaced on every "
		  "change; do not edit.\n# Every session imports nothing and exports exactly "
		  "vipd's VIP routes (filter vipd_export).\n");
	for (size_t i = 0; i < b->n; i++) {
		const struct metal_bgp_neighbor *nb = &b->nb[i];
		bool v4 = nb->family == AF_INET;
		char src[IP_ADDR_STRLEN];

		ip_addr_str(&nb->customer_ip, src);
		for (size_t j = 0; j < nb->n_peer_ips; j++) {
			char peer[IP_ADDR_STRLEN];

			ip_addr_str(&nb->peer_ips[j], peer);
			if (peer_seen(b, i, j)) {
				sb_printf(&sb, "\n# bgp_neighbors[%zu] peer %s: a session to it is "
					  "above.\n", i, peer);
				continue;
			}
			sb_printf(&sb, "\n# bgp_neighbors[%zu], peer %zu of %zu: IPv%d%s%s\n", i,
				  j + 1, nb->n_peer_ips, v4 ? 4 : 6,
				  nb->multihop ? ", multihop" : "", nb->md5_enabled ? ", MD5" : "");
			sb_printf(&sb, "protocol bgp vipd_metal%d_%u {\n", v4 ? 4 : 6,
				  v4 ? ++n4 : ++n6);
			sb_printf(&sb, "\tlocal as %u;\n\tsource address %s;\n", nb->customer_as,
				  src);
			sb_printf(&sb, "\tneighbor %s as %u;\n", peer, nb->peer_as);
			if (nb->multihop)
				sb_printf(&sb, "\tmultihop %d;\n", METAL_BGP_MULTIHOP_TTL);
			if (nb->md5_enabled)
				sb_printf(&sb, "\tpassword \"%s\";\n", nb->md5_password);
			sb_printf(&sb, "\t%s {\n\t\timport none;\n\t\texport filter vipd_export;\n"
				  "\t};\n}\n", v4 ? "ipv4" : "ipv6");
		}
	}
	if (sb.nomem) {
		free(sb.s);
		return -ENOMEM;
	}
	*out = sb.s;
	*len = sb.len;
	return 0;
}

/* The metadata address whose gateway reaches nb's multihop peers, or NULL. */
static const struct metal_address *peer_gateway(const struct metal_bgp_neighbor *nb,
						const struct metal_address *addrs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (ip_addr_equal(&addrs[i].address, &nb->customer_ip) &&
		    addrs[i].gateway.family == nb->family)
			return &addrs[i];
	/* Metal runs IPv4 BGP over the private network and IPv6 BGP over the public one. */
	for (size_t i = 0; i < n; i++)
		if (addrs[i].address.family == nb->family && addrs[i].management &&
		    addrs[i].public == (nb->family == AF_INET6) &&
		    addrs[i].gateway.family == nb->family)
			return &addrs[i];
	return NULL;
}

int metal_peer_routes(const struct metal_bgp *b, const struct metal_address *addrs,
		      size_t n_addrs, struct metal_peer_route *out, size_t cap, size_t *n,
		      char *err, size_t errlen)
{
	*n = 0;
	for (size_t i = 0; i < b->n; i++) {
		const struct metal_bgp_neighbor *nb = &b->nb[i];
		const struct metal_address *gw;
		char a[IP_ADDR_STRLEN];

		if (!nb->multihop)
			continue;
		gw = peer_gateway(nb, addrs, n_addrs);
		if (!gw) {
			errbuf_printf(err, errlen, "bgp_neighbors[%zu]: no %s address with a gateway "
				      "for customer_ip %s in the metadata", i,
				      nb->family == AF_INET ? "private IPv4" : "public IPv6",
				      ip_addr_str(&nb->customer_ip, a));
			return -ENOENT;
		}
		for (size_t j = 0; j < nb->n_peer_ips; j++) {
			bool dup = false;

			for (size_t k = 0; k < *n; k++)
				dup |= ip_addr_equal(&out[k].dst, &nb->peer_ips[j]);
			if (dup)
				continue;
			if (*n == cap) {
				errbuf_printf(err, errlen, "more than %zu multihop peers", cap);
				return -E2BIG;
			}
			out[*n].dst = nb->peer_ips[j];
			out[*n].via = gw->gateway;
			(*n)++;
		}
	}
	return 0;
}

/* --- error messages ---------------------------------------------------------------------- */

/* One line of cleaned text in out[cap]: control characters and whitespace runs become one
 * space, invalid UTF-8 '?'; when it is full it ends in "...". */
struct line {
	char *out;
	size_t cap, len;
	bool space, full;
};

/* Length of the valid UTF-8 sequence at s[0..n) (2..4 bytes), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t k;
	unsigned char lo = 0x80, hi = 0xbf;

	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		k = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		k = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		k = 4;
	else
		return 0;
	if (s[0] == 0xe0)
		lo = 0xa0;
	else if (s[0] == 0xed)
		hi = 0x9f;
	else if (s[0] == 0xf0)
		lo = 0x90;
	else if (s[0] == 0xf4)
		hi = 0x8f;
	if (n < k || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < k; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return k;
}

static void line_put(struct line *l, const char *bytes, size_t k)
{
	size_t need = k + (l->space && l->len ? 1 : 0);

	if (l->full)
		return;
	if (l->len + need + 1 > l->cap) {
		/* Make room for "..." on a character boundary. */
		while (l->len && l->len + 4 > l->cap) {
			do
				l->len--;
			while (l->len && ((unsigned char)l->out[l->len] & 0xc0) == 0x80);
		}
		if (l->len + 4 <= l->cap) {
			memcpy(l->out + l->len, "...", 3);
			l->len += 3;
		}
		l->out[l->len] = '\0';
		l->full = true;
		return;
	}
	if (l->space && l->len)
		l->out[l->len++] = ' ';
	l->space = false;
	memcpy(l->out + l->len, bytes, k);
	l->len += k;
	l->out[l->len] = '\0';
}

static void line_add(struct line *l, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;

	for (size_t i = 0; i < n && !l->full;) {
		size_t k;

		if (u[i] <= 0x20 || u[i] == 0x7f) {
			l->space = true;
			i++;
		} else if (u[i] < 0x80) {
			line_put(l, s + i, 1);
			i++;
		} else if ((k = utf8_len(u + i, n - i)) == 0) {
			line_put(l, "?", 1);
			i++;
		} else if (k == 2 && u[i] == 0xc2 && u[i + 1] <= 0xa0) {
			l->space = true; /* C1 controls U+0080..U+009F, NBSP */
			i += 2;
		} else {
			line_put(l, s + i, k);
			i += k;
		}
	}
}

int metal_error_message(const char *body, size_t len, char *out, size_t outlen)
{
	struct line l = { out, outlen, 0, false, false };
	cJSON *root;
	const cJSON *v, *e;

	if (!outlen)
		return -ENOMSG;
	out[0] = '\0';
	root = body ? cJSON_ParseWithLength(body, len) : NULL;
	v = cJSON_IsObject(root) ? member(root, "errors") : NULL;
	if (!cJSON_IsArray(v))
		v = NULL;
	cJSON_ArrayForEach(e, v) {
		size_t before = l.len;

		if (!cJSON_IsString(e) || !e->valuestring)
			continue;
		l.space = false;
		if (l.len)
			line_add(&l, ";", 1);
		l.space = l.len > 0;
		line_add(&l, e->valuestring, strlen(e->valuestring));
		/* A message that cleans to nothing would leave a bare ";" behind. */
		if (!l.full && l.len <= before + 1) {
			l.len = before;
			out[l.len] = '\0';
		}
	}
	v = cJSON_IsObject(root) ? member(root, "error") : NULL;
	if (!l.len && cJSON_IsString(v) && v->valuestring)
		line_add(&l, v->valuestring, strlen(v->valuestring));
	cJSON_Delete(root);
	if (l.len)
		return 0;
	l.space = false;
	l.full = false;
	if (body)
		line_add(&l, body, len);
	if (!l.len)
		snprintf(out, outlen, "(empty body)");
	return -ENOMSG;
}

/* --- retries ----------------------------------------------------------------------------- */

uint32_t metal_backoff_ms(unsigned attempt, uint32_t rnd, long retry_after_s)
{
	uint32_t window = METAL_BACKOFF_CAP_MS, d;

	if (attempt < 16 && (METAL_BACKOFF_BASE_MS << attempt) < window)
		window = METAL_BACKOFF_BASE_MS << attempt;
	d = METAL_BACKOFF_MIN_MS + rnd % (window - METAL_BACKOFF_MIN_MS + 1);
	if (retry_after_s >= 0) {
		long s = retry_after_s > METAL_RETRY_AFTER_MAX_S ? METAL_RETRY_AFTER_MAX_S :
								   retry_after_s;
		/* Other bits of rnd than the draw above used, mixed (Knuth's multiplier). */
		uint32_t ra = (uint32_t)s * 1000u +
			      ((rnd * 2654435761u) >> 16) % METAL_RETRY_AFTER_JITTER_MS;

		if (ra > d)
			d = ra;
	}
	return d;
}
