/* webhook.c — the webhook sink (see webhook.h): a bounded FIFO filled by the
 * loop thread, drained by one worker thread that POSTs each event until it is
 * answered with 2xx. A pipe wakes the worker out of a POST or a backoff sleep
 * when the webhook is freed. */
#include "events/webhook.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "events/httpc.h"
#include "base/clock.h"
#include "base/log.h"

struct wh_item {
    struct wh_item *next;
    uint64_t seq;
    size_t len;
    char json[];
};

struct api_webhook {
    struct api_url url;
    char url_text[1100];
    struct api_webhook_options opt;

    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int wake[2];               /* written once by free(): cancels a POST in flight */
    bool stop;

    struct wh_item *head, *tail;   /* waiting events, oldest first */
    size_t count;
    bool in_flight;                /* the worker holds one popped event */

    uint64_t delivered, failed_attempts, dropped;
    event_webhook_done_cb done;    /* NULL: nobody to tell */
    void *done_arg;
};

/* Sleeps up to ms unless stop is set meanwhile. Called with mu held. */
static void sleep_unless_stopped(struct api_webhook *wh, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    while (!wh->stop)
        if (pthread_cond_timedwait(&wh->cond, &wh->mu, &ts) == ETIMEDOUT) break;
}

/* One POST. 0 when answered 2xx. */
static int post_once(struct api_webhook *wh, const struct wh_item *it, unsigned attempt)
{
    char err[256];
    struct api_httpc_response resp;
    if (api_httpc_request(&wh->url, "POST", wh->url.path, NULL, "application/json", it->json, it->len,
                          wh->opt.timeout_ms, wh->wake[0], &resp, err, sizeof(err))) {
        log_warn("webhook: event %llu attempt %u to %s failed: %s", (unsigned long long)it->seq, attempt,
                 wh->url_text, err);
        return -1;
    }
    int status = resp.status;
    api_httpc_response_free(&resp);
    if (status >= 200 && status < 300) return 0;
    log_warn("webhook: event %llu attempt %u to %s answered %d", (unsigned long long)it->seq, attempt,
             wh->url_text, status);
    return -1;
}

static void *worker_main(void *arg)
{
    struct api_webhook *wh = arg;
    unsigned seed = (unsigned)clock_monotonic_ms() ^ (unsigned)getpid();
    pthread_mutex_lock(&wh->mu);
    for (;;) {
        while (!wh->stop && !wh->head) pthread_cond_wait(&wh->cond, &wh->mu);
        if (wh->stop) break;
        struct wh_item *it = wh->head;
        wh->head = it->next;
        if (!wh->head) wh->tail = NULL;
        wh->count--;
        wh->in_flight = true;
        unsigned attempt = 1;
        int backoff = wh->opt.backoff_initial_ms;
        bool ok = false;
        for (;;) {
            pthread_mutex_unlock(&wh->mu);
            int rc = post_once(wh, it, attempt);
            pthread_mutex_lock(&wh->mu);
            if (rc == 0) {
                wh->delivered++;
                if (attempt > 1)
                    log_info("webhook: event %llu delivered after %u attempts", (unsigned long long)it->seq,
                             attempt);
                if (wh->done) wh->done(it->seq, 1, wh->done_arg);
                ok = true;
                break;
            }
            wh->failed_attempts++;
            if (wh->stop) break;
            /* Equal jitter: sleep in [backoff/2, backoff]. */
            int half = backoff / 2;
            int delay = half + (half > 0 ? (int)(rand_r(&seed) % (unsigned)(half + 1)) : 0);
            sleep_unless_stopped(wh, delay);
            if (wh->stop) break;
            backoff = backoff > wh->opt.backoff_max_ms / 2 ? wh->opt.backoff_max_ms : backoff * 2;
            attempt++;
        }
        wh->in_flight = false;
        if (wh->stop) {
            if (!ok) {
                log_warn("webhook: event %llu not delivered (shutting down)", (unsigned long long)it->seq);
                if (wh->done) wh->done(it->seq, 0, wh->done_arg);
            }
            free(it);
            break;
        }
        free(it);
    }
    pthread_mutex_unlock(&wh->mu);
    return NULL;
}

