/*
 * The config file. Validation goes on past the first problem so one run of
 * --check-config lists everything that is wrong.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cloud/ipam.h"
#include "lb_json.h"
#include "util.h"

#define CONFIG_MAX_BYTES (16u << 20)
/* Room for every error of one load balancer, one per line. */
#define LB_ERR_MAX (64u << 10)

struct cparse {
	struct config *cfg;
	struct config_error *errs;
	size_t *lb_index; /* file position of each cfg->lbs entry */
	unsigned n_err;
	bool nomem;
};

/* Messages of other parsers may quote user text raw: escape it, one error one line. */
static char *escaped_dup(const char *line)
{
	size_t n = 0;
	char *s, *o;

	for (const char *p = line; *p; p++)
		n += ((unsigned char)*p < 0x20 || *p == 0x7f) ? 4 : 1;
	s = malloc(n + 1);
	if (!s)
		return NULL;
	o = s;
	for (const char *p = line; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			o += sprintf(o, "\\x%02x", (unsigned char)*p);
		else
			*o++ = *p;
	}
	*o = '\0';
	return s;
}

static void cerr_line(struct cparse *c, const char *line)
{
	char **m, *s;

	c->n_err++;
	s = escaped_dup(line);
	m = s ? realloc(c->errs->msgs, (c->errs->n + 1) * sizeof(*m)) : NULL;
	if (!m) {
		free(s);
		c->nomem = true;
		return;
	}
	m[c->errs->n++] = s;
	c->errs->msgs = m;
}

static void cerr(struct cparse *c, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void cerr(struct cparse *c, const char *path, const char *fmt, ...)
{
	char line[1024];
	int off = 0;
	va_list ap;

	if (path && path[0])
		off = snprintf(line, sizeof(line), "%s: ", path);
	if (off < 0 || (size_t)off >= sizeof(line))
		off = 0;
	va_start(ap, fmt);
	vsnprintf(line + off, sizeof(line) - (size_t)off, fmt, ap);
	va_end(ap);
	cerr_line(c, line);
}

/* User text inside a message: escaped and shortened. */
static const char *quoted(const char *s, char *buf, size_t n)
{
	size_t o = 0;

	for (; *s && o + 8 < n; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch < 0x20 || ch == 0x7f || ch == '"' || ch == '\\')
			o += (size_t)snprintf(buf + o, n - o, "\\x%02x", ch);
		else
			buf[o++] = (char)ch;
	}
	if (*s)
		o += (size_t)snprintf(buf + o, n - o, "...");
	buf[o] = '\0';
	return buf;
}



static cJSON *parse_json(struct cparse *c, const char *text, size_t len)
{
	char err[160];
	cJSON *root = json_parse_doc(text, len, err, sizeof(err));

	if (!root)
		cerr(c, "", "%s", err);
	return root;
}

static const char *get_string(struct cparse *c, const cJSON *v, const char *path)
{
	if (cJSON_IsString(v) && v->valuestring)
		return v->valuestring;
	cerr(c, path, "must be a string, not %s", json_type_name(v));
	return NULL;
}

static bool has_ctrl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

static void set_str(struct cparse *c, char **dst, const char *s)
{
	char *d = strdup(s);

	if (!d) {
		c->nomem = true;
		c->n_err++;
		return;
	}
	free(*dst);
	*dst = d;
}

/* A path or an identifier: non-empty, no control characters. */
static void text_key(struct cparse *c, const cJSON *v, const char *path, char **dst)
{
	const char *s = get_string(c, v, path);

	if (!s)
		return;
	if (!s[0] || has_ctrl(s)) {
		cerr(c, path, "must be non-empty, without control characters");
		return;
	}
	set_str(c, dst, s);
}

static void duration_key(struct cparse *c, const cJSON *v, const char *path, uint32_t *dst)
{
	if (json_duration_ms(v, dst))
		cerr(c, path, "must be milliseconds or a duration such as \"3s\" or \"500ms\"");
}

static void bool_key(struct cparse *c, const cJSON *v, const char *path, bool *dst)
{
	if (!cJSON_IsBool(v)) {
		cerr(c, path, "must be true or false, not %s", json_type_name(v));
		return;
	}
	*dst = cJSON_IsTrue(v);
}

/* What the kernel takes as an interface name (dev_valid_name). */
static void adapter_key(struct cparse *c, const cJSON *v, const char *path, char **dst)
{
	const char *s = get_string(c, v, path);
	char q[96];

	if (!s)
		return;
	if (!s[0] || strlen(s) > 15 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0 ||
	    strpbrk(s, "/: \t\n\r\v\f") || has_ctrl(s)) {
		cerr(c, path, "not an interface name: \"%s\" (1..15 characters, no '/', ':' or "
		     "spaces)", quoted(s, q, sizeof(q)));
		return;
	}
	set_str(c, dst, s);
}

