//! The Redis store. Every register is a Redis hash under a keyed hash of its
//! storage key, holding its timestamp in the clear (`ms`, `c`, `n`, `d` for a
//! deletion) and the whole change sealed (`v`). One Lua script writes a
//! group of batches server-side in one step:
//!
//! - it merges a register only when the incoming timestamp is larger than the
//!   stored one, by the same rule as the Rust merge, so no manager can move
//!   an object back in time;
//! - a batch that places capacity first checks the generations of the
//!   datacenters and the tenant it decided on (OpenStack Placement's
//!   resource-provider generations) and is refused when another manager
//!   moved one; written batches advance their generations;
//! - every written batch is announced on a stream that every manager tails.
//!
//! Beside the objects: a key-check record sealed with the cluster secret
//! (a manager with another secret stops before writing anything), the
//! cluster id, the set of object keys, the generations, the feed, when
//! each datacenter's agent was last heard by any manager, which manager
//! serves each datacenter's stream (a lease), and the managers' own
//! announcements.

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use theia::state::Change;

use super::sealed::{Sealer, Secret};
use super::{Batch, Outcome, StoreError};

const KEYCHECK: &str = "theia:keycheck";
const KEYCHECK_TEXT: &[u8] = b"theia key check v1";
const CLUSTER: &str = "theia:cluster";
const OBJECTS: &str = "theia:objects";
const GENERATIONS: &str = "theia:gen";
const FEED: &str = "theia:feed";
const SEEN: &str = "theia:seen";
const MANAGERS: &str = "theia:managers";
const OBJECT_PREFIX: &str = "theia:o:";
const STREAM_PREFIX: &str = "theia:stream:";

/// How long one Redis command may take before the call fails.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Registers fetched per round trip when loading.
const LOAD_CHUNK: usize = 512;
/// Feed entries kept; a manager further behind reloads in full.
const FEED_MAX: u64 = 100_000;

/// The most feed entries read at once.
const FEED_READ: u64 = 512;

/// `KEYS`: objects set, generations hash, feed, then every batch's object
/// keys in order, then keys to delete. `ARGV`: manager id, feed length,
/// batch count, then per batch: checks, bumps, writes (counts), the checks
/// as field and expected value, the bumped fields, and five values per
/// write (ms, counter, node, deleted 0/1, sealed value). Returns per batch
/// -1 (conflict) or the number of bumps followed by their new values.
const WRITE: &str = r#"
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
local function merge(key, ms, c, node, del, val)
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
  end
