/*
 * kinesis_client.c - the Kinesis API client of kinesis_client.h: endpoint
 * parsing, connections, the blocking round trip, the HTTP/1.1 response
 * parser, requests and their SigV4 signature, base64.
 */
#include <assert.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/base.h"
#include "common/base64.h"
#include "common/clock.h"
#include "common/sigv4.h"
#include "tools/kinesis_client.h"

#define KC_TARGET_PREFIX "Kinesis_20131202."
#define KC_FIREHOSE_TARGET_PREFIX "Firehose_20150804."
#define KC_CONTENT_TYPE "application/x-amz-json-1.1"
#define KC_TIMEOUT_MS_DEFAULT 30000u
#define KC_AUTHORIZATION_SIZE_MAX 1024

/* ---- Endpoint and connections ------------------------------------------------------ */

static int
kc_endpoint_parse(struct kc_client *client, const char *endpoint)
{
	const char *host = endpoint;
	const char *host_end;
	const char *port = "80";
	size_t port_size = 2;

	if (strncmp(endpoint, "https://", 8) == 0) {
		host += 8;
		port = "443";
		port_size = 3;
		client->tls_enabled = true;
	} else if (strncmp(endpoint, "http://", 7) == 0) {
		host += 7;
	} else if (strstr(endpoint, "://") != NULL) {
		return -EPROTONOSUPPORT;
	}
	if (*host == '[') {     /* [::1]:4567 */
		host_end = strchr(host, ']');
		if (host_end == NULL)
			return -EINVAL;
		host++;
	} else {
		host_end = host + strcspn(host, ":/");
	}
	if (host_end == host || (size_t)(host_end - host) >= sizeof(client->host))
		return -EINVAL;
	memcpy(client->host, host, (size_t)(host_end - host));
	client->host[host_end - host] = '\0';
	if (*host_end == ']')
		host_end++;
	if (*host_end == ':') {
		port = host_end + 1;
		port_size = strspn(port, "0123456789");
		if (port_size == 0 || port_size > 5 || (port[port_size] != '\0' &&
							 strcmp(port + port_size, "/") != 0))
			return -EINVAL;
	} else if (*host_end != '\0' && strcmp(host_end, "/") != 0) {
		return -EINVAL;
	}
	memcpy(client->port, port, port_size);
	client->port[port_size] = '\0';
	/* The Host header is what SigV4 signs; botocore leaves out a default port. */
	bool default_port = strcmp(client->port, client->tls_enabled ? "443" : "80") == 0;

	snprintf(client->host_header, sizeof(client->host_header),
		 strchr(client->host, ':') != NULL ? "[%s]%s%s" : "%s%s%s", client->host,
		 default_port ? "" : ":", default_port ? "" : client->port);
	return 0;
}

/* https: one context for every connection; TLS 1.2 or later, ALPN http/1.1. */
static int
kc_tls_context(struct kc_client *client, const char *ca_file)
{
	static const unsigned char alpn[] = "\x08http/1.1";

	client->tls_ctx = SSL_CTX_new(TLS_client_method());
	if (client->tls_ctx == NULL)
		return -ENOMEM;
	SSL_CTX_set_min_proto_version(client->tls_ctx, TLS1_2_VERSION);
	SSL_CTX_set_alpn_protos(client->tls_ctx, alpn, sizeof(alpn) - 1);
	SSL_CTX_set_verify(client->tls_ctx, client->insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER,
			   NULL);
	if (ca_file != NULL ? SSL_CTX_load_verify_locations(client->tls_ctx, ca_file, NULL) != 1 :
	    SSL_CTX_set_default_verify_paths(client->tls_ctx) != 1)
		return -ENOENT;
	return 0;
}

int
kc_client_init(struct kc_client *client, const struct kc_config *config)
{
	const char *region = config->region != NULL ? config->region : KC_DEFAULT_REGION;
	int err;

	memset(client, 0, sizeof(*client));
	client->fd = -1;
	if (strlen(region) >= sizeof(client->region))
		return -EINVAL;
	strcpy(client->region, region);
	if (config->access_key != NULL && config->access_key[0] != '\0') {
		if (config->secret_key == NULL)
			return -EINVAL;
		client->access_key = config->access_key;
		client->secret_key = config->secret_key;
		client->session_token = config->session_token;
	}
	client->timeout_ms = config->timeout_ms != 0 ? config->timeout_ms : KC_TIMEOUT_MS_DEFAULT;
	client->insecure = config->insecure;
	err = kc_endpoint_parse(client, config->endpoint != NULL ? config->endpoint :
				KC_DEFAULT_ENDPOINT);
	if (err != 0 || !client->tls_enabled)
		return err;
	return kc_tls_context(client, config->ca_file);
}

