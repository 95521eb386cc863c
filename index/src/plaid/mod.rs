//! PLAID: ColBERTv2 residual compression plus centroid-interaction candidate generation.
//! One codec per index ([`codec`]: centroids + residual quantiser, trained once); each
//! segment holds its vectors' codes, residuals and IVF ([`build`] writes them,
//! [`PlaidSegment`] reads them); `search.rs` holds the search. File layouts in
//! `README.md` beside this file.

mod build;
mod codec;
mod reader;
mod refine;
mod search;

pub use build::{
    encode_segment, EncodeTimes, PlaidConfig, PlaidSegmentWriter, COMPACT_ASSIGN_PROBE,
    DEFAULT_ASSIGN_PROBE,
};
pub use codec::{train_codec, PlaidCodec};
pub use reader::PlaidSegment;
pub use refine::{pruned_maxsim_scalar, Refiner};
pub use search::{
    centroid_interaction, centroid_interaction8, PlaidParams, PlaidQuery, Rescore, ScoreTable,
};
