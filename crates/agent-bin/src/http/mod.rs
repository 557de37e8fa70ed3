//! The HTTP side: routing, authentication, bodies and the server loop.

pub mod auth;
pub mod body;
pub mod route;
pub mod server;
