//! PLAID: ColBERTv2 residual compression plus centroid-interaction candidate generation.
//! [`build_plaid`] writes the component from a finished token store; [`PlaidIndex`] reads
//! it; `search.rs` holds the search. File layouts in `README.md` beside this file.

mod build;
mod reader;
mod search;

pub use build::{build_plaid, PlaidConfig};
pub use reader::PlaidIndex;
pub use search::{centroid_interaction, PlaidParams, Rescore};
