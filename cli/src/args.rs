//! The command line as clap sees it, and its mapping to request messages.
//! Values the server validates (classes, quantities, selectors, names) pass
//! through as typed; only `k=v` lists are split here.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use theia::api::v1;

/// `theia --version`: the release and the commit it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("THEIA_COMMIT"),
    ")"
);

/// theia: schedules tenants onto logical infrastructure.
///
/// Talks to a theia-manager over gRPC. `theia dev` runs a manager and a local
/// agent in this process for trying it out. --manager and --output can also
/// come from THEIA_MANAGER / THEIA_OUTPUT or a config file (--config,
/// ~/.config/theia/config.yaml, /etc/theia/config.yaml).
#[derive(Parser, Debug)]
#[command(name = "theia", version = VERSION, propagate_version = true)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes; each is also a configuration key.
#[derive(Args, Debug, Default)]
pub struct GlobalArgs {
    /// The manager to talk to [default: http://127.0.0.1:7070].
    #[arg(long, global = true, value_name = "URL")]
    pub manager: Option<String>,
    /// How to print results [default: table].
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    pub output: Option<OutputFormat>,
    /// A YAML config file, above the user and system files.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// PEM file of the authorities that sign the manager's certificate (https://) [default: the system's CA bundle].
    #[arg(long, global = true, value_name = "FILE")]
    pub ca: Option<String>,
    /// The bearer token to present [default: THEIA_TOKEN, the token key, or ~/.config/theia/token].
    #[arg(long, global = true, value_name = "TOKEN")]
    pub token: Option<String>,
}

impl GlobalArgs {
    /// The configuration keys given as flags, for the highest layer.
    pub fn flags(&self) -> Vec<(String, String)> {
        let mut flags = Vec::new();
        if let Some(m) = &self.manager {
            flags.push(("manager".to_owned(), m.clone()));
        }
        if let Some(o) = self.output {
            flags.push(("output".to_owned(), o.as_str().to_owned()));
        }
        if let Some(ca) = &self.ca {
            flags.push(("ca".to_owned(), ca.clone()));
        }
        if let Some(token) = &self.token {
            flags.push(("token".to_owned(), token.clone()));
        }
        flags
    }
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable tables and short messages.
    Table,
    /// One pretty-printed JSON document on stdout.
    Json,
    /// The same document as YAML.
    Yaml,
}

impl OutputFormat {
    /// The name used in flags and configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Table => "table",
            Self::Json => "json",
            Self::Yaml => "yaml",
        }
    }

    /// Reads the `output` configuration value.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "table" => Ok(Self::Table),
            "json" => Ok(Self::Json),
            "yaml" => Ok(Self::Yaml),
            _ => Err(format!(
                "{text:?} is not an output format; use table, json or yaml"
            )),
        }
    }
}

/// The commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a manager and a local agent in this process, to try theia out.
    Dev(DevArgs),
    /// Datacenters and their capacity.
    #[command(subcommand)]
    Dc(DcCommand),
    /// The logical infrastructure: every (or each selected) datacenter as one pool.
    Infra(InfraArgs),
    /// Tenants: the customers capacity is scheduled for.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Resource profiles: named bundles of resource classes.
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Claims: capacity held for a tenant.
    #[command(subcommand)]
    Claim(ClaimCommand),
    /// Maintenance: capacity taken out of a datacenter over a window.
    #[command(subcommand)]
    Maintenance(MaintenanceCommand),
    /// theia's own configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// The managers and their store.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// The audit trail: who changed what, and every refused call (admins
    /// and auditors only).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Print a shell completion script: theia completion bash > /etc/bash_completion.d/theia
    Completion(CompletionArgs),
    /// Write man pages (theia.1 and one per command) into a directory.
    Man(ManArgs),
    /// The cluster secret that seals what managers store in Redis.
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Bearer tokens and their roles (admins only).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Certificates for a trial cluster: a private CA, the managers', the agents'.
    #[command(subcommand)]
    Cert(CertCommand),
    /// Who the token in use speaks for: its subject, roles and tenants.
    Whoami,
}

