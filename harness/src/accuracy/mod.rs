//! `bnh accuracy`: how accurate every implementation is as the input gets
//! ill-conditioned, measured against the double-double [`oracle`](crate::oracle).
//!
//! - [`sweep`]: the conditioning grid and the measurement of one point;
//! - [`export`]: the CSV rows (`impl,dtype,op,n_per_channel,offset_ratio,scale,max_rel_err,max_ulp_err,nan_count`);
//! - [`chart`]: the SVG chart of error vs conditioning (also for `bnh report`);
//! - [`summary`]: the worst error per implementation, dtype and offset ratio.

pub mod chart;
pub mod export;
pub mod summary;
pub mod sweep;

pub use export::AccuracyRow;
