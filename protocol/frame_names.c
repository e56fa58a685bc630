/* frame_names.c - stable names of statuses and errors, and how they map. */
#include <assert.h>
#include <stdbool.h>

#include "protocol/frame.h"

static const char *const status_names[FRAME_STATUS_COUNT_] = {
	[FRAME_STATUS_OK] = "ok",
	[FRAME_STATUS_UNKNOWN_STREAM] = "unknown_stream",
	[FRAME_STATUS_RECORD_TOO_LARGE] = "record_too_large",
	[FRAME_STATUS_MALFORMED] = "malformed",
	[FRAME_STATUS_AUTH_FAILED] = "auth_failed",
	[FRAME_STATUS_THROTTLED] = "throttled",
	[FRAME_STATUS_INTERNAL] = "internal",
	[FRAME_STATUS_STALE_EPOCH] = "stale_epoch",
	[FRAME_STATUS_SEQUENCE_OLD] = "sequence_old",
	[FRAME_STATUS_WRONG_SHARD] = "wrong_shard",
	[FRAME_STATUS_NOT_LEADER] = "not_leader",
	[FRAME_STATUS_SPLIT_LEADERS] = "split_leaders",
};

static const char *const err_names[FRAME_ERR_COUNT_] = {
	[FRAME_OK] = "ok",
	[FRAME_ERR_TRUNCATED] = "truncated",
	[FRAME_ERR_MAGIC] = "magic",
	[FRAME_ERR_VERSION] = "version",
	[FRAME_ERR_FRAME_SIZE] = "frame_size",
	[FRAME_ERR_TRAILING] = "trailing",
	[FRAME_ERR_CRC] = "crc",
	[FRAME_ERR_TYPE] = "type",
	[FRAME_ERR_FLAGS] = "flags",
	[FRAME_ERR_RESERVED] = "reserved",
	[FRAME_ERR_RECORD_COUNT] = "record_count",
	[FRAME_ERR_STREAM_NAME] = "stream_name",
	[FRAME_ERR_RECORD_FLAGS] = "record_flags",
	[FRAME_ERR_RECORD_TRUNCATED] = "record_truncated",
	[FRAME_ERR_RECORD_TOO_LARGE] = "record_too_large",
	[FRAME_ERR_KEY_UTF8] = "key_utf8",
	[FRAME_ERR_BODY_SIZE] = "body_size",
	[FRAME_ERR_STATUS] = "status",
	[FRAME_ERR_RUNS] = "runs",
	[FRAME_ERR_RECORD_INDEX] = "record_index",
	[FRAME_ERR_AUTH_MISSING] = "auth_missing",
	[FRAME_ERR_AUTH_TAG] = "auth_tag",
	[FRAME_ERR_AUTH_STALE] = "auth_stale",
	[FRAME_ERR_GROUPED_RECORD] = "grouped_record",
};

bool
frame_status_retryable(enum frame_status status)
{
	return status == FRAME_STATUS_THROTTLED || status == FRAME_STATUS_INTERNAL;
}

const char *
frame_status_str(enum frame_status status)
{
	if ((unsigned)status >= FRAME_STATUS_COUNT_)
		return "unknown_status";
	return status_names[status];
}

const char *
frame_err_str(enum frame_err err)
{
	if ((unsigned)err >= FRAME_ERR_COUNT_)
		return "unknown_error";
	return err_names[err];
}

enum frame_status
frame_err_status(enum frame_err err)
{
	switch (err) {
	case FRAME_OK:
		return FRAME_STATUS_OK;
	case FRAME_ERR_RECORD_TOO_LARGE:
		return FRAME_STATUS_RECORD_TOO_LARGE;
	case FRAME_ERR_AUTH_MISSING:
	case FRAME_ERR_AUTH_TAG:
	case FRAME_ERR_AUTH_STALE:
		return FRAME_STATUS_AUTH_FAILED;
	default:
		return FRAME_STATUS_MALFORMED;
	}
}
