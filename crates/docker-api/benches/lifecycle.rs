//! Container lifecycle benchmark (placeholder until written).
fn main() {}
