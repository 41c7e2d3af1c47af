/* fuzz_cluster.c — libFuzzer target for what routing between nodes reads
 * from Redis (src/registrar/cluster.c): a peer's advertised SIP URI (it
 * becomes a Route we push), a mirrored binding record (JSON), the key
 * named by a change message, a member of a dead node's index or
 * incarnation list, the reap script's answer, for a dead node's GB
 * devices the device script's answer and an SSCAN answer of its device
 * index taken by the walk, with [redis] events_stream the announcing
 * scripts' answer and the stream script's (these through hiredis's reader), a peer's API
 * address (field api of its registry hash), and what a peer's API answers
 * to a forwarded GB request (api_httpc_parse, as events/httpc_uv.c reads
 * it: in two pieces, then with the close), and, for the reg package
 * across nodes (src/subs/reg_nodes.c), an HGETALL answer of a location hash
 * read as the other nodes' contacts and diffed against itself and against
 * nothing, into a partial reginfo document; for the dialog package across
 * nodes (src/subs/dialog_nodes.c), a dialog record (the input split at its
 * first newline into field and value, and whole as the value of a fixed
 * field), a message of its channel, and the same HGETALL answer read as the other nodes' dialogs,
 * diffed likewise into a partial dialog-info document. The input is read
 * as each of them.
 *
 * Beyond "no crash": an accepted URI gives a Route that starts with '<',
 * ends with ";lr;cascade-peer>", has no other '<' or '>' and nothing at or
 * below space (it cannot inject a header or a second Route entry), and a
 * host:port with a port; an accepted record has a non-empty node id that
 * fits; an accepted key gives a non-empty AoR without '}' or NUL; an
 * accepted member is non-empty, fits, and has no brace, space or control
 * byte (it goes inside a key's hash tag); accepted counts are >= 0; a
 * verdict is -1, 0, 1 or 2 (an announcing one -1..3, an accepted stream
 * seq >= 0); a walk that took an answer has a non-empty
 * decimal cursor, at most CLUSTER_GB_SCAN_MAX ids, each a usable member,
 * and never hands out more than CLUSTER_GB_WINDOW before answers; an
 * accepted API address is the input itself, numeric, with a port, and
 * nothing at or below space; a parsed answer has a status 200..599, a
 * body within the cap and NUL-terminated, and the same answer whether
 * the bytes came at once or in two reads; the contacts read are at most
 * REG_NODES_MAX, each a contact reg_nodes_contact_ok accepts, of another
 * node, unexpired, with q 0..1000; a read diffed against itself changes
 * nothing, against nothing each contact once.
 *
 *   tests/fuzz/fuzz_cluster -max_total_time=60 tests/fuzz/corpus/fuzz_cluster */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "events/httpc.h"
#include "redis/redis_objects.h"
#include "registrar/cluster.h"
#include "subs/dialog_nodes.h"
#include "subs/reg_nodes.h"
#include "subs/reginfo.h"

#define FUZZ_MAX_BODY 4096

static bool fuzz_alive(void *arg, const char *node)
{
    (void)arg;
    return node[0] != 'x'; /* nodes named x... are dead */
}

