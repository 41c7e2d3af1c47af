/* fuzz_room.c — libFuzzer target for the room state machine (media/room.h).
 *
 * The input is a script of operations (joins, rejoins, confirms, exits with
 * every reason, kicks, publishes, subscriptions, room closes, ticks, a
 * shutdown) against a registry with small caps and an optional grace time.
 * A model fed only by the emitted events checks the promise of room.h after
 * every event: joined at most once per id, left only after joined and only
 * once, no stream still published at left, unpublished only for a published
 * stream, created only for a room not open, closed only for an open room with
 * nobody announced in it. At the end a shutdown must leave every announced
 * participant gone and every room closed. Room names from the input go
 * through room_name_check as well. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "media/room.h"

#define CHECK(x) \
    do {         \
        if (!(x)) __builtin_trap(); \
    } while (0)

#define MAX_IDS 1024
#define MAX_OPS 2000

struct model_part {
    char id[ROOM_ID_LEN + 1];
    char room[ROOM_NAME_MAX + 1];
    bool joined, left;
    int streams;
};

struct model_room {
    char name[ROOM_NAME_MAX + 1];
    bool open;
};

static struct model_part parts[MAX_IDS];
static int nparts;
static struct model_room rooms[16];
static int nrooms;
static char ids[MAX_IDS][ROOM_ID_LEN + 1]; /* every id handed out, in order */
static int nids;
static uint64_t counter;

static struct model_part *part(const char *id)
{
    for (int i = 0; i < nparts; i++)
        if (!strcmp(parts[i].id, id)) return &parts[i];
    CHECK(nparts < MAX_IDS);
    struct model_part *p = &parts[nparts++];
    memset(p, 0, sizeof *p);
    snprintf(p->id, sizeof p->id, "%s", id);
    return p;
}

static struct model_room *room(const char *name)
{
    for (int i = 0; i < nrooms; i++)
        if (!strcmp(rooms[i].name, name)) return &rooms[i];
    CHECK(nrooms < 16);
    struct model_room *r = &rooms[nrooms++];
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s", name);
    return r;
}

static int announced_in(const char *name)
{
    int n = 0;
    for (int i = 0; i < nparts; i++)
        if (parts[i].joined && !parts[i].left && !strcmp(parts[i].room, name)) n++;
    return n;
}

static void on_event(void *user, const struct room_event *ev)
{
    (void)user;
    CHECK(!room_name_check(ev->room));
    struct model_room *r = room(ev->room);
    if (ev->type == ROOM_EV_CREATED) {
        CHECK(!r->open);
        r->open = true;
        return;
    }
    CHECK(r->open);
    if (ev->type == ROOM_EV_CLOSED) {
        CHECK(announced_in(ev->room) == 0);
        r->open = false;
        return;
    }
    struct model_part *p = part(ev->participant_id);
    switch (ev->type) {
    case ROOM_EV_JOINED:
        CHECK(!p->joined);
        p->joined = true;
        snprintf(p->room, sizeof p->room, "%s", ev->room);
        break;
    case ROOM_EV_LEFT:
        CHECK(p->joined && !p->left && p->streams == 0);
        CHECK(!strcmp(p->room, ev->room));
        p->left = true;
        break;
    case ROOM_EV_PUBLISHED:
        CHECK(p->joined && !p->left);
        p->streams++;
        break;
    case ROOM_EV_UNPUBLISHED:
        CHECK(p->joined && !p->left && p->streams > 0);
        p->streams--;
        break;
    default: CHECK(0);
    }
}

static void on_drop(void *user, const char *room_name, const char *viewer, const char *pub)
{
    (void)user, (void)room_name;
    CHECK(strcmp(viewer, pub) != 0);
}

static int counter_random(void *arg, uint8_t *buf, size_t len)
{
    (void)arg;
    counter++;
    for (size_t i = 0; i < len; i++) buf[i] = (uint8_t)(counter >> (8 * (i % 8)));
    return 0;
}

static const char *room_names[] = {"r0", "r1", "r2", "r3", "../x", ".."};
static const char *users[] = {"", "alice", "bob", "carol"};
static const char *streams[] = {"mic", "cam", "screen"};

static const char *pick_id(uint8_t b)
{
    if (!nids) return "0000000000000000";
    return ids[b % nids];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nparts = nrooms = nids = 0;
    counter = 0;
    struct room_config cfg = {.max_rooms = 3,
                              .max_participants_per_room = 5,
                              .max_streams_per_participant = 2,
                              .max_subscriptions_per_participant = 2,
                              .close_grace_ms = size && data[0] & 1 ? 100 : 0};
    struct room_events ev = {.emit = on_event, .subscription_dropped = on_drop};
    struct room_registry *reg = room_registry_new(&cfg, &ev, counter_random, NULL);
    if (!reg) return 0;
    uint64_t now = 0;
    size_t i = size ? 1 : 0;
    for (int ops = 0; ops < MAX_OPS && i + 3 <= size; ops++, i += 3) {
        uint8_t op = data[i] % 12, a = data[i + 1], b = data[i + 2];
        switch (op) {
        case 0: {
            struct room_join_req req = {.room = room_names[a % 6],
                                        .name = "n",
                                        .user = users[(a >> 3) % 4],
                                        .rejoin = b & 1,
                                        .pending = b & 2};
            char id[ROOM_ID_LEN + 1];
            int rc = room_join(reg, &req, now, id);
            CHECK(rc == 0 || rc == -EINVAL || rc == -ENOSPC || rc == -EUSERS);
            if (rc == 0 && nids < MAX_IDS) memcpy(ids[nids++], id, sizeof id);
            break;
        }
        case 1: room_participant_confirm(reg, pick_id(a), now); break;
        case 2: room_participant_exit(reg, pick_id(a), (enum room_leave_reason)(b % 6), now); break;
        case 3: room_kick(reg, pick_id(a), now); break;
        case 4: room_publish(reg, pick_id(a), streams[b % 3], (enum room_stream_kind)(b >> 7), now); break;
        case 5: room_unpublish(reg, pick_id(a), streams[b % 3], now); break;
        case 6: room_subscribe(reg, pick_id(a), pick_id(b)); break;
        case 7: room_unsubscribe(reg, pick_id(a), pick_id(b)); break;
        case 8: room_close(reg, room_names[a % 6], now); break;
        case 9:
            now += b;
            room_registry_tick(reg, now);
            break;
        case 10: room_create(reg, room_names[a % 6], now); break;
        case 11: {
            /* The lookups agree with what the events said. */
            struct room_participant_info pi;
            if (room_participant_get(reg, pick_id(a), &pi) == 0) {
                CHECK(pi.streams <= 2 && pi.subscriptions <= 2);
                if (pi.state != ROOM_PART_JOINING) CHECK(!strcmp(pi.room, part(pi.id)->room));
            }
            break;
        }
        }
    }
    room_registry_shutdown(reg, now);
    CHECK(room_registry_count(reg) == 0);
    for (int k = 0; k < nparts; k++) CHECK(!parts[k].joined || parts[k].left);
    for (int k = 0; k < nrooms; k++) CHECK(!rooms[k].open);
    room_registry_free(reg);
    return 0;
}
