//! Sans-I/O decoders for Docker's streamed response bodies. They take byte chunks in whatever
//! sizes the transport delivers and produce whole items, so they are tested apart from any socket.

pub mod frames;
pub mod json_lines;
