/* ua_int.h — what ua.c (building, UAC helper) and dialog.c share. Not for
 * other modules: use ua.h. */
#ifndef CASCADE_UA_UA_INT_H
#define CASCADE_UA_UA_INT_H

#include "ua/ua.h"

#include "base/htable.h"
#include "base/timer.h"

/* A deep copy of a struct ua_request in one allocation (req's slices point
 * into the block after the struct). */
struct ua_req_copy {
    struct ua_request req;
    char tagbuf[UA_TAG_SIZE];
    char cidbuf[UA_CALL_ID_SIZE];
};

struct ua_uac {
    struct ua *ua;
    struct ua_uac *prev, *next;     /* ua->uacs */
    struct txn *ct;                 /* current client transaction, NULL between attempts */
    struct ua_req_copy *rc;
    struct transport_dest dest;
    char *user, *password, *ha1;    /* credentials (NULL: none) */
    int auth_rounds;
    char *auth_line;                /* "Authorization: ..." of the last attempt */
    struct ua_uac_cb cb;
    void *arg;
    bool forgotten;                 /* the caller detached or cancelled */
    struct ua_dialog *dlg;          /* in-dialog request: its dialog (cleared when it goes) */
};

struct ua_dialog {
    struct ua *ua;
    struct hnode node;              /* in ua->dialogs, under ua_dialog_hash */
    bool uac, confirmed, ending;
    char *call_id, *local_tag, *remote_tag;
    char *local_uri, *remote_uri;   /* "<uri>" */
    char *remote_target;            /* a URI */
    char *local_contact;            /* Contact value we send */
    char *routes[UA_MAX_ROUTES];    /* in the order requests carry them */
    size_t route_count;
    uint32_t local_cseq, remote_cseq, invite_cseq;
    bool remote_cseq_set;
    enum sip_method remote_method;  /* method of the request that set remote_cseq */
    struct transport_dest flow;     /* the flow the dialog was made on */
    bool pinned;                    /* flow set by ua_dialog_set_dest */
    char *local_host;               /* Via host used for the INVITE / answer */
    char *user, *password, *ha1, *auth_line;
    /* UAC: our ACK, re-sent for retransmitted 2xx. UAS: our 2xx, re-sent until the ACK. */
    char *keep;
    size_t keep_len;
    struct transport_dest keep_dest;
    struct timer_node retx, giveup;
    uint32_t retx_interval;
    struct ua_dialog_cb cb;
    void *arg;
};

struct ua {
    const struct sip_local *local;  /* read at each send */
    struct timer_service *timers;
    struct txn_layer *txn;
    uint32_t t1_ms, t2_ms;
    uint64_t rng;
    ua_send_fn send;
    void *send_arg;
    struct ua_uac *uacs;            /* live handles */
    struct htable dialogs;          /* struct ua_dialog by hash(call-id, local tag) */
    struct ua_stats stats;
};

uint64_t ua_now(const struct ua *ua);
uint32_t ua_t1(const struct ua *ua);
uint32_t ua_t2(const struct ua *ua);
struct timer_service *ua_timers(const struct ua *ua);
int ua_send_raw(struct ua *ua, struct transport_dest *dest, const void *data, size_t len);
/* Via host/port for proto (local_host override when not empty). */
void ua_via_for(struct ua *ua, enum sip_transport proto, str_t local_host, struct ua_via *via);
/* Prints r with a fresh branch for dest. */
int ua_build(struct ua *ua, const struct ua_request *r, const struct transport_dest *dest, char *branch,
             sbuf_t *out);
/* Internal send of a request whose slices stay valid during the call; dlg is
 * the dialog of an in-dialog request (may be NULL). Credentials as strings. */
struct ua_uac *ua_uac_start(struct ua *ua, const struct ua_request *r, const struct transport_dest *dest,
                            const char *user, const char *password, const char *ha1, struct ua_dialog *dlg,
                            const struct ua_uac_cb *cb, void *arg);
/* Strips a tag from a From/To value: "<uri>" of it, malloc'ed. */
char *ua_name_addr_uri(const struct sip_name_addr *na);
char *ua_strdup_str(str_t s);

/* dialog.c */
uint32_t ua_dialog_hash(str_t call_id, str_t local_tag);
struct ua_dialog *ua_dialog_find(struct ua *ua, str_t call_id, str_t local_tag);
/* UAC dialog from the 2xx to the INVITE the handle sent (ACK sent). NULL on no memory. */
struct ua_dialog *ua_dialog_from_2xx(struct ua *ua, struct ua_uac *h, const struct sip_msg *resp,
                                     const struct transport_rx *rx);
/* The 2xx was for nobody: ACK it and BYE. */
void ua_dialog_refuse_2xx(struct ua *ua, struct ua_uac *h, const struct sip_msg *resp,
                          const struct transport_rx *rx);
void ua_dialogs_free(struct ua *ua);
/* The dialog is going: clear handles pointing at it. */
void ua_uacs_forget_dialog(struct ua *ua, struct ua_dialog *d);

#endif
