// clock.h (internal): the runtime's one wall clock and its one way of printing a duration, so
// the trainer's, the study's and `qtrain prepare`'s progress lines and timings agree.
#ifndef QTRAIN_HOST_IO_CLOCK_H
#define QTRAIN_HOST_IO_CLOCK_H

#include <stddef.h>

// Seconds on the monotonic clock (CLOCK_MONOTONIC): for differences only, never a date.
double qt_clock_seconds(void);

// A duration for a progress line: "1h05m" from an hour on, "3m07s" below it; negative -> "0m00s".
void qt_format_duration(double seconds, char *buf, size_t len);

#endif
