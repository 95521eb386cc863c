//! Search modes: which first stages produce candidates and how their results combine.
//!
//! Grammar (DESIGN.md): a stage name (`exhaustive`, `plaid`, `muvera`, `splade`, `bm25`);
//! stages joined by `+` mean the union of their candidates re-ranked by exact MaxSim;
//! `rrf:` before them means reciprocal-rank fusion of their rankings. Today an index holds
//! only the token store, so `exhaustive` is the one stage that runs; naming any other is
//! a [`IndexError::MissingComponent`] that says what the index has.

use std::fmt;
use std::str::FromStr;

use crate::error::{IndexError, Result};
use crate::maxsim::{self, Hit};
use crate::store::MultiVectorRef;
use crate::Index;

/// A first stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Every document, scored by exact MaxSim.
    Exhaustive,
    Plaid,
    Muvera,
    Splade,
    Bm25,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Exhaustive => "exhaustive",
            Stage::Plaid => "plaid",
            Stage::Muvera => "muvera",
            Stage::Splade => "splade",
            Stage::Bm25 => "bm25",
        }
    }

    /// The index component the stage reads.
    pub fn component(self) -> &'static str {
        match self {
            Stage::Exhaustive => "store",
            other => other.name(),
        }
    }
}

impl FromStr for Stage {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "exhaustive" => Ok(Stage::Exhaustive),
            "plaid" => Ok(Stage::Plaid),
            "muvera" => Ok(Stage::Muvera),
            "splade" => Ok(Stage::Splade),
            "bm25" => Ok(Stage::Bm25),
            other => Err(format!(
                "unknown first stage {other:?}: expected exhaustive, plaid, muvera, splade or bm25"
            )),
        }
    }
}

/// How to combine the stages' results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fusion {
    /// Union of candidates, re-ranked by exact MaxSim on the stored vectors.
    MaxSimRescore,
    /// Reciprocal-rank fusion (k = 60) of each stage's ranking.
    Rrf,
}

/// A parsed `--mode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mode {
    pub stages: Vec<Stage>,
    pub fusion: Fusion,
}

impl Default for Mode {
    fn default() -> Self {
        Mode {
            stages: vec![Stage::Exhaustive],
            fusion: Fusion::MaxSimRescore,
        }
    }
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (fusion, rest) = match s.strip_prefix("rrf:") {
            Some(rest) => (Fusion::Rrf, rest),
            None => (Fusion::MaxSimRescore, s),
        };
        if rest.trim().is_empty() {
            return Err(format!("mode {s:?} names no first stage"));
        }
        let mut stages = Vec::new();
        for part in rest.split('+') {
            let stage: Stage = part.parse()?;
            if stages.contains(&stage) {
                return Err(format!("mode {s:?} names {} twice", stage.name()));
            }
            stages.push(stage);
        }
        Ok(Mode { stages, fusion })
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.fusion == Fusion::Rrf {
            write!(f, "rrf:")?;
        }
        let names: Vec<&str> = self.stages.iter().map(|s| s.name()).collect();
        write!(f, "{}", names.join("+"))
    }
}

impl Index {
    /// Components this index holds.
    pub fn components(&self) -> Vec<&'static str> {
        vec!["store"]
    }

    /// Fail with the missing component's name if the index cannot run `mode`.
    pub fn check_mode(&self, mode: &Mode) -> Result<()> {
        let have = self.components();
        for stage in &mode.stages {
            if !have.contains(&stage.component()) {
                return Err(IndexError::MissingComponent {
                    mode: mode.to_string(),
                    component: stage.component().to_string(),
                    available: have.join(","),
                });
            }
        }
        Ok(())
    }

    /// The best `k` documents for `query` under `mode`, best first.
    pub fn search(
        &self,
        query: MultiVectorRef<'_, f32>,
        k: usize,
        mode: &Mode,
    ) -> Result<Vec<Hit>> {
        self.check_mode(mode)?;
        if query.dim() != self.manifest().dim {
            return Err(IndexError::Dimension {
                expected: self.manifest().dim,
                found: query.dim(),
            });
        }
        // Every stage the index can hold today is `exhaustive` (check_mode guarantees
        // it), and exact MaxSim over all documents is already the final ranking, for
        // union and for RRF alike.
        Ok(maxsim::search_exhaustive(self.store(), query, k))
    }
}
