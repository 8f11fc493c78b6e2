/*
 * Every cloud/metal_msg parser on arbitrary bytes, and the request builder on strings cut from
 * them (its body must be JSON whose tags the reservation parser reads back). What is refused must say why without a
 * control character; what is accepted must keep the header's promises: a CREATED reservation
 * has an IPv4 address, parsed neighbours always render, and the BIRD file holds quotes only
 * around passwords. The error-message cleaner and the backoff schedule stay in bounds.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <cjson/cJSON.h>

#include "cloud/metal_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_err(int r, const char *err)
{
	if (r == 0 && err[0])
		abort();
	if (r != 0 && !err[0])
		abort();
	for (const char *p = err; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			abort();
}

/* Quotes only as password "..." and no control character but newline and tab. */
static void check_bird(const char *out, size_t len)
{
	const char *line = out;

	if (strlen(out) != len)
		abort();
	while (*line) {
		const char *end = strchr(line, '\n'), *q = memchr(line, '"', (size_t)(end - line));

		if (!end)
			abort(); /* every line ends */
		for (const char *p = line; p < end; p++)
			if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f)
				abort();
		if (q) {
			const char *q2 = memchr(q + 1, '"', (size_t)(end - q - 1));

			if (strncmp(line, "\tpassword \"", 11) != 0 || !q2 || q2 != end - 2 ||
			    memcmp(end - 2, "\";", 2) != 0)
				abort();
		}
		line = end + 1;
	}
}

static void check_bgp(const struct metal_bgp *b, const struct metal_address *addrs, size_t n)
{
	struct metal_peer_route routes[METAL_BGP_MAX_NEIGHBORS * METAL_BGP_MAX_PEERS];
	char err[256], *out;
	size_t len, nr;
	int r;

	err[0] = 'x';
	r = metal_bird_peers(b, &out, &len, err, sizeof(err));
	if (r == -ENOMEM)
		return;
	if (r)
		abort(); /* the parser promised these render */
	check_bird(out, len);
	free(out);
	r = metal_peer_routes(b, addrs, n, routes, sizeof(routes) / sizeof(routes[0]), &nr, err,
			      sizeof(err));
	if (r && r != -ENOENT)
		abort();
	for (size_t i = 0; !r && i < nr; i++)
		if (routes[i].dst.family != routes[i].via.family)
			abort();
}

/* The input as NUL-separated fields: metro, facility, uuid, name, hostname, comments. */
static void check_body(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), *f[6] = { 0 }, *body, err[256];
	struct metal_reserve r;
	struct metal_ip ip;
	cJSON *j, *res;
	size_t k = 0;

	if (!s)
		return;
	memcpy(s, data, size);
	s[size] = '\0';
	for (char *p = s; k < 6 && p <= s + size; p += strlen(p) + 1)
		f[k++] = p;
	r = (struct metal_reserve){ .metro = f[0], .facility = f[1], .lb_uuid = f[2],
				    .lb_name = f[3], .hostname = f[4], .comments = f[5] };
	if (metal_reserve_body(&r, &body) == 0) {
		j = cJSON_Parse(body);
		res = cJSON_Parse("{\"id\":\"a\",\"type\":\"public_ipv4\",\"state\":\"pending\"}");
		if (!j || !res)
			abort();
		cJSON_AddItemToObject(res, "tags", cJSON_DetachItemFromObject(j, "tags"));
		free(body);
		body = cJSON_PrintUnformatted(res);
		if (!body || metal_ip_parse(body, strlen(body), &ip, err, sizeof(err)) ||
		    !ip.vipd || strcasecmp(ip.lb_uuid, f[2]) ||
		    (f[4] && strcmp(ip.host, f[4])))
			abort();
		cJSON_Delete(j);
		cJSON_Delete(res);
		free(body);
	}
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct metal_device_list dl = { 0 };
	struct metal_ip_list il = { 0 };
	struct metal_metadata md;
	struct metal_owned own;
	struct metal_page pg;
	struct metal_bgp bgp;
	struct metal_ip ip;
	char err[256], url[600], msg[96];
	size_t idx;
	int r;

	r = metal_ip_parse(text, size, &ip, err, sizeof(err));
	check_err(r, err);
	if (r == 0 && ip.state == METAL_IP_CREATED && ip.address.family != AF_INET)
		abort();

	/* The same page twice: it appends. */
	for (int i = 0; i < 2; i++) {
		r = metal_ip_list_parse(text, size, &il, &pg, err, sizeof(err));
		check_err(r, err);
		if (r == 0 && metal_page_next_url("https://api.equinix.com/metal/v1", &pg, url,
						  sizeof(url)) == 0 && strncmp(url, "https://api.equinix.com/", 24))
			abort();
	}
	if (metal_ip_list_own(&il, "ny", "ny5", NULL, 0, &own) == 0) {
		for (size_t i = 0; i < own.n_own; i++)
			if (own.own[i].ip >= il.n || metal_own_find(&own, own.own[i].lb_uuid) !=
							     &own.own[i])
				abort();
		for (size_t i = 0; i < own.n_extra; i++)
			if (own.extra[i] >= il.n)
				abort();
		metal_owned_free(&own);
	}
	metal_ip_list_free(&il);

	r = metal_device_list_parse(text, size, &dl, NULL, err, sizeof(err));
	check_err(r, err);
	for (size_t i = 0; r == 0 && i < dl.n; i++) {
		int f = metal_device_find(&dl, dl.devices[i].hostname, &idx);

		if (f != -EEXIST && dl.devices[i].hostname[0] && (f != 0 || idx != i))
			abort();
	}
	metal_device_list_free(&dl);

	r = metal_bgp_parse(text, size, &bgp, err, sizeof(err));
	check_err(r, err);
	if (r == 0) {
		check_bgp(&bgp, NULL, 0);
		metal_bgp_free(&bgp);
	}

	r = metal_metadata_parse(text, size, &md, err, sizeof(err));
	check_err(r, err);
	if (r == 0) {
		check_bgp(&md.bgp, md.addresses, md.n_addresses);
		metal_metadata_free(&md);
	}

	for (size_t n = 1; n <= sizeof(msg); n += 19) {
		metal_error_message(text, size, msg, n);
		if (strlen(msg) >= n)
			abort();
		for (const char *p = msg; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				abort();
	}

	check_body(data, size);

	if (size >= 9) {
		uint32_t rnd, d;
		int32_t ra;

		memcpy(&rnd, data + 1, 4);
		memcpy(&ra, data + 5, 4);
		d = metal_backoff_ms(data[0], rnd, ra < 0 ? -1 : ra);
		if (d < METAL_BACKOFF_MIN_MS ||
		    d > (ra < 0 ? METAL_BACKOFF_CAP_MS : METAL_RETRY_AFTER_MAX_S * 1000u +
						       METAL_RETRY_AFTER_JITTER_MS) ||
		    (ra >= 0 && d < (uint32_t)(ra > METAL_RETRY_AFTER_MAX_S ?
						       METAL_RETRY_AFTER_MAX_S : ra) * 1000u))
			abort();
	}
	return 0;
}
