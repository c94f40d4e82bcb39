//! Revocation reaches answers already streaming.
//!
//! A token is checked when a request arrives; an event stream answering it may then stay
//! open for hours. Without this, a grant revoked (by its client, by reuse detection, by an
//! operator, on any replica) would keep its open streams until they ended by themselves.
//!
//! Each event-stream answer registers its grant and access token here and gets a signal;
//! one task per process asks the store every [`POLL`] what was revoked since its last look
//! ([`Store::revocations_since`], on the database's clock, which replicas share) and
//! signals the matching streams, whose bodies then end. Other answers register nothing:
//! the registry's lock is taken once when an event stream opens and once when it closes,
//! never on the way of a JSON answer.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use futures_util::task::AtomicWaker;
use mcp_oauth_core::token::TokenHash;
use mcp_oauth_store::{RevokedSince, Store};

/// How often the store is asked: a revocation ends its streams within about this (plus a
/// database round trip), on every replica.
pub const POLL: Duration = Duration::from_secs(1);

/// How far each look reaches back before the previous one's clock: a revoking statement
/// stamps the database's clock before it commits, and one that commits while a look runs
/// is stamped earlier than that look's clock; it is found by the next look(s). Seen twice,
/// it is signalled once (see `Registry::revoked`).
const OVERLAP_SECS: i64 = 5;

/// A grant or an access token, revoked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Revoked {
    Grant(String),
    AccessToken(TokenHash),
}

/// Whether a stream should end, and who to wake when it should.
#[derive(Default)]
struct Signal {
    ended: AtomicBool,
    waker: AtomicWaker,
}

impl Signal {
    fn end(&self) {
        self.ended.store(true, Ordering::Release);
        self.waker.wake();
    }
}

struct Stream {
    grant: String,
    token: TokenHash,
    signal: Arc<Signal>,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    streams: HashMap<u64, Stream>,
    /// What was seen revoked, and when first: a stream that registers after the look that
    /// found its revocation (its answer's head came later than that) is ended at once.
    /// Its token was valid when checked, and a grant or token never comes back once
    /// revoked, so membership is proof; entries are forgotten after `remember`.
    revoked: HashMap<Revoked, Instant>,
}

pub struct Revocations {
    registry: Mutex<Registry>,
    /// How long a revocation is remembered for streams registering late: longer than a
    /// request can take from its token check to its answer's head.
    remember: Duration,
    /// Where the next look for revocations starts (the database's clock). The first look
    /// only learns that clock: no stream is open before it, and a token revoked before a
    /// stream opened would have been refused.
    since: AtomicI64,
}

impl Revocations {
    /// `remember`: see the field.
    pub fn new(remember: Duration) -> Arc<Self> {
        Arc::new(Self { registry: Mutex::default(), remember, since: AtomicI64::new(i64::MAX) })
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `body`, ending (cleanly: the client reconnects and is refused) as soon as `grant`
    /// or the access token `token` is seen revoked.
    pub fn end_on_revocation(self: &Arc<Self>, grant: &str, token: TokenHash, body: Body) -> Body {
        let signal = Arc::new(Signal::default());
        let id = {
            let mut registry = self.registry();
            let revoked = &registry.revoked;
            if revoked.contains_key(&Revoked::AccessToken(token)) || revoked.contains_key(&Revoked::Grant(grant.into()))
            {
                signal.end();
            }
            registry.next_id += 1;
            let id = registry.next_id;
            registry.streams.insert(id, Stream { grant: grant.to_owned(), token, signal: Arc::clone(&signal) });
            id
        };
        Body::new(EndOnRevocation { body, signal, _registered: Registered { id, owner: Arc::downgrade(self) } })
    }

    /// How many streams are registered (for tests and the log).
    pub fn open_streams(&self) -> usize {
        self.registry().streams.len()
    }

    /// Ends the streams of what `found` names that were not ended for it before; how
    /// many.
    fn end_streams(&self, found: &RevokedSince) -> usize {
        if found.grants.is_empty() && found.access_tokens.is_empty() {
            return 0;
        }
        let now = Instant::now();
        let mut registry = self.registry();
        let remember = self.remember;
        registry.revoked.retain(|_, seen| now.duration_since(*seen) < remember);
        // What this look is the first to find: the rest was signalled by an earlier one.
        let mut grants = HashSet::new();
        for grant in &found.grants {
            if registry.revoked.insert(Revoked::Grant(grant.clone()), now).is_none() {
                grants.insert(grant.as_str());
            }
        }
        let mut tokens = HashSet::new();
        for token in &found.access_tokens {
            if registry.revoked.insert(Revoked::AccessToken(*token), now).is_none() {
                tokens.insert(*token);
            }
        }
        if grants.is_empty() && tokens.is_empty() {
            return 0;
        }
        let mut ended = 0;
        for stream in registry.streams.values() {
            if grants.contains(stream.grant.as_str()) || tokens.contains(&stream.token) {
                stream.signal.end();
                ended += 1;
            }
        }
        ended
    }

    /// Looks for revocations every `every`, ending the streams they concern, until this
    /// is dropped. Failed looks are retried at the next tick from where the last good one
    /// left off, so an outage of the database loses nothing.
    pub fn watch(self: &Arc<Self>, store: Arc<dyn Store>, every: Duration) {
        super::every(self, every, move |this| {
            let store = Arc::clone(&store);
            async move { this.look(store.as_ref()).await }
        });
    }

    /// One look for revocations since the last good one.
    async fn look(&self, store: &dyn Store) {
        let since = self.since.load(Ordering::Relaxed);
        match store.revocations_since(since).await {
            Ok(found) => {
                let ended = self.end_streams(&found);
                if ended > 0 {
                    tracing::info!(ended, "event streams of revoked grants or access tokens ended");
                }
                self.since.store(found.now - OVERLAP_SECS, Ordering::Relaxed);
            }
            Err(e) => tracing::debug!(error = %e, "looking for revocations failed; will retry"),
        }
    }
}

/// A stream's place in the registry, given back when its body is dropped.
struct Registered {
    id: u64,
    owner: Weak<Revocations>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Some(owner) = self.owner.upgrade() {
            owner.registry().streams.remove(&self.id);
        }
    }
}

