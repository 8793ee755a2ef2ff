//! `AccessService`: bearer tokens and who a token speaks for.

use std::collections::BTreeSet;

use theia::access::{Role, Token, TokenRequest};
use theia::api::v1;
use theia::api::v1::access_service_server::AccessService;
use theia::crdt::Lww;
use theia::model::{Datacenter, FieldError, quoted};
use theia::state::{Books, Change};
use tonic::{Request, Response, Status};

use super::Api;
use super::paging::PageRequest;
use crate::access::caller;
use crate::error::ApiError;
use crate::ledger::{Ledger, wall_ms};

/// The longest a token may be made for: 10 years.
const MAX_TTL_SECONDS: u64 = 10 * 366 * 24 * 3600;

fn ms_to_wire(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// A token's record for the wire: never its secret or its hash.
pub fn token_to_wire(token: &Token) -> v1::Token {
    v1::Token {
        id: token.id.clone(),
        subject: token.subject.clone(),
        roles: token.roles.iter().map(ToString::to_string).collect(),
        expires_unix_ms: token.expires_unix_ms.map_or(0, ms_to_wire),
        created_unix_ms: ms_to_wire(token.created_unix_ms),
        created_by: token.created_by.clone(),
        description: token.description.clone(),
    }
}

/// Reads and checks what a token is asked for, at `now_ms`.
fn token_request(req: v1::CreateTokenRequest, now_ms: u64) -> Result<TokenRequest, FieldError> {
    if req.roles.len() > theia::access::MAX_ROLES {
        return Err(FieldError::new(
            "roles",
            format!("at most {} roles are allowed", theia::access::MAX_ROLES),
        ));
    }
    let roles = req
        .roles
        .iter()
        .enumerate()
        .map(|(i, r)| {
            r.parse::<Role>()
                .map_err(|e| FieldError::new(format!("roles[{i}]"), e.to_string()))
        })
        .collect::<Result<BTreeSet<Role>, _>>()?;
    if req.ttl_seconds > MAX_TTL_SECONDS {
        return Err(FieldError::new(
            "ttl_seconds",
            format!(
                "is more than 10 years ({MAX_TTL_SECONDS} s); use 0 for a token that does not expire"
            ),
        ));
    }
    let expires_unix_ms = (req.ttl_seconds > 0).then(|| now_ms + req.ttl_seconds * 1000);
    let request = TokenRequest {
        subject: req.subject,
        roles,
        expires_unix_ms,
        description: req.description,
    };
    request.validate()?;
    Ok(request)
}

/// Issues `request` in `ledger`: the token's record and the datacenters its
/// agent roles name that are not known yet, in one write.
pub fn issue(
    ledger: &mut Ledger,
    request: TokenRequest,
    created_by: &str,
) -> (Token, String, crate::writer::Durable) {
    let (token, secret) = loop {
        let (token, secret) =
            request
                .clone()
                .issue(rand::random(), rand::random(), wall_ms(), created_by);
        // Ids are 64 random bits; a collision is only ever retried.
        if ledger.books.tokens.register(&token.id).is_none() {
            break (token, secret);
        }
    };
    let ts = ledger.stamp();
    let mut changes = vec![Change::token(ts.clone(), token.clone())];
    for role in &token.roles {
        if let Role::Agent(dc) = role
            && !ledger.books.datacenters.contains_key(dc)
        {
            changes.push(Change::datacenter(
                ts.clone(),
                Datacenter::new(dc.clone(), Default::default()),
            ));
        }
    }
    let durable = ledger.commit(changes, Vec::new());
    (token, secret, durable)
}

fn live_admins(books: &Books, now_ms: u64) -> usize {
    books
        .tokens
        .values()
        .filter(|t| t.roles.contains(&Role::Admin))
        .filter(|t| t.expires_unix_ms.is_none_or(|at| at > now_ms))
        .count()
}

#[tonic::async_trait]
impl AccessService for Api {
    async fn create_token(
        &self,
        req: Request<v1::CreateTokenRequest>,
    ) -> Result<Response<v1::CreateTokenResponse>, Status> {
        let by = caller(&req)?;
        let request = token_request(req.into_inner(), wall_ms()).map_err(ApiError::from)?;
        let mut ledger = self.ledger.lock().await;
        let (token, secret, durable) = issue(&mut ledger, request, &by.subject);
        drop(ledger);
        durable.wait().await.map_err(ApiError::from)?;
        let roles: Vec<String> = token.roles.iter().map(ToString::to_string).collect();
        tracing::info!(token = %token.id, subject = %token.subject.escape_debug(), roles = %roles.join(","), by = %by.subject.escape_debug(), "token created");
        Ok(Response::new(v1::CreateTokenResponse {
            token: Some(token_to_wire(&token)),
            secret,
        }))
    }

    async fn list_tokens(
        &self,
        req: Request<v1::ListTokensRequest>,
    ) -> Result<Response<v1::ListTokensResponse>, Status> {
        let req = req.into_inner();
        let page = PageRequest::new(req.page_size, &req.page_token)?;
        let ledger = self.ledger.lock().await;
        let (picked, next_page_token) =
            page.take(ledger.books.tokens.iter().map(|(id, t)| (id.clone(), t)));
        Ok(Response::new(v1::ListTokensResponse {
            tokens: picked.into_iter().map(token_to_wire).collect(),
            next_page_token,
        }))
    }

    async fn revoke_token(
        &self,
        req: Request<v1::RevokeTokenRequest>,
    ) -> Result<Response<v1::RevokeTokenResponse>, Status> {
        let by = caller(&req)?;
        let id = req.into_inner().id;
        let mut ledger = self.ledger.lock().await;
        let Some(token) = ledger.books.tokens.get(&id).cloned() else {
            return Err(ApiError::NotFound(format!(
                "id: token {} does not exist or was revoked",
                quoted(&id)
            ))
            .into());
        };
        if token.roles.contains(&Role::Admin) && live_admins(&ledger.books, wall_ms()) <= 1 {
            return Err(ApiError::FailedPrecondition(format!(
                "token {id} is the last admin token: create another admin token before revoking it"
            ))
            .into());
        }
        let durable = ledger.put(|ts| Change::Token {
            key: id.clone(),
            register: Lww::tombstone(ts),
        });
        drop(ledger);
        durable.wait().await.map_err(ApiError::from)?;
        tracing::info!(token = %id, subject = %token.subject.escape_debug(), by = %by.subject.escape_debug(), "token revoked");
        Ok(Response::new(v1::RevokeTokenResponse {}))
    }

    async fn who_am_i(
        &self,
        req: Request<v1::WhoAmIRequest>,
    ) -> Result<Response<v1::WhoAmIResponse>, Status> {
        let me = caller(&req)?;
        let ledger = self.ledger.lock().await;
        let token = ledger
            .books
            .tokens
            .get(&me.token_id)
            .ok_or_else(|| Status::unauthenticated("unknown or revoked token"))?;
        Ok(Response::new(v1::WhoAmIResponse {
            token: Some(token_to_wire(token)),
            tenants: me.tenants.into_iter().collect(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(roles: &[&str], ttl: u64) -> v1::CreateTokenRequest {
        v1::CreateTokenRequest {
            subject: "ops@example.com".into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            ttl_seconds: ttl,
            description: String::new(),
        }
    }

    #[test]
    fn token_requests_name_the_bad_field() {
        let ok = token_request(wire(&["operator", "tenant:acme"], 60), 1_000).unwrap();
        assert_eq!(ok.expires_unix_ms, Some(61_000));
        assert_eq!(ok.roles.len(), 2);
        assert_eq!(
            token_request(wire(&["admin"], 0), 5)
                .unwrap()
                .expires_unix_ms,
            None
        );
        let err = |w| token_request(w, 0).unwrap_err().to_string();
        assert!(token_request(wire(&[], 0), 0).unwrap().roles.is_empty());
        assert!(err(wire(&["admin", "root"], 0)).starts_with("roles[1]:"));
        assert!(err(wire(&["admin"], MAX_TTL_SECONDS + 1)).starts_with("ttl_seconds:"));
        assert!(token_request(wire(&["admin"], MAX_TTL_SECONDS), 0).is_ok());
        let many: Vec<String> = (0..65).map(|i| format!("tenant:t{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(err(wire(&many, 0)).starts_with("roles:"));
    }
}
