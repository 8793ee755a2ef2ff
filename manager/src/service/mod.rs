//! The gRPC services. One handle type implements every service; each
//! service lives in its own file.

mod access;
mod agent_stream;
mod audit;
mod claims;
mod cluster;
mod follow;
mod infrastructure;
mod maintenance;
mod paging;
mod profiles;
mod tenants;
mod timeline;
mod watch;

use std::sync::Arc;

pub(crate) use access::issue;

use crate::app::App;

/// The handle every service is implemented on.
#[derive(Clone)]
pub struct Api(pub Arc<App>);

impl std::ops::Deref for Api {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}
