//! Chunkers: split a document into pieces of at most `chunk_size` characters.
//!
//! Sizes count Unicode scalar values (`char`s), as the Python version counts `len(str)`, and a
//! chunk never splits a character: the work is done on char indices and only then mapped to byte
//! ranges of the original text. Chunkers return ranges, not strings, so "no text is lost" is
//! checkable: consecutive ranges touch or overlap, and only whitespace-only chunks (useless to
//! embed) are dropped.
//!
//! - `fixed`: windows of `chunk_size`, each starting `chunk_size - chunk_overlap` after the last.
//! - `recursive` (default): split on the first separator of `\n\n`, `\n`, `. `, ` ` that occurs
//!   (the separator stays at the end of its piece), merge pieces greedily up to the size, recurse
//!   into oversize pieces with the remaining separators, and fall back to `fixed` when none is
//!   left. Overlap applies only in that fallback, as in the Python version.
//! - `sentence`: split after `.`, `!` or `?` followed by whitespace (the whitespace stays with its
//!   sentence), merge sentences up to the size; an oversize sentence falls back to `fixed`.

use std::ops::Range;

/// How documents are split.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ChunkStrategy {
    #[default]
    Recursive,
    Fixed,
    Sentence,
}

impl ChunkStrategy {
    /// The names the API accepts.
    pub const NAMES: &'static str = "recursive, fixed, sentence";

    pub fn parse(name: &str) -> Option<ChunkStrategy> {
        match name {
            "recursive" => Some(ChunkStrategy::Recursive),
            "fixed" => Some(ChunkStrategy::Fixed),
            "sentence" => Some(ChunkStrategy::Sentence),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ChunkStrategy::Recursive => "recursive",
            ChunkStrategy::Fixed => "fixed",
            ChunkStrategy::Sentence => "sentence",
        }
    }
}

/// A strategy with its sizes, in characters. Valid when `chunk_overlap < chunk_size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkOptions {
    pub strategy: ChunkStrategy,
    pub chunk_size: usize,
    pub chunk_overlap: usize,
}

impl Default for ChunkOptions {
    /// API.md's defaults.
    fn default() -> ChunkOptions {
        ChunkOptions { strategy: ChunkStrategy::Recursive, chunk_size: 512, chunk_overlap: 50 }
    }
}

const SEPARATORS: [&str; 4] = ["\n\n", "\n", ". ", " "];

/// Splits `text` into byte ranges of at most `chunk_size` characters each, in order. Options must
/// be valid (`Rag::ingest` checks them first); an invalid overlap is clamped so that windows
/// always advance.
pub fn split(text: &str, options: &ChunkOptions) -> Vec<Range<usize>> {
    let chars: Vec<char> = text.chars().collect();
    // bounds[i] = byte offset of char i; bounds[chars.len()] = text.len().
    let bounds: Vec<usize> = text.char_indices().map(|(offset, _)| offset).chain(std::iter::once(text.len())).collect();
    let size = options.chunk_size.max(1);
    let step = size - options.chunk_overlap.min(size - 1);
    let splitter = Splitter { chars: &chars, size, step };
    let pieces = match options.strategy {
        ChunkStrategy::Fixed => splitter.fixed(0..chars.len()),
        ChunkStrategy::Recursive => {
            let separators: Vec<Vec<char>> = SEPARATORS.iter().map(|sep| sep.chars().collect()).collect();
            splitter.recursive(0..chars.len(), &separators)
        }
        ChunkStrategy::Sentence => splitter.sentences(0..chars.len()),
    };
    pieces
        .into_iter()
        .filter(|piece| chars[piece.clone()].iter().any(|c| !c.is_whitespace()))
        .map(|piece| bounds[piece.start]..bounds[piece.end])
        .collect()
}

/// Works on char indices.
struct Splitter<'t> {
    chars: &'t [char],
    size: usize,
    step: usize,
}

