/* lower_query.c — MANSCDP requests from an upper platform and our answers
 * (GB/T 28181 §9.5 queries, §9.3 control, §A.2): Catalog, DeviceInfo,
 * DeviceStatus, RecordInfo, DeviceControl; and the catalog Notify we send
 * when a local channel changes (§9.5.2, Notify with Event).
 *
 * The MESSAGE was already answered 200; the answer goes out as new MESSAGEs.
 * A catalog or record list is a "job": a snapshot of the items (owned copies,
 * so the directory may change meanwhile) sent catalog_items per MESSAGE with
 * SumNum the total, at most GB_LOWER_CATALOG_WINDOW MESSAGEs in flight so a
 * 10 000-channel catalog does not flood the upper's socket. Times in
 * MANSCDP are local time without a zone ("2026-11-21T10:00:00"), as devices
 * write them. */
#include "gb/lower/lower_int.h"
#include "gb/lower/lower_dir.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/clock.h"
#include "base/log.h"
#include "gb/codec/ptz.h"
#include "store/store.h"

/* ---- times ---- */

/* "YYYY-MM-DDThh:mm:ss[.sss][Z]" (a space instead of T accepted). */
static int parse_gb_time(const char *s, int64_t *ms)
{
    if (!s) return -1;
    int Y, M, D, h, m, sec, n = 0;
    char sep;
    if (sscanf(s, "%4d-%2d-%2d%c%2d:%2d:%2d%n", &Y, &M, &D, &sep, &h, &m, &sec, &n) != 7 ||
        (sep != 'T' && sep != ' ') || M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
        return -1;
    const char *rest = s + n;
    if (*rest == '.')
        for (rest++; *rest >= '0' && *rest <= '9'; rest++) {}
    struct tm tm = {.tm_year = Y - 1900, .tm_mon = M - 1, .tm_mday = D, .tm_hour = h, .tm_min = m, .tm_sec = sec,
                    .tm_isdst = -1};
    time_t t = (*rest == 'Z') ? timegm(&tm) : mktime(&tm);
    if (t == (time_t)-1) return -1;
    *ms = (int64_t)t * 1000;
    return 0;
}

static void format_gb_time(int64_t ms, char out[24])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (!localtime_r(&t, &tm) || !strftime(out, 24, "%Y-%m-%dT%H:%M:%S", &tm)) out[0] = '\0';
}

/* ---- jobs: lists sent in several MESSAGEs ---- */

void gb_lower_job_free(struct gb_lower_job *j)
{
    for (int i = 0; i < GB_LOWER_CATALOG_WINDOW; i++)
        if (j->h[i]) ua_request_detach(j->h[i]);
    if (j->items) gb_lower_items_free(j->items, j->total);
    if (j->recs) gb_lower_records_free(j->recs, j->total);
    free(j->name);
    free(j);
}

static void job_remove(struct gb_lower *l, struct gb_lower_job *j)
{
    for (struct gb_lower_job **pp = &l->jobs; *pp; pp = &(*pp)->next)
        if (*pp == j) {
            *pp = j->next;
            l->job_count--;
            break;
        }
    gb_lower_job_free(j);
}

void gb_lower_jobs_drop(struct gb_lower *l, struct gb_upstream *up)
{
    gb_lower_dir_drop(l, up);
    struct gb_lower_job **pp = &l->jobs;
    while (*pp) {
        struct gb_lower_job *j = *pp;
        if (up && j->up != up) {
            pp = &j->next;
            continue;
        }
        *pp = j->next;
        l->job_count--;
        gb_lower_job_free(j);
    }
}

static void job_pump(struct gb_lower_job *j);

