//! Compiles Berth's transcription of Mesos's v1 message definitions (`proto/`) into a descriptor
//! set that the agent embeds: the API reads and writes Mesos's binary protobuf through it, and
//! the tests check Berth's field tables against it. protox is pure Rust, so no `protoc` is
//! needed on the build machine.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=proto");
    let set = match protox::compile(["mesos/v1/agent/agent.proto"], ["proto"]) {
        Ok(set) => set,
        Err(e) => panic!("proto/: the Mesos message definitions do not compile: {e:?}"),
    };
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("mesos_v1_descriptors.bin");
    std::fs::write(&out, prost::Message::encode_to_vec(&set))
        .unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
}
