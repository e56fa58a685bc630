/*
 * admin.c - the admin listener (admin.h): one thread, one epoll loop, a fixed
 * table of connections, one request per connection (Connection: close).
 * Nothing here runs on the API's thread or takes a lock the API takes: the
 * figures come from metrics.h's single-writer counters, the log's statistics
 * and the admin's own SQLite connection.
 */
#include <assert.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/base.h"
#include "common/clock.h"
#include "common/diag.h"
#include "control/admin.h"
#include "control/cluster_node.h"
#include "control/admin_internal.h"
#include "control/auth_sigv4.h"
#include "control/http1.h"
#include "control/listen.h"

#define ADMIN_CONNECTIONS_MAX 16u
#define ADMIN_LISTEN_BACKLOG 64
#define ADMIN_REQUEST_SIZE_MAX 8192u
/* /metrics of every stream slot in use fits (about 6 KiB a stream). */
#define ADMIN_RESPONSE_SIZE_MAX (32u << 20)
#define ADMIN_HEADERS_MAX 32u
/* A connection that has not finished its exchange this long after accepting is closed. */
#define ADMIN_CONNECTION_TIMEOUT_NS (5ull * 1000000000ull)
#define ADMIN_EPOLL_EVENTS 32
#define ADMIN_TICK_MS 1000
#define ADMIN_TAG_LISTEN UINT64_MAX
#define ADMIN_TAG_STOP (UINT64_MAX - 1)

struct admin_conn {
	int fd;                       /* -1: free. */
	uint64_t opened_ns;
	char request[ADMIN_REQUEST_SIZE_MAX];
	size_t request_used;
	char *response;               /* ADMIN_RESPONSE_SIZE_MAX, reserved at open. */
	size_t response_size;
	size_t response_sent;
};

/*
 * Open (loopback, no token), or every request must carry the token or a SigV4
 * signature by one of the API's keys (service SIGV4_SERVICE_ADMIN).
 */
struct admin_auth {
	bool required;
	char token[CONFIG_STRING_SIZE];
	bool keys_set;                /* [auth] mode = sigv4: its access_keys sign here too. */
	struct sigv4_keys keys;
};

struct admin {
	int listen_fd;
	int epoll_fd;
	int stop_fd;
	bool started;
	pthread_t thread;
	/*
	 * Who may ask, replaced by admin_reload() (main thread) while the admin thread
	 * checks requests: the lock covers both (and the keys' signing-key cache).
	 */
	pthread_mutex_t auth_lock;
	struct admin_auth auth;
	struct admin_context ctx;
	char *responses;              /* One mapping for every connection's response. */
	struct admin_conn conns[ADMIN_CONNECTIONS_MAX];
};

