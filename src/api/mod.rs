//! The `theia.v1` wire API and its conversions to and from domain types.
//! Generated types stop at the service layer: handlers convert them here,
//! with errors that name the offending field.

mod audit;
pub mod auth;
pub mod codec;
mod convert;
pub mod tls;

pub use audit::{event_filter_from_wire, event_to_wire};
pub use convert::{
    claim_spec_from_wire, claim_spec_to_wire, claim_to_wire, ms_to_wire, placement_to_wire,
    profile_from_wire, profile_to_wire, strategy_from_wire, tenant_from_wire, tenant_to_wire,
};

/// Code generated from `proto/theia/v1/*.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("theia.v1");

    /// The encoded file descriptor set, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("theia_v1_descriptor");
}