static void range_one(struct cparse *c, const cJSON *v, const char *path, struct settings *s)
{
	const char *str = get_string(c, v, path);
	struct ipam_range r;
	char err[256];

	if (!str)
		return;
	if (ipam_range_parse(str, &r, err, sizeof(err))) {
		cerr(c, path, "%s", err);
		return;
	}
	if (settings_add_ipam_range(s, str)) {
		c->nomem = true;
		c->n_err++;
	}
}

static void ranges_key(struct cparse *c, const cJSON *v, const char *path, struct settings *s)
{
	char p[64];
	const cJSON *it;
	size_t i = 0;

	if (cJSON_IsString(v)) {
		range_one(c, v, path, s);
		return;
	}
	if (!cJSON_IsArray(v)) {
		cerr(c, path, "must be an array of strings or a string, not %s", json_type_name(v));
		return;
	}
	cJSON_ArrayForEach(it, v) {
		snprintf(p, sizeof(p), "%s[%zu]", path, i++);
		range_one(c, it, p, s);
	}
}

static void listen_key(struct cparse *c, const cJSON *v, const char *path, char **dst)
{
	const char *s = get_string(c, v, path);
	char host[256], q[96];
	uint16_t port;

	if (!s)
		return;
	if (listen_addr_parse(s, host, sizeof(host), &port)) {
		cerr(c, path,
		     "expected HOST:PORT, [V6]:PORT or :PORT with port 1..65535, not \"%s\"",
		     quoted(s, q, sizeof(q)));
		return;
	}
	set_str(c, dst, s);
}

static void url_key(struct cparse *c, const cJSON *v, const char *path, char **dst)
{
	const char *s = get_string(c, v, path);
	char q[96];

	if (!s)
		return;
	if ((strncmp(s, "http://", 7) != 0 && strncmp(s, "https://", 8) != 0) ||
	    strpbrk(s, " \t") || has_ctrl(s)) {
		cerr(c, path, "expected an http:// or https:// URL, not \"%s\"",
		     quoted(s, q, sizeof(q)));
		return;
	}
	set_str(c, dst, s);
}

static void lb_errors(struct cparse *c, char *buf)
{
	char *line = buf, *nl;

	while (line && *line) {
		nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		cerr_line(c, line);
		line = nl ? nl + 1 : NULL;
	}
}

static void lbs_key(struct cparse *c, const cJSON *v, const char *path)
{
	struct config *cfg = c->cfg;
	char p[64], *err;
	const cJSON *it;
	size_t n, i = 0;

	if (!cJSON_IsArray(v)) {
		cerr(c, path, "must be an array of objects, not %s", json_type_name(v));
		return;
	}
	n = (size_t)cJSON_GetArraySize(v);
	if (!n)
		return;
	err = malloc(LB_ERR_MAX);
	cfg->lbs = calloc(n, sizeof(*cfg->lbs));
	c->lb_index = calloc(n, sizeof(*c->lb_index));
	if (!err || !cfg->lbs || !c->lb_index) {
		free(err);
		c->nomem = true;
		c->n_err++;
		return;
	}
	cJSON_ArrayForEach(it, v) {
		struct lb *lb;
		int r;

		snprintf(p, sizeof(p), "%s[%zu]", path, i);
		r = lb_from_json(it, LB_JSON_CONFIG, p, &lb, err, LB_ERR_MAX);
		if (r) {
			lb_errors(c, err);
			if (r == -ENOMEM)
				c->nomem = true;
			c->n_err++;
		} else {
			c->lb_index[cfg->n_lbs] = i;
			cfg->lbs[cfg->n_lbs++] = lb;
		}
		i++;
	}
	free(err);
}

/* ---- checks across load balancers ---- */

struct lb_ref {
	const struct lb *lb;
	size_t idx; /* position in the file */
};

static int cmp_idx(const struct lb_ref *a, const struct lb_ref *b)
{
	return a->idx < b->idx ? -1 : (a->idx > b->idx);
}

static int cmp_name(const void *x, const void *y)
{
	const struct lb_ref *a = x, *b = y;
	int r = strcmp(a->lb->name, b->lb->name);

	return r ? r : cmp_idx(a, b);
}

