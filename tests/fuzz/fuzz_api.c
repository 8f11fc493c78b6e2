/* api_handle on arbitrary requests: method from the first byte, path up to the first
 * newline, the rest is the body. A fresh model and IPAM each run, with one load balancer
 * whose uuid the input may reach with the "@" placeholder in the path. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "cloud/ipam.h"
#include "log.h"
#include "model.h"
#include "store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const methods[] = { "GET", "POST", "DELETE", "PUT" };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ipam_range r;
	struct store st = { 0 };
	struct api_ctx ctx = { 0 };
	struct api_request req;
	struct api_response resp;
	struct lb *lb;
	char err[128], path[512], *body;
	const uint8_t *nl;
	size_t plen, o = 0;

	if (size < 1)
		return 0;
	log_set_level(LOG_LVL_ERROR);
	ipam_range_parse("10.0.0.0/29", &r, err, sizeof(err));
	st.model = model_new();
	st.vips = ipam_new(&r, 1);
	ctx.store = &st;
	lb = lb_new();
	lb_set_name(lb, "seed");
	lb->port = 80;
	store_create_lb(&st, lb, err, sizeof(err));

	req.method = methods[data[0] % 4];
	data++;
	size--;
	nl = memchr(data, '\n', size);
	plen = nl ? (size_t)(nl - data) : size;
	/* "@" stands for the seeded uuid so deeper routes are reachable */
	for (size_t i = 0; i < plen && o + UUID_STR_LEN < sizeof(path); i++) {
		if (data[i] == '@') {
			memcpy(path + o, lb->uuid, UUID_STR_LEN - 1);
			o += UUID_STR_LEN - 1;
		} else {
			path[o++] = data[i] ? (char)data[i] : '_';
		}
	}
	path[o] = '\0';
	req.path = path;
	size = nl ? size - plen - 1 : 0;
	body = malloc(size + 1);
	memcpy(body, nl ? nl + 1 : data, size);
	body[size] = '\0';
	req.body = body;
	req.body_len = size;
	api_handle(&ctx, &req, &resp);
	if (!resp.body || resp.status < 200 || resp.status > 599)
		abort();
	free(resp.body);
	free(body);
	model_free(st.model);
	st.vips->ops->free(st.vips);
	return 0;
}
