//! Every configuration key theia knows, with its default and its meaning.
//! `deploy/*.yaml` documents the same keys; a test keeps the two in step.

/// One known configuration key.
#[derive(Debug, Clone, Copy)]
pub struct KeySpec {
    /// The key as written in files (`data_dir`); `THEIA_DATA_DIR` in the environment.
    pub name: &'static str,
    /// The value when nothing sets it; `None` when there is no default.
    pub default: Option<&'static str>,
    /// Printed redacted by `theia config show`.
    pub secret: bool,
    /// Which programs read it.
    pub used_by: &'static str,
    /// What it does.
    pub doc: &'static str,
}

const fn key(
    name: &'static str,
    default: Option<&'static str>,
    used_by: &'static str,
    doc: &'static str,
) -> KeySpec {
    KeySpec {
        name,
        default,
        secret: false,
        used_by,
        doc,
    }
}

/// All known keys, in the order `theia config show` prints them.
pub const KEYS: &[KeySpec] = &[
    key(
        "manager",
        Some("http://127.0.0.1:7070"),
        "theia",
        "manager the CLI talks to",
    ),
    key(
        "output",
        Some("table"),
        "theia",
        "CLI output format: table, json or yaml",
    ),
    key(
        "listen",
        Some("127.0.0.1:7070"),
        "theia-manager",
        "address the gRPC API listens on",
    ),
    key(
        "metrics_listen",
        None,
        "theia-manager",
        "address Prometheus metrics are served on (GET /metrics), like 127.0.0.1:9464; empty: none",
    ),
    key(
        "loki_url",
        None,
        "theia-manager",
        "Grafana Loki to push the audit trail to, like http://127.0.0.1:3100; empty: none",
    ),
    key(
        "loki_tenant",
        None,
        "theia-manager",
        "the X-Scope-OrgID sent to a multi-tenant Loki; empty: none",
    ),
    key(
        "sentry_dsn",
        None,
        "theia-manager",
        "the Sentry DSN errors and panics are sent to; empty: none",
    ),
    key(
        "otlp_endpoint",
        None,
        "theia-manager",
        "an OpenTelemetry collector or Elastic APM Server (OTLP over gRPC) to send a trace span per call, decision and store commit to, like http://127.0.0.1:4317; empty: none",
    ),
    key(
        "tls_cert",
        None,
        "theia-manager",
        "PEM file of the certificate (chain) the API serves TLS with; needs tls_key",
    ),
    key(
        "tls_key",
        None,
        "theia-manager",
        "PEM file of the private key of tls_cert (keep it readable by the manager only)",
    ),
    key(
        "insecure",
        Some("false"),
        "theia-manager",
        "serve plaintext when no TLS certificate is set; warned about at start and on every agent connection",
    ),
    key(
        "data_dir",
        Some("/var/lib/theia"),
        "theia-manager",
        "where the embedded store keeps its data",
    ),
    key(
        "manager_id",
        None,
        "theia-manager",
        "this manager's id; generated once and kept in data_dir when unset",
    ),
    KeySpec {
        secret: true,
        ..key(
            "secret",
            None,
            "theia-manager",
            "cluster secret that encrypts what is stored in Redis: 64 hex characters (theia secret generate)",
        )
    },
    key(
        "secret_file",
        None,
        "theia-manager",
        "a file holding the cluster secret, read when secret is unset",
    ),
    KeySpec {
        secret: true,
        ..key(
            "redis",
            None,
            "theia-manager",
            "Redis URL of a manager cluster's store (redis://host:port, or rediss:// over TLS)",
        )
    },
    key(
        "client_ca",
        None,
        "theia-manager",
        "PEM file of the authorities whose client certificates agents may present instead of a token: a certificate whose DNS name is a datacenter id may connect as that datacenter (needs tls_cert)",
    ),
    key(
        "client_cert",
        None,
        "theia-agent",
        "PEM file of the client certificate the agent presents to managers that set client_ca; its DNS name is the datacenter id (needs client_key)",
    ),
    key(
        "client_key",
        None,
        "theia-agent",
        "PEM file of the private key of client_cert",
    ),
    key(
        "rate_limit",
        Some("1000"),
        "theia-manager",
        "calls per second one token (or agent certificate) may make, in bursts of as many; more answer RESOURCE_EXHAUSTED; 0 for no limit",
    ),
    key(
        "new_admin_token",
        Some("false"),
        "theia-manager",
        "make another admin token at start and write it to bootstrap_token_file, even if the store holds tokens (when every admin token is lost)",
    ),
    key(
        "bootstrap_token_file",
        None,
        "theia-manager",
        "where the first start of an empty store writes the first admin token (mode 0600) [default: admin.token in data_dir]",
    ),
    KeySpec {
        secret: true,
        ..key(
            "token",
            None,
            "theia, theia-agent",
            "bearer token the CLI or the agent presents to managers [CLI default: the user's token file, ~/.config/theia/token]",
        )
    },
    key(
        "token_file",
        None,
        "theia, theia-agent",
        "a file holding the bearer token, read when token is unset",
    ),
    key(
        "redis_ca",
        None,
        "theia-manager",
        "PEM file of the certificate authorities that sign Redis's certificate, for rediss:// [default: the system's roots]",
    ),
    key(
        "clock_offset",
        Some("1.0"),
        "theia-manager",
        "seconds a peer's clock may run ahead before its writes are refused (also CLOCK_OFFSET)",
    ),
    key(
        "sync_delta",
        Some("180"),
        "theia-manager",
        "seconds between synchronisations of coalesced changes (also SYNC_DELTA)",
    ),
    key(
        "sync_max",
        Some("1000"),
        "theia-manager",
        "pending changes that force a synchronisation sooner (also SYNC_MAX)",
    ),
    key(
        "heartbeat_interval",
        Some("5s"),
        "theia-manager",
        "how often agents send a heartbeat",
    ),
    key(
        "report_interval",
        Some("30s"),
        "theia-manager",
        "how often agents report their inventory",
    ),
    key(
        "suspect_after",
        Some("15s"),
        "theia-manager",
        "silence after which a datacenter is suspect",
    ),
    key(
        "down_after",
        Some("60s"),
        "theia-manager",
        "silence after which a datacenter is down",
    ),
    key(
        "claim_retention",
        Some("7d"),
        "theia-manager",
        "how long released claims stay listed (and answer a retried request id) before they are pruned",
    ),
    key(
        "audit_max_events",
        Some("100000"),
        "theia-manager",
        "the most events the audit trail keeps; the oldest go first",
    ),
    key(
        "audit_max_age",
        Some("90d"),
        "theia-manager",
        "how long the audit trail keeps an event (while audit_max_events allows)",
    ),
    key(
        "tie_break_seed",
        None,
        "theia-manager",
        "a number: binpack and spread ties go in an order drawn from it (the same for the same seed) instead of to the smallest datacenter id",
    ),
    key(
        "planning_window",
        Some("31d"),
        "theia-manager",
        "how far from its earliest allowed start a claim with --earliest may be placed",
    ),
    key(
        "log",
        Some("info"),
        "all",
        "log filter, e.g. info or theia_manager=debug",
    ),
    key(
        "log_format",
        Some("text"),
        "theia-manager, theia-agent",
        "how log lines are written to stderr: text (for people) or json (one object a line)",
    ),
    key(
        "managers",
        Some("http://127.0.0.1:7070"),
        "theia-agent",
        "managers to connect to, tried in order",
    ),
    key(
        "ca",
        None,
        "theia, theia-agent",
        "PEM file of the authorities that sign the managers' certificates, for https:// managers [default: the system's CA bundle]",
    ),
    key(
        "dc",
        None,
        "theia-agent",
        "id of the datacenter this agent speaks for",
    ),
    key(
        "labels",
        None,
        "theia-agent",
        "labels of the datacenter, e.g. region=eu,tier=core",
    ),
    key(
        "driver",
        Some("host"),
        "theia-agent",
        "how the agent reaches the management plane: static or host",
    ),
    key(
        "inventory",
        None,
        "theia-agent",
        "static driver: total per class, e.g. compute.vcpu=512,compute.memory=2Ti",
    ),
    key(
        "state_dir",
        Some("/var/lib/theia-agent"),
        "theia-agent",
        "where the agent keeps the assignments it applied",
    ),
    key(
        "reconnect_min",
        Some("1s"),
        "theia-agent",
        "first reconnect delay; doubles up to reconnect_max, with jitter",
    ),
    key(
        "reconnect_max",
        Some("30s"),
        "theia-agent",
        "longest reconnect delay",
    ),
];

/// Environment variables from HORAO accepted beside `THEIA_<KEY>`, at lower precedence.
pub const HORAO_ALIASES: &[(&str, &str)] = &[
    ("CLOCK_OFFSET", "clock_offset"),
    ("SYNC_DELTA", "sync_delta"),
    ("SYNC_MAX", "sync_max"),
];

/// The spec of a known key.
pub fn spec(name: &str) -> Option<&'static KeySpec> {
    KEYS.iter().find(|k| k.name == name)
}

/// The environment variable that sets `name`.
pub fn env_var(name: &str) -> String {
    format!("THEIA_{}", name.to_ascii_uppercase())
}
