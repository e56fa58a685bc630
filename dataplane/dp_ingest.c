/* dp_ingest.c - placeholder until the record-frame codec lands. */
#include "dataplane/dp_internal.h"

int
dp_ingest_init(struct dp_worker *w)
{
	(void)w;
	return 0;
}

void
dp_ingest_fini(struct dp_worker *w)
{
	(void)w;
}

void
dp_ingest_datagram(struct dp_worker *w, const struct dp_peer *peer, const uint8_t *payload,
		   uint32_t size, uint64_t now_tsc)
{
	(void)peer;
	(void)payload;
	(void)size;
	(void)now_tsc;
	dp_count(w, DP_FRAMES_MALFORMED, 1);
}

uint32_t
dp_ingest_poll(struct dp_worker *w, uint64_t now_tsc)
{
	(void)w;
	(void)now_tsc;
	return 0;
}

bool
dp_ingest_is_idle(const struct dp_worker *w)
{
	(void)w;
	return true;
}

void
dp_ingest_drain(struct dp_worker *w)
{
	(void)w;
}
