/* test_room.c — the room state machine (media/room.h) as a specification:
 * joined and left exactly once per participant, with the first reason,
 * whatever order leave requests, closed connections, expired consents,
 * kicks, room closes and shutdowns arrive in; streams unpublished before
 * their owner leaves; subscribers told when their publisher goes; a reloading
 * publisher seen as one left and one joined; caps refused cleanly and
 * silently; room names checked; the event bus adapter. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "events/events.h"
#include "media/room.h"

/* ---- a recorder of what the registry said ---- */

#define REC_MAX 4096

struct rec_event {
    enum room_event_type type;
    char room[ROOM_NAME_MAX + 1], id[ROOM_ID_LEN + 1], name[ROOM_TEXT_MAX + 1], stream[ROOM_TEXT_MAX + 1];
    enum room_leave_reason reason;
    enum room_stream_kind kind;
};

struct rec_drop {
    char viewer[ROOM_ID_LEN + 1], pub[ROOM_ID_LEN + 1];
};

struct rec {
    struct rec_event ev[REC_MAX];
    size_t n, total; /* kept, and seen in all */
    struct rec_drop drops[64];
    size_t ndrops;
};

static void rec_emit(void *user, const struct room_event *ev)
{
    struct rec *r = user;
    r->total++;
    if (r->n == REC_MAX) return;
    struct rec_event *e = &r->ev[r->n++];
    e->type = ev->type;
    snprintf(e->room, sizeof e->room, "%s", ev->room);
    snprintf(e->id, sizeof e->id, "%s", ev->participant_id);
    snprintf(e->name, sizeof e->name, "%s", ev->name);
    snprintf(e->stream, sizeof e->stream, "%s", ev->stream_id);
    e->reason = ev->reason;
    e->kind = ev->kind;
}

static void rec_drop(void *user, const char *room, const char *viewer, const char *pub)
{
    struct rec *r = user;
    assert_string_equal(room, "demo");
    assert_true(r->ndrops < 64);
    snprintf(r->drops[r->ndrops].viewer, sizeof r->drops[0].viewer, "%s", viewer);
    snprintf(r->drops[r->ndrops].pub, sizeof r->drops[0].pub, "%s", pub);
    r->ndrops++;
}

static size_t count(const struct rec *r, enum room_event_type t, const char *id)
{
    size_t c = 0;
    for (size_t i = 0; i < r->n; i++)
        if (r->ev[i].type == t && (!id || !strcmp(r->ev[i].id, id))) c++;
    return c;
}

static const struct rec_event *find(const struct rec *r, enum room_event_type t, const char *id)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->ev[i].type == t && (!id || !strcmp(r->ev[i].id, id))) return &r->ev[i];
    return NULL;
}

static size_t index_of(const struct rec *r, enum room_event_type t, const char *id, const char *stream)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->ev[i].type == t && !strcmp(r->ev[i].id, id) && (!stream || !strcmp(r->ev[i].stream, stream)))
            return i;
    fail_msg("event %s for %s not found", room_event_type_name(t), id);
    return 0;
}

/* A counter as the random source: deterministic, distinct ids. */
static int counter_random(void *arg, uint8_t *buf, size_t len)
{
    uint64_t *c = arg;
    (*c)++;
    for (size_t i = 0; i < len; i++) buf[i] = (uint8_t)(*c >> (8 * (i % 8)));
    return 0;
}

struct fixture {
    struct rec rec;
    uint64_t counter;
    struct room_registry *reg;
};

static struct fixture *fixture_new(const struct room_config *cfg)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    struct room_events ev = {.user = &f->rec, .emit = rec_emit, .subscription_dropped = rec_drop};
    f->reg = room_registry_new(cfg, &ev, counter_random, &f->counter);
    assert_non_null(f->reg);
    return f;
}

static void fixture_free(struct fixture *f)
{
    room_registry_free(f->reg);
    free(f);
}

static void join(struct fixture *f, const char *room, const char *name, const char *user, char id[ROOM_ID_LEN + 1])
{
    struct room_join_req req = {.room = room, .name = name, .user = user};
    assert_int_equal(room_join(f->reg, &req, 1000, id), 0);
}

/* ---- join and leave ---- */

static void test_join_then_leave_emits_each_once(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(NULL);
    char a[ROOM_ID_LEN + 1];
    join(f, "demo", "Alice", "alice", a);
    assert_int_equal(f->rec.n, 2);
    assert_int_equal(f->rec.ev[0].type, ROOM_EV_CREATED);
    assert_string_equal(f->rec.ev[0].room, "demo");
    assert_int_equal(f->rec.ev[1].type, ROOM_EV_JOINED);
    assert_string_equal(f->rec.ev[1].id, a);
    assert_string_equal(f->rec.ev[1].name, "Alice");
    assert_int_equal(strlen(a), ROOM_ID_LEN);
    assert_int_equal(strspn(a, "0123456789abcdef"), ROOM_ID_LEN);

    assert_int_equal(room_participant_exit(f->reg, a, ROOM_LEAVE_REQUEST, 2000), 0);
    assert_int_equal(f->rec.n, 4);
    assert_int_equal(f->rec.ev[2].type, ROOM_EV_LEFT);
    assert_int_equal(f->rec.ev[2].reason, ROOM_LEAVE_REQUEST);
    assert_int_equal(f->rec.ev[3].type, ROOM_EV_CLOSED); /* the last one went, no grace */
    assert_int_equal(room_registry_count(f->reg), 0);

    /* Any later exit finds nobody and says nothing. */
    assert_int_equal(room_participant_exit(f->reg, a, ROOM_LEAVE_DISCONNECTED, 3000), -ENOENT);
    assert_int_equal(room_kick(f->reg, a, 3000), -ENOENT);
    assert_int_equal(f->rec.n, 4);
    fixture_free(f);
}

