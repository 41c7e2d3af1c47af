/* mansrtsp.h — the playback control bodies of GB/T 28181 Annex B
 * (Content-Type Application/MANSRTSP, carried in INFO inside a Playback
 * dialog): RTSP-like requests that pause, resume, seek and change the speed
 * of a recording a device is sending.
 *
 *   PLAY MANSRTSP/1.0          PAUSE MANSRTSP/1.0       PLAY MANSRTSP/1.0
 *   CSeq: 2                    CSeq: 3                  CSeq: 4
 *   Range: npt=now-            PauseTime: now           Scale: 2.0
 *
 * "Range: npt=120-" seeks to 120 s from the start of the requested range.
 * Devices of the 2011 edition write RTSP/1.0 for the version; both are read,
 * MANSRTSP/1.0 is written. */
#ifndef CASCADE_GB_CODEC_MANSRTSP_H
#define CASCADE_GB_CODEC_MANSRTSP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/sbuf.h"

#define GB_MANSRTSP_MAX_BODY 1024
#define GB_MANSRTSP_TYPE "Application/MANSRTSP"
#define GB_MANSRTSP_MIN_SCALE 0.0625
#define GB_MANSRTSP_MAX_SCALE 16.0
#define GB_MANSRTSP_MAX_NPT 1e9 /* seconds (31 years): a larger Range is refused, so what we write reads back */

enum gb_rtsp_method { GB_RTSP_PLAY, GB_RTSP_PAUSE, GB_RTSP_TEARDOWN };

struct gb_rtsp_req {
    enum gb_rtsp_method method;
    uint32_t cseq;
    bool has_range;   /* PLAY: Range given */
    double range_from; /* seconds into the recording; < 0: "now" (resume where paused) */
    bool has_scale;   /* PLAY: Scale given */
    double scale;     /* 1.0 normal; GB devices take 0.25 .. 4 (we accept 1/16 .. 16) */
};

const char *gb_rtsp_method_name(enum gb_rtsp_method m); /* "PLAY", "PAUSE", "TEARDOWN" */

/* Reads a body. 0, or -1 with *why a phrase for the 400 reason: unknown
 * method or version, no CSeq, a bad Range or Scale, a body above
 * GB_MANSRTSP_MAX_BODY. */
int gb_mansrtsp_parse(const char *buf, size_t len, struct gb_rtsp_req *out, const char **why);

/* Appends a body for r (CRLF lines). 0, or -1 when out failed to grow or r is
 * out of range (a Scale outside the accepted range, a negative seek). */
int gb_mansrtsp_build(sbuf_t *out, const struct gb_rtsp_req *r);

/* Whether a Content-Type (parameters allowed) names MANSRTSP, any case. */
bool gb_mansrtsp_is_type(const char *s, size_t len);

#endif
