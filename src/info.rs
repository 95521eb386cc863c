//! What an index holds, as `tessera info` prints it and `GET /indexes/{name}` returns it:
//! its segments with live and deleted counts, and how old its PLAID codec is (how far
//! the vectors added since it was trained lie from its centroids).

use serde::Serialize;
use tessera_index::Manifest;
use utoipa::ToSchema;

/// One segment.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SegmentInfo {
    pub id: u64,
    pub docs: usize,
    pub live_docs: usize,
    pub deleted_docs: usize,
    pub vectors: usize,
    pub bytes: u64,
    /// The commit that wrote it.
    pub generation: u64,
    /// `batch` (added documents), `merge`, `compact --retrain`, or `format-1/2` for the
    /// one segment of an index written before segments.
    pub kind: String,
}

/// The PLAID codec and how well it still fits.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CodecInfo {
    pub id: u64,
    pub num_centroids: usize,
    pub nbits: u32,
    /// The commit that trained it, and the vectors the index had then.
    pub trained_generation: u64,
    pub trained_on_vectors: usize,
    /// Vectors in the index now, and the share of them added after the training.
    pub vectors_now: usize,
    /// Mean residual norm (vector minus nearest centroid) of the training sample.
    pub trained_residual_norm: Option<f32>,
    /// The same over the segments' vectors (those that recorded it).
    pub current_residual_norm: Option<f32>,
    /// current / trained: 1 = the vectors fit the centroids as well as the training
    /// sample did; `compact --retrain` retrains (see the README for when).
    pub drift: Option<f32>,
}

/// The whole index.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IndexReport {
    pub format_version: u32,
    pub generation: u64,
    pub live_docs: usize,
    pub deleted_docs: usize,
    pub vectors: usize,
    pub bytes: u64,
    pub bytes_per_vector: f64,
    pub components: Vec<String>,
    /// How new segments keep vectors: f16 (exact), int8 or none (`--store`).
    pub store: String,
    pub segments: Vec<SegmentInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub codec: Option<CodecInfo>,
}

impl IndexReport {
    pub fn of(m: &Manifest) -> Self {
        let segments = m
            .segments
            .iter()
            .map(|s| SegmentInfo {
                id: s.id,
                docs: s.num_docs,
                live_docs: s.live_docs(),
                deleted_docs: s.num_docs - s.live_docs(),
                vectors: s.num_vectors,
                bytes: s.files().iter().map(|f| f.bytes).sum(),
                generation: s.generation,
                kind: s
                    .build
                    .get("kind")
                    .and_then(|k| k.as_str())
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("format-{}", m.format_version.min(2))),
            })
            .collect();
        let codec = m.codec.as_ref().map(|c| {
            let (mut sum, mut n) = (0.0f64, 0usize);
            for s in &m.segments {
                if let Some(r) = s.plaid.as_ref().and_then(|p| p.mean_residual_norm) {
                    sum += f64::from(r) * s.num_vectors as f64;
                    n += s.num_vectors;
                }
            }
            let current = (n > 0).then(|| (sum / n as f64) as f32);
            CodecInfo {
                id: c.id,
                num_centroids: c.num_centroids,
                nbits: c.quantizer.nbits,
                trained_generation: c.trained_generation,
                trained_on_vectors: c.trained_on_vectors,
                vectors_now: m.num_vectors,
                trained_residual_norm: c.mean_residual_norm,
                current_residual_norm: current,
                drift: match (current, c.mean_residual_norm) {
                    (Some(cur), Some(t)) if t > 0.0 => Some(cur / t),
                    _ => None,
                },
            }
        });
        IndexReport {
            format_version: m.format_version,
            generation: m.generation,
            live_docs: m.num_docs,
            deleted_docs: m.deleted_docs(),
            vectors: m.num_vectors,
            bytes: m.index_bytes(),
            bytes_per_vector: m.index_bytes() as f64 / m.num_vectors.max(1) as f64,
            components: m.components.iter().map(|c| c.to_string()).collect(),
            store: m.settings.store.as_str().to_string(),
            segments,
            codec,
        }
    }

    /// The report as a few lines for a terminal.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "format {} · generation {} · {} live documents, {} deleted · {} vectors · {:.1} MB ({:.1} bytes/vector)\ncomponents {} · vectors kept as {}\n",
            self.format_version,
            self.generation,
            self.live_docs,
            self.deleted_docs,
            self.vectors,
            self.bytes as f64 / 1e6,
            self.bytes_per_vector,
            self.components.join(","),
            self.store
        );
        s.push_str(&format!("{} segments:\n", self.segments.len()));
        s.push_str("      id      docs      live   deleted     vectors        MB  gen  kind\n");
        for g in &self.segments {
            s.push_str(&format!(
                "{:>8} {:>9} {:>9} {:>9} {:>11} {:>9.1} {:>4}  {}\n",
                g.id,
                g.docs,
                g.live_docs,
                g.deleted_docs,
                g.vectors,
                g.bytes as f64 / 1e6,
                g.generation,
                g.kind
            ));
        }
        if let Some(c) = &self.codec {
            s.push_str(&format!(
                "codec {}: {} centroids, nbits {}, trained at generation {} on {} vectors (the index has {} now, {:.0}% added since)\n",
                c.id,
                c.num_centroids,
                c.nbits,
                c.trained_generation,
                c.trained_on_vectors,
                c.vectors_now,
                100.0 * c.vectors_now.saturating_sub(c.trained_on_vectors) as f64 / c.vectors_now.max(1) as f64
            ));
            if let (Some(t), Some(cur), Some(d)) =
                (c.trained_residual_norm, c.current_residual_norm, c.drift)
            {
                s.push_str(&format!(
                    "      residual norm {cur:.4} now vs {t:.4} at training: drift {d:.3}\n"
                ));
            }
        }
        s
    }
}
