/*
 * kinesis_read.c - GetShardIterator and GetRecords. An iterator holds the
 * next log sequence number to read (inclusive), the stream's id and
 * incarnation and its issue time; GetRecords serves only durable records
 * (log_read), writes them straight into the response (base64 streamed into
 * the output buffer) and always returns a new NextShardIterator.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/diag.h"
#include "control/kinesis.h"
#include "control/metrics.h"
#include "control/seqnum.h"
#include "nvme-log/log.h"

static const char kinesis_key_member[] = "\",\"PartitionKey\":";
/* After PartitionKey, for a record stored encrypted (AWS shows it per record). */
static const char kinesis_kms_member[] = ",\"EncryptionType\":\"KMS\"";

/* Room kept free in the response for the closing members and the next iterator. */
#define KINESIS_RESPONSE_RESERVE (64u * 1024u)

const char *const kinesis_iterator_types[] = {
	"AFTER_SEQUENCE_NUMBER", "LATEST", "AT_TIMESTAMP", "AT_SEQUENCE_NUMBER", "TRIM_HORIZON",
	NULL,
};

static void
kinesis_shard_missing(struct kinesis *k, struct api_call *call, uint32_t index,
		      const char *stream, size_t stream_size)
{
	char shard_id[KINESIS_SHARD_ID_SIZE];

	kinesis_shard_id_format(index, shard_id);
	kinesis_error(call, "ResourceNotFoundException", "Shard %s in stream %.*s under account %s "
		      "does not exist", shard_id, (int)stream_size, stream, k->config.account_id);
}

/*
 * The shard ShardId names. AWS checks it before the stream: a ShardId that
 * does not parse is "Could not find shard", any other missing shard, of a
 * stream that exists or not, "does not exist" (with the canonical id).
 */
static struct kinesis_shard *
kinesis_iterator_shard(struct kinesis *k, struct api_call *call,
		       const struct kinesis_stream_ref *ref, const struct kv_value *shard_id)
{
	struct kinesis_stream *s = ref->stream;
	uint32_t index;

	if (kinesis_shard_id_parse(shard_id->string, shard_id->size, &index) != 0) {
		kinesis_error(call, "ResourceNotFoundException", "Could not find shard %s in stream "
			      "%.*s under account %s.", shard_id->string, (int)ref->size, ref->name,
			      k->config.account_id);
		return NULL;
	}
	if (s == NULL || index >= s->shard_count || s->status == KINESIS_CREATING) {
		kinesis_shard_missing(k, call, index, ref->name, ref->size);
		return NULL;
	}
	return &s->shards[index];
}

/* AT_/AFTER_SEQUENCE_NUMBER: the number must be this shard's. */
static int
kinesis_iterator_seq(struct kinesis *k, struct api_call *call, const struct kinesis_stream *s,
		     const struct kinesis_shard *sh, const struct kv_value *text, uint64_t *seq)
{
	char shard_id[KINESIS_SHARD_ID_SIZE];
	char other_id[KINESIS_SHARD_ID_SIZE];
	struct seqnum_client sn;

	kinesis_shard_id_format(sh->index, shard_id);
	/* Read as AWS reads it (any version), so its answers follow in its order. */
	if (seqnum_parse_client(text->string, text->size, &sn) != 0) {
		kinesis_error(call, "InvalidArgumentException", "StartingSequenceNumber %s used in "
			      "GetShardIterator on shard %s in stream %s under account %s is invalid.",
			      text->string, shard_id, s->name, k->config.account_id);
		return -EINVAL;
	}
	if (sn.shard_index != sh->index) {
		kinesis_shard_id_format(sn.shard_index, other_id);
		kinesis_error(call, "InvalidArgumentException", "Invalid StartingSequenceNumber. It "
			      "encodes %s, while it was used in a call to a shard with %s", other_id,
			      shard_id);
		return -EINVAL;
	}
	if (sn.version != 2 || sn.shard_created_s != sh->created_s) {
		kinesis_error(call, "InvalidArgumentException", "StartingSequenceNumber %s used in "
			      "GetShardIterator on shard %s in stream %s under account %s is invalid "
			      "because it did not come from this stream.", text->string, shard_id,
			      s->name, k->config.account_id);
		return -EINVAL;
	}
	*seq = sn.seq;
	return 0;
}

