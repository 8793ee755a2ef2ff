use std::collections::BTreeMap;
use std::fs;

use super::*;

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.path().join(name);
    fs::write(&p, text).unwrap();
    p
}

fn text(c: &Config, key: &str) -> String {
    c.get(key).unwrap().0.to_string()
}

/// The example of the seed note, as written there.
#[test]
fn seed_example_user_file_overrides_system_file_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let system = write(
        &dir,
        "system.yaml",
        "secret: abcd\nredis: redis://localhost\n",
    );
    let user = write(&dir, "user.yaml", "secret: efgh\nntp: check\n");
    let c = load(&LoadOptions {
        system_file: Some(system.clone()),
        user_file: Some(user.clone()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(text(&c, "secret"), "efgh");
    assert_eq!(text(&c, "ntp"), "check");
    assert_eq!(text(&c, "redis"), "redis://localhost");
    assert_eq!(c.source("secret"), Some(&Source::UserFile(user.clone())));
    assert_eq!(c.source("redis"), Some(&Source::SystemFile(system)));
    // ntp is not a theia key: kept and reported, not silently dropped.
    assert_eq!(
        c.unknown_keys(),
        vec![("ntp".to_owned(), Source::UserFile(user))]
    );
}

#[test]
fn precedence_is_flag_env_config_user_system() {
    let dir = tempfile::tempdir().unwrap();
    let system = write(
        &dir,
        "s.yaml",
        "listen: s\ndata_dir: s\nlog: s\nmanager: s\ndc: s\n",
    );
    let user = write(
        &dir,
        "u.yaml",
        "listen: u\ndata_dir: u\nlog: u\nmanager: u\n",
    );
    let custom = write(&dir, "c.yaml", "listen: c\ndata_dir: c\nlog: c\n");
    let env: BTreeMap<String, String> = [("THEIA_LISTEN", "e"), ("THEIA_DATA_DIR", "e")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let c = load(&LoadOptions {
        system_file: Some(system),
        user_file: Some(user),
        config_file: Some(custom),
        env,
        flags: vec![("listen".into(), "f".into())],
    })
    .unwrap();
    assert_eq!(text(&c, "listen"), "f");
    assert_eq!(text(&c, "data_dir"), "e");
    assert_eq!(text(&c, "log"), "c");
    assert_eq!(text(&c, "manager"), "u");
    assert_eq!(text(&c, "dc"), "s");
    assert_eq!(c.source("down_after"), Some(&Source::Default));
    assert_eq!(
        c.source("data_dir"),
        Some(&Source::Env("THEIA_DATA_DIR".into()))
    );
}

#[test]
fn horao_names_are_accepted_below_theia_names() {
    let env: BTreeMap<String, String> = [
        ("SYNC_DELTA", "60"),
        ("SYNC_MAX", "10"),
        ("THEIA_SYNC_MAX", "20"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let c = load(&LoadOptions {
        env,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(c.u64("sync_delta").unwrap(), 60);
    assert_eq!(c.u64("sync_max").unwrap(), 20);
}

#[test]
fn typed_values_name_key_and_source_on_error() {
    let c = resolve(
        parse_file(
            Source::ConfigFile("c.yaml".into()),
            "down_after: soon\nlabels: {region: eu}\nmanagers: [a, b]\n",
        )
        .unwrap(),
    );
    let err = c.duration("down_after").unwrap_err().to_string();
    assert!(
        err.contains("down_after") && err.contains("c.yaml") && err.contains("soon"),
        "{err}"
    );
    assert_eq!(
        c.map("labels").unwrap().get("region").map(String::as_str),
        Some("eu")
    );
    assert_eq!(c.list("managers").unwrap(), vec!["a", "b"]);
    assert_eq!(
        c.duration("heartbeat_interval").unwrap(),
        std::time::Duration::from_secs(5)
    );
    let err = c.string("dc").unwrap_err().to_string();
    assert!(err.contains("THEIA_DC"), "{err}");
}

#[test]
fn a_missing_config_file_is_an_error_but_missing_user_files_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let c = load(&LoadOptions {
        user_file: Some(dir.path().join("nope.yaml")),
        system_file: Some(dir.path().join("nope2.yaml")),
        ..Default::default()
    });
    assert!(c.is_ok());
    let err = load(&LoadOptions {
        config_file: Some(dir.path().join("nope.yaml")),
        ..Default::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("nope.yaml"), "{err}");
    let bad = write(&dir, "bad.yaml", "- just\n- a list\n");
    let err = load(&LoadOptions {
        config_file: Some(bad),
        ..Default::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("mapping"), "{err}");
}

#[test]
fn usage_errors_fold_into_one_line() {
    let rendered = "error: the following required arguments were not provided:\n  <--profile <PROFILE>|--resources <LIST>>\n\nUsage: theia claim create --tenant <TENANT>\n\nFor more information, try '--help'.\n";
    assert_eq!(
        usage_error_line(rendered),
        "error: the following required arguments were not provided: <--profile <PROFILE>|--resources <LIST>> (see --help)"
    );
    let rendered = "error: unexpected argument '--bogus' found\n\n  tip: to pass '--bogus' as a value, use '-- --bogus'\n\nUsage: theia [OPTIONS] <COMMAND>\n";
    let line = usage_error_line(rendered);
    assert!(
        line.starts_with("error: unexpected argument '--bogus' found") && !line.contains('\n'),
        "{line}"
    );
}