static void test_the_four_reasons_are_carried(void **state)
{
    (void)state;
    static const enum room_leave_reason reasons[] = {ROOM_LEAVE_REQUEST, ROOM_LEAVE_DISCONNECTED,
                                                     ROOM_LEAVE_CONSENT_EXPIRED, ROOM_LEAVE_KICKED};
    static const char *names[] = {"leave", "disconnected", "consent-expired", "kicked"};
    for (size_t i = 0; i < 4; i++) {
        struct fixture *f = fixture_new(NULL);
        char a[ROOM_ID_LEN + 1];
        join(f, "demo", "A", "a", a);
        assert_int_equal(room_participant_exit(f->reg, a, reasons[i], 5), 0);
        const struct rec_event *e = find(&f->rec, ROOM_EV_LEFT, a);
        assert_non_null(e);
        assert_int_equal(e->reason, reasons[i]);
        assert_string_equal(room_leave_reason_name(e->reason), names[i]);
        fixture_free(f);
    }
    assert_string_equal(room_leave_reason_name(ROOM_LEAVE_ROOM_CLOSED), "room-closed");
    assert_string_equal(room_leave_reason_name(ROOM_LEAVE_SHUTDOWN), "shutdown");
    assert_string_equal(room_event_type_name(ROOM_EV_LEFT), "room.participant.left");
    assert_string_equal(room_event_type_name(ROOM_EV_UNPUBLISHED), "room.stream.unpublished");
}

/* ---- racing exits ---- */

enum way_out { OUT_LEAVE, OUT_DISCONNECT, OUT_CONSENT, OUT_KICK, OUT_ROOM_CLOSE, OUT_SHUTDOWN, OUT_N };

static enum room_leave_reason way_reason(enum way_out w)
{
    static const enum room_leave_reason r[] = {ROOM_LEAVE_REQUEST, ROOM_LEAVE_DISCONNECTED, ROOM_LEAVE_CONSENT_EXPIRED,
                                               ROOM_LEAVE_KICKED,  ROOM_LEAVE_ROOM_CLOSED,  ROOM_LEAVE_SHUTDOWN};
    return r[w];
}

static void take_way_out(struct fixture *f, const char *id, enum way_out w)
{
    switch (w) {
    case OUT_ROOM_CLOSE: room_close(f->reg, "demo", 50); break;
    case OUT_SHUTDOWN: room_registry_shutdown(f->reg, 50); break;
    case OUT_KICK: room_kick(f->reg, id, 50); break;
    default: room_participant_exit(f->reg, id, way_reason(w), 50); break;
    }
}

/* Every ordered pair of the six ways out (the same one twice too), then all
 * six again: the publisher gets one unpublished, one left with the first
 * reason, its viewer one drop, and the room one closed. */
static void test_racing_exits_give_one_left_with_the_first_reason(void **state)
{
    (void)state;
    for (int first = 0; first < OUT_N; first++) {
        for (int second = 0; second < OUT_N; second++) {
            struct fixture *f = fixture_new(NULL);
            char pub[ROOM_ID_LEN + 1], viewer[ROOM_ID_LEN + 1];
            join(f, "demo", "P", "p", pub);
            join(f, "demo", "V", "v", viewer);
            assert_int_equal(room_publish(f->reg, pub, "cam", ROOM_STREAM_VIDEO, 10), 0);
            assert_int_equal(room_subscribe(f->reg, viewer, pub), 0);

            take_way_out(f, pub, (enum way_out)first);
            take_way_out(f, pub, (enum way_out)second);
            for (int w = 0; w < OUT_N; w++) take_way_out(f, pub, (enum way_out)w);

            assert_int_equal(count(&f->rec, ROOM_EV_JOINED, pub), 1);
            assert_int_equal(count(&f->rec, ROOM_EV_LEFT, pub), 1);
            assert_int_equal(find(&f->rec, ROOM_EV_LEFT, pub)->reason, way_reason((enum way_out)first));
            assert_int_equal(count(&f->rec, ROOM_EV_PUBLISHED, pub), 1);
            assert_int_equal(count(&f->rec, ROOM_EV_UNPUBLISHED, pub), 1);
            assert_true(index_of(&f->rec, ROOM_EV_UNPUBLISHED, pub, "cam") < index_of(&f->rec, ROOM_EV_LEFT, pub, NULL));
            /* The publisher joined first, so it goes first in every sweep: its viewer is told once. */
            assert_int_equal(f->rec.ndrops, 1);
            /* The shutdown at the end took everybody: one left for the viewer too. */
            assert_int_equal(count(&f->rec, ROOM_EV_LEFT, viewer), 1);
            assert_int_equal(count(&f->rec, ROOM_EV_CREATED, NULL), 1);
            assert_int_equal(count(&f->rec, ROOM_EV_CLOSED, NULL), 1);
            assert_int_equal(f->rec.ev[f->rec.n - 1].type, ROOM_EV_CLOSED);
            fixture_free(f);
        }
    }
}

/* The named races of the brief, each with the second exit checked alone. */
static void test_second_exit_is_ignored(void **state)
{
    (void)state;
    static const struct {
        enum way_out first, second;
    } races[] = {
        {OUT_LEAVE, OUT_DISCONNECT}, {OUT_DISCONNECT, OUT_CONSENT}, {OUT_CONSENT, OUT_DISCONNECT},
        {OUT_KICK, OUT_LEAVE},       {OUT_ROOM_CLOSE, OUT_DISCONNECT}, {OUT_DISCONNECT, OUT_ROOM_CLOSE},
    };
    for (size_t i = 0; i < sizeof races / sizeof *races; i++) {
        struct fixture *f = fixture_new(NULL);
        char a[ROOM_ID_LEN + 1], b[ROOM_ID_LEN + 1];
        join(f, "demo", "A", "a", a);
        join(f, "demo", "B", "b", b);
        take_way_out(f, a, races[i].first);
        size_t after_first = f->rec.n;
        take_way_out(f, a, races[i].second);
        /* Nothing at all, unless the second closes the room (then B goes). */
        if (races[i].second != OUT_ROOM_CLOSE) assert_int_equal(f->rec.n, after_first);
        assert_int_equal(count(&f->rec, ROOM_EV_LEFT, a), 1);
        assert_int_equal(find(&f->rec, ROOM_EV_LEFT, a)->reason, way_reason(races[i].first));
        fixture_free(f);
    }
}

/* ---- reload ---- */