/* Checks which of StartingSequenceNumber / Timestamp the type needs. */
static int
kinesis_iterator_args(struct kinesis *k, struct api_call *call, const char *type,
		      const struct kv_value *ssn, const struct kv_value *ts, uint64_t now_ms)
{
	bool wants_seq = strstr(type, "SEQUENCE_NUMBER") != NULL;
	bool at_ts = strcmp(type, "AT_TIMESTAMP") == 0;
	double ts_ms;

	(void)k;
	if (wants_seq != (ssn->json != NULL) && (!at_ts || ssn->json != NULL)) {
		kinesis_error(call, "InvalidArgumentException", "Must either specify (1) "
			      "AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and StartingSequenceNumber "
			      "or (2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. Request "
			      "specified %s and %s StartingSequenceNumber.", type,
			      ssn->json != NULL ? "also a" : "no");
		return -EINVAL;
	}
	if (!at_ts)
		return 0;
	if (ts->json == NULL) {
		kinesis_error(call, "InvalidArgumentException", "Must specify timestampInMillis "
			      "parameter for iterator of type AT_TIMESTAMP. Current request has no "
			      "timestamp parameter.");
		return -EINVAL;
	}
	ts_ms = ts->seconds * 1000.0;
	if (ts_ms > (double)now_ms) {
		kinesis_error(call, "InvalidArgumentException", "The timestampInMillis parameter "
			      "cannot be greater than the currentTimestampInMillis. timestampInMillis: "
			      "%.0f, currentTimestampInMillis: %llu", ts_ms, (unsigned long long)now_ms);
		return -EINVAL;
	}
	return 0;
}

/* The log position an iterator of `type` starts at. */
static int
kinesis_iterator_start(struct kinesis *k, const struct kinesis_shard *sh, const char *type,
		       const struct kv_value *ts, uint64_t *seq)
{
	struct log_shard_info info;
	int rc;

	if (strcmp(type, "AT_SEQUENCE_NUMBER") == 0)
		return 0;
	if (strcmp(type, "AFTER_SEQUENCE_NUMBER") == 0) {
		*seq += 1;
		return 0;
	}
	if (strcmp(type, "AT_TIMESTAMP") == 0) {
		double ns = ts->seconds * 1e9;

		return log_seek_time(k->reader, sh->log_id, ns <= 0 ? 0 : (uint64_t)ns, seq);
	}
	rc = log_shard_info(k->log, sh->log_id, &info);
	if (rc == 0)
		*seq = strcmp(type, "LATEST") == 0 ? info.seq_durable : info.seq_trim;
	return rc;
}

static void
kinesis_out_iterator(struct kinesis *k, struct api_out *out, const struct kinesis_stream *s,
		     uint32_t shard_index, uint64_t seq, uint64_t now_ms)
{
	char text[ITERATOR_TEXT_SIZE_MAX + 1];
	struct iterator it = {
		.issued_ms = now_ms, .nonce = k->nonce++, .stream_id = s->stream_id,
		.incarnation = s->incarnation, .shard_index = shard_index, .seq = seq,
		.name_size = (uint8_t)s->name_size,
	};

	memcpy(it.name, s->name, s->name_size);
	iterator_encode(k->secret, &it, text);
	api_out_printf(out, "\"%s\"", text);
}

