/*
 * The kernel's "IPVS" generic-netlink family as bytes: requests built into a caller's buffer
 * and replies (dumps, acknowledgements) parsed from what recv() returned. Pure: no I/O, no
 * allocation, so the wire format has unit tests and a fuzz target and ipvs.c keeps only the
 * socket and the diff.
 *
 * The layout is <linux/ip_vs.h>: every request carries a nested IPVS_CMD_ATTR_SERVICE (the
 * key; for NEW/SET_SERVICE also scheduler, flags, timeout and netmask) and, for destination
 * commands, a nested IPVS_CMD_ATTR_DEST. Dumps answer with one IPVS_CMD_NEW_SERVICE or
 * IPVS_CMD_NEW_DEST message per entry, ended by NLMSG_DONE.
 */
#ifndef VIPD_IPVS_MSG_H
#define VIPD_IPVS_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"

#define IPVS_SCHED_MAX 16 /* IP_VS_SCHEDNAME_MAXLEN, the NUL included */

/* What identifies a virtual service: family (addr.family), protocol, address and port. */
struct ipvs_service_key {
	struct ip_addr addr;
	uint16_t protocol; /* IPPROTO_TCP, IPPROTO_UDP */
	uint16_t port;     /* host order */
};

struct ipvs_stats {
	uint64_t conns; /* connections scheduled */
	uint64_t inpkts;
	uint64_t outpkts;
	uint64_t inbytes;
	uint64_t outbytes;
};

struct ipvs_service {
	struct ipvs_service_key key; /* for a fwmark service only key.addr.family is set */
	uint32_t fwmark;             /* non-zero: a firewall-mark service */
	char sched[IPVS_SCHED_MAX];
	uint32_t flags;              /* IP_VS_SVC_F_* */
	uint32_t timeout;            /* persistence, seconds */
	uint32_t netmask;            /* persistence granularity: 0xffffffff, or 128 for IPv6 */
	struct ipvs_stats stats;
};

struct ipvs_dest {
	struct ip_addr addr;
	uint16_t port;           /* host order */
	uint32_t fwd;            /* IP_VS_CONN_F_MASQ, _DROUTE, _TUNNEL */
	uint32_t weight;
	uint32_t u_thresh;
	uint32_t l_thresh;
	uint8_t tun_type;        /* IP_VS_CONN_F_TUNNEL_TYPE_* when fwd is tunnel */
	uint32_t active_conns;   /* replies only */
	uint32_t inact_conns;    /* replies only */
	struct ipvs_stats stats; /* replies only */
};

/*
 * Appends one request to buf (cap bytes, *len used; buf aligned to 4) and advances *len;
 * family is the resolved id of "IPVS". NEW/SET_SERVICE send all of svc, DEL_SERVICE only its
 * key; NEW/SET/DEL_DEST send key and dest (DEL only the dest's address and port). No
 * acknowledgement is asked for: the kernel reports failures anyway, so a batch of changes
 * sets NLM_F_ACK on its last message only and learns it is complete from that one answer.
 * 0, -EINVAL for another command or a key without a family, -EMSGSIZE when it does not fit
 * (nothing appended).
 */
int ipvs_msg_service(void *buf, size_t cap, size_t *len, uint16_t family, uint8_t cmd,
		     uint32_t seq, const struct ipvs_service *svc);
int ipvs_msg_dest(void *buf, size_t cap, size_t *len, uint16_t family, uint8_t cmd,
		  uint32_t seq, const struct ipvs_service_key *key, const struct ipvs_dest *d);
/* A dump of every service, or of the destinations of the service key. */
int ipvs_msg_dump_services(void *buf, size_t cap, size_t *len, uint16_t family, uint32_t seq);
int ipvs_msg_dump_dests(void *buf, size_t cap, size_t *len, uint16_t family, uint32_t seq,
			const struct ipvs_service_key *key);

/*
 * What a reply walk hands over; each callback returns 0 to go on or a negative value that
 * stops the walk and becomes its result. NULL callbacks skip their messages. seq is the
 * message's nlmsg_seq (a dump's entries carry the dump request's).
 */
struct ipvs_reply_ops {
	int (*service)(void *arg, uint32_t seq, const struct ipvs_service *s);
	int (*dest)(void *arg, uint32_t seq, const struct ipvs_dest *d);
	/* NLMSG_ERROR: error is 0 (an acknowledgement) or the kernel's -errno. */
	int (*ack)(void *arg, uint32_t seq, int error);
};

/*
 * Walks the netlink messages in buf[0..len) (one recv(), buf aligned to 4) from family.
 * dest_af is the address family of destinations that do not name theirs (kernels before
 * mixed-family support): the dumped service's. Unknown attributes and message types are
 * skipped. Returns 1 when an NLMSG_DONE ends a dump (its error instead, if it carries one),
 * 0 when more may follow, -EPROTO for anything malformed (entries before it were handed
 * over), or what a callback returned.
 */
int ipvs_reply_parse(const void *buf, size_t len, uint16_t family, int dest_af,
		     const struct ipvs_reply_ops *ops, void *arg);

/* "tcp 192.0.2.1 80", "udp fd00::1 53": a key as the ownership file records it. */
#define IPVS_KEY_STRLEN (4 + IP_ADDR_STRLEN + 6)
const char *ipvs_key_format(const struct ipvs_service_key *k, char buf[IPVS_KEY_STRLEN]);
/* Parses s[0..len) (one line, no newline) of that form. 0 or -EINVAL. */
int ipvs_key_parse(const char *s, size_t len, struct ipvs_service_key *out);

#endif
