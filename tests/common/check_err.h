/* The running maximum of differences in the tests' comparisons, with NaN sticky.
 *
 * The usual idioms lose a NaN: fmax(e, NaN) is e, and `if (!(d <= e)) e = d` stores the NaN
 * but lets the next finite difference replace it (!(d <= NaN) is true). A comparison whose
 * output holds a NaN anywhere but at its last value then passed. With sd_check_max, once a
 * difference is NaN the maximum stays NaN, and every `err <= tol` test fails. */
#ifndef SD_CHECK_ERR_H
#define SD_CHECK_ERR_H

#include <math.h>

static inline double sd_check_max(double e, double d) { return isnan(e) || isnan(d) ? NAN : d > e ? d : e; }

#endif
