/* test_sdp.c — SDP (RFC 4566) parsing, printing and helpers, with the
 * GB/T 28181 play/playback/TCP offers and answers (y=, f=, a=setup). */
#include "sip_testutil.h"

#include "sip/sdp.h"

struct sctx {
    _Alignas(16) char scratch[16384];
    arena_t arena;
    struct sdp_session s;
    const char *reason;
    char *buf;
    size_t len;
    int rc;
};

static struct sctx *sdp_text(const char *text)
{
    struct sctx *c = calloc(1, sizeof(*c));
    arena_init(&c->arena, c->scratch, sizeof(c->scratch));
    c->buf = msg_make(text, &c->len);
    c->rc = sdp_parse(c->buf, c->len, &c->arena, &c->s, &c->reason);
    return c;
}

static void sctx_free(struct sctx *c)
{
    arena_free(&c->arena);
    free(c->buf);
    free(c);
}

/* The GB/T 28181 live-play offer an upper platform sends in its INVITE. */
static const char gb_play_offer[] = "v=0\n"
                                    "o=34020000002000000001 0 0 IN IP4 192.168.1.10\n"
                                    "s=Play\n"
                                    "c=IN IP4 192.168.1.10\n"
                                    "t=0 0\n"
                                    "m=video 30000 RTP/AVP 96 97 98\n"
                                    "a=recvonly\n"
                                    "a=rtpmap:96 PS/90000\n"
                                    "a=rtpmap:97 MPEG4/90000\n"
                                    "a=rtpmap:98 H264/90000\n"
                                    "y=0100000001\n"
                                    "f=v/2/4///a///\n";

static void test_gb_play_offer(void **state)
{
    (void)state;
    struct sctx *c = sdp_text(gb_play_offer);
    if (c->rc) fail_msg("parse: %s", c->reason);
    struct sdp_session *s = &c->s;
    assert_int_equal(s->version, 0);
    assert_str(s->origin.username, "34020000002000000001");
    assert_str(s->origin.address, "192.168.1.10");
    assert_str(s->name, "Play");
    assert_non_null(s->conn);
    assert_str(s->conn->addrtype, "IP4");
    assert_str(s->conn->address, "192.168.1.10");
    assert_int_equal(s->time_count, 1);
    assert_int_equal(s->times[0].start, 0);
    assert_int_equal(s->media_count, 1);
    const struct sdp_media *m = &s->media[0];
    assert_str(m->media, "video");
    assert_int_equal(m->port, 30000);
    assert_str(m->proto, "RTP/AVP");
    assert_str(m->fmts, "96 97 98");
    str_t cur = m->fmts, f;
    int nf = 0;
    while (sdp_fmt_next(&cur, &f)) nf++;
    assert_int_equal(nf, 3);
    assert_int_equal(m->attr_count, 4);
    assert_int_equal(s->attr_count, 0);
    struct sdp_rtpmap rm;
    assert_int_equal(sdp_media_rtpmap(m, 96, &rm), 0);
    assert_str(rm.encoding, "PS");
    assert_int_equal(rm.clock_rate, 90000);
    assert_int_equal(rm.params.len, 0);
    assert_int_equal(sdp_media_rtpmap(m, 98, &rm), 0);
    assert_str(rm.encoding, "H264");
    assert_int_equal(sdp_media_rtpmap(m, 99, &rm), -1);
    assert_int_equal(sdp_media_direction(s, m), SDP_RECVONLY);
    assert_string_equal(sdp_direction_name(SDP_RECVONLY), "recvonly");
    assert_int_equal(sdp_media_setup(s, m), SDP_SETUP_NONE);
    assert_ptr_equal(sdp_media_conn(s, m), s->conn);
    assert_str(s->gb_ssrc, "0100000001");
    uint32_t ssrc;
    assert_int_equal(sdp_gb_ssrc(s, &ssrc), 0);
    assert_int_equal(ssrc, 100000001);
    assert_str(s->gb_format, "v/2/4///a///");
    sctx_free(c);
}

