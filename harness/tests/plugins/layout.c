/* Prints the header's sizes and offsets, for harness/tests/plugin.rs to
 * compare with the #[repr(C)] mirror in harness/src/plugin/ffi.rs. */
#include "bnh_kernel.h"
#include <stddef.h>
#include <stdio.h>

#define P(T, F) printf(#T "." #F " %zu\n", offsetof(T, F))
int main(void) {
    printf("bnh_desc %zu\n", sizeof(bnh_desc));
    P(bnh_desc, dtype); P(bnh_desc, layout); P(bnh_desc, n); P(bnh_desc, c);
    P(bnh_desc, s); P(bnh_desc, eps); P(bnh_desc, threads);
    printf("bnh_kernel_v1 %zu\n", sizeof(bnh_kernel_v1));
    P(bnh_kernel_v1, abi_version); P(bnh_kernel_v1, name); P(bnh_kernel_v1, description);
    P(bnh_kernel_v1, stable); P(bnh_kernel_v1, deterministic); P(bnh_kernel_v1, forward_train);
    P(bnh_kernel_v1, forward_eval); P(bnh_kernel_v1, backward);
    return 0;
}
