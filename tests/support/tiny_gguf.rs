//! Writes a tiny qwen2-architecture GGUF with random weights and a byte-level BPE vocabulary in
//! its metadata, using candle's GGUF writer. Shared by tests/local_model.rs and benches/local.rs.
//!
//! The weights are random but shaped: every token embedding has 1.0 in dimension 0 and the
//! layers' weights are small, so the final hidden state always has a large positive dimension 0.
//! The output row of each control token and each non-printable byte has -50 there, so random
//! generation never ends early and its text is printable ASCII; `favour` puts +50 instead, so
//! that token always comes first (how a test proves that stop tokens end a generation).

use std::path::Path;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};

pub const HIDDEN: usize = 32;
pub const FFN: usize = 64;
pub const LAYERS: usize = 2;
pub const CONTEXT: u32 = 4096;

/// Extra tokens built by the merges below, in merge order.
const MERGES: &[(&str, &str)] = &[
    ("h", "e"),
    ("Ġ", "t"),
    ("Ġt", "he"),
    ("i", "n"),
    ("e", "r"),
    ("o", "n"),
    ("a", "n"),
    ("r", "e"),
    ("Ġ", "a"),
    ("s", "t"),
    ("Ġ", "s"),
    ("o", "u"),
    ("Ġ", "w"),
    ("a", "t"),
    ("e", "n"),
    ("l", "l"),
    ("Ġ", "c"),
    ("i", "s"),
    ("Ġ", "o"),
    ("o", "r"),
];

pub const SPECIALS: &[(&str, i32)] =
    &[("<|endoftext|>", 3), ("<|im_start|>", 3), ("<|im_end|>", 3), ("<tool_call>", 4), ("</tool_call>", 4)];

/// GPT-2's byte-to-character table: printable bytes map to themselves, the rest above 255.
pub fn byte_chars() -> Vec<char> {
    let mut printable: Vec<u32> = (u32::from(b'!')..=u32::from(b'~')).collect();
    printable.extend(0xA1..=0xAC);
    printable.extend(0xAE..=0xFF);
    let mut extra = 0;
    (0..256u32)
        .map(|byte| {
            if printable.contains(&byte) {
                char::from_u32(byte).unwrap()
            } else {
                extra += 1;
                char::from_u32(255 + extra).unwrap()
            }
        })
        .collect()
}

/// The vocabulary: 256 byte tokens (id = byte), the merged tokens, then the special tokens.
pub fn tokens() -> Vec<String> {
    let mut tokens: Vec<String> = byte_chars().into_iter().map(String::from).collect();
    tokens.extend(MERGES.iter().map(|(left, right)| format!("{left}{right}")));
    tokens.extend(SPECIALS.iter().map(|(token, _)| token.to_string()));
    tokens
}

pub fn token_id(token: &str) -> u32 {
    tokens().iter().position(|known| known == token).unwrap() as u32
}

/// A deterministic generator (the weights must be the same in every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    fn tensor(&mut self, rows: usize, cols: usize, scale: f32) -> Vec<f32> {
        (0..rows * cols).map(|_| self.next() * scale).collect()
    }
}

fn qtensor(values: Vec<f32>, shape: &[usize], dtype: GgmlDType) -> QTensor {
    let tensor = Tensor::from_vec(values, shape, &Device::Cpu).unwrap();
    QTensor::quantize(&tensor, dtype).unwrap()
}

