//! ld-connectord runtime library.