static void test_publisher_reload_is_one_left_and_one_joined(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(NULL);
    char old[ROOM_ID_LEN + 1], fresh[ROOM_ID_LEN + 1];
    join(f, "demo", "Alice", "alice", old);
    assert_int_equal(room_publish(f->reg, old, "mic", ROOM_STREAM_AUDIO, 10), 0);
    f->rec.n = 0;

    /* The reloaded page joins before the old WebSocket is seen closing. */
    struct room_join_req req = {.room = "demo", .name = "Alice", .user = "alice", .rejoin = true};
    assert_int_equal(room_join(f->reg, &req, 20, fresh), 0);
    assert_string_not_equal(old, fresh);
    assert_int_equal(f->rec.n, 3);
    assert_int_equal(f->rec.ev[0].type, ROOM_EV_UNPUBLISHED);
    assert_int_equal(f->rec.ev[1].type, ROOM_EV_LEFT);
    assert_string_equal(f->rec.ev[1].id, old);
    assert_int_equal(f->rec.ev[1].reason, ROOM_LEAVE_DISCONNECTED);
    assert_int_equal(f->rec.ev[2].type, ROOM_EV_JOINED);
    assert_string_equal(f->rec.ev[2].id, fresh);
    /* The room never looked empty: no closed, no created. */
    assert_int_equal(count(&f->rec, ROOM_EV_CLOSED, NULL), 0);

    /* Then the old connection's close and consent timeout arrive: nothing. */
    assert_int_equal(room_participant_exit(f->reg, old, ROOM_LEAVE_DISCONNECTED, 30), -ENOENT);
    assert_int_equal(room_participant_exit(f->reg, old, ROOM_LEAVE_CONSENT_EXPIRED, 40), -ENOENT);
    assert_int_equal(f->rec.n, 3);
    struct room_info ri;
    assert_int_equal(room_get(f->reg, "demo", &ri), 0);
    assert_int_equal(ri.participants, 1);

    /* A rejoin needs a user key to find the old one by. */
    req.user = "";
    assert_int_equal(room_join(f->reg, &req, 50, fresh), -EINVAL);
    fixture_free(f);
}

/* The other order: the old connection closes first. With a grace time the
 * room waits for the page to come back instead of closing and reopening. */
static void test_reload_after_disconnect_within_grace_keeps_the_room(void **state)
{
    (void)state;
    struct room_config cfg;
    room_config_default(&cfg);
    cfg.close_grace_ms = 5000;
    struct fixture *f = fixture_new(&cfg);
    char old[ROOM_ID_LEN + 1], fresh[ROOM_ID_LEN + 1];
    join(f, "demo", "Alice", "alice", old);
    assert_int_equal(room_participant_exit(f->reg, old, ROOM_LEAVE_DISCONNECTED, 1000), 0);
    struct room_info ri;
    assert_int_equal(room_get(f->reg, "demo", &ri), 0);
    assert_true(ri.closing);
    assert_int_equal(room_registry_next_deadline(f->reg), 6000);

    struct room_join_req req = {.room = "demo", .name = "Alice", .user = "alice", .rejoin = true};
    assert_int_equal(room_join(f->reg, &req, 1500, fresh), 0);
    assert_int_equal(room_registry_next_deadline(f->reg), UINT64_MAX);
    assert_int_equal(room_registry_tick(f->reg, 10000), 0);
    assert_int_equal(count(&f->rec, ROOM_EV_LEFT, old), 1);
    assert_int_equal(count(&f->rec, ROOM_EV_JOINED, fresh), 1);
    assert_int_equal(count(&f->rec, ROOM_EV_CREATED, NULL), 1);
    assert_int_equal(count(&f->rec, ROOM_EV_CLOSED, NULL), 0);
    fixture_free(f);
}

static void test_empty_room_closes_when_its_grace_runs_out(void **state)
{
    (void)state;
    struct room_config cfg;
    room_config_default(&cfg);
    cfg.close_grace_ms = 5000;
    struct fixture *f = fixture_new(&cfg);
    char a[ROOM_ID_LEN + 1];
    join(f, "demo", "A", "a", a);
    assert_int_equal(room_participant_exit(f->reg, a, ROOM_LEAVE_REQUEST, 1000), 0);
    assert_int_equal(room_registry_tick(f->reg, 5999), 0);
    assert_int_equal(count(&f->rec, ROOM_EV_CLOSED, NULL), 0);
    assert_int_equal(room_registry_tick(f->reg, 6000), 1);
    assert_int_equal(count(&f->rec, ROOM_EV_CLOSED, NULL), 1);
    assert_int_equal(room_registry_count(f->reg), 0);
    assert_int_equal(room_registry_tick(f->reg, 7000), 0);
    fixture_free(f);
}

/* ---- streams and subscriptions ---- */

static void test_streams_are_unpublished_before_their_owner_leaves(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(NULL);
    char a[ROOM_ID_LEN + 1];
    join(f, "demo", "A", "a", a);
    assert_int_equal(room_publish(f->reg, a, "mic", ROOM_STREAM_AUDIO, 10), 0);
    assert_int_equal(room_publish(f->reg, a, "cam", ROOM_STREAM_VIDEO, 10), 0);
    assert_int_equal(room_publish(f->reg, a, "cam", ROOM_STREAM_VIDEO, 10), -EEXIST);
    const struct rec_event *pe = find(&f->rec, ROOM_EV_PUBLISHED, a);
    assert_string_equal(pe->stream, "mic");
    assert_int_equal(pe->kind, ROOM_STREAM_AUDIO);
    struct room_participant_info pi;
    assert_int_equal(room_participant_get(f->reg, a, &pi), 0);
    assert_int_equal(pi.state, ROOM_PART_PUBLISHING);
    assert_int_equal(pi.streams, 2);

    assert_int_equal(room_participant_exit(f->reg, a, ROOM_LEAVE_CONSENT_EXPIRED, 20), 0);
    size_t left = index_of(&f->rec, ROOM_EV_LEFT, a, NULL);
    assert_true(index_of(&f->rec, ROOM_EV_UNPUBLISHED, a, "mic") < left);
    assert_true(index_of(&f->rec, ROOM_EV_UNPUBLISHED, a, "cam") < left);
    assert_int_equal(count(&f->rec, ROOM_EV_UNPUBLISHED, a), 2);
    fixture_free(f);
}