/// `theia cert ...`.
#[derive(Subcommand, Debug)]
pub enum CertCommand {
    /// Make a private CA and, signed by it, one certificate for the managers
    /// and one per agent (its DNS name is the datacenter id, for client_ca),
    /// as PEM files in a directory. Does nothing if they are all there.
    Init(CertInitArgs),
}

/// `theia cert init`.
#[derive(Args, Debug)]
pub struct CertInitArgs {
    /// Where to write ca.pem, server.pem and agent-<dc>.pem, each with its .key.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// The names clients dial the managers by (DNS names or IP addresses).
    #[arg(
        long = "servers",
        value_name = "NAME,...",
        value_delimiter = ',',
        required = true
    )]
    pub servers: Vec<String>,
    /// Datacenters whose agents get a client certificate.
    #[arg(long = "agents", value_name = "DC,...", value_delimiter = ',')]
    pub agents: Vec<String>,
}

/// `theia token ...`.
#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Make a token; its secret is printed once and never again.
    Create {
        /// Who it is for, e.g. an e-mail address.
        #[arg(long, value_name = "SUBJECT")]
        subject: String,
        /// admin, operator, auditor, tenant:<name> or agent:<dc>; repeat for
        /// more. None: the token acts only for the tenants that name its
        /// subject as owner or delegate.
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
        /// How long it is good for, e.g. 30d or 12h [default: no expiry].
        #[arg(long, value_name = "DURATION", value_parser = parse_ttl)]
        ttl: Option<u64>,
        /// What it is for.
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
        /// Print only the token, for scripts.
        #[arg(long, short)]
        quiet: bool,
    },
    /// List live tokens (never their secrets).
    List,
    /// End a token at once, on every manager.
    Revoke {
        /// The token's id (16 hex digits, as `token list` shows).
        id: String,
    },
}

/// Reads a duration such as `30d` as whole seconds, at least one.
fn parse_ttl(text: &str) -> Result<u64, String> {
    let d = humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration such as 30d or 12h: {e}"))?;
    match d.as_secs() {
        0 => Err("must be at least 1s".to_owned()),
        s => Ok(s),
    }
}

/// `theia completion SHELL`.
#[derive(Args, Debug)]
pub struct CompletionArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `theia man DIR`.
#[derive(Args, Debug)]
pub struct ManArgs {
    /// Where to write the pages (created if missing).
    #[arg(value_name = "DIR")]
    pub dir: std::path::PathBuf,
}

/// Which events of the audit trail.
#[derive(Args, Debug, Clone, Default)]
pub struct EventSelection {
    /// From this time on; RFC 3339, a date, now, or -LENGTH like -1h.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true, value_parser = crate::when::parse_past_instant)]
    pub since: Option<u64>,
    /// Before this time; same forms as --since.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true, value_parser = crate::when::parse_past_instant)]
    pub until: Option<u64>,
    /// Only what this actor (a token's subject, or manager) did.
    #[arg(long, value_name = "SUBJECT")]
    pub actor: Option<String>,
    /// Only what concerns this tenant.
    #[arg(long, value_name = "NAME")]
    pub tenant: Option<String>,
    /// Only this kind of object: claim, tenant, datacenter, method, ….
    #[arg(long, value_name = "KIND")]
    pub kind: Option<String>,
    /// Only this object (its id or name).
    #[arg(long, value_name = "ID")]
    pub object: Option<String>,
    /// Only this action, like claim.create or call.deny.
    #[arg(long, value_name = "ACTION")]
    pub action: Option<String>,
    /// Only successes, or only refusals and failures.
    #[arg(long, value_enum)]
    pub outcome: Option<OutcomeArg>,
}

/// `--outcome`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeArg {
    /// Successes.
    Ok,
    /// Refusals and failures.
    Failed,
}

