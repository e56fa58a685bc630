/*
 * server.c - the API server's event loop: one thread, one epoll set holding
 * the listeners, the stop eventfd, the Kinesis actions' event fd and every
 * connection. It owns the fixed connection table (connections_max; the next
 * connection is refused by closing it), TLS with ALPN, protocol detection
 * (h2c prior knowledge vs HTTP/1.1) and the timeouts.
 *
 * One loop pass: wait (at most SERVER_TICK_MS, less when kinesis_poll()
 * wants a timer) -> handle ready fds -> kinesis_poll() when its fd fired or
 * its timer is due -> service the dirty connections (write replies, resume
 * paused reads) -> every tick, close connections idle or stalled mid-request
 * for idle_timeout_ms. A connection whose requests are with the actions is
 * not idle: the wait is ours, not the client's.
 *
 * epoll is level-triggered; a connection's interest is EPOLLIN unless its
 * reading is paused, plus EPOLLOUT while output or a TLS write is blocked.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <openssl/err.h>

#include "common/clock.h"
#include "common/diag.h"
#include "control/listen.h"
#include "control/metrics.h"
#include "control/server_internal.h"

/* epoll_event.data.u64 tags: connections use their index. */
#define TAG_STOP (UINT64_C(1) << 40)
#define TAG_LISTEN (TAG_STOP + 1)
#define TAG_TLS_LISTEN (TAG_STOP + 2)
#define TAG_KINESIS (TAG_STOP + 3)
#define SERVER_LISTEN_BACKLOG 1024

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

int
server_listen(const char *listen_text, int backlog, int *fd_out)
{
	char host[CONFIG_STRING_SIZE];
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV };
	struct addrinfo *ai = NULL;
	const char *colon = strrchr(listen_text, ':');
	int one = 1;
	int fd;
	int rc;

	if (colon == NULL)
		return -EINVAL;
	snprintf(host, sizeof(host), "%.*s", (int)(colon - listen_text), listen_text);
	if (host[0] == '[') {
		memmove(host, host + 1, strlen(host));
		host[strcspn(host, "]")] = '\0';
	}
	rc = getaddrinfo(host, colon + 1, &hints, &ai);
	if (rc != 0)
		return -EINVAL;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		goto out_free;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, backlog) != 0) {
		rc = -errno;
		close(fd);
		goto out_free;
	}
	*fd_out = fd;
	rc = 0;
out_free:
	freeaddrinfo(ai);
	return rc;
}

/* ALPN: h2 when offered, else http/1.1; neither -> no ALPN (protocol detected from bytes). */
static int
server_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *out_size,
		   const unsigned char *in, unsigned int in_size, void *arg)
{
	static const unsigned char ours[] = "\x02h2\x08http/1.1";
	unsigned char *selected = NULL;

	(void)ssl;
	(void)arg;
	if (SSL_select_next_proto(&selected, out_size, ours, sizeof(ours) - 1, in, in_size) !=
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK;
	*out = selected;
	return SSL_TLSEXT_ERR_OK;
}

/* A TLS context for the certificate and key `cfg` names. */
static int
server_tls_context(const struct sluice_config *cfg, SSL_CTX **ctx_out)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	char err[256];

	if (ctx == NULL)
		return -ENOMEM;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* TLS 1.2: forward-secret AEAD suites only (TLS 1.3 suites are all AEAD). */
	SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20");
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
			 SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_alpn_select_cb(ctx, server_alpn_select, NULL);
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		ERR_error_string_n(ERR_get_error(), err, sizeof(err));
		diag_error("server", "TLS certificate %s / key %s: %s", cfg->tls_cert, cfg->tls_key,
			   err);
		SSL_CTX_free(ctx);
		return -EINVAL;
	}
	*ctx_out = ctx;
	return 0;
}

static int
server_epoll_add(struct api_server *s, int fd, uint32_t events, uint64_t tag)
{
	struct epoll_event ev = { .events = events, .data.u64 = tag };

	return epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : -errno;
}

/* One line at start: the most memory the server's tables and buffers can ever take. */
static void
server_memory_report(const struct api_server *s, const size_t *sizes, const uint32_t *counts)
{
	uint64_t pool = 0;

	for (int i = 0; i < BUF_POOL_CLASSES; i++)
		pool += (uint64_t)sizes[i] * counts[i];
	diag_info("server", "%u connections, %u calls in flight, memory bound: tables %llu MiB, "
		  "buffer pool %llu MiB (allocated as used)", s->conns_max, s->calls_max,
		  (unsigned long long)(((uint64_t)s->conns_max * (SERVER_IN_SIZE +
		  sizeof(struct server_conn)) + (uint64_t)s->calls_max *
		  sizeof(struct api_call)) >> 20), (unsigned long long)(pool >> 20));
}

