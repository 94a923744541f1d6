/* Plugins that break one rule of include/bnh_kernel.h each, selected by a
 * define, for harness/tests/plugin.rs: bnh must refuse each with exit 2 and a
 * message naming the file and the fix. */
#include "bnh_kernel.h"
#include <stddef.h>

static int32_t ft(const bnh_desc *d, const void *x, void *y, const double *w, const double *b,
                  double *m, double *v) {
    (void)d; (void)x; (void)y; (void)w; (void)b; (void)m; (void)v;
    return 1;
}
static int32_t fe(const bnh_desc *d, const void *x, void *y, const double *w, const double *b,
                  const double *m, const double *v) {
    (void)d; (void)x; (void)y; (void)w; (void)b; (void)m; (void)v;
    return 1;
}
static int32_t bw(const bnh_desc *d, int32_t bs, const void *x, const void *dy, const double *w,
                  const double *m, const double *v, void *dx, double *gw, double *gb) {
    (void)d; (void)bs; (void)x; (void)dy; (void)w; (void)m; (void)v; (void)dx; (void)gw; (void)gb;
    return 1;
}

#ifndef ABI
#define ABI BNH_ABI_VERSION
#endif
#ifndef NAME
#define NAME "bad-plugin"
#endif
#ifndef DESC
#define DESC "a plugin for the validation tests"
#endif
#ifndef BACKWARD
#define BACKWARD bw
#endif

static const bnh_kernel_v1 K = {ABI, NAME, DESC, 1, 1, ft, fe, BACKWARD};

#ifndef NO_SYMBOL
const bnh_kernel_v1 *bnh_kernel_entry_v1(void) {
#ifdef NULL_ENTRY
    return NULL;
#else
    return &K;
#endif
}
#else
const bnh_kernel_v1 *some_other_symbol(void) { return &K; }
#endif