struct api_webhook *api_webhook_new(const char *url, const struct api_webhook_options *opts, char *err,
                                    size_t errcap)
{
    struct api_webhook *wh = calloc(1, sizeof(*wh));
    if (!wh) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    if (api_url_parse(url, &wh->url, err, errcap)) {
        free(wh);
        return NULL;
    }
    snprintf(wh->url_text, sizeof(wh->url_text), "%s", url);
    if (opts) wh->opt = *opts;
    if (!wh->opt.queue_max) wh->opt.queue_max = 10000;
    if (wh->opt.backoff_initial_ms <= 0) wh->opt.backoff_initial_ms = 500;
    if (wh->opt.backoff_max_ms <= 0) wh->opt.backoff_max_ms = 30000;
    if (wh->opt.backoff_max_ms < wh->opt.backoff_initial_ms) wh->opt.backoff_max_ms = wh->opt.backoff_initial_ms;
    if (wh->opt.timeout_ms <= 0) wh->opt.timeout_ms = 10000;
    if (pipe2(wh->wake, O_CLOEXEC | O_NONBLOCK)) {
        snprintf(err, errcap, "pipe: %s", strerror(errno));
        free(wh);
        return NULL;
    }
    pthread_mutex_init(&wh->mu, NULL);
    pthread_cond_init(&wh->cond, NULL);
    int rc = pthread_create(&wh->thread, NULL, worker_main, wh);
    if (rc) {
        snprintf(err, errcap, "cannot start the webhook thread: %s", strerror(rc));
        close(wh->wake[0]);
        close(wh->wake[1]);
        pthread_mutex_destroy(&wh->mu);
        pthread_cond_destroy(&wh->cond);
        free(wh);
        return NULL;
    }
    return wh;
}

void api_webhook_free(struct api_webhook *wh)
{
    if (!wh) return;
    pthread_mutex_lock(&wh->mu);
    wh->stop = true;
    pthread_cond_broadcast(&wh->cond);
    pthread_mutex_unlock(&wh->mu);
    ssize_t w = write(wh->wake[1], "x", 1);     /* interrupts a POST in flight */
    (void)w;
    pthread_join(wh->thread, NULL);
    size_t left = 0;
    for (struct wh_item *it = wh->head, *next; it; it = next) {
        next = it->next;
        if (wh->done) wh->done(it->seq, 0, wh->done_arg);
        free(it);
        left++;
    }
    if (left) log_warn("webhook: %zu queued events not delivered (shutting down)", left);
    close(wh->wake[0]);
    close(wh->wake[1]);
    pthread_mutex_destroy(&wh->mu);
    pthread_cond_destroy(&wh->cond);
    free(wh);
}

int api_webhook_push(struct api_webhook *wh, uint64_t seq, const char *json, size_t len)
{
    struct wh_item *it = malloc(sizeof(*it) + len + 1);
    if (!it) {
        log_error("webhook: out of memory, event %llu not queued", (unsigned long long)seq);
        return -1;
    }
    it->next = NULL;
    it->seq = seq;
    it->len = len;
    memcpy(it->json, json, len);
    it->json[len] = '\0';
    struct wh_item *dropped = NULL;
    pthread_mutex_lock(&wh->mu);
    if (wh->count >= wh->opt.queue_max && wh->head) {
        dropped = wh->head;
        wh->head = dropped->next;
        if (!wh->head) wh->tail = NULL;
        wh->count--;
        wh->dropped++;
        if (wh->done) wh->done(dropped->seq, 0, wh->done_arg);
    }
    if (wh->tail) wh->tail->next = it;
    else wh->head = it;
    wh->tail = it;
    wh->count++;
    pthread_cond_signal(&wh->cond);
    pthread_mutex_unlock(&wh->mu);
    if (dropped) {
        log_warn("webhook: queue full (%zu), dropped event %llu", wh->opt.queue_max,
                 (unsigned long long)dropped->seq);
        free(dropped);
    }
    return 0;
}

void api_webhook_stats(struct api_webhook *wh, struct event_webhook_stats *out)
{
    pthread_mutex_lock(&wh->mu);
    out->enabled = 1;
    out->delivered = wh->delivered;
    out->failed_attempts = wh->failed_attempts;
    out->dropped = wh->dropped;
    out->queued = wh->count + (wh->in_flight ? 1 : 0);
    pthread_mutex_unlock(&wh->mu);
}

void api_webhook_set_done(struct api_webhook *wh, event_webhook_done_cb fn, void *arg)
{
    pthread_mutex_lock(&wh->mu);
    wh->done = fn;
    wh->done_arg = arg;
    pthread_mutex_unlock(&wh->mu);
}
