/* downward.c — the control for upward.c: the same compiler, flags and include
 * view (the registrar's) find the headers of the layers below. */
#include "base/str.h"
#include "sip/msg.h"
#include "txn/txn.h"
