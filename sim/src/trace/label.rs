//! A message's label in the trace ([`Label`]): shared, and written only when read.

use crate::protocol::{Offset, TopicPartition};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::sync::Arc;

/// A message's label in the trace: `Fetch[orders-0@3]`, or its answer's `re:Fetch[orders-0@3]`.
///
/// Shared, not copied: a message in flight, the events about it and its answer hold one
/// text, and an answer's `re:` is written only when the label is (shown, serialised,
/// hashed). A request's label keeps what it names (a partition and offset, the batches'
/// partitions and sizes, a fixed name) and is written only when it is read: most labels
/// of a run are never shown. Written, compared and ordered as its text.
#[derive(Clone)]
pub struct Label {
    text: LabelText,
    /// The answer to the message labelled `text`: written `re:` + `text`.
    reply: bool,
}

/// What a [`Label`] writes.
#[derive(Clone)]
enum LabelText {
    Text(Arc<str>),
    /// A fixed name: `Heartbeat`, `EndTxn[commit]`.
    Name(&'static str),
    /// `Fetch[{tp}@{offset}]`.
    Fetch(TopicPartition, Offset),
    /// `Produce[{tp}x{records},...]`, one entry per batch.
    Produce(Arc<[(TopicPartition, usize)]>),
    /// `Fetch[{tp}@{offset},...]`, one entry per partition fetched.
    FetchMany(Arc<[(TopicPartition, Offset)]>),
}

impl fmt::Display for LabelText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabelText::Text(text) => f.write_str(text),
            LabelText::Name(name) => f.write_str(name),
            LabelText::Fetch(tp, offset) => write!(f, "Fetch[{tp}@{offset}]"),
            LabelText::FetchMany(partitions) => {
                f.write_str("Fetch[")?;
                for (i, (tp, offset)) in partitions.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{tp}@{offset}")?;
                }
                f.write_str("]")
            }
            LabelText::Produce(batches) => {
                f.write_str("Produce[")?;
                for (i, (tp, records)) in batches.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{tp}x{records}")?;
                }
                f.write_str("]")
            }
        }
    }
}

/// A `fmt::Write` that compares what is written with `rest`, piece by piece.
struct Reads<'a> {
    rest: &'a str,
}

impl fmt::Write for Reads<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        match self.rest.strip_prefix(s) {
            Some(rest) => {
                self.rest = rest;
                Ok(())
            }
            None => Err(fmt::Error),
        }
    }
}

impl Label {
    /// The label of the answer to this message.
    pub fn reply(&self) -> Label {
        Label {
            text: self.text.clone(),
            reply: true,
        }
    }

    /// A fixed name, written as it is.
    pub fn name(name: &'static str) -> Label {
        Label {
            text: LabelText::Name(name),
            reply: false,
        }
    }

    /// A fetch's label, `Fetch[orders-0@3]`, written when read.
    pub fn fetch(tp: TopicPartition, offset: Offset) -> Label {
        Label {
            text: LabelText::Fetch(tp, offset),
            reply: false,
        }
    }

    /// A fetch of several partitions, `Fetch[orders-0@3,orders-1@0]`, written when read.
    pub fn fetch_many(partitions: impl IntoIterator<Item = (TopicPartition, Offset)>) -> Label {
        Label {
            text: LabelText::FetchMany(partitions.into_iter().collect()),
            reply: false,
        }
    }

    /// A produce request's label, `Produce[orders-0x1,stock-0x2]` (each batch's partition
    /// and number of records), written when read.
    pub fn produce(batches: impl IntoIterator<Item = (TopicPartition, usize)>) -> Label {
        Label {
            text: LabelText::Produce(batches.into_iter().collect()),
            reply: false,
        }
    }

    /// This label with a note after it (`… (receiver gone)`).
    pub fn with_note(&self, note: &str) -> Label {
        Label::from(format!("{self} ({note})"))
    }

    fn prefix(&self) -> &'static str {
        if self.reply {
            "re:"
        } else {
            ""
        }
    }

    /// Whether the written text is `text`, without writing it.
    fn reads(&self, text: &str) -> bool {
        let Some(rest) = text.strip_prefix(self.prefix()) else {
            return false;
        };
        match &self.text {
            LabelText::Text(own) => **own == *rest,
            LabelText::Name(name) => *name == rest,
            // Most reads ask after another kind of message: no need to write this one.
            LabelText::Fetch(..) | LabelText::FetchMany(_) if !rest.starts_with("Fetch[") => false,
            LabelText::Produce(_) if !rest.starts_with("Produce[") => false,
            written => {
                let mut reads = Reads { rest };
                fmt::write(&mut reads, format_args!("{written}")).is_ok() && reads.rest.is_empty()
            }
        }
    }
}

impl From<String> for Label {
    fn from(text: String) -> Label {
        Label {
            text: LabelText::Text(text.into()),
            reply: false,
        }
    }
}

impl From<&str> for Label {
    fn from(text: &str) -> Label {
        Label {
            text: LabelText::Text(text.into()),
            reply: false,
        }
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reply {
            f.write_str("re:")?;
        }
        self.text.fmt(f)
    }
}

impl fmt::Debug for Label {
    /// As the string it was: quoted and escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.to_string().as_str(), f)
    }
}

impl PartialEq for Label {
    fn eq(&self, other: &Label) -> bool {
        match (&self.text, &other.text) {
            (LabelText::Text(a), LabelText::Text(b)) if self.reply == other.reply => a == b,
            _ => other.reads(&self.to_string()),
        }
    }
}

impl Eq for Label {}

impl PartialEq<str> for Label {
    fn eq(&self, other: &str) -> bool {
        self.reads(other)
    }
}

impl PartialEq<&str> for Label {
    fn eq(&self, other: &&str) -> bool {
        self.reads(other)
    }
}

impl Serialize for Label {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.text {
            LabelText::Text(text) if !self.reply => s.serialize_str(text),
            LabelText::Name(name) if !self.reply => s.serialize_str(name),
            _ => s.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for Label {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Label, D::Error> {
        String::deserialize(d).map(Label::from)
    }
}
