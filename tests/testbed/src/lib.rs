//! Test bed support.
