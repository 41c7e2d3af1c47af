/* manpage.h — the body of cascade.ini(5), written from the config key tables
 * (`cascade --help-config=man`) so the manual cannot drift from the keys the
 * loader accepts. packaging/man/cascade.ini.5.in frames it (NAME, FILES, SEE
 * ALSO); scripts/manpage.sh joins the two at build time. */
#ifndef CASCADE_APP_MANPAGE_H
#define CASCADE_APP_MANPAGE_H

#include <stdio.h>

#include "base/config.h"

/* One .SS per section, one .TP per key: allowed values, default, help. */
void manpage_config_print(const struct config_schema *s, FILE *out);

#endif
