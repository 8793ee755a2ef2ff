//! Generates the `theia.v1` wire API from `proto/` with the `protoc` that the
//! `protoc-bin-vendored` crate ships, so a fresh machine needs nothing installed.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "proto/theia/v1/common.proto",
    "proto/theia/v1/agent.proto",
    "proto/theia/v1/infrastructure.proto",
    "proto/theia/v1/tenant.proto",
    "proto/theia/v1/profile.proto",
    "proto/theia/v1/claim.proto",
    "proto/theia/v1/cluster.proto",
    "proto/theia/v1/access.proto",
    "proto/theia/v1/audit.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // `prost::Name` on every message: the CLI finds its descriptor by it to
    // print canonical proto3 JSON.
    config.enable_type_names();
    // The vendored protoc carries the well-known types (FieldMask) itself.
    config.protoc_arg(format!(
        "--proto_path={}",
        protoc_bin_vendored::include_path()?.display()
    ));
    tonic_prost_build::configure()
        // The generated `connect` constructor would clash with the rpc
        // `AgentService.Connect`; clients are built with `new(channel)`.
        .build_transport(false)
        // Malformed messages are INVALID_ARGUMENT, not prost's INTERNAL.
        .codec_path("crate::api::codec::StrictCodec")
        .file_descriptor_set_path(out_dir.join("theia_v1_descriptor.bin"))
        .compile_with_config(config, PROTOS, &["proto"])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
