#include "announce/arp.h"

#include <errno.h>
#include <ev.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "announce/addrs.h"
#include "announce/garp.h"
#include "log.h"

/*
 * A newly announced VIP gets ARP_BURST rounds ARP_BURST_GAP_S apart. The first goes at once,
 * since how fast it lands is the failover time clients see; the repeats cover a frame lost
 * to a momentary drop (a full queue, a switch still moving the MAC between ports) and are
 * all out within 0.2 s. Longer outages are the periodic refresh's job.
 */
#define ARP_BURST 3
#define ARP_BURST_GAP_S 0.1

struct arp_vip {
	struct ip_addr ip;
	unsigned burst; /* burst rounds still to send */
};

struct arp {
	struct announcer an;
	struct ev_loop *loop;
	int ifindex;
	char ifname[IF_NAMESIZE];
	int fd; /* AF_PACKET, send only */
	struct addrs *addrs;
	struct arp_vip *vips; /* sorted by address */
	size_t n;
	double refresh_s;
	ev_timer burst;
	ev_timer refresh;
	int send_err; /* of the last round, so only changes are logged */
};

static int arp_mac(struct arp *a, uint8_t mac[6], int *hwtype)
{
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", a->ifname);
	if (ioctl(a->fd, SIOCGIFHWADDR, &ifr) < 0)
		return -errno;
	memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
	if (hwtype)
		*hwtype = ifr.ifr_hwaddr.sa_family;
	return 0;
}

static int arp_send_frame(struct arp *a, const uint8_t *f, int len)
{
	struct sockaddr_ll sll = {
		.sll_family = AF_PACKET,
		.sll_ifindex = a->ifindex,
		.sll_halen = ETH_ALEN,
	};

	memcpy(&sll.sll_protocol, f + 12, 2);
	memcpy(sll.sll_addr, f, ETH_ALEN);
	if (sendto(a->fd, f, (size_t)len, MSG_DONTWAIT, (struct sockaddr *)&sll, sizeof(sll)) < 0)
		return -errno;
	return 0;
}

/* IPv4: a request and a reply, since devices learn from one or the other. IPv6: an NA. */
static int arp_send_vip(struct arp *a, const uint8_t mac[6], const struct ip_addr *ip)
{
	uint8_t f[GARP_NA_FRAME_LEN];
	int len, err;

	if (ip->family == AF_INET) {
		len = garp_arp_build(f, sizeof(f), mac, ip->v4, ARPOP_REQUEST);
		err = len < 0 ? len : arp_send_frame(a, f, len);
		if (err)
			return err;
		len = garp_arp_build(f, sizeof(f), mac, ip->v4, ARPOP_REPLY);
	} else {
		len = garp_na_build(f, sizeof(f), mac, &ip->v6);
	}
	return len < 0 ? len : arp_send_frame(a, f, len);
}

static void arp_round_result(struct arp *a, int err)
{
	if (err == a->send_err)
		return;
	if (err)
		log_warn("msg=\"cannot send announcements\" iface=%s err=\"%s\"", a->ifname,
			 strerror(-err));
	else
		log_info("msg=\"announcements sent again\" iface=%s", a->ifname);
	a->send_err = err;
}

/*
 * One round: every announced VIP (refresh), or those still in their burst (counting it
 * down). The MAC is read each round so a changed one (a bond failing over) is what goes out.
 */
static void arp_round(struct arp *a, bool burst_only)
{
	uint8_t mac[ETH_ALEN];
	int err, first = 0;

	err = arp_mac(a, mac, NULL);
	if (err) {
		arp_round_result(a, err);
		return;
	}
	for (size_t i = 0; i < a->n; i++) {
		struct arp_vip *v = &a->vips[i];

		if (burst_only && !v->burst)
			continue;
		if (burst_only)
			v->burst--;
		err = arp_send_vip(a, mac, &v->ip);
		first = first ? first : err;
	}
	arp_round_result(a, first);
}

static bool arp_bursting(const struct arp *a)
{
	for (size_t i = 0; i < a->n; i++)
		if (a->vips[i].burst)
			return true;
	return false;
}

static void burst_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct arp *a = w->data;

	(void)revents;
	arp_round(a, true);
	if (!arp_bursting(a))
		ev_timer_stop(loop, w);
}

static void refresh_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	arp_round(w->data, false);
}

static int vip_cmp(const void *a, const void *b)
{
	return ip_addr_cmp(&((const struct arp_vip *)a)->ip, &((const struct arp_vip *)b)->ip);
}

