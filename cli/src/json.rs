//! `--output json` (and `yaml`): every answer in the canonical proto3 JSON
//! mapping, exactly as grpcurl prints it: lowerCamelCase field names, enums
//! by name, 64-bit integers as strings, fields at their default left out.
//! A list the CLI gathered page by page prints as the list call's answer
//! with every item and no next page token.

use std::sync::LazyLock;

use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use serde_json::Value;
use theia::api::v1;

/// The descriptors of `theia.v1`, from the descriptor set reflection serves.
static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
    DescriptorPool::decode(v1::FILE_DESCRIPTOR_SET).expect("the built-in descriptor set decodes")
});

/// `message` as canonical proto3 JSON.
pub fn proto<M: prost::Message + prost::Name>(message: &M) -> Value {
    let descriptor = POOL
        .get_message_by_name(&M::full_name())
        .expect("every theia.v1 message is in the descriptor set");
    let dynamic = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())
        .expect("a message decodes as the type it was encoded from");
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &SerializeOptions::new())
        .expect("a message serializes to JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_print_as_grpcurl_prints_them() {
        let dc = v1::Datacenter {
            id: "dc-1".into(),
            liveness: v1::Liveness::Alive as i32,
            last_seen_unix_ms: 1_700_000_000_000,
            labels: [("region".to_owned(), "eu".to_owned())].into(),
            capacity: vec![v1::ClassCapacity {
                class: "compute.vcpu".into(),
                reported_free: "8".into(),
                allocation_ratio: 1.5,
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(
            proto(&dc),
            serde_json::json!({
                "id": "dc-1",
                "labels": {"region": "eu"},
                "liveness": "LIVENESS_ALIVE",
                "lastSeenUnixMs": "1700000000000",
                "capacity": [{"class": "compute.vcpu", "reportedFree": "8", "allocationRatio": 1.5}],
            })
        );
        assert_eq!(proto(&v1::DeleteTenantResponse {}), serde_json::json!({}));
    }
}