/* The device's answer inside a full INVITE/200 exchange: body from sip_parse. */
static void test_gb_answer_in_sip(void **state)
{
    (void)state;
    struct pctx *p = parse_text("SIP/2.0 200 OK\n"
                                "Via: SIP/2.0/UDP 192.168.1.10:5060;rport=5060;branch=z9hG4bK3f1e\n"
                                "From: <sip:34020000002000000001@3402000000>;tag=4839\n"
                                "To: <sip:34020000001310000001@3402000000>;tag=dev1\n"
                                "Call-ID: 8d2a47c1@192.168.1.10\n"
                                "CSeq: 20 INVITE\n"
                                "Contact: <sip:34020000001320000001@192.168.1.64:5060>\n"
                                "Content-Type: application/sdp\n"
                                "Content-Length: #CL#\n"
                                "\n"
                                "v=0\n"
                                "o=34020000001320000001 0 0 IN IP4 192.168.1.64\n"
                                "s=Play\n"
                                "c=IN IP4 192.168.1.64\n"
                                "t=0 0\n"
                                "m=video 15060 TCP/RTP/AVP 96\n"
                                "a=setup:active\n"
                                "a=connection:new\n"
                                "a=sendonly\n"
                                "a=rtpmap:96 PS/90000\n"
                                "a=filesize:0\n"
                                "y=0100000001\n");
    assert_parse_ok(p);
    char scratch[4096];
    arena_t a;
    arena_init(&a, scratch, sizeof(scratch));
    struct sdp_session s;
    const char *why;
    assert_int_equal(sdp_parse(p->m.body.s, p->m.body.len, &a, &s, &why), 0);
    const struct sdp_media *m = &s.media[0];
    assert_str(m->proto, "TCP/RTP/AVP");
    assert_int_equal(sdp_media_setup(&s, m), SDP_SETUP_ACTIVE);
    assert_int_equal(sdp_media_direction(&s, m), SDP_SENDONLY);
    const struct sdp_attr *at = sdp_media_attr(&s, m, "connection");
    assert_non_null(at);
    assert_str(at->value, "new");
    assert_null(sdp_media_attr(&s, m, "nonexistent"));
    assert_int_equal(s.gb_format.len, 0);
    arena_free(&a);
    pctx_free(p);
}

/* GB/T 28181 playback: u= names the channel, t= carries the time range. */
static void test_gb_playback(void **state)
{
    (void)state;
    struct sctx *c = sdp_text("v=0\n"
                              "o=34020000002000000001 0 0 IN IP4 10.0.0.2\n"
                              "s=Playback\n"
                              "u=34020000001310000001:0\n"
                              "c=IN IP4 10.0.0.2\n"
                              "t=1700000000 1700003600\n"
                              "m=video 6000 TCP/RTP/AVP 96\n"
                              "a=recvonly\n"
                              "a=setup:passive\n"
                              "a=rtpmap:96 PS/90000\n"
                              "y=1340200001\n");
    if (c->rc) fail_msg("parse: %s", c->reason);
    assert_str(c->s.name, "Playback");
    assert_str(c->s.uri, "34020000001310000001:0");
    assert_int_equal(c->s.times[0].start, 1700000000);
    assert_int_equal(c->s.times[0].stop, 1700003600);
    assert_int_equal(sdp_media_setup(&c->s, &c->s.media[0]), SDP_SETUP_PASSIVE);
    uint32_t ssrc;
    assert_int_equal(sdp_gb_ssrc(&c->s, &ssrc), 0);
    assert_int_equal(ssrc, 1340200001u);
    sctx_free(c);
}

