//! Bearer tokens: what is handed out once, and the record kept of it.
//!
//! A token reads `theia_<id>_<secret>`: the id (16 hex digits) names the
//! record, the secret (64 hex digits, 256 random bits) proves possession.
//! Only the SHA-256 of the secret is stored. The secret is random, not a
//! password, so a plain hash cannot be searched faster than the secret
//! space itself.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Role;
use crate::model::{FieldError, validate_text};

const PREFIX: &str = "theia_";
const ID_LEN: usize = 16;
const SECRET_LEN: usize = 64;
/// The most roles one token may carry.
pub const MAX_ROLES: usize = 64;

/// The record of one token: who it speaks for, with which roles, until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// Its id: public, named by `RevokeToken` and in the audit trail.
    pub id: String,
    /// Who it speaks for (an e-mail address, a service name).
    pub subject: String,
    /// What it may do.
    pub roles: BTreeSet<Role>,
    /// Unix milliseconds after which it is refused; `None` for never.
    pub expires_unix_ms: Option<u64>,
    /// Unix milliseconds when it was made.
    pub created_unix_ms: u64,
    /// The subject of the token that made it (`bootstrap` for the first).
    pub created_by: String,
    /// What it is for, free text.
    #[serde(default)]
    pub description: String,
    /// SHA-256 of its secret, in hex.
    pub secret_hash: String,
}

/// Why a bearer token was not taken. Messages never repeat the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No `authorization` metadata.
    #[error(
        "this call needs a token: pass --token, set THEIA_TOKEN, or put it in ~/.config/theia/token (gRPC metadata \"authorization: Bearer <token>\")"
    )]
    Missing,
    /// Not `Bearer theia_<id>_<secret>`.
    #[error(
        "the authorization metadata is not \"Bearer theia_<16 hex>_<64 hex>\"; check the token you passed"
    )]
    Malformed,
    /// No live token has this id and secret (never made, or revoked).
    #[error("unknown or revoked token")]
    Unknown,
    /// It was good until the given Unix milliseconds.
    #[error("the token expired (at Unix ms {0}); ask an admin for a new one")]
    Expired(u64),
}

/// A token as presented: its id and secret, not yet checked.
#[derive(Clone, PartialEq, Eq)]
pub struct Presented {
    /// The record's id.
    pub id: String,
    secret: String,
}

impl fmt::Debug for Presented {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Presented {{ id: {:?}, secret: <redacted> }}", self.id)
    }
}

fn is_lower_hex(text: &str, len: usize) -> bool {
    text.len() == len
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl Presented {
    /// Reads `theia_<id>_<secret>` (surrounding white space allowed).
    pub fn parse(token: &str) -> Result<Self, TokenError> {
        let rest = token
            .trim()
            .strip_prefix(PREFIX)
            .ok_or(TokenError::Malformed)?;
        let (id, secret) = rest.split_once('_').ok_or(TokenError::Malformed)?;
        if !is_lower_hex(id, ID_LEN) || !is_lower_hex(secret, SECRET_LEN) {
            return Err(TokenError::Malformed);
        }
        Ok(Self {
            id: id.to_owned(),
            secret: secret.to_owned(),
        })
    }

    /// Reads the value of `authorization` metadata: `Bearer <token>`, the
    /// scheme in any case.
    pub fn from_header(value: &str) -> Result<Self, TokenError> {
        let (scheme, token) = value.trim().split_once(' ').ok_or(TokenError::Malformed)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(TokenError::Malformed);
        }
        Self::parse(token)
    }

    /// Whether `token`'s record was made for this secret and is still good
    /// at `now_ms`.
    pub fn check(&self, token: &Token, now_ms: u64) -> Result<(), TokenError> {
        let presented = hash(&self.secret);
        let matches: bool = presented
            .as_bytes()
            .ct_eq(token.secret_hash.as_bytes())
            .into();
        if token.id != self.id || !matches {
            return Err(TokenError::Unknown);
        }
        match token.expires_unix_ms {
            Some(at) if now_ms >= at => Err(TokenError::Expired(at)),
            _ => Ok(()),
        }
    }
}

/// What to make a token for: validated before anything is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// Who it speaks for.
    pub subject: String,
    /// Its roles.
    pub roles: BTreeSet<Role>,
    /// When it stops working, Unix milliseconds.
    pub expires_unix_ms: Option<u64>,
    /// What it is for.
    pub description: String,
}

