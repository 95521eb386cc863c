//! A point in time after which a search gives up: the HTTP server's per-request limit
//! reaches down into the scoring loops, so a request past it stops its work instead of
//! finishing for nobody.

use std::time::{Duration, Instant};

use crate::error::{IndexError, Result};

/// When a search must stop (`Deadline::default()`: never).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deadline(Option<Instant>);

impl Deadline {
    /// No limit.
    pub const NONE: Deadline = Deadline(None);

    pub fn at(when: Instant) -> Self {
        Deadline(Some(when))
    }

    pub fn after(d: Duration) -> Self {
        Deadline(Instant::now().checked_add(d))
    }

    pub fn instant(&self) -> Option<Instant> {
        self.0
    }

    pub fn expired(&self) -> bool {
        self.0.is_some_and(|t| Instant::now() >= t)
    }

    /// `Err(DeadlineExceeded)` once expired.
    pub fn check(&self) -> Result<()> {
        if self.expired() {
            Err(IndexError::DeadlineExceeded)
        } else {
            Ok(())
        }
    }
}
