/*
 * http1.h - a small strict HTTP/1.1 request-head parser (picohttpparser style).
 *
 * The parser points into the caller's buffer (pointer + length, nothing is
 * copied or allocated) and fills a caller-sized header array. It parses only
 * the head: request line, header fields and the empty line. Bodies are framed
 * by the caller from http1_framing_read() (Content-Length only: a chunked
 * request body is refused, which every AWS client allows).
 *
 * Strict means: CRLF line ends, one SP between the request-line parts, a
 * token method, a visible-ASCII target, "HTTP/1.0" or "HTTP/1.1", token
 * header names with no space before the colon, no obsolete line folding, no
 * control bytes in values (HTAB allowed). Leading empty lines before a request
 * line are skipped (RFC 9112 2.2), so a stray CRLF between pipelined requests
 * is harmless.
 */
#ifndef SLUICE_CONTROL_HTTP1_H
#define SLUICE_CONTROL_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest request head (request line + headers + CRLF CRLF); beyond is 431. */
#define HTTP1_HEAD_SIZE_MAX (16u * 1024u)
/* Most header fields in one request; beyond is 431. */
#define HTTP1_HEADERS_MAX 64u

/* Parser results besides "bytes consumed" (> 0). */
#define HTTP1_PARTIAL 0             /* Valid so far: read more bytes. */
#define HTTP1_INVALID (-1)          /* Malformed: answer 400 and close. */
#define HTTP1_HEAD_TOO_LARGE (-2)   /* Head exceeds the size limit: 431 and close. */
#define HTTP1_TOO_MANY_HEADERS (-3) /* More fields than the array holds: 431 and close. */

struct http1_header {
	const char *name;
	size_t name_size;
	const char *value;    /* Leading and trailing spaces/tabs removed. */
	size_t value_size;
};

struct http1_request {
	const char *method;
	size_t method_size;
	const char *target;   /* Request target as sent (origin form: "/", "/?a=b"). */
	size_t target_size;
	int minor_version;    /* 0 or 1. */
	struct http1_header *headers;
	size_t header_count;
};

/*
 * Parses one request head from buf[0 .. size). `headers` has room for
 * `headers_capacity` fields; a head longer than `head_size_max` (leading empty
 * lines included) is refused. Returns the head's size in bytes (the body, if
 * any, starts there), HTTP1_PARTIAL, or a negative HTTP1_* code. Never reads
 * buf[size] or beyond.
 */
int http1_parse_request(const char *buf, size_t size, struct http1_request *req,
			struct http1_header *headers, size_t headers_capacity,
			size_t head_size_max);

/* How the body of a parsed request is framed, and what the client asked for. */
struct http1_framing {
	uint64_t content_length;  /* 0 when absent. */
	bool chunked;             /* Transfer-Encoding present: refused with 411 by the server. */
	bool expect_continue;     /* Expect: 100-continue. */
	bool keep_alive;          /* 1.1 unless "Connection: close"; 1.0 only with keep-alive. */
};

/*
 * Reads the framing headers of `req`. Returns 0, or -EINVAL when they are
 * contradictory or malformed (two different Content-Length values, a
 * non-decimal or overflowing length, Content-Length with Transfer-Encoding,
 * an Expect other than 100-continue): answer 400 and close.
 */
int http1_framing_read(const struct http1_request *req, struct http1_framing *framing);

/* Case-insensitive header-name comparison with a NUL-terminated lower-case name. */
bool http1_name_is(const char *name, size_t name_size, const char *lower);

/* First header named `lower` (case-insensitive), or NULL. */
const struct http1_header *http1_header_find(const struct http1_request *req, const char *lower);

#endif /* SLUICE_CONTROL_HTTP1_H */
