//! GGUF files: reading the header, re-quantising slow formats, and loading the weights.
//!
//! candle has fast CPU matmul kernels for Q4_0, Q8_0 and the K-quants but none for Q5_0/Q5_1
//! (they dequantise on every call), so such tensors are re-quantised to Q8_0 once: at load, in
//! memory, with a warning, or ahead of time by `astromesh model convert IN OUT`. Q8_0 rather
//! than Q4_0 because re-quantising to a coarser format loses more than the source lost.
//! Families: `qwen2` and `llama` (candle-transformers' quantized models). Not here: tokens
//! (`tokenizer`), prompts (`template`), the generation loop (`worker`).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Cursor, Read, Seek, Write};
use std::path::Path;

use candle_core::quantized::gguf_file::{self, Content};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use candle_transformers::models::{quantized_llama, quantized_qwen2};

use super::LocalError;

/// The model families we can run, from `general.architecture`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    Qwen2,
    Llama,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Qwen2 => "qwen2",
            Family::Llama => "llama",
        }
    }
}

/// What the header says, read without loading any tensor data.
#[derive(Debug, Clone)]
pub(crate) struct GgufSummary {
    pub family: Family,
    pub size_bytes: u64,
    /// Tensor count per storage format, e.g. `{"Q4_0": 169, "F32": 121}`.
    pub formats: BTreeMap<String, usize>,
    pub context_length: usize,
}

impl GgufSummary {
    /// The format of the most tensors other than F32 norms ("Q4_0"), for the doctor.
    pub fn quantisation(&self) -> String {
        let quantised = self.formats.iter().filter(|(name, _)| *name != "F32").max_by_key(|(_, count)| **count);
        quantised
            .or_else(|| self.formats.iter().max_by_key(|(_, count)| **count))
            .map_or_else(String::new, |(name, _)| name.clone())
    }

    /// Whether any tensor needs re-quantising.
    pub fn needs_requantise(&self) -> bool {
        self.formats.keys().any(|name| name == "Q5_0" || name == "Q5_1")
    }
}

fn format_name(dtype: GgmlDType) -> String {
    format!("{dtype:?}").to_uppercase()
}

pub(crate) fn open(path: &Path) -> Result<(Content, BufReader<File>), LocalError> {
    let file = File::open(path)
        .map_err(|error| LocalError::Io { path: path.display().to_string(), reason: error.to_string() })?;
    let mut reader = BufReader::new(file);
    let content =
        Content::read(&mut reader).map_err(|error| LocalError::Format(format!("{}: {error}", path.display())))?;
    Ok((content, reader))
}

/// Reads the header of `path` and describes it.
pub(crate) fn summarise(path: &Path) -> Result<GgufSummary, LocalError> {
    let size_bytes = std::fs::metadata(path)
        .map_err(|error| LocalError::Io { path: path.display().to_string(), reason: error.to_string() })?
        .len();
    let (content, _) = open(path)?;
    summarise_content(&content, size_bytes)
}

pub(crate) fn summarise_content(content: &Content, size_bytes: u64) -> Result<GgufSummary, LocalError> {
    let architecture = content
        .metadata
        .get("general.architecture")
        .and_then(|value| value.to_string().ok())
        .cloned()
        .unwrap_or_default();
    let family = match architecture.as_str() {
        "qwen2" => Family::Qwen2,
        "llama" => Family::Llama,
        other => {
            return Err(LocalError::Format(format!(
                "architecture \"{other}\" is not supported (expected qwen2 or llama)"
            )))
        }
    };
    let mut formats = BTreeMap::new();
    for info in content.tensor_infos.values() {
        *formats.entry(format_name(info.ggml_dtype)).or_insert(0) += 1;
    }
    let context_length = content
        .metadata
        .get(&format!("{architecture}.context_length"))
        .and_then(|value| value.to_u32().ok())
        .unwrap_or(2048) as usize;
    Ok(GgufSummary { family, size_bytes, formats, context_length })
}

/// The weights of a loaded model, one variant per family.
pub(crate) enum Weights {
    Qwen2(quantized_qwen2::ModelWeights),
    Llama(quantized_llama::ModelWeights),
}