static int cmp_uuid(const void *x, const void *y)
{
	const struct lb_ref *a = x, *b = y;
	int r = strcmp(a->lb->uuid, b->lb->uuid);

	return r ? r : cmp_idx(a, b);
}

static int cmp_listener(const void *x, const void *y)
{
	const struct lb_ref *a = x, *b = y;
	int r = ip_addr_cmp(&a->lb->vip, &b->lb->vip);

	if (!r && a->lb->port != b->lb->port)
		r = a->lb->port < b->lb->port ? -1 : 1;
	if (!r && a->lb->protocol != b->lb->protocol)
		r = a->lb->protocol < b->lb->protocol ? -1 : 1;
	return r ? r : cmp_idx(a, b);
}

static bool same_listener(const struct lb *a, const struct lb *b)
{
	return ip_addr_is_set(&a->vip) && a->port == b->port && a->protocol == b->protocol &&
	       ip_addr_equal(&a->vip, &b->vip);
}

/*
 * Sorting puts equal keys side by side; each repeat is reported against the
 * first load balancer of its run, the one earliest in the file.
 */
static void check_across(struct cparse *c)
{
	const struct config *cfg = c->cfg;
	size_t n = cfg->n_lbs, first;
	struct lb_ref *refs;
	char p[64], q[96], ip[IP_ADDR_STRLEN];

	if (n < 2)
		return;
	refs = malloc(n * sizeof(*refs));
	if (!refs) {
		c->nomem = true;
		c->n_err++;
		return;
	}
	for (size_t i = 0; i < n; i++)
		refs[i] = (struct lb_ref){ cfg->lbs[i], c->lb_index[i] };

	qsort(refs, n, sizeof(*refs), cmp_name);
	first = 0;
	for (size_t i = 1; i < n; i++) {
		if (strcmp(refs[i].lb->name, refs[first].lb->name) != 0) {
			first = i;
			continue;
		}
		snprintf(p, sizeof(p), "loadbalancers[%zu].name", refs[i].idx);
		cerr(c, p, "\"%s\" is already used by loadbalancers[%zu]",
		     quoted(refs[i].lb->name, q, sizeof(q)), refs[first].idx);
	}

	/* Equal names give equal derived uuids: that repeat is already reported. */
	qsort(refs, n, sizeof(*refs), cmp_uuid);
	first = 0;
	for (size_t i = 1; i < n; i++) {
		if (strcmp(refs[i].lb->uuid, refs[first].lb->uuid) != 0) {
			first = i;
			continue;
		}
		if (strcmp(refs[i].lb->name, refs[first].lb->name) == 0)
			continue;
		snprintf(p, sizeof(p), "loadbalancers[%zu].uuid", refs[i].idx);
		cerr(c, p, "%s is already used by loadbalancers[%zu]", refs[i].lb->uuid,
		     refs[first].idx);
	}

	qsort(refs, n, sizeof(*refs), cmp_listener);
	first = 0;
	for (size_t i = 1; i < n; i++) {
		const struct lb *a = refs[first].lb, *b = refs[i].lb;

		if (!same_listener(a, b)) {
			first = i;
			continue;
		}
		snprintf(p, sizeof(p), "loadbalancers[%zu]", refs[i].idx);
		cerr(c, p,
		     b->vip.family == AF_INET6 ? "[%s]:%u/%s is already used by loadbalancers[%zu]"
					       : "%s:%u/%s is already used by loadbalancers[%zu]",
		     ip_addr_str(&b->vip, ip), b->port, lb_protocol_name(b->protocol),
		     refs[first].idx);
	}
	free(refs);
}

/* ---- the document ---- */

enum {
	CK_ARP, CK_BGP, CK_ADAPTER, CK_RANGES, CK_PROJECT, CK_FACILITY, CK_METRO, CK_API_LISTEN,
	CK_TOKEN_FILE, CK_BIRD, CK_DATAPLANE, CK_STATE_DIR, CK_LOG_LEVEL, CK_FOREGROUND, CK_PIN_DIR, CK_BIRD_ROUTES, CK_ARP_REFRESH, CK_GRACEFUL,
	CK_DRAIN_TIMEOUT, CK_CLEANUP,
	CK_DEVICE, CK_METAL_TOKEN_FILE, CK_METAL_API_URL, CK_METAL_METADATA_URL, CK_KEEP_IPS,
	CK_LBS,
};

