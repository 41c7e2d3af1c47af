/* dispatch.c — the core's request dispatch and its own answers.
 *
 * A new server transaction is offered to each enabled role in turn; the first
 * that returns 1 owns it. What no role takes is answered here, as a UAS core
 * would (RFC 3261 §8.2): OPTIONS -> 200 with our capabilities, a Require we do
 * not support -> 420, CANCEL -> 200 + 487 on the INVITE (or 481), in-dialog
 * requests nobody knows -> 481, unknown methods -> 501, known ones -> 405. */
#include <string.h>

#include "app/worker.h"
#include "base/log.h"
#include "txn/txn.h"

#define ACCEPT_VALUE "application/sdp, application/MANSCDP+xml"
#define SUPPORTED_VALUE "path, outbound"

static const char *allow_value(const struct worker *w)
{
    (void)w;
    return "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, MESSAGE, INFO, NOTIFY, SUBSCRIBE, UPDATE, PRACK, REFER";
}

int dispatch_start_roles(struct worker *w)
{
    (void)w;
    return 0;
}

void dispatch_stop_roles(struct worker *w) { (void)w; }

void dispatch_free_roles(struct worker *w) { (void)w; }

void worker_reply_stateless(struct worker *w, const struct transport_rx *rx, int status, const char *reason)
{
    if (!w->transport) return;
    struct transport_dest dest;
    if (transport_response_dest(rx, &dest) < 0) return;
    char tag[17];
    worker_new_tag(w, tag);
    sbuf_t out;
    sbuf_init(&out);
    char server[96];
    snprintf(server, sizeof(server), "Server: %s", w->cfg.sip.user_agent);
    str_t extra[] = {str_from_cstr(server)};
    if (sip_build_response(rx->msg, status, reason, str_from_cstr(tag), extra, 1, STR_NULL, STR_NULL, &out) == 0 &&
        !out.failed) {
        log_warn("%d %s to %s %s", status, reason, transport_name(rx->proto), rx->src_text);
        worker_count_response_out(w, out.data, out.len);
        transport_send(w->transport, &dest, out.data, out.len);
    }
    sbuf_free(&out);
}

/* Answers st with our tag and a Server header plus extra lines. */
static void reply(struct worker *w, struct txn *st, int status, const char *reason, const str_t *extra, size_t n)
{
    char tag[17];
    worker_new_tag(w, tag);
    str_t lines[8];
    size_t k = 0;
    char server[96];
    snprintf(server, sizeof(server), "Server: %s", w->cfg.sip.user_agent);
    lines[k++] = str_from_cstr(server);
    for (size_t i = 0; i < n && k < 8; i++) lines[k++] = extra[i];
    const struct sip_msg *req = txn_request(st);
    str_t to_tag = (req && req->to.tag.len) ? STR_NULL : str_from_cstr(tag);
    int rc = txn_respond(st, status, reason, to_tag, lines, k, STR_NULL, STR_NULL);
    if (rc < 0) log_warn("cannot answer %d: %s", status, strerror(-rc));
}

/* RFC 3261 §8.2.2.3: option tags in Require that we do not support. */
static bool unsupported_require(const struct sip_msg *m, char *buf, size_t cap)
{
    struct sip_list_iter it;
    str_t item;
    size_t used = 0;
    buf[0] = '\0';
    sip_list_iter_init(&it, m, SIP_HDR_REQUIRE);
    while (sip_list_iter_next(&it, &item)) {
        if (str_ieq_cstr(item, "path") || str_ieq_cstr(item, "outbound")) continue;
        int n = snprintf(buf + used, cap - used, "%s%.*s", used ? ", " : "", STR_FMT(item));
        if (n < 0 || (size_t)n >= cap - used) break;
        used += (size_t)n;
    }
    return used > 0;
}

static void core_answer(struct worker *w, struct txn *st, const struct transport_rx *rx)
{
    const struct sip_msg *m = rx->msg;
    char allow[256];
    snprintf(allow, sizeof(allow), "Allow: %s", allow_value(w));

    if (m->method == SIP_CANCEL) {
        struct txn *inv = txn_find_invite_for_cancel(w->txn, rx);
        if (!inv) {
            reply(w, st, 481, "Call/Transaction Does Not Exist", NULL, 0);
            return;
        }
        reply(w, st, 200, "OK", NULL, 0);
        if (txn_last_status(inv) < 200) reply(w, inv, 487, "Request Terminated", NULL, 0);
        return;
    }
    char unsupported[256];
    if (m->method != SIP_ACK && unsupported_require(m, unsupported, sizeof(unsupported))) {
        char line[300];
        snprintf(line, sizeof(line), "Unsupported: %s", unsupported);
        str_t extra[] = {str_from_cstr(line)};
        reply(w, st, 420, "Bad Extension", extra, 1);
        return;
    }
    if (m->method == SIP_OPTIONS) {
        str_t extra[] = {str_from_cstr(allow), STR_LIT("Accept: " ACCEPT_VALUE),
                         STR_LIT("Accept-Language: en"), STR_LIT("Supported: " SUPPORTED_VALUE)};
        reply(w, st, 200, "OK", extra, 4);
        return;
    }
    if (m->to.tag.len) {
        reply(w, st, 481, "Call/Transaction Does Not Exist", NULL, 0);
        return;
    }
    if (m->method == SIP_METHOD_UNKNOWN) {
        str_t extra[] = {str_from_cstr(allow)};
        reply(w, st, 501, "Not Implemented", extra, 1);
        return;
    }
    str_t extra[] = {str_from_cstr(allow)};
    reply(w, st, 405, "Method Not Allowed", extra, 1);
}

void dispatch_request(struct worker *w, struct txn *st, const struct transport_rx *rx)
{
    core_answer(w, st, rx);
}

void dispatch_ack(struct worker *w, const struct transport_rx *rx)
{
    (void)w;
    (void)rx;
}

void dispatch_stray_response(struct worker *w, const struct transport_rx *rx)
{
    (void)w;
    log_debug("stray %d response from %s dropped", rx->msg->status, rx->src_text);
}

void dispatch_conn_lost(struct worker *w, uint64_t conn_id, const char *peer_text)
{
    (void)w;
    (void)conn_id;
    (void)peer_text;
}

void dispatch_stats(struct worker *w, json_t *stats) { (void)w; (void)stats; }
