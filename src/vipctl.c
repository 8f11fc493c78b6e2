/* vipctl: a client for vipd's REST API. */
#ifdef HAVE_CONFIG_H
#include "vipd_config.h"
#endif

#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0.1.0"
#endif

#define EXIT_API 1
#define EXIT_UNREACHABLE 2
#define EXIT_USAGE 2

struct ctl {
	const char *api;
	char *token;
	bool json;
};

struct buf {
	char *data;
	size_t len;
};

static const char usage[] =
	"Usage: vipctl [--api URL] [--token-file FILE] [--json] COMMAND\n"
	"\n"
	"Commands:\n"
	"  lb list\n"
	"  lb create NAME --port P [--vip ADDR] [--protocol tcp|udp] [--scheduler S]\n"
	"                 [--forwarding fullnat|nat|dsr|tunnel]\n"
	"                 [--check tcp|http|https|udp|none] [--interval D] [--timeout D]\n"
	"                 [--fall N] [--rise N] [--check-port P] [--http-path PATH]\n"
	"                 [--min-healthy N]   (health_check; D: 500ms, 5s, ...)\n"
	"  lb show UUID|NAME\n"
	"  lb delete UUID|NAME\n"
	"  backend add LB IP:PORT [--weight W]      (IPv6: [ADDR]:PORT)\n"
	"  backend remove LB BACKEND_UUID|IP:PORT\n"
	"  backend drain LB BACKEND_UUID|IP:PORT\n"
	"  backend undrain LB BACKEND_UUID|IP:PORT\n"
	"  status [--json]\n"
	"\n"
	"Options:\n"
	"      --api URL          vipd's API (default http://127.0.0.1:10001, env VIPCTL_API)\n"
	"      --token-file FILE  bearer token for the API (env VIPCTL_TOKEN_FILE)\n"
	"      --json             print the API's JSON instead of tables\n"
	"  -v, --version          print the version and exit\n"
	"  -h, --help             print this help and exit\n"
	"\n"
	"Exit status: 0 ok, 1 the API refused (its error is printed), 2 vipd unreachable or usage.\n";

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
	struct buf *b = arg;
	char *nd = realloc(b->data, b->len + size * n + 1);

	if (!nd)
		return 0;
	b->data = nd;
	memcpy(b->data + b->len, p, size * n);
	b->len += size * n;
	b->data[b->len] = '\0';
	return size * n;
}

/* Performs one call; returns the HTTP status and the parsed body, or -1 (reported) if vipd
 * cannot be reached. */
static long call(const struct ctl *c, const char *method, const char *path, const char *body,
		 cJSON **out)
{
	CURL *h = curl_easy_init();
	struct curl_slist *hdr = NULL;
	struct buf b = { NULL, 0 };
	char url[2048], auth[4200];
	long status = 0;
	CURLcode rc;

	snprintf(url, sizeof(url), "%s%s", c->api, path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
	hdr = curl_slist_append(hdr, "Content-Type: application/json");
	if (c->token) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", c->token);
		hdr = curl_slist_append(hdr, auth);
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	if (body)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	rc = curl_easy_perform(h);
	if (rc != CURLE_OK) {
		fprintf(stderr, "vipctl: cannot reach vipd at %s: %s\n", c->api, curl_easy_strerror(rc));
		curl_slist_free_all(hdr);
		curl_easy_cleanup(h);
		free(b.data);
		*out = NULL;
		return -1;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(hdr);
	curl_easy_cleanup(h);
	*out = b.data ? cJSON_Parse(b.data) : NULL;
	free(b.data);
	return status;
}

/* Prints the API's error for a failed call and returns the exit code. */
static int api_error(long status, const cJSON *resp)
{
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(resp, "error");

	if (status < 0)
		return EXIT_UNREACHABLE;
	fprintf(stderr, "vipctl: %s (HTTP %ld)\n",
		cJSON_IsString(e) ? e->valuestring : "unexpected answer", status);
	return EXIT_API;
}

static void print_json(const cJSON *j)
{
	char *s = cJSON_Print(j);

	if (s)
		puts(s);
	free(s);
}

static const char *str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsString(v) ? v->valuestring : "";
}

static long num(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsNumber(v) ? (long)v->valuedouble : 0;
}

static const char *yes_no(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsBool(v) ? (cJSON_IsTrue(v) ? "yes" : "no") : "-";
}

static void print_lb_table(const cJSON *arr)
{
	const cJSON *lb;

	printf("%-36s  %-20s  %-39s  %-5s  %-5s  %-8s  %-7s  %s\n", "UUID", "NAME", "VIP", "PORT",
	       "PROTO", "HEALTHY", "STATUS", "ANNOUNCED");
	cJSON_ArrayForEach(lb, arr) {
		char healthy[32];

		snprintf(healthy, sizeof(healthy), "%ld/%d", num(lb, "healthy_backends"),
			 cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(lb, "backends")));
		printf("%-36s  %-20s  %-39s  %-5ld  %-5s  %-8s  %-7s  %s\n", str(lb, "uuid"),
		       str(lb, "name"), str(lb, "vip"), num(lb, "port"), str(lb, "protocol"), healthy,
		       str(lb, "status"), yes_no(lb, "announced"));
	}
}