static void test_unpublish_one_stream(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(NULL);
    char a[ROOM_ID_LEN + 1];
    join(f, "demo", "A", "a", a);
    assert_int_equal(room_publish(f->reg, a, "mic", ROOM_STREAM_AUDIO, 10), 0);
    assert_int_equal(room_publish(f->reg, a, "cam", ROOM_STREAM_VIDEO, 10), 0);
    assert_int_equal(room_unpublish(f->reg, a, "mic", 11), 0);
    assert_int_equal(room_unpublish(f->reg, a, "mic", 11), -ENOENT);
    struct room_stream_info si;
    assert_int_equal(room_participant_stream(f->reg, a, 0, &si), 0);
    assert_string_equal(si.stream_id, "cam");
    assert_int_equal(room_participant_stream(f->reg, a, 1, &si), -ENOENT);
    assert_int_equal(room_unpublish(f->reg, a, "cam", 12), 0);
    struct room_participant_info pi;
    assert_int_equal(room_participant_get(f->reg, a, &pi), 0);
    assert_int_equal(pi.state, ROOM_PART_JOINED);
    /* Nothing left to unpublish when it goes. */
    assert_int_equal(room_participant_exit(f->reg, a, ROOM_LEAVE_REQUEST, 13), 0);
    assert_int_equal(count(&f->rec, ROOM_EV_UNPUBLISHED, a), 2);
    assert_int_equal(room_publish(f->reg, a, "x", ROOM_STREAM_AUDIO, 14), -ENOENT);
    fixture_free(f);
}

static void test_subscribers_are_told_when_their_publisher_goes(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(NULL);
    char p[ROOM_ID_LEN + 1], v1[ROOM_ID_LEN + 1], v2[ROOM_ID_LEN + 1], other[ROOM_ID_LEN + 1];
    join(f, "demo", "P", "p", p);
    join(f, "demo", "V1", "v1", v1);
    join(f, "demo", "V2", "v2", v2);
    join(f, "elsewhere", "O", "o", other);
    assert_int_equal(room_publish(f->reg, p, "cam", ROOM_STREAM_VIDEO, 10), 0);
    assert_int_equal(room_subscribe(f->reg, v1, p), 0);
    assert_int_equal(room_subscribe(f->reg, v2, p), 0);
    assert_int_equal(room_subscribe(f->reg, v1, p), -EEXIST);
    assert_int_equal(room_subscribe(f->reg, p, p), -EINVAL);
    assert_int_equal(room_subscribe(f->reg, other, p), -EINVAL); /* another room */
    assert_true(room_is_subscribed(f->reg, v1, p));
    struct room_participant_info pi;
    assert_int_equal(room_participant_get(f->reg, p, &pi), 0);
    assert_int_equal(pi.subscribers, 2);

    assert_int_equal(room_participant_exit(f->reg, p, ROOM_LEAVE_CONSENT_EXPIRED, 20), 0);
    assert_int_equal(f->rec.ndrops, 2);
    bool saw1 = false, saw2 = false;
    for (size_t i = 0; i < f->rec.ndrops; i++) {
        assert_string_equal(f->rec.drops[i].pub, p);
        saw1 |= !strcmp(f->rec.drops[i].viewer, v1);
        saw2 |= !strcmp(f->rec.drops[i].viewer, v2);
    }
    assert_true(saw1 && saw2);
    assert_false(room_is_subscribed(f->reg, v1, p));
    assert_int_equal(room_participant_get(f->reg, v1, &pi), 0);
    assert_int_equal(pi.subscriptions, 0);
    assert_int_equal(count(&f->rec, ROOM_EV_LEFT, v1), 0); /* viewers stay */
    fixture_free(f);
}

static void test_a_viewer_leaving_drops_its_subscriptions_quietly(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(NULL);
    char p[ROOM_ID_LEN + 1], v[ROOM_ID_LEN + 1];
    join(f, "demo", "P", "p", p);
    join(f, "demo", "V", "v", v);
    assert_int_equal(room_subscribe(f->reg, v, p), 0);
    assert_int_equal(room_participant_exit(f->reg, v, ROOM_LEAVE_REQUEST, 20), 0);
    assert_int_equal(f->rec.ndrops, 0);
    struct room_participant_info pi;
    assert_int_equal(room_participant_get(f->reg, p, &pi), 0);
    assert_int_equal(pi.subscribers, 0);
    /* And unsubscribe is the viewer's own choice: nobody told. */
    join(f, "demo", "V", "v", v);
    assert_int_equal(room_subscribe(f->reg, v, p), 0);
    assert_int_equal(room_unsubscribe(f->reg, v, p), 0);
    assert_int_equal(room_unsubscribe(f->reg, v, p), -ENOENT);
    assert_int_equal(f->rec.ndrops, 0);
    fixture_free(f);
}

/* ---- pending joins ---- */

static void test_a_pending_participant_is_announced_on_confirm_only(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(NULL);
    char a[ROOM_ID_LEN + 1], b[ROOM_ID_LEN + 1];
    struct room_join_req req = {.room = "demo", .name = "A", .pending = true};
    assert_int_equal(room_join(f->reg, &req, 1, a), 0);
    assert_int_equal(count(&f->rec, ROOM_EV_JOINED, NULL), 0);
    assert_int_equal(room_publish(f->reg, a, "cam", ROOM_STREAM_VIDEO, 2), -EAGAIN);
    assert_int_equal(room_participant_confirm(f->reg, a, 3), 0);
    assert_int_equal(room_participant_confirm(f->reg, a, 3), -EALREADY);
    assert_int_equal(count(&f->rec, ROOM_EV_JOINED, a), 1);

    /* Gone before confirming: never announced, so no left either. */
    assert_int_equal(room_join(f->reg, &req, 4, b), 0);
    assert_int_equal(room_subscribe(f->reg, b, a), -EAGAIN);
    assert_int_equal(room_participant_exit(f->reg, b, ROOM_LEAVE_DISCONNECTED, 5), 0);
    assert_int_equal(count(&f->rec, ROOM_EV_JOINED, b), 0);
    assert_int_equal(count(&f->rec, ROOM_EV_LEFT, b), 0);
    assert_int_equal(room_participant_confirm(f->reg, b, 6), -ENOENT);
    fixture_free(f);
}