/* The connection table, the call table and the pool limits: all sized here, once. */
static int
server_tables_open(struct api_server *s)
{
	size_t huge = s->config.request_body_size_max + HTTP1_HEAD_SIZE_MAX;
	size_t sizes[BUF_POOL_CLASSES] = { SERVER_POOL_SMALL, SERVER_POOL_MEDIUM,
					   SERVER_POOL_LARGE, 0 };
	uint32_t counts[BUF_POOL_CLASSES];

	s->conns_max = s->config.connections_max;
	s->calls_max = s->conns_max * SERVER_CALLS_PER_CONN + SERVER_CALLS_EXTRA;
	if (s->calls_max > SERVER_CALLS_MAX)
		s->calls_max = SERVER_CALLS_MAX;
	s->conns = calloc(s->conns_max, sizeof(s->conns[0]));
	s->conn_free = calloc(s->conns_max, sizeof(s->conn_free[0]));
	s->in_buffers = calloc(s->conns_max, SERVER_IN_SIZE);
	s->calls = calloc(s->calls_max, sizeof(s->calls[0]));
	if (s->conns == NULL || s->conn_free == NULL || s->in_buffers == NULL || s->calls == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < s->conns_max; i++) {
		struct server_conn *c = &s->conns[s->conns_max - 1 - i];

		c->index = s->conns_max - 1 - i;
		c->server = s;
		c->fd = -1;
		c->in = s->in_buffers + (size_t)c->index * SERVER_IN_SIZE;
		s->conn_free[s->conn_free_count++] = c->index;
	}
	for (uint32_t i = 0; i < s->calls_max; i++) {
		s->calls[i].next = s->call_free;
		s->call_free = &s->calls[i];
	}
	/* The largest class holds the largest response and the largest request. */
	sizes[3] = huge > SERVER_OUT_SIZE_MAX ? huge : SERVER_OUT_SIZE_MAX;
	counts[0] = 2 * s->calls_max;
	counts[1] = SERVER_POOL_MEDIUM_PER_CONN * s->conns_max > SERVER_POOL_MEDIUM_COUNT ?
		    SERVER_POOL_MEDIUM_PER_CONN * s->conns_max : SERVER_POOL_MEDIUM_COUNT;
	counts[2] = SERVER_POOL_LARGE_COUNT;
	counts[3] = SERVER_POOL_HUGE_COUNT;
	server_memory_report(s, sizes, counts);
	return buf_pool_init(&s->pool, sizes, counts, BUF_POOL_CLASSES);
}