static void print_lb(const cJSON *lb)
{
	const cJSON *b, *hc, *backends = cJSON_GetObjectItemCaseSensitive(lb, "backends");
	int ipw = 2;

	printf("uuid:        %s\nname:        %s\nvip:         %s\nport:        %ld/%s\n"
	       "scheduler:   %s\nforwarding:  %s\nstatus:      %s\n",
	       str(lb, "uuid"), str(lb, "name"), str(lb, "vip"), num(lb, "port"),
	       str(lb, "protocol"), str(lb, "scheduler"), str(lb, "forwarding"), str(lb, "status"));
	hc = cJSON_GetObjectItemCaseSensitive(lb, "health_check");
	if (strcmp(str(hc, "type"), "none") == 0)
		printf("health:      no check (backends count as up)\n");
	else
		printf("health:      %s every %s, timeout %s, down after %ld failures, up after %ld "
		       "successes\n",
		       str(hc, "type"), str(hc, "interval"), str(hc, "timeout"), num(hc, "fail_count"),
		       num(hc, "rise_count"));
	printf("announced:   %s (%ld of %d backends healthy, %ld needed)\n", yes_no(lb, "announced"),
	       num(lb, "healthy_backends"), cJSON_GetArraySize(backends),
	       num(hc, "min_healthy") > 0 ? num(hc, "min_healthy") : 1);
	b = cJSON_GetObjectItemCaseSensitive(lb, "stats");
	if (cJSON_IsObject(b))
		printf("traffic:     %ld connections (%ld open), %ld packets, %ld bytes\n",
		       num(b, "connections"), num(b, "active_connections"), num(b, "packets"),
		       num(b, "bytes"));
	putchar('\n');
	cJSON_ArrayForEach(b, backends) {
		int w = (int)strlen(str(b, "ip"));

		if (w > ipw)
			ipw = w;
	}
	printf("%-36s  %-*s  %-5s  %-6s  %-8s  %-7s  %-12s  %-9s  %-6s  %-8s  %s\n", "BACKEND", ipw,
	       "IP", "PORT", "WEIGHT", "STATE", "HEALTH", "LAST CHECK", "LATENCY", "OPEN", "CONNS",
	       "PACKETS");
	cJSON_ArrayForEach(b, backends) {
		const cJSON *st = cJSON_GetObjectItemCaseSensitive(b, "stats");
		const cJSON *ck = cJSON_GetObjectItemCaseSensitive(b, "check");
		char open[24] = "-", conns[24] = "-", pkts[24] = "-", lat[24] = "-";
		const char *last = "-";

		/* Counters come from the data plane and results from the checker; "-" where
		 * there are none. */
		if (cJSON_IsObject(st)) {
			snprintf(open, sizeof(open), "%ld", num(st, "active_connections"));
			snprintf(conns, sizeof(conns), "%ld", num(st, "connections"));
			snprintf(pkts, sizeof(pkts), "%ld", num(st, "packets"));
		}
		if (cJSON_IsObject(ck)) {
			const cJSON *l = cJSON_GetObjectItemCaseSensitive(ck, "latency_ms");

			last = str(ck, "result");
			if (cJSON_IsNumber(l))
				snprintf(lat, sizeof(lat), "%.2fms", l->valuedouble);
		}
		printf("%-36s  %-*s  %-5ld  %-6ld  %-8s  %-7s  %-12s  %-9s  %-6s  %-8s  %s\n",
		       str(b, "uuid"), ipw, str(b, "ip"), num(b, "port"), num(b, "weight"),
		       str(b, "state"), str(b, "health"), last, lat, open, conns, pkts);
	}
}