static void job_msg_final(void *arg, struct ua_uac *h, int status, const struct sip_msg *resp,
                          const struct transport_rx *rx, struct ua_dialog *dlg)
{
    (void)resp;
    (void)rx;
    (void)dlg;
    struct gb_lower_job *j = arg;
    for (int i = 0; i < GB_LOWER_CATALOG_WINDOW; i++)
        if (j->h[i] == h) j->h[i] = NULL;
    j->inflight--;
    if (j->notify && status == 481) gb_lower_sub_gone(&j->up->subs[GB_UP_SUB_CATALOG], resp);
    if (status < 200 || status >= 300)
        log_warn("gb lower: %s answer part to upstream %s (SN %u) got %d", j->records ? "RecordInfo" : "Catalog",
                 j->up->cfg.id, j->sn, status);
    job_pump(j);
}

static const struct ua_uac_cb job_cb = {.on_final = job_msg_final};

/* Sends MESSAGEs until the window is full or everything went; frees the job
 * when the last answer came. */
static void job_pump(struct gb_lower_job *j)
{
    struct gb_lower *l = j->l;
    while (j->inflight < GB_LOWER_CATALOG_WINDOW &&
           (j->next_item < j->total || (j->total == 0 && j->next_item == 0 && !j->notify))) {
        size_t n = j->total - j->next_item;
        if (n > j->per_msg) n = j->per_msg;
        sbuf_t body;
        sbuf_init(&body);
        int rc;
        if (j->records)
            rc = gb_manscdp_build_record_response(&body, j->up->charset, j->sn, j->device_id, j->name, j->recs,
                                                  j->total, j->next_item, n);
        else if (j->notify) /* each Notify is a message of its own: own SN, SumNum its items */
            rc = gb_manscdp_build_catalog_notify(&body, j->up->charset, ++l->sn, j->device_id,
                                                 j->items + j->next_item, n);
        else
            rc = gb_manscdp_build_catalog_response(&body, j->up->charset, j->sn, j->device_id, j->items, j->total,
                                                   j->next_item, n);
        if (j->total == 0) j->next_item = 1; /* the one empty answer */
        else j->next_item += n;
        if (rc != 0) {
            log_error("gb lower: answer to upstream %s could not be built: %s", j->up->cfg.id,
                      gb_manscdp_strerror(rc));
            sbuf_free(&body);
            continue;
        }
        int slot = 0;
        while (j->h[slot]) slot++;
        /* Within the upstream's catalog subscription when it holds one (§9.11). */
        struct gb_up_sub *sub = j->notify ? gb_lower_catalog_sub(j->up) : NULL;
        struct ua_uac *h = sub ? gb_lower_send_notify(l, j->up, sub, &body, &job_cb, j)
                               : gb_lower_send_manscdp(l, j->up, &body, &job_cb, j);
        sbuf_free(&body);
        if (!h) continue;
        if (j->notify) l->stats.notifies_sent++;
        j->h[slot] = h;
        j->inflight++;
    }
    if (j->inflight == 0) job_remove(l, j);
}

static struct gb_lower_job *job_new(struct gb_lower *l, struct gb_upstream *up, const gb_manscdp_t *m)
{
    if (l->job_count >= GB_LOWER_MAX_JOBS) {
        log_warn("gb lower: %u answers already being sent; %s query SN %u from upstream %s dropped", l->job_count,
                 m->cmd_type ? m->cmd_type : "?", m->sn, up->cfg.id);
        return NULL;
    }
    struct gb_lower_job *j = calloc(1, sizeof(*j));
    if (!j) return NULL;
    j->l = l;
    j->up = up;
    j->sn = m->sn;
    snprintf(j->device_id, sizeof(j->device_id), "%s", m->device_id ? m->device_id : l->id);
    j->per_msg = (size_t)up->cfg.catalog_items;
    return j;
}

void gb_lower_job_run(struct gb_lower *l, struct gb_lower_job *j)
{
    j->next = l->jobs;
    l->jobs = j;
    l->job_count++;
    job_pump(j);
}

/* ---- Catalog ---- */

