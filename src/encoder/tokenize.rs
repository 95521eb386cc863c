//! Text -> token ids with ColBERT's conventions: `[CLS] marker? tokens… [SEP]`,
//! truncation that keeps `[SEP]`, `[MASK]` query augmentation, punctuation skiplist.

use std::collections::HashSet;
use std::path::Path;

use tokenizers::Tokenizer;

use super::{EncoderError, EncoderSettings, Result, Role};

/// One text, ready for the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizedText {
    pub ids: Vec<u32>,
    /// 1 where the model attends to the position.
    pub attention: Vec<u32>,
    /// Positions whose output becomes a vector (never padding).
    pub keep: Vec<bool>,
    /// Whole-word index of each position (`None` for special tokens), for word pooling.
    pub word_ids: Vec<Option<u32>>,
    /// The text had more tokens than the role's limit and was cut.
    pub truncated: bool,
    /// Positions of the text's own tokens (between `[CLS]`/marker and `[SEP]`).
    pub body: std::ops::Range<usize>,
}

impl TokenizedText {
    /// Whole-word index of each position that becomes a vector, in vector order.
    pub fn kept_word_ids(&self) -> Vec<Option<u32>> {
        self.word_ids
            .iter()
            .zip(&self.keep)
            .filter(|(_, k)| **k)
            .map(|(w, _)| *w)
            .collect()
    }
}

/// A position's token and where it came from in the text.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenSpan {
    pub token: String,
    /// Character (Unicode scalar) offsets in the text; `None` for special tokens,
    /// markers and padding.
    pub chars: Option<CharSpan>,
}

/// `[start, end)` in Unicode scalar values (a JavaScript page indexes `Array.from(text)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct CharSpan {
    pub start: usize,
    pub end: usize,
}

/// ASCII punctuation, as in ColBERT's `string.punctuation` skiplist.
const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

pub(crate) struct TextTokenizer {
    tokenizer: Tokenizer,
    cls: u32,
    sep: u32,
    mask: u32,
    query_marker: Option<u32>,
    doc_marker: Option<u32>,
    skiplist: HashSet<u32>,
    settings: EncoderSettings,
    fingerprint: String,
}

impl TextTokenizer {
    pub fn load(path: &Path, settings: &EncoderSettings) -> Result<Self> {
        let mut tokenizer = Tokenizer::from_file(path).map_err(|e| EncoderError::Model {
            path: path.to_path_buf(),
            reason: format!("cannot load tokenizer: {e}"),
        })?;
        // Checkpoints often ship fixed padding/truncation (MiniLM pads and cuts at 128);
        // we frame, truncate and pad ourselves.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| EncoderError::Tokenizer(e.to_string()))?;
        // Two tokenizers that serialise identically (vocabulary, normaliser, pre-tokeniser,
        // model) split every text identically.
        let fingerprint = {
            use sha2::{Digest, Sha256};
            let json = tokenizer
                .to_string(false)
                .map_err(|e| EncoderError::Tokenizer(e.to_string()))?;
            Sha256::digest(json.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        };
        let id = |tok: &str| {
            tokenizer
                .token_to_id(tok)
                .ok_or_else(|| EncoderError::Model {
                    path: path.to_path_buf(),
                    reason: format!("vocabulary has no {tok} token"),
                })
        };
        let (cls, sep, mask) = (id("[CLS]")?, id("[SEP]")?, id("[MASK]")?);
        let query_marker = settings.query_marker.as_deref().map(id).transpose()?;
        let doc_marker = settings.doc_marker.as_deref().map(id).transpose()?;
        let skiplist = if settings.skip_punctuation {
            PUNCTUATION
                .chars()
                .filter_map(|c| tokenizer.token_to_id(&c.to_string()))
                .collect()
        } else {
            HashSet::new()
        };
        Ok(TextTokenizer {
            tokenizer,
            cls,
            sep,
            mask,
            query_marker,
            doc_marker,
            skiplist,
            settings: settings.clone(),
            fingerprint,
        })
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    pub fn tokenize(&self, texts: &[&str], role: Role) -> Result<Vec<TokenizedText>> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), false)
            .map_err(|e| EncoderError::Tokenizer(e.to_string()))?;
        Ok(encodings
            .iter()
            .map(|enc| self.frame(enc.get_ids(), enc.get_word_ids(), role))
            .collect())
    }

    /// Tokenise one text as [`TextTokenizer::tokenize`] does, also giving every position
    /// its token string and its span in `text` (`None` for special tokens and padding).
    pub fn tokenize_with_spans(
        &self,
        text: &str,
        role: Role,
    ) -> Result<(TokenizedText, Vec<TokenSpan>)> {
        let enc = self
            .tokenizer
            .encode_char_offsets(text, false)
            .map_err(|e| EncoderError::Tokenizer(e.to_string()))?;
        let framed = self.frame(enc.get_ids(), enc.get_word_ids(), role);
        let offsets = enc.get_offsets();
        let spans = framed
            .ids
            .iter()
            .enumerate()
            .map(|(i, &id)| TokenSpan {
                token: self.tokenizer.id_to_token(id).unwrap_or_default(),
                chars: framed.body.contains(&i).then(|| {
                    let (start, end) = offsets[i - framed.body.start];
                    CharSpan { start, end }
                }),
            })
            .collect();
        Ok((framed, spans))
    }

    /// Add special tokens and marker, truncate, augment, choose kept positions.
    pub fn frame(&self, body: &[u32], words: &[Option<u32>], role: Role) -> TokenizedText {
        let (max_len, marker) = match role {
            Role::Query => (self.settings.query_max_len, self.query_marker),
            Role::Document => (self.settings.doc_max_len, self.doc_marker),
        };
        let specials = 2 + usize::from(marker.is_some());
        let room = max_len.saturating_sub(specials);
        let truncated = body.len() > room;
        let body_len = body.len().min(room);

        let mut ids = Vec::with_capacity(max_len.max(body_len + specials));
        let mut word_ids = Vec::with_capacity(ids.capacity());
        ids.push(self.cls);
        word_ids.push(None);
        if let Some(m) = marker {
            ids.push(m);
            word_ids.push(None);
        }
        let body_range = ids.len()..ids.len() + body_len;
        ids.extend_from_slice(&body[..body_len]);
        word_ids.extend_from_slice(&words[..body_len]);
        ids.push(self.sep);
        word_ids.push(None);
        let mut attention = vec![1u32; ids.len()];
        let mut keep = vec![true; ids.len()];

        match role {
            Role::Query if self.settings.query_augmentation => {
                let pad = max_len.saturating_sub(ids.len());
                let attend = u32::from(self.settings.attend_to_mask_tokens);
                ids.extend(std::iter::repeat_n(self.mask, pad));
                word_ids.extend(std::iter::repeat_n(None, pad));
                attention.extend(std::iter::repeat_n(attend, pad));
                keep.extend(std::iter::repeat_n(true, pad));
            }
            Role::Document if !self.skiplist.is_empty() => {
                for (k, id) in keep.iter_mut().zip(&ids) {
                    if self.skiplist.contains(id) {
                        *k = false;
                    }
                }
            }
            _ => {}
        }
        TokenizedText {
            ids,
            attention,
            keep,
            word_ids,
            truncated,
            body: body_range,
        }
    }
}