end
local out = {}
local failed = {}
local a, k = 4, 4
for b = 1, tonumber(ARGV[3]) do
  local nc, nb, nw = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  a = a + 3
  local ok = true
  local checked = {}
  for i = 1, nc do
    local f, want = ARGV[a], tonumber(ARGV[a + 1])
    a = a + 2
    checked[#checked + 1] = f
    local have = tonumber(redis.call('HGET', KEYS[2], f) or '0')
    if failed[f] or have ~= want then ok = false end
  end
  local bumps = {}
  for i = 1, nb do bumps[i] = ARGV[a]; a = a + 1 end
  if not ok then
    -- Later batches of this manager were decided on top of this one.
    for _, f in ipairs(checked) do failed[f] = true end
    a = a + 5 * nw
    k = k + nw
    out[#out + 1] = -1
  else
    local keys = {}
    for i = 1, nw do
      merge(KEYS[k], ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4])
      keys[#keys + 1] = KEYS[k]
      k = k + 1
      a = a + 5
    end
    out[#out + 1] = nb
    local gens = {}
    for i = 1, nb do
      local v = redis.call('HINCRBY', KEYS[2], bumps[i], 1)
      out[#out + 1] = v
      gens[#gens + 1] = bumps[i] .. '=' .. v
    end
    if nw > 0 then
      redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*', 'm', ARGV[1], 'k', table.concat(keys, ' '), 'g', table.concat(gens, ' '))
    end
  end
end
for j = k, #KEYS do
  redis.call('DEL', KEYS[j])
  redis.call('SREM', KEYS[1], KEYS[j])
end
return out
"#;

/// Takes or renews a stream lease for `ARGV[1]` for `ARGV[2]` ms; returns
/// the holder (the caller when it succeeded).
const TAKE_STREAM: &str = r#"
local holder = redis.call('GET', KEYS[1])
if not holder or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
return holder
"#;

/// Gives a stream lease up if `ARGV[1]` holds it.
const RELEASE_STREAM: &str = r#"
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

/// One written batch of another manager, as the feed announced it.
#[derive(Debug)]
pub struct FeedEntry {
    /// The manager that wrote it.
    pub manager: String,
    /// Its registers, as stored now (they may be newer than the batch).
    pub changes: Vec<Change>,
    /// The generations it advanced, and to what.
    pub generations: Vec<(String, u64)>,
}

/// Where a manager stands in the feed: the last entry it read, and how many
/// entries the feed had taken in up to and including that one (Redis's
/// `entries-added`), which is what tells a trimmed gap from no news.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedPosition {
    /// Stream id of the last entry read (`0-0`: none).
    pub id: String,
    /// Entries ever added to the feed up to and including `id`.
    pub seq: u64,
}

/// What the feed had after a position.
#[derive(Debug)]
pub struct FeedRead {
    /// Where to read on from.
    pub position: FeedPosition,
    /// The entries, oldest first.
    pub entries: Vec<FeedEntry>,
    /// Entries after the old position were trimmed away: reload in full.
    pub missed: bool,
}

/// A manager cluster's store in Redis.
pub struct RedisStore {
    conn: ConnectionManager,
    /// A connection of its own for the feed: a blocking read on the shared
    /// one would hold every write behind it.
    feed_conn: ConnectionManager,
    sealer: Sealer,
    location: String,
    cluster_id: String,
    manager_id: String,
    feed_start: FeedPosition,
    write: redis::Script,
}

impl RedisStore {
    /// Connects to `url`, checks `secret` against the cluster's key-check
    /// record (writing one only for a new cluster), reads or makes the
    /// cluster id, and notes where the feed stands before anything is read.
    pub async fn open(
        url: &str,
        ca: Option<&[u8]>,
        secret: &Secret,
        manager_id: &str,
    ) -> Result<Self, StoreError> {
        let location = redact(url);
        let client = match ca {
            None => redis::Client::open(url),
            Some(pem) => redis::Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.to_vec()),
                },
            ),
        }
        .map_err(|e| StoreError::Unavailable(format!("redis: {location}: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(RESPONSE_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(2);
        let unreachable = |e: redis::RedisError| {
            let text = e.to_string();
            let hint = if text.contains("certificate") {
                " (set redis_ca to the PEM file of the authority that signed Redis's certificate)"
            } else if url.starts_with("redis://") && text.contains("reset by peer") {
                " (if that port speaks TLS, use a rediss:// URL)"
            } else {
                ""
            };
            StoreError::Unavailable(format!("cannot reach Redis at {location}: {text}{hint}"))
        };
        let mut conn = client
            .get_connection_manager_with_config(config.clone())
            .await
            .map_err(unreachable)?;
        let feed_conn = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(unreachable)?;
        let sealer = Sealer::new(secret);
        let err = redis_err(&location);
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut conn)
            .await
            .map_err(&err)?;
        check_version(&info, &location)?;

        let check: Option<Vec<u8>> = redis::cmd("GET")
            .arg(KEYCHECK)
            .query_async(&mut conn)
            .await
            .map_err(&err)?;
        let stored = match check {
            Some(sealed) => sealed,
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
                redis::cmd("GET")
                    .arg(KEYCHECK)
                    .query_async(&mut conn)
                    .await
                    .map_err(&err)?
            }
        };
        if sealer.open(KEYCHECK.as_bytes(), &stored).as_deref() != Ok(KEYCHECK_TEXT) {
            return Err(StoreError::WrongSecret(location.clone()));
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
        // Entries after this point reach this manager through the feed even
        // if they land while it loads; merging one twice changes nothing.
        let feed_start = feed_end(&mut conn).await.map_err(&err)?;
        drop(err);
        Ok(Self {
            conn,
            feed_conn,
            sealer,
            location,
            cluster_id,
            manager_id: manager_id.to_owned(),
            feed_start,
            write: redis::Script::new(WRITE),
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

    /// Where the feed stood when this store was opened.
    pub fn feed_start(&self) -> &FeedPosition {
        &self.feed_start
    }

    /// The Redis key of a register.
    fn object_key(&self, storage_key: &str) -> String {
        format!("{OBJECT_PREFIX}{}", self.sealer.hash(storage_key))
    }

    /// The field of a generation (`dc/<id>`, `tenant/<name>`, …).
    pub fn gen_field(&self, name: &str) -> String {
        self.sealer.hash(&format!("generation/{name}"))
    }

    /// The field under which a datacenter's last-heard time is shared.
    pub fn seen_field(&self, dc: &str) -> String {
        self.sealer.hash(&format!("seen/{dc}"))
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

    /// Writes a group of batches in one script run, each all or nothing;
    /// see [`Store::write`](super::Store::write). With Redis's append-only
    /// file and `appendfsync always`, an answer means it survives a Redis
    /// restart.
    pub async fn write(
        &self,
        batches: &[Batch],
        deletes: &[String],
    ) -> Result<Vec<Outcome>, StoreError> {
        if batches
            .iter()
            .all(|b| b.writes.is_empty() && b.bumps.is_empty())
            && deletes.is_empty()
        {
            return Ok(batches
                .iter()
                .map(|_| Outcome::Written(Vec::new()))
                .collect());
        }
        let mut call = self.write.prepare_invoke();
        call.key(OBJECTS).key(GENERATIONS).key(FEED);
        call.arg(&self.manager_id).arg(FEED_MAX).arg(batches.len());
        for batch in batches {
            call.arg(batch.checks.len())
                .arg(batch.bumps.len())
                .arg(batch.writes.len());
            for (field, expected) in &batch.checks {
                call.arg(field).arg(*expected);
            }
            for field in &batch.bumps {
                call.arg(field);
            }
            for change in &batch.writes {
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
        }
        for storage_key in deletes {
            call.key(self.object_key(storage_key));
        }
        let mut conn = self.conn.clone();
        let answer: Vec<i64> = call
            .invoke_async(&mut conn)
            .await
            .map_err(redis_err(&self.location))?;
        let mut answer = answer.into_iter();
        let mut out = Vec::with_capacity(batches.len());
        for batch in batches {
            let bad = || StoreError::Database("the write script answered out of shape".to_owned());
            let n = answer.next().ok_or_else(bad)?;
            if n < 0 {
                out.push(Outcome::Conflict);
                continue;
            }
            let mut gens = Vec::with_capacity(batch.bumps.len());
            for field in &batch.bumps {
                let v = answer.next().ok_or_else(bad)?;
                gens.push((field.clone(), u64::try_from(v).unwrap_or(0)));
            }
            out.push(Outcome::Written(gens));
        }
        Ok(out)
    }

    /// The batches written after `position` (this manager's too), waiting up
    /// to `block` for one; each register read as it is stored now.
    pub async fn read_feed(
        &self,
        position: &FeedPosition,
        block: Duration,
    ) -> Result<FeedRead, StoreError> {
        let err = redis_err(&self.location);
        let mut conn = self.feed_conn.clone();
        let block_ms = u64::try_from(block.as_millis()).unwrap_or(1000);
        // Wait for news; what is read is taken below, from a snapshot.
        let news: redis::Value = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg(block_ms)
            .arg("STREAMS")
            .arg(FEED)
            .arg(&position.id)
            .query_async(&mut conn)
            .await
            .map_err(&err)?;
        if stream_entries(news).is_empty() {
            return Ok(FeedRead {
                position: position.clone(),
                entries: Vec::new(),
                missed: false,
            });
        }
        // The entries after the position and the feed's counters at one
        // instant (MULTI): the feed holds the newest `length` of the
        // `entries-added` it ever took, so entry `seq + 1` is gone exactly
        // when more than `seq` were trimmed.
        let (info, range): (HashMap<String, redis::Value>, redis::Value) = redis::pipe()
            .atomic()
            .cmd("XINFO")
            .arg("STREAM")
            .arg(FEED)
            .cmd("XRANGE")
            .arg(FEED)
            .arg(format!("({}", position.id))
            .arg("+")
            .arg("COUNT")
            .arg(FEED_READ)
            .query_async(&mut conn)
            .await
            .map_err(&err)?;
        let counter = |field: &str| info.get(field).and_then(value_u64).unwrap_or(0);
        let trimmed = counter("entries-added").saturating_sub(counter("length"));
        let raw = range_entries(range);
        let missed = trimmed > position.seq;
        let mut read = FeedRead {
            position: FeedPosition {
                id: raw
                    .last()
                    .map_or_else(|| position.id.clone(), |(id, _)| id.clone()),
                seq: position.seq.max(trimmed) + raw.len() as u64,
            },
            entries: Vec::new(),
            missed,
        };
        for (_, fields) in raw {
            // This manager's own batches are read back too: merging them
            // again changes nothing, unless a write whose answer was lost
            // (Redis died after writing) had been undone in memory.
            let manager = fields.get("m").cloned().unwrap_or_default();
            let keys: Vec<&str> = fields
                .get("k")
                .map(|k| k.split(' ').filter(|s| !s.is_empty()).collect())
                .unwrap_or_default();
            let mut pipe = redis::pipe();
            for key in &keys {
                pipe.cmd("HGETALL").arg(*key);
            }
            let rows: Vec<HashMap<String, Vec<u8>>> =
                pipe.query_async(&mut conn).await.map_err(&err)?;
            let mut changes = Vec::with_capacity(rows.len());
            for (key, row) in keys.iter().zip(rows) {
                if !row.is_empty() {
                    changes.push(self.decode(key, &row)?);
                }
            }
            let generations = fields
                .get("g")
                .map(|g| {
                    g.split(' ')
                        .filter_map(|kv| kv.split_once('='))
                        .filter_map(|(f, v)| Some((f.to_owned(), v.parse().ok()?)))
                        .collect()
                })
                .unwrap_or_default();
            read.entries.push(FeedEntry {
                manager,
                changes,
                generations,
            });
        }
        Ok(read)
    }

    /// Shares when this manager last heard each of `seen` (datacenter, Unix
    /// ms), and this manager's own announcement; returns every manager's
    /// announcement and the shared last-heard times by field.
    pub async fn exchange_seen(
        &self,
        seen: &[(String, u64)],
        announcement: &str,
    ) -> Result<(HashMap<String, u64>, HashMap<String, String>), StoreError> {
        let err = redis_err(&self.location);
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        for (dc, ms) in seen {
            // Keep the latest of what every manager heard.
            pipe.cmd("EVAL")
                .arg("local c = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') if tonumber(ARGV[2]) > c then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end return 0")
                .arg(1).arg(SEEN).arg(self.seen_field(dc)).arg(*ms)
                .ignore();
        }
        let sealed = self
            .sealer
            .seal(MANAGERS.as_bytes(), announcement.as_bytes());
        pipe.cmd("HSET")
            .arg(MANAGERS)
            .arg(&self.manager_id)
            .arg(sealed)
            .ignore();
        pipe.cmd("HGETALL").arg(SEEN);
        pipe.cmd("HGETALL").arg(MANAGERS);
        let (shared, managers): (HashMap<String, u64>, HashMap<String, Vec<u8>>) =
            pipe.query_async(&mut conn).await.map_err(&err)?;
        let managers = managers
            .into_iter()
            .filter_map(|(id, sealed)| {
                let text = self.sealer.open(MANAGERS.as_bytes(), &sealed).ok()?;
                Some((id, String::from_utf8(text).ok()?))
            })
            .collect();
        Ok((shared, managers))
    }

    /// Takes (or renews) the lease on `dc`'s agent stream for `holder`
    /// for `ttl`; answers the other holder when another manager has it.
    pub async fn take_stream(
        &self,
        dc: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<String>, StoreError> {
        let key = format!(
            "{STREAM_PREFIX}{}",
            self.sealer.hash(&format!("stream/{dc}"))
        );
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut conn = self.conn.clone();
        let current: String = redis::Script::new(TAKE_STREAM)
            .key(&key)
            .arg(holder)
            .arg(ttl_ms)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_err(&self.location))?;
        Ok((current != holder).then_some(current))
    }

    /// Gives up the lease on `dc`'s stream if `holder` has it.
    pub async fn release_stream(&self, dc: &str, holder: &str) {
        let key = format!(
            "{STREAM_PREFIX}{}",
            self.sealer.hash(&format!("stream/{dc}"))
        );
        let mut conn = self.conn.clone();
        let _: Result<i64, _> = redis::Script::new(RELEASE_STREAM)
            .key(&key)
            .arg(holder)
            .invoke_async(&mut conn)
            .await;
    }

    /// Nothing to let go of: every write is durable when answered.
    pub async fn close(&self) {}
}

/// The oldest Redis theia runs on: 7.0 brought the stream counters
/// (`entries-added`) that tell a manager it fell behind a trimmed feed.
const MIN_REDIS: (u64, u64) = (7, 0);

/// Refuses a Redis older than [`MIN_REDIS`], given its `INFO server` text.
fn check_version(info: &str, location: &str) -> Result<(), StoreError> {
    let version = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .map(str::trim)
        .unwrap_or("unknown");
    let mut parts = version.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if found < MIN_REDIS {
        return Err(StoreError::Unavailable(format!(
            "Redis at {location} is version {version}; theia needs {}.{} or newer",
            MIN_REDIS.0, MIN_REDIS.1
        )));
    }
    Ok(())
}

/// Where the feed ends now (`0-0`, 0 before the first write).
async fn feed_end(conn: &mut ConnectionManager) -> redis::RedisResult<FeedPosition> {
    let exists: bool = redis::cmd("EXISTS").arg(FEED).query_async(conn).await?;
    if !exists {
        return Ok(FeedPosition {
            id: "0-0".to_owned(),
            seq: 0,
        });
    }
    let info: HashMap<String, redis::Value> = redis::cmd("XINFO")
        .arg("STREAM")
        .arg(FEED)
        .query_async(conn)
        .await?;
    Ok(FeedPosition {
        id: info
            .get("last-generated-id")
            .and_then(value_text)
            .unwrap_or_else(|| "0-0".to_owned()),
        seq: info.get("entries-added").and_then(value_u64).unwrap_or(0),
    })
}

fn value_u64(v: &redis::Value) -> Option<u64> {
    match v {
        redis::Value::Int(n) => u64::try_from(*n).ok(),
        other => value_text(other)?.parse().ok(),
    }
}

fn value_text(v: &redis::Value) -> Option<String> {
    match v {
        redis::Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        redis::Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// The entries of an XREAD reply for one stream: (id, fields).
fn stream_entries(reply: redis::Value) -> Vec<(String, HashMap<String, String>)> {
    use redis::Value;
    let mut out = Vec::new();
    let streams = match reply {
        Value::Array(s) => s,
        Value::Map(m) => m
            .into_iter()
            .map(|(k, v)| Value::Array(vec![k, v]))
            .collect(),
        _ => return out,
    };
    for stream in streams {
        let Value::Array(mut parts) = stream else {
            continue;
        };
        if let Some(entries) = parts.pop() {
            out.extend(range_entries(entries));
        }
    }
    out
}

/// The entries of an XRANGE reply: (id, fields).
fn range_entries(reply: redis::Value) -> Vec<(String, HashMap<String, String>)> {
    use redis::Value;
    let Value::Array(entries) = reply else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let Value::Array(mut e) = entry else { continue };
        if e.len() != 2 {
            continue;
        }
        let fields = e.pop();
        let id = e.pop().as_ref().and_then(value_text).unwrap_or_default();
        let mut map = HashMap::new();
        if let Some(Value::Array(kv)) = fields {
            for pair in kv.chunks(2) {
                if let [k, v] = pair
                    && let (Some(k), Some(v)) = (value_text(k), value_text(v))
                {
                    map.insert(k, v);
                }
            }
        }
        out.push((id, map));
    }
    out
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
            match RedisStore::open(&url, None, &secret, "m-test").await {
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
    async fn a_batch_is_written_only_while_its_generations_hold() {
        let server = Server::start();
        let store = open(server.1).await;
        let f = store.gen_field("dc/dc-a");
        let g = store.gen_field("tenant/acme");
        let batch = |checks: Vec<(String, u64)>, bumps: Vec<String>| Batch {
            writes: round(&mut rand::rngs::StdRng::seed_from_u64(1), 1, 0),
            checks,
            bumps,
        };
        use rand::SeedableRng;
        let out = store
            .write(&[batch(vec![(f.clone(), 0)], vec![f.clone()])], &[])
            .await
            .unwrap();
        assert_eq!(out, vec![Outcome::Written(vec![(f.clone(), 1)])]);
        let out = store
            .write(
                &[
                    batch(vec![(f.clone(), 0)], vec![f.clone()]),
                    // Right on its own, but decided on top of the refused one.
                    batch(vec![(f.clone(), 1)], vec![f.clone()]),
                    batch(vec![(g.clone(), 0)], vec![g.clone()]),
                    batch(vec![], vec![f.clone()]),
                ],
                &[],
            )
            .await
            .unwrap();
        assert_eq!(
            out,
            vec![
                Outcome::Conflict,
                Outcome::Conflict,
                Outcome::Written(vec![(g.clone(), 1)]),
                Outcome::Written(vec![(f.clone(), 2)]),
            ]
        );
        let mut conn = store.conn.clone();
        let feed: u64 = redis::cmd("XLEN")
            .arg(FEED)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(
            feed, 3,
            "every written batch is announced, refused ones are not"
        );
        let origin = FeedPosition {
            id: "0-0".into(),
            seq: 0,
        };
        let read = store
            .read_feed(&origin, Duration::from_millis(10))
            .await
            .unwrap();
        assert_eq!(read.entries.len(), 3, "its own writes are read back too");
        assert!(read.entries.iter().all(|e| e.manager == "m-test"));
        assert_eq!(read.position.seq, 3, "{:?}", read.position);
        assert_ne!(read.position.id, origin.id);
    }

    fn profile_write(name: &str, ms: u64) -> Batch {
        let ts = Timestamp {
            ms,
            counter: 0,
            node: "m-test".into(),
        };
        let profile = Profile {
            name: name.to_owned(),
            resources: Resources::parse_list("r", "compute.vcpu=1").unwrap(),
            description: String::new(),
        };
        Batch {
            writes: vec![Change::Profile {
                key: name.to_owned(),
                register: Lww::new(ts, profile),
            }],
            ..Batch::default()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reader_knows_when_the_feed_was_trimmed_past_it() {
        let server = Server::start();
        let store = open(server.1).await;
        let reader = open(server.1).await;
        let start = reader.feed_start().clone();
        assert_eq!(start.seq, 0, "an empty feed");
        let block = Duration::from_millis(50);
        let quiet = reader.read_feed(&start, block).await.unwrap();
        assert!(quiet.entries.is_empty() && !quiet.missed);
        assert_eq!(quiet.position, start, "no news, no move");

        for i in 0..3 {
            store
                .write(&[profile_write(&format!("p{i}"), i + 1)], &[])
                .await
                .unwrap();
        }
        let read = reader.read_feed(&start, block).await.unwrap();
        assert_eq!(read.entries.len(), 3);
        assert!(!read.missed, "everything after the position is there");
        assert_eq!(read.position.seq, 3);
        let here = read.position;

        // Trimming what was already read loses nothing.
        let mut conn = store.conn.clone();
        let trim = |n: u64| {
            redis::cmd("XTRIM")
                .arg(FEED)
                .arg("MAXLEN")
                .arg(n)
                .to_owned()
        };
        let _: u64 = trim(0).query_async(&mut conn).await.unwrap();
        store.write(&[profile_write("p3", 4)], &[]).await.unwrap();
        let read = reader.read_feed(&here, block).await.unwrap();
        assert!(!read.missed, "only read entries were trimmed");
        assert_eq!(read.entries.len(), 1);
        assert_eq!(read.position.seq, 4);
        let here = read.position;

        // Entries it never read are trimmed: it must reload.
        for i in 4..9 {
            store
                .write(&[profile_write(&format!("p{i}"), i + 1)], &[])
                .await
                .unwrap();
        }
        let _: u64 = trim(2).query_async(&mut conn).await.unwrap();
        let read = reader.read_feed(&here, block).await.unwrap();
        assert!(read.missed, "three unread entries are gone");
        assert_eq!(read.entries.len(), 2, "the two that are left");
        assert_eq!(read.position.seq, 9, "counted from the feed itself");
        let again = reader.read_feed(&read.position, block).await.unwrap();
        assert!(!again.missed && again.entries.is_empty());
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
                let batch = Batch {
                    writes: rest[..take].to_vec(),
                    ..Batch::default()
                };
                store.write(&[batch], &[]).await.unwrap();
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
    fn redis_older_than_7_is_refused_by_name() {
        let info = |v: &str| format!("# Server\r\nredis_version:{v}\r\nredis_mode:standalone\r\n");
        assert!(check_version(&info("7.0.15"), "db:6379").is_ok());
        assert!(check_version(&info("7.2.4"), "db:6379").is_ok());
        assert!(check_version(&info("10.0.0"), "db:6379").is_ok());
        let err = check_version(&info("6.2.14"), "db:6379").unwrap_err();
        assert_eq!(
            err.to_string(),
            "Redis at db:6379 is version 6.2.14; theia needs 7.0 or newer"
        );
        assert!(
            check_version("# Server\r\n", "db").is_err(),
            "no version at all"
        );
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