static void answer_catalog(struct gb_lower *l, struct gb_upstream *up, const gb_manscdp_t *m)
{
    struct gb_lower_job *j = job_new(l, up, m);
    if (!j) return;
    size_t cap = 0;
    int rc = 0;
    /* Across nodes (issue 16): the other nodes' devices too, or the device
     * named when it is not here (lower_nodes.c: the answer waits for them). */
    const char *across = NULL;
    if (!strcmp(j->device_id, l->id)) {
        rc = gb_lower_local_items(l, &j->items, &j->total, &cap);
        if (rc == 0 && l->upper) rc = gb_relay_catalog(l, NULL, &j->items, &j->total, &cap);
        if (rc == 0 && gb_relay_across_nodes(l)) across = "";
    } else if (l->upper && gb_relay_knows(l, str_from_cstr(j->device_id))) {
        rc = gb_relay_catalog(l, j->device_id, &j->items, &j->total, &cap);
    } else if (gb_relay_across_nodes(l) && gb_id_valid(str_from_cstr(j->device_id)) &&
               !gb_lchan_find(l, str_from_cstr(j->device_id))) {
        across = j->device_id;
    } else {
        log_info("gb lower: Catalog query from upstream %s for unknown id %s: empty answer", up->cfg.id,
                 j->device_id);
    }
    if (rc != 0) {
        log_error("gb lower: no memory for a catalog answer");
        gb_lower_job_free(j);
        return;
    }
    if (across) {
        rc = gb_lower_dir_fanout(l, j, cap, *across ? across : NULL);
        if (rc == 0) return;
        if (rc == -EBUSY) { /* dropped, as when the jobs are full: a partial directory would read as losses */
            log_warn("gb lower: %d catalog answers already wait for the other nodes; Catalog SN %u from upstream %s "
                     "dropped",
                     GB_DIR_MAX_FANS, m->sn, up->cfg.id);
            gb_lower_job_free(j);
            return;
        }
    }
    if (across && *across)
        log_info("gb lower: Catalog query from upstream %s for %s, on no other live node: empty answer", up->cfg.id,
                 j->device_id);
    log_info("gb lower: Catalog SN %u from upstream %s: %zu item(s), %zu per MESSAGE", m->sn, up->cfg.id, j->total,
             j->per_msg);
    gb_lower_job_run(l, j);
}

/* ---- RecordInfo ---- */

void gb_lower_records_free(gb_record_item_t *recs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        gb_record_item_t *r = &recs[i];
        free(r->device_id), free(r->name), free(r->file_path), free(r->address);
        free(r->start_time), free(r->end_time), free(r->type), free(r->recorder_id);
    }
    free(recs);
}

/* The query's Type ("" / "all": every type) lets a record of type through. */
static bool record_type_matches(const char *want, const char *type)
{
    return !want || !*want || !strcasecmp(want, "all") || (type && !strcasecmp(want, type));
}

static char *dup_s(const char *s) { return strdup(s ? s : ""); }

/* Appends one record (strings copied). 1 when the list is full, -ENOMEM. */
static int record_push(gb_record_item_t **recs, size_t *n, size_t *cap, const gb_record_item_t *src)
{
    if (*n == GB_LOWER_MAX_RECORDS) return 1;
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 32;
        gb_record_item_t *nr = realloc(*recs, nc * sizeof(*nr));
        if (!nr) return -ENOMEM;
        *recs = nr;
        *cap = nc;
    }
    gb_record_item_t *r = &(*recs)[(*n)++];
    memset(r, 0, sizeof(*r));
    r->device_id = dup_s(src->device_id);
    r->name = dup_s(src->name);
    r->file_path = dup_s(src->file_path);
    r->address = dup_s(src->address);
    r->start_time = dup_s(src->start_time);
    r->end_time = dup_s(src->end_time);
    r->type = dup_s(src->type);
    r->secrecy = src->secrecy;
    r->file_size = src->file_size;
    if (!r->device_id || !r->name || !r->file_path || !r->address || !r->start_time || !r->end_time || !r->type)
        return -ENOMEM;
    return 0;
}

