//! Wire types of the Main API and the Supervisor API: `ld-protocol`'s, the one definition
//! the supervisor serves and every client parses. Re-exported so the supervisor's modules
//! name them as before.

pub use ld_protocol::types::*;
