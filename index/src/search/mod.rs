//! Search modes: which first stages produce candidates and how their results combine.
//!
//! Grammar (DESIGN.md): a stage name (`exhaustive`, `plaid`, `muvera`, `splade`, `bm25`);
//! stages joined by `+` mean the union of their candidates re-ranked by exact MaxSim;
//! `rrf:` before them means reciprocal-rank fusion of their rankings. A stage whose
//! component the index lacks is a [`IndexError::MissingComponent`] that says what the
//! index has. Stages that exist today: `exhaustive` (component `store`), `plaid`, `muvera`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{IndexError, Result};
use crate::maxsim::{self, Hit};
use crate::muvera::MuveraParams;
use crate::plaid::PlaidParams;
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

/// Per-query knobs of the first stages (each `None` = that stage's defaults for k).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SearchParams {
    pub plaid: Option<PlaidParams>,
    pub muvera: Option<MuveraParams>,
}

/// Reciprocal-rank fusion constant (Cormack et al. 2009).
pub const RRF_K: f32 = 60.0;

impl Index {
    /// Components this index holds.
    pub fn components(&self) -> Vec<&'static str> {
        self.manifest().components.names()
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
        params: &SearchParams,
    ) -> Result<Vec<Hit>> {
        self.check_mode(mode)?;
        if query.dim() != self.manifest().dim {
            return Err(IndexError::Dimension {
                expected: self.manifest().dim,
                found: query.dim(),
            });
        }
        match (mode.fusion, mode.stages.as_slice()) {
            (_, [stage]) => Ok(self.run_stage(*stage, query, k, params)),
            (Fusion::MaxSimRescore, stages) => {
                if stages.contains(&Stage::Exhaustive) {
                    return Ok(maxsim::search_exhaustive(self.store(), query, k));
                }
                let mut union: Vec<u32> = stages
                    .iter()
                    .flat_map(|s| self.stage_candidates(*s, query, k, params))
                    .collect();
                union.sort_unstable();
                union.dedup();
                Ok(maxsim::search_candidates(self.store(), query, k, &union))
            }
            (Fusion::Rrf, stages) => {
                let rankings: Vec<Vec<Hit>> = stages
                    .iter()
                    .map(|s| self.run_stage(*s, query, k, params))
                    .collect();
                Ok(reciprocal_rank_fusion(&rankings, k))
            }
        }
    }

    /// One stage's own final ranking.
    fn run_stage(
        &self,
        stage: Stage,
        query: MultiVectorRef<'_, f32>,
        k: usize,
        params: &SearchParams,
    ) -> Vec<Hit> {
        match stage {
            Stage::Plaid => {
                let p = params.plaid.unwrap_or_else(|| PlaidParams::for_k(k));
                self.plaid()
                    .expect("checked by check_mode")
                    .search(self.store(), query, k, &p)
            }
            Stage::Muvera => {
                let p = params.muvera.unwrap_or_else(|| MuveraParams::for_k(k));
                self.muvera()
                    .expect("checked by check_mode")
                    .search(self.store(), query, k, &p)
            }
            Stage::Exhaustive => maxsim::search_exhaustive(self.store(), query, k),
            Stage::Splade | Stage::Bm25 => {
                unreachable!("check_mode refuses stages without a component")
            }
        }
    }

    /// One stage's candidates for the union-and-rescore path.
    fn stage_candidates(
        &self,
        stage: Stage,
        query: MultiVectorRef<'_, f32>,
        k: usize,
        params: &SearchParams,
    ) -> Vec<u32> {
        match stage {
            Stage::Plaid => {
                let p = params.plaid.unwrap_or_else(|| PlaidParams::for_k(k));
                self.plaid()
                    .expect("checked by check_mode")
                    .candidates(self.store(), query, k, &p)
            }
            Stage::Muvera => {
                let p = params.muvera.unwrap_or_else(|| MuveraParams::for_k(k));
                self.muvera()
                    .expect("checked by check_mode")
                    .candidates(query, &p)
            }
            Stage::Exhaustive => (0..self.store().num_docs() as u32).collect(),
            Stage::Splade | Stage::Bm25 => {
                unreachable!("check_mode refuses stages without a component")
            }
        }
    }
}

/// RRF: `score(d) = Σ_rankings 1 / (RRF_K + rank(d))`, ranks from 1; best `k`.
pub fn reciprocal_rank_fusion(rankings: &[Vec<Hit>], k: usize) -> Vec<Hit> {
    let mut fused: std::collections::HashMap<u32, f32> = std::collections::HashMap::new();
    for ranking in rankings {
        for (rank, hit) in ranking.iter().enumerate() {
            *fused.entry(hit.doc).or_insert(0.0) += 1.0 / (RRF_K + rank as f32 + 1.0);
        }
    }
    let mut top = crate::maxsim::TopK::new(k);
    for (doc, score) in fused {
        top.push(Hit { doc, score });
    }
    top.into_sorted()
}