struct rec_ctx {
    struct gb_lower_job *j;
    size_t cap;
    const char *type;
    int err;
};

static int record_row(void *arg, const struct store_gb_record *row)
{
    struct rec_ctx *c = arg;
    if (!record_type_matches(c->type, row->type)) return 0;
    char st[24], en[24];
    format_gb_time(row->start, st);
    format_gb_time(row->end, en);
    /* record_push only reads the item: the casts do not let anything write the row. */
    gb_record_item_t r = {.device_id = (char *)row->channel_id, .name = (char *)row->name,
                          .file_path = (char *)row->file_path, .address = (char *)"", .start_time = st,
                          .end_time = en, .type = (char *)row->type,
                          .secrecy = row->secrecy, .file_size = row->size > 0 ? row->size : -1};
    int rc = record_push(&c->j->recs, &c->j->total, &c->cap, &r);
    if (rc < 0) c->err = rc;
    return rc != 0;
}

static char *answer_str(const json_t *o, const char *key) { return (char *)json_string_value(json_object_get(o, key)); }

int gb_lower_records_from_json(const json_t *answer, const char *type, gb_record_item_t **recs, size_t *n,
                               size_t *cap)
{
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(answer, "records"), i, o) {
        if (!record_type_matches(type, answer_str(o, "type"))) continue;
        json_t *size = json_object_get(o, "file_size");
        gb_record_item_t r = {.device_id = answer_str(o, "device_id"), .name = answer_str(o, "name"),
                              .file_path = answer_str(o, "file_path"), .address = (char *)"",
                              .start_time = answer_str(o, "start"), .end_time = answer_str(o, "end"),
                              .type = answer_str(o, "type"), .secrecy = 0,
                              .file_size = json_is_integer(size) ? json_integer_value(size) : -1};
        int rc = record_push(recs, n, cap, &r);
        if (rc) return rc < 0 ? rc : 0;
    }
    return 0;
}

/* The records job's time range, or -1 (logged: no answer, GB/T 28181 has no
 * error form for a malformed query). */
static int record_range(struct gb_upstream *up, const gb_manscdp_t *m, int64_t *start, int64_t *end)
{
    const gb_record_query_t *q = &m->record_query;
    if (m->device_id && parse_gb_time(q->start_time, start) == 0 && parse_gb_time(q->end_time, end) == 0 &&
        *end >= *start)
        return 0;
    log_warn("gb lower: RecordInfo SN %u from upstream %s: bad channel or time range (%s .. %s)", m->sn, up->cfg.id,
             q->start_time ? q->start_time : "-", q->end_time ? q->end_time : "-");
    return -1;
}

/* A device of the upper role (or one of its channels), not one of ours nor
 * us: the device answers through lower_relay.c. 1 when relayed. */
static bool asked_of_device(struct gb_lower *l, struct gb_upstream *up, const gb_manscdp_t *m)
{
    if (!l->upper || !m->device_id || !strcmp(m->device_id, l->id)) return false;
    if (gb_lchan_find(l, str_from_cstr(m->device_id))) return false;
    return gb_relay_query(l, up, m) == 0;
}

static void answer_records(struct gb_lower *l, struct gb_upstream *up, const gb_manscdp_t *m)
{
    int64_t start, end;
    if (record_range(up, m, &start, &end) != 0 || asked_of_device(l, up, m)) return;
    struct gb_lower_job *j = job_new(l, up, m);
    if (!j) return;
    j->records = true;
    struct gb_lchan *c = gb_lchan_find(l, str_from_cstr(m->device_id));
    j->name = strdup(c ? c->name : m->device_id);
    struct rec_ctx ctx = {.j = j, .type = m->record_query.type};
    if (l->store) {
        int rc = store_load_gb_records(l->store, m->device_id, start, end, record_row, &ctx);
        if (rc < 0) log_warn("gb lower: RecordInfo: store read failed (%d); answering what was read", rc);
    }
    if (ctx.err || !j->name) {
        log_error("gb lower: no memory for a RecordInfo answer");
        gb_lower_job_free(j);
        return;
    }
    log_info("gb lower: RecordInfo SN %u from upstream %s for %s: %zu record(s)", m->sn, up->cfg.id, m->device_id,
             j->total);
    gb_lower_job_run(l, j);
}