static const struct {
	const char *key;
	uint32_t bit;
} config_keys[] = {
	[CK_ARP] = { "arp", SET_ARP },
	[CK_BGP] = { "bgp", SET_BGP },
	[CK_ADAPTER] = { "adapter", SET_ADAPTER },
	[CK_RANGES] = { "ipam_ranges", SET_IPAM_RANGES },
	[CK_PROJECT] = { "project", SET_PROJECT },
	[CK_FACILITY] = { "facility", SET_FACILITY },
	[CK_METRO] = { "metro", SET_METRO },
	[CK_API_LISTEN] = { "api_listen", SET_API_LISTEN },
	[CK_TOKEN_FILE] = { "api_token_file", SET_API_TOKEN_FILE },
	[CK_BIRD] = { "bird_socket", SET_BIRD_SOCKET },
	[CK_DATAPLANE] = { "dataplane", SET_DATAPLANE },
	[CK_STATE_DIR] = { "state_dir", SET_STATE_DIR },
	[CK_LOG_LEVEL] = { "log_level", SET_LOG_LEVEL },
	[CK_FOREGROUND] = { "foreground", SET_FOREGROUND },
	[CK_PIN_DIR] = { "bpf_pin_dir", SET_BPF_PIN_DIR },
	[CK_BIRD_ROUTES] = { "bird_routes", SET_BIRD_ROUTES },
	[CK_ARP_REFRESH] = { "arp_refresh", SET_ARP_REFRESH },
	[CK_GRACEFUL] = { "graceful_shutdown", SET_GRACEFUL },
	[CK_DRAIN_TIMEOUT] = { "drain_timeout", SET_DRAIN_TIMEOUT },
	[CK_CLEANUP] = { "cleanup_on_exit", SET_CLEANUP },
	[CK_DEVICE] = { "device", SET_DEVICE },
	[CK_METAL_TOKEN_FILE] = { "token_file", SET_METAL_TOKEN_FILE },
	[CK_METAL_API_URL] = { "metal_api_url", SET_METAL_API_URL },
	[CK_METAL_METADATA_URL] = { "metal_metadata_url", SET_METAL_METADATA_URL },
	[CK_KEEP_IPS] = { "keep_ips", SET_KEEP_IPS },
	[CK_LBS] = { "loadbalancers", 0 },
};

#define N_CONFIG_KEYS (sizeof(config_keys) / sizeof(config_keys[0]))

static int config_key(const char *k)
{
	for (size_t i = 0; i < N_CONFIG_KEYS; i++)
		if (strcmp(config_keys[i].key, k) == 0)
			return (int)i;
	return -1;
}

static void one_key(struct cparse *c, int k, const cJSON *v)
{
	struct settings *s = &c->cfg->settings;
	const char *path = config_keys[k].key, *str;
	char q[96];

	switch (k) {
	case CK_ARP:
		bool_key(c, v, path, &s->arp);
		break;
	case CK_BGP:
		bool_key(c, v, path, &s->bgp);
		break;
	case CK_FOREGROUND:
		bool_key(c, v, path, &s->foreground);
		break;
	case CK_ADAPTER:
		adapter_key(c, v, path, &s->adapter);
		break;
	case CK_RANGES:
		ranges_key(c, v, path, s);
		break;
	case CK_PROJECT:
		text_key(c, v, path, &s->project);
		break;
	case CK_FACILITY:
		text_key(c, v, path, &s->facility);
		break;
	case CK_METRO:
		text_key(c, v, path, &s->metro);
		break;
	case CK_API_LISTEN:
		listen_key(c, v, path, &s->api_listen);
		break;
	case CK_TOKEN_FILE:
		text_key(c, v, path, &s->api_token_file);
		break;
	case CK_BIRD:
		text_key(c, v, path, &s->bird_socket);
		break;
	case CK_STATE_DIR:
		text_key(c, v, path, &s->state_dir);
		break;
	case CK_PIN_DIR:
		text_key(c, v, path, &s->bpf_pin_dir);
		break;
	case CK_BIRD_ROUTES:
		text_key(c, v, path, &s->bird_routes);
		break;
	case CK_ARP_REFRESH:
		duration_key(c, v, path, &s->arp_refresh_ms);
		break;
	case CK_GRACEFUL:
		duration_key(c, v, path, &s->graceful_shutdown_ms);
		break;
	case CK_DRAIN_TIMEOUT:
		duration_key(c, v, path, &s->drain_timeout_ms);
		break;
	case CK_CLEANUP:
		bool_key(c, v, path, &s->cleanup_on_exit);
		break;
	case CK_KEEP_IPS:
		bool_key(c, v, path, &s->keep_ips);
		break;
	case CK_DEVICE:
		text_key(c, v, path, &s->device);
		break;
	case CK_METAL_TOKEN_FILE:
		text_key(c, v, path, &s->metal_token_file);
		break;
	case CK_METAL_API_URL:
	case CK_METAL_METADATA_URL:
		url_key(c, v, path, k == CK_METAL_API_URL ? &s->metal_api_url
							 : &s->metal_metadata_url);
		break;
	case CK_DATAPLANE:
		str = get_string(c, v, path);
		if (str && dataplane_kind_parse(str, &s->dataplane))
			cerr(c, path, "must be one of auto, xdp, ipvs, none, not \"%s\"",
			     quoted(str, q, sizeof(q)));
		break;
	case CK_LOG_LEVEL:
		str = get_string(c, v, path);
		if (str && log_level_parse(str, &s->log_level))
			cerr(c, path, "must be one of error, warn, info, debug, not \"%s\"",
			     quoted(str, q, sizeof(q)));
		break;
	case CK_LBS:
		lbs_key(c, v, path);
		break;
	default:
		break;
	}
}

