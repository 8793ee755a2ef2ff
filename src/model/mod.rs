//! The domain model: resource classes and quantities, labels and selectors,
//! and the objects theia keeps books of (datacenters, tenants, profiles,
//! claims), each validated with an error that names the field.

mod error;
mod labels;
mod maintenance;
mod names;
mod objects;
mod quantity;
mod report;
mod resources;
mod window;

pub use error::{FieldError, quoted};
pub use labels::{Labels, Selector, validate_labels};
pub use maintenance::Maintenance;
pub use names::{MAX_NAME_LEN, validate_name, validate_request_id};
pub(crate) use objects::validate_text;
pub use objects::{
    Claim, ClaimSpec, ClaimState, Datacenter, DatacenterSettings, Inventory, MAX_ALLOCATION_RATIO,
    Placement, Profile, Strategy, Tenant,
};
pub use quantity::{QuantityError, format_quantity, format_quantity_short, parse_quantity};
pub use report::{CheckedReport, ReportedClass, check_report};
pub use resources::{Family, ResourceClass, Resources, UnitKind, WELL_KNOWN_CLASSES};
pub use window::{MAX_WINDOW_MS, Timing, Window, format_instant};