/* RFC 4566 §5 example plus every other line type and media-level c/b/k/i. */
static const char full_sdp[] = "v=0\n"
                               "o=jdoe 2890844526 2890842807 IN IP4 10.47.16.5\n"
                               "s=SDP Seminar\n"
                               "i=A Seminar on the session description protocol\n"
                               "u=http://www.example.com/seminars/sdp.pdf\n"
                               "e=j.doe@example.com (Jane Doe)\n"
                               "e=other@example.com\n"
                               "p=+1 617 555-6011\n"
                               "c=IN IP4 224.2.17.12/127\n"
                               "b=CT:1000\n"
                               "t=2873397496 2873404696\n"
                               "r=604800 3600 0 90000\n"
                               "t=0 0\n"
                               "z=2882844526 -1h 2898848070 0\n"
                               "k=prompt\n"
                               "a=recvonly\n"
                               "a=tool:cascade\n"
                               "m=audio 49170 RTP/AVP 0 8 101\n"
                               "i=voice\n"
                               "c=IN IP6 ff15::101/3\n"
                               "b=AS:64\n"
                               "k=clear:secret\n"
                               "a=rtpmap:8 PCMA/8000\n"
                               "a=rtpmap:101 telephone-event/8000/1\n"
                               "a=sendrecv\n"
                               "m=video 51372/2 RTP/AVP 99\n"
                               "a=rtpmap:99 h263-1998/90000\n";

static void test_full_session(void **state)
{
    (void)state;
    struct sctx *c = sdp_text(full_sdp);
    if (c->rc) fail_msg("parse: %s", c->reason);
    struct sdp_session *s = &c->s;
    assert_str(s->info, "A Seminar on the session description protocol");
    assert_str(s->uri, "http://www.example.com/seminars/sdp.pdf");
    assert_int_equal(s->email_count, 2);
    assert_str(s->emails[1], "other@example.com");
    assert_int_equal(s->phone_count, 1);
    assert_str(s->conn->address, "224.2.17.12");
    assert_int_equal(s->conn->ttl, 127);
    assert_int_equal(s->conn->count, 1);
    assert_int_equal(s->bw_count, 1);
    assert_str(s->bws[0].type, "CT");
    assert_int_equal(s->bws[0].value, 1000);
    assert_int_equal(s->time_count, 2);
    assert_int_equal(s->times[0].repeat_count, 1);
    assert_str(s->times[0].repeats[0], "604800 3600 0 90000");
    assert_int_equal(s->times[1].repeat_count, 0);
    assert_str(s->zone, "2882844526 -1h 2898848070 0");
    assert_str(s->key, "prompt");
    assert_int_equal(s->attr_count, 2);
    assert_int_equal(s->media_count, 2);
    const struct sdp_media *au = &s->media[0], *vi = &s->media[1];
    assert_str(au->info, "voice");
    assert_int_equal(au->conn_count, 1);
    assert_str(au->conns[0].addrtype, "IP6");
    assert_int_equal(au->conns[0].count, 3);
    assert_int_equal(au->conns[0].ttl, 0);
    assert_ptr_equal(sdp_media_conn(s, au), &au->conns[0]);
    assert_ptr_equal(sdp_media_conn(s, vi), s->conn);
    assert_int_equal(au->bw_count, 1);
    assert_int_equal(au->bws[0].value, 64);
    assert_str(au->key, "clear:secret");
    struct sdp_rtpmap rm;
    assert_int_equal(sdp_media_rtpmap(au, 101, &rm), 0);
    assert_str(rm.encoding, "telephone-event");
    assert_str(rm.params, "1");
    assert_int_equal(sdp_media_rtpmap(au, 0, &rm), -1); /* static type, no rtpmap */
    /* media direction overrides the session's, else the session's applies */
    assert_int_equal(sdp_media_direction(s, au), SDP_SENDRECV);
    assert_int_equal(sdp_media_direction(s, vi), SDP_RECVONLY);
    assert_int_equal(vi->port, 51372);
    assert_int_equal(vi->port_count, 2);
    assert_int_equal(sdp_gb_ssrc(s, &(uint32_t){0}), -1);
    sctx_free(c);
}

