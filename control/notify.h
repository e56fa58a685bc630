/*
 * notify.h - private to control/: tells systemd (Type=notify) how sluiced is
 * doing: READY=1 once serving, STATUS= lines, STOPPING=1, WATCHDOG=1.
 */
#ifndef SLUICE_CONTROL_NOTIFY_H
#define SLUICE_CONTROL_NOTIFY_H

#include <stdint.h>

/* Sends `text` ("READY=1\nSTATUS=...") to $NOTIFY_SOCKET; 0 when unset or sent. */
int notify_send(const char *text);

/* The watchdog interval systemd asks for (WatchdogSec), microseconds; 0 = none. */
uint64_t notify_watchdog_usec(void);

#endif /* SLUICE_CONTROL_NOTIFY_H */