void
kinesis_get_shard_iterator(struct kinesis_req *r)
{
	struct kinesis *k = r->k;
	struct api_call *call = r->call;
	const char *type = r->v[GET_SHARD_ITERATOR_SHARD_ITERATOR_TYPE].string;
	const struct kv_value *ssn = &r->v[GET_SHARD_ITERATOR_STARTING_SEQUENCE_NUMBER];
	const struct kv_value *ts = &r->v[GET_SHARD_ITERATOR_TIMESTAMP];
	uint64_t now_ms = kinesis_now_ms(r->req);
	struct kinesis_stream_ref ref;
	struct kinesis_stream *s;
	struct kinesis_shard *sh;
	uint64_t seq = 0;
	int rc;

	if (kinesis_stream_lookup(k, call, &r->v[GET_SHARD_ITERATOR_STREAM_NAME],
				  &r->v[GET_SHARD_ITERATOR_STREAM_ARN], &ref) != 0)
		return;
	s = ref.stream;
	sh = kinesis_iterator_shard(k, call, &ref, &r->v[GET_SHARD_ITERATOR_SHARD_ID]);
	if (sh == NULL || kinesis_iterator_args(k, call, type, ssn, ts, now_ms) != 0)
		return;
	if (ssn->json != NULL && kinesis_iterator_seq(k, call, s, sh, ssn, &seq) != 0)
		return;
	/* Checked here as a holder would; its log holds the position (cluster mode). */
	if (kinesis_forward_read(r, FORWARD_READ_ITERATOR, sh->log_id))
		return;
	rc = kinesis_iterator_start(k, sh, type, ts, &seq);
	if (rc != 0) {
		diag_error("kinesis", "GetShardIterator: %s", strerror(-rc));
		kinesis_internal_error(call);
		return;
	}
	api_out_printf(api_call_out(call), "{\"ShardIterator\":");
	kinesis_out_iterator(k, api_call_out(call), s, sh->index, seq, now_ms);
	api_out_printf(api_call_out(call), "}");
	api_call_reply(call, 200);
}

/* ---- GetRecords ----------------------------------------------------------- */

/*
 * Sequence numbers of consecutive records of a shard (same arrival second)
 * differ by 2^80: besides its text, the last number keeps its 25 lowest
 * digits as two integers (12 + 13 digits), so the next one costs two
 * additions and 25 digits written in pairs, with no branch per digit. (The
 * digit-wise addition of seqnum_format_next mispredicted on its carries:
 * 22 % of the server's time in GetRecords under perf.) Anything else, or a
 * carry into the upper digits that runs through all of them, takes the
 * full formatter.
 */
#define SEQ_LOW_DIGITS 13u
#define SEQ_MID_DIGITS 12u
#define SEQ_LOW_BASE 10000000000000ull /* 10^13 */
#define SEQ_MID_BASE 1000000000000ull  /* 10^12 */
#define SEQ_STEP_MID 120892581961ull   /* 2^80 = SEQ_STEP_MID * 10^13 + SEQ_STEP_LOW */
#define SEQ_STEP_LOW 4629174706176ull
#define SEQ_TAIL_DIGITS (SEQ_LOW_DIGITS + SEQ_MID_DIGITS)

struct kinesis_seq_text {
	bool valid;
	struct seqnum sn;
	char text[SEQNUM_DECIMAL_SIZE];
	size_t size;
	uint64_t mid;              /* text[size - 25 .. size - 13) as a number. */
	uint64_t low;              /* text[size - 13 .. size). */
};

static const char kinesis_pairs[] =
	"000102030405060708091011121314151617181920212223242526272829"
	"303132333435363738394041424344454647484950515253545556575859"
	"606162636465666768697071727374757677787980818283848586878889"
	"90919293949596979899";

/* Writes exactly `digits` decimal digits of `value` (zero-padded) ending at out + digits. */
static void
kinesis_digits_fixed(char *out, uint64_t value, unsigned digits)
{
	char *p = out + digits;

	for (; digits >= 2; digits -= 2) {
		p -= 2;
		memcpy(p, kinesis_pairs + 2 * (value % 100), 2);
		value /= 100;
	}
	if (digits == 1)
		p[-1] = (char)('0' + value % 10);
}

static uint64_t
kinesis_digits_parse(const char *text, unsigned digits)
{
	uint64_t value = 0;

	for (unsigned i = 0; i < digits; i++)
		value = value * 10 + (uint64_t)(text[i] - '0');
	return value;
}

static void
kinesis_seq_full(struct kinesis_seq_text *st, const struct seqnum *sn)
{
	st->sn = *sn;
	st->size = seqnum_format(sn, st->text);
	st->valid = st->size > SEQ_TAIL_DIGITS;
	if (!st->valid)
		return;
	st->mid = kinesis_digits_parse(st->text + st->size - SEQ_TAIL_DIGITS, SEQ_MID_DIGITS);
	st->low = kinesis_digits_parse(st->text + st->size - SEQ_LOW_DIGITS, SEQ_LOW_DIGITS);
}

