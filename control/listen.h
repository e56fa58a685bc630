/*
 * listen.h - a listening TCP socket from "ADDR:PORT" or "[V6ADDR]:PORT"
 * (the API's and the admin listener's addresses), in server.c.
 */
#ifndef SLUICE_CONTROL_LISTEN_H
#define SLUICE_CONTROL_LISTEN_H

/* A listening, non-blocking socket into *fd_out: 0, or a negative errno (-EINVAL: bad text). */
int server_listen(const char *listen_text, int backlog, int *fd_out);

#endif /* SLUICE_CONTROL_LISTEN_H */