/// `theia audit ...`.
#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// The most recent events (oldest of them first), or with
    /// --oldest-first the earliest kept.
    List {
        /// Which events.
        #[command(flatten)]
        select: EventSelection,
        /// At most this many; 0 for every one that matches.
        #[arg(long, default_value_t = 100, value_name = "N")]
        limit: usize,
        /// Start from the oldest event kept (or --since) instead of the newest.
        #[arg(long)]
        oldest_first: bool,
    },
    /// Follow events as they are recorded, until interrupted.
    Tail {
        /// Which events; with --since, the kept ones from then come first.
        #[command(flatten)]
        select: EventSelection,
        /// Resume after this event id (the last one seen): nothing kept
        /// since is missed.
        #[arg(long, value_name = "ID")]
        resume_after: Option<String>,
    },
}

/// `theia cluster ...`.
#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// The managers, the store backend and where it is, and the sync state.
    Status,
}

/// `theia secret ...`.
#[derive(Subcommand, Debug)]
pub enum SecretCommand {
    /// Print a new random cluster secret (64 hex characters), for every
    /// manager's secret or secret_file.
    Generate,
}

/// `theia dev`.
#[derive(Args, Debug)]
pub struct DevArgs {
    /// Where the manager's gRPC API listens.
    #[arg(
        long,
        value_name = "ADDR",
        env = "THEIA_LISTEN",
        default_value = "127.0.0.1:7070"
    )]
    pub listen: SocketAddr,
    /// Keep state here [default: a temporary directory removed at exit].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// `theia dc ...`.