/* Resolves a uuid or a unique name to a uuid (copied into out). Returns 0 or an exit code. */
static int resolve_lb(const struct ctl *c, const char *ref, char *out, size_t outlen)
{
	cJSON *arr = NULL;
	const cJSON *lb;
	long st = call(c, "GET", "/loadbalancers", NULL, &arr);
	int found = 0;

	if (st != 200) {
		int r = api_error(st, arr);

		cJSON_Delete(arr);
		return r;
	}
	cJSON_ArrayForEach(lb, arr) {
		if (strcmp(str(lb, "uuid"), ref) == 0 || strcmp(str(lb, "name"), ref) == 0) {
			if (found++)
				fprintf(stderr, "%s%s", found == 2 ? "vipctl: name is ambiguous: " : ", ",
					str(lb, "uuid"));
			else
				snprintf(out, outlen, "%s", str(lb, "uuid"));
		}
	}
	if (found > 1) {
		fprintf(stderr, " (and %s); use the uuid\n", out);
		cJSON_Delete(arr);
		return EXIT_API;
	}
	cJSON_Delete(arr);
	if (!found) {
		fprintf(stderr, "vipctl: no load balancer %s\n", ref);
		return EXIT_API;
	}
	return 0;
}

/* Splits "1.2.3.4:80" or "[2001:db8::1]:80". */
static int split_endpoint(const char *s, char *ip, size_t iplen, long *port)
{
	const char *colon;
	char *end;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':')
			return -EINVAL;
		snprintf(ip, iplen, "%.*s", (int)(close - s - 1), s + 1);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		snprintf(ip, iplen, "%.*s", (int)(colon - s), s);
	}
	*port = strtol(colon + 1, &end, 10);
	return *end || end == colon + 1 ? -EINVAL : 0;
}

static int resolve_backend(const struct ctl *c, const char *lb_uuid, const char *ref, char *out,
			   size_t outlen)
{
	char path[128], ip[64];
	cJSON *lb = NULL;
	const cJSON *b;
	long port = -1, st;
	int rc = EXIT_API;

	if (strchr(ref, ':') && split_endpoint(ref, ip, sizeof(ip), &port)) {
		fprintf(stderr, "vipctl: %s: expected a backend uuid or IP:PORT\n", ref);
		return EXIT_USAGE;
	}
	snprintf(path, sizeof(path), "/loadbalancer/%s", lb_uuid);
	st = call(c, "GET", path, NULL, &lb);
	if (st != 200) {
		rc = api_error(st, lb);
		cJSON_Delete(lb);
		return rc;
	}
	cJSON_ArrayForEach(b, cJSON_GetObjectItemCaseSensitive(lb, "backends")) {
		bool match = port >= 0 ? (strcmp(str(b, "ip"), ip) == 0 && num(b, "port") == port)
				       : strcmp(str(b, "uuid"), ref) == 0;

		if (match) {
			snprintf(out, outlen, "%s", str(b, "uuid"));
			rc = 0;
			break;
		}
	}
	if (rc)
		fprintf(stderr, "vipctl: no backend %s in load balancer %s\n", ref, lb_uuid);
	cJSON_Delete(lb);
	return rc;
}

/* Runs a call whose answer is printed (JSON or through show); returns the exit code. */
static int simple(const struct ctl *c, const char *method, const char *path, const char *body,
		  long want, void (*show)(const cJSON *))
{
	cJSON *resp = NULL;
	long st = call(c, method, path, body, &resp);
	int rc = 0;

	if (st != want)
		rc = api_error(st, resp);
	else if (c->json || !show)
		print_json(resp);
	else
		show(resp);
	cJSON_Delete(resp);
	return rc;
}

