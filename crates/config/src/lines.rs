//! Maps JSON pointers to the YAML lines they were read from.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

enum Frame {
    Map { key: Option<String> },
    Seq { index: usize },
}

#[derive(Default)]
struct Indexer {
    stack: Vec<Frame>,
    lines: HashMap<String, (usize, usize)>,
}

impl Indexer {
    fn pointer(&self) -> String {
        let mut out = String::new();
        for frame in &self.stack {
            match frame {
                Frame::Map { key: Some(k) } => {
                    out.push('/');
                    out.push_str(&k.replace('~', "~0").replace('/', "~1"));
                }
                Frame::Map { key: None } => {}
                Frame::Seq { index } => {
                    out.push('/');
                    out.push_str(&index.to_string());
                }
            }
        }
        out
    }

    /// Records the current position for a value starting at `mark`.
    fn record(&mut self, mark: Marker) {
        let p = self.pointer();
        self.lines
            .entry(p)
            .or_insert((mark.line().max(1), mark.col() + 1));
    }

    /// Moves past a completed value in the enclosing collection.
    fn advance(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Map { key }) => *key = None,
            Some(Frame::Seq { index }) => *index += 1,
            None => {}
        }
    }

    fn expecting_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { key: None }))
    }
}

impl MarkedEventReceiver for Indexer {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(value, ..) => {
                if self.expecting_key() {
                    if let Some(Frame::Map { key }) = self.stack.last_mut() {
                        *key = Some(value);
                    }
                    self.record(mark);
                } else {
                    self.record(mark);
                    self.advance();
                }
            }
            Event::Alias(_) => {
                self.record(mark);
                self.advance();
            }
            Event::MappingStart(..) => {
                self.record(mark);
                self.stack.push(Frame::Map { key: None });
            }
            Event::SequenceStart(..) => {
                self.record(mark);
                self.stack.push(Frame::Seq { index: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.advance();
            }
            _ => {}
        }
    }
}

/// Indexes `text`; on a YAML error the partial index is returned (serde reports the error).
pub(crate) fn index(text: &str) -> HashMap<String, (usize, usize)> {
    let mut indexer = Indexer::default();
    let mut parser = Parser::new_from_str(text);
    let _ = parser.load(&mut indexer, false);
    indexer.lines
}