#[derive(Subcommand, Debug)]
pub enum DcCommand {
    /// Follow each change of datacenters (registered, updated, down,
    /// alive again, decommissioned) until interrupted.
    Watch {
        /// Only datacenters whose labels match, e.g. region=eu.
        #[arg(long, value_name = "SELECTOR")]
        selector: Option<String>,
        /// Go on after this change (the last field of a line printed before).
        #[arg(long, value_name = "TOKEN")]
        resume_after: Option<String>,
    },
    /// List datacenters.
    List {
        /// Only datacenters whose labels match, e.g. region=eu,tier!=edge.
        #[arg(long, value_name = "SELECTOR")]
        selector: Option<String>,
    },
    /// Show one datacenter with its capacity per class.
    Show {
        /// The datacenter's id.
        dc: String,
    },
    /// Make a datacenter known, so that its agent (with an agent:<dc> token) may connect.
    Register {
        /// The datacenter's id.
        dc: String,
        /// Labels to start with, e.g. region=eu,tier=core (the agent's replace them).
        #[arg(long, value_name = "LIST", value_parser = parse_kv_list)]
        labels: Option<KvList>,
    },
    /// Set what the operator decides on a datacenter; what is not given stays.
    /// Agents' reports never change these.
    Update {
        /// The datacenter's id.
        dc: String,
        /// Held back per class, never placed, e.g. compute.vcpu=8,compute.memory=32Gi.
        #[arg(long, value_name = "LIST", value_parser = parse_kv_list)]
        reserved: Option<KvList>,
        /// Over-commit factor per class on total minus reserved, e.g. compute.vcpu=4.
        #[arg(long, value_name = "LIST", value_parser = parse_kv_list)]
        allocation_ratio: Option<KvList>,
        /// Whether new placements may land here (claims there stay).
        #[arg(long, value_name = "BOOL")]
        schedulable: Option<bool>,
        /// Labels that replace the agent's, e.g. region=eu; an empty value gives the agent's back.
        #[arg(long, value_name = "LIST", value_parser = parse_kv_list)]
        labels: Option<KvList>,
    },
    /// Forget a datacenter that holds no claims (decommissioning).
    Delete {
        /// The datacenter's id.
        dc: String,
    },
    /// Stop placing anything new on a datacenter and take all of it into
    /// maintenance from now until cancelled: its claims are re-placed on
    /// other datacenters where they fit, the rest are at risk.
    Drain {
        /// The datacenter's id.
        dc: String,
        /// Why, for the tenants it affects.
        #[arg(long, value_name = "TEXT", default_value = "drained by an operator")]
        reason: String,
        /// Show which claims it would move, and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// `theia maintenance ...`.
#[derive(Subcommand, Debug)]
pub enum MaintenanceCommand {
    /// Take capacity out of a datacenter over a window. Refused, with its
    /// impact, when claims hold that capacity, unless --force.
    Create {
        /// The datacenter.
        #[arg(long, value_name = "DC")]
        datacenter: String,
        /// What it takes, e.g. compute.vcpu=8,compute.memory=32Gi.
        #[arg(long, value_name = "LIST", value_parser = parse_kv_list, required_unless_present = "all", conflicts_with = "all")]
        resources: Option<KvList>,
        /// Take the whole datacenter: nothing is placed there within the window.
        #[arg(long)]
        all: bool,
        /// When it starts [default: now]; RFC 3339, a date, or +LENGTH.
        #[arg(long, value_name = "TIME", value_parser = crate::when::parse_instant)]
        start: Option<u64>,
        /// When it ends; same forms as --start.
        #[arg(long, value_name = "TIME", value_parser = crate::when::parse_instant, required_unless_present = "duration", conflicts_with = "duration")]
        end: Option<u64>,
        /// How long it lasts, like 4h or 2d; instead of --end.
        #[arg(long, value_name = "LENGTH", value_parser = crate::when::parse_length)]
        duration: Option<u64>,
        /// Why, for the tenants it affects.
        #[arg(long, value_name = "TEXT")]
        reason: String,
        /// Accept it even if it takes capacity that claims hold: re-place them elsewhere.
        #[arg(long)]
        force: bool,
        /// Show the impact only; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// List maintenance not ended or cancelled.
    List {
        /// Only this datacenter's.
        #[arg(long, value_name = "DC")]
        datacenter: Option<String>,
        /// Include ended and cancelled ones.
        #[arg(long)]
        all: bool,
    },
    /// Show one maintenance.
    Show {
        /// Its id.
        id: String,
    },
    /// Give a maintenance's capacity back from now on.
    Cancel {
        /// Its id.
        id: String,
    },
}

/// `theia infra`.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct InfraArgs {
    /// Only datacenters whose labels match, e.g. region=eu,tier!=edge.
    #[arg(long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// More than the totals of now.
    #[command(subcommand)]
    pub command: Option<InfraCommand>,
}

/// `theia infra ...`.
#[derive(Subcommand, Debug)]
pub enum InfraCommand {
    /// Allocated, maintenance and free capacity per class over time, drawn
    /// as a chart; --output json gives the series.
    Timeline {
        /// Only datacenters whose labels match.
        #[arg(long, value_name = "SELECTOR")]
        selector: Option<String>,
        /// Only this datacenter.
        #[arg(long, value_name = "DC")]
        datacenter: Option<String>,
        /// From [default: now]; RFC 3339, a date, or +LENGTH.
        #[arg(long, value_name = "TIME", value_parser = crate::when::parse_instant)]
        from: Option<u64>,
        /// To [default: a week after --from]; same forms.
        #[arg(long, value_name = "TIME", value_parser = crate::when::parse_instant)]
        to: Option<u64>,
        /// One step of the chart, like 1h or 1d [default: a 48th of the span].
        #[arg(long, value_name = "LENGTH", value_parser = crate::when::parse_length)]
        step: Option<u64>,
    },
}

/// `theia tenant ...`.
#[derive(Subcommand, Debug)]
pub enum TenantCommand {
    /// Create a tenant.
    Create {
        /// The tenant's name.
        name: String,
        /// Upper bound per class, e.g. compute.vcpu=512,compute.memory=2Ti.
        #[arg(long, value_name = "LIST", value_parser = parse_kv_list)]
        quota: Option<KvList>,
        /// Who owns the tenant.
        #[arg(long, value_name = "OWNER")]
        owner: Option<String>,
        /// A principal that may act for the tenant; repeat for more.
        #[arg(long = "delegate", value_name = "PRINCIPAL")]
        delegates: Vec<String>,
        /// Labels, e.g. team=infra,cost-center=42.
        #[arg(long, value_name = "LIST", value_parser = parse_kv_list)]
        labels: Option<KvList>,
    },
    /// Change a tenant's quota, owner, delegates or labels; fields not given
    /// stay as they are. A lower quota never takes back what is held: it
    /// refuses new claims until usage falls below it.
    Update {
        /// The tenant's name.
        name: String,
        /// The new quota, replacing the old one; "" removes every limit.
        #[arg(long, value_name = "LIST", value_parser = parse_kv_list)]
        quota: Option<KvList>,
        /// The new owner.
        #[arg(long, value_name = "OWNER")]
        owner: Option<String>,
        /// The new delegates, replacing the old ones; repeat for more.
        #[arg(long = "delegate", value_name = "PRINCIPAL")]
        delegates: Vec<String>,
        /// The new labels, replacing the old ones.
        #[arg(long, value_name = "LIST", value_parser = parse_kv_list)]
        labels: Option<KvList>,
    },
    /// List tenants.
    List,
    /// Show one tenant with its quota and usage.
    Show {
        /// The tenant's name.
        name: String,
    },
    /// Delete a tenant; refused while it holds claims.
    Delete {
        /// The tenant's name.
        name: String,
    },
}

/// `theia profile ...`.
#[derive(Subcommand, Debug)]
pub enum ProfileCommand {
    /// Create a resource profile.
    Create {
        /// The profile's name, e.g. m.large.
        name: String,
        /// What one unit holds, e.g. compute.vcpu=64,compute.memory=256Gi.
        #[arg(long, value_name = "LIST", value_parser = parse_kv_list)]
        resources: KvList,
        /// What the profile is for.
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
    },
    /// List resource profiles.
    List,
    /// Show one resource profile.
    Show {
        /// The profile's name.
        name: String,
    },
    /// Delete a resource profile.
    Delete {
        /// The profile's name.
        name: String,
    },
}

/// `theia claim ...`.
#[derive(Subcommand, Debug)]
pub enum ClaimCommand {
    /// Claim capacity for a tenant; prints the claim id and its placement.
    Create {
        /// What to claim and where.
        #[command(flatten)]
        spec: ClaimSpecArgs,
        /// Makes retries safe: the same tenant and id return the first claim.
        #[arg(long, value_name = "ID")]
        request_id: Option<String>,
        /// Print only the claim id (with --output json, the claim as usual).
        #[arg(short, long)]
        quiet: bool,
        /// Wait until every agent applied the claim (for a claim that starts
        /// later, until it started and was applied), with a progress line.
        #[arg(long)]
        wait: bool,
    },
    /// Follow each change of claims (made, applied, released, expired,
    /// moved, put at risk) until interrupted.
    Watch {
        /// Only this tenant's claims.
        #[arg(long, value_name = "TENANT")]
        tenant: Option<String>,
        /// Only claims of tenants whose labels match, e.g. tier=gold.
        #[arg(long, value_name = "SELECTOR")]
        tenant_selector: Option<String>,
        /// Go on after this change (the last field of a line printed before).
        #[arg(long, value_name = "TOKEN")]
        resume_after: Option<String>,
    },
    /// List live claims.
    List {
        /// Only this tenant's claims.
        #[arg(long, value_name = "TENANT")]
        tenant: Option<String>,
        /// Include released and expired claims.
        #[arg(long)]
        all: bool,
    },
    /// Show one claim.
    Show {
        /// The claim's id.
        id: String,
    },
    /// Release a claim's capacity.
    Release {
        /// The claim's id.
        id: String,
    },
    /// Ask whether a claim would fit, where, and why not; changes nothing.
    Explain {
        /// What to claim and where.
        #[command(flatten)]
        spec: ClaimSpecArgs,
    },
}

/// What a claim asks for: shared by `claim create` and `claim explain`.
#[derive(Args, Debug, Clone)]
pub struct ClaimSpecArgs {
    /// The tenant the capacity is for [default: the one tenant the token acts for].
    #[arg(long, value_name = "TENANT")]
    pub tenant: Option<String>,
    /// What each unit is.
    #[command(flatten)]
    pub unit: UnitArgs,
    /// How many units.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub count: u32,
    /// Only datacenters whose labels match, e.g. region=eu,tier!=edge.
    #[arg(long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Only this datacenter; repeat (or separate with commas) for more.
    #[arg(long = "datacenter", value_name = "DC", value_delimiter = ',')]
    pub datacenters: Vec<String>,
    /// Put every unit in a different datacenter.
    #[arg(long)]
    pub spread: bool,
    /// At most this many units in any one datacenter.
    #[arg(long, value_name = "N")]
    pub max_per_datacenter: Option<u32>,
    /// How to rank datacenters [default: binpack].
    #[arg(long, value_enum, value_name = "STRATEGY")]
    pub strategy: Option<StrategyArg>,
    /// When the claim starts holding [default: now]: RFC 3339 like
    /// 2026-12-01T00:00Z, a date, or +LENGTH from now like +2h.
    #[arg(long, value_name = "TIME", value_parser = crate::when::parse_instant)]
    pub start: Option<u64>,
    /// When it stops holding [default: when released]; same forms as --start.
    #[arg(long, value_name = "TIME", value_parser = crate::when::parse_instant, conflicts_with = "duration")]
    pub end: Option<u64>,
    /// How long it holds from its start, like 90m, 12h or 7d; instead of --end.
    #[arg(long, value_name = "LENGTH", value_parser = crate::when::parse_length)]
    pub duration: Option<u64>,
    /// Start at the earliest instant (from --not-before, or now) within the
    /// manager's planning window at which the whole claim fits for its whole
    /// --duration.
    #[arg(long, conflicts_with_all = ["start", "end"])]
    pub earliest: bool,
    /// With --earliest: start no sooner than this; same forms as --start.
    #[arg(long, value_name = "TIME", value_parser = crate::when::parse_instant, requires = "earliest")]
    pub not_before: Option<u64>,
}

/// A unit is a profile or explicit resources, exactly one of them.
#[derive(Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct UnitArgs {
    /// Each unit is this profile's resources.
    #[arg(long, value_name = "PROFILE")]
    pub profile: Option<String>,
    /// Each unit is these resources, e.g. compute.vcpu=4,compute.memory=16Gi.
    #[arg(long, value_name = "LIST", value_parser = parse_kv_list)]
    pub resources: Option<KvList>,
}

/// How the scheduler ranks the datacenters a unit fits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StrategyArg {
    /// Most allocated first: fill datacenters one after another.
    Binpack,
    /// Least allocated first: keep datacenters evenly used.
    Spread,
    /// Each unit to the next datacenter in turn, continuing where the last round-robin claim ended.
    RoundRobin,
}

