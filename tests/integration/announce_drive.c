/*
 * Test driver for the L2 announcer: runs arp_announcer_new(ADAPTER, REFRESH_S) on a libev
 * loop and takes commands on stdin, one a line, answering each on stdout:
 *   sync [IP...]   announce exactly these VIPs     -> "sync RC"
 *   withdraw       withdraw_all                     -> "withdraw 0"
 * End of input frees the announcer without withdrawing (as a vipd that exits uncleanly
 * leaves things) and exits 0. Logs (debug) go to stderr.
 *   announce_drive ADAPTER REFRESH_S
 */
#include <errno.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "announce/arp.h"
#include "log.h"

#define MAX_VIPS 4096

static struct announcer *an;

static void command(char *line)
{
	static struct ip_addr vips[MAX_VIPS];
	char *tok, *save = NULL;
	size_t n = 0;

	tok = strtok_r(line, " \t\n", &save);
	if (!tok)
		return;
	if (!strcmp(tok, "withdraw")) {
		an->ops->withdraw_all(an);
		printf("withdraw 0\n");
	} else if (!strcmp(tok, "sync")) {
		while ((tok = strtok_r(NULL, " \t\n", &save)) && n < MAX_VIPS) {
			if (ip_addr_parse(tok, &vips[n]) < 0) {
				printf("sync %d\n", -EINVAL);
				fflush(stdout);
				return;
			}
			n++;
		}
		printf("sync %d\n", an->ops->sync(an, vips, n));
	} else {
		printf("unknown %s\n", tok);
	}
	fflush(stdout);
}

static void stdin_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	char line[65536];

	(void)revents;
	if (!fgets(line, sizeof(line), stdin)) {
		ev_io_stop(loop, w);
		ev_break(loop, EVBREAK_ALL);
		return;
	}
	command(line);
}

int main(int argc, char **argv)
{
	struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
	ev_io in;
	int err;

	if (argc != 3) {
		fprintf(stderr, "usage: %s ADAPTER REFRESH_S\n", argv[0]);
		return 2;
	}
	log_set_level(LOG_LVL_DEBUG);
	/* Line-buffered stdin would hide lines from the loop: read unbuffered. */
	setvbuf(stdin, NULL, _IONBF, 0);
	err = arp_announcer_new(loop, argv[1], atof(argv[2]), &an);
	if (err) {
		fprintf(stderr, "arp_announcer_new: %s\n", strerror(-err));
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	ev_io_init(&in, stdin_cb, 0, EV_READ);
	ev_io_start(loop, &in);
	ev_run(loop, 0);
	an->ops->free(an);
	return 0;
}