pin_project_lite::pin_project! {
    /// An answer's body that ends when its signal says so.
    struct EndOnRevocation {
        #[pin]
        body: Body,
        signal: Arc<Signal>,
        _registered: Registered,
    }
}

impl http_body::Body for EndOnRevocation {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let this = self.project();
        // The waker first: an end signalled between the check and the registration
        // would otherwise wake nobody, and a stream of a silent upstream would stay open.
        this.signal.waker.register(cx.waker());
        if this.signal.ended.load(Ordering::Acquire) {
            return Poll::Ready(None);
        }
        this.body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.signal.ended.load(Ordering::Acquire) || self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    fn endless() -> Body {
        Body::from_stream(futures_util::stream::pending::<Result<Bytes, std::io::Error>>())
    }

    fn found(grants: &[&str], tokens: &[TokenHash]) -> RevokedSince {
        RevokedSince {
            now: 0,
            grants: grants.iter().map(|g| (*g).to_owned()).collect(),
            access_tokens: tokens.to_vec(),
        }
    }

    /// Whether `body` has ended (rather than waiting for data).
    async fn ended(body: &mut Body) -> bool {
        let next = tokio::time::timeout(Duration::from_millis(50), body.frame()).await;
        matches!(next, Ok(None))
    }

    #[tokio::test]
    async fn streams_end_when_their_grant_or_token_is_found_revoked_and_only_then() {
        let revocations = Revocations::new(Duration::from_secs(60));
        let (t1, t2, t3) = (TokenHash::of("t1"), TokenHash::of("t2"), TokenHash::of("t3"));
        let mut of_grant = revocations.end_on_revocation("g1", t1, endless());
        let mut of_token = revocations.end_on_revocation("g2", t2, endless());
        let mut other = revocations.end_on_revocation("g3", t3, endless());
        assert!(!ended(&mut of_grant).await && !ended(&mut of_token).await);

        // A waiting body is woken by the end.
        let waiting = tokio::spawn(async move { of_grant.frame().await.is_none() });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(revocations.end_streams(&found(&["g1"], &[t2])), 2);
        assert!(waiting.await.unwrap());
        assert!(ended(&mut of_token).await);
        assert!(!ended(&mut other).await, "another grant's stream goes on");
        // Found again by an overlapping look: nothing more to end.
        assert_eq!(revocations.end_streams(&found(&["g1"], &[t2])), 0);

        // A stream whose answer came after its revocation was found ends at once.
        let mut late = revocations.end_on_revocation("g1", TokenHash::of("t4"), endless());
        assert!(ended(&mut late).await);
        drop((of_token, late));
        assert_eq!(revocations.open_streams(), 1, "dropped bodies leave the registry");
        drop(other);
        assert_eq!(revocations.open_streams(), 0);
    }

    #[tokio::test]
    async fn a_stream_that_ends_by_itself_passes_its_data_through() {
        let revocations = Revocations::new(Duration::from_secs(60));
        let body = revocations.end_on_revocation("g", TokenHash::of("t"), Body::from("data: 1\n\n"));
        assert_eq!(body.collect().await.unwrap().to_bytes(), Bytes::from("data: 1\n\n"));
        assert_eq!(revocations.open_streams(), 0);
    }
}
