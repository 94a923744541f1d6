/* bnh_kernel.h: the C ABI of a bnh kernel plugin, version 1.
 *
 * Build a shared library that exports bnh_kernel_entry_v1 and run
 *     bnh check --plugin ./libmykernel.so --impl NAME
 * The contract (ownership, layouts, return codes, threads) is in docs/PLUGINS.md.
 * Everything below is fixed for ABI version 1: names, types and argument order. */
#ifndef BNH_KERNEL_H
#define BNH_KERNEL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BNH_ABI_VERSION 1
enum bnh_dtype { BNH_F32 = 0, BNH_F64 = 1, BNH_BF16 = 2, BNH_F16 = 3 };   /* bf16/f16: 16-bit patterns */
enum bnh_layout { BNH_CONTIGUOUS = 0, BNH_CHANNELS_LAST = 1 };          /* x[n][c][s] or x[n][s][c] */
typedef struct bnh_desc {
    int32_t dtype;      /* element type of x, y, dy, dx */
    int32_t layout;
    int64_t n, c, s;    /* batch, channels, product of spatial sizes (1 for (N, C)) */
    double eps;
    int32_t threads;    /* threads the harness runs with: a hint */
} bnh_desc;
typedef struct bnh_kernel_v1 {
    uint32_t abi_version;          /* BNH_ABI_VERSION */
    const char *name;              /* [a-z0-9_-]+, the implementation's name in bnh */
    const char *description;
    int32_t stable;                /* 1: expected accurate on ill-conditioned input */
    int32_t deterministic;         /* 1: same bits for any thread count */
    /* Per-channel arrays are double[c]; weight and bias may be NULL (no affine).
       Return 0 on success; any other value means "not supported for this input". */
    int32_t (*forward_train)(const bnh_desc *d, const void *x, void *y,
                             const double *weight, const double *bias,
                             double *mean, double *var);    /* out: batch mean, biased variance */
    int32_t (*forward_eval)(const bnh_desc *d, const void *x, void *y,
                            const double *weight, const double *bias,
                            const double *mean, const double *var);
    int32_t (*backward)(const bnh_desc *d, int32_t batch_stats,  /* 1: through batch stats, 0: fixed */
                        const void *x, const void *dy, const double *weight,
                        const double *mean, const double *var,
                        void *dx, double *grad_weight, double *grad_bias);
} bnh_kernel_v1;
const bnh_kernel_v1 *bnh_kernel_entry_v1(void);   /* the one exported symbol */

#ifdef __cplusplus
}
#endif

#endif /* BNH_KERNEL_H */