static void
server_fd_close(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* The lowest descriptor a connection is shed at: SERVER_FDS_HEADROOM short of the limit. */
static int
server_fd_shed_at(void)
{
	struct rlimit lim;
	rlim_t headroom;

	if (getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur >= (rlim_t)INT_MAX)
		return INT_MAX;
	headroom = lim.rlim_cur / 4 < SERVER_FDS_HEADROOM ? lim.rlim_cur / 4 : SERVER_FDS_HEADROOM;
	return (int)(lim.rlim_cur - headroom);
}

static int
server_fds_open(struct api_server *s)
{
	int rc;

	s->fd_shed_at = server_fd_shed_at();
	s->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	s->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (s->epoll_fd < 0 || s->stop_fd < 0 || s->spare_fd < 0)
		return -errno;
	rc = server_listen(s->config.api_listen, SERVER_LISTEN_BACKLOG, &s->listen_fd);
	if (rc != 0) {
		diag_error("server", "cannot listen on %s: %s", s->config.api_listen,
			   strerror(-rc));
		return rc;
	}
	if (s->config.tls_listen[0] != '\0') {
		rc = server_tls_context(&s->config, &s->ssl_ctx);
		if (rc == 0)
			rc = server_listen(s->config.tls_listen, SERVER_LISTEN_BACKLOG,
					   &s->tls_listen_fd);
		if (rc != 0) {
			diag_error("server", "cannot serve TLS on %s: %s", s->config.tls_listen,
				   strerror(-rc));
			return rc;
		}
	}
	s->kinesis_fd = kinesis_event_fd(s->kinesis);
	rc = server_epoll_add(s, s->stop_fd, EPOLLIN, TAG_STOP);
	if (rc == 0)
		rc = server_epoll_add(s, s->listen_fd, EPOLLIN, TAG_LISTEN);
	if (rc == 0 && s->tls_listen_fd >= 0)
		rc = server_epoll_add(s, s->tls_listen_fd, EPOLLIN, TAG_TLS_LISTEN);
	if (rc == 0 && s->kinesis_fd >= 0)
		rc = server_epoll_add(s, s->kinesis_fd, EPOLLIN, TAG_KINESIS);
	return rc;
}

/*
 * The SigV4 keys and, for each, its principal ([auth] principals): both at
 * start and on every SIGHUP, so a reloaded key never loses its principal.
 */
static int
server_keys_load(struct sigv4_keys *keys, const struct sluice_config *config)
{
	char message[SIGV4_MESSAGE_SIZE];

	if (sigv4_keys_parse(keys, config->access_keys, config->region) != 0) {
		diag_error("server", "[auth] access_keys: expected ACCESS_KEY_ID:SECRET[,...] "
			   "(at most %d keys)", SIGV4_KEYS_MAX);
		return -EINVAL;
	}
	if (sigv4_principals_parse(keys, config->principals, config->account_id, message,
				   sizeof(message)) != 0) {
		diag_error("server", "[auth] principals: %s", message);
		return -EINVAL;
	}
	return 0;
}

int
api_server_open(const struct sluice_config *config, struct kinesis *k,
		struct api_server **server_out)
{
	struct api_server *s = calloc(1, sizeof(*s));
	int rc;

	if (s == NULL)
		return -ENOMEM;
	s->config = *config;
	s->kinesis = k;
	s->epoll_fd = s->stop_fd = s->listen_fd = s->tls_listen_fd = s->kinesis_fd = -1;
	s->spare_fd = -1;
	atomic_init(&s->stop, false);
	atomic_init(&s->reload, false);
	atomic_init(&s->drain, false);
	atomic_init(&s->drain_grace_ms, 0);
	pthread_mutex_init(&s->reload_lock, NULL);
	if (getrandom(&s->rng, sizeof(s->rng), 0) != sizeof(s->rng))
		s->rng = clock_real_ns();
	if (config->auth == CONFIG_AUTH_SIGV4) {
		rc = server_keys_load(&s->keys, config);
		if (rc != 0)
			goto out_close;
	}
	rc = server_tables_open(s);
	if (rc == 0)
		rc = h2_callbacks_new(&s->h2_callbacks);
	if (rc == 0)
		rc = server_fds_open(s);
	if (rc != 0)
		goto out_close;
	*server_out = s;
	return 0;

out_close:
	api_server_close(s);
	return rc;
}

void
api_server_reload(struct api_server *server, const struct sluice_config *config)
{
	uint64_t one = 1;

	pthread_mutex_lock(&server->reload_lock);
	server->reload_config = *config;
	pthread_mutex_unlock(&server->reload_lock);
	atomic_store_explicit(&server->reload, true, memory_order_release);
	/* The same eventfd as a stop: the flag says which. */
	if (write(server->stop_fd, &one, sizeof(one)) < 0)
		diag_warn("server", "reload: eventfd write: %s", strerror(errno));
}

/*
 * The certificate and key are read again on every SIGHUP (a renewal usually
 * rewrites the same files): new connections take the new context; an open one
 * keeps the context it started with (its SSL object holds a reference), so
 * freeing ours here does not pull it from under them.
 */
static void
server_tls_reload(struct api_server *s, const struct sluice_config *old)
{
	SSL_CTX *ctx;

	if (s->ssl_ctx == NULL)
		return;
	if (server_tls_context(&s->config, &ctx) != 0) {
		diag_warn("server", "SIGHUP: TLS keeps its certificate %s: the new pair does not "
			  "load", old->tls_cert);
		return;
	}
	SSL_CTX_free(s->ssl_ctx);
	s->ssl_ctx = ctx;
	diag_info("server", "SIGHUP: TLS certificate %s loaded for new connections",
		  s->config.tls_cert);
}

/* The API thread's part of a SIGHUP (api_server_reload). */
static void
server_reload_take(struct api_server *s)
{
	static struct sluice_config old; /* The API thread only. */
	struct sigv4_keys *keys = &s->reload_keys;

	old = s->config;
	pthread_mutex_lock(&s->reload_lock);
	config_copy_live(&s->config, &s->reload_config);
	pthread_mutex_unlock(&s->reload_lock);
	if (s->config.auth == CONFIG_AUTH_SIGV4 &&
	    server_keys_load(keys, &s->config) != 0) {
		diag_warn("server", "SIGHUP: [auth] access_keys or principals do not parse: the old "
			  "ones stay");
		memcpy(s->config.access_keys, old.access_keys, sizeof(old.access_keys));
		s->config.auth = old.auth;
		memcpy(s->config.auth_text, old.auth_text, sizeof(old.auth_text));
	} else if (s->config.auth == CONFIG_AUTH_SIGV4) {
		s->keys = *keys;
	}
	server_tls_reload(s, &old);
	kinesis_reload(s->kinesis, &s->config);
	diag_info("server", "SIGHUP: the API thread took its keys and settings");
}

void
api_server_stop(struct api_server *server)
{
	uint64_t one = 1;

	atomic_store_explicit(&server->stop, true, memory_order_relaxed);
	/* The eventfd only wakes the loop; the flag carries the request. */
	if (write(server->stop_fd, &one, sizeof(one)) < 0)
		diag_warn("server", "stop: eventfd write: %s", strerror(errno));
}

void
api_server_drain(struct api_server *server, uint32_t grace_ms)
{
	uint64_t one = 1;

	atomic_store_explicit(&server->drain_grace_ms, grace_ms, memory_order_relaxed);
	atomic_store_explicit(&server->drain, true, memory_order_release);
	/* The same eventfd as a stop: the flag says which. */
	if (write(server->stop_fd, &one, sizeof(one)) < 0)
		diag_warn("server", "drain: eventfd write: %s", strerror(errno));
}

void
api_server_close(struct api_server *s)
{
	bool calls_held = false;

	if (s == NULL)
		return;
	buf_pool_thread_set(&s->pool);
	for (uint32_t i = 0; s->conns != NULL && i < s->conns_max; i++)
		if (s->conns[i].state != CONN_FREE)
			server_conn_close(&s->conns[i]);
	for (uint32_t i = 0; s->calls != NULL && i < s->calls_max; i++)
		calls_held = calls_held || s->calls[i].state != CALL_FREE;
	server_fd_close(&s->listen_fd);
	server_fd_close(&s->tls_listen_fd);
	server_fd_close(&s->stop_fd);
	server_fd_close(&s->epoll_fd);
	server_fd_close(&s->spare_fd);
	if (s->ssl_ctx != NULL)
		SSL_CTX_free(s->ssl_ctx);
	pthread_mutex_destroy(&s->reload_lock);
	if (s->h2_callbacks != NULL)
		nghttp2_session_callbacks_del(s->h2_callbacks);
	s->ssl_ctx = NULL;
	s->h2_callbacks = NULL;
	if (calls_held) {
		/* The actions still hold calls and will reply to them: keep their memory. */
		diag_warn("server", "%u calls still with the actions at close", s->calls_used);
		return;
	}
	buf_pool_thread_set(NULL);
	buf_pool_fini(&s->pool);
	free(s->calls);
	free(s->in_buffers);
	free(s->conn_free);
	free(s->conns);
	free(s);
}

/* Sets the epoll interest from the connection's state. */
static void
server_conn_interest(struct server_conn *c)
{
	uint32_t events = 0;
	struct epoll_event ev;

	if (c->state == CONN_FREE)
		return;
	if (!c->read_paused)
		events |= EPOLLIN;
	if (c->want_write || c->tls_want_write)
		events |= EPOLLOUT;
	if (events == c->epoll_events)
		return;
	ev.events = events;
	ev.data.u64 = c->index;
	if (epoll_ctl(c->server->epoll_fd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
		c->epoll_events = events;
}

void
server_conn_dirty(struct server_conn *c)
{
	if (c->dirty || c->state == CONN_FREE)
		return;
	c->dirty = true;
	c->dirty_next = c->server->dirty;
	c->server->dirty = c;
}

void
server_conn_starve(struct server_conn *c)
{
	struct api_server *s = c->server;

	c->read_paused = true;
	if (c->starved)
		return;
	c->starved = true;
	c->starved_next = NULL;
	if (s->starved_tail != NULL)
		s->starved_tail->starved_next = c;
	else
		s->starved_head = c;
	s->starved_tail = c;
}

/* Takes `c` off the starved list (a walk: only a connection closed while starved). */
static void
server_conn_unstarve(struct server_conn *c)
{
	struct api_server *s = c->server;
	struct server_conn *prev = NULL;

	if (!c->starved)
		return;
	for (struct server_conn *i = s->starved_head; i != c; i = i->starved_next)
		prev = i;
	if (prev != NULL)
		prev->starved_next = c->starved_next;
	else
		s->starved_head = c->starved_next;
	if (s->starved_tail == c)
		s->starved_tail = prev;
	c->starved = false;
	c->starved_next = NULL;
}

/* With a call free, the oldest starved connection gets to try (false: none waits). */
static bool
server_starved_wake(struct api_server *s)
{
	struct server_conn *c = s->starved_head;

	if (s->call_free == NULL || c == NULL)
		return false;
	server_conn_unstarve(c);
	server_conn_dirty(c);
	return true;
}

void
server_conn_close(struct server_conn *c)
{
	struct api_server *s = c->server;

	if (c->state == CONN_FREE)
		return;
	server_conn_unstarve(c);
	/* nghttp2_session_del() runs no callbacks: the calls are settled here. */
	while (c->calls_head != NULL) {
		struct api_call *call = c->calls_head;

		/* The action holds a dispatched call: detached, api_call_reply() frees it. */
		if (call->state == CALL_DISPATCHED)
			server_call_detach(call);
		else if (call->state == CALL_STREAMING && !call->stream_ended)
			server_stream_detach(call);  /* ... api_call_stream_end() frees it. */
		else
			server_call_free(call);
	}
	c->reading = NULL;
	assert(c->calls_reading == 0);
	if (c->h2 != NULL)
		nghttp2_session_del(c->h2);
	c->h2 = NULL;
	c->h2_out = NULL;
	c->h2_out_size = 0;
	if (c->ssl != NULL) {
		/* Best effort close_notify: OpenSSL 3 peers report a bare EOF as an error. */
		if (c->state != CONN_TLS_HANDSHAKE && SSL_shutdown(c->ssl) < 0)
			ERR_clear_error();
		SSL_free(c->ssl);
	}
	c->ssl = NULL;
	close(c->fd);  /* Also leaves the epoll set. */
	c->fd = -1;
	c->state = CONN_FREE;
	s->conn_free[s->conn_free_count++] = c->index;
	assert(s->conns_used > 0);
	s->conns_used--;
}

long
server_conn_recv(struct server_conn *c, void *buf, size_t size)
{
	long n;
	int err;

	assert(size > 0);
	if (c->ssl == NULL) {
		n = recv(c->fd, buf, size, 0);
		if (n >= 0)
			return n;
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? -EAGAIN : -errno;
	}
	c->tls_want_write = false;
	n = SSL_read(c->ssl, buf, size > INT32_MAX ? INT32_MAX : (int)size);
	if (n > 0)
		return n;
	err = SSL_get_error(c->ssl, (int)n);
	if (err == SSL_ERROR_WANT_READ)
		return -EAGAIN;
	if (err == SSL_ERROR_WANT_WRITE) {
		c->tls_want_write = true;
		return -EAGAIN;
	}
	ERR_clear_error();
	return err == SSL_ERROR_ZERO_RETURN ? 0 : -EIO;
}

static long
server_tls_send(struct server_conn *c, const void *buf, size_t size)
{
	int n = SSL_write(c->ssl, buf, size > INT32_MAX ? INT32_MAX : (int)size);
	int err;

	if (n > 0)
		return n;
	err = SSL_get_error(c->ssl, n);
	if (err == SSL_ERROR_WANT_WRITE) {
		c->tls_want_write = true;
		return -EAGAIN;
	}
	if (err == SSL_ERROR_WANT_READ)
		return -EAGAIN;
	ERR_clear_error();
	return -EIO;
}

long
server_conn_sendv(struct server_conn *c, const struct iovec *iov, uint32_t count)
{
	struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = count };
	long total = 0;

	assert(count > 0);
	if (c->ssl == NULL) {
		long n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);

		if (n >= 0)
			return n;
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? -EAGAIN : -errno;
	}
	/* TLS: one record per piece until OpenSSL takes less than a whole piece. */
	c->tls_want_write = false;
	for (uint32_t i = 0; i < count; i++) {
		long n = server_tls_send(c, iov[i].iov_base, iov[i].iov_len);

		if (n < 0)
			return total > 0 ? total : n;
		total += n;
		if ((size_t)n < iov[i].iov_len)
			break;
	}
	return total;
}

long
server_conn_send(struct server_conn *c, const void *a, size_t a_size, const void *b,
		 size_t b_size)
{
	struct iovec iov[2] = { { (void *)a, a_size }, { (void *)b, b_size } };
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = b_size > 0 ? 2 : 1 };
	long n;
	long m;

	assert(a_size > 0);
	if (c->ssl == NULL) {
		/* MSG_NOSIGNAL: a peer gone mid-write is an error return, not SIGPIPE. */
		n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
		if (n >= 0)
			return n;
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? -EAGAIN : -errno;
	}
	c->tls_want_write = false;
	n = server_tls_send(c, a, a_size);
	if (n != (long)a_size || b_size == 0)
		return n;
	m = server_tls_send(c, b, b_size);
	return m > 0 ? n + m : n;
}