static void show_created_lb(const cJSON *lb)
{
	printf("created %s %s %s:%ld/%s\n", str(lb, "uuid"), str(lb, "name"), str(lb, "vip"),
	       num(lb, "port"), str(lb, "protocol"));
}

static void show_backend(const cJSON *b)
{
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(b, "stats");

	printf("backend %s %s:%ld weight %ld %s", str(b, "uuid"), str(b, "ip"), num(b, "port"),
	       num(b, "weight"), str(b, "state"));
	if (strcmp(str(b, "state"), "draining") == 0 && cJSON_IsObject(st))
		printf(" (%ld connections left)", num(st, "active_connections"));
	putchar('\n');
}

static void show_deleted(const cJSON *r)
{
	printf("deleted %s\n", str(r, "deleted"));
}

/* A screen shows this many load balancers; vipctl lb list has them all. */
#define STATUS_MAX_LBS 20

static const char *when(double t, char *out, size_t len)
{
	time_t s = (time_t)t;
	struct tm tm;

	gmtime_r(&s, &tm);
	strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return out;
}

static const char *duration(double s, char *out, size_t len)
{
	long t = (long)s;

	if (t >= 86400)
		snprintf(out, len, "%ldd%ldh", t / 86400, t % 86400 / 3600);
	else if (t >= 3600)
		snprintf(out, len, "%ldh%ldm", t / 3600, t % 3600 / 60);
	else if (t >= 60)
		snprintf(out, len, "%ldm%lds", t / 60, t % 60);
	else
		snprintf(out, len, "%lds", t);
	return out;
}

static void status_announcing(const cJSON *r)
{
	const cJSON *b = cJSON_GetObjectItemCaseSensitive(r, "bird");
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(r, "cloud");

	printf("announcing:  %s", str(r, "announcer"));
	if (cJSON_IsObject(b)) {
		bool conn = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(b, "connected"));
		bool sync = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(b, "in_sync"));
		const cJSON *d = cJSON_GetObjectItemCaseSensitive(b, "last_configure_s");

		printf(" (BIRD %s, %s; last configure %s", conn ? "connected" : "NOT CONNECTED",
		       sync ? "in sync" : "NOT IN SYNC", str(b, "last_configure"));
		if (strcmp(str(b, "last_configure"), "none") != 0 && cJSON_IsNumber(d))
			printf(" in %.3fs", d->valuedouble);
		printf("; %ld configures, %ld failed)", num(b, "configures"),
		       num(b, "configure_failed"));
	}
	putchar('\n');
	if (cJSON_IsObject(c)) {
		const cJSON *req = cJSON_GetObjectItemCaseSensitive(c, "requests"), *k;

		printf("cloud:       Equinix Metal API requests");
		cJSON_ArrayForEach(k, req)
			printf(" %s=%ld", k->string, cJSON_IsNumber(k) ? (long)k->valuedouble : 0);
		printf(", %ld retries\n", num(c, "retries"));
	}
}

static void status_vips(const cJSON *r)
{
	const cJSON *v, *vips = cJSON_GetObjectItemCaseSensitive(r, "vips");
	int n = 0;

	if (!cJSON_GetArraySize(vips))
		return;
	printf("vips:       ");
	cJSON_ArrayForEach(v, vips) {
		printf(" %s (%s)", str(v, "vip"),
		       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "announced")) ? "announced"
										  : "not announced");
		if (++n == 8 && cJSON_GetArraySize(vips) > n) {
			printf(" and %d more", cJSON_GetArraySize(vips) - n);
			break;
		}
	}
	putchar('\n');
}

static void status_counts(const cJSON *o, char *conns, char *pkts, size_t len)
{
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "stats");

	snprintf(conns, len, "-");
	snprintf(pkts, len, "-");
	if (cJSON_IsObject(st)) {
		snprintf(conns, len, "%ld", num(st, "connections"));
		snprintf(pkts, len, "%ld", num(st, "packets"));
	}
}

