/* bnh_example.c: a plain C batch-norm kernel for bnh (ABI v1, include/bnh_kernel.h).
 *
 * f32 and f64, contiguous and channels-last; training forward (two-pass mean
 * and biased variance in double), eval forward, and backward through batch
 * statistics or with fixed statistics. bf16/f16 return nonzero: "not
 * supported", which bnh reports as such (not a failure).
 *
 * Build and check it:
 *     cc -O2 -shared -fPIC -I include examples/c-kernel/bnh_example.c -o libbnh_example.so
 *     bnh check --plugin ./libbnh_example.so --impl c-example
 *
 * -DBNH_EXAMPLE_BUG builds a twin named c-example-buggy whose training
 * variance is the unbiased one (divided by m - 1): bnh check must catch it.
 * -DBNH_EXAMPLE_REPEAT=4 builds a deliberately slowed twin (same name, eval
 * forward done 4 times): `bnh compare` must call it a regression.
 */
#include "bnh_kernel.h"
#include <math.h>
#include <stddef.h>

#ifndef BNH_EXAMPLE_REPEAT
#define BNH_EXAMPLE_REPEAT 1
#endif

#ifdef BNH_EXAMPLE_BUG
#define EXAMPLE_NAME "c-example-buggy"
#define EXAMPLE_DESC "the C example with a deliberate bug (unbiased variance): bnh check must fail it"
#else
#define EXAMPLE_NAME "c-example"
#define EXAMPLE_DESC "examples/c-kernel: plain C, two-pass statistics in double (f32, f64)"
#endif

/* Index of element (i, ch, j) of an (N, C, S) tensor in either layout. */
static int64_t at(const bnh_desc *d, int64_t i, int64_t ch, int64_t j) {
    if (d->layout == BNH_CHANNELS_LAST)
        return (i * d->s + j) * d->c + ch;   /* x[n][s][c] */
    return (i * d->c + ch) * d->s + j;       /* x[n][c][s] */
}

static double load(const bnh_desc *d, const void *p, int64_t k) {
    return d->dtype == BNH_F32 ? (double)((const float *)p)[k] : ((const double *)p)[k];
}

static void store(const bnh_desc *d, void *p, int64_t k, double v) {
    if (d->dtype == BNH_F32)
        ((float *)p)[k] = (float)v;
    else
        ((double *)p)[k] = v;
}

static int supported(const bnh_desc *d) {
    return (d->dtype == BNH_F32 || d->dtype == BNH_F64) &&
           (d->layout == BNH_CONTIGUOUS || d->layout == BNH_CHANNELS_LAST);
}

/* y = (x - mean) / sqrt(var + eps) * w + b, channel by channel. */
static void normalize(const bnh_desc *d, const void *x, void *y, const double *weight,
                      const double *bias, const double *mean, const double *var) {
    for (int64_t ch = 0; ch < d->c; ch++) {
        double inv = 1.0 / sqrt(var[ch] + d->eps);
        double w = weight ? weight[ch] : 1.0, b = bias ? bias[ch] : 0.0;
        for (int64_t i = 0; i < d->n; i++)
            for (int64_t j = 0; j < d->s; j++) {
                int64_t k = at(d, i, ch, j);
                store(d, y, k, (load(d, x, k) - mean[ch]) * inv * w + b);
            }
    }
}

static int32_t forward_train(const bnh_desc *d, const void *x, void *y, const double *weight,
                             const double *bias, double *mean, double *var) {
    if (!supported(d))
        return 1;
    double m = (double)(d->n * d->s);
    for (int64_t ch = 0; ch < d->c; ch++) {
        double sum = 0.0, sq = 0.0;
        for (int64_t i = 0; i < d->n; i++)
            for (int64_t j = 0; j < d->s; j++)
                sum += load(d, x, at(d, i, ch, j));
        double mu = sum / m;
        for (int64_t i = 0; i < d->n; i++)
            for (int64_t j = 0; j < d->s; j++) {
                double t = load(d, x, at(d, i, ch, j)) - mu;
                sq += t * t;
            }
        mean[ch] = mu;
#ifdef BNH_EXAMPLE_BUG
        var[ch] = sq / (m - 1.0); /* the bug: unbiased, but batch norm normalizes with the biased variance */
#else
        var[ch] = sq / m;
#endif
    }
    normalize(d, x, y, weight, bias, mean, var);
    return 0;
}

static int32_t forward_eval(const bnh_desc *d, const void *x, void *y, const double *weight,
                            const double *bias, const double *mean, const double *var) {
    if (!supported(d))
        return 1;
    for (int r = 0; r < BNH_EXAMPLE_REPEAT; r++)
        normalize(d, x, y, weight, bias, mean, var);
    return 0;
}

/* With x^ = (x - mean) * inv: grad_bias = sum dy, grad_weight = sum dy * x^;
 * through batch statistics dx = w * inv * (dy - grad_bias / m - x^ * grad_weight / m),
 * with fixed statistics dx = w * inv * dy. */
static int32_t backward(const bnh_desc *d, int32_t batch_stats, const void *x, const void *dy,
                        const double *weight, const double *mean, const double *var, void *dx,
                        double *grad_weight, double *grad_bias) {
    if (!supported(d))
        return 1;
    double m = (double)(d->n * d->s);
    for (int64_t ch = 0; ch < d->c; ch++) {
        double inv = 1.0 / sqrt(var[ch] + d->eps);
        double w = weight ? weight[ch] : 1.0;
        double sdy = 0.0, sdyx = 0.0;
        for (int64_t i = 0; i < d->n; i++)
            for (int64_t j = 0; j < d->s; j++) {
                int64_t k = at(d, i, ch, j);
                double g = load(d, dy, k);
                sdy += g;
                sdyx += g * (load(d, x, k) - mean[ch]) * inv;
            }
        grad_bias[ch] = sdy;
        grad_weight[ch] = sdyx;
        for (int64_t i = 0; i < d->n; i++)
            for (int64_t j = 0; j < d->s; j++) {
                int64_t k = at(d, i, ch, j);
                double g = load(d, dy, k);
                if (batch_stats) {
                    double xh = (load(d, x, k) - mean[ch]) * inv;
                    g = g - sdy / m - xh * sdyx / m;
                }
                store(d, dx, k, w * inv * g);
            }
    }
    return 0;
}

static const bnh_kernel_v1 KERNEL = {
    BNH_ABI_VERSION, EXAMPLE_NAME, EXAMPLE_DESC,
    1, /* stable: accurate on ill-conditioned input (two-pass, double) */
    1, /* deterministic: single-threaded */
    forward_train, forward_eval, backward,
};

const bnh_kernel_v1 *bnh_kernel_entry_v1(void) { return &KERNEL; }