/* The oldest connection old enough and with no request accepted, or NULL. */
static struct server_conn *
server_conn_evictable(struct api_server *s)
{
	uint64_t age_ns = SERVER_EVICT_AGE_MS * 1000000ull;
	struct server_conn *victim = NULL;

	for (uint32_t i = 0; i < s->conns_max; i++) {
		struct server_conn *c = &s->conns[i];

		if (c->state == CONN_FREE || c->proven || s->now_ns - c->accepted_ns < age_ns)
			continue;
		if (victim == NULL || c->accepted_ns < victim->accepted_ns)
			victim = c;
	}
	return victim;
}

struct server_conn *
server_conn_adopt(struct api_server *s, int fd, bool tls)
{
	struct server_conn *c;

	if (s->conn_free_count == 0) {
		struct server_conn *victim = server_conn_evictable(s);

		if (victim == NULL) {
			s->stats.connections_refused++;
			metrics_conn_add(METRICS_CONN_REFUSED);
			close(fd);
			return NULL;
		}
		s->stats.connections_evicted++;
		metrics_conn_add(METRICS_CONN_EVICTED);
		server_conn_close(victim);
	}
	c = &s->conns[s->conn_free[--s->conn_free_count]];
	assert(c->state == CONN_FREE);
	c->fd = fd;
	c->state = tls ? CONN_TLS_HANDSHAKE : CONN_DETECT;
	c->want_write = c->tls_want_write = c->closing = c->read_paused = false;
	c->activity_ns = s->now_ns;
	c->accepted_ns = s->now_ns;
	c->proven = false;
	c->request_start_ns = 0;
	c->in_used = 0;
	c->epoll_events = EPOLLIN;
	c->ssl = NULL;
	s->conns_used++;
	s->stats.connections_accepted++;
	metrics_conn_add(METRICS_CONN_ACCEPTED);
	if (tls)
		c->ssl = SSL_new(s->ssl_ctx);
	if (tls && (c->ssl == NULL || SSL_set_fd(c->ssl, fd) != 1)) {
		server_conn_close(c);
		return NULL;
	}
	if (tls)
		SSL_set_accept_state(c->ssl);
	if (server_epoll_add(s, fd, EPOLLIN, c->index) != 0) {
		server_conn_close(c);
		return NULL;
	}
	return c;
}