/* ---- DeviceInfo / DeviceStatus ---- */

static void send_body(struct gb_lower *l, struct gb_upstream *up, sbuf_t *body, int rc, const char *what)
{
    if (rc != 0) log_error("gb lower: %s answer not built: %s", what, gb_manscdp_strerror(rc));
    else if (!gb_lower_send_manscdp(l, up, body, NULL, NULL))
        log_warn("gb lower: %s answer to upstream %s not sent", what, up->cfg.id);
    sbuf_free(body);
}

int gb_lower_relayed_body(sbuf_t *out, gb_charset_t cs, const struct gb_relay_ask *ask, int status,
                          const json_t *answer)
{
    bool ok = status == 200 && json_is_object(answer);
    const char *result = !ok ? "ERROR" : answer_str(answer, "result") ? answer_str(answer, "result") : "OK";
    if (ask->cmd == GB_CMD_DEVICE_INFO) {
        gb_device_info_t info = {.channel = -1};
        if (ok) {
            json_t *ch = json_object_get(answer, "channel");
            info.device_name = answer_str(answer, "device_name");
            info.manufacturer = answer_str(answer, "manufacturer");
            info.model = answer_str(answer, "model");
            info.firmware = answer_str(answer, "firmware");
            if (json_is_integer(ch)) info.channel = (int)json_integer_value(ch);
        }
        return gb_manscdp_build_device_info_response(out, cs, ask->sn, ask->id, result, &info);
    }
    /* Unreachable or silent: the device is offline as far as we can tell. */
    gb_device_status_t st = {.online = (char *)"OFFLINE"};
    gb_alarm_status_t alarms[32];
    if (ok) {
        st.online = answer_str(answer, "online");
        st.encode = answer_str(answer, "encode");
        st.record = answer_str(answer, "record");
        st.device_time = answer_str(answer, "device_time");
        size_t i;
        json_t *a;
        json_array_foreach(json_object_get(answer, "alarms"), i, a) {
            if (st.alarm_count == sizeof(alarms) / sizeof(alarms[0])) break;
            alarms[st.alarm_count++] = (gb_alarm_status_t){answer_str(a, "device_id"), answer_str(a, "duty_status")};
        }
        st.alarms = alarms;
        st.has_alarm_list = st.alarm_count > 0;
    }
    const char *dev_status = !ok ? "ERROR" : answer_str(answer, "status") ? answer_str(answer, "status") : "OK";
    return gb_manscdp_build_device_status_response(out, cs, ask->sn, ask->id, result, dev_status, &st);
}

void gb_lower_answer_relayed(struct gb_lower *l, struct gb_upstream *up, const struct gb_relay_ask *ask, int status,
                             const json_t *answer)
{
    if (ask->cmd != GB_CMD_RECORD_INFO) {
        sbuf_t body;
        sbuf_init(&body);
        int rc = gb_lower_relayed_body(&body, up->charset, ask, status, answer);
        send_body(l, up, &body, rc, gb_cmd_name(ask->cmd));
        return;
    }
    gb_manscdp_t m = {.cmd = ask->cmd, .cmd_type = (char *)"RecordInfo", .sn = ask->sn, .device_id = (char *)ask->id};
    struct gb_lower_job *j = job_new(l, up, &m);
    if (!j) return;
    j->records = true;
    j->name = strdup(ask->name ? ask->name : ask->id);
    size_t cap = 0;
    int rc = status == 200 ? gb_lower_records_from_json(answer, ask->type, &j->recs, &j->total, &cap) : 0;
    if (rc != 0 || !j->name) {
        log_error("gb lower: no memory for a relayed RecordInfo answer");
        gb_lower_job_free(j);
        return;
    }
    gb_lower_job_run(l, j);
}

