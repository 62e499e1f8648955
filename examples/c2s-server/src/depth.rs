//! How deeply the client's XML nests, counted on the raw bytes before the parser sees them:
//! the element tree is built recursively, so a deep enough stanza would overflow the stack.
//!
//! The count is a small lexer over tags, quoted attribute values, comments, CDATA sections and
//! processing instructions; it only has to agree with a well-formed document, since anything
//! else ends the stream at the parser anyway.

/// Where the lexer is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    /// Character data.
    #[default]
    Text,
    /// Just after `<`.
    Open,
    /// Inside a start tag (`<a ...`), or an end tag when `closing`.
    Tag { closing: bool },
    /// Inside a quoted attribute value of a start tag.
    Quoted(u8),
    /// After `/` inside a start tag: `>` next makes it empty.
    Slash,
    /// Inside `<!...`: a comment, a CDATA section or a declaration; `tail` counts how much of
    /// its end (`-->`, `]]>`, `>`) was just seen.
    Markup { kind: Markup, tail: u8 },
    /// Inside `<?...?>`; `question` when the last byte was `?`.
    Instruction { question: bool },
}

/// The kinds of `<!` markup, told apart by the bytes after `<!`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Markup {
    /// Not decided yet: `seen` bytes after `<!`.
    Unknown { seen: u8, dash: bool, bracket: bool },
    /// `<!--`, ended by `-->`.
    Comment,
    /// `<![CDATA[`, ended by `]]>`.
    Cdata,
    /// Anything else, ended by `>`.
    Declaration,
}

/// The nesting depth of a stream's bytes so far (the stream element is level 1).
#[derive(Clone, Debug, Default)]
pub(crate) struct Depth {
    state: State,
    depth: usize,
    deepest: usize,
}

impl Depth {
    /// Reads `bytes`; returns the deepest level reached since the last call.
    pub(crate) fn scan(&mut self, bytes: &[u8]) -> usize {
        self.deepest = self.depth;
        for &byte in bytes {
            self.step(byte);
        }
        self.deepest
    }

    fn step(&mut self, byte: u8) {
        self.state = match (self.state, byte) {
            (State::Text, b'<') => State::Open,
            (State::Text, _) => State::Text,
            (State::Open, b'/') => State::Tag { closing: true },
            (State::Open, b'?') => State::Instruction { question: false },
            (State::Open, b'!') => State::Markup {
                kind: Markup::Unknown {
                    seen: 0,
                    dash: false,
                    bracket: false,
                },
                tail: 0,
            },
            (State::Open, b'>') => State::Text,
            (State::Open, _) => {
                self.enter();
                State::Tag { closing: false }
            }
            (State::Tag { closing: true }, b'>') => {
                self.depth = self.depth.saturating_sub(1);
                State::Text
            }
            (State::Tag { closing: false }, b'>') => State::Text,
            (State::Tag { closing: false }, b'/') => State::Slash,
            (State::Tag { closing: false }, b'"' | b'\'') => State::Quoted(byte),
            (State::Tag { closing }, _) => State::Tag { closing },
            (State::Quoted(quote), _) if byte == quote => State::Tag { closing: false },
            (State::Quoted(quote), _) => State::Quoted(quote),
            (State::Slash, b'>') => {
                self.depth = self.depth.saturating_sub(1);
                State::Text
            }
            (State::Slash, b'"' | b'\'') => State::Quoted(byte),
            (State::Slash, _) => State::Tag { closing: false },
            (State::Instruction { question: true }, b'>') => State::Text,
            (State::Instruction { .. }, _) => State::Instruction {
                question: byte == b'?',
            },
            (State::Markup { kind, tail }, _) => markup(kind, tail, byte),
        };
    }

    fn enter(&mut self) {
        self.depth += 1;
        self.deepest = self.deepest.max(self.depth);
    }
}

/// The next state inside `<!` markup.
fn markup(kind: Markup, tail: u8, byte: u8) -> State {
    let kind = match kind {
        Markup::Unknown {
            seen,
            dash,
            bracket,
        } => match (seen, byte) {
            (0, b'-') => Markup::Unknown {
                seen: 1,
                dash: true,
                bracket,
            },
            (1, b'-') if dash => Markup::Comment,
            (0, b'[') => Markup::Unknown {
                seen: 1,
                dash,
                bracket: true,
            },
            // `<![CDATA[`: decided at the second `[`.
            (1..=6, b'[') if bracket => Markup::Cdata,
            (1..=6, _) if bracket => Markup::Unknown {
                seen: seen + 1,
                dash,
                bracket,
            },
            (_, b'>') => return State::Text,
            _ => Markup::Declaration,
        },
        other => other,
    };
    match kind {
        Markup::Comment => ending(kind, tail, byte, b'-'),
        Markup::Cdata => ending(kind, tail, byte, b']'),
        Markup::Declaration if byte == b'>' => State::Text,
        _ => State::Markup { kind, tail: 0 },
    }
}

/// The next state inside markup ended by two `mark`s and `>` (`-->`, `]]>`).
fn ending(kind: Markup, tail: u8, byte: u8, mark: u8) -> State {
    match (tail, byte) {
        (2, b'>') => State::Text,
        (_, _) if byte == mark => State::Markup {
            kind,
            tail: (tail + 1).min(2),
        },
        _ => State::Markup { kind, tail: 0 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deepest(xml: &str) -> usize {
        Depth::default().scan(xml.as_bytes())
    }

    #[test]
    fn counts_elements_not_what_looks_like_them() {
        assert_eq!(deepest("<a><b><c/></b></a>"), 3);
        assert_eq!(deepest("<a/><b/><c/>"), 1);
        assert_eq!(deepest("<a x='<b>' y=\"/>\"><c></c></a>"), 2);
        assert_eq!(deepest("<a><!-- <b><c><d> --><e/></a>"), 2);
        assert_eq!(deepest("<a><![CDATA[<b><c><d>]]]]><e/></a>"), 2);
        assert_eq!(deepest("<?xml version='1.0'?><a><?pi <b>?></a>"), 1);
        assert_eq!(deepest("<a><!DOCTYPE x><b/></a>"), 2);
        assert_eq!(deepest(&"<a>".repeat(1000)), 1000);
    }

    #[test]
    fn depth_carries_over_chunks_and_falls_back_on_end_tags() {
        let mut depth = Depth::default();
        assert_eq!(depth.scan(b"<stream:stream xmlns='jabber:client'><mess"), 2);
        assert_eq!(depth.scan(b"age><body>hi</bo"), 3);
        assert_eq!(depth.scan(b"dy></message>"), 3);
        assert_eq!(depth.scan(b"<presence/>"), 2);
        assert_eq!(depth.scan(b" "), 1);
    }
}