/* Adds one to the digits above the tail; false when they are all nines (the text grows). */
static bool
kinesis_seq_carry(struct kinesis_seq_text *st)
{
	for (size_t i = st->size - SEQ_TAIL_DIGITS; i-- > 0;) {
		if (st->text[i] != '9') {
			st->text[i]++;
			return true;
		}
		st->text[i] = '0';
	}
	return false;
}

/* st's text becomes `sn`'s decimal form. */
static void
kinesis_seq_next(struct kinesis_seq_text *st, const struct seqnum *sn)
{
	const struct seqnum *prev = &st->sn;
	uint64_t carry;

	if (!st->valid || prev->shard_created_s != sn->shard_created_s ||
	    prev->shard_index != sn->shard_index || prev->put_s != sn->put_s ||
	    prev->seq + 1 != sn->seq) {
		kinesis_seq_full(st, sn);
		return;
	}
	st->low += SEQ_STEP_LOW;
	carry = st->low >= SEQ_LOW_BASE;
	st->low -= carry * SEQ_LOW_BASE;
	st->mid += SEQ_STEP_MID + carry;
	carry = st->mid >= SEQ_MID_BASE;
	st->mid -= carry * SEQ_MID_BASE;
	if (carry != 0 && !kinesis_seq_carry(st)) {
		kinesis_seq_full(st, sn);
		return;
	}
	st->sn = *sn;
	kinesis_digits_fixed(st->text + st->size - SEQ_TAIL_DIGITS, st->mid, SEQ_MID_DIGITS);
	kinesis_digits_fixed(st->text + st->size - SEQ_LOW_DIGITS, st->low, SEQ_LOW_DIGITS);
}

struct kinesis_read_ctx {
	struct api_out *out;
	const struct kinesis_shard *sh;
	struct kinesis_seq_text seq_text; /* The last sequence number written. */
	uint32_t count;
	uint64_t seq_next;
	uint64_t last_arrival_ns;
	size_t size_limit;       /* The response must stay below this. */
	uint64_t data_bytes;     /* Of the records written (GetRecords.Bytes). */
};

/* Writes `value` in decimal at `out`; returns the digits written. */
static size_t
kinesis_decimal(char *out, uint64_t value)
{
	char rev[20];
	size_t n = 0;

	do {
		rev[n++] = (char)('0' + value % 10);
		value /= 10;
	} while (value != 0);
	for (size_t i = 0; i < n; i++)
		out[i] = rev[n - 1 - i];
	return n;
}

static size_t
kinesis_copy(char *out, const char *text, size_t size)
{
	memcpy(out, text, size);
	return size;
}

/*
 * Writes one record as it is read; stops before a record that would not fit.
 * Assembled by hand, sequence numbers incrementally: this runs 10,000 times
 * a call. A record's closing brace goes out with the next record's text
 * (or after the last one, kinesis_read), one append fewer per record.
 */
