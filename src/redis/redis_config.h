/* redis_config.h — the [redis] section (keys: redis_config.c): where the
 * Redis Cluster is and what this node mirrors into it (issue 16). */
#ifndef CASCADE_REDIS_REDIS_CONFIG_H
#define CASCADE_REDIS_REDIS_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

struct redis_config { /* [redis] */
    bool mirror_bindings;            /* write the location's bindings behind into the cluster */
    char nodes[1024];                /* seeds, "127.0.0.1:7000,[::1]:7001" (numeric) */
    char node_id[128];               /* this node's name in the records; "": the host name */
    char key_prefix[64];             /* before every key: "cascade:" -> cascade:loc:{alice@example.com} */
    uint32_t timeout_ms;             /* per command, submission to answer */
    uint32_t max_pending;            /* mirror writes queued or unanswered; beyond: dropped (counted) */
    bool cluster_route;              /* forward requests for users registered on another node */
    char advertise[256];             /* this node's SIP URI for its peers; "": from the listeners */
    uint32_t heartbeat_ms;           /* node registry refresh; a node is gone after 3 missed */
    uint32_t lookup_cache_ms;        /* remote lookup answers kept at most this long (invalidated sooner); 0: no cache */
    uint32_t lookup_max_pending;     /* requests waiting for a Redis lookup; beyond: answered locally */
    bool mirror_gb_devices;          /* write GB devices' state behind (gbdev:{id}); with cluster_route: play across nodes */
    uint32_t gb_keepalive_write_s;   /* a device's keepalives reach Redis at most this often */
    bool durable_writes;             /* a REGISTER's 200 waits until its bindings are on a replica */
    uint32_t durable_replicas;       /* replicas that must acknowledge (WAIT) */
    uint32_t durable_timeout_ms;     /* then the REGISTER is answered 500 */
    bool events_stream;              /* every node's events in one cluster stream (app/events_stream.h) */
    uint32_t events_maxlen;          /* the stream's length cap (XADD MAXLEN ~) */
    uint32_t events_poll_ms;         /* how often the stream and the webhook group are read when idle */
    uint32_t events_max_pending;     /* event writes waiting for Redis; beyond: dropped (counted) */
    uint32_t events_claim_idle_ms;   /* a webhook entry unacknowledged this long is taken over */
    uint32_t events_webhook_batch;   /* webhook entries one node holds at once */
    char api_advertise[64];          /* this node's API for its peers, ["https://"]"ip:port"; "": from [api] */
    char api_tls_name[256];          /* the name peers' API certificates carry; "": their advertised address */
    uint32_t api_forward_timeout_ms; /* a GB API request forwarded to the device's node: whole exchange */
    uint32_t api_forward_max_pending; /* GB API requests forwarded (or looking up their node) at once */
    bool mirror_users;               /* SIP users shared through the cluster (registrar/users_mirror.h) */
    uint32_t users_max;              /* users a node loads from Redis at most */
    bool mirror_presence;            /* PUBLISHed presence shared through the cluster (subs/presence_mirror.h) */
    uint32_t presence_max;           /* other nodes' publications a node holds at most */
    bool mirror_gb_admin;            /* GB devices' administrative records shared (gb/upper/admin_mirror.h) */
    uint32_t gb_admin_max;           /* GB device records a node loads from Redis at most */
    bool mirror_mwi;                 /* message-summary shared through the cluster (subs/mwi_mirror.h) */
    bool mirror_presence_allow;      /* presence allow lists shared through the cluster (subs/allow_mirror.h) */
    uint32_t presence_allow_max;     /* allow lists a node loads from Redis (and holds from it) at most */
};

#endif