static void assert_same_session(const struct sdp_session *a, const struct sdp_session *b)
{
    assert_true(str_eq(a->origin.username, b->origin.username));
    assert_true(str_eq(a->origin.sess_id, b->origin.sess_id));
    assert_true(str_eq(a->origin.address, b->origin.address));
    assert_true(str_eq(a->name, b->name));
    assert_true(str_eq(a->info, b->info));
    assert_true(str_eq(a->uri, b->uri));
    assert_int_equal(a->email_count, b->email_count);
    assert_int_equal(a->phone_count, b->phone_count);
    assert_int_equal(a->conn != NULL, b->conn != NULL);
    if (a->conn) {
        assert_true(str_eq(a->conn->address, b->conn->address));
        assert_int_equal(a->conn->ttl, b->conn->ttl);
        assert_int_equal(a->conn->count, b->conn->count);
    }
    assert_int_equal(a->bw_count, b->bw_count);
    assert_int_equal(a->time_count, b->time_count);
    for (uint32_t i = 0; i < a->time_count; i++) {
        assert_int_equal(a->times[i].start, b->times[i].start);
        assert_int_equal(a->times[i].stop, b->times[i].stop);
        assert_int_equal(a->times[i].repeat_count, b->times[i].repeat_count);
    }
    assert_true(str_eq(a->zone, b->zone));
    assert_true(str_eq(a->key, b->key));
    assert_int_equal(a->attr_count, b->attr_count);
    for (uint32_t i = 0; i < a->attr_count; i++) {
        assert_true(str_eq(a->attrs[i].name, b->attrs[i].name));
        assert_true(str_eq(a->attrs[i].value, b->attrs[i].value));
    }
    assert_int_equal(a->media_count, b->media_count);
    for (uint32_t i = 0; i < a->media_count; i++) {
        const struct sdp_media *x = &a->media[i], *y = &b->media[i];
        assert_true(str_eq(x->media, y->media));
        assert_int_equal(x->port, y->port);
        assert_int_equal(x->port_count, y->port_count);
        assert_true(str_eq(x->proto, y->proto));
        assert_true(str_eq(x->fmts, y->fmts));
        assert_true(str_eq(x->info, y->info));
        assert_true(str_eq(x->key, y->key));
        assert_int_equal(x->conn_count, y->conn_count);
        assert_int_equal(x->bw_count, y->bw_count);
        assert_int_equal(x->attr_count, y->attr_count);
        for (uint32_t j = 0; j < x->attr_count; j++) {
            assert_true(str_eq(x->attrs[j].name, y->attrs[j].name));
            assert_int_equal(x->attrs[j].has_value, y->attrs[j].has_value);
            assert_true(str_eq(x->attrs[j].value, y->attrs[j].value));
        }
    }
    assert_true(str_eq(a->gb_ssrc, b->gb_ssrc));
    assert_true(str_eq(a->gb_format, b->gb_format));
}

static void test_round_trip(void **state)
{
    (void)state;
    const char *texts[] = {gb_play_offer, full_sdp};
    for (size_t k = 0; k < 2; k++) {
        struct sctx *c = sdp_text(texts[k]);
        if (c->rc) fail_msg("parse: %s", c->reason);
        sbuf_t out;
        sbuf_init(&out);
        assert_int_equal(sdp_print(&c->s, &out), 0);
        /* these inputs are already in canonical order: print gives them back */
        assert_int_equal(out.len, c->len);
        assert_memory_equal(out.data, c->buf, c->len);
        char scratch[8192];
        arena_t a;
        arena_init(&a, scratch, sizeof(scratch));
        struct sdp_session s2;
        assert_int_equal(sdp_parse(out.data, out.len, &a, &s2, NULL), 0);
        assert_same_session(&c->s, &s2);
        arena_free(&a);
        sbuf_free(&out);
        sctx_free(c);
    }
}