/*
 * Closes a connection accepted while descriptors are short. A line per shed
 * connection would flood the journal (thousands a second under a connection
 * flood): the 1st, 2nd, 4th, ... are logged; /metrics counts them all.
 */
static void
server_shed(struct api_server *s, int fd)
{
	s->stats.connections_shed++; /* Before the close the client may notice. */
	metrics_conn_add(METRICS_CONN_SHED);
	close(fd);
	if ((s->stats.connections_shed & (s->stats.connections_shed - 1)) == 0)
		diag_warn("server", "out of file descriptors: connection closed (%" PRIu64
			  " so far; logged at powers of two, all in "
			  "sluice_api_connections_total{result=\"shed\"})",
			  s->stats.connections_shed);
}

/*
 * Out of descriptors (EMFILE/ENFILE): the pending connection would keep the
 * level-triggered listener readable and the loop spinning. Give up the spare
 * descriptor, accept the connection and close it at once, take the spare back.
 * Returns true when one connection was shed.
 */
static bool
server_accept_shed(struct api_server *s, int listen_fd)
{
	int fd;

	if (s->spare_fd < 0)
		return false;
	server_fd_close(&s->spare_fd);
	fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd >= 0)
		server_shed(s, fd);
	s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	return fd >= 0;
}

/* Accepts up to SERVER_ACCEPT_BURST connections. False once the backlog is empty. */
static bool
server_accept(struct api_server *s, int listen_fd, bool tls)
{
	for (int i = 0; i < SERVER_ACCEPT_BURST; i++) {
		int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		int one = 1;

		if (fd < 0 && (errno == EMFILE || errno == ENFILE) &&
		    server_accept_shed(s, listen_fd))
			continue;
		if (fd < 0)
			return false;  /* EAGAIN, or a connection that died in the backlog. */
		/*
		 * The kernel hands out the lowest free descriptor: one this high means
		 * the process is nearly out, and the log fail-stops when it cannot open
		 * a segment, an index or log.meta. Connections give way.
		 */
		if (fd >= s->fd_shed_at) {
			server_shed(s, fd);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		server_conn_adopt(s, fd, tls);
	}
	return true;
}

/* The first bytes decide: the h2 prior-knowledge preface, or HTTP/1.1. */
static void
server_conn_detect(struct server_conn *c)
{
	size_t preface = sizeof(h2_preface) - 1;
	long n = server_conn_recv(c, c->in + c->in_used, SERVER_IN_SIZE - c->in_used);
	size_t cmp;

	if (n == -EAGAIN)
		return;
	if (n <= 0) {
		server_conn_close(c);
		return;
	}
	c->in_used += (size_t)n;
	c->activity_ns = c->server->now_ns;
	cmp = c->in_used < preface ? c->in_used : preface;
	if (memcmp(c->in, h2_preface, cmp) != 0) {
		c->state = CONN_HTTP1;
		http1_conn_readable(c);  /* Parses what is buffered, reads the rest. */
		return;
	}
	if (c->in_used < preface)
		return;
	if (h2_conn_open(c) != 0) {
		server_conn_close(c);
		return;
	}
	n = (long)c->in_used;
	c->in_used = 0;
	h2_conn_input(c, (const uint8_t *)c->in, (size_t)n);
}

static void
server_tls_handshake(struct server_conn *c)
{
	const unsigned char *alpn = NULL;
	unsigned int alpn_size = 0;
	int rc = SSL_do_handshake(c->ssl);
	int err;

	c->tls_want_write = false;
	if (rc != 1) {
		err = SSL_get_error(c->ssl, rc);
		if (err == SSL_ERROR_WANT_WRITE)
			c->tls_want_write = true;
		if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
			ERR_clear_error();
			server_conn_close(c);
		}
		return;
	}
	c->activity_ns = c->server->now_ns;
	SSL_get0_alpn_selected(c->ssl, &alpn, &alpn_size);
	if (alpn_size == 2 && memcmp(alpn, "h2", 2) == 0) {
		if (h2_conn_open(c) != 0)
			server_conn_close(c);
		return;
	}
	c->state = alpn_size > 0 ? CONN_HTTP1 : CONN_DETECT;
	server_conn_dirty(c);  /* Application data may already sit in OpenSSL's buffer. */
}