impl TokenRequest {
    /// Checks the subject, roles and description.
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.subject.trim().is_empty() {
            return Err(FieldError::new(
                "subject",
                "must name who the token is for (an e-mail address, a service)",
            ));
        }
        validate_text("subject", &self.subject)?;
        validate_text("description", &self.description)?;
        if self.roles.len() > MAX_ROLES {
            return Err(FieldError::new(
                "roles",
                format!("at most {MAX_ROLES} roles are allowed"),
            ));
        }
        Ok(())
    }

    /// Makes the token from 8 random bytes (its id) and 32 more (its
    /// secret), at `now_ms`, by `created_by`: the record to store, and the
    /// token to hand over once.
    pub fn issue(
        self,
        id_bytes: [u8; 8],
        secret_bytes: [u8; 32],
        now_ms: u64,
        created_by: &str,
    ) -> (Token, String) {
        let id = hex::encode(id_bytes);
        let secret = hex::encode(secret_bytes);
        let text = format!("{PREFIX}{id}_{secret}");
        let token = Token {
            id,
            subject: self.subject,
            roles: self.roles,
            expires_unix_ms: self.expires_unix_ms,
            created_unix_ms: now_ms,
            created_by: created_by.to_owned(),
            description: self.description,
            secret_hash: hash(&secret),
        };
        (token, text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> TokenRequest {
        TokenRequest {
            subject: "ops@example.com".into(),
            roles: [Role::Operator].into(),
            expires_unix_ms: Some(5_000),
            description: "test".into(),
        }
    }

    #[test]
    fn an_issued_token_checks_against_its_record_until_it_expires() {
        let (record, text) = request().issue([1; 8], [2; 32], 1_000, "root");
        assert_eq!(record.id, "0101010101010101");
        assert_eq!(record.created_unix_ms, 1_000);
        assert_eq!(record.created_by, "root");
        assert!(text.starts_with("theia_0101010101010101_"));
        assert!(!record.secret_hash.contains(&"02".repeat(32)));
        let presented = Presented::parse(&text).unwrap();
        assert_eq!(presented.check(&record, 4_999), Ok(()));
        assert_eq!(
            presented.check(&record, 5_000),
            Err(TokenError::Expired(5_000))
        );
        let forever = Token {
            expires_unix_ms: None,
            ..record.clone()
        };
        assert_eq!(presented.check(&forever, u64::MAX), Ok(()));
    }

    #[test]
    fn another_secret_or_another_record_is_unknown() {
        let (record, text) = request().issue([1; 8], [2; 32], 0, "root");
        let (other, other_text) = request().issue([1; 8], [3; 32], 0, "root");
        let presented = Presented::parse(&text).unwrap();
        assert_eq!(presented.check(&other, 0), Err(TokenError::Unknown));
        let same_secret_other_id = Token {
            id: "ffffffffffffffff".into(),
            ..record.clone()
        };
        assert_eq!(
            presented.check(&same_secret_other_id, 0),
            Err(TokenError::Unknown)
        );
        assert_eq!(
            Presented::parse(&other_text).unwrap().check(&record, 0),
            Err(TokenError::Unknown)
        );
    }

    #[test]
    fn only_well_formed_bearer_headers_are_read() {
        let (_, text) = request().issue([0xab; 8], [0xcd; 32], 0, "root");
        let p = Presented::from_header(&format!("Bearer {text}")).unwrap();
        assert_eq!(p.id, "abababababababab");
        assert_eq!(
            Presented::from_header(&format!("bearer  {text} ")).unwrap(),
            p
        );
        assert_eq!(
            Presented::from_header(&format!("bearer {text}\n")).unwrap(),
            p
        );
        let shown = format!("{p:?}");
        assert!(!shown.contains("cdcd"), "{shown}");
        assert!(
            shown.contains("abababababababab") && shown.contains("redacted"),
            "{shown}"
        );
        for bad in [
            text.clone(),
            format!("Basic {text}"),
            "Bearer".to_owned(),
            format!("Bearer {}", &text[..text.len() - 1]),
            format!("Bearer {}A", &text[..text.len() - 1]),
            format!("Bearer {}", text.replace("theia_", "other_")),
            format!("Bearer {}", text.replacen('_', "-", 2)),
            format!("Bearer theia_{}_{}", "g".repeat(16), "0".repeat(64)),
            format!("Bearer theia_{}_{}", "0".repeat(15), "0".repeat(64)),
        ] {
            assert_eq!(
                Presented::from_header(&bad),
                Err(TokenError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn requests_are_validated() {
        assert!(request().validate().is_ok());
        let blank = TokenRequest {
            subject: " ".into(),
            ..request()
        };
        assert!(
            blank
                .validate()
                .unwrap_err()
                .to_string()
                .contains("subject")
        );
        let control = TokenRequest {
            subject: "a\u{1b}[31m".into(),
            ..request()
        };
        assert!(control.validate().is_err());
        let long = TokenRequest {
            description: "x".repeat(300),
            ..request()
        };
        assert!(
            long.validate()
                .unwrap_err()
                .to_string()
                .contains("description")
        );
        let many = TokenRequest {
            roles: (0..=MAX_ROLES)
                .map(|i| Role::Tenant(format!("t{i}")))
                .collect(),
            ..request()
        };
        assert!(many.validate().unwrap_err().to_string().contains("roles"));
        let enough = TokenRequest {
            roles: (0..MAX_ROLES)
                .map(|i| Role::Tenant(format!("t{i}")))
                .collect(),
            ..request()
        };
        assert!(enough.validate().is_ok());
    }
}
