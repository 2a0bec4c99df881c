//! `rdkafka::message`: a consumed message (`Message`, `BorrowedMessage`,
//! `OwnedMessage`, `Timestamp`). Headers are not carried: `Message::headers` and
//! `payload_mut` are absent.

use std::marker::PhantomData;

/// `rdkafka::Message`: what a consumed message tells.
pub trait Message {
    fn key(&self) -> Option<&[u8]>;
    fn payload(&self) -> Option<&[u8]>;
    fn topic(&self) -> &str;
    fn partition(&self) -> i32;
    fn offset(&self) -> i64;
    fn timestamp(&self) -> Timestamp;
    /// The payload converted (`payload_view::<str>()` for text).
    fn payload_view<P: ?Sized + FromBytes>(&self) -> Option<Result<&P, P::Error>> {
        self.payload().map(P::from_bytes)
    }
    /// The key converted.
    fn key_view<K: ?Sized + FromBytes>(&self) -> Option<Result<&K, K::Error>> {
        self.key().map(K::from_bytes)
    }
}

/// `rdkafka::message::Timestamp`: a record's timestamp (the producer's create time here:
/// `message.timestamp.type=CreateTime`, Kafka's default).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Timestamp {
    NotAvailable,
    CreateTime(i64),
    LogAppendTime(i64),
}

impl Timestamp {
    pub fn to_millis(self) -> Option<i64> {
        match self {
            Timestamp::NotAvailable => None,
            Timestamp::CreateTime(t) | Timestamp::LogAppendTime(t) => Some(t),
        }
    }
}

impl From<i64> for Timestamp {
    fn from(system_time: i64) -> Timestamp {
        Timestamp::CreateTime(system_time)
    }
}

/// `rdkafka::message::FromBytes`.
pub trait FromBytes {
    type Error;
    fn from_bytes(bytes: &[u8]) -> Result<&Self, Self::Error>;
}

impl FromBytes for str {
    type Error = std::str::Utf8Error;
    fn from_bytes(bytes: &[u8]) -> Result<&str, Self::Error> {
        std::str::from_utf8(bytes)
    }
}

impl FromBytes for [u8] {
    type Error = ();
    fn from_bytes(bytes: &[u8]) -> Result<&[u8], ()> {
        Ok(bytes)
    }
}

/// `rdkafka::message::ToBytes`: what a record's key and payload may be.
pub trait ToBytes {
    fn to_bytes(&self) -> &[u8];
}

impl ToBytes for str {
    fn to_bytes(&self) -> &[u8] {
        self.as_bytes()
    }
}
impl ToBytes for String {
    fn to_bytes(&self) -> &[u8] {
        self.as_bytes()
    }
}
impl ToBytes for [u8] {
    fn to_bytes(&self) -> &[u8] {
        self
    }
}
impl ToBytes for Vec<u8> {
    fn to_bytes(&self) -> &[u8] {
        self
    }
}
impl<const N: usize> ToBytes for [u8; N] {
    fn to_bytes(&self) -> &[u8] {
        self
    }
}
impl<T: ToBytes + ?Sized> ToBytes for &T {
    fn to_bytes(&self) -> &[u8] {
        (*self).to_bytes()
    }
}
impl ToBytes for () {
    fn to_bytes(&self) -> &[u8] {
        &[]
    }
}

/// A message owned by the application (`rdkafka::message::OwnedMessage`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedMessage {
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) payload: Option<Vec<u8>>,
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) timestamp: Timestamp,
}

/// `rdkafka::message::BorrowedMessage`: a message `recv` returns, borrowing its
/// consumer as in `rdkafka` (here it owns its bytes; `detach` copies them out).
#[derive(Debug)]
pub struct BorrowedMessage<'a> {
    message: OwnedMessage,
    consumer: PhantomData<&'a ()>,
}

impl BorrowedMessage<'_> {
    pub(crate) fn new(message: OwnedMessage) -> Self {
        BorrowedMessage {
            message,
            consumer: PhantomData,
        }
    }

    /// `BorrowedMessage::detach`: an owned copy, free of the consumer.
    pub fn detach(&self) -> OwnedMessage {
        self.message.clone()
    }
}

impl Message for BorrowedMessage<'_> {
    fn key(&self) -> Option<&[u8]> {
        self.message.key()
    }
    fn payload(&self) -> Option<&[u8]> {
        self.message.payload()
    }
    fn topic(&self) -> &str {
        self.message.topic()
    }
    fn partition(&self) -> i32 {
        self.message.partition()
    }
    fn offset(&self) -> i64 {
        self.message.offset()
    }
    fn timestamp(&self) -> Timestamp {
        self.message.timestamp()
    }
}

impl Message for OwnedMessage {
    fn key(&self) -> Option<&[u8]> {
        self.key.as_deref()
    }
    fn payload(&self) -> Option<&[u8]> {
        self.payload.as_deref()
    }
    fn topic(&self) -> &str {
        &self.topic
    }
    fn partition(&self) -> i32 {
        self.partition
    }
    fn offset(&self) -> i64 {
        self.offset
    }
    fn timestamp(&self) -> Timestamp {
        self.timestamp
    }
}