void
server_conn_event(struct server_conn *c, uint32_t events)
{
	/* A TLS read that needed the socket writable is retried when it is. */
	bool readable = (events & EPOLLIN) || ((events & EPOLLOUT) && c->tls_want_write);

	if ((events & (EPOLLERR | EPOLLHUP)) && !(events & EPOLLIN)) {
		server_conn_close(c);
		return;
	}
	switch (c->state) {
	case CONN_TLS_HANDSHAKE:
		server_tls_handshake(c);
		break;
	case CONN_DETECT:
		server_conn_detect(c);
		break;
	case CONN_HTTP1:
		if (readable)
			http1_conn_readable(c);
		break;
	case CONN_H2:
		if (readable)
			h2_conn_readable(c);
		break;
	case CONN_FREE:
		return;
	}
	server_conn_dirty(c);
}

void
server_service_dirty(struct api_server *s)
{
	/*
	 * Ends: a woken connection either takes a call, or is off the list for good (it
	 * starves again only when no call is free, which stops the waking).
	 */
	bool notified = false;
	bool again;

	do {
		while (s->dirty != NULL) {
			struct server_conn *c = s->dirty;

			s->dirty = c->dirty_next;
			c->dirty = false;
			c->dirty_next = NULL;
			if (c->state == CONN_HTTP1)
				http1_conn_service(c);
			else if (c->state == CONN_H2)
				h2_conn_service(c);
			else if (c->state == CONN_DETECT && c->ssl != NULL &&
				 SSL_pending(c->ssl) > 0)
				server_conn_detect(c);
			server_conn_interest(c);
		}
		again = server_starved_wake(s);
		/*
		 * Streams' events once per pass: a fast reader of a stream with a backlog would
		 * otherwise keep this loop to itself. What they make due is served next pass
		 * (api_server_run does not sleep while s->stream_due is set).
		 */
		if (!notified && s->stream_due != NULL) {
			notified = true;
			again = server_stream_notify(s) || again;
		}
	} while (again);
}

