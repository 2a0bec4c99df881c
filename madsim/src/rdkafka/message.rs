//! `rdkafka::message`: a consumed message.

/// `rdkafka::Message`: what a consumed message tells.
pub trait Message {
    fn key(&self) -> Option<&[u8]>;
    fn payload(&self) -> Option<&[u8]>;
    fn topic(&self) -> &str;
    fn partition(&self) -> i32;
    fn offset(&self) -> i64;
    /// The payload as text (`rdkafka`'s `payload_view::<str>()`).
    fn payload_view<P: ?Sized + FromBytes>(&self) -> Option<Result<&P, P::Error>> {
        self.payload().map(P::from_bytes)
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

/// A message owned by the application (`rdkafka::message::OwnedMessage`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedMessage {
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) payload: Option<Vec<u8>>,
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
}

impl OwnedMessage {
    /// `BorrowedMessage::detach` in `rdkafka`; here messages are owned already.
    pub fn detach(&self) -> OwnedMessage {
        self.clone()
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
}