void
kc_client_close(struct kc_client *client)
{
	kc_tls_close(client->tls);
	client->tls = NULL;
	if (client->fd >= 0)
		close(client->fd);
	client->fd = -1;
	SSL_CTX_free(client->tls_ctx);
	client->tls_ctx = NULL;
	free(client->rx);
	client->rx = NULL;
	client->rx_capacity = 0;
}

static void
kc_socket_options(int fd, uint32_t timeout_ms)
{
	struct timeval timeout = {
		.tv_sec = timeout_ms / 1000,
		.tv_usec = (suseconds_t)(timeout_ms % 1000) * 1000,
	};
	int one = 1;

	/* Requests are written whole; Nagle would only hold back their tails. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
}

int
kc_connect(const struct kc_client *client, bool nonblocking)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *addresses;
	int err = -EHOSTUNREACH;
	int fd = -1;
	int gai = getaddrinfo(client->host, client->port, &hints, &addresses);

	if (gai != 0)
		return gai == EAI_SYSTEM ? -errno : -EHOSTUNREACH;
	for (struct addrinfo *a = addresses; a != NULL; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC |
			    (nonblocking ? SOCK_NONBLOCK : 0), a->ai_protocol);
		if (fd < 0) {
			err = -errno;
			continue;
		}
		kc_socket_options(fd, client->timeout_ms);
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0 ||
		    (nonblocking && errno == EINPROGRESS))
			break;
		err = -errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(addresses);
	return fd >= 0 ? fd : err;
}

/* ---- TLS --------------------------------------------------------------------------- */

static bool
kc_host_is_ip(const char *host)
{
	unsigned char addr[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
}

int
kc_tls_start(const struct kc_client *client, int fd, struct ssl_st **tls_out, char *why,
	     size_t why_size)
{
	SSL *tls = SSL_new(client->tls_ctx);
	bool ip = kc_host_is_ip(client->host);
	long verify;

	if (tls == NULL || SSL_set_fd(tls, fd) != 1)
		goto out_failed;
	if (!ip)
		SSL_set_tlsext_host_name(tls, client->host);  /* SNI names hosts, not addresses. */
	if (!client->insecure &&
	    (ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(tls), client->host) :
		  SSL_set1_host(tls, client->host)) != 1)
		goto out_failed;
	if (SSL_connect(tls) == 1) {
		*tls_out = tls;
		return 0;
	}
out_failed:
	verify = tls != NULL ? SSL_get_verify_result(tls) : X509_V_OK;
	if (verify != X509_V_OK)
		snprintf(why, why_size, "TLS: %s", X509_verify_cert_error_string(verify));
	else
		snprintf(why, why_size, "TLS handshake failed: %s",
			 ERR_reason_error_string(ERR_peek_last_error()) != NULL ?
			 ERR_reason_error_string(ERR_peek_last_error()) : "connection closed");
	ERR_clear_error();
	SSL_free(tls);
	return -EPROTO;
}

void
kc_tls_close(struct ssl_st *tls)
{
	SSL_free(tls);  /* No close_notify: the socket closes right after. */
}

static ssize_t
kc_tls_result(struct ssl_st *tls, int done)
{
	int err = SSL_get_error(tls, done);

	ERR_clear_error();
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
		return -EAGAIN;
	if (err == SSL_ERROR_ZERO_RETURN)
		return 0;
	if (err == SSL_ERROR_SYSCALL && errno != 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return err == SSL_ERROR_SYSCALL ? 0 : -EPROTO;  /* SYSCALL without errno: EOF. */
}

ssize_t
kc_io_send(int fd, struct ssl_st *tls, const void *buf, size_t size)
{
	sigset_t pipe_set, old_set;
	struct timespec zero = { 0 };
	ssize_t sent;
	int done;

	if (tls == NULL) {
		sent = send(fd, buf, size, MSG_NOSIGNAL);
		return sent >= 0 ? sent : errno == EWOULDBLOCK ? -EAGAIN : -errno;
	}
	/* OpenSSL writes with write(2): hold SIGPIPE back and swallow it if it came. */
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
	errno = 0;
	done = SSL_write(tls, buf, size > INT32_MAX ? INT32_MAX : (int)size);
	sent = done > 0 ? done : kc_tls_result(tls, done);
	if (sent == -EPIPE)
		sigtimedwait(&pipe_set, NULL, &zero);
	pthread_sigmask(SIG_SETMASK, &old_set, NULL);
	return sent == 0 ? -EPIPE : sent;
}

ssize_t
kc_io_recv(int fd, struct ssl_st *tls, void *buf, size_t size)
{
	ssize_t got;
	int done;

	if (tls == NULL) {
		got = recv(fd, buf, size, 0);
		return got >= 0 ? got : errno == EWOULDBLOCK ? -EAGAIN : -errno;
	}
	errno = 0;
	done = SSL_read(tls, buf, size > INT32_MAX ? INT32_MAX : (int)size);
	return done > 0 ? done : kc_tls_result(tls, done);
}

/* ---- HTTP/1.1 response parser ------------------------------------------------------ */

static bool
kc_header_is(const char *name, size_t name_size, const char *expected)
{
	return strlen(expected) == name_size && strncasecmp(name, expected, name_size) == 0;
}

static int
kc_status_line_parse(const char *line, size_t size, struct kc_http_response *response)
{
	/* "HTTP/1.1 200 OK": version, one space, three digits, then a space or the end. */
	if (size < 12 || memcmp(line, "HTTP/1.", 7) != 0 || (line[7] != '0' && line[7] != '1') ||
	    line[8] != ' ' || (size > 12 && line[12] != ' '))
		return -EBADMSG;
	for (size_t i = 9; i < 12; i++) {
		if (line[i] < '0' || line[i] > '9')
			return -EBADMSG;
	}
	response->status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
	if (response->status < 100)
		return -EBADMSG;
	response->connection_close = line[7] == '0';  /* HTTP/1.0 closes unless told not to. */
	return 0;
}

static int
kc_content_length_parse(const char *value, size_t size, size_t *length_out)
{
	uint64_t length = 0;

	if (size == 0 || size > 20)
		return -EBADMSG;
	for (size_t i = 0; i < size; i++) {
		if (value[i] < '0' || value[i] > '9')
			return -EBADMSG;
		length = length * 10 + (uint64_t)(value[i] - '0');
		if (length > KC_HTTP_BODY_SIZE_MAX)
			return -EMSGSIZE;
	}
	*length_out = (size_t)length;
	return 0;
}

/* One "Name: value" line without its CRLF. `have_length` tracks Content-Length. */
static int
kc_header_parse(const char *line, size_t size, struct kc_http_response *response,
		bool *have_length)
{
	const char *colon = memchr(line, ':', size);
	const char *value;
	const char *end = line + size;
	size_t length;
	int err;

	if (colon == NULL || colon == line || memchr(line, ' ', (size_t)(colon - line)) != NULL ||
	    memchr(line, '\t', (size_t)(colon - line)) != NULL)
		return -EBADMSG;
	for (value = colon + 1; value < end && (*value == ' ' || *value == '\t'); value++)
		;
	while (end > value && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	size = (size_t)(colon - line);
	if (kc_header_is(line, size, "content-length")) {
		err = kc_content_length_parse(value, (size_t)(end - value), &length);
		if (err != 0)
			return err;
		if (*have_length && length != response->body_size)
			return -EBADMSG;
		*have_length = true;
		response->body_size = length;
	} else if (kc_header_is(line, size, "transfer-encoding")) {
		if (!kc_header_is(value, (size_t)(end - value), "identity"))
			return -ENOTSUP;
	} else if (kc_header_is(line, size, "connection")) {
		if (kc_header_is(value, (size_t)(end - value), "close"))
			response->connection_close = true;
		else if (kc_header_is(value, (size_t)(end - value), "keep-alive"))
			response->connection_close = false;
	} else if (kc_header_is(line, size, "x-amzn-errortype")) {
		length = strcspn(value, ":\r");  /* "Type:http://internal..." keeps the type. */
		if (length > (size_t)(end - value))
			length = (size_t)(end - value);
		if (length >= sizeof(response->error_type))
			length = sizeof(response->error_type) - 1;
		memcpy(response->error_type, value, length);
		response->error_type[length] = '\0';
	}
	return 0;
}

static bool
kc_status_has_no_body(int status)
{
	return status < 200 || status == 204 || status == 304;
}

int
kc_http_response_parse(const char *buf, size_t size, struct kc_http_response *response)
{
	const char *headers_end = memmem(buf, size, "\r\n\r\n", 4);
	const char *line = buf;
	bool have_length = false;
	int err;

	memset(response, 0, sizeof(*response));
	if (headers_end == NULL)
		return size >= KC_HTTP_HEADER_SIZE_MAX ? -EMSGSIZE : -EAGAIN;
	response->header_size = (size_t)(headers_end - buf) + 4;
	if (response->header_size > KC_HTTP_HEADER_SIZE_MAX)
		return -EMSGSIZE;
	for (bool first = true; line < headers_end + 2; first = false) {
		/* Every line, the last header's included, ends in a CRLF before headers_end + 4. */
		const char *line_end = memmem(line, (size_t)(headers_end + 2 - line), "\r\n", 2);

		assert(line_end != NULL);
		if (first)
			err = kc_status_line_parse(line, (size_t)(line_end - line), response);
		else
			err = kc_header_parse(line, (size_t)(line_end - line), response,
					      &have_length);
		if (err != 0)
			return err;
		line = line_end + 2;
	}
	if (!have_length) {
		if (!kc_status_has_no_body(response->status))
			return -EBADMSG;  /* No read-until-close: keep-alive needs lengths. */
		response->body_size = 0;
	}
	if (size - response->header_size < response->body_size)
		return -EAGAIN;
	return 0;
}

static void
kc_copy_string(char *out, size_t out_size, const char *text)
{
	snprintf(out, out_size, "%s", text);
}

void
kc_error_from_response(struct kc_error *error, const struct kc_http_response *response,
		       const char *body, size_t body_size)
{
	cJSON *json = body_size > 0 ? cJSON_ParseWithLength(body, body_size) : NULL;
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(json, "__type");
	const cJSON *message = cJSON_GetObjectItemCaseSensitive(json, "message");

	memset(error, 0, sizeof(*error));
	error->http_status = response->status;
	if (message == NULL)
		message = cJSON_GetObjectItemCaseSensitive(json, "Message");  /* Serialization. */
	if (cJSON_IsString(type)) {
		const char *hash = strrchr(type->valuestring, '#');

		kc_copy_string(error->type, sizeof(error->type),
			       hash != NULL ? hash + 1 : type->valuestring);
	} else if (response->error_type[0] != '\0') {
		kc_copy_string(error->type, sizeof(error->type), response->error_type);
	} else {
		snprintf(error->type, sizeof(error->type), "HTTP %d", response->status);
	}
	if (cJSON_IsString(message))
		kc_copy_string(error->message, sizeof(error->message), message->valuestring);
	cJSON_Delete(json);
}

/* ---- SigV4 ------------------------------------------------------------------------- */

void
kc_amz_date(uint64_t real_ns, char out[KC_AMZ_DATE_SIZE])
{
	static_assert(KC_AMZ_DATE_SIZE == SIGV4_AMZ_DATE_SIZE, "one date format");
	sigv4_amz_date(real_ns, out);
}

int
kc_sigv4_authorization(const struct kc_sigv4_request *request, char *out, size_t out_size)
{
	char payload_hex[SIGV4_HEX_SIZE];
	struct sigv4_sign_header headers[] = {
		{ "content-type", request->content_type },
		{ "host", request->host },
		{ "x-amz-date", request->amz_date },
		{ "x-amz-security-token", request->session_token },
		{ "x-amz-target", request->target },
	};
	struct sigv4_sign sign = {
		.method = "POST", .canonical_uri = "/", .canonical_query = "",
		.headers = headers, .header_count = ARRAY_SIZE(headers),
		.payload_hex = payload_hex, .amz_date = request->amz_date,
		.region = request->region, .service = request->service,
		.access_key = request->access_key, .secret = request->secret_key,
	};

	if (request->session_token == NULL) {  /* Not signed: x-amz-target moves up. */
		headers[3] = headers[4];
		sign.header_count--;
	}
	sigv4_sha256_hex(request->body, request->body_size, payload_hex);
	return sigv4_sign_authorization(&sign, out, out_size);
}

/* ---- Requests ---------------------------------------------------------------------- */

int
kc_request_build(const struct kc_client *client, const char *action, const char *body,
		 size_t body_size, uint64_t now_real_ns, char **request_out,
		 size_t *request_size_out)
{
	char authorization[KC_AUTHORIZATION_SIZE_MAX] = "";
	char target[128];
	char amz_date[KC_AMZ_DATE_SIZE];
	char head[KC_AUTHORIZATION_SIZE_MAX + 1024];
	char *request;
	int head_size;

	/* A whole target ("Firehose_20150804.PutRecord") is sent as it is, signed for its service. */
	bool firehose = strncmp(action, KC_FIREHOSE_TARGET_PREFIX,
				sizeof(KC_FIREHOSE_TARGET_PREFIX) - 1) == 0;

	snprintf(target, sizeof(target), firehose ? "%s" : KC_TARGET_PREFIX "%s", action);
	kc_amz_date(now_real_ns, amz_date);
	if (client->access_key != NULL) {
		struct kc_sigv4_request sign = {
			.access_key = client->access_key, .secret_key = client->secret_key,
			.session_token = client->session_token, .region = client->region,
			.service = firehose ? "firehose" : "kinesis", .amz_date = amz_date,
			.host = client->host_header,
			.content_type = KC_CONTENT_TYPE, .target = target,
			.body = body, .body_size = body_size,
		};
		int err = kc_sigv4_authorization(&sign, authorization, sizeof(authorization));

		if (err != 0)
			return err;
	}
	head_size = snprintf(head, sizeof(head),
			     "POST / HTTP/1.1\r\nHost: %s\r\nUser-Agent: sluice-cli\r\n"
			     "Content-Type: " KC_CONTENT_TYPE "\r\nX-Amz-Target: %s\r\n"
			     "X-Amz-Date: %s\r\n%s%s%s%s%s%sContent-Length: %zu\r\n\r\n",
			     client->host_header, target, amz_date,
			     client->session_token != NULL ? "X-Amz-Security-Token: " : "",
			     client->session_token != NULL ? client->session_token : "",
			     client->session_token != NULL ? "\r\n" : "",
			     authorization[0] != '\0' ? "Authorization: " : "", authorization,
			     authorization[0] != '\0' ? "\r\n" : "", body_size);
	if (head_size < 0 || (size_t)head_size >= sizeof(head))
		return -ENAMETOOLONG;
	request = malloc((size_t)head_size + body_size);
	if (request == NULL)
		return -ENOMEM;
	memcpy(request, head, (size_t)head_size);
	memcpy(request + head_size, body, body_size);
	*request_out = request;
	*request_size_out = (size_t)head_size + body_size;
	return 0;
}

/* ---- The blocking round trip ------------------------------------------------------- */

static int
kc_send_all(struct kc_client *client, const char *data, size_t size)
{
	while (size > 0) {
		ssize_t sent = kc_io_send(client->fd, client->tls, data, size);

		if (sent == -EINTR)
			continue;
		if (sent < 0)
			return sent == -EAGAIN ? -ETIMEDOUT : (int)sent;
		data += sent;
		size -= (size_t)sent;
	}
	return 0;
}

/* Reads one whole response into client->rx. *received_out counts the bytes that came. */
static int
kc_receive(struct kc_client *client, struct kc_http_response *response, size_t *received_out)
{
	size_t received = 0;
	int err;

	*received_out = 0;
	for (;;) {
		ssize_t got;

		if (received == client->rx_capacity) {
			size_t capacity = client->rx_capacity == 0 ? 65536 :
					  2 * client->rx_capacity;
			char *rx = realloc(client->rx, capacity);

			if (rx == NULL)
				return -ENOMEM;
			client->rx = rx;
			client->rx_capacity = capacity;
		}
		got = kc_io_recv(client->fd, client->tls, client->rx + received,
				 client->rx_capacity - received);
		if (got == -EINTR)
			continue;
		if (got < 0)
			return got == -EAGAIN ? -ETIMEDOUT : (int)got;
		if (got == 0)
			return received == 0 ? -ECONNRESET : -EBADMSG;  /* Cut mid-response. */
		received += (size_t)got;
		*received_out = received;
		err = kc_http_response_parse(client->rx, received, response);
		if (err != -EAGAIN)
			return err;
	}
}

static void
kc_disconnect(struct kc_client *client)
{
	kc_tls_close(client->tls);
	client->tls = NULL;
	close(client->fd);
	client->fd = -1;
}

static int
kc_connect_blocking(struct kc_client *client)
{
	int fd = kc_connect(client, false);
	int err;

	if (fd < 0)
		return fd;
	client->fd = fd;
	if (!client->tls_enabled)
		return 0;
	err = kc_tls_start(client, fd, &client->tls, client->error.message,
			   sizeof(client->error.message));
	if (err != 0)
		kc_disconnect(client);
	return err;
}

/* One attempt: connect if needed, send, receive. */
static int
kc_exchange(struct kc_client *client, const char *request, size_t request_size,
	    struct kc_http_response *response, size_t *received_out)
{
	int err;

	*received_out = 0;
	if (client->fd < 0) {
		err = kc_connect_blocking(client);
		if (err != 0)
			return err;
	}
	err = kc_send_all(client, request, request_size);
	if (err == 0)
		err = kc_receive(client, response, received_out);
	if (err != 0 || response->connection_close)
		kc_disconnect(client);
	return err;
}

static int
kc_response_decode(struct kc_client *client, const struct kc_http_response *response,
		   cJSON **response_out)
{
	const char *body = client->rx + response->header_size;

	if (response->status != 200) {
		kc_error_from_response(&client->error, response, body, response->body_size);
		return -EREMOTEIO;
	}
	*response_out = response->body_size == 0 ? cJSON_CreateObject() :
			cJSON_ParseWithLength(body, response->body_size);
	if (*response_out == NULL) {
		snprintf(client->error.message, sizeof(client->error.message),
			 "the response body is not JSON");
		return -EBADMSG;
	}
	return 0;
}

int
kc_call(struct kc_client *client, const char *action, const cJSON *request,
	cJSON **response_out)
{
	struct kc_http_response response;
	char *body = request != NULL ? cJSON_PrintUnformatted(request) : strdup("{}");
	char *bytes;
	size_t size;
	size_t received;
	int err;

	memset(&client->error, 0, sizeof(client->error));
	*response_out = NULL;
	if (body == NULL)
		return -ENOMEM;
	err = kc_request_build(client, action, body, strlen(body), clock_real_ns(), &bytes, &size);
	free(body);
	if (err != 0)
		return err;
	for (int attempt = 0; attempt < 2; attempt++) {
		bool reused = client->fd >= 0;

		err = kc_exchange(client, bytes, size, &response, &received);
		/* A kept-alive connection the server closed meanwhile: retry once, fresh. */
		if (err == 0 || !reused || received != 0 ||
		    (err != -ECONNRESET && err != -EPIPE))
			break;
	}
	free(bytes);
	if (err != 0)
		return err;
	client->error.http_status = response.status;
	return kc_response_decode(client, &response, response_out);
}

/* ---- base64 ------------------------------------------------------------------------ */

int
kc_base64_encode(const void *data, size_t size, char **out, size_t *out_size)
{
	char *text = malloc(base64_encoded_size(size) + 1);

	if (text == NULL)
		return -ENOMEM;
	*out_size = base64_encode(data, size, text);
	text[*out_size] = '\0';
	*out = text;
	return 0;
}

int
kc_base64_decode(const char *text, size_t text_size, uint8_t **out, size_t *out_size)
{
	/* One spare byte: a zero-length result still gets a buffer to free. */
	uint8_t *bytes = malloc(text_size / 4 * 3 + 1);
	int64_t n;

	if (bytes == NULL)
		return -ENOMEM;
	n = base64_decode(text, text_size, bytes, text_size / 4 * 3 + 1);
	if (n < 0) {
		free(bytes);
		return -EINVAL;
	}
	*out = bytes;
	*out_size = (size_t)n;
	return 0;
}
