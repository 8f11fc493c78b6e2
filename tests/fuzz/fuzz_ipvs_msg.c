/*
 * ipvs_reply_parse on arbitrary bytes as if the kernel had sent them: never reads out of
 * bounds, and what it hands over has a family IPVS knows and a terminated scheduler name.
 * The same bytes as a line of the ownership file: what parses formats back to itself.
 */
#include <linux/genetlink.h>
#include <linux/ip_vs.h>
#include <linux/netlink.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "dataplane/ipvs_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int on_service(void *arg, uint32_t seq, const struct ipvs_service *s)
{
	(void)arg;
	(void)seq;
	if ((s->key.addr.family != AF_INET && s->key.addr.family != AF_INET6) ||
	    strnlen(s->sched, IPVS_SCHED_MAX) == IPVS_SCHED_MAX)
		abort();
	return 0;
}

static int on_dest(void *arg, uint32_t seq, const struct ipvs_dest *d)
{
	(void)arg;
	(void)seq;
	if (d->addr.family != AF_INET && d->addr.family != AF_INET6)
		abort();
	return 0;
}

static int on_ack(void *arg, uint32_t seq, int error)
{
	(void)arg;
	(void)seq;
	if (error > 0 || error <= -4096)
		abort();
	return 0;
}

static const struct ipvs_reply_ops ops = {
	.service = on_service, .dest = on_dest, .ack = on_ack,
};

/* Parses buf (len bytes, copied to an exact-size aligned heap block) both ways. */
static void parse(const void *bytes, size_t len, uint16_t family)
{
	void *buf = aligned_alloc(NLMSG_ALIGNTO, len ? (len + 3) & ~(size_t)3 : 4);
	int r;

	if (!buf)
		return;
	memcpy(buf, bytes, len);
	for (int af = AF_INET; af <= AF_INET6; af += AF_INET6 - AF_INET) {
		r = ipvs_reply_parse(buf, len, family, af, &ops, NULL);
		if (r > 1 || r <= -4096)
			abort();
	}
	free(buf);
}

/*
 * The input as the attributes of a dump entry, and as the inside of its service or
 * destination nest, with every length around it right: the fuzzer need not find those.
 */
static void parse_wrapped(const uint8_t *data, size_t size, uint16_t family, bool nest)
{
	static uint8_t msg[NLMSG_HDRLEN + GENL_HDRLEN + NLA_HDRLEN + 65536]
		__attribute__((aligned(NLMSG_ALIGNTO)));
	struct nlmsghdr *nh = (struct nlmsghdr *)msg;
	struct genlmsghdr *g = NLMSG_DATA(nh);
	struct nlattr *a = (struct nlattr *)((uint8_t *)g + GENL_HDRLEN);
	size_t hdr = NLMSG_HDRLEN + GENL_HDRLEN + (nest ? NLA_HDRLEN : 0);
	int dest = size && (data[0] & 1);

	if (size > 65535 - NLA_HDRLEN)
		return;
	memset(msg, 0, hdr);
	nh->nlmsg_len = (uint32_t)(hdr + size);
	nh->nlmsg_type = family;
	g->cmd = dest ? IPVS_CMD_NEW_DEST : IPVS_CMD_NEW_SERVICE;
	if (nest) {
		a->nla_len = (uint16_t)(NLA_HDRLEN + size);
		a->nla_type = dest ? IPVS_CMD_ATTR_DEST : IPVS_CMD_ATTR_SERVICE;
	}
	memcpy(msg + hdr, data, size);
	parse(msg, hdr + size, family);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ipvs_service_key k, back;
	char text[IPVS_KEY_STRLEN];
	uint16_t family = 0x1d;

	if (size >= 6)
		memcpy(&family, data + 4, sizeof(family)); /* often the first message's own type */
	parse(data, size, family);
	parse_wrapped(data, size, 0x1d, false);
	parse_wrapped(data, size, 0x1d, true);
	if (ipvs_key_parse((const char *)data, size, &k) == 0) {
		ipvs_key_format(&k, text);
		if (ipvs_key_parse(text, strlen(text), &back) || !ip_addr_equal(&k.addr, &back.addr) ||
		    k.port != back.port || k.protocol != back.protocol)
			abort();
	}
	return 0;
}