/* The reg package's reading of an HGETALL answer (reg_nodes.h). */
static void reg_read(const struct redisReply *reply)
{
    static struct reg_remote cur[REG_NODES_MAX];
    int n = reg_nodes_parse(reply, "me", 1000, fuzz_alive, NULL, cur, REG_NODES_MAX, NULL);
    if (n < -1 || n > REG_NODES_MAX) abort();
    if (n < 0) return;
    for (int i = 0; i < n; i++)
        if (!reg_nodes_contact_ok(cur[i].uri, strlen(cur[i].uri)) || !strcmp(cur[i].node, "me") ||
            cur[i].node[0] == 'x' || !cur[i].node[0] || cur[i].expires_wall_ms <= 1000 || cur[i].q1000 < 0 ||
            cur[i].q1000 > 1000)
            abort();
    struct reginfo_contact ch[2 * REG_NODES_MAX];
    if (reg_nodes_diff(cur, (size_t)n, cur, (size_t)n, 1000, fuzz_alive, NULL, ch, 2 * REG_NODES_MAX) != 0) abort();
    size_t k = reg_nodes_diff(NULL, 0, cur, (size_t)n, 1000, fuzz_alive, NULL, ch, 2 * REG_NODES_MAX);
    if (k != (size_t)n) abort();
    sbuf_t sb;
    sbuf_init(&sb);
    if (reginfo_build(&sb, 1, false, "sip:a@h", "active", ch, k) < 0) abort();
    sbuf_free(&sb);
    if (reg_nodes_diff(cur, (size_t)n, NULL, 0, 1000, fuzz_alive, NULL, ch, 2 * REG_NODES_MAX) != (size_t)n) abort();
}

/* One dialog record read (dialog_nodes.h): checked, encoded again, read again alike. */
static void dialog_record(const char *field, size_t flen, const char *value, size_t vlen)
{
    static struct dialog_remote r, again;
    if (dialog_nodes_decode(field, flen, value, vlen, &r) < 0) return;
    if (!r.node[0] || strlen(r.e.id) != 16 || !r.e.call_id[0] || r.expires_wall_ms <= 0 ||
        (r.e.code && (r.e.code < 100 || r.e.code > 699)) || (r.e.event && r.e.state != DIALOG_TERMINATED))
        abort();
    static char f2[DIALOG_NODES_FIELD_MAX], v2[DIALOG_NODES_RECORD_MAX + 1];
    int n = dialog_nodes_encode(r.node, &r.e, r.expires_wall_ms, f2, sizeof(f2), v2, sizeof(v2));
    if (n == -ENOSPC) return; /* escapes may make it longer than what was read */
    if (n < 0 || dialog_nodes_decode(f2, strlen(f2), v2, (size_t)n, &again) < 0) abort();
    if (strcmp(again.e.call_id, r.e.call_id) || strcmp(again.e.local_tag, r.e.local_tag) ||
        strcmp(again.e.remote_uri, r.e.remote_uri) || again.e.state != r.e.state || again.e.code != r.e.code ||
        again.e.initiator != r.e.initiator || again.expires_wall_ms != r.expires_wall_ms ||
        strcmp(again.e.id, r.e.id) || (again.e.event != r.e.event))
        abort();
}

/* The dialog package's reading of an HGETALL answer (dialog_nodes.h). */
static void dialog_read(const struct redisReply *reply)
{
    static struct dialog_remote cur[DIALOG_NODES_MAX];
    int n = dialog_nodes_parse(reply, "me", 1000, fuzz_alive, NULL, cur, DIALOG_NODES_MAX, NULL);
    if (n < -1 || n > DIALOG_NODES_MAX) abort();
    if (n < 0) return;
    for (int i = 0; i < n; i++) {
        if (!strcmp(cur[i].node, "me") || cur[i].node[0] == 'x' || cur[i].expires_wall_ms <= 1000) abort();
        for (int j = 0; j < i; j++)
            if (!strcmp(cur[i].e.id, cur[j].e.id)) abort();
    }
    static struct dialog_info_entry ch[2 * DIALOG_NODES_MAX];
    if (dialog_nodes_diff(cur, (size_t)n, cur, (size_t)n, ch, 2 * DIALOG_NODES_MAX) != 0) abort();
    size_t k = dialog_nodes_diff(NULL, 0, cur, (size_t)n, ch, 2 * DIALOG_NODES_MAX);
    if (k != (size_t)n) abort();
    const struct dialog_info_entry *d[2 * DIALOG_NODES_MAX];
    for (size_t i = 0; i < k; i++) d[i] = &ch[i];
    sbuf_t sb;
    sbuf_init(&sb);
    if (dialog_info_build(&sb, 1, false, "sip:a@h", d, k) < 0) abort();
    sbuf_free(&sb);
}

