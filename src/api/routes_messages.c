/* routes_messages.c — what became of the instant messages cascade kept for
 * offline users (docs/api.md):
 *
 *   GET /api/v1/messages[?user=U][&state=queued|delivered|expired]
 *       {"messages":[{id,user,from,to,content_type,size,received,state,updated}]}
 *
 * in arrival order. Delivered and expired messages are listed for [messages]
 * max_age after their change, then forgotten; bodies are never shown. */
#include "api/routes_messages.h"

#include "api/http.h"
#include "subs/offline_msg.h"

static void messages_list(struct api_request *req, void *user)
{
    const struct offline_msg *o = user;
    const char *who = api_query(req, "user");
    const char *state = api_query(req, "state");
    if (state && state[0] && !offline_msg_state_valid(state)) {
        api_reply_error(req, 400, "bad-request", "state must be queued, delivered or expired");
        return;
    }
    json_t *arr = offline_msg_list_json(o, who, state);
    if (!arr) {
        api_reply_error(req, 500, "internal", "out of memory listing messages");
        return;
    }
    api_reply_json(req, 200, json_pack("{s:o}", "messages", arr));
}

void api_routes_messages(struct api_server *api, struct offline_msg *o)
{
    if (!api || !o) return;
    api_route(api, "GET", "/api/v1/messages", messages_list, o);
}
