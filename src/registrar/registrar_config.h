/* registrar_config.h — the [registrar] section (keys: registrar_config.c). */
#ifndef CASCADE_REGISTRAR_REGISTRAR_CONFIG_H
#define CASCADE_REGISTRAR_REGISTRAR_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

struct registrar_config { /* [registrar] */
    int min_expires, max_expires, default_expires;
    bool keep_on_transport_loss;     /* keep bindings flagged instead of dropping them */
    int nat_ping_interval_s;         /* OPTIONS to UDP bindings behind NAT; 0: off */
    int nat_ping_max_lost;           /* unanswered pings in a row that remove the binding; 0: never */
    int max_contacts;                /* bindings per AoR; one more is refused 403; 0: no limit */
    int write_behind_ms;             /* a pure refresh is written within this, not before its 200; 0: before */
};

#endif
