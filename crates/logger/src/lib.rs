//! Container stdout/stderr logging into the sandbox (not yet implemented: see the logger issue).