static int
admin_epoll_add(struct admin *a, int fd, uint32_t events, uint64_t tag)
{
	struct epoll_event ev = { .events = events, .data.u64 = tag };

	return epoll_ctl(a->epoll_fd, EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : -errno;
}

static void
admin_conn_close(struct admin_conn *c)
{
	if (c->fd < 0)
		return;
	close(c->fd); /* Also leaves the epoll set: the descriptor is not shared. */
	c->fd = -1;
}

/* ---- Responses ------------------------------------------------------------ */

static void
admin_respond(struct admin_conn *c, int status, const char *content_type, const char *body,
	      size_t body_size)
{
	const char *reason = status == 200 ? "OK" : status == 401 ? "Unauthorized" :
			     status == 404 ? "Not Found" : status == 405 ? "Method Not Allowed" :
			     status == 503 ? "Service Unavailable" : status == 400 ? "Bad Request" :
			     "Internal Server Error";
	int n = snprintf(c->response, ADMIN_RESPONSE_SIZE_MAX,
			 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
			 "Cache-Control: no-store\r\nConnection: close\r\n\r\n", status, reason,
			 content_type, body_size);

	assert(n > 0 && (size_t)n + body_size <= ADMIN_RESPONSE_SIZE_MAX);
	/* The body may already sit where it belongs (rendered in place): memmove. */
	memmove(c->response + n, body, body_size);
	c->response_size = (size_t)n + body_size;
	c->response_sent = 0;
}

static void
admin_respond_text(struct admin_conn *c, int status, const char *text)
{
	admin_respond(c, status, "text/plain; charset=utf-8", text, strlen(text));
}

/*
 * Renders a body with `render` into the connection's buffer after room for
 * the head, then moves it in place behind the head.
 */
#define ADMIN_HEAD_RESERVE 512u

typedef void admin_render_fn(struct admin *a, struct metrics_out *out);

static void
admin_respond_rendered(struct admin *a, struct admin_conn *c, const char *content_type,
		       admin_render_fn *render)
{
	struct metrics_out out = {
		.data = c->response + ADMIN_HEAD_RESERVE,
		.capacity = ADMIN_RESPONSE_SIZE_MAX - ADMIN_HEAD_RESERVE,
	};

	render(a, &out);
	if (out.overflow) {
		diag_warn("admin", "response over %u bytes: 500", ADMIN_RESPONSE_SIZE_MAX);
		admin_respond_text(c, 500, "response too large\n");
		return;
	}
	admin_respond(c, 200, content_type, out.data, out.size);
}

static void
admin_render_metrics(struct admin *a, struct metrics_out *out)
{
	metrics_render_prometheus(&a->ctx.src, out);
}

/* docs/CLUSTER.md: {"enabled":false} in single-node mode. */
static void
admin_render_cluster(struct admin *a, struct metrics_out *out)
{
	cluster_node_render_json(a->ctx.src.cluster, out);
}

static void
admin_render_status(struct admin *a, struct metrics_out *out)
{
	admin_status_json(&a->ctx, out);
}

/* Compares in time that depends on the length only: the token is a secret. */
static bool
admin_token_equal(const char *given, size_t given_size, const char *token, size_t token_size)
{
	unsigned char diff = 0;

	if (given_size != token_size)
		return false;
	for (size_t i = 0; i < token_size; i++)
		diff |= (unsigned char)(given[i] ^ token[i]);
	return diff == 0;
}

/* Whether the request carries the token (header or ?token=). */
static bool
admin_token_given(const struct admin_auth *auth, const struct http1_request *req)
{
	const struct http1_header *h = http1_header_find(req, "authorization");
	size_t token_size = strlen(auth->token);
	const char *q;
	size_t rest;

	if (token_size == 0)
		return false;
	if (h != NULL && h->value_size > 7 && memcmp(h->value, "Bearer ", 7) == 0 &&
	    admin_token_equal(h->value + 7, h->value_size - 7, auth->token, token_size))
		return true;
	q = memchr(req->target, '?', req->target_size);
	if (q == NULL)
		return false;
	q++;
	rest = req->target_size - (size_t)(q - req->target);
	return rest > 6 && memcmp(q, "token=", 6) == 0 &&
	       admin_token_equal(q + 6, rest - 6, auth->token, token_size);
}

/* Whether the request is signed (SigV4, service sluice-admin) by one of the API's keys. */
static bool
admin_signed(struct admin_auth *auth, const struct http1_request *req)
{
	struct sigv4_header headers[ADMIN_HEADERS_MAX];
	struct sigv4_result result;
	struct sigv4_input in = {
		.method = req->method, .method_size = req->method_size,
		.target = req->target, .target_size = req->target_size,
		.headers = headers, .header_count = req->header_count,
		.body = (const uint8_t *)"", .body_size = 0, /* GET only: no body. */
		.now_real_ns = clock_real_ns(),
	};

	if (!auth->keys_set || http1_header_find(req, "authorization") == NULL)
		return false;
	assert(req->header_count <= ADMIN_HEADERS_MAX);
	for (size_t i = 0; i < req->header_count; i++)
		headers[i] = (struct sigv4_header){ req->headers[i].name, req->headers[i].name_size,
						    req->headers[i].value,
						    req->headers[i].value_size };
	sigv4_verify(&auth->keys, &in, &result);
	if (result.status != SIGV4_OK)
		diag_debug("admin", "SigV4 refused: %s: %s", result.error_type, result.message);
	return result.status == SIGV4_OK;
}

static bool
admin_authorized(struct admin *a, const struct http1_request *req)
{
	bool ok;

	pthread_mutex_lock(&a->auth_lock);
	ok = !a->auth.required || admin_token_given(&a->auth, req) || admin_signed(&a->auth, req);
	pthread_mutex_unlock(&a->auth_lock);
	return ok;
}

static bool
admin_path_is(const struct http1_request *req, const char *path)
{
	size_t size = strcspn(req->target, "? ");

	if (size > req->target_size)
		size = req->target_size;
	return size == strlen(path) && memcmp(req->target, path, size) == 0;
}

static void
admin_route(struct admin *a, struct admin_conn *c, const struct http1_request *req)
{
	const char *missing;

	if (req->method_size != 3 || memcmp(req->method, "GET", 3) != 0) {
		admin_respond_text(c, 405, "GET only\n");
	} else if (!admin_authorized(a, req)) {
		admin_respond_text(c, 401, "token or SigV4 signature required\n");
	} else if (admin_path_is(req, "/healthz")) {
		admin_respond_text(c, 200, "ok\n");
	} else if (admin_path_is(req, "/readyz")) {
		char text[96];

		if (metrics_ready_all(a->ctx.src.dataplane_enabled, &missing)) {
			admin_respond_text(c, 200, "ready\n");
			return;
		}
		snprintf(text, sizeof(text), "not ready: %s\n", missing);
		admin_respond_text(c, 503, text);
	} else if (admin_path_is(req, "/metrics")) {
		admin_respond_rendered(a, c, "text/plain; version=0.0.4; charset=utf-8",
				       admin_render_metrics);
	} else if (admin_path_is(req, "/cluster")) {
		admin_respond_rendered(a, c, "application/json", admin_render_cluster);
	} else if (admin_path_is(req, "/status.json")) {
		admin_respond_rendered(a, c, "application/json", admin_render_status);
	} else if (admin_path_is(req, "/")) {
		admin_respond(c, 200, "text/html; charset=utf-8", admin_status_page,
			      admin_status_page_size);
	} else {
		admin_respond_text(c, 404, "not found\n");
	}
}

/* ---- The loop ------------------------------------------------------------- */

/* Sends what is left; closes when done or when the peer is gone. */
static void
admin_conn_write(struct admin_conn *c)
{
	while (c->response_sent < c->response_size) {
		ssize_t n = send(c->fd, c->response + c->response_sent,
				 c->response_size - c->response_sent, MSG_NOSIGNAL);

		if (n < 0 && errno == EAGAIN)
			return; /* EPOLLOUT brings us back. */
		if (n <= 0) {
			admin_conn_close(c);
			return;
		}
		c->response_sent += (size_t)n;
	}
	admin_conn_close(c);
}

/* Reads until the head is complete (edge-triggered: until EAGAIN), then answers. */
static void
admin_conn_read(struct admin *a, struct admin_conn *c)
{
	struct http1_header headers[ADMIN_HEADERS_MAX];
	struct http1_request req;
	int rc = HTTP1_PARTIAL;

	if (c->response_size != 0) {
		admin_conn_write(c);
		return;
	}
	while (rc == HTTP1_PARTIAL && c->request_used < sizeof(c->request)) {
		ssize_t n = recv(c->fd, c->request + c->request_used,
				 sizeof(c->request) - c->request_used, 0);

		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			admin_conn_close(c);
			return;
		}
		c->request_used += (size_t)n;
		rc = http1_parse_request(c->request, c->request_used, &req, headers,
					 ADMIN_HEADERS_MAX, sizeof(c->request));
	}
	if (rc <= 0)
		admin_respond_text(c, 400, "bad request\n");
	else
		admin_route(a, c, &req);
	admin_conn_write(c);
}