/* ---- caps ---- */

static void test_ten_thousand_joins_past_a_cap_of_one_thousand(void **state)
{
    (void)state;
    struct room_config cfg;
    room_config_default(&cfg);
    cfg.max_participants_per_room = 1000;
    struct fixture *f = fixture_new(&cfg);
    int ok = 0, refused = 0;
    for (int i = 0; i < 10000; i++) {
        char id[ROOM_ID_LEN + 1], name[32];
        snprintf(name, sizeof name, "viewer-%d", i);
        struct room_join_req req = {.room = "demo", .name = name};
        int rc = room_join(f->reg, &req, (uint64_t)i, id);
        if (rc == 0) ok++;
        else {
            assert_int_equal(rc, -EUSERS);
            refused++;
        }
    }
    assert_int_equal(ok, 1000);
    assert_int_equal(refused, 9000);
    assert_int_equal(f->rec.total, 1 + 1000); /* created + the accepted joins */
    assert_int_equal(count(&f->rec, ROOM_EV_JOINED, NULL), 1000);
    struct room_info ri;
    assert_int_equal(room_get(f->reg, "demo", &ri), 0);
    assert_int_equal(ri.participants, 1000);
    /* Everybody out at shutdown: a left each, then closed. */
    room_registry_shutdown(f->reg, 20000);
    assert_int_equal(f->rec.total, 1 + 1000 + 1000 + 1);
    assert_int_equal(room_registry_count(f->reg), 0);
    fixture_free(f);
}

static void test_room_stream_and_subscription_caps(void **state)
{
    (void)state;
    struct room_config cfg = {.max_rooms = 2, .max_streams_per_participant = 2, .max_subscriptions_per_participant = 1};
    struct fixture *f = fixture_new(&cfg);
    char a[ROOM_ID_LEN + 1], b[ROOM_ID_LEN + 1], c[ROOM_ID_LEN + 1], x[ROOM_ID_LEN + 1];
    join(f, "one", "A", "a", a);
    join(f, "two", "B", "b", b);
    join(f, "two", "C", "c", c);
    struct room_join_req req = {.room = "three"};
    size_t before = f->rec.total;
    assert_int_equal(room_join(f->reg, &req, 1, x), -ENOSPC);
    assert_int_equal(room_create(f->reg, "three", 1), -ENOSPC);
    assert_int_equal(f->rec.total, before);
    assert_int_equal(room_get(f->reg, "three", &(struct room_info){0}), -ENOENT);

    assert_int_equal(room_publish(f->reg, a, "s1", ROOM_STREAM_AUDIO, 1), 0);
    assert_int_equal(room_publish(f->reg, a, "s2", ROOM_STREAM_VIDEO, 1), 0);
    assert_int_equal(room_publish(f->reg, a, "s3", ROOM_STREAM_VIDEO, 1), -ENOSPC);
    assert_int_equal(room_publish(f->reg, a, "", ROOM_STREAM_VIDEO, 1), -EINVAL);
    assert_int_equal(room_publish(f->reg, a, "s4", (enum room_stream_kind)7, 1), -EINVAL);

    assert_int_equal(room_subscribe(f->reg, b, c), 0);
    assert_int_equal(room_unsubscribe(f->reg, b, c), 0);
    assert_int_equal(room_subscribe(f->reg, b, c), 0);
    join(f, "two", "D", "d", x);
    assert_int_equal(room_subscribe(f->reg, b, x), -ENOSPC);
    fixture_free(f);
}

/* ---- names ---- */

static void test_room_names(void **state)
{
    (void)state;
    static const char *good[] = {"a", "demo", "Room_1", "a.b-c", "...", ".x", "0123456789012345678901234567890123456789012345678901234567890123"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        if (room_name_check(good[i])) fail_msg("refused %s: %s", good[i], room_name_check(good[i]));
    }
    static const struct {
        const char *name, *why;
    } bad[] = {
        {"", "empty"},
        {".", "\".\" or \"..\""},
        {"..", "\".\" or \"..\""},
        {"../etc", "path separators"},
        {"a/b", "path separators"},
        {"a\\b", "path separators"},
        {"/", "path separators"},
        {"a b", "only letters"},
        {"a%2f", "only letters"},
        {"caf\xc3\xa9", "only letters"},
        {"a\nb", "only letters"},
        {"01234567890123456789012345678901234567890123456789012345678901234", "longer than 64"},
    };
    struct fixture *f = fixture_new(NULL);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *why = room_name_check(bad[i].name);
        assert_non_null(why);
        if (!strstr(why, bad[i].why)) fail_msg("%s: %s", bad[i].name, why);
        char id[ROOM_ID_LEN + 1];
        struct room_join_req req = {.room = bad[i].name, .name = "x"};
        assert_int_equal(room_join(f->reg, &req, 1, id), -EINVAL);
        assert_int_equal(room_create(f->reg, bad[i].name, 1), -EINVAL);
    }
    assert_non_null(room_name_check(NULL));
    assert_int_equal(f->rec.total, 0);
    assert_int_equal(room_registry_count(f->reg), 0);
    fixture_free(f);
}

static void test_display_names_and_user_keys(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(NULL);
    char id[ROOM_ID_LEN + 1];
    static const char *bad[] = {"tab\there", "\x7f", "\xc3", "\xc0\xaf", "\xed\xa0\x80",
                                "01234567890123456789012345678901234567890123456789012345678901234"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct room_join_req req = {.room = "demo", .name = bad[i]};
        assert_int_equal(room_join(f->reg, &req, 1, id), -EINVAL);
        req = (struct room_join_req){.room = "demo", .user = bad[i]};
        assert_int_equal(room_join(f->reg, &req, 1, id), -EINVAL);
    }
    assert_int_equal(f->rec.total, 0);
    struct room_join_req req = {.room = "demo", .name = "Zoë 李"};
    assert_int_equal(room_join(f->reg, &req, 1, id), 0);
    fixture_free(f);
}

/* ---- ids ---- */

static int failing_random(void *arg, uint8_t *buf, size_t len)
{
    (void)arg, (void)buf, (void)len;
    return -1;
}

