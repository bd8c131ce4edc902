//! PostgreSQL sink throughput (in progress).
fn main() {}