static int arp_sync(struct announcer *an, const struct ip_addr *ips, size_t n)
{
	struct arp *a = (struct arp *)an;
	struct arp_vip *nv = NULL;
	size_t w = 0, added = 0, kept = 0;
	char s[IP_ADDR_STRLEN];
	int err;

	/* The addresses first, so the node answers for a VIP before claiming it. */
	err = addrs_sync(a->addrs, ips, n);
	if (n && !(nv = calloc(n, sizeof(*nv))))
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		nv[i].ip = ips[i];
	if (n)
		qsort(nv, n, sizeof(*nv), vip_cmp);
	for (size_t i = 0; i < n; i++) {
		const struct arp_vip *old;

		if (!ip_addr_is_set(&nv[i].ip) || (w && ip_addr_equal(&nv[w - 1].ip, &nv[i].ip)))
			continue;
		nv[w] = nv[i];
		old = a->n ? bsearch(&nv[w], a->vips, a->n, sizeof(*a->vips), vip_cmp) : NULL;
		if (old) {
			nv[w].burst = old->burst;
			kept++;
		} else {
			nv[w].burst = ARP_BURST;
			added++;
			log_debug("msg=\"announcing\" iface=%s vip=%s", a->ifname,
				  ip_addr_str(&nv[w].ip, s));
		}
		w++;
	}
	for (size_t i = 0; i < a->n; i++)
		if (!w || !bsearch(&a->vips[i], nv, w, sizeof(*nv), vip_cmp))
			log_debug("msg=\"announcement withdrawn\" iface=%s vip=%s", a->ifname,
				  ip_addr_str(&a->vips[i].ip, s));
	if (added || kept != a->n)
		log_info("msg=\"announcements changed\" iface=%s announced=%zu new=%zu withdrawn=%zu",
			 a->ifname, w, added, a->n - kept);
	free(a->vips);
	a->vips = nv;
	a->n = w;

	if (added) {
		arp_round(a, true);
		if (!ev_is_active(&a->burst))
			ev_timer_again(a->loop, &a->burst);
	}
	if (!a->n) {
		ev_timer_stop(a->loop, &a->burst);
		ev_timer_stop(a->loop, &a->refresh);
	} else if (a->refresh_s > 0 && !ev_is_active(&a->refresh)) {
		ev_timer_again(a->loop, &a->refresh);
	}
	return err;
}

static void arp_withdraw_all(struct announcer *an)
{
	arp_sync(an, NULL, 0);
}

static void arp_free(struct announcer *an)
{
	struct arp *a = (struct arp *)an;

	if (!a)
		return;
	ev_timer_stop(a->loop, &a->burst);
	ev_timer_stop(a->loop, &a->refresh);
	addrs_free(a->addrs);
	if (a->fd >= 0)
		close(a->fd);
	free(a->vips);
	free(a);
}

static const struct announcer_ops arp_ops = {
	.name = "arp",
	.sync = arp_sync,
	.withdraw_all = arp_withdraw_all,
	.free = arp_free,
};

int arp_announcer_new(struct ev_loop *loop, const char *adapter, double refresh_s,
		      struct announcer **out)
{
	struct arp *a;
	uint8_t mac[ETH_ALEN];
	int err, hwtype = 0;

	*out = NULL;
	if (!(refresh_s >= 0)) {
		log_error("msg=\"ARP refresh interval must be 0 or more seconds\"");
		return -EINVAL;
	}
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->an.ops = &arp_ops;
	a->loop = loop;
	a->refresh_s = refresh_s;
	a->fd = -1;
	if (!adapter || strlen(adapter) >= sizeof(a->ifname) ||
	    !(a->ifindex = (int)if_nametoindex(adapter))) {
		err = -ENODEV;
		log_error("msg=\"no such adapter\" iface=%s", adapter ? adapter : "");
		goto fail;
	}
	snprintf(a->ifname, sizeof(a->ifname), "%s", adapter);
	/* Protocol 0: this socket only sends, the kernel queues nothing to it. */
	a->fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	if (a->fd < 0) {
		err = -errno;
		log_error("msg=\"cannot open a packet socket\" iface=%s err=\"%s\"", a->ifname,
			  strerror(-err));
		goto fail;
	}
	err = arp_mac(a, mac, &hwtype);
	if (!err && hwtype != ARPHRD_ETHER)
		err = -EINVAL;
	if (err) {
		log_error("msg=\"adapter is not an Ethernet interface\" iface=%s err=\"%s\"",
			  a->ifname, strerror(-err));
		goto fail;
	}
	a->addrs = addrs_new(loop, a->ifindex);
	if (!a->addrs) {
		err = -errno;
		log_error("msg=\"cannot watch the adapter's addresses\" iface=%s err=\"%s\"",
			  a->ifname, strerror(-err));
		goto fail;
	}
	ev_init(&a->burst, burst_cb);
	a->burst.repeat = ARP_BURST_GAP_S;
	a->burst.data = a;
	ev_init(&a->refresh, refresh_cb);
	a->refresh.repeat = refresh_s;
	a->refresh.data = a;
	*out = &a->an;
	return 0;
fail:
	arp_free(&a->an);
	return err;
}
