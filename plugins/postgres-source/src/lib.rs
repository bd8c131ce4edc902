//! `postgres` source (in progress).