static int constant_random(void *arg, uint8_t *buf, size_t len)
{
    (void)arg;
    memset(buf, 0xab, len);
    return 0;
}

static void test_ids_come_from_the_random_source(void **state)
{
    (void)state;
    struct rec *rec = calloc(1, sizeof *rec);
    struct room_events ev = {.user = rec, .emit = rec_emit};
    char id[ROOM_ID_LEN + 1];
    struct room_join_req req = {.room = "demo"};

    struct room_registry *reg = room_registry_new(NULL, &ev, failing_random, NULL);
    assert_int_equal(room_join(reg, &req, 1, id), -EIO);
    assert_int_equal(rec->total, 0);
    assert_int_equal(room_registry_count(reg), 0);
    room_registry_free(reg);

    /* A source stuck on one value gives one id, then refuses rather than reuse it. */
    reg = room_registry_new(NULL, &ev, constant_random, NULL);
    assert_int_equal(room_join(reg, &req, 1, id), 0);
    assert_string_equal(id, "abababababababab");
    assert_int_equal(room_join(reg, &req, 1, id), -EIO);
    room_registry_free(reg);

    /* The default source: OpenSSL. */
    reg = room_registry_new(NULL, &ev, NULL, NULL);
    char id2[ROOM_ID_LEN + 1];
    assert_int_equal(room_join(reg, &req, 1, id), 0);
    assert_int_equal(room_join(reg, &req, 1, id2), 0);
    assert_string_not_equal(id, id2);
    assert_int_equal(strspn(id2, "0123456789abcdef"), ROOM_ID_LEN);
    room_registry_free(reg); /* frees rooms still populated, silently */
    free(rec);
}

/* ---- rooms made and closed by hand, lookups ---- */

static int list_names(void *arg, const struct room_info *ri)
{
    char *out = arg;
    strcat(out, ri->name);
    strcat(out, ";");
    return 0;
}

static int list_parts(void *arg, const struct room_participant_info *pi)
{
    char *out = arg;
    strcat(out, pi->name);
    strcat(out, ";");
    return 0;
}

static int stop_at_first(void *arg, const struct room_info *ri)
{
    (void)arg, (void)ri;
    return 7;
}

static void test_created_rooms_stay_until_closed(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(NULL);
    assert_int_equal(room_create(f->reg, "stage", 1), 0);
    assert_int_equal(room_create(f->reg, "stage", 1), -EEXIST);
    char a[ROOM_ID_LEN + 1], b[ROOM_ID_LEN + 1];
    join(f, "stage", "A", "a", a);
    assert_int_equal(room_participant_exit(f->reg, a, ROOM_LEAVE_REQUEST, 2), 0);
    struct room_info ri;
    assert_int_equal(room_get(f->reg, "stage", &ri), 0); /* kept while empty */
    assert_true(ri.kept);
    assert_int_equal(count(&f->rec, ROOM_EV_CREATED, NULL), 1);

    join(f, "stage", "A", "a", a);
    join(f, "stage", "B", "b", b);
    assert_int_equal(room_publish(f->reg, b, "cam", ROOM_STREAM_VIDEO, 3), 0);
    f->rec.n = 0;
    assert_int_equal(room_close(f->reg, "stage", 4), 0);
    assert_int_equal(room_close(f->reg, "stage", 4), -ENOENT);
    /* a left, b unpublished + left, then closed — once. */
    assert_int_equal(f->rec.n, 4);
    assert_int_equal(find(&f->rec, ROOM_EV_LEFT, a)->reason, ROOM_LEAVE_ROOM_CLOSED);
    assert_int_equal(find(&f->rec, ROOM_EV_LEFT, b)->reason, ROOM_LEAVE_ROOM_CLOSED);
    assert_int_equal(f->rec.ev[3].type, ROOM_EV_CLOSED);
    assert_int_equal(room_participant_exit(f->reg, a, ROOM_LEAVE_DISCONNECTED, 5), -ENOENT);
    fixture_free(f);
}

static void test_lookups_and_kick(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(NULL);
    char a[ROOM_ID_LEN + 1], b[ROOM_ID_LEN + 1], c[ROOM_ID_LEN + 1];
    join(f, "red", "Ann", "ann", a);
    join(f, "blue", "Bob", "bob", b);
    join(f, "red", "Cid", "cid", c);
    char out[256] = "";
    assert_int_equal(room_list(f->reg, list_names, out), 0);
    assert_string_equal(out, "red;blue;");
    assert_int_equal(room_list(f->reg, stop_at_first, NULL), 7);
    out[0] = '\0';
    assert_int_equal(room_participants(f->reg, "red", list_parts, out), 0);
    assert_string_equal(out, "Ann;Cid;");
    assert_int_equal(room_participants(f->reg, "green", list_parts, out), -ENOENT);

    struct room_participant_info pi;
    assert_int_equal(room_participant_get(f->reg, c, &pi), 0);
    assert_string_equal(pi.room, "red");
    assert_string_equal(pi.name, "Cid");
    assert_string_equal(pi.user, "cid");
    assert_int_equal(pi.joined_ms, 1000);
    assert_int_equal(room_participant_get(f->reg, "0000000000000000", &pi), -ENOENT);
    assert_int_equal(room_participant_get(f->reg, "short", &pi), -ENOENT);
    assert_int_equal(room_participant_get(f->reg, NULL, &pi), -ENOENT);

    assert_int_equal(room_kick(f->reg, c, 9), 0);
    assert_int_equal(find(&f->rec, ROOM_EV_LEFT, c)->reason, ROOM_LEAVE_KICKED);
    out[0] = '\0';
    assert_int_equal(room_participants(f->reg, "red", list_parts, out), 0);
    assert_string_equal(out, "Ann;");
    assert_int_equal(room_registry_count(f->reg), 2);
    fixture_free(f);
}

/* ---- the bus ---- */

struct bus_seen {
    char json[8][512];
    int n;
};

static void on_bus(uint64_t seq, const char *json, size_t len, void *arg)
{
    (void)seq;
    struct bus_seen *s = arg;
    if (s->n < 8) snprintf(s->json[s->n++], sizeof s->json[0], "%.*s", (int)len, json);
}

