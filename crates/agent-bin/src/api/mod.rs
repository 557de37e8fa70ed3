//! The Mesos v1 agent operator API: [`Call`]s parsed strictly from protobuf-JSON, and the JSON
//! shapes of the answers.

pub mod call;
pub mod json;
pub mod launch;
pub mod negotiate;
pub mod response;
pub mod schema;

pub use call::{parse_call, Call, SUPPORTED_CALLS};
pub use launch::{
    Command, ContainerSpec, ContainerType, DockerSpec, DockerVolumeSpec, LaunchRequest, LimitSpec,
    LimitValue, NetworkMode, ResourceSpec, UriInfo, VolumeSpec,
};
