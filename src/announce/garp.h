/*
 * Frames that tell a link "this address now lives at this MAC": gratuitous ARP for IPv4 and
 * unsolicited neighbour advertisements for IPv6. Pure builders (no sockets), so the exact
 * bytes are unit tested; the L2 announcer (arp.c) sends them from an AF_PACKET socket.
 */
#ifndef VIPD_GARP_H
#define VIPD_GARP_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

/* Ethernet + ARP (42 bytes), zero-padded to the 60-byte minimum frame: veth and some
 * drivers send short frames as they are, and receivers may drop runts. */
#define GARP_ARP_FRAME_LEN 60
/* Ethernet + IPv6 + NA + target link-layer address option. */
#define GARP_NA_FRAME_LEN 86

/*
 * A gratuitous ARP for vip from mac, to the broadcast address. op is ARPOP_REQUEST or
 * ARPOP_REPLY: hosts and switches differ in which one they learn from, so both are sent.
 * Sender and target protocol addresses are both vip; the target hardware address is zero
 * in a request and mac in a reply (Linux takes a reply as gratuitous only when the target
 * hardware address equals the sender's). Writes GARP_ARP_FRAME_LEN bytes into buf:
 * that length, or -ENOSPC if len is smaller, -EINVAL for another op.
 */
int garp_arp_build(uint8_t *buf, size_t len, const uint8_t mac[6], struct in_addr vip, int op);

/*
 * An unsolicited neighbour advertisement (RFC 4861 7.2.6) for target from mac: to all
 * nodes (ff02::1, 33:33:00:00:00:01), source the target itself, hop limit 255, override
 * flag set (so receivers replace a cached MAC), solicited and router flags clear, with a
 * target link-layer address option and the ICMPv6 checksum filled in. Writes
 * GARP_NA_FRAME_LEN bytes into buf: that length or -ENOSPC.
 */
int garp_na_build(uint8_t *buf, size_t len, const uint8_t mac[6], const struct in6_addr *target);

#endif