static int
kinesis_read_record(void *arg, const struct log_record_out *rec)
{
	static const char seq_member[] = "{\"SequenceNumber\":\"";
	static const char ts_member[] = "\",\"ApproximateArrivalTimestamp\":";
	static const char data_member[] = ",\"Data\":\"";
	struct kinesis_read_ctx *ctx = arg;
	size_t need = (rec->data_size + 2u) / 3u * 4u + 6u * rec->partition_key_size + 256u;
	uint64_t ms = rec->arrival_ns / 1000000u;
	char text[SEQNUM_DECIMAL_SIZE + 128];
	struct seqnum sn = {
		.shard_created_s = ctx->sh->created_s, .shard_index = ctx->sh->index,
		.seq = rec->seq, .put_s = rec->arrival_ns / 1000000000u,
	};
	size_t n = 0;

	if (ctx->count > 0 && ctx->out->size + need > ctx->size_limit)
		return -ENOBUFS;
	if (ctx->count > 0) {
		text[n++] = '}';
		text[n++] = ',';
	}
	n += kinesis_copy(text + n, seq_member, sizeof(seq_member) - 1);
	kinesis_seq_next(&ctx->seq_text, &sn);
	n += kinesis_copy(text + n, ctx->seq_text.text, ctx->seq_text.size);
	n += kinesis_copy(text + n, ts_member, sizeof(ts_member) - 1);
	n += kinesis_decimal(text + n, ms / 1000);
	text[n++] = '.';
	kinesis_digits_fixed(text + n, ms % 1000, 3);
	n += 3;
	n += kinesis_copy(text + n, data_member, sizeof(data_member) - 1);
	api_out_append(ctx->out, text, n);
	api_out_base64(ctx->out, rec->data, rec->data_size);
	api_out_append(ctx->out, kinesis_key_member, sizeof(kinesis_key_member) - 1);
	api_out_json_string(ctx->out, (const char *)rec->partition_key, rec->partition_key_size);
	if (rec->encrypted)
		api_out_append(ctx->out, kinesis_kms_member, sizeof(kinesis_kms_member) - 1);
	ctx->count++;
	ctx->data_bytes += rec->data_size;
	ctx->seq_next = rec->seq + 1;
	ctx->last_arrival_ns = rec->arrival_ns;
	return 0;
}

/*
 * Records the log knows are lost to corruption at or after ctx->seq_next: a reader meeting
 * them got InternalFailure forever (SDKs retry it forever). AWS has no such state; the
 * closest is data past retention, which a reader silently skips. So the loss is skipped
 * too, but said: logged with its range, counted (records_lost_skipped). *seq_out is
 * where to go on. -ENOENT when the log knows of no such range (then it stays an error).
 */
static int
kinesis_read_skip_lost(struct kinesis *k, struct kinesis_read_ctx *ctx, uint64_t *seq_out)
{
	uint64_t from = ctx->seq_next;  /* Inside the range, or where it begins. */
	uint64_t first;
	uint64_t end;
	int rc = log_shard_bad_range(k->log, ctx->sh->log_id, from, &first, &end);

	if (rc != 0)
		return rc;
	k->records_lost_skipped += end - (first > from ? first : from);
	diag_warn("kinesis", "GetRecords: shard %u: records %llu..%llu are lost to corruption; "
		  "the reader skips them", ctx->sh->index, (unsigned long long)from,
		  (unsigned long long)end - 1);
	ctx->seq_next = end;
	*seq_out = end;
	return 0;
}

/* Reads from *seq; a position below the trim horizon moves up to it, as AWS skips. */
static int
kinesis_read(struct kinesis *k, struct kinesis_read_ctx *ctx, uint32_t limit, uint64_t seq)
{
	uint64_t bytes_max = KINESIS_GET_RECORDS_SIZE_MAX;
	size_t room = ctx->size_limit > ctx->out->size ? ctx->size_limit - ctx->out->size : 0;
	uint64_t seq_next = seq;
	int rc;

	if (room / 4 * 3 < bytes_max)
		bytes_max = room / 4 * 3;
	for (uint32_t attempt = 0; attempt < KINESIS_READ_ATTEMPTS_MAX; attempt++) {
		struct log_shard_info info;

		ctx->seq_next = seq;
		rc = log_read(k->reader, ctx->sh->log_id, seq, limit - ctx->count, bytes_max,
			      kinesis_read_record, ctx, &seq_next);
		if (rc == -EBADMSG && kinesis_read_skip_lost(k, ctx, &seq) == 0) {
			seq_next = seq;
			if (ctx->count > 0)
				break;  /* What came before the loss now; the next call goes on. */
			continue;
		}
		if (rc != -ERANGE)
			break;
		rc = log_shard_info(k->log, ctx->sh->log_id, &info);
		if (rc != 0)
			return rc;
		seq = info.seq_trim;
	}
	if (ctx->count > 0)
		api_out_append(ctx->out, "}", 1); /* The last record's (kinesis_read_record). */
	if (rc == -EBADMSG && ctx->count > 0)
		rc = 0;  /* Skipped past a loss after some records: ctx->seq_next is past it. */
	if (rc == -ENOBUFS)
		return 0; /* Stopped early: ctx->seq_next is where to go on. */
	if (rc < 0)
		return rc;
	ctx->seq_next = seq_next;
	return 0;
}