impl From<StrategyArg> for v1::Strategy {
    fn from(s: StrategyArg) -> Self {
        match s {
            StrategyArg::Binpack => v1::Strategy::Binpack,
            StrategyArg::Spread => v1::Strategy::Spread,
            StrategyArg::RoundRobin => v1::Strategy::RoundRobin,
        }
    }
}

impl ClaimSpecArgs {
    /// The wire spec; `request_id` only for `claim create`.
    pub fn to_wire(&self, request_id: Option<&str>) -> v1::ClaimSpec {
        v1::ClaimSpec {
            tenant: self.tenant.clone().unwrap_or_default(),
            request_id: request_id.unwrap_or_default().to_owned(),
            count: self.count,
            profile: self.unit.profile.clone().unwrap_or_default(),
            resources: self
                .unit
                .resources
                .as_ref()
                .map(KvList::to_wire)
                .unwrap_or_default(),
            selector: self.selector.clone().unwrap_or_default(),
            datacenters: self.datacenters.clone(),
            distinct_datacenters: self.spread,
            max_per_datacenter: self.max_per_datacenter.unwrap_or(0),
            strategy: self
                .strategy
                .map_or(v1::Strategy::Unspecified, v1::Strategy::from) as i32,
            start_unix_ms: wire_ms(self.start.or(self.not_before)),
            end_unix_ms: wire_ms(self.end),
            duration_ms: wire_ms(self.duration),
            earliest_start: self.earliest,
        }
    }
}