static int answer(const uint8_t *data, size_t size, bool eof, struct api_httpc_response *r)
{
    char err[128];
    return api_httpc_parse((const char *)data, size, eof, false, FUZZ_MAX_BODY, r, err, sizeof(err));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char text[512];
    size_t n = size < sizeof(text) - 1 ? size : sizeof(text) - 1;
    memcpy(text, data, n);
    text[n] = '\0';

    const char *nl = memchr(data, '\n', size);
    if (nl) dialog_record((const char *)data, (size_t)(nl - (const char *)data), nl + 1,
                          size - (size_t)(nl - (const char *)data) - 1);
    dialog_record("b/0123456789abcdef", 18, (const char *)data, size);
    char maor[256], mnode[DIALOG_NODES_NODE_MAX];
    int kind = dialog_nodes_message("t:", (const char *)data, size, maor, sizeof(maor), mnode, sizeof(mnode));
    if (kind != -EINVAL && (kind < DIALOG_NODES_MSG_CHANGED || kind > DIALOG_NODES_MSG_SYNC)) abort();
    if (kind > 0) {
        size_t al = strlen(maor), nl2 = strlen(mnode);
        if ((kind != DIALOG_NODES_MSG_SYNC) != (al > 0) || (kind == DIALOG_NODES_MSG_WATCHED) != (nl2 > 0)) abort();
        for (size_t i = 0; i < al; i++)
            if ((unsigned char)maor[i] <= 0x20 || maor[i] == '{' || maor[i] == '}' || maor[i] == 0x7f) abort();
        if (strchr(mnode, '/') || strchr(mnode, ' ')) abort();
    }

    char route[CLUSTER_ROUTE_MAX], hostport[CLUSTER_HOSTPORT_MAX];
    struct sockaddr_storage ip;
    if (cluster_peer_uri(text, route, sizeof(route), hostport, sizeof(hostport), &ip) == 0) {
        size_t rl = strlen(route);
        const char *tail = ";lr;" CLUSTER_PEER_PARAM ">";
        if (rl < 2 + strlen(tail) || route[0] != '<' || strcmp(route + rl - strlen(tail), tail) != 0) abort();
        for (size_t i = 1; i + 1 < rl; i++)
            if ((unsigned char)route[i] <= 0x20 || route[i] == '<' || route[i] == '>') abort();
        const char *colon = strrchr(hostport, ':');
        if (!colon || colon == hostport || !colon[1] || strpbrk(hostport, " \r\n\t<>")) abort();
    }

    char node[128];
    int64_t expires = 0;
    if (cluster_record_read((const char *)data, size, node, sizeof(node), &expires) == 0) {
        size_t nl = strnlen(node, sizeof(node));
        if (nl == 0 || nl >= sizeof(node)) abort();
    }

    char aor[64];
    int al = cluster_key_aor((const char *)data, size, aor, sizeof(aor));
    if (al >= 0) {
        if (al == 0 || (size_t)al >= sizeof(aor) || strlen(aor) != (size_t)al || strchr(aor, '}')) abort();
    }

    char member[64];
    int ml = cluster_reap_member((const char *)data, size, member, sizeof(member));
    if (ml >= 0) {
        if (ml == 0 || (size_t)ml >= sizeof(member) || strlen(member) != (size_t)ml) abort();
        for (int i = 0; i < ml; i++)
            if ((unsigned char)member[i] <= 0x20 || member[i] == '{' || member[i] == '}' || member[i] == 0x7f) abort();
    }

    char api[CLUSTER_API_MAX];
    struct sockaddr_storage api_addr;
    bool api_tls;
    if (cluster_peer_api((const char *)data, size, api, sizeof(api), &api_addr, &api_tls) == 0) {
        size_t skip = api_tls ? 8 : 0; /* "https://" */
        if (size <= skip || strlen(api) != size - skip || memcmp(api, data + skip, size - skip) ||
            (api_tls && memcmp(data, "https://", 8)) || !strrchr(api, ':') || strchr(api, '/') ||
            (api_addr.ss_family != AF_INET && api_addr.ss_family != AF_INET6))
            abort();
        for (size_t i = 0; i < strlen(api); i++)
            if ((unsigned char)api[i] <= 0x20 || api[i] == 0x7f) abort();
    }

    /* A peer's answer: at once, and cut in two at a point the input picks. */
    struct api_httpc_response whole, part;
    int rw = answer(data, size, false, &whole);
    if (rw == 0) rw = answer(data, size, true, &whole);
    if (rw == 1) {
        if (whole.status < 200 || whole.status > 599 || whole.len > FUZZ_MAX_BODY || !whole.body ||
            whole.body[whole.len] != '\0')
            abort();
        size_t cut = size ? data[0] % size : 0;
        int rp = answer(data, cut, false, &part);
        if (rp == 1) { /* already whole at the cut: the same head, and nothing read past the cut */
            if (part.status != whole.status) abort();
            api_httpc_response_free(&part);
        }
        api_httpc_response_free(&whole);
    } else if (rw != -1 && rw != -2) {
        abort();
    }

    redisReader *rd = redisReaderCreate();
    if (rd) {
        struct redis_reply_budget budget = {0};
        redis_objects_use(rd, &budget); /* as the client reads: arrays capped */
        void *reply = NULL;
        if (redisReaderFeed(rd, (const char *)data, size) == REDIS_OK && redisReaderGetReply(rd, &reply) == REDIS_OK &&
            reply) {
            long long removed = -1, left = -1;
            if (cluster_reap_counts(reply, &removed, &left) == 0 && (removed < 0 || left < 0)) abort();
            int v = cluster_gb_reap_verdict(reply);
            if (v < -1 || v > CLUSTER_GB_KEPT) abort();
            int e = cluster_emit_verdict(reply); /* the announcing scripts' answer (events_stream) */
            if (e < -1 || e > CLUSTER_EMIT_MOVED) abort();
            long long seq = -1;
            if (cluster_stream_answer(reply, &seq) == 0 && seq < 0) abort();
            struct cluster_gb_walk w;
            memset(&w, 0, sizeof(w));
            cluster_gb_walk_reset(&w);
            if (cluster_gb_walk_scan(&w, reply) == 0) {
                size_t cl = strnlen(w.cursor, sizeof(w.cursor));
                if (!cl || cl >= sizeof(w.cursor) || strspn(w.cursor, "0123456789") != cl) abort();
                if (w.n > CLUSTER_GB_SCAN_MAX) abort();
                size_t handed = 0;
                const char *id;
                while ((id = cluster_gb_walk_next(&w))) {
                    size_t il = strnlen(id, CLUSTER_GB_ID_MAX);
                    if (!il || il >= CLUSTER_GB_ID_MAX) abort();
                    for (size_t i = 0; i < il; i++)
                        if ((unsigned char)id[i] <= 0x20 || id[i] == '{' || id[i] == '}' || id[i] == 0x7f) abort();
                    if (++handed > CLUSTER_GB_WINDOW) abort();
                }
                while (handed--) cluster_gb_walk_answered(&w);
                while (cluster_gb_walk_next(&w)) cluster_gb_walk_answered(&w);
                if (!cluster_gb_walk_batch_done(&w)) abort();
            } else if (!cluster_gb_walk_batch_done(&w) || strcmp(w.cursor, "0") != 0) {
                abort(); /* refused: the walk unchanged */
            }
            cluster_gb_walk_reset(&w);
            reg_read(reply);
            dialog_read(reply);
            freeReplyObject(reply);
        }
        redisReaderFree(rd);
    }
    return 0;
}