/* An answer built by hand (the GB lower role answering a play request). */
static void test_build_answer(void **state)
{
    (void)state;
    struct sdp_attr attrs[] = {
        {STR_LIT("sendonly"), STR_NULL, false},
        {STR_LIT("rtpmap"), STR_LIT("96 PS/90000"), true},
    };
    struct sdp_conn conn = {STR_LIT("IN"), STR_LIT("IP4"), STR_LIT("192.168.1.64"), 0, 1};
    struct sdp_time t = {0, 0, NULL, 0};
    struct sdp_media m = {0};
    m.media = STR_LIT("video");
    m.port = 15060;
    m.port_count = 1;
    m.proto = STR_LIT("RTP/AVP");
    m.fmts = STR_LIT("96");
    m.attrs = attrs;
    m.attr_count = 2;
    struct sdp_session s = {0};
    s.origin.username = STR_LIT("34020000001320000001");
    s.origin.sess_id = STR_LIT("0");
    s.origin.sess_version = STR_LIT("0");
    s.origin.nettype = STR_LIT("IN");
    s.origin.addrtype = STR_LIT("IP4");
    s.origin.address = STR_LIT("192.168.1.64");
    s.name = STR_LIT("Play");
    s.conn = &conn;
    s.times = &t;
    s.time_count = 1;
    s.media = &m;
    s.media_count = 1;
    s.gb_ssrc = STR_LIT("0100000001");
    sbuf_t out;
    sbuf_init(&out);
    assert_int_equal(sdp_print(&s, &out), 0);
    static const char want[] = "v=0\r\no=34020000001320000001 0 0 IN IP4 192.168.1.64\r\ns=Play\r\n"
                               "c=IN IP4 192.168.1.64\r\nt=0 0\r\nm=video 15060 RTP/AVP 96\r\n"
                               "a=sendonly\r\na=rtpmap:96 PS/90000\r\ny=0100000001\r\n";
    assert_int_equal(out.len, sizeof(want) - 1);
    assert_memory_equal(out.data, want, out.len);
    /* missing o= or t= cannot be printed */
    s.time_count = 0;
    assert_int_equal(sdp_print(&s, &out), -1);
    sbuf_free(&out);
}

static void test_lenient_forms(void **state)
{
    (void)state;
    /* LF only, trailing blank lines, y= before m= */
    static const char lf[] = "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\ny=123\nt=0 0\nm=audio 0 RTP/AVP 0\n\n\n";
    char scratch[4096];
    arena_t a;
    arena_init(&a, scratch, sizeof(scratch));
    struct sdp_session s;
    assert_int_equal(sdp_parse(lf, sizeof(lf) - 1, &a, &s, NULL), 0);
    assert_str(s.gb_ssrc, "123");
    assert_int_equal(s.media[0].port, 0);
    assert_null(sdp_media_conn(&s, &s.media[0]));
    /* the last line without a line end */
    static const char noeol[] = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\na=sendonly";
    assert_int_equal(sdp_parse(noeol, sizeof(noeol) - 1, &a, &s, NULL), 0);
    assert_int_equal(sdp_media_direction(&s, NULL), SDP_SENDONLY);
    arena_free(&a);
}

