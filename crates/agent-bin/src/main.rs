//! The `berth` agent binary (not yet implemented: see the agent issue).

fn main() {
    eprintln!("berth: the agent is not built yet; see the agent issue");
    std::process::exit(2);
}
