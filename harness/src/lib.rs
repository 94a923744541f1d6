//! bnh: verification and benchmarking harness for batch-norm implementations.
