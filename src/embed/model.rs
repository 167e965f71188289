//! The MiniLM sentence model: tokenizer + BERT + mean pooling + L2 normalisation, synchronous.
//!
//! The weights, tokenizer and config are compiled into the binary (`include_bytes!`), so the
//! daemon works offline and there is nothing to download or find at run time. The weights are
//! stored as f16 (45 MB instead of 91 MB) and upcast to f32 when `SentenceModel::load` builds the
//! tensors: candle's f32 CPU kernels are the fast ones, and the result matches
//! sentence-transformers to a cosine of 0.999999.
//!
//! This type is only driven by the embedder's worker thread (`worker`); it blocks for as long as
//! a forward pass takes (12-15 ms for one sentence, ~200 ms for a batch of 32).

use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{Encoding, Tokenizer, TruncationParams};

use super::EmbedError;

const WEIGHTS: &[u8] = include_bytes!("../../models/all-MiniLM-L6-v2/model.safetensors");
const TOKENIZER: &[u8] = include_bytes!("../../models/all-MiniLM-L6-v2/tokenizer.json");
const CONFIG: &[u8] = include_bytes!("../../models/all-MiniLM-L6-v2/config.json");

/// Output dimension of all-MiniLM-L6-v2.
pub(crate) const DIMENSION: usize = 384;

/// sentence-transformers' `max_seq_length` for this model: longer texts are truncated. (The
/// shipped tokenizer.json says 128; the model was trained and is served with 256.)
pub(crate) const MAX_TOKENS: usize = 256;

/// The loaded model: kept by the worker for the life of the process.
pub(crate) struct SentenceModel {
    tokenizer: Tokenizer,
    bert: BertModel,
    device: Device,
}

impl SentenceModel {
    /// Parses the embedded files and builds the f32 tensors (~0.3 s in release builds).
    pub(crate) fn load() -> Result<SentenceModel, EmbedError> {
        let mut tokenizer = Tokenizer::from_bytes(TOKENIZER).map_err(|error| EmbedError::Load(error.to_string()))?;
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: MAX_TOKENS, ..TruncationParams::default() }))
            .map_err(|error| EmbedError::Load(error.to_string()))?;
        // We pad each batch ourselves to its longest text.
        tokenizer.with_padding(None);
        let config: Config = serde_json::from_slice(CONFIG).map_err(|error| EmbedError::Load(error.to_string()))?;
        let device = Device::Cpu;
        let weights = VarBuilder::from_slice_safetensors(WEIGHTS, DType::F32, &device)
            .map_err(|error| EmbedError::Load(error.to_string()))?;
        let bert = BertModel::load(weights, &config).map_err(|error| EmbedError::Load(error.to_string()))?;
        Ok(SentenceModel { tokenizer, bert, device })
    }

    /// Tokenizes one text (with `[CLS]`/`[SEP]`, truncated to `MAX_TOKENS`).
    pub(crate) fn tokenize(&self, text: &str) -> Result<Encoding, EmbedError> {
        self.tokenizer.encode_fast(text, true).map_err(|error| EmbedError::Tokenize(error.to_string()))
    }

    /// One forward pass over `encodings`, padded to the longest; returns one normalised vector
    /// per encoding, in order, concatenated (`encodings.len() * DIMENSION` floats).
    pub(crate) fn embed(&self, encodings: &[&Encoding]) -> Result<Vec<f32>, EmbedError> {
        if encodings.is_empty() {
            return Ok(Vec::new());
        }
        let n_texts = encodings.len();
        let longest = encodings.iter().map(|encoding| encoding.get_ids().len()).max().unwrap_or(0).max(1);
        let mut ids = vec![0u32; n_texts * longest];
        let mut mask = vec![0u32; n_texts * longest];
        for (text_idx, encoding) in encodings.iter().enumerate() {
            let row = text_idx * longest;
            for (token_idx, (&id, &attend)) in encoding.get_ids().iter().zip(encoding.get_attention_mask()).enumerate()
            {
                ids[row + token_idx] = id;
                mask[row + token_idx] = attend;
            }
        }
        let inference = |error: candle_core::Error| EmbedError::Inference(error.to_string());
        let input_ids = Tensor::from_vec(ids, (n_texts, longest), &self.device).map_err(inference)?;
        let token_types = input_ids.zeros_like().map_err(inference)?;
        let attention = Tensor::from_vec(mask, (n_texts, longest), &self.device).map_err(inference)?;
        let hidden = self.bert.forward(&input_ids, &token_types, Some(&attention)).map_err(inference)?;
        // Mean pooling over the real tokens: sum(hidden * mask) / sum(mask).
        let mask = attention.to_dtype(DType::F32).and_then(|mask| mask.unsqueeze(2)).map_err(inference)?;
        let summed = hidden.broadcast_mul(&mask).and_then(|masked| masked.sum(1)).map_err(inference)?;
        let counts = mask.sum(1).and_then(|counts| counts.clamp(1e-9, f32::MAX)).map_err(inference)?;
        let pooled = summed.broadcast_div(&counts).map_err(inference)?;
        // L2 normalisation, as sentence-transformers' `normalize_embeddings=True`.
        let norms = pooled
            .sqr()
            .and_then(|squares| squares.sum_keepdim(D::Minus1))
            .and_then(|sums| sums.sqrt())
            .and_then(|norms| norms.clamp(1e-12, f32::MAX))
            .map_err(inference)?;
        let normalised = pooled.broadcast_div(&norms).map_err(inference)?;
        normalised.flatten_all().and_then(|flat| flat.to_vec1::<f32>()).map_err(inference)
    }
}
