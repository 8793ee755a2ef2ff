//! The Redis store. Every register is a Redis hash under a keyed hash of its
//! storage key, holding its timestamp in the clear (`ms`, `c`, `n`, `d` for a
//! deletion) and the whole change sealed (`v`). A Lua script merges a group
//! of registers server-side in one step: it writes a register only when the
//! incoming timestamp is larger than the stored one, by the same rule as the
//! Rust merge, so no manager can move an object back in time.
//!
//! Beside the objects: a key-check record sealed with the cluster secret
//! (a manager with another secret stops before writing anything), the
//! cluster id, the set of object keys, and a lease naming the one manager
//! that writes (until managers coordinate placements through generations,
//! a second manager on the same store is refused rather than allowed to
//! over-commit).

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use theia::state::Change;

use super::StoreError;
use super::sealed::{Sealer, Secret};

const KEYCHECK: &str = "theia:keycheck";
const KEYCHECK_TEXT: &[u8] = b"theia key check v1";
const CLUSTER: &str = "theia:cluster";
const OBJECTS: &str = "theia:objects";
const LEASE: &str = "theia:lease";
const OBJECT_PREFIX: &str = "theia:o:";

/// How long the writer's lease lasts unless renewed.
const LEASE_TTL: Duration = Duration::from_secs(10);
/// How long one Redis command may take before the call fails.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Registers fetched per round trip when loading.
const LOAD_CHUNK: usize = 512;

/// Merges registers: `KEYS[1]` is the set of object keys, `KEYS[2..=n+1]`
/// the objects to merge, the rest objects to delete; `ARGV[1]` is `n`, then
/// five values per object: ms, counter, node, deleted (0/1), sealed value.
/// Returns how many registers were written.
const MERGE: &str = r#"
local function node_gt(a, b)
  -- Byte order, as Rust compares strings (Lua's own comparison follows the
  -- server's locale).
  local la, lb = #a, #b
  for i = 1, math.min(la, lb) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x > y end
  end
  return la > lb
end
local n = tonumber(ARGV[1])
local written = 0
for i = 1, n do
  local key = KEYS[i + 1]
  local at = 1 + (i - 1) * 5
  local ms, c, node, del, val = ARGV[at + 1], ARGV[at + 2], ARGV[at + 3], ARGV[at + 4], ARGV[at + 5]
  local cur = redis.call('HMGET', key, 'ms', 'c', 'n', 'd')
  local newer
  if not cur[1] then
    newer = true
  else
    local cms, cc, ims, ic = tonumber(cur[1]), tonumber(cur[2]), tonumber(ms), tonumber(c)
    if ims ~= cms then newer = ims > cms
    elseif ic ~= cc then newer = ic > cc
    elseif node ~= cur[3] then newer = node_gt(node, cur[3])
    else newer = (del == '1' and cur[4] ~= '1') end
  end
  if newer then
    redis.call('HSET', key, 'ms', ms, 'c', c, 'n', node, 'd', del, 'v', val)
    redis.call('SADD', KEYS[1], key)
    written = written + 1
  end
end
for j = n + 2, #KEYS do
  redis.call('DEL', KEYS[j])
  redis.call('SREM', KEYS[1], KEYS[j])
end
return written
"#;

/// Takes or renews the lease for `ARGV[1]` for `ARGV[2]` ms; returns the
/// holder (the caller when it succeeded).
const LEASE_SCRIPT: &str = r#"
local holder = redis.call('GET', KEYS[1])
if not holder or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
return holder
"#;

/// Gives the lease up if `ARGV[1]` holds it.
const UNLEASE_SCRIPT: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"#;

/// A Redis URL without its password, for logs and `ClusterService`.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let host_end = rest.find('/').unwrap_or(rest.len());
    match rest[..host_end].rfind('@') {
        Some(at) => format!("{}://***@{}", &url[..scheme_end], &rest[at + 1..]),
        None => url.to_owned(),
    }
}

fn redis_err(location: &str) -> impl Fn(redis::RedisError) -> StoreError + '_ {
    move |e| StoreError::Unavailable(format!("Redis at {location}: {e}"))
}

