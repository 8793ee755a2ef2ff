//! theia: schedules tenants onto logical infrastructure.
//!
//! This crate is the wire API generated from `proto/theia/v1` ([`api`]) and
//! the pure core that every binary shares: the hybrid logical [`clock`], the
//! [`crdt`]s the state is made of, the domain [`model`], the [`scheduler`] and
//! [`config`] loading. The core (clock, CRDTs, model, scheduler, state) does no
//! network or disk I/O and never reads the system clock: time and randomness
//! are parameters. Reading configuration and CA files is left to [`config`]
//! and [`api::tls`].
#![forbid(unsafe_code)]

pub mod access;
pub mod api;
pub mod audit;
pub mod clock;
pub mod config;
pub mod crdt;
pub mod model;
pub mod scheduler;
pub mod state;