int config_parse(const char *text, size_t len, struct config *cfg, struct config_error *errs)
{
	struct cparse c = { .cfg = cfg, .errs = errs };
	uint32_t seen = 0;
	const cJSON *it;
	cJSON *root;
	char q[96];

	memset(cfg, 0, sizeof(*cfg));
	settings_init(&cfg->settings);
	root = parse_json(&c, text, len);
	if (root && !cJSON_IsObject(root))
		cerr(&c, "", "the document must be a JSON object, not %s", json_type_name(root));
	else if (root) {
		cJSON_ArrayForEach(it, root) {
			int k = config_key(it->string ? it->string : "");

			if (k < 0) {
				cerr(&c, "", "unknown key \"%s\"",
				     quoted(it->string ? it->string : "", q, sizeof(q)));
				continue;
			}
			if (seen & (1u << k)) {
				cerr(&c, "", "duplicate key \"%s\"", config_keys[k].key);
				continue;
			}
			seen |= 1u << k;
			cfg->settings.set |= config_keys[k].bit;
			one_key(&c, k, it);
		}
		check_across(&c);
	}
	cJSON_Delete(root);
	free(c.lb_index);
	if (c.nomem && !c.errs->n)
		cerr_line(&c, "out of memory");
	if (c.n_err) {
		config_clear(cfg);
		return c.nomem ? -ENOMEM : -EINVAL;
	}
	return 0;
}

static int read_all(int fd, char **out, size_t *len)
{
	size_t cap = 64 << 10, n = 0;
	char *buf = malloc(cap + 1), *nb;
	ssize_t r;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		if (n == cap) {
			if (cap > CONFIG_MAX_BYTES) {
				free(buf);
				return -EFBIG;
			}
			cap *= 2;
			nb = realloc(buf, cap + 1);
			if (!nb) {
				free(buf);
				return -ENOMEM;
			}
			buf = nb;
		}
		r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			r = -errno;
			free(buf);
			return (int)r;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > CONFIG_MAX_BYTES) {
			free(buf);
			return -EFBIG;
		}
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

int config_load_file(const char *path, struct config *cfg, struct config_error *errs)
{
	struct cparse c = { .cfg = cfg, .errs = errs };
	struct stat st;
	char *text = NULL;
	size_t len = 0;
	int fd, r;

	memset(cfg, 0, sizeof(*cfg));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		cerr(&c, "", "cannot open %s: %s", path, strerror(-r));
		return r == -ENOMEM ? r : -EINVAL;
	}
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		close(fd);
		cerr(&c, "", "cannot read %s: it is a directory", path);
		return -EINVAL;
	}
	r = read_all(fd, &text, &len);
	close(fd);
	if (r == -EFBIG) {
		cerr(&c, "", "cannot read %s: larger than 16 MiB", path);
		return -EINVAL;
	}
	if (r) {
		cerr(&c, "", "cannot read %s: %s", path, strerror(-r));
		return r == -ENOMEM ? r : -EINVAL;
	}
	r = config_parse(text, len, cfg, errs);
	free(text);
	return r;
}

void config_clear(struct config *cfg)
{
	settings_clear(&cfg->settings);
	for (size_t i = 0; i < cfg->n_lbs; i++)
		lb_free(cfg->lbs[i]);
	free(cfg->lbs);
	memset(cfg, 0, sizeof(*cfg));
}

void config_error_clear(struct config_error *errs)
{
	for (size_t i = 0; i < errs->n; i++)
		free(errs->msgs[i]);
	free(errs->msgs);
	errs->msgs = NULL;
	errs->n = 0;
}
