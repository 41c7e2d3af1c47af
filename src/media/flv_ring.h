/* flv_ring.h — FLV tags of one stream in a byte ring that every HTTP-FLV
 * viewer reads at its own pace (live view: the stream is packaged once).
 *
 * Bytes are addressed by their offset since the packaging began (64 bits,
 * never reused); the ring holds the last cap bytes. The producer appends
 * whole tags only (one frame's tags at a time), so every tag that starts
 * before head is complete in the ring.
 *
 * A reader tracks the tag boundaries of what it sends (tag_end: where the
 * tag it is in ends), so that it can be moved forward only between two tags:
 * a viewer that falls behind (flv_ring_lagging) finishes the tag it is in
 * (flv_ring_peek stops there), then resumes at the newest key frame
 * (flv_ring_skip) after the current sequence header, stamped with that key
 * frame's time, so its decoder keeps going. The FLV header goes out once,
 * first. A reader whose unsent bytes the producer is about to overwrite
 * (flv_ring_protect) is moved the same way; when it is in the middle of a
 * tag, the rest of that tag is copied out for it first (at most
 * FLV_RING_RESCUE_MAX bytes, only while it stalls), so it is ended (dead)
 * only when that copy cannot be made. */
#ifndef CASCADE_MEDIA_FLV_RING_H
#define CASCADE_MEDIA_FLV_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "media/flv.h"

#define FLV_RING_WAIT UINT64_MAX /* reader position: waits for the next key frame */
#define FLV_RING_RESCUE_MAX (1u << 20) /* the rest of a tag a stalled reader had begun, kept for it */

typedef struct {
    uint8_t *buf;
    size_t cap;
    uint64_t head;      /* offset of the next byte written */
    uint64_t key_pos;   /* first byte of the newest key frame's tags; FLV_RING_WAIT: none */
    uint32_t key_ts;    /* its FLV timestamp (ms) */
    uint32_t last_ts;   /* FLV timestamp of the newest frame appended */
} flv_ring_t;

typedef struct {
    uint64_t pos;       /* next ring byte to send; FLV_RING_WAIT: waits for a key frame */
    uint64_t tag_end;   /* end of the tag pos is in (== pos between two tags) */
    uint32_t ts;        /* timestamp of the tag pos is in (or starts) */
    uint8_t *blob;      /* sent before ring bytes: the FLV header, or a sequence header after a skip */
    size_t blob_len, blob_off;
    bool header_sent;   /* the FLV header was queued (it goes out once) */
    bool resend;        /* a sequence header is due before the next ring byte */
    bool dead;          /* bytes it had begun were overwritten: end it */
    uint32_t skips;     /* times moved forward */
} flv_ring_reader_t;

int flv_ring_init(flv_ring_t *r, size_t cap);
void flv_ring_free(flv_ring_t *r);

/* Appends whole tags (n <= cap); key: they begin with a key frame (a viewer
 * may start at their first byte); ts: the frame's FLV timestamp. Readers
 * waiting for a key frame are started by flv_ring_reader_on_key after it. */
void flv_ring_append(flv_ring_t *r, const uint8_t *p, size_t n, bool key, uint32_t ts);

/* A new reader: at the newest key frame when the ring holds one, else
 * waiting for the next. */
void flv_ring_reader_init(const flv_ring_t *r, flv_ring_reader_t *rd);
void flv_ring_reader_free(flv_ring_reader_t *rd);
/* After a key frame was appended: a waiting reader starts there. */
void flv_ring_reader_on_key(const flv_ring_t *r, flv_ring_reader_t *rd);

/* Before appending n bytes: 0 when the reader keeps its unsent bytes; 1
 * when it was moved forward (to the newest key frame that survives the
 * append, or to waiting; the rest of a tag it had begun copied out for it
 * first); -1 when it is dead (that copy could not be made). */
int flv_ring_protect(const flv_ring_t *r, flv_ring_reader_t *rd, size_t n);

/* More than max_bytes of the ring, or more than max_ms (0: no limit), behind
 * the newest frame. */
bool flv_ring_lagging(const flv_ring_t *r, const flv_ring_reader_t *rd, uint64_t max_bytes, uint32_t max_ms);

/* Between two tags, moves the reader to the newest key frame when that is
 * ahead of it, and queues the sequence header for it. true when moved. */
bool flv_ring_skip(const flv_ring_t *r, flv_ring_reader_t *rd);

/* Queues what must precede the next ring byte: the FLV header (header,
 * onMetaData, sequence header) the first time, the sequence header after a
 * skip. false when the muxer cannot make it yet (no parameter sets) or
 * out of memory: the reader waits. */
bool flv_ring_reader_prepare(flv_ring_reader_t *rd, const gb_flv_muxer_t *m);

/* Points up to max (>= 3) iovecs at the bytes the reader can send now:
 * its blob, then the ring from pos to head, or only to the end of the tag
 * it is in when stop_at_tag. Returns their count (0: nothing now). */
int flv_ring_peek(const flv_ring_t *r, const flv_ring_reader_t *rd, struct iovec *iov, int max, bool stop_at_tag);

/* The first n bytes of what flv_ring_peek offered were sent. */
void flv_ring_consume(const flv_ring_t *r, flv_ring_reader_t *rd, size_t n);

#endif