static void test_events_reach_the_bus(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct event_bus *bus = event_bus_new(&loop, 64, NULL);
    assert_non_null(bus);
    struct bus_seen seen = {0};
    assert_int_equal(event_subscribe(bus, on_bus, &seen), 0);
    uint64_t counter = 0;
    struct room_events ev = {.user = bus, .emit = room_event_publish};
    struct room_registry *reg = room_registry_new(NULL, &ev, counter_random, &counter);
    char a[ROOM_ID_LEN + 1];
    struct room_join_req req = {.room = "demo", .name = "Alice", .user = "alice"};
    assert_int_equal(room_join(reg, &req, 1, a), 0);
    assert_int_equal(room_publish(reg, a, "cam", ROOM_STREAM_VIDEO, 2), 0);
    assert_int_equal(room_kick(reg, a, 3), 0);
    assert_int_equal(seen.n, 6); /* the kick emptied the room: closed too */
    assert_non_null(strstr(seen.json[0], "\"type\":\"room.created\""));
    assert_non_null(strstr(seen.json[0], "\"room\":\"demo\""));
    assert_non_null(strstr(seen.json[1], "\"type\":\"room.participant.joined\""));
    assert_non_null(strstr(seen.json[1], "\"name\":\"Alice\""));
    assert_non_null(strstr(seen.json[1], a));
    assert_non_null(strstr(seen.json[2], "\"type\":\"room.stream.published\""));
    assert_non_null(strstr(seen.json[2], "\"kind\":\"video\""));
    assert_non_null(strstr(seen.json[3], "\"type\":\"room.stream.unpublished\""));
    assert_non_null(strstr(seen.json[4], "\"type\":\"room.participant.left\""));
    assert_non_null(strstr(seen.json[4], "\"reason\":\"kicked\""));
    assert_non_null(strstr(seen.json[5], "\"type\":\"room.closed\""));
    room_registry_shutdown(reg, 4);
    assert_int_equal(seen.n, 6);
    room_registry_free(reg);
    event_unsubscribe(bus, on_bus, &seen);
    event_bus_free(bus);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- a room WebSocket member: streams come and go, the participant stays ---- */

/* A member's publishing peer ends (consent) and it publishes again under
 * the same stream ids: each publish and unpublish once, no left; then the
 * socket closes and a kick arrives late: one left, nothing more. */
static void test_a_member_republishes_without_leaving(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(NULL);
    char a[ROOM_ID_LEN + 1], b[ROOM_ID_LEN + 1];
    struct room_join_req ra = {.room = "demo", .name = "a"}, rb = {.room = "demo", .name = "b"};
    assert_int_equal(room_join(f->reg, &ra, 1, a), 0);
    assert_int_equal(room_join(f->reg, &rb, 1, b), 0);
    assert_int_equal(room_publish(f->reg, a, "0", ROOM_STREAM_AUDIO, 2), 0);
    assert_int_equal(room_publish(f->reg, a, "1", ROOM_STREAM_VIDEO, 2), 0);
    assert_int_equal(room_subscribe(f->reg, b, a), 0);
    /* the publishing peer's consent expired: its streams go, the subscription with them */
    assert_int_equal(room_unpublish(f->reg, a, "1", 3), 0);
    assert_int_equal(room_unpublish(f->reg, a, "0", 3), 0);
    assert_int_equal(room_unsubscribe(f->reg, b, a), 0);
    assert_int_equal(room_unpublish(f->reg, a, "0", 3), -ENOENT); /* a late second report */
    assert_int_equal(count(&f->rec, ROOM_EV_UNPUBLISHED, a), 2);
    assert_int_equal(count(&f->rec, ROOM_EV_LEFT, NULL), 0);
    /* it publishes again, same stream ids */
    assert_int_equal(room_publish(f->reg, a, "0", ROOM_STREAM_AUDIO, 4), 0);
    assert_int_equal(room_publish(f->reg, a, "1", ROOM_STREAM_VIDEO, 4), 0);
    assert_int_equal(room_subscribe(f->reg, b, a), 0);
    /* the socket closes, then the kick arrives */
    assert_int_equal(room_participant_exit(f->reg, a, ROOM_LEAVE_DISCONNECTED, 5), 0);
    assert_int_equal(room_kick(f->reg, a, 6), -ENOENT);
    assert_int_equal(room_unpublish(f->reg, a, "1", 6), -ENOENT);
    assert_int_equal(count(&f->rec, ROOM_EV_PUBLISHED, a), 4);
    assert_int_equal(count(&f->rec, ROOM_EV_UNPUBLISHED, a), 4);
    assert_int_equal(count(&f->rec, ROOM_EV_LEFT, a), 1);
    assert_int_equal(find(&f->rec, ROOM_EV_LEFT, a)->reason, ROOM_LEAVE_DISCONNECTED);
    assert_int_equal(f->rec.ndrops, 1); /* b was told once, for the second subscription */
    assert_int_equal(count(&f->rec, ROOM_EV_JOINED, NULL), 2);
    fixture_free(f);
}

/* ---- join tokens ---- */

static const uint8_t key1[] = "node secret one", key2[] = "node secret two";

static int sign(const uint8_t *key, const char *room, const char *name, uint64_t exp, bool pub, bool sub, char *out)
{
    struct room_token t = {.expires_s = exp, .publish = pub, .subscribe = sub};
    snprintf(t.room, sizeof t.room, "%s", room);
    snprintf(t.name, sizeof t.name, "%s", name);
    return room_token_sign(key, sizeof key1 - 1, &t, out, ROOM_TOKEN_MAX + 1);
}

static void test_a_token_opens_its_room_until_it_expires(void **state)
{
    (void)state;
    char tok[ROOM_TOKEN_MAX + 1];
    int n = sign(key1, "demo", "Zoë", 1000, true, false, tok);
    assert_true(n > 0 && (size_t)n == strlen(tok));
    for (const char *p = tok; *p; p++) /* fits a URL query as it is */
        assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.", *p));
    struct room_token t;
    assert_int_equal(room_token_verify(key1, sizeof key1 - 1, tok, "demo", 999, &t), 0);
    assert_string_equal(t.room, "demo");
    assert_string_equal(t.name, "Zoë");
    assert_int_equal(t.expires_s, 1000);
    assert_true(t.publish);
    assert_false(t.subscribe);
    assert_int_equal(room_token_verify(key1, sizeof key1 - 1, tok, "demo", 1000, &t), -ETIMEDOUT);
    assert_int_equal(room_token_verify(key1, sizeof key1 - 1, tok, "demo2", 999, &t), -EXDEV);
    assert_int_equal(room_token_verify(key1, sizeof key1 - 1, tok, NULL, 999, &t), -EXDEV);
    /* another node's secret */
    assert_int_equal(room_token_verify(key2, sizeof key2 - 1, tok, "demo", 999, &t), -EINVAL);
    /* rights and name of its own */
    assert_true(sign(key1, "demo", "", 5000, false, true, tok) > 0);
    assert_int_equal(room_token_verify(key1, sizeof key1 - 1, tok, "demo", 1, &t), 0);
    assert_false(t.publish);
    assert_true(t.subscribe);
    assert_string_equal(t.name, "");
}

static void test_a_tampered_token_is_refused(void **state)
{
    (void)state;
    char tok[ROOM_TOKEN_MAX + 1], other[ROOM_TOKEN_MAX + 1], mixed[2 * ROOM_TOKEN_MAX + 2];
    assert_true(sign(key1, "demo", "a", 1000, false, true, tok) > 0);
    struct room_token t;
    /* every single character changed */
    size_t n = strlen(tok);
    for (size_t i = 0; i < n; i++) {
        char c = tok[i];
        tok[i] = c == 'A' ? 'B' : 'A';
        assert_int_not_equal(room_token_verify(key1, sizeof key1 - 1, tok, "demo", 1, &t), 0);
        tok[i] = c;
    }
    /* truncated, extended, no dot, empty, garbage */
    tok[n - 1] = '\0';
    assert_int_equal(room_token_verify(key1, sizeof key1 - 1, tok, "demo", 1, &t), -EINVAL);
    assert_int_equal(room_token_verify(key1, sizeof key1 - 1, "", "demo", 1, &t), -EINVAL);
    assert_int_equal(room_token_verify(key1, sizeof key1 - 1, "abc", "demo", 1, &t), -EINVAL);
    assert_int_equal(room_token_verify(key1, sizeof key1 - 1, "a.b", "demo", 1, &t), -EINVAL);
    assert_int_equal(room_token_verify(key1, sizeof key1 - 1, "....", "demo", 1, &t), -EINVAL);
    /* a payload from one token with the signature of another (publish rights grafted on) */
    assert_true(sign(key1, "demo", "a", 1000, false, true, tok) > 0);
    assert_true(sign(key1, "demo", "a", 1000, true, true, other) > 0);
    snprintf(mixed, sizeof mixed, "%.*s%s", (int)(strchr(other, '.') - other), other, strchr(tok, '.'));
    assert_int_equal(room_token_verify(key1, sizeof key1 - 1, mixed, "demo", 1, &t), -EINVAL);
    /* longer than a token can be */
    char longtok[ROOM_TOKEN_MAX + 40];
    memset(longtok, 'A', sizeof longtok - 1);
    longtok[sizeof longtok - 1] = '\0';
    assert_int_equal(room_token_verify(key1, sizeof key1 - 1, longtok, "demo", 1, &t), -EINVAL);
}

static void test_token_signing_checks_its_input(void **state)
{
    (void)state;
    char tok[ROOM_TOKEN_MAX + 1];
    assert_int_equal(sign(key1, "../x", "", 10, true, true, tok), -EINVAL);
    assert_int_equal(sign(key1, "demo", "new\nline", 10, true, true, tok), -EINVAL);
    struct room_token t = {.room = "demo", .expires_s = 10};
    assert_int_equal(room_token_sign(key1, 0, &t, tok, sizeof tok), -EINVAL);
    assert_int_equal(room_token_sign(key1, sizeof key1 - 1, &t, tok, 10), -ENOSPC);
    /* the longest room and name still fit */
    char room[ROOM_NAME_MAX + 1], name[ROOM_TEXT_MAX + 1];
    memset(room, 'r', ROOM_NAME_MAX);
    room[ROOM_NAME_MAX] = '\0';
    memset(name, 'n', ROOM_TEXT_MAX);
    name[ROOM_TEXT_MAX] = '\0';
    assert_true(sign(key1, room, name, UINT64_MAX - 1, true, true, tok) > 0);
    assert_int_equal(room_token_verify(key1, sizeof key1 - 1, tok, room, 1, &t), 0);
    assert_string_equal(t.name, name);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_join_then_leave_emits_each_once),
        cmocka_unit_test(test_the_four_reasons_are_carried),
        cmocka_unit_test(test_racing_exits_give_one_left_with_the_first_reason),
        cmocka_unit_test(test_second_exit_is_ignored),
        cmocka_unit_test(test_publisher_reload_is_one_left_and_one_joined),
        cmocka_unit_test(test_reload_after_disconnect_within_grace_keeps_the_room),
        cmocka_unit_test(test_empty_room_closes_when_its_grace_runs_out),
        cmocka_unit_test(test_streams_are_unpublished_before_their_owner_leaves),
        cmocka_unit_test(test_unpublish_one_stream),
        cmocka_unit_test(test_subscribers_are_told_when_their_publisher_goes),
        cmocka_unit_test(test_a_viewer_leaving_drops_its_subscriptions_quietly),
        cmocka_unit_test(test_a_pending_participant_is_announced_on_confirm_only),
        cmocka_unit_test(test_ten_thousand_joins_past_a_cap_of_one_thousand),
        cmocka_unit_test(test_room_stream_and_subscription_caps),
        cmocka_unit_test(test_room_names),
        cmocka_unit_test(test_display_names_and_user_keys),
        cmocka_unit_test(test_ids_come_from_the_random_source),
        cmocka_unit_test(test_created_rooms_stay_until_closed),
        cmocka_unit_test(test_lookups_and_kick),
        cmocka_unit_test(test_events_reach_the_bus),
        cmocka_unit_test(test_a_member_republishes_without_leaving),
        cmocka_unit_test(test_a_token_opens_its_room_until_it_expires),
        cmocka_unit_test(test_a_tampered_token_is_refused),
        cmocka_unit_test(test_token_signing_checks_its_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
