/* clock.h — time sources. Monotonic milliseconds for timers; wall-clock ISO-8601
 * strings for events, the API and the GB28181 Date header. */
#ifndef CASCADE_BASE_CLOCK_H
#define CASCADE_BASE_CLOCK_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

uint64_t clock_monotonic_ms(void);
int64_t clock_wall_ms(void);
/* "2026-11-21T22:44:44.123Z" (with_z) or without the zone suffix (GB28181 Date). */
size_t clock_iso8601(char *buf, size_t cap, int64_t wall_ms, int with_z);

#endif
