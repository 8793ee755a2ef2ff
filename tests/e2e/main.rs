//! End-to-end tests: real managers, agents and binaries over real sockets
//! on 127.0.0.1, each with its own temp dir, each bounded in time.

#[path = "../common/mod.rs"]
mod common;

mod access;
mod agent_loss;
mod api_doc;
mod audit;
mod bad_input;
mod binaries;
mod cancel;
mod cli_output;
mod cluster;
mod cluster_identity;
mod consistent_pair;
mod container;
mod dc_settings;
mod deploy;
mod exit_codes;
mod explain_agrees;
mod feed_trim;
mod fuzz;
mod grpcurl;
mod hostile_input;
mod limits;
mod logs;
mod loki;
mod maintenance;
mod metrics;
mod otlp;
mod paging;
mod placement;
mod python_sdk;
mod readme;
mod redis_store;
mod redis_tls;
mod reports;
mod restart;
mod sentry;
mod tls;
mod tour;
mod watch;
mod windows;
