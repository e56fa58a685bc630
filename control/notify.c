/*
 * notify.c - systemd's service notification protocol (sd_notify(3)), spoken
 * directly: one datagram of "KEY=VALUE\n" lines to the AF_UNIX socket named
 * by $NOTIFY_SOCKET ('@' = abstract namespace). No libsystemd: the protocol
 * is stable and this is all of it that sluiced needs (READY, STATUS,
 * STOPPING, WATCHDOG). Without $NOTIFY_SOCKET every call is a no-op.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "control/notify.h"

int
notify_send(const char *text)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	size_t path_size;
	socklen_t addr_size;
	ssize_t sent;
	int fd;

	if (path == NULL || path[0] == '\0')
		return 0;
	path_size = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || path_size >= sizeof(addr.sun_path))
		return -EINVAL;
	memcpy(addr.sun_path, path, path_size);
	if (path[0] == '@')
		addr.sun_path[0] = '\0';
	addr_size = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + path_size);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	sent = sendto(fd, text, strlen(text), MSG_NOSIGNAL, (const struct sockaddr *)&addr,
		      addr_size);
	close(fd);
	return sent < 0 ? -errno : 0;
}

uint64_t
notify_watchdog_usec(void)
{
	const char *usec = getenv("WATCHDOG_USEC");
	const char *pid = getenv("WATCHDOG_PID");
	char *end;
	unsigned long long value;

	if (usec == NULL || usec[0] == '\0')
		return 0;
	/* WATCHDOG_PID, when set, names the process that must ping: maybe not us. */
	if (pid != NULL && pid[0] != '\0' && strtol(pid, NULL, 10) != (long)getpid())
		return 0;
	errno = 0;
	value = strtoull(usec, &end, 10);
	return errno == 0 && *end == '\0' ? value : 0;
}