impl Weights {
    /// Logits for the last position of `tokens`, which start at `position` in the sequence.
    pub fn forward(&mut self, tokens: &[u32], position: usize) -> candle_core::Result<Tensor> {
        let input = Tensor::new(tokens, &Device::Cpu)?.unsqueeze(0)?;
        let logits = match self {
            Weights::Qwen2(model) => model.forward(&input, position)?,
            Weights::Llama(model) => model.forward(&input, position)?,
        };
        logits.squeeze(0)
    }
}

/// Loads the weights, re-quantising Q5_0/Q5_1 tensors in memory first when there are any.
pub(crate) fn load_weights(path: &Path, summary: &GgufSummary) -> Result<Weights, LocalError> {
    let (content, mut reader) = open(path)?;
    if summary.needs_requantise() {
        let mut buffer = Cursor::new(Vec::new());
        let converted = requantise(&content, &mut reader, &mut buffer)?;
        tracing::warn!(
            file = %path.display(),
            tensors = converted,
            "Q5_0/Q5_1 tensors have no fast CPU kernel in candle; re-quantised to Q8_0 at load \
             (run `astromesh model convert` once to skip this)"
        );
        buffer.set_position(0);
        let content = Content::read(&mut buffer).map_err(|error| LocalError::Format(error.to_string()))?;
        return build(summary.family, content, &mut buffer);
    }
    build(summary.family, content, &mut reader)
}

fn build<R: Read + Seek>(family: Family, content: Content, reader: &mut R) -> Result<Weights, LocalError> {
    let device = Device::Cpu;
    let weights = match family {
        Family::Qwen2 => quantized_qwen2::ModelWeights::from_gguf(content, reader, &device).map(Weights::Qwen2),
        Family::Llama => quantized_llama::ModelWeights::from_gguf(content, reader, &device).map(Weights::Llama),
    };
    weights.map_err(|error| LocalError::Format(format!("cannot load the {} weights: {error}", family.as_str())))
}

/// Writes `content` to `out` with every Q5_0/Q5_1 tensor re-quantised to Q8_0; returns how
/// many tensors changed. Metadata is copied as is.
pub(crate) fn requantise<R: Read + Seek, W: Write + Seek>(
    content: &Content,
    reader: &mut R,
    out: &mut W,
) -> Result<usize, LocalError> {
    let device = Device::Cpu;
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    // Keep the file's tensor order (by offset), so the output reads like the input.
    names.sort_by_key(|name| content.tensor_infos[*name].offset);
    let mut tensors: Vec<(String, QTensor)> = Vec::with_capacity(names.len());
    let mut converted = 0;
    for name in names {
        let tensor =
            content.tensor(reader, name, &device).map_err(|error| LocalError::Format(format!("{name}: {error}")))?;
        let tensor = match tensor.dtype() {
            GgmlDType::Q5_0 | GgmlDType::Q5_1 => {
                converted += 1;
                let values = tensor.dequantize(&device).map_err(|error| LocalError::Format(error.to_string()))?;
                QTensor::quantize(&values, GgmlDType::Q8_0).map_err(|error| LocalError::Format(error.to_string()))?
            }
            _ => tensor,
        };
        tensors.push((name.clone(), tensor));
    }
    let metadata: Vec<(&str, &gguf_file::Value)> =
        content.metadata.iter().map(|(key, value)| (key.as_str(), value)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(name, tensor)| (name.as_str(), tensor)).collect();
    gguf_file::write(out, &metadata, &tensor_refs)
        .map_err(|error| LocalError::Format(format!("cannot write GGUF: {error}")))?;
    Ok(converted)
}

/// `astromesh model convert IN OUT`: re-quantises Q5_0/Q5_1 tensors into a new file.
/// Returns the number of tensors re-quantised.
pub fn convert(input: &Path, output: &Path) -> Result<usize, LocalError> {
    let (content, mut reader) = open(input)?;
    summarise_content(&content, 0)?;
    let file = File::create(output)
        .map_err(|error| LocalError::Io { path: output.display().to_string(), reason: error.to_string() })?;
    let mut writer = std::io::BufWriter::new(file);
    let converted = requantise(&content, &mut reader, &mut writer)?;
    writer.flush().map_err(|error| LocalError::Io { path: output.display().to_string(), reason: error.to_string() })?;
    Ok(converted)
}