static void status_lbs(const cJSON *lbs)
{
	const cJSON *lb, *b;
	int n = 0;

	if (!cJSON_GetArraySize(lbs))
		return;
	printf("\n%-20s  %-26s  %-7s  %-9s  %-7s  %-8s  %s\n", "LOAD BALANCER", "VIP:PORT",
	       "STATUS", "ANNOUNCED", "HEALTHY", "CONNS", "PACKETS");
	cJSON_ArrayForEach(lb, lbs) {
		const cJSON *backends = cJSON_GetObjectItemCaseSensitive(lb, "backends");
		char addr[80], healthy[32], conns[24], pkts[24];

		if (n++ == STATUS_MAX_LBS) {
			printf("... and %d more (vipctl lb list)\n", cJSON_GetArraySize(lbs) - STATUS_MAX_LBS);
			break;
		}
		snprintf(addr, sizeof(addr), strchr(str(lb, "vip"), ':') ? "[%s]:%ld/%s" : "%s:%ld/%s",
			 str(lb, "vip")[0] ? str(lb, "vip") : "-", num(lb, "port"), str(lb, "protocol"));
		snprintf(healthy, sizeof(healthy), "%ld/%d", num(lb, "healthy_backends"),
			 cJSON_GetArraySize(backends));
		status_counts(lb, conns, pkts, sizeof(conns));
		printf("%-20s  %-26s  %-7s  %-9s  %-7s  %-8s  %s\n", str(lb, "name"), addr,
		       str(lb, "status"), yes_no(lb, "announced"), healthy, conns, pkts);
		cJSON_ArrayForEach(b, backends) {
			const cJSON *ck = cJSON_GetObjectItemCaseSensitive(b, "check");
			char ep[80];

			snprintf(ep, sizeof(ep), strchr(str(b, "ip"), ':') ? "[%s]:%ld" : "%s:%ld",
				 str(b, "ip"), num(b, "port"));
			status_counts(b, conns, pkts, sizeof(conns));
			printf("  %-24s  %-8s  %-8s  conns %-6s  packets %-8s  check %s\n", ep,
			       str(b, "health"), str(b, "state"), conns, pkts,
			       cJSON_IsObject(ck) ? str(ck, "result") : "-");
		}
	}
}

static void status_reconcile(const cJSON *r)
{
	const cJSON *rec = cJSON_GetObjectItemCaseSensitive(r, "reconcile");
	const cJSON *le = cJSON_GetObjectItemCaseSensitive(rec, "last_error");
	const cJSON *lt = cJSON_GetObjectItemCaseSensitive(rec, "last_error_time");
	char t[32];

	if (!cJSON_IsObject(rec))
		return;
	printf("reconcile:   %ld passes, %ld failed", num(rec, "runs"), num(rec, "failed"));
	if (cJSON_IsString(le))
		printf("; last error \"%s\" at %s", le->valuestring,
		       when(cJSON_IsNumber(lt) ? lt->valuedouble : 0, t, sizeof(t)));
	putchar('\n');
}

static void status_errors(const cJSON *r)
{
	const cJSON *e, *errs = cJSON_GetObjectItemCaseSensitive(r, "last_errors");
	char t[32];

	printf("\nlast errors:%s\n", cJSON_GetArraySize(errs) ? "" : " none");
	cJSON_ArrayForEach(e, errs) {
		const cJSON *tm = cJSON_GetObjectItemCaseSensitive(e, "time");

		printf("  %s level=%s %s\n", when(cJSON_IsNumber(tm) ? tm->valuedouble : 0, t, sizeof(t)),
		       str(e, "level"), str(e, "msg"));
	}
}

/* One screen: the first line is what it always was (scripts grep it). */
static void show_status(const cJSON *r)
{
	const cJSON *lbs = cJSON_GetObjectItemCaseSensitive(r, "loadbalancers");
	const cJSON *up = cJSON_GetObjectItemCaseSensitive(r, "uptime_s");
	char d[32];

	printf("vipd %s: %s, %d load balancers, data plane %s\n", str(r, "version"),
	       str(r, "status"), cJSON_GetArraySize(lbs), str(r, "dataplane"));
	printf("process:     pid %ld, up %s, log level %s\n", num(r, "pid"),
	       duration(cJSON_IsNumber(up) ? up->valuedouble : 0, d, sizeof(d)),
	       str(r, "log_level"));
	status_announcing(r);
	status_reconcile(r);
	status_vips(r);
	status_lbs(lbs);
	status_errors(r);
}