static void answer_info(struct gb_lower *l, struct gb_upstream *up, const gb_manscdp_t *m)
{
    if (asked_of_device(l, up, m)) return;
    const char *id = m->device_id ? m->device_id : l->id;
    struct gb_lchan *c = gb_lchan_find(l, str_from_cstr(id));
    gb_device_info_t info = {.device_name = (char *)"cascade", .manufacturer = (char *)"cascade",
                             .model = (char *)"cascade-lower", .firmware = (char *)"1.0", .channel = -1};
    if (c) {
        info.device_name = c->name;
        info.manufacturer = c->manufacturer;
        info.model = c->model;
        info.channel = 1;
    } else {
        info.channel = (int)(htable_count(&l->chans) + (l->upper ? gb_relay_channel_count(l) : 0));
    }
    sbuf_t body;
    sbuf_init(&body);
    int rc = gb_manscdp_build_device_info_response(&body, up->charset, m->sn, id, "OK", &info);
    send_body(l, up, &body, rc, "DeviceInfo");
}

static void answer_status(struct gb_lower *l, struct gb_upstream *up, const gb_manscdp_t *m)
{
    if (asked_of_device(l, up, m)) return;
    const char *id = m->device_id ? m->device_id : l->id;
    struct gb_lchan *c = gb_lchan_find(l, str_from_cstr(id));
    char now[24];
    format_gb_time(clock_wall_ms(), now);
    bool on = !c || strcmp(c->status, "OFF");
    gb_device_status_t st = {.online = on ? (char *)"ONLINE" : (char *)"OFFLINE", .encode = (char *)"ON",
                             .record = (char *)"OFF", .device_time = now};
    sbuf_t body;
    sbuf_init(&body);
    int rc = gb_manscdp_build_device_status_response(&body, up->charset, m->sn, id, "OK", on ? "OK" : "ERROR", &st);
    send_body(l, up, &body, rc, "DeviceStatus");
}

/* ---- DeviceControl ---- */

static void answer_control(struct gb_lower *l, struct gb_upstream *up, const gb_manscdp_t *m)
{
    l->stats.controls++;
    const gb_device_control_t *ctl = &m->control;
    str_t target = str_from_cstr(m->device_id);
    struct gb_lchan *c = gb_lchan_find(l, target);
    if (!c && l->upper && !str_eq_cstr(target, l->id) && (gb_relay_knows(l, target) || gb_relay_across_nodes(l))) {
        if (gb_relay_control(l, up, m) != 0) log_warn("gb lower: DeviceControl for %s could not be relayed", m->device_id);
        return;
    }
    if (!c && !str_eq_cstr(target, l->id)) {
        log_info("gb lower: DeviceControl from upstream %s for unknown id %s ignored", up->cfg.id,
                 m->device_id ? m->device_id : "-");
        return;
    }
    if (ctl->ptz_cmd) {
        gb_ptz_t p;
        if (gb_ptz_parse(ctl->ptz_cmd, strlen(ctl->ptz_cmd), &p) != 0) {
            log_warn("gb lower: bad PTZCmd '%s' from upstream %s for %s", ctl->ptz_cmd, up->cfg.id, m->device_id);
            return;
        }
        const char *name = gb_ptz_command_name(p.command);
        log_info("gb lower: PTZ %s (pan %u tilt %u zoom %u) on %s from upstream %s", name ? name : "other",
                 p.pan_speed, p.tilt_speed, p.zoom_speed, m->device_id, up->cfg.id);
        if (c) {
            snprintf(c->last_ptz, sizeof(c->last_ptz), "%s", ctl->ptz_cmd);
            c->controls++;
        }
        return; /* PTZ has no Response (GB/T 28181 §A.2.3.1.2) */
    }
    const char *what = ctl->tele_boot ? ctl->tele_boot
                       : ctl->record_cmd ? ctl->record_cmd
                       : ctl->guard_cmd ? ctl->guard_cmd
                       : ctl->alarm_cmd ? ctl->alarm_cmd : "unknown";
    log_info("gb lower: DeviceControl %s on %s from upstream %s", what, m->device_id, up->cfg.id);
    if (c) c->controls++;
    sbuf_t body;
    sbuf_init(&body);
    int rc = gb_manscdp_build_control_response(&body, up->charset, m->sn, m->device_id, "OK");
    send_body(l, up, &body, rc, "DeviceControl");
}

