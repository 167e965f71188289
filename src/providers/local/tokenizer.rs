//! The tokenizer of a GGUF model: `tokenizer.json` beside the file, else built from metadata.
//!
//! GGUF files carry their vocabulary in `tokenizer.ggml.*`. Byte-level BPE (`model = "gpt2"`,
//! what Qwen2 and Llama-3 files use) becomes a `tokenizers` BPE with Qwen2's split regex and a
//! ByteLevel decoder; control tokens (type 3) become special added tokens so `<|im_start|>` is
//! one token. SentencePiece vocabularies (`model = "llama"`, Llama-2) are refused with a clear
//! error: they need a `tokenizer.json` beside the file. Not here: chat templates (`template`).

use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer};

use super::LocalError;

/// Qwen2's pre-tokenizer split (the GPT-4 pattern with single digits), as in its tokenizer.json.
const QWEN2_SPLIT: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Llama-3's split (digits in groups of up to three).
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// GGUF token type of control tokens (`<|im_end|>`, `<|eot_id|>`).
const TOKEN_TYPE_CONTROL: i32 = 3;
/// GGUF token type of user-defined tokens (Qwen2 marks `<tool_call>` this way).
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

/// The tokenizer and the ids generation needs.
pub(crate) struct ModelTokenizer {
    pub tokenizer: Tokenizer,
    /// Ids that end a generation (eos, `<|im_end|>`, `<|eot_id|>`, `<|endoftext|>`).
    pub stop_ids: Vec<u32>,
    /// Where the tokenizer came from, for the doctor and logs.
    pub origin: &'static str,
}

/// Loads `tokenizer.json` beside `model_path` if present, else builds one from the metadata.
pub(crate) fn load(model_path: &Path, content: &Content) -> Result<ModelTokenizer, LocalError> {
    let beside = model_path.with_file_name("tokenizer.json");
    let (tokenizer, origin) = if beside.is_file() {
        let tokenizer = Tokenizer::from_file(&beside)
            .map_err(|error| LocalError::Tokenizer(format!("{}: {error}", beside.display())))?;
        (tokenizer, "tokenizer.json")
    } else {
        (from_metadata(content)?, "gguf metadata")
    };
    let mut stop_ids = Vec::new();
    if let Some(eos) = content.metadata.get("tokenizer.ggml.eos_token_id").and_then(|value| value.to_u32().ok()) {
        stop_ids.push(eos);
    }
    for marker in ["<|im_end|>", "<|eot_id|>", "<|endoftext|>", "<|end_of_text|>"] {
        if let Some(id) = tokenizer.token_to_id(marker) {
            if !stop_ids.contains(&id) {
                stop_ids.push(id);
            }
        }
    }
    Ok(ModelTokenizer { tokenizer, stop_ids, origin })
}

/// Builds a byte-level BPE tokenizer from `tokenizer.ggml.{model,pre,tokens,merges,token_type}`.
pub(crate) fn from_metadata(content: &Content) -> Result<Tokenizer, LocalError> {
    let text = |key: &str| content.metadata.get(key).and_then(|value| value.to_string().ok()).map(String::as_str);
    let model = text("tokenizer.ggml.model").unwrap_or("");
    if model != "gpt2" {
        return Err(LocalError::Tokenizer(format!(
            "tokenizer.ggml.model \"{model}\" is not supported from metadata (only byte-level BPE, \"gpt2\"); \
             place the model's tokenizer.json beside the file"
        )));
    }
    let tokens = string_array(content, "tokenizer.ggml.tokens")?;
    let merges = string_array(content, "tokenizer.ggml.merges")?;
    let types: Vec<i32> = match content.metadata.get("tokenizer.ggml.token_type") {
        Some(Value::Array(values)) => values.iter().map(|value| value.to_i32().unwrap_or(1)).collect(),
        _ => Vec::new(),
    };
    let vocab: Vocab = tokens.iter().enumerate().map(|(idx, token)| (token.clone(), idx as u32)).collect();
    let mut merge_pairs = Vec::with_capacity(merges.len());
    for merge in &merges {
        let Some((left, right)) = merge.split_once(' ') else {
            return Err(LocalError::Tokenizer(format!("malformed merge \"{merge}\" (expected \"left right\")")));
        };
        merge_pairs.push((left.to_string(), right.to_string()));
    }
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merge_pairs)
        .build()
        .map_err(|error| LocalError::Tokenizer(format!("cannot build BPE: {error}")))?;
    let split = match text("tokenizer.ggml.pre") {
        Some("llama-bpe" | "llama3") => LLAMA3_SPLIT,
        _ => QWEN2_SPLIT,
    };
    let split = Split::new(SplitPattern::Regex(split.to_string()), SplitDelimiterBehavior::Isolated, false)
        .map_err(|error| LocalError::Tokenizer(format!("bad split pattern: {error}")))?;
    let pre_tokenizer = Sequence::new(vec![
        PreTokenizerWrapper::Split(split),
        PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, false, false)),
    ]);
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(pre_tokenizer));
    tokenizer.with_decoder(Some(ByteLevel::default()));
    let special: Vec<AddedToken> = tokens
        .iter()
        .zip(types.iter())
        .filter(|(_, kind)| matches!(**kind, TOKEN_TYPE_CONTROL | TOKEN_TYPE_USER_DEFINED))
        .map(|(token, kind)| AddedToken::from(token.clone(), *kind == TOKEN_TYPE_CONTROL))
        .collect();
    tokenizer
        .add_special_tokens(special)
        .map_err(|error| LocalError::Tokenizer(format!("cannot add the special tokens: {error}")))?;
    Ok(tokenizer)
}

fn string_array(content: &Content, key: &str) -> Result<Vec<String>, LocalError> {
    match content.metadata.get(key) {
        Some(Value::Array(values)) => values
            .iter()
            .map(|value| value.to_string().cloned())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| LocalError::Tokenizer(format!("{key} holds a value that is not a string"))),
        Some(_) => Err(LocalError::Tokenizer(format!("{key} is not an array"))),
        None => Err(LocalError::Tokenizer(format!("{key} is missing from the metadata"))),
    }
}
