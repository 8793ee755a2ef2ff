//! theia-agent: runs beside one datacenter's management plane, reports its
//! capacity to a manager and applies the manager's assignments through a
//! driver.
//!
//! The agent keeps one gRPC stream (`theia.v1.AgentService/Connect`) open to
//! any manager of its list: it says Hello, sends inventory reports and
//! heartbeats, and converges its driver to the full desired set of
//! assignments the manager sends on every connect (level-triggered
//! reconciliation), then to each Assign and Release. When the stream breaks
//! it waits a jittered exponential backoff and fails over to the next
//! manager. What the driver applied is kept in `state_dir` (a snapshot and
//! a log of changes since, see [`driver::StateFile`]), so a restart is
//! idempotent; the directory is locked, so two agents cannot share it.
//!
//! [`run`] is the whole agent; `main.rs` only reads configuration into an
//! [`AgentConfig`] and waits for a signal.
#![forbid(unsafe_code)]

mod backoff;
mod cluster;
mod config;
pub mod driver;
mod reconcile;
mod run;
mod session;

pub use backoff::{Backoff, backoff_delay};
pub use config::{AgentConfig, DriverConfig};
pub use reconcile::{Plan, plan};
pub use run::run;
