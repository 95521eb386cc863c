//! What an index can hold, as one enum: the manifest, the command line, the search
//! stages and the writers all name components through [`Component`], so adding one
//! touches this file and the places the compiler then points at.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One structure an index (each of its segments) can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Component {
    /// The f16 token vectors, offsets, external ids (and texts): always present.
    Store,
    /// ColBERTv2 residual codes and the IVF (centroid interaction first stage).
    Plaid,
    /// Fixed-dimensional encodings in an HNSW.
    Muvera,
    /// SPLADE impact postings.
    Splade,
    /// BM25 over the documents' text (tantivy).
    Bm25,
    /// Typed metadata fields for filters (tantivy); present when the index declares
    /// fields.
    Fields,
}

impl Component {
    /// Every component, in manifest order.
    pub const ALL: [Component; 6] = [
        Component::Store,
        Component::Plaid,
        Component::Muvera,
        Component::Splade,
        Component::Bm25,
        Component::Fields,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Component::Store => "store",
            Component::Plaid => "plaid",
            Component::Muvera => "muvera",
            Component::Splade => "splade",
            Component::Bm25 => "bm25",
            Component::Fields => "fields",
        }
    }

    /// `a,b,c` for messages.
    pub fn list(components: &[Component]) -> String {
        components
            .iter()
            .map(|c| c.name())
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Component {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Component::ALL
            .into_iter()
            .find(|c| c.name() == s.trim())
            .ok_or_else(|| {
                format!(
                    "unknown component {s:?}: expected one of {}",
                    Component::list(&Component::ALL)
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for c in Component::ALL {
            assert_eq!(c.name().parse::<Component>().unwrap(), c);
            assert_eq!(
                serde_json::to_string(&c).unwrap(),
                format!("\"{}\"", c.name())
            );
        }
        assert!("colbert".parse::<Component>().is_err());
    }
}