/// Writes the model to `path`. `slow_formats`: store the FFN weights as Q5_0/Q5_1 (which the
/// loader must re-quantise). `favour`: a token that always wins.
pub fn write(path: &Path, slow_formats: bool, favour: Option<&str>) {
    let tokens = tokens();
    let vocab = tokens.len();
    let mut rng = Lcg(0x5eed);
    let favour = favour.map(token_id);
    let mut embedding = rng.tensor(vocab, HIDDEN, 0.5);
    let mut output = rng.tensor(vocab, HIDDEN, 1.0);
    for id in 0..vocab {
        embedding[id * HIDDEN] = 1.0;
        let is_special = id >= vocab - SPECIALS.len();
        let printable_byte = id < 256 && (0x20..0x7f).contains(&id);
        let allowed = !is_special && (id >= 256 || printable_byte);
        output[id * HIDDEN] = if Some(id as u32) == favour {
            50.0
        } else if allowed {
            0.0
        } else {
            -50.0
        };
    }
    let (ffn_in, ffn_out) =
        if slow_formats { (GgmlDType::Q5_0, GgmlDType::Q5_1) } else { (GgmlDType::F32, GgmlDType::F32) };
    let mut tensors: Vec<(String, QTensor)> = vec![
        ("token_embd.weight".into(), qtensor(embedding, &[vocab, HIDDEN], GgmlDType::F32)),
        ("output.weight".into(), qtensor(output, &[vocab, HIDDEN], GgmlDType::F32)),
        ("output_norm.weight".into(), qtensor(vec![1.0; HIDDEN], &[HIDDEN], GgmlDType::F32)),
    ];
    let kv = HIDDEN / 2;
    for layer in 0..LAYERS {
        let name = |part: &str| format!("blk.{layer}.{part}");
        let mut push = |part: &str, values: Vec<f32>, shape: &[usize], dtype: GgmlDType| {
            tensors.push((name(part), qtensor(values, shape, dtype)));
        };
        push("attn_norm.weight", vec![1.0; HIDDEN], &[HIDDEN], GgmlDType::F32);
        push("ffn_norm.weight", vec![1.0; HIDDEN], &[HIDDEN], GgmlDType::F32);
        push("attn_q.weight", rng.tensor(HIDDEN, HIDDEN, 0.3), &[HIDDEN, HIDDEN], GgmlDType::F32);
        push("attn_k.weight", rng.tensor(kv, HIDDEN, 0.3), &[kv, HIDDEN], GgmlDType::F32);
        push("attn_v.weight", rng.tensor(kv, HIDDEN, 0.1), &[kv, HIDDEN], GgmlDType::F32);
        push("attn_q.bias", rng.tensor(1, HIDDEN, 0.1), &[HIDDEN], GgmlDType::F32);
        push("attn_k.bias", rng.tensor(1, kv, 0.1), &[kv], GgmlDType::F32);
        push("attn_v.bias", rng.tensor(1, kv, 0.1), &[kv], GgmlDType::F32);
        push("attn_output.weight", rng.tensor(HIDDEN, HIDDEN, 0.05), &[HIDDEN, HIDDEN], GgmlDType::F32);
        push("ffn_gate.weight", rng.tensor(FFN, HIDDEN, 0.1), &[FFN, HIDDEN], ffn_in);
        push("ffn_up.weight", rng.tensor(FFN, HIDDEN, 0.1), &[FFN, HIDDEN], ffn_in);
        push("ffn_down.weight", rng.tensor(HIDDEN, FFN, 0.05), &[HIDDEN, FFN], ffn_out);
    }
    let mut types: Vec<Value> = vec![Value::I32(1); vocab - SPECIALS.len()];
    types.extend(SPECIALS.iter().map(|(_, kind)| Value::I32(*kind)));
    let metadata: Vec<(&str, Value)> = vec![
        ("general.architecture", Value::String("qwen2".into())),
        ("general.name", Value::String("tiny-random-qwen2".into())),
        ("qwen2.attention.head_count", Value::U32(4)),
        ("qwen2.attention.head_count_kv", Value::U32(2)),
        ("qwen2.embedding_length", Value::U32(HIDDEN as u32)),
        ("qwen2.feed_forward_length", Value::U32(FFN as u32)),
        ("qwen2.context_length", Value::U32(CONTEXT)),
        ("qwen2.block_count", Value::U32(LAYERS as u32)),
        ("qwen2.attention.layer_norm_rms_epsilon", Value::F32(1e-6)),
        ("qwen2.rope.freq_base", Value::F32(10000.0)),
        ("tokenizer.ggml.model", Value::String("gpt2".into())),
        ("tokenizer.ggml.pre", Value::String("qwen2".into())),
        ("tokenizer.ggml.tokens", Value::Array(tokens.iter().map(|token| Value::String(token.clone())).collect())),
        (
            "tokenizer.ggml.merges",
            Value::Array(MERGES.iter().map(|(left, right)| Value::String(format!("{left} {right}"))).collect()),
        ),
        ("tokenizer.ggml.token_type", Value::Array(types)),
        ("tokenizer.ggml.eos_token_id", Value::U32(token_id("<|im_end|>"))),
        ("tokenizer.ggml.bos_token_id", Value::U32(token_id("<|endoftext|>"))),
    ];
    let metadata: Vec<(&str, &Value)> = metadata.iter().map(|(key, value)| (*key, value)).collect();
    let tensors: Vec<(&str, &QTensor)> = tensors.iter().map(|(name, tensor)| (name.as_str(), tensor)).collect();
    let mut file = std::fs::File::create(path).unwrap();
    gguf_file::write(&mut file, &metadata, &tensors).unwrap();
}
