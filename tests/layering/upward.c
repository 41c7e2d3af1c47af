/* upward.c — compiled with the include view of the sip layer by
 * check-layers.sh: a header of a higher layer must not be found. */
#include "registrar/registrar.h"
