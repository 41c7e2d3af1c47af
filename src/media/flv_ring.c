/* flv_ring.c — see flv_ring.h. */
#include "media/flv_ring.h"

#include <stdlib.h>
#include <string.h>

#define TAG_HEAD 11 /* type, size (24), timestamp (24 + 8), stream id (24) */

int flv_ring_init(flv_ring_t *r, size_t cap)
{
    memset(r, 0, sizeof(*r));
    r->buf = malloc(cap);
    if (!r->buf) return -1;
    r->cap = cap;
    r->key_pos = FLV_RING_WAIT;
    return 0;
}

void flv_ring_free(flv_ring_t *r)
{
    free(r->buf);
    r->buf = NULL;
}

void flv_ring_append(flv_ring_t *r, const uint8_t *p, size_t n, bool key, uint32_t ts)
{
    if (n > r->cap) return; /* the caller bounds frames well below the ring */
    size_t at = (size_t)(r->head % r->cap);
    size_t first = n < r->cap - at ? n : r->cap - at;
    memcpy(r->buf + at, p, first);
    memcpy(r->buf, p + first, n - first);
    if (key) {
        r->key_pos = r->head;
        r->key_ts = ts;
    }
    r->head += n;
    r->last_ts = ts;
}

static uint8_t ring_byte(const flv_ring_t *r, uint64_t off) { return r->buf[off % r->cap]; }

/* The key frame, if the ring still holds it after `more` bytes are added. */
static bool key_valid(const flv_ring_t *r, size_t more)
{
    return r->key_pos != FLV_RING_WAIT && r->head + more - r->key_pos <= r->cap;
}

static void reader_at(flv_ring_reader_t *rd, uint64_t pos, uint32_t ts)
{
    rd->pos = rd->tag_end = pos;
    rd->ts = ts;
}

void flv_ring_reader_init(const flv_ring_t *r, flv_ring_reader_t *rd)
{
    memset(rd, 0, sizeof(*rd));
    if (key_valid(r, 0)) reader_at(rd, r->key_pos, r->key_ts);
    else rd->pos = rd->tag_end = FLV_RING_WAIT;
}

void flv_ring_reader_free(flv_ring_reader_t *rd)
{
    free(rd->blob);
    rd->blob = NULL;
    rd->blob_len = rd->blob_off = 0;
}

void flv_ring_reader_on_key(const flv_ring_t *r, flv_ring_reader_t *rd)
{
    if (rd->pos == FLV_RING_WAIT && !rd->dead && key_valid(r, 0)) reader_at(rd, r->key_pos, r->key_ts);
}

/* Moves a reader that is between two tags (and has sent all of its blob,
 * or is about to resend one anyway) to the newest key frame. */
static void move_to_key(const flv_ring_t *r, flv_ring_reader_t *rd, size_t more)
{
    if (key_valid(r, more) && r->key_pos > rd->pos) reader_at(rd, r->key_pos, r->key_ts);
    else rd->pos = rd->tag_end = FLV_RING_WAIT;
    /* A half-sent blob is finished first; a sequence header follows it. */
    rd->resend = true;
    rd->skips++;
}

int flv_ring_protect(const flv_ring_t *r, flv_ring_reader_t *rd, size_t n)
{
    if (rd->dead || rd->pos == FLV_RING_WAIT) return 0;
    if (r->head + n - rd->pos <= r->cap) return 0;
    if (rd->pos != rd->tag_end) {
        /* It began this tag (so its blob was sent and freed): the rest of
         * the tag becomes its blob, then it is between two tags. */
        size_t rest = (size_t)(rd->tag_end - rd->pos);
        uint8_t *b = rest <= FLV_RING_RESCUE_MAX && !rd->blob ? malloc(rest) : NULL;
        if (!b) {
            rd->dead = true;
            return -1;
        }
        size_t at = (size_t)(rd->pos % r->cap);
        size_t first = rest < r->cap - at ? rest : r->cap - at;
        memcpy(b, r->buf + at, first);
        memcpy(b + first, r->buf, rest - first);
        rd->blob = b;
        rd->blob_len = rest;
        rd->blob_off = 0;
        rd->pos = rd->tag_end;
    }
    move_to_key(r, rd, n);
    return 1;
}

