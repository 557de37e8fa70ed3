//! The Mesos v1 agent operator API: [`Call`]s parsed strictly from protobuf-JSON or Mesos's
//! binary protobuf, the media negotiation, and the shapes of the answers.

pub mod call;
pub mod json;
pub mod launch;
pub mod negotiate;
pub mod proto;
pub mod recordio;
pub mod response;
pub mod schema;

pub use call::{parse_call, parse_call_value, Call, SessionRequest, Target, SUPPORTED_CALLS};
pub use launch::{
    Command, ContainerSpec, ContainerType, DockerSpec, DockerVolumeSpec, LaunchRequest, LimitSpec,
    LimitValue, NetworkMode, ResourceSpec, UriInfo, VolumeSpec,
};
