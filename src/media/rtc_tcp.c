/* rtc_tcp.c — ICE-TCP passive for the WebRTC transport (rtc.h): not done
 * yet. A transport asked for cfg.tcp fails to start with a clear error
 * rather than announce candidates nobody answers. */
#include <stdio.h>

#include "media/rtc_int.h"

int rtc_tcp_open(struct rtc_transport *t, const struct sockaddr_storage *addr, char *err, size_t errcap)
{
    (void)t, (void)addr;
    snprintf(err, errcap, "rtc: ICE-TCP (tcp = on) is not implemented yet");
    return -1;
}

void rtc_tcp_free(struct rtc_transport *t) { (void)t; }

int rtc_tcp_send(struct rtc_tcp_conn *c, const void *data, size_t len)
{
    (void)c, (void)data, (void)len;
    return -1;
}

void rtc_tcp_attach(struct rtc_tcp_conn *c, struct rtc_peer *p) { (void)c, (void)p; }
void rtc_tcp_detach(struct rtc_tcp_conn *c) { (void)c; }
