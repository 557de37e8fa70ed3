//! The Docker containerizer (not yet implemented: see the containerizer-core issue).
