/*
 * L2 mode: the VIPs live on the adapter (through addrs) and the link is told where they
 * are by gratuitous ARP (IPv4) and unsolicited neighbour advertisements (IPv6), sent from
 * an AF_PACKET socket on the adapter: a short burst when a VIP is newly announced, then a
 * refresh of every announced VIP so switch FDBs and neighbour caches never age out. A
 * withdrawn VIP leaves the adapter and is no longer announced.
 */
#ifndef VIPD_ARP_H
#define VIPD_ARP_H

#include "announce/announcer.h"

struct ev_loop;

/* Default seconds between refreshes: under the shortest common cache lifetimes (Linux
 * neighbour entries go stale after 15-45 s, switch FDBs age out after 300 s). */
#define ARP_REFRESH_DEFAULT_S 3.0

/*
 * The L2 announcer on adapter (an Ethernet interface), refreshing every refresh_s seconds
 * (0: no refresh, only the burst on announce). 0 and *out set, or -errno (logged):
 * -ENODEV for no such interface, -EINVAL for a non-Ethernet one or a negative refresh_s.
 */
int arp_announcer_new(struct ev_loop *loop, const char *adapter, double refresh_s,
		      struct announcer **out);

#endif
