//! One deadline for a whole request body: it must have arrived within
//! `body_read_timeout` of the request reaching the router.
//!
//! tower-http's `RequestBodyTimeoutLayer` restarts its timer at every frame, so a client
//! sending a byte every few seconds held its connection (and a task and a buffer) for as
//! long as it liked; enough of them took every connection. tower-http has no deadline for
//! the whole body, hence this layer.
//!
//! A body past its deadline ends with [`BodyDeadlineElapsed`]; [`is_elapsed`] finds it in
//! the error chains that axum's body readers wrap it in, so handlers answer 408.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::Request;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower::{BoxError, Layer, Service};

/// Wraps every request body in a [`DeadlineBody`] of `timeout`.
#[derive(Debug, Clone, Copy)]
pub struct BodyDeadlineLayer {
    timeout: Duration,
}

impl BodyDeadlineLayer {
    pub fn new(timeout: Duration) -> Self {
        Self { timeout }
    }
}

impl<S> Layer<S> for BodyDeadlineLayer {
    type Service = BodyDeadline<S>;

    fn layer(&self, inner: S) -> BodyDeadline<S> {
        BodyDeadline { inner, timeout: self.timeout }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct BodyDeadline<S> {
    inner: S,
    timeout: Duration,
}

impl<S, B> Service<Request<B>> for BodyDeadline<S>
where
    S: Service<Request<DeadlineBody<B>>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let deadline = Instant::now() + self.timeout;
        self.inner.call(req.map(|body| DeadlineBody::new(body, deadline)))
    }
}

pin_project! {
    /// A body that fails with [`BodyDeadlineElapsed`] once `deadline` has passed before
    /// its end. The timer is only set when the body is first read and not yet at its end,
    /// so a request without a body costs none.
    pub struct DeadlineBody<B> {
        #[pin]
        inner: B,
        deadline: Instant,
        sleep: Option<Pin<Box<Sleep>>>,
    }
}

impl<B> DeadlineBody<B> {
    pub fn new(inner: B, deadline: Instant) -> Self {
        Self { inner, deadline, sleep: None }
    }
}

impl<B> Body for DeadlineBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        // The data already there is taken first: a body that arrived in time is never
        // refused because its reader was slow to read it.
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = *this.deadline;
        let sleep = this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        ready!(sleep.as_mut().poll(cx));
        Poll::Ready(Some(Err(Box::new(BodyDeadlineElapsed))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The request body did not arrive by its deadline.
#[derive(Debug, Clone, Copy)]
pub struct BodyDeadlineElapsed;

impl std::fmt::Display for BodyDeadlineElapsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body did not arrive in time")
    }
}

impl std::error::Error for BodyDeadlineElapsed {}

/// Whether `e`, or an error it wraps, is [`BodyDeadlineElapsed`].
pub fn is_elapsed(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(s) = source {
        if s.is::<BodyDeadlineElapsed>() {
            return true;
        }
        source = s.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use axum::body::Body as AxumBody;
    use http_body_util::BodyExt;

    use super::*;

    /// A body of `n` one-byte frames, `gap` apart.
    fn trickling(n: usize, gap: Duration) -> AxumBody {
        let frames = futures_util::stream::unfold(0, move |i| async move {
            if i == n {
                return None;
            }
            tokio::time::sleep(gap).await;
            Some((Ok::<_, std::io::Error>(Bytes::from_static(b"a")), i + 1))
        });
        AxumBody::from_stream(frames)
    }

    fn within(body: AxumBody, timeout: Duration) -> DeadlineBody<AxumBody> {
        DeadlineBody::new(body, Instant::now() + timeout)
    }

    const GAP: Duration = Duration::from_millis(50);
    const DEADLINE: Duration = Duration::from_millis(300);

    #[tokio::test]
    async fn the_whole_body_must_arrive_by_the_deadline_however_it_is_split() {
        // Each frame well within the deadline, the whole of them not.
        let slow = within(trickling(20, GAP), DEADLINE);
        let started = std::time::Instant::now();
        let e = slow.collect().await.expect_err("refused");
        assert!(is_elapsed(e.as_ref()), "{e}");
        assert!(started.elapsed() < DEADLINE + 4 * GAP, "refused at the deadline, not later");
        let through_axum = AxumBody::new(within(trickling(20, GAP), DEADLINE));
        let e = axum::body::to_bytes(through_axum, usize::MAX).await.expect_err("refused");
        assert!(is_elapsed(&e), "found through axum's error: {e}");

        let in_time = within(trickling(3, GAP), DEADLINE);
        assert_eq!(in_time.collect().await.unwrap().to_bytes(), "aaa");
    }

    #[tokio::test]
    async fn data_that_arrived_in_time_is_read_even_after_the_deadline() {
        let body = within(AxumBody::from("all here"), DEADLINE);
        tokio::time::sleep(2 * DEADLINE).await;
        assert_eq!(body.collect().await.unwrap().to_bytes(), "all here");
    }

    #[test]
    fn other_errors_are_not_the_deadline() {
        let e = axum::Error::new(std::io::Error::other("reset"));
        assert!(!is_elapsed(&e));
    }
}
