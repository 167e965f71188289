//! Window strategies: which stored turns a run sends to the model.
//!
//! `sliding_window` keeps the newest `max_turns` messages; `token_budget` the newest messages
//! whose estimated tokens fit in `max_tokens`; `summary` sends the stored summary plus the turns
//! it does not cover, and says when older turns should be folded into a new summary.

use crate::config::agent::{MemoryConfig, MemoryStrategy};

use super::{History, Turn};

/// What a run gets from memory.
#[derive(Debug, Clone, Default)]
pub struct Window {
    pub turns: Vec<Turn>,
    pub summary: Option<String>,
    /// For `summary`: turns to fold into the summary before this run, and the sequence number
    /// the new summary will cover up to (exclusive).
    pub to_summarise: Option<(Vec<Turn>, u64)>,
}

/// How many of the newest turns stay verbatim when older ones are summarised.
const KEEP_VERBATIM: usize = 10;

pub fn shape(history: &History, memory: &MemoryConfig) -> Window {
    let max_turns = memory.max_turns as usize;
    match memory.strategy {
        MemoryStrategy::SlidingWindow => {
            let skip = history.turns.len().saturating_sub(max_turns);
            Window { turns: history.turns[skip..].iter().map(|(_, turn)| turn.clone()).collect(), ..Window::default() }
        }
        MemoryStrategy::TokenBudget => {
            let mut budget = u64::from(memory.max_tokens);
            let mut kept = Vec::new();
            for (_, turn) in history.turns.iter().rev() {
                let cost = u64::from(turn.token_count.max(1));
                if cost > budget {
                    break;
                }
                budget -= cost;
                kept.push(turn.clone());
            }
            kept.reverse();
            Window { turns: kept, ..Window::default() }
        }
        MemoryStrategy::Summary => {
            let upto = history.summary.as_ref().map_or(0, |summary| summary.upto);
            let live: Vec<&(u64, Turn)> = history.turns.iter().filter(|(seq, _)| *seq >= upto).collect();
            let summary = history.summary.as_ref().map(|summary| summary.summary.clone());
            if live.len() > max_turns {
                let keep = KEEP_VERBATIM.min(max_turns);
                let split = live.len() - keep;
                let folded = live[..split].iter().map(|(_, turn)| turn.clone()).collect();
                let new_upto = live[split].0;
                let turns = live[split..].iter().map(|(_, turn)| turn.clone()).collect();
                Window { turns, summary, to_summarise: Some((folded, new_upto)) }
            } else {
                Window { turns: live.into_iter().map(|(_, turn)| turn.clone()).collect(), summary, to_summarise: None }
            }
        }
    }
}