static void test_invalid(void **state)
{
    (void)state;
    static const struct {
        const char *text, *reason;
    } bad[] = {
        {"", "Empty SDP"},
        {"o=- 1 1 IN IP4 1.2.3.4\nv=0\ns=-\nt=0 0\n", "SDP must start with v="},
        {"v=1\no=- 1 1 IN IP4 1.2.3.4\ns=-\nt=0 0\n", "Bad v="},
        {"v=0\no=- 1 1 IN IP4\ns=-\nt=0 0\n", "Bad o="},
        {"v=0\no=- 1 1 IN IP4 1.2.3.4 extra\ns=-\nt=0 0\n", "Bad o="},
        {"v=0\ns=-\nt=0 0\n", "Missing o="},
        {"v=0\no=- 1 1 IN IP4 1.2.3.4\nt=0 0\n", "Missing s="},
        {"v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\n", "Missing t="},
        {"v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nt=0\n", "Bad t="},
        {"v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nt=x 0\n", "Bad t="},
        {"v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nt=0 0\nq=unknown\n", "Unknown SDP line"},
        {"v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nt=0 0\nbogus\n", "Malformed SDP line"},
        {"v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nt=0 0\nA=x\n", "Malformed SDP line"},
        {"v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nt=0 0\na=x\x01y\n", "Malformed SDP line"},
        {"v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nr=1 2 3\nt=0 0\n", "Misplaced SDP line"},
        {"v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nt=0 0\nm=audio 1 RTP/AVP 0\nt=0 0\n", "Misplaced SDP line"},
        {"v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nt=0 0\nm=audio 1 RTP/AVP 0\ns=again\n", "Misplaced SDP line"},
        {"v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nt=0 0\nm=audio 70000 RTP/AVP 0\n", "Bad m="},
        {"v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nt=0 0\nm=audio 1 RTP/AVP\n", "Bad m="},
        {"v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nt=0 0\nm=audio 1/0 RTP/AVP 0\n", "Bad m="},
        {"v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nc=IN IP4\nt=0 0\n", "Bad c="},
        {"v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nc=IN IP4 224.0.0.1/300\nt=0 0\n", "Bad c="},
        {"v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nc=IN IP6 ff15::1/3/2\nt=0 0\n", "Bad c="},
        {"v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nc=IN IP4 1.1.1.1\nc=IN IP4 1.1.1.2\nt=0 0\n", "Bad c="},
        {"v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nb=AS\nt=0 0\n", "Bad b="},
        {"v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nt=0 0\na=:x\n", "Bad a="},
        {"v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nt=0 0\ny=01000000012\n", "Bad y="},
        {"v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nt=0 0\ny=0x10\n", "Bad y="},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char scratch[4096];
        arena_t a;
        arena_init(&a, scratch, sizeof(scratch));
        struct sdp_session s;
        const char *why = NULL;
        size_t len = strlen(bad[i].text);
        if (sdp_parse(bad[i].text, len, &a, &s, &why) == 0) fail_msg("accepted: %s", bad[i].text);
        if (strcmp(why, bad[i].reason) != 0) fail_msg("\"%s\": got \"%s\", want \"%s\"", bad[i].text, why, bad[i].reason);
        arena_free(&a);
    }
    /* y= that does not fit 32 bits parses as text but not as an SSRC */
    char scratch[4096];
    arena_t a;
    arena_init(&a, scratch, sizeof(scratch));
    struct sdp_session s;
    static const char big[] = "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nt=0 0\ny=9999999999\n";
    assert_int_equal(sdp_parse(big, sizeof(big) - 1, &a, &s, NULL), 0);
    uint32_t ssrc;
    assert_int_equal(sdp_gb_ssrc(&s, &ssrc), -1);
    arena_free(&a);
}

/* Found by fuzz_sdp: an IP4 address count with TTL 0 printed as "/<n>",
 * which reads back as a TTL. */
static void test_conn_ttl_zero_with_count(void **state)
{
    (void)state;
    struct sctx *c = sdp_text("v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nc=IN IP4 224.2.1.1/0/3\nt=0 0\n");
    if (c->rc) fail_msg("parse: %s", c->reason);
    assert_int_equal(c->s.conn->ttl, 0);
    assert_int_equal(c->s.conn->count, 3);
    sbuf_t out;
    sbuf_init(&out);
    assert_int_equal(sdp_print(&c->s, &out), 0);
    assert_non_null(strstr(out.data, "c=IN IP4 224.2.1.1/0/3\r\n"));
    char scratch[4096];
    arena_t a;
    arena_init(&a, scratch, sizeof(scratch));
    struct sdp_session s2;
    assert_int_equal(sdp_parse(out.data, out.len, &a, &s2, NULL), 0);
    assert_int_equal(s2.conn->count, 3);
    arena_free(&a);
    sbuf_free(&out);
    sctx_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gb_play_offer), cmocka_unit_test(test_gb_answer_in_sip),
        cmocka_unit_test(test_gb_playback),   cmocka_unit_test(test_full_session),
        cmocka_unit_test(test_round_trip),    cmocka_unit_test(test_build_answer),
        cmocka_unit_test(test_lenient_forms), cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_conn_ttl_zero_with_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
