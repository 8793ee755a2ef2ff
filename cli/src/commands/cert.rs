//! `theia cert init`: a private certificate authority and the certificates
//! a trial cluster needs (one for the managers, one per agent), so that TLS
//! and agents' client certificates work without an outside PKI. Production
//! sites use their own CA; the files here are plain PEM either way.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    date_time_ymd,
};

use crate::args::CertInitArgs;
use crate::error::CliError;
use crate::output::print_text;

/// The files `theia cert init` writes into `dir`: (certificate, key) pairs.
struct Files {
    ca: (PathBuf, PathBuf),
    server: (PathBuf, PathBuf),
    agents: Vec<(String, PathBuf, PathBuf)>,
}

fn files(dir: &Path, agents: &[String]) -> Files {
    let pair = |name: &str| {
        (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        )
    };
    Files {
        ca: pair("ca"),
        server: pair("server"),
        agents: agents
            .iter()
            .map(|dc| {
                let (cert, key) = pair(&format!("agent-{dc}"));
                (dc.clone(), cert, key)
            })
            .collect(),
    }
}

fn write(path: &Path, text: &str, mode: u32) -> Result<(), CliError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| CliError::other(format!("cannot write {}: {e}", path.display())))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| CliError::other(format!("cannot write {}: {e}", path.display())))
}

/// The current year, from the system clock.
fn this_year() -> i32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    1970 + i32::try_from(secs / 31_556_952).unwrap_or(0)
}

fn params(names: Vec<String>, year: i32) -> Result<CertificateParams, CliError> {
    let mut p = CertificateParams::new(names)
        .map_err(|e| CliError::other(format!("not a DNS name or IP address: {e}")))?;
    p.not_before = date_time_ymd(year, 1, 1);
    p.not_after = date_time_ymd(year + 2, 1, 1);
    Ok(p)
}

fn rcgen_error(e: rcgen::Error) -> CliError {
    CliError::other(format!("cannot make a certificate: {e}"))
}

/// Runs `theia cert init`.
pub fn init(args: CertInitArgs) -> Result<(), CliError> {
    for dc in &args.agents {
        theia::model::validate_name("--agents", dc).map_err(|e| CliError::other(e.to_string()))?;
    }
    let plan = files(&args.dir, &args.agents);
    let all: Vec<&PathBuf> = [&plan.ca.0, &plan.ca.1, &plan.server.0, &plan.server.1]
        .into_iter()
        .chain(plan.agents.iter().flat_map(|(_, c, k)| [c, k]))
        .collect();
    let present = all.iter().filter(|p| p.exists()).count();
    if present == all.len() {
        return print_text(&format!(
            "{} already holds a CA and every certificate asked for; nothing to do",
            args.dir.display()
        ));
    }
    if present > 0 {
        return Err(CliError::other(format!(
            "{} holds some of the files already ({} of {}); remove them or use another --dir",
            args.dir.display(),
            present,
            all.len()
        )));
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&args.dir)
        .map_err(|e| CliError::other(format!("cannot create {}: {e}", args.dir.display())))?;

    let year = this_year();
    let ca_key = KeyPair::generate().map_err(rcgen_error)?;
    let mut ca_params = params(Vec::new(), year)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "theia cluster CA");
    let ca_cert = ca_params.self_signed(&ca_key).map_err(rcgen_error)?;
    write(&plan.ca.0, &ca_cert.pem(), 0o644)?;
    write(&plan.ca.1, &ca_key.serialize_pem(), 0o600)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut lines = vec![format!("CA          {}", plan.ca.0.display())];
    let issue = |names: Vec<String>, (cert, key): (&PathBuf, &PathBuf)| {
        let key_pair = KeyPair::generate().map_err(rcgen_error)?;
        let signed = params(names, year)?
            .signed_by(&key_pair, &issuer)
            .map_err(rcgen_error)?;
        write(cert, &signed.pem(), 0o644)?;
        write(key, &key_pair.serialize_pem(), 0o600)
    };
    issue(args.servers.clone(), (&plan.server.0, &plan.server.1))?;
    lines.push(format!(
        "managers    {} ({})",
        plan.server.0.display(),
        args.servers.join(", ")
    ));
    for (dc, cert, key) in &plan.agents {
        issue(vec![dc.clone()], (cert, key))?;
        lines.push(format!("agent {dc:<5} {}", cert.display()));
    }
    lines.push(format!(
        "valid until {}-01-01; keys are readable by this user only",
        year + 2
    ));
    print_text(&lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(dir: &Path) -> CertInitArgs {
        CertInitArgs {
            dir: dir.to_owned(),
            servers: vec!["manager-1".into(), "127.0.0.1".into()],
            agents: vec!["dc-a".into()],
        }
    }

    #[test]
    fn init_writes_a_ca_a_server_and_agent_certificates_once() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("pki");
        init(args(&dir)).unwrap();
        for name in ["ca", "server", "agent-dc-a"] {
            let pem = std::fs::read_to_string(dir.join(format!("{name}.pem"))).unwrap();
            assert!(pem.contains("BEGIN CERTIFICATE"), "{name}");
            let key = dir.join(format!("{name}.key"));
            let mode = std::fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{name}.key");
        }
        let ca = std::fs::read(dir.join("ca.pem")).unwrap();
        init(args(&dir)).unwrap();
        assert_eq!(
            std::fs::read(dir.join("ca.pem")).unwrap(),
            ca,
            "left as it was"
        );
        std::fs::remove_file(dir.join("agent-dc-a.key")).unwrap();
        assert!(
            init(args(&dir)).is_err(),
            "half a set is refused, not patched"
        );
        let bad = CertInitArgs {
            agents: vec!["Not A Dc".into()],
            ..args(&tmp.path().join("other"))
        };
        assert!(init(bad).is_err());
    }
}