static int cmd_status(struct ctl *c, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") != 0) {
			fprintf(stderr, "vipctl: status takes no argument but --json\n");
			return EXIT_USAGE;
		}
		c->json = true;
	}
	return simple(c, "GET", "/status", NULL, 200, show_status);
}

static int cmd_lb_create(const struct ctl *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "port", required_argument, NULL, 'p' }, { "vip", required_argument, NULL, 'a' },
		{ "protocol", required_argument, NULL, 'P' },
		{ "scheduler", required_argument, NULL, 's' },
		{ "forwarding", required_argument, NULL, 'f' },
		{ "check", required_argument, NULL, 'c' }, { "interval", required_argument, NULL, 'i' },
		{ "timeout", required_argument, NULL, 't' }, { "fall", required_argument, NULL, 'F' },
		{ "rise", required_argument, NULL, 'r' },
		{ "check-port", required_argument, NULL, 'o' },
		{ "http-path", required_argument, NULL, 'h' },
		{ "min-healthy", required_argument, NULL, 'm' }, { NULL, 0, NULL, 0 },
	};
	/* Health check flags and the health_check keys they set. */
	static const char *const hc_key[128] = {
		['c'] = "type", ['i'] = "interval", ['t'] = "timeout", ['F'] = "fail_count",
		['r'] = "rise_count", ['o'] = "port", ['h'] = "http_path", ['m'] = "min_healthy",
	};
	cJSON *o = cJSON_CreateObject(), *hc = NULL;
	char *body;
	int ch, rc;

	if (argc < 2 || argv[1][0] == '-') {
		fprintf(stderr, "vipctl: lb create NAME --port P\n");
		cJSON_Delete(o);
		return EXIT_USAGE;
	}
	cJSON_AddStringToObject(o, "name", argv[1]);
	optind = 2;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		const char *key = ch == 'p' ? "port" : ch == 'a' ? "vip" : ch == 'P' ? "protocol"
			: ch == 's' ? "scheduler" : ch == 'f' ? "forwarding" : NULL;

		if (!key && ch > 0 && ch < 128 && hc_key[ch]) {
			if (!hc)
				hc = cJSON_AddObjectToObject(o, "health_check");
			/* Numbers go as strings too: the API reads numeric strings and names the
			 * flag's key in its error. */
			cJSON_AddStringToObject(hc, hc_key[ch], optarg);
			continue;
		}
		if (!key) {
			cJSON_Delete(o);
			return EXIT_USAGE;
		}
		/* The port goes as a string; the API accepts numeric strings and checks the range. */
		cJSON_AddStringToObject(o, key, optarg);
	}
	body = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	rc = simple(c, "POST", "/loadbalancer", body, 201, show_created_lb);
	free(body);
	return rc;
}

static int cmd_lb(const struct ctl *c, int argc, char **argv)
{
	char uuid[64], path[128];
	int rc;

	if (argc < 1)
		goto usage;
	if (strcmp(argv[0], "list") == 0)
		return simple(c, "GET", "/loadbalancers", NULL, 200, print_lb_table);
	if (strcmp(argv[0], "create") == 0)
		return cmd_lb_create(c, argc, argv);
	if (argc < 2)
		goto usage;
	rc = resolve_lb(c, argv[1], uuid, sizeof(uuid));
	if (rc)
		return rc;
	snprintf(path, sizeof(path), "/loadbalancer/%s", uuid);
	if (strcmp(argv[0], "show") == 0)
		return simple(c, "GET", path, NULL, 200, print_lb);
	if (strcmp(argv[0], "delete") == 0)
		return simple(c, "DELETE", path, NULL, 200, show_deleted);
usage:
	fprintf(stderr, "vipctl: lb list|create|show|delete; see vipctl --help\n");
	return EXIT_USAGE;
}