int
kinesis_records_out(struct kinesis *k, const struct kinesis_shard *sh, struct api_out *out,
		    size_t size_limit, uint32_t limit, uint64_t seq,
		    struct kinesis_records_read *res)
{
	struct kinesis_read_ctx ctx = { .out = out, .sh = sh, .size_limit = size_limit };
	int rc = kinesis_read(k, &ctx, limit, seq);

	res->count = ctx.count;
	res->seq_next = ctx.count > 0 || rc == 0 ? ctx.seq_next : seq;
	res->last_arrival_ns = ctx.last_arrival_ns;
	res->data_bytes = ctx.data_bytes;
	return rc;
}

/* Validates an iterator; replies and returns NULL when it is not usable. */
static struct kinesis_stream *
kinesis_iterator_open(struct kinesis *k, struct api_call *call, const struct kv_value *text,
		      uint64_t now_ms, struct iterator *it)
{
	struct kinesis_stream *s;

	if (iterator_decode(k->secret, text->string, text->size, it) != 0 ||
	    it->issued_ms > now_ms + 1000) {
		kinesis_error(call, "InvalidArgumentException", "Invalid ShardIterator.");
		return NULL;
	}
	/* Issued up to a second "in the future" is clock skew between requests, not age. */
	if (now_ms > it->issued_ms && now_ms - it->issued_ms > KINESIS_TOKEN_TTL_MS) {
		char created[64];
		char current[64];
		time_t t1 = (time_t)(it->issued_ms / 1000);
		time_t t2 = (time_t)(now_ms / 1000);
		struct tm tm;

		strftime(created, sizeof(created), "%a %b %d %H:%M:%S UTC %Y", gmtime_r(&t1, &tm));
		strftime(current, sizeof(current), "%a %b %d %H:%M:%S UTC %Y", gmtime_r(&t2, &tm));
		kinesis_error(call, "ExpiredIteratorException", "Iterator expired. The iterator was "
			      "created at time %s while right now it is %s which is further in the "
			      "future than the tolerated delay of %u milliseconds.", created, current,
			      KINESIS_TOKEN_TTL_MS);
		return NULL;
	}
	s = kinesis_stream_by_id(k, it->stream_id);
	if (s == NULL || s->incarnation != it->incarnation || it->shard_index >= s->shard_count) {
		kinesis_shard_missing(k, call, it->shard_index, it->name, it->name_size);
		return NULL;
	}
	return kinesis_authorize(k, call, s, NULL, NULL) ? s : NULL;
}

/* Optional per-shard read limits: 5 calls/s and 2 MiB/s. */
static bool
kinesis_throttle_read(struct kinesis *k, struct kinesis_shard *sh, uint64_t now_s)
{
	if (!k->config.shard_throttling)
		return true;
	if (sh->read_window_s != now_s) {
		sh->read_window_s = now_s;
		sh->read_window_calls = 0;
		sh->read_window_bytes = 0;
	}
	return ++sh->read_window_calls <= 5 && sh->read_window_bytes <= 2u * 1024 * 1024;
}

static uint64_t
kinesis_millis_behind(struct kinesis *k, const struct kinesis_read_ctx *ctx, uint64_t now_ms)
{
	struct log_shard_info info;
	uint64_t arrival_ms = ctx->last_arrival_ns / 1000000u;

	if (log_shard_info(k->log, ctx->sh->log_id, &info) != 0 || ctx->seq_next >= info.seq_durable)
		return 0;
	return ctx->count > 0 && now_ms > arrival_ms ? now_ms - arrival_ms : 0;
}

/*
 * `size_max`: the answer's bound (the response's, or a forwarding node's reply
 * buffer for a forwarded call: fewer records, the next call goes on).
 */
