//! The client side of bearer tokens, as the CLI, the agent and tests use
//! it: where a token comes from (a key, a file, the user's token file), and
//! the interceptor that sends it with every call. This module reads files;
//! the core does not.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use tonic::metadata::AsciiMetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::access::Presented;
use crate::config::{Config, ConfigError, Source};

/// Sends `authorization: Bearer <token>` with every call (nothing without a token).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Bearer(Option<AsciiMetadataValue>);

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Bearer(<redacted>)"
        } else {
            "Bearer(none)"
        })
    }
}

/// What a malformed token is told, without repeating it.
const NOT_A_TOKEN: &str = "is not a theia token (theia_<16 hex digits>_<64 hex digits>)";

impl Bearer {
    /// An interceptor presenting `token`, checked for its shape first.
    pub fn new(token: Option<&str>) -> Result<Self, String> {
        let Some(token) = token else {
            return Ok(Self(None));
        };
        Presented::parse(token).map_err(|_| NOT_A_TOKEN.to_owned())?;
        let value = format!("Bearer {}", token.trim())
            .parse()
            .map_err(|_| NOT_A_TOKEN.to_owned())?;
        Ok(Self(Some(value)))
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            req.metadata_mut().insert("authorization", value.clone());
        }
        Ok(req)
    }
}

/// A channel whose calls carry a bearer token.
pub type Authed = InterceptedService<Channel, Bearer>;

/// `channel` with `bearer` on every call.
pub fn authed(channel: Channel, bearer: Bearer) -> Authed {
    InterceptedService::new(channel, bearer)
}

/// The user's token file: `$XDG_CONFIG_HOME/theia/token`, else
/// `$HOME/.config/theia/token`.
pub fn user_token_file(env: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    env("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".config")))
        .map(|d| d.join("theia/token"))
}

/// Reads a token file: one token, white space around it allowed.
pub fn read_token_file(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let token = text.trim().to_owned();
    Presented::parse(&token).map_err(|_| format!("{} {NOT_A_TOKEN}", path.display()))?;
    Ok(token)
}

/// Writes `token` to `path`, readable by this user only (the directory
/// made private too if it is created).
pub fn write_token_file(path: &Path, token: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(format!("{token}\n").as_bytes())?;
    f.sync_all()
}

/// The token configured: the `token` key, else the file `token_file` names,
/// else `fallback` (the user's token file, for the CLI) if it exists.
pub fn configured_token(
    config: &Config,
    fallback: Option<&Path>,
) -> Result<Option<String>, ConfigError> {
    let invalid = |key: &str, reason: String| ConfigError::Invalid {
        key: key.to_owned(),
        origin: config.source(key).cloned().unwrap_or(Source::Default),
        reason,
    };
    if let Some(token) = config.opt_string("token")?.filter(|s| !s.trim().is_empty()) {
        Presented::parse(&token).map_err(|_| invalid("token", NOT_A_TOKEN.to_owned()))?;
        return Ok(Some(token.trim().to_owned()));
    }
    if let Some(file) = config.opt_string("token_file")?.filter(|s| !s.is_empty()) {
        return read_token_file(Path::new(&file))
            .map(Some)
            .map_err(|reason| invalid("token_file", reason));
    }
    match fallback.filter(|p| p.exists()) {
        Some(path) => read_token_file(path)
            .map(Some)
            .map_err(|reason| invalid("token", reason)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Setting, Value, resolve};

    const TOKEN: &str =
        "theia_0123456789abcdef_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn config(pairs: &[(&str, &str)]) -> Config {
        resolve(pairs.iter().map(|(k, v)| Setting {
            key: k.to_string(),
            value: Value::Text(v.to_string()),
            source: Source::Flag(k.to_string()),
        }))
    }

    #[test]
    fn the_user_file_follows_xdg_then_home() {
        let env = |xdg: Option<&'static str>| {
            move |k: &str| match k {
                "XDG_CONFIG_HOME" => xdg.map(str::to_owned),
                "HOME" => Some("/home/u".to_owned()),
                _ => None,
            }
        };
        assert_eq!(
            user_token_file(env(Some("/x"))),
            Some(PathBuf::from("/x/theia/token"))
        );
        assert_eq!(
            user_token_file(env(Some(""))),
            Some(PathBuf::from("/home/u/.config/theia/token"))
        );
        assert_eq!(user_token_file(|_| None), None);
    }

    #[test]
    fn tokens_come_from_the_key_then_the_file_then_the_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/token");
        write_token_file(&file, TOKEN).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let path = file.to_str().unwrap();

        assert_eq!(
            configured_token(&config(&[("token", TOKEN)]), None).unwrap(),
            Some(TOKEN.to_owned())
        );
        assert_eq!(
            configured_token(&config(&[("token_file", path)]), None).unwrap(),
            Some(TOKEN.to_owned())
        );
        assert_eq!(
            configured_token(&config(&[]), Some(&file)).unwrap(),
            Some(TOKEN.to_owned())
        );
        assert_eq!(
            configured_token(&config(&[]), Some(&dir.path().join("none"))).unwrap(),
            None
        );
        let bad = configured_token(&config(&[("token", "secret-value")]), None)
            .unwrap_err()
            .to_string();
        assert!(
            bad.contains("token") && !bad.contains("secret-value"),
            "{bad}"
        );
        std::fs::write(dir.path().join("junk"), "junk").unwrap();
        let junk = dir.path().join("junk");
        let err = configured_token(&config(&[("token_file", junk.to_str().unwrap())]), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("token_file"), "{err}");
    }

    #[test]
    fn the_interceptor_sends_the_token_it_was_given() {
        use tonic::service::Interceptor;
        let mut bearer = Bearer::new(Some(TOKEN)).unwrap();
        let req = bearer.call(tonic::Request::new(())).unwrap();
        assert_eq!(
            req.metadata().get("authorization").unwrap(),
            &format!("Bearer {TOKEN}")
        );
        let mut none = Bearer::new(None).unwrap();
        assert!(
            none.call(tonic::Request::new(()))
                .unwrap()
                .metadata()
                .get("authorization")
                .is_none()
        );
        assert!(Bearer::new(Some("nope")).is_err());
        assert!(!format!("{bearer:?}").contains("theia_"));
    }
}