static int cmd_backend(const struct ctl *c, int argc, char **argv)
{
	char lb[64], bu[64], path[256], ip[64];
	long port;
	int rc;

	if (argc < 3) {
		fprintf(stderr, "vipctl: backend add|remove|drain|undrain LB BACKEND; see vipctl --help\n");
		return EXIT_USAGE;
	}
	rc = resolve_lb(c, argv[1], lb, sizeof(lb));
	if (rc)
		return rc;
	if (strcmp(argv[0], "add") == 0) {
		static const struct option lo[] = {
			{ "weight", required_argument, NULL, 'w' }, { NULL, 0, NULL, 0 },
		};
		cJSON *o;
		char *body;
		int ch;

		if (split_endpoint(argv[2], ip, sizeof(ip), &port)) {
			fprintf(stderr, "vipctl: %s: expected IP:PORT or [IPv6]:PORT\n", argv[2]);
			return EXIT_USAGE;
		}
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "ip", ip);
		cJSON_AddNumberToObject(o, "port", (double)port);
		optind = 3;
		while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
			if (ch != 'w') {
				cJSON_Delete(o);
				return EXIT_USAGE;
			}
			cJSON_AddNumberToObject(o, "weight", strtod(optarg, NULL));
		}
		body = cJSON_PrintUnformatted(o);
		cJSON_Delete(o);
		snprintf(path, sizeof(path), "/loadbalancer/%s/backend", lb);
		rc = simple(c, "POST", path, body, 201, show_backend);
		free(body);
		return rc;
	}
	rc = resolve_backend(c, lb, argv[2], bu, sizeof(bu));
	if (rc)
		return rc;
	if (strcmp(argv[0], "remove") == 0) {
		snprintf(path, sizeof(path), "/loadbalancer/%s/backend/%s", lb, bu);
		return simple(c, "DELETE", path, NULL, 200, show_deleted);
	}
	if (strcmp(argv[0], "drain") == 0 || strcmp(argv[0], "undrain") == 0) {
		snprintf(path, sizeof(path), "/loadbalancer/%s/backend/%s/%s", lb, bu, argv[0]);
		return simple(c, "POST", path, NULL, 200, show_backend);
	}
	fprintf(stderr, "vipctl: backend add|remove|drain|undrain; see vipctl --help\n");
	return EXIT_USAGE;
}

static char *read_token(const char *path)
{
	char buf[4097];
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f) {
		fprintf(stderr, "vipctl: cannot read token file %s: %s\n", path, strerror(errno));
		return NULL;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	return strdup(buf);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "api", required_argument, NULL, 'a' }, { "token-file", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' }, { "version", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	struct ctl c = { getenv("VIPCTL_API"), NULL, false };
	const char *token_file = getenv("VIPCTL_TOKEN_FILE");
	int ch, rc;

	if (!c.api || !*c.api)
		c.api = "http://127.0.0.1:10001";
	/* "+": stop at the command so its own flags are parsed by it. */
	while ((ch = getopt_long(argc, argv, "+vh", lo, NULL)) != -1) {
		switch (ch) {
		case 'a':
			c.api = optarg;
			break;
		case 't':
			token_file = optarg;
			break;
		case 'j':
			c.json = true;
			break;
		case 'v':
			printf("vipctl %s\n", PACKAGE_VERSION);
			return 0;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs(usage, stderr);
			return EXIT_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	if (token_file && *token_file && !(c.token = read_token(token_file)))
		return EXIT_USAGE;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (strcmp(argv[0], "lb") == 0)
		rc = cmd_lb(&c, argc - 1, argv + 1);
	else if (strcmp(argv[0], "backend") == 0)
		rc = cmd_backend(&c, argc - 1, argv + 1);
	else if (strcmp(argv[0], "status") == 0)
		rc = cmd_status(&c, argc, argv);
	else {
		fprintf(stderr, "vipctl: unknown command %s\n%s", argv[0], usage);
		rc = EXIT_USAGE;
	}
	curl_global_cleanup();
	free(c.token);
	return rc;
}