static void
kinesis_get_records_run(struct kinesis *k, struct api_call *call, struct kinesis_stream *s,
			const struct iterator *it, uint32_t limit, uint64_t now_ms,
			size_t size_max)
{
	struct kinesis_shard *sh = &s->shards[it->shard_index];
	struct api_out *out = api_call_out(call);
	struct kinesis_read_ctx ctx = {
		.out = out, .sh = sh,
		.size_limit = size_max > KINESIS_RESPONSE_RESERVE ?
			      size_max - KINESIS_RESPONSE_RESERVE : 0,
	};
	char shard_id[KINESIS_SHARD_ID_SIZE];
	struct metrics_stream_ref ref = {
		.slot = (uint32_t)(s - k->streams), .stream_id = s->stream_id, .name = s->name,
	};
	uint64_t started_ns = metrics_enabled() ? clock_mono_ns() : 0;
	uint64_t behind_ms;
	int rc;

	if (!kinesis_throttle_read(k, sh, now_ms / 1000)) {
		metrics_stream_get(&ref, 0, 0, 0, 0, true);
		if (s->shard_metrics != 0) {
			struct metrics_shard_add add = {
				.shard_index = sh->index, .enabled = s->shard_metrics,
				.read_exceeded = 1,
			};

			kinesis_shard_metrics(s, &ref, &add);
		}
		kinesis_shard_id_format(sh->index, shard_id);
		kinesis_error(call, "ProvisionedThroughputExceededException", "Rate exceeded for "
			      "shard %s in stream %s under account %s.", shard_id, s->name,
			      k->config.account_id);
		return;
	}
	api_out_printf(out, "{\"Records\":[");
	rc = kinesis_read(k, &ctx, limit, it->seq);
	if (kinesis_kms_errno(rc)) {
		out->size = 0;
		kinesis_kms_error(call, rc, NULL);
		return;
	}
	if (rc != 0) {
		diag_error("kinesis", "GetRecords %s/%u: %s", s->name, sh->index, strerror(-rc));
		out->size = 0;
		kinesis_internal_error(call);
		return;
	}
	sh->read_window_bytes += out->size;
	api_out_printf(out, "],\"NextShardIterator\":");
	if (kinesis_shard_ended(sh, ctx.seq_next)) {
		api_out_printf(out, "null,\"ChildShards\":");
		kinesis_out_child_shards(out, s, sh->index);
	} else {
		kinesis_out_iterator(k, out, s, sh->index, ctx.seq_next, now_ms);
	}
	behind_ms = kinesis_millis_behind(k, &ctx, now_ms);
	api_out_printf(out, ",\"MillisBehindLatest\":%llu}", (unsigned long long)behind_ms);
	if (metrics_enabled())
		metrics_stream_get(&ref, ctx.count, ctx.data_bytes, clock_mono_ns() - started_ns,
				   behind_ms, false);
	if (s->shard_metrics != 0) {
		struct metrics_shard_add add = {
			.shard_index = sh->index, .enabled = s->shard_metrics,
			.outgoing_records = ctx.count, .outgoing_bytes = ctx.data_bytes,
			.iterator_age_ms = behind_ms, .iterator_age = true,
		};

		kinesis_shard_metrics(s, &ref, &add);
	}
	api_call_reply(call, 200);
}

void
kinesis_get_records(struct kinesis_req *r)
{
	const struct kv_value *limit = &r->v[GET_RECORDS_LIMIT];
	uint64_t now_ms = kinesis_now_ms(r->req);
	struct kinesis_stream *s;
	struct iterator it;

	size_t size_max = api_call_out(r->call)->capacity_max;

	s = kinesis_iterator_open(r->k, r->call, &r->v[GET_RECORDS_SHARD_ITERATOR], now_ms, &it);
	if (s == NULL || kinesis_forward_read(r, FORWARD_READ_RECORDS,
					      s->shards[it.shard_index].log_id))
		return;
	if (r->req->forwarded && size_max > FORWARD_READ_REPLY_SIZE_MAX)
		size_max = FORWARD_READ_REPLY_SIZE_MAX;
	kinesis_get_records_run(r->k, r->call, s, &it, limit->json != NULL ?
				(uint32_t)limit->number : KINESIS_GET_RECORDS_MAX, now_ms, size_max);
}
