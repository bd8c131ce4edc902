//! A message a sink could not write, reported without failing its batch.

use abi_stable::{std_types::RString, StableAbi};

/// A message of a consumed batch that the sink did not write, and why (a row the
/// database refuses, a document the index rejects). Return these from
/// [`crate::Sink::rejected`]: the host sets the messages aside as the instance's
/// `errors` setting says (its dead-letter topic, or failing the instance) while the rest
/// of the batch counts as written.
///
/// ```
/// let rejected = ld_plugin_api::Rejection::new(42, "column \"total\" must not be null");
/// assert_eq!(rejected.offset(), 42);
/// assert_eq!(rejected.reason(), "column \"total\" must not be null");
/// ```
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    offset: u64,
    reason: RString,
}

impl Rejection {
    /// The message at `offset` (its [`crate::Message::offset`]) was rejected because of
    /// `reason`.
    pub fn new(offset: u64, reason: impl Into<String>) -> Self {
        Self {
            offset,
            reason: RString::from(reason.into()),
        }
    }

    /// The rejected message's offset in its partition.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Why the sink rejected it.
    pub fn reason(&self) -> &str {
        self.reason.as_str()
    }
}
