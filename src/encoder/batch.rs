//! What both encoders do around a forward pass: length-sorted batching and padding.

use candle_core::{Device, Tensor};

use super::tokenize::TokenizedText;
use super::Result;

/// Run `forward` over `items` in batches of `batch_size`, longest first (so each batch
/// pads little); results come back in input order. `forward` returns one result per item
/// of its batch.
pub(crate) fn in_length_batches<T>(
    items: &[TokenizedText],
    batch_size: usize,
    mut forward: impl FnMut(&[&TokenizedText]) -> Result<Vec<T>>,
) -> Result<Vec<T>> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(items[i].ids.len()));
    let mut out: Vec<Option<T>> = (0..items.len()).map(|_| None).collect();
    for chunk in order.chunks(batch_size.max(1)) {
        let batch: Vec<&TokenizedText> = chunk.iter().map(|&i| &items[i]).collect();
        for (&i, r) in chunk.iter().zip(forward(&batch)?) {
            out[i] = Some(r);
        }
    }
    Ok(out
        .into_iter()
        .map(|r| r.expect("forward returns one result per item"))
        .collect())
}

/// Token ids and attention mask of `batch`, right-padded with 0 to the longest:
/// two `batch x len` u32 tensors on `device`.
pub(crate) fn padded(batch: &[&TokenizedText], device: &Device) -> Result<(Tensor, Tensor)> {
    let max_len = batch.iter().map(|t| t.ids.len()).max().unwrap_or(0);
    let (mut ids, mut mask) = (Vec::new(), Vec::new());
    for t in batch {
        let pad = max_len - t.ids.len();
        ids.extend_from_slice(&t.ids);
        ids.extend(std::iter::repeat_n(0u32, pad));
        mask.extend_from_slice(&t.attention);
        mask.extend(std::iter::repeat_n(0u32, pad));
    }
    let shape = (batch.len(), max_len);
    Ok((
        Tensor::from_vec(ids, shape, device)?,
        Tensor::from_vec(mask, shape, device)?,
    ))
}