bool flv_ring_lagging(const flv_ring_t *r, const flv_ring_reader_t *rd, uint64_t max_bytes, uint32_t max_ms)
{
    if (rd->pos == FLV_RING_WAIT) return false;
    if (r->head - rd->pos > max_bytes) return true;
    return max_ms && r->last_ts > rd->ts && r->last_ts - rd->ts > max_ms;
}

bool flv_ring_skip(const flv_ring_t *r, flv_ring_reader_t *rd)
{
    if (rd->dead || rd->pos == FLV_RING_WAIT || rd->pos != rd->tag_end) return false;
    if (!key_valid(r, 0) || r->key_pos <= rd->pos) return false;
    move_to_key(r, rd, 0);
    return true;
}

bool flv_ring_reader_prepare(flv_ring_reader_t *rd, const gb_flv_muxer_t *m)
{
    if (rd->blob_off < rd->blob_len) return true; /* still sending one */
    if (rd->header_sent && !rd->resend) return true;
    flv_ring_reader_free(rd);
    uint8_t *b = malloc(GB_FLV_HEADER_MAX);
    if (!b) return false;
    rd->blob = b;
    int n = rd->header_sent ? gb_flv_write_seq_header(m, b, GB_FLV_HEADER_MAX, rd->ts)
                            : gb_flv_write_header(m, b, GB_FLV_HEADER_MAX);
    if (n < 0 || (!rd->header_sent && n == 0)) return false;
    rd->blob_len = (size_t)n;
    rd->blob_off = 0;
    rd->header_sent = true;
    rd->resend = false;
    if (!n) flv_ring_reader_free(rd);
    return true;
}

int flv_ring_peek(const flv_ring_t *r, const flv_ring_reader_t *rd, struct iovec *iov, int max, bool stop_at_tag)
{
    int k = 0;
    if (max < 3) return 0;
    if (rd->blob_off < rd->blob_len) {
        iov[k].iov_base = rd->blob + rd->blob_off;
        iov[k++].iov_len = rd->blob_len - rd->blob_off;
    }
    /* After a move, nothing of the ring before its sequence header (which
     * follows whatever blob is still going out). */
    if (rd->pos == FLV_RING_WAIT || rd->dead || rd->resend) return k;
    uint64_t end = r->head;
    if (stop_at_tag && rd->tag_end > rd->pos && rd->tag_end < end) end = rd->tag_end;
    if (end <= rd->pos) return k;
    size_t n = (size_t)(end - rd->pos);
    size_t at = (size_t)(rd->pos % r->cap);
    size_t first = n < r->cap - at ? n : r->cap - at;
    iov[k].iov_base = r->buf + at;
    iov[k++].iov_len = first;
    if (n > first) {
        iov[k].iov_base = r->buf;
        iov[k++].iov_len = n - first;
    }
    return k;
}

void flv_ring_consume(const flv_ring_t *r, flv_ring_reader_t *rd, size_t n)
{
    if (rd->blob_off < rd->blob_len) {
        size_t b = rd->blob_len - rd->blob_off < n ? rd->blob_len - rd->blob_off : n;
        rd->blob_off += b;
        n -= b;
        if (rd->blob_off == rd->blob_len) flv_ring_reader_free(rd); /* small per viewer: freed once sent */
    }
    if (!n || rd->pos == FLV_RING_WAIT) return;
    rd->pos += n;
    /* Walk the tag headers passed (all sent just now, so still in the ring;
     * each tag before head is whole). At a boundary with a tag after it,
     * that tag's timestamp is the reader's. */
    while (rd->tag_end <= rd->pos && rd->tag_end + TAG_HEAD <= r->head) {
        uint64_t t = rd->tag_end;
        uint32_t size = (uint32_t)ring_byte(r, t + 1) << 16 | (uint32_t)ring_byte(r, t + 2) << 8 | ring_byte(r, t + 3);
        rd->ts = (uint32_t)ring_byte(r, t + 7) << 24 | (uint32_t)ring_byte(r, t + 4) << 16 |
                 (uint32_t)ring_byte(r, t + 5) << 8 | ring_byte(r, t + 6);
        if (rd->tag_end == rd->pos) break; /* at a boundary: that tag is the next one */
        rd->tag_end = t + TAG_HEAD + size + 4;
    }
}