/// A manager cluster's store in Redis.
pub struct RedisStore {
    conn: ConnectionManager,
    sealer: Sealer,
    location: String,
    cluster_id: String,
    manager_id: String,
    merge: redis::Script,
    lease: tokio::task::JoinHandle<()>,
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        self.lease.abort();
    }
}

impl RedisStore {
    /// Connects to `url`, checks `secret` against the cluster's key-check
    /// record (writing one only for a new cluster), reads or makes the
    /// cluster id and takes the writer's lease for `manager_id`.
    pub async fn open(url: &str, secret: &Secret, manager_id: &str) -> Result<Self, StoreError> {
        let location = redact(url);
        let client = redis::Client::open(url).map_err(|e| {
            StoreError::Unavailable(format!("redis: {location} is not a Redis URL: {e}"))
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(RESPONSE_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(2);
        let mut conn = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot reach Redis at {location}: {e}"))
            })?;
        let sealer = Sealer::new(secret);
        let err = redis_err(&location);

        let check: Option<Vec<u8>> = redis::cmd("GET")
            .arg(KEYCHECK)
            .query_async(&mut conn)
            .await
            .map_err(&err)?;
        match check {
            Some(sealed) => {
                if sealer.open(KEYCHECK.as_bytes(), &sealed).as_deref() != Ok(KEYCHECK_TEXT) {
                    return Err(StoreError::WrongSecret(location.clone()));
                }
            }
            None => {
                let sealed = sealer.seal(KEYCHECK.as_bytes(), KEYCHECK_TEXT);
                let _: Option<String> = redis::cmd("SET")
                    .arg(KEYCHECK)
                    .arg(sealed)
                    .arg("NX")
                    .query_async(&mut conn)
                    .await
                    .map_err(&err)?;
                // Another manager may have made the cluster at the same moment.
                let stored: Vec<u8> = redis::cmd("GET")
                    .arg(KEYCHECK)
                    .query_async(&mut conn)
                    .await
                    .map_err(&err)?;
                if sealer.open(KEYCHECK.as_bytes(), &stored).as_deref() != Ok(KEYCHECK_TEXT) {
                    return Err(StoreError::WrongSecret(location.clone()));
                }
            }
        }
        let _: Option<String> = redis::cmd("SET")
            .arg(CLUSTER)
            .arg(super::new_cluster_id())
            .arg("NX")
            .query_async(&mut conn)
            .await
            .map_err(&err)?;
        let cluster_id: String = redis::cmd("GET")
            .arg(CLUSTER)
            .query_async(&mut conn)
            .await
            .map_err(&err)?;

        let lease_script = redis::Script::new(LEASE_SCRIPT);
        let holder = take_lease(&lease_script, &mut conn, manager_id)
            .await
            .map_err(&err)?;
        if holder != manager_id {
            return Err(StoreError::Busy(format!(
                "manager {holder:?} is writing to Redis at {location}; this version runs one manager per Redis store at a time (it takes over within {}s of the other stopping)",
                LEASE_TTL.as_secs()
            )));
        }
        let lease = tokio::spawn(renew_lease(
            lease_script,
            conn.clone(),
            manager_id.to_owned(),
            location.clone(),
        ));
        drop(err);
        Ok(Self {
            conn,
            sealer,
            location,
            cluster_id,
            manager_id: manager_id.to_owned(),
            merge: redis::Script::new(MERGE),
            lease,
        })
    }

    /// The cluster id.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// The URL, password redacted.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The Redis key of a register.
    fn object_key(&self, storage_key: &str) -> String {
        format!("{OBJECT_PREFIX}{}", self.sealer.hash(storage_key))
    }

    /// Every stored register. A value that does not open, or whose clear
    /// timestamp differs from the sealed one, is reported and refused.
    pub async fn load(&self) -> Result<Vec<Change>, StoreError> {
        let mut conn = self.conn.clone();
        let err = redis_err(&self.location);
        let keys: Vec<String> = redis::cmd("SMEMBERS")
            .arg(OBJECTS)
            .query_async(&mut conn)
            .await
            .map_err(&err)?;
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(LOAD_CHUNK) {
            let mut pipe = redis::pipe();
            for key in chunk {
                pipe.cmd("HGETALL").arg(key);
            }
            let rows: Vec<HashMap<String, Vec<u8>>> =
                pipe.query_async(&mut conn).await.map_err(&err)?;
            for (key, row) in chunk.iter().zip(rows) {
                if row.is_empty() {
                    continue;
                }
                out.push(self.decode(key, &row)?);
            }
        }
        Ok(out)
    }

    fn decode(&self, key: &str, row: &HashMap<String, Vec<u8>>) -> Result<Change, StoreError> {
        let corrupt = |message: &str| StoreError::Corrupt {
            key: key.to_owned(),
            message: message.to_owned(),
        };
        let sealed = row.get("v").ok_or_else(|| corrupt("no value"))?;
        let plain = self
            .sealer
            .open(key.as_bytes(), sealed)
            .map_err(|e| corrupt(&e.to_string()))?;
        let change: Change = serde_json::from_slice(&plain)
            .map_err(|e| corrupt(&format!("the sealed value is not a register: {e}")))?;
        if self.object_key(&change.storage_key()) != key {
            return Err(corrupt("the sealed register belongs under another key"));
        }
        let text = |field: &str| {
            row.get(field)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        let ts = change.timestamp();
        if text("ms") != ts.ms.to_string()
            || text("c") != ts.counter.to_string()
            || text("n") != ts.node
        {
            return Err(corrupt(
                "the timestamp in the clear differs from the sealed one",
            ));
        }
        Ok(change)
    }

    /// Merges `changes` and deletes `deletes` (storage keys) in one script
    /// run: all or nothing. With Redis's append-only file and
    /// `appendfsync always`, an answer means it survives a Redis restart.
    pub async fn write(&self, changes: &[Change], deletes: &[String]) -> Result<(), StoreError> {
        if changes.is_empty() && deletes.is_empty() {
            return Ok(());
        }
        let mut call = self.merge.prepare_invoke();
        call.key(OBJECTS).arg(changes.len());
        for change in changes {
            let key = self.object_key(&change.storage_key());
            let json =
                serde_json::to_vec(change).map_err(|e| StoreError::Database(e.to_string()))?;
            let ts = change.timestamp();
            let deleted = if change.is_tombstone() { "1" } else { "0" };
            let sealed = self.sealer.seal(key.as_bytes(), &json);
            call.key(&key)
                .arg(ts.ms)
                .arg(ts.counter)
                .arg(&ts.node)
                .arg(deleted)
                .arg(sealed);
        }
        for storage_key in deletes {
            call.key(self.object_key(storage_key));
        }
        let mut conn = self.conn.clone();
        let _: u64 = call
            .invoke_async(&mut conn)
            .await
            .map_err(redis_err(&self.location))?;
        Ok(())
    }

    /// Gives the writer's lease up, so that another manager may start at once.
    pub async fn close(&self) {
        self.lease.abort();
        let mut conn = self.conn.clone();
        let _: Result<i64, _> = redis::Script::new(UNLEASE_SCRIPT)
            .key(LEASE)
            .arg(&self.manager_id)
            .invoke_async(&mut conn)
            .await;
    }
}

async fn take_lease(
    script: &redis::Script,
    conn: &mut ConnectionManager,
    manager_id: &str,
) -> redis::RedisResult<String> {
    let ttl_ms = u64::try_from(LEASE_TTL.as_millis()).unwrap_or(u64::MAX);
    script
        .key(LEASE)
        .arg(manager_id)
        .arg(ttl_ms)
        .invoke_async(conn)
        .await
}

async fn renew_lease(
    script: redis::Script,
    mut conn: ConnectionManager,
    manager_id: String,
    location: String,
) {
    let mut tick = tokio::time::interval(LEASE_TTL / 3);
    tick.tick().await;
    loop {
        tick.tick().await;
        match take_lease(&script, &mut conn, &manager_id).await {
            Ok(holder) if holder == manager_id => {}
            Ok(holder) => {
                tracing::error!(%holder, redis = %location, "another manager took the Redis store's lease")
            }
            Err(e) => {
                tracing::warn!(error = %e, redis = %location, "cannot renew the Redis store's lease; will retry")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use theia::clock::Timestamp;
    use theia::crdt::{Crdt, Lww, LwwMap};
    use theia::model::{Profile, Resources};

    use super::*;

    /// A real redis-server on a free port, killed when dropped; its
    /// directory lives as long as it does.
    struct Server(
        std::process::Child,
        u16,
        #[allow(dead_code)] tempfile::TempDir,
    );

    impl Server {
        fn start() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let child = std::process::Command::new("redis-server")
                .args([
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    &port.to_string(),
                    "--save",
                    "",
                ])
                .arg("--dir")
                .arg(dir.path())
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("redis-server is not installed: scripts/test.sh installs it");
            Self(child, port, dir)
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    async fn open(port: u16) -> RedisStore {
        let secret = Secret::from_hex(&"42".repeat(32)).unwrap();
        let url = format!("redis://127.0.0.1:{port}");
        for _ in 0..250 {
            match RedisStore::open(&url, &secret, "m-test").await {
                Ok(store) => return store,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        panic!("redis-server on {port} never answered");
    }

    /// The registers of one round: a few keys, stamps that often tie (with
    /// node ids whose byte order differs from a locale's), deletions.
    fn round(rng: &mut impl rand::Rng, n: usize, round: usize) -> Vec<Change> {
        (0..n)
            .map(|_| {
                let key = format!("r{round}-k{}", rng.random_range(0..3));
                let ts = Timestamp {
                    ms: rng.random_range(0..4),
                    counter: rng.random_range(0..2),
                    node: ["a", "a-b", "aB", "ab", "m-1"][rng.random_range(0..5)].to_owned(),
                };
                // A stamp names one write: the value follows from it.
                let register = if rng.random_bool(0.25) {
                    Lww::tombstone(ts)
                } else {
                    let profile = Profile {
                        name: key.clone(),
                        resources: Resources::parse_list("r", "compute.vcpu=1").unwrap(),
                        description: ts.to_string(),
                    };
                    Lww::new(ts, profile)
                };
                Change::Profile { key, register }
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_lua_merge_agrees_with_the_rust_merge() {
        use rand::{Rng, SeedableRng};
        let server = Server::start();
        let store = open(server.1).await;
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x7e1a);
        let mut oracle: LwwMap<String, Profile> = LwwMap::new();
        for r in 0..60 {
            let n = rng.random_range(1..12);
            let writes = round(&mut rng, n, r);
            // In random groups, each one script run.
            let mut rest = writes.as_slice();
            while !rest.is_empty() {
                let take = rng.random_range(1..=rest.len());
                store.write(&rest[..take], &[]).await.unwrap();
                rest = &rest[take..];
            }
            for w in &writes {
                if let Change::Profile { key, register } = w {
                    oracle.merge(&LwwMap::single(key.clone(), register.clone()));
                }
            }
        }
        let stored: BTreeMap<String, Lww<Profile>> = store
            .load()
            .await
            .unwrap()
            .into_iter()
            .filter_map(|c| match c {
                Change::Profile { key, register } => Some((key, register)),
                _ => None,
            })
            .collect();
        let expected: BTreeMap<String, Lww<Profile>> = oracle
            .registers()
            .map(|(k, r)| (k.clone(), r.clone()))
            .collect();
        assert_eq!(stored.len(), expected.len());
        assert_eq!(stored, expected, "Redis holds what the Rust merge holds");

        // Deleting keys (pruning) removes them from the load.
        let gone: Vec<String> = expected
            .keys()
            .take(3)
            .map(|k| format!("profile/{k}"))
            .collect();
        store.write(&[], &gone).await.unwrap();
        assert_eq!(store.load().await.unwrap().len(), expected.len() - 3);
    }

    #[test]
    fn passwords_never_leave_the_url() {
        assert_eq!(
            redact("redis://:hunter2@db:6379/2"),
            "redis://***@db:6379/2"
        );
        assert_eq!(
            redact("rediss://user:pw@db.example:6380"),
            "rediss://***@db.example:6380"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(redact("not a url"), "not a url");
    }
}