impl Splitter<'_> {
    fn fixed(&self, range: Range<usize>) -> Vec<Range<usize>> {
        let mut out = Vec::new();
        let mut start = range.start;
        while start < range.end {
            let end = (start + self.size).min(range.end);
            out.push(start..end);
            if end == range.end {
                break;
            }
            start += self.step;
        }
        out
    }

    fn recursive(&self, range: Range<usize>, separators: &[Vec<char>]) -> Vec<Range<usize>> {
        if range.len() <= self.size {
            return vec![range];
        }
        let found = separators.iter().position(|sep| self.find(range.clone(), sep).is_some());
        let Some(sep_idx) = found else {
            return self.fixed(range);
        };
        let separator = &separators[sep_idx];
        let mut pieces = Vec::new();
        let mut start = range.start;
        while let Some(at) = self.find(start..range.end, separator) {
            let end = at + separator.len();
            pieces.push(start..end);
            start = end;
        }
        if start < range.end {
            pieces.push(start..range.end);
        }
        self.merge(pieces, |piece| self.recursive(piece, &separators[sep_idx + 1..]))
    }

    fn sentences(&self, range: Range<usize>) -> Vec<Range<usize>> {
        let mut pieces = Vec::new();
        let mut start = range.start;
        let mut at = range.start;
        while at < range.end {
            let ends_sentence = matches!(self.chars[at], '.' | '!' | '?')
                && self.chars.get(at + 1).is_some_and(|next| next.is_whitespace())
                && at + 1 < range.end;
            at += 1;
            if ends_sentence {
                while at < range.end && self.chars[at].is_whitespace() {
                    at += 1;
                }
                pieces.push(start..at);
                start = at;
            }
        }
        if start < range.end {
            pieces.push(start..range.end);
        }
        self.merge(pieces, |piece| self.fixed(piece))
    }

    /// Greedy merge of contiguous pieces up to the size; `oversize` splits a piece too large.
    fn merge(
        &self,
        pieces: Vec<Range<usize>>,
        oversize: impl Fn(Range<usize>) -> Vec<Range<usize>>,
    ) -> Vec<Range<usize>> {
        let mut out = Vec::new();
        let mut current: Option<Range<usize>> = None;
        for piece in pieces {
            if piece.len() > self.size {
                out.extend(current.take());
                out.extend(oversize(piece));
                continue;
            }
            current = match current {
                Some(open) if open.len() + piece.len() <= self.size => Some(open.start..piece.end),
                Some(open) => {
                    out.push(open);
                    Some(piece)
                }
                None => Some(piece),
            };
        }
        out.extend(current);
        out
    }

    /// First index in `range` where `pattern` starts.
    fn find(&self, range: Range<usize>, pattern: &[char]) -> Option<usize> {
        if pattern.is_empty() || range.len() < pattern.len() {
            return None;
        }
        (range.start..=range.end - pattern.len()).find(|&at| self.chars[at..at + pattern.len()] == *pattern)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn options(strategy: ChunkStrategy, chunk_size: usize, chunk_overlap: usize) -> ChunkOptions {
        ChunkOptions { strategy, chunk_size, chunk_overlap }
    }

    fn texts(text: &str, options: &ChunkOptions) -> Vec<String> {
        split(text, options).into_iter().map(|range| text[range].to_string()).collect()
    }

    #[test]
    fn fixed_windows_slide_by_size_minus_overlap() {
        let text: String = ('a'..='z').collect();
        let chunks = texts(&text, &options(ChunkStrategy::Fixed, 10, 3));
        assert_eq!(chunks, ["abcdefghij", "hijklmnopq", "opqrstuvwx", "vwxyz"]);
        assert_eq!(texts(&text, &options(ChunkStrategy::Fixed, 26, 5)), [text]);
    }

    #[test]
    fn recursive_prefers_paragraphs_then_lines_then_sentences() {
        let text = "First paragraph here.\n\nSecond one is a bit longer.\nIt has two lines.";
        let chunks = texts(text, &options(ChunkStrategy::Recursive, 30, 5));
        assert_eq!(chunks, ["First paragraph here.\n\n", "Second one is a bit longer.\n", "It has two lines."]);
        assert_eq!(texts(text, &options(ChunkStrategy::Recursive, 500, 50)), [text]);
    }

    #[test]
    fn recursive_falls_back_to_fixed_with_overlap_for_unbroken_text() {
        let text = "x".repeat(25);
        let chunks = texts(&text, &options(ChunkStrategy::Recursive, 10, 2));
        assert_eq!(chunks.iter().map(String::len).collect::<Vec<_>>(), [10, 10, 9]);
    }

    #[test]
    fn sentences_split_after_terminal_punctuation_and_merge_up_to_the_size() {
        let text = "One. Two! Three? Four.Five";
        assert_eq!(texts(text, &options(ChunkStrategy::Sentence, 10, 0)), ["One. Two! ", "Three? ", "Four.Five"]);
    }

    #[test]
    fn sizes_count_characters_and_never_split_one() {
        let text = "héllo wörld ünïcode 日本語のテキスト ".repeat(5);
        for strategy in [ChunkStrategy::Fixed, ChunkStrategy::Recursive, ChunkStrategy::Sentence] {
            for chunk in texts(&text, &options(strategy, 7, 2)) {
                assert!(chunk.chars().count() <= 7, "{strategy:?}: {chunk:?}");
            }
        }
    }

    #[test]
    fn whitespace_only_chunks_are_dropped() {
        let text = format!("alpha{}beta", " ".repeat(30));
        let chunks = texts(&text, &options(ChunkStrategy::Fixed, 10, 0));
        assert!(chunks.iter().all(|chunk| !chunk.trim().is_empty()));
        assert_eq!(chunks.first().map(String::as_str), Some("alpha     "));
    }

    fn strategy() -> impl Strategy<Value = ChunkStrategy> {
        prop_oneof![Just(ChunkStrategy::Fixed), Just(ChunkStrategy::Recursive), Just(ChunkStrategy::Sentence)]
    }

    proptest! {
        /// Limits kept and no text lost: each chunk has at most `chunk_size` chars, chunks are in
        /// order, consecutive chunks touch or overlap, and anything not covered is whitespace.
        #[test]
        fn chunks_keep_limits_and_lose_no_text(
            text in "[a-zé日 .!?\n]{0,400}",
            strategy in strategy(),
            size in 1usize..60,
            overlap_fraction in 0.0f64..1.0,
        ) {
            let overlap = ((size as f64) * overlap_fraction) as usize;
            let overlap = overlap.min(size - 1);
            let ranges = split(&text, &options(strategy, size, overlap));
            let mut covered_to = 0;
            for (idx, range) in ranges.iter().enumerate() {
                let chunk = &text[range.clone()];
                prop_assert!(chunk.chars().count() <= size);
                prop_assert!(!chunk.trim().is_empty());
                if range.start > covered_to {
                    prop_assert!(text[covered_to..range.start].trim().is_empty(), "gap before chunk {}", idx);
                }
                if idx > 0 {
                    prop_assert!(range.start >= ranges[idx - 1].start);
                }
                covered_to = covered_to.max(range.end);
            }
            prop_assert!(text[covered_to..].trim().is_empty());
            if strategy == ChunkStrategy::Fixed {
                // Fixed windows overlap by exactly `overlap` characters (except a short last one).
                for pair in ranges.windows(2) {
                    let shared = text[pair[1].start..pair[0].end.max(pair[1].start)].chars().count();
                    prop_assert!(shared <= overlap);
                }
            }
        }
    }
}
