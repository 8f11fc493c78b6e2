/*
 * vipd's record of the Equinix Metal reservations it made: STATE_DIR/metal-ips, one line per
 * reservation, written (atomically) before an address is handed to a load balancer and
 * before a release is sent, so that a restart after kill -9 neither reserves a second
 * address for a load balancer nor forgets one it has to give back:
 *
 *	# comment
 *	<load balancer uuid> <reservation id> <IPv4 address>
 *	- <reservation id> <IPv4 address>		(being released)
 *
 * Pure: text in, entries out, and back. The file is vipd's own, but a person may have edited
 * it, so the parser checks everything and says which line is wrong.
 */
#ifndef VIPD_METAL_STATE_H
#define VIPD_METAL_STATE_H

#include <stdbool.h>
#include <stddef.h>

#include "../src/addr.h"
#include "../src/model.h"
#include "metal_msg.h"

#define METAL_STATE_FILE "metal-ips"
#define METAL_STATE_MAX METAL_LIST_MAX

struct metal_state_entry {
	char lb[UUID_STR_LEN];	/* lowercase; "" for a reservation being released */
	char id[METAL_ID_MAX];
	struct ip_addr addr;	/* IPv4 */
	bool in_use;		/* not stored: a load balancer holds the address now */
};

/*
 * Parses the whole file (text, len; need not be NUL-terminated). *out is malloc'd (free()
 * it; NULL when there are no entries), *n its length. -EINVAL with err naming the line: not
 * three fields, a bad uuid, id or address, an id or load balancer twice, a NUL byte;
 * -E2BIG beyond METAL_STATE_MAX entries; -ENOMEM.
 */
int metal_state_parse(const char *text, size_t len, struct metal_state_entry **out, size_t *n,
		      char *err, size_t errlen);

/* The file's text for e[0..n): a header, then one line per entry. *out is NUL-terminated,
 * free() it. 0 or -ENOMEM. */
int metal_state_format(const struct metal_state_entry *e, size_t n, char **out, size_t *len);

#endif