void gb_lower_on_manscdp(struct gb_lower *l, struct gb_upstream *up, const gb_manscdp_t *m)
{
    if (m->kind == GB_MSG_QUERY) {
        l->stats.queries++;
        switch (m->cmd) {
        case GB_CMD_CATALOG: answer_catalog(l, up, m); return;
        case GB_CMD_DEVICE_INFO: answer_info(l, up, m); return;
        case GB_CMD_DEVICE_STATUS: answer_status(l, up, m); return;
        case GB_CMD_RECORD_INFO: answer_records(l, up, m); return;
        default: break;
        }
    } else if (m->kind == GB_MSG_CONTROL && m->cmd == GB_CMD_DEVICE_CONTROL) {
        answer_control(l, up, m);
        return;
    }
    log_info("gb lower: %s/%s from upstream %s not handled", gb_msg_kind_name(m->kind) ? gb_msg_kind_name(m->kind) : "?",
             m->cmd_type ? m->cmd_type : "?", up->cfg.id);
}

/* ---- catalog Notify ---- */

bool gb_lower_notify_busy(const struct gb_lower *l)
{
    for (const struct gb_lower_job *j = l->jobs; j; j = j->next)
        if (j->notify) return true;
    return false;
}

void gb_lower_notify_items(struct gb_lower *l, const gb_catalog_item_t *items, size_t n)
{
    if (!n) return;
    for (int i = 0; i < l->up_count; i++) {
        struct gb_upstream *up = &l->ups[i];
        if (up->state != GB_UP_REGISTERED || !gb_lower_catalog_wanted(up)) continue;
        if (l->job_count >= GB_LOWER_MAX_JOBS) {
            log_warn("gb lower: %u answers being sent; catalog Notify to upstream %s dropped", l->job_count,
                     up->cfg.id);
            continue;
        }
        struct gb_lower_job *j = calloc(1, sizeof(*j));
        if (!j) return;
        j->l = l;
        j->up = up;
        j->notify = true;
        snprintf(j->device_id, sizeof(j->device_id), "%s", l->id);
        j->per_msg = (size_t)up->cfg.catalog_items;
        size_t cap = 0;
        for (size_t k = 0; k < n; k++)
            if (gb_lower_items_push(&j->items, &j->total, &cap, &items[k]) != 0) {
                log_error("gb lower: no memory for a catalog Notify");
                gb_lower_job_free(j);
                return;
            }
        gb_lower_job_run(l, j);
    }
}

void gb_lower_notify_channel(struct gb_lower *l, const struct gb_lchan *c, gb_catalog_event_t ev)
{
    gb_catalog_item_t it;
    gb_catalog_item_init(&it);
    it.device_id = (char *)c->id;
    it.event = ev;
    if (ev != GB_EVENT_DEL) {
        it.name = c->name;
        it.manufacturer = c->manufacturer;
        it.model = c->model;
        it.owner = (char *)"Owner";
        it.civil_code = c->civil_code[0] ? c->civil_code : l->domain;
        it.address = c->address[0] ? c->address : (char *)"Address";
        it.parental = 0;
        it.parent_id = c->parent_id[0] ? c->parent_id : l->id;
        it.safety_way = 0;
        it.register_way = 1;
        it.secrecy = 0;
        it.status = strcmp(c->status, "OFF") ? GB_ONOFF_ON : GB_ONOFF_OFF;
    }
    gb_lower_notify_items(l, &it, 1);
}
