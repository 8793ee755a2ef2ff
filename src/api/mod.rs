//! The `theia.v1` wire API and its conversions to and from domain types.

/// Code generated from `proto/theia/v1/*.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("theia.v1");

    /// The encoded file descriptor set, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("theia_v1_descriptor");
}