/// Unix ms (or a length in ms) for the wire, where 0 means unset.
fn wire_ms(ms: Option<u64>) -> i64 {
    ms.map_or(0, |ms| i64::try_from(ms).unwrap_or(i64::MAX))
}

/// `theia config ...`.
#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Print every effective key, its value and where it came from.
    Show,
}

/// A `k=v,k2=v2` list as typed: keys and values are passed on unchanged
/// (trimmed), for the server to validate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KvList(pub BTreeMap<String, String>);

impl KvList {
    /// The map as the wire types hold it.
    pub fn to_wire(&self) -> HashMap<String, String> {
        self.0.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

/// Splits `k=v,k2=v2`; every item needs a `=`, and a key may appear once.
/// clap names the flag in its error.
pub fn parse_kv_list(text: &str) -> Result<KvList, String> {
    let mut map = BTreeMap::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let Some((k, v)) = item.split_once('=') else {
            return Err(format!("{item:?} is not key=value"));
        };
        let key = k.trim();
        if key.is_empty() {
            return Err(format!("{item:?} has no key before '='"));
        }
        if map.insert(key.to_owned(), v.trim().to_owned()).is_some() {
            return Err(format!("{key:?} is given more than once"));
        }
    }
    Ok(KvList(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("theia").chain(args.iter().copied()))
    }

    fn claim_spec(args: &[&str]) -> (v1::ClaimSpec, bool) {
        match parse(args).expect("parses").command {
            Command::Claim(ClaimCommand::Create {
                spec,
                request_id,
                quiet,
                ..
            }) => (spec.to_wire(request_id.as_deref()), quiet),
            Command::Claim(ClaimCommand::Explain { spec }) => (spec.to_wire(None), false),
            other => panic!("unexpected command {other:?}"),
        }
    }

    #[test]
    fn kv_list_splits_and_keeps_values_as_typed() {
        let list = parse_kv_list("compute.vcpu=64, compute.memory = 256Gi,,").unwrap();
        let expected: BTreeMap<_, _> = [
            ("compute.memory".to_owned(), "256Gi".to_owned()),
            ("compute.vcpu".to_owned(), "64".to_owned()),
        ]
        .into();
        assert_eq!(list.0, expected);
        // Units and classes are the server's to judge, not ours.
        assert_eq!(
            parse_kv_list("bogus.class=lots").unwrap().0["bogus.class"],
            "lots"
        );
    }

    #[test]
    fn kv_list_rejects_items_without_equals_or_key_and_duplicates() {
        assert!(
            parse_kv_list("compute.vcpu")
                .unwrap_err()
                .contains("\"compute.vcpu\"")
        );
        assert!(parse_kv_list("=4").is_err());
        assert!(
            parse_kv_list("a=1,a=2")
                .unwrap_err()
                .contains("more than once")
        );
        assert_eq!(parse_kv_list("").unwrap(), KvList::default());
    }

    #[test]
    fn a_bad_list_is_a_usage_error_naming_the_flag() {
        let err = parse(&["tenant", "create", "acme", "--quota", "compute.vcpu"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        assert!(err.to_string().contains("--quota"), "{err}");
    }

    #[test]
    fn claim_create_maps_every_flag() {
        let (spec, quiet) = claim_spec(&[
            "claim",
            "create",
            "--tenant",
            "acme",
            "--resources",
            "compute.vcpu=4,compute.memory=16Gi",
            "--count",
            "3",
            "--selector",
            "region=eu",
            "--datacenter",
            "dc1,dc2",
            "--datacenter",
            "dc3",
            "--spread",
            "--max-per-datacenter",
            "2",
            "--strategy",
            "spread",
            "--request-id",
            "r-1",
            "-q",
        ]);
        assert!(quiet);
        assert_eq!(spec.tenant, "acme");
        assert_eq!(spec.count, 3);
        assert_eq!(spec.profile, "");
        assert_eq!(spec.resources["compute.memory"], "16Gi");
        assert_eq!(spec.resources.len(), 2);
        assert_eq!(spec.selector, "region=eu");
        assert_eq!(spec.datacenters, ["dc1", "dc2", "dc3"]);
        assert!(spec.distinct_datacenters);
        assert_eq!(spec.max_per_datacenter, 2);
        assert_eq!(spec.strategy, v1::Strategy::Spread as i32);
        assert_eq!(spec.request_id, "r-1");
    }

    #[test]
    fn claim_defaults_leave_choices_to_the_server() {
        let (spec, quiet) = claim_spec(&["claim", "explain", "--tenant", "t", "--profile", "p"]);
        assert!(!quiet);
        assert_eq!(spec.profile, "p");
        assert!(spec.resources.is_empty());
        assert_eq!(spec.count, 1);
        assert_eq!(spec.strategy, v1::Strategy::Unspecified as i32);
        assert_eq!(spec.max_per_datacenter, 0);
        assert!(!spec.distinct_datacenters);
        assert_eq!(spec.request_id, "");
    }

    #[test]
    fn strategy_names_parse() {
        let (spec, _) = claim_spec(&[
            "claim",
            "explain",
            "--tenant",
            "t",
            "--profile",
            "p",
            "--strategy",
            "binpack",
        ]);
        assert_eq!(spec.strategy, v1::Strategy::Binpack as i32);
        assert!(
            parse(&[
                "claim",
                "explain",
                "--tenant",
                "t",
                "--profile",
                "p",
                "--strategy",
                "rr"
            ])
            .is_err()
        );
    }

    #[test]
    fn profile_and_resources_are_exclusive_and_one_is_required() {
        assert!(parse(&["claim", "create", "--tenant", "t"]).is_err());
        let (implicit, _) = claim_spec(&["claim", "create", "--profile", "p"]);
        assert_eq!(
            implicit.tenant, "",
            "the manager picks the token's one tenant"
        );
        let both = [
            "claim",
            "create",
            "--tenant",
            "t",
            "--profile",
            "p",
            "--resources",
            "compute.vcpu=1",
        ];
        assert_eq!(
            parse(&both).unwrap_err().kind(),
            clap::error::ErrorKind::ArgumentConflict
        );
    }

    #[test]
    fn only_flags_given_become_config_flags() {
        let cli = parse(&["dc", "list", "--output", "json"]).unwrap();
        assert_eq!(
            cli.global.flags(),
            [("output".to_owned(), "json".to_owned())]
        );
        let cli = parse(&["--manager", "http://m:1", "config", "show"]).unwrap();
        assert_eq!(
            cli.global.flags(),
            [("manager".to_owned(), "http://m:1".to_owned())]
        );
        assert!(parse(&["infra"]).unwrap().global.flags().is_empty());
    }

    #[test]
    fn output_format_from_config_text() {
        assert_eq!(OutputFormat::parse("JSON"), Ok(OutputFormat::Json));
        assert_eq!(OutputFormat::parse("table"), Ok(OutputFormat::Table));
        assert_eq!(OutputFormat::parse("yaml"), Ok(OutputFormat::Yaml));
        assert!(
            OutputFormat::parse("xml")
                .unwrap_err()
                .contains("table, json or yaml")
        );
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
