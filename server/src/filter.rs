//! The text between the sampler and the client. Stop strings must never reach the client, also
//! when streaming, so text that could be the start of one is held back until it is clear that
//! it is not; generation ends at the first match. With thinking on, a stream sends what comes
//! before `</think>` as `reasoning_content` and the rest as `content`, trimmed the way
//! [`sail::session::split_thinking`] trims them, so the streamed pieces add up to the same split.

use sail::format::template::{THINK_END, THINK_START};

/// Text for the client, split as the response fields.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Delta {
    pub reasoning: String,
    pub content: String,
}

impl Delta {
    pub fn is_empty(&self) -> bool {
        self.reasoning.is_empty() && self.content.is_empty()
    }
}

/// Length of the longest suffix of `text[from..]` that is a proper prefix of `pat`.
fn partial_suffix(text: &str, from: usize, pat: &str) -> usize {
    pat.char_indices().skip(1).map(|(k, _)| k).filter(|&k| text.len() - from >= k && text.ends_with(&pat[..k])).max().unwrap_or(0)
}

/// Stop strings over the generated text, and the thinking split of what passes them.
#[derive(Debug)]
pub struct Filter {
    stops: Vec<String>,
    /// Generated text, cut at the stop string once one matched.
    raw: String,
    /// Bytes of `raw` released.
    released: usize,
    stopped: bool,
    think: bool,
    /// Bytes of the reasoning and content views already sent.
    sent: (usize, usize),
}

impl Filter {
    pub fn new(stops: Vec<String>, think: bool) -> Filter {
        Filter { stops, raw: String::new(), released: 0, stopped: false, think, sent: (0, 0) }
    }

    /// Generated text up to (not including) a matched stop string.
    pub fn text(&self) -> &str {
        &self.raw
    }

    /// A stop string matched: generation should end.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Takes the next piece of generated text; returns what may be sent now.
    pub fn push(&mut self, piece: &str) -> Delta {
        if self.stopped {
            return Delta::default();
        }
        self.raw.push_str(piece);
        // a match starts at or after `released`: text is released only once no stop can start in it
        let from = self.released;
        if let Some(at) = self.stops.iter().filter_map(|s| self.raw[from..].find(s.as_str()).map(|i| from + i)).min() {
            self.raw.truncate(at);
            self.stopped = true;
            self.released = at;
        } else {
            let hold = self.stops.iter().map(|s| partial_suffix(&self.raw, from, s)).max().unwrap_or(0);
            self.released = self.raw.len() - hold;
        }
        self.deltas(false)
    }

    /// Generation ended: releases what was held back.
    pub fn finish(&mut self) -> Delta {
        self.released = self.raw.len();
        self.deltas(true)
    }

    /// What of the released text has not been sent yet.
    fn deltas(&mut self, last: bool) -> Delta {
        let text = &self.raw[..self.released];
        let (reasoning, content) = if self.think { think_views(text, last) } else { ("", text) };
        // the views only grow (see think_views); `get` keeps a slip from ever panicking
        let d = Delta {
            reasoning: reasoning.get(self.sent.0..).unwrap_or_default().to_string(),
            content: content.get(self.sent.1..).unwrap_or_default().to_string(),
        };
        self.sent = (self.sent.0.max(reasoning.len()), self.sent.1.max(content.len()));
        d
    }
}

/// The parts of `text` that are sure to be the start of the final reasoning and answer.
/// Before `</think>` everything is reasoning (a leading `<think>` dropped), less trailing
/// whitespace and anything that may become `</think>`; `last` releases those (trimmed).
fn think_views(text: &str, last: bool) -> (&str, &str) {
    match text.find(THINK_END) {
        Some(end) => {
            let reasoning = strip_open(&text[..end]).trim_end();
            (reasoning, text[end + THINK_END.len()..].trim())
        }
        None => {
            let head = strip_open(text);
            if head.len() < THINK_START.len() && THINK_START.starts_with(head) && !last && !head.is_empty() {
                return ("", ""); // may still become <think>
            }
            let head = if last { head } else { &head[..head.len() - partial_suffix(head, 0, THINK_END)] };
            (head.trim_end(), "")
        }
    }
}

/// `text` without leading whitespace and a leading `<think>`.
fn strip_open(text: &str) -> &str {
    let t = text.trim_start();
    t.strip_prefix(THINK_START).map(str::trim_start).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sail::session::split_thinking;

    /// Feeds `pieces` and returns (all deltas concatenated, final text, stopped).
    fn run(stops: &[&str], think: bool, pieces: &[&str]) -> (Delta, String, bool) {
        let mut f = Filter::new(stops.iter().map(|s| s.to_string()).collect(), think);
        let mut all = Delta::default();
        for p in pieces {
            let d = f.push(p);
            all.reasoning += &d.reasoning;
            all.content += &d.content;
            if f.stopped() {
                break;
            }
        }
        let d = f.finish();
        all.reasoning += &d.reasoning;
        all.content += &d.content;
        (all, f.text().to_string(), f.stopped())
    }

    #[test]
    fn stop_strings_never_leak_even_split_across_pieces() {
        let (d, text, stopped) = run(&["END"], false, &["Hello E", "N", "D world"]);
        assert_eq!((d.content.as_str(), text.as_str(), stopped), ("Hello ", "Hello ", true));
        // a false start is released once it cannot match
        let (d, _, stopped) = run(&["END"], false, &["an EN", "emy"]);
        assert_eq!((d.content.as_str(), stopped), ("an ENemy", false));
        // the earliest of several stops wins
        let (d, _, _) = run(&["xyz", "b"], false, &["a", "bxyz"]);
        assert_eq!(d.content, "a");
        // held text is released at the end
        let (d, _, stopped) = run(&["END"], false, &["the E"]);
        assert_eq!((d.content.as_str(), stopped), ("the E", false));
        // multi-byte characters around a stop
        let (d, _, _) = run(&["é!"], false, &["café", "!", "x"]);
        assert_eq!(d.content, "caf");
    }

    #[test]
    fn streamed_thinking_adds_up_to_split_thinking() {
        let texts = [
            "<think>\nI reason.\n</think>\n\nThe answer.",
            "  <think>a b </think>c ",
            "plain answer without tags",
            "reasoning without open tag</think> answer",
            "<think>x</think>",
        ];
        for full in texts {
            // every split into two-character pieces
            let chars: Vec<char> = full.chars().collect();
            let pieces: Vec<String> = chars.chunks(2).map(|c| c.iter().collect()).collect();
            let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
            let (d, text, _) = run(&[], true, &pieces);
            assert_eq!(text, full);
            let (reasoning, answer) = split_thinking(full);
            if full.contains(THINK_END) {
                assert_eq!((Some(d.reasoning.clone()), d.content.clone()), (reasoning, answer), "{full:?}");
            } else {
                // no </think>: a stream cannot know, so it was reasoning all along (documented)
                assert_eq!((d.reasoning.as_str(), d.content.as_str()), (answer.as_str(), ""), "{full:?}");
            }
        }
    }

    #[test]
    fn stop_applies_before_the_thinking_split() {
        let (d, _, stopped) = run(&["STOP"], true, &["<think>r</think> ans", "wer STOP more"]);
        assert!(stopped);
        assert_eq!((d.reasoning.as_str(), d.content.as_str()), ("r", "answer"));
    }
}
