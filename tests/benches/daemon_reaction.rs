//! Daemon reaction time and scale (filled in below).
fn main() {}