/* Closes connections idle, or stalled mid-request, for idle_timeout_ms. */
static void
server_sweep(struct api_server *s)
{
	uint64_t limit_ns = (uint64_t)s->config.idle_timeout_ms * 1000000u;

	for (uint32_t i = 0; i < s->conns_max; i++) {
		struct server_conn *c = &s->conns[i];
		bool waiting_on_us = false;

		if (c->state == CONN_FREE)
			continue;
		for (struct api_call *call = c->calls_head; call != NULL; call = call->next)
			waiting_on_us = waiting_on_us || call->state == CALL_DISPATCHED ||
					call->state == CALL_STREAMING;  /* Its action owns its life. */
		if (c->state == CONN_H2)
			h2_conn_sweep(c, limit_ns);
		if (waiting_on_us)
			continue;
		if (s->now_ns - c->activity_ns > limit_ns ||
		    (c->request_start_ns != 0 && s->now_ns - c->request_start_ns > limit_ns)) {
			s->stats.connections_timed_out++;
			metrics_conn_add(METRICS_CONN_TIMED_OUT);
			server_conn_close(c);
		}
	}
}

/*
 * api_server_drain() was asked: the connections the kernel completed are taken (their
 * clients may have sent a request already: it gets a 503, not a reset), then the
 * listeners close, so new ones are refused and a restarted sluiced can bind at once.
 * Every h2 connection gets its GOAWAY; an HTTP/1.1 one learns at its next answer.
 */
static void
server_drain_begin(struct api_server *s)
{
	uint32_t grace_ms = atomic_load_explicit(&s->drain_grace_ms, memory_order_relaxed);

	s->draining = true;
	s->drain_deadline_ns = s->now_ns + (uint64_t)grace_ms * 1000000u;
	s->drain_linger_ns = s->now_ns + SERVER_DRAIN_LINGER_MS * 1000000ull;
	/* A backlog's worth at most: a flood would refill it as fast as it is taken. */
	for (int i = 0; i < SERVER_LISTEN_BACKLOG / SERVER_ACCEPT_BURST; i++) {
		bool more = s->listen_fd >= 0 && server_accept(s, s->listen_fd, false);

		more = (s->tls_listen_fd >= 0 && server_accept(s, s->tls_listen_fd, true)) || more;
		if (!more)
			break;
	}
	server_fd_close(&s->listen_fd);
	server_fd_close(&s->tls_listen_fd);
	for (uint32_t i = 0; i < s->conns_max; i++)
		if (s->conns[i].state == CONN_H2)
			h2_conn_goaway(&s->conns[i]);
	diag_info("server", "stopping: listeners closed, new requests refused (503, h2 "
		  "GOAWAY); %u calls in flight get their answers within shutdown_grace_ms %u",
		  s->calls_used, grace_ms);
}

/*
 * Calls still owed an answer: arriving, with the actions (also those whose client
 * left: their records may still be written) or being written; a request head
 * arriving on HTTP/1.1; an h2 connection with frames (its GOAWAY) not yet out; for
 * SERVER_DRAIN_LINGER_MS, an idle HTTP/1.1 connection not yet told to close.
 * Subscriptions are not owed: they only end when the client or the action ends them.
 */