static void
admin_accept(struct admin *a, uint64_t now_ns)
{
	for (;;) {
		int fd = accept4(a->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct admin_conn *c = NULL;

		if (fd < 0)
			return; /* EAGAIN, or a transient error: epoll tells us again. */
		for (uint32_t i = 0; i < ADMIN_CONNECTIONS_MAX && c == NULL; i++)
			if (a->conns[i].fd < 0)
				c = &a->conns[i];
		if (c == NULL) {
			close(fd); /* Full: scrapers retry. */
			continue;
		}
		c->fd = fd;
		c->opened_ns = now_ns;
		c->request_used = 0;
		c->response_size = 0;
		c->response_sent = 0;
		if (admin_epoll_add(a, fd, EPOLLIN | EPOLLOUT | EPOLLET,
				    (uint64_t)(c - a->conns)) != 0)
			admin_conn_close(c);
	}
}

static void
admin_expire(struct admin *a, uint64_t now_ns)
{
	for (uint32_t i = 0; i < ADMIN_CONNECTIONS_MAX; i++)
		if (a->conns[i].fd >= 0 && now_ns - a->conns[i].opened_ns > ADMIN_CONNECTION_TIMEOUT_NS)
			admin_conn_close(&a->conns[i]);
}

/* Runs until admin_close() writes the stop eventfd. Bounded work per event. */
static void *
admin_main(void *arg)
{
	struct admin *a = arg;
	struct epoll_event events[ADMIN_EPOLL_EVENTS];

	pthread_setname_np(pthread_self(), "sluice-admin");
	for (;;) {
		int n = epoll_wait(a->epoll_fd, events, ADMIN_EPOLL_EVENTS, ADMIN_TICK_MS);
		uint64_t now_ns = clock_mono_ns();

		for (int i = 0; i < n; i++) {
			uint64_t tag = events[i].data.u64;

			if (tag == ADMIN_TAG_STOP)
				return NULL;
			if (tag == ADMIN_TAG_LISTEN)
				admin_accept(a, now_ns);
			else if (tag < ADMIN_CONNECTIONS_MAX && a->conns[tag].fd >= 0)
				admin_conn_read(a, &a->conns[tag]);
		}
		admin_expire(a, now_ns);
		admin_history_tick(now_ns);
	}
}

/* ---- Life cycle ----------------------------------------------------------- */

/* Who may ask, from the configuration (config_validate() accepted it). */
static int
admin_auth_from(const struct sluice_config *config, struct admin_auth *auth)
{
	memset(auth, 0, sizeof(*auth));
	snprintf(auth->token, sizeof(auth->token), "%s", config->admin_token);
	if (config->auth == CONFIG_AUTH_SIGV4) {
		if (sigv4_keys_parse_service(&auth->keys, config->access_keys, config->region,
					     SIGV4_SERVICE_ADMIN) != 0)
			return -EINVAL; /* The API's own open reports the keys' error. */
		auth->keys_set = true;
	}
	auth->required = auth->token[0] != '\0' || !config_listen_is_loopback(config->admin_listen);
	return 0;
}

int
admin_reload(struct admin *a, const struct sluice_config *config)
{
	static struct admin_auth fresh; /* Main thread only: too large for its stack. */
	int rc = admin_auth_from(config, &fresh);

	if (rc != 0)
		return rc;
	pthread_mutex_lock(&a->auth_lock);
	a->auth = fresh;
	pthread_mutex_unlock(&a->auth_lock);
	return 0;
}

int
admin_open(const struct sluice_config *config, const struct metrics_sources *src,
	   struct admin **admin_out)
{
	size_t map_size = (size_t)ADMIN_CONNECTIONS_MAX * ADMIN_RESPONSE_SIZE_MAX;
	struct admin *a = calloc(1, sizeof(*a));
	int rc;

	if (a == NULL)
		return -ENOMEM;
	a->listen_fd = a->epoll_fd = a->stop_fd = -1;
	a->ctx.src = *src;
	pthread_mutex_init(&a->auth_lock, NULL);
	rc = admin_auth_from(config, &a->auth);
	if (rc != 0) {
		free(a);
		return rc;
	}
	/* Reserved, not committed: only the bytes responses really use become resident. */
	a->responses = mmap(NULL, map_size, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (a->responses == MAP_FAILED) {
		a->responses = NULL;
		rc = -ENOMEM;
		goto out_close;
	}
	for (uint32_t i = 0; i < ADMIN_CONNECTIONS_MAX; i++) {
		a->conns[i].fd = -1;
		a->conns[i].response = a->responses + (size_t)i * ADMIN_RESPONSE_SIZE_MAX;
	}
	rc = admin_context_open(&a->ctx, config);
	if (rc != 0)
		goto out_close;
	rc = server_listen(config->admin_listen, ADMIN_LISTEN_BACKLOG, &a->listen_fd);
	if (rc != 0) {
		diag_error("admin", "cannot listen on %s: %s", config->admin_listen, strerror(-rc));
		goto out_close;
	}
	a->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	a->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (a->epoll_fd < 0 || a->stop_fd < 0) {
		rc = -errno;
		goto out_close;
	}
	rc = admin_epoll_add(a, a->listen_fd, EPOLLIN, ADMIN_TAG_LISTEN);
	if (rc == 0)
		rc = admin_epoll_add(a, a->stop_fd, EPOLLIN, ADMIN_TAG_STOP);
	if (rc != 0)
		goto out_close;
	*admin_out = a;
	return 0;

out_close:
	admin_close(a);
	return rc;
}

int
admin_start(struct admin *a)
{
	int rc = pthread_create(&a->thread, NULL, admin_main, a);

	if (rc != 0)
		return -rc;
	a->started = true;
	return 0;
}

void
admin_close(struct admin *a)
{
	uint64_t one = 1;

	if (a == NULL)
		return;
	if (a->started) {
		if (write(a->stop_fd, &one, sizeof(one)) != sizeof(one))
			diag_warn("admin", "stop eventfd: %s", strerror(errno));
		pthread_join(a->thread, NULL);
	}
	for (uint32_t i = 0; i < ADMIN_CONNECTIONS_MAX; i++)
		admin_conn_close(&a->conns[i]);
	if (a->stop_fd >= 0)
		close(a->stop_fd);
	if (a->epoll_fd >= 0)
		close(a->epoll_fd);
	if (a->listen_fd >= 0)
		close(a->listen_fd);
	admin_context_close(&a->ctx);
	if (a->responses != NULL)
		munmap(a->responses, (size_t)ADMIN_CONNECTIONS_MAX * ADMIN_RESPONSE_SIZE_MAX);
	pthread_mutex_destroy(&a->auth_lock);
	free(a);
}