static uint32_t
server_drain_owed(const struct api_server *s, bool linger)
{
	uint32_t owed = 0;

	for (uint32_t i = 0; i < s->calls_max; i++) {
		enum call_state st = s->calls[i].state;

		owed += st == CALL_READING || st == CALL_DISPATCHED || st == CALL_REPLIED;
	}
	for (uint32_t i = 0; i < s->conns_max; i++) {
		const struct server_conn *c = &s->conns[i];

		if ((c->state == CONN_HTTP1 || c->state == CONN_DETECT) && !c->closing &&
		    c->calls_head == NULL && (c->in_used > 0 || linger))
			owed++;
		else if (c->state == CONN_H2 &&
			 (c->h2_out_size > 0 || nghttp2_session_want_write(c->h2)))
			owed++;
	}
	return owed;
}

/* The drain ends with calls still owed (the grace, or a second signal): counted, logged. */
static void
server_drain_cut(struct api_server *s, const char *why, uint32_t owed)
{
	s->stats.calls_cut_at_stop = owed;
	diag_warn("server", "%s: %u calls (or request heads) closed unanswered (%" PRIu64
		  " requests refused while stopping)", why, owed,
		  s->stats.requests_refused_stopping);
}

/* True when the drain is over: nothing owed, or the grace ended (what is left is logged). */
static bool
server_drain_over(struct api_server *s)
{
	bool in_grace = s->now_ns < s->drain_deadline_ns;
	uint32_t owed = server_drain_owed(s, in_grace && s->now_ns < s->drain_linger_ns);

	if (owed == 0) {
		diag_info("server", "stopped taking work: every call answered (%" PRIu64 " "
			  "requests refused while stopping)", s->stats.requests_refused_stopping);
		return true;
	}
	if (in_grace)
		return false;
	server_drain_cut(s, "shutdown_grace_ms ended", owed);
	return true;
}

static void
server_handle(struct api_server *s, const struct epoll_event *ev, bool *kinesis_ready)
{
	uint64_t tag = ev->data.u64;
	uint64_t drained;

	if (tag == TAG_STOP) {
		if (read(s->stop_fd, &drained, sizeof(drained)) < 0)
			return;
		if (atomic_exchange_explicit(&s->reload, false, memory_order_acquire))
			server_reload_take(s);
		if (!s->draining && atomic_load_explicit(&s->drain, memory_order_acquire))
			server_drain_begin(s);
	} else if (tag == TAG_LISTEN) {
		server_accept(s, s->listen_fd, false);
	} else if (tag == TAG_TLS_LISTEN) {
		server_accept(s, s->tls_listen_fd, true);
	} else if (tag == TAG_KINESIS) {
		*kinesis_ready = true;
	} else {
		assert(tag < s->conns_max);
		server_conn_event(&s->conns[tag], ev->events);
	}
}

int
api_server_run(struct api_server *s)
{
	struct epoll_event events[SERVER_EVENTS_MAX];
	uint64_t next_sweep_ns = 0;

	buf_pool_thread_set(&s->pool);
	while (!atomic_load_explicit(&s->stop, memory_order_relaxed)) {
		uint64_t real_ns = clock_real_ns();
		int timeout = kinesis_poll_timeout_ms(s->kinesis, real_ns);
		bool kinesis_ready = false;
		int n;

		if (timeout < 0 || timeout > SERVER_TICK_MS)
			timeout = SERVER_TICK_MS;
		if (s->stream_due != NULL)
			timeout = 0;  /* Stream events owed (server_service_dirty). */
		n = epoll_wait(s->epoll_fd, events, SERVER_EVENTS_MAX, timeout);
		if (n < 0 && errno != EINTR) {
			int err = errno;

			diag_error("server", "epoll_wait: %s", strerror(err));
			buf_pool_thread_set(NULL);
			return -err;
		}
		if (n < 0)
			n = 0;
		s->stats.loop_passes++;
		s->now_ns = clock_mono_ns();
		real_ns = clock_real_ns();
		server_date_update(s, real_ns);
		for (int i = 0; i < n; i++)
			server_handle(s, &events[i], &kinesis_ready);
		if (kinesis_ready || kinesis_poll_timeout_ms(s->kinesis, real_ns) == 0)
			kinesis_poll(s->kinesis, real_ns);
		server_service_dirty(s);
		if (s->now_ns >= next_sweep_ns) {
			server_sweep(s);
			next_sweep_ns = s->now_ns + SERVER_TICK_MS * 1000000ull;
		}
		if (s->draining && server_drain_over(s))
			goto out;
	}
	/* api_server_stop() while draining (a second signal). */
	if (s->draining && server_drain_owed(s, false) > 0)
		server_drain_cut(s, "stopped at once", server_drain_owed(s, false));
out:
	buf_pool_thread_set(NULL);
	return 0;
}
