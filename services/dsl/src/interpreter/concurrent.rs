//! How the branches of an `all` run together (§3.10) in a single-threaded interpreter.
//!
//! Instructions run as futures over the one [`Runner`], shared through a `RefCell` that every
//! step borrows only between two host calls. Outside an `all`, a host call is the blocking
//! method of [`Outside`] and no future ever suspends: the run is a plain call stack. Inside
//! one, the slow host calls ([`HostCall`]: fetch, wait, call) are started through
//! [`Outside::start`] and the branch suspends on its ticket; the outermost `all` polls its
//! branches in list order and, when every unfinished one is suspended, blocks in
//! [`Outside::next_done`] until the host has answered one, then polls again. So a branch runs
//! until it waits on the host, the waits overlap, and no thread is needed.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use serde_json::Value;

use super::outside::{FetchRequest, FetchResponse, HostCall, HostReply, Ticket, WaitFor};
use super::runner::{Flow, Runner};
use crate::error::DslError;

/// The run shared by every branch in progress.
pub(crate) type Shared<'r, 'o> = &'r RefCell<Runner<'o>>;

/// A branch of an `all` (or any instruction list) in progress.
pub(crate) type Branch<'a> = Pin<Box<dyn Future<Output = Result<Flow, DslError>> + 'a>>;

fn internal(message: &str) -> DslError {
    DslError::new("PrismeError", message)
}

/// Runs a future that only suspends inside an `all`, which drives its own branches to the end:
/// the whole run completes in one poll.
pub(crate) fn complete<T>(f: impl Future<Output = Result<T, DslError>>) -> Result<T, DslError> {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => Err(internal("the run suspended outside of an all")),
    }
}

/// Makes `call`: started and awaited inside an `all`, with the blocking method otherwise.
async fn host(r: Shared<'_, '_>, call: HostCall) -> HostReply {
    let started = {
        let mut g = r.borrow_mut();
        if g.concurrent == 0 {
            Err(call)
        } else {
            g.out.start(call)
        }
    };
    match started {
        Ok(ticket) => Done { r, ticket }.await,
        Err(call) => blocking(&mut r.borrow_mut(), call),
    }
}

fn blocking(g: &mut Runner<'_>, call: HostCall) -> HostReply {
    match call {
        HostCall::Fetch(req) => HostReply::Fetch(g.out.fetch(req)),
        HostCall::Wait { on, timeout_ms } => HostReply::Wait(g.out.wait(&on, timeout_ms)),
        HostCall::Call { slug, arguments } => HostReply::Call(g.out.call(&slug, &arguments)),
    }
}

/// The reply to a started call, once the outermost `all` has received it.
struct Done<'r, 'o> {
    r: Shared<'r, 'o>,
    ticket: Ticket,
}

impl Future for Done<'_, '_> {
    type Output = HostReply;
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<HostReply> {
        match self.r.borrow_mut().replies.remove(&self.ticket) {
            Some(reply) => Poll::Ready(reply),
            None => Poll::Pending,
        }
    }
}

/// `fetch` through the host.
pub(crate) async fn fetch(r: Shared<'_, '_>, req: FetchRequest) -> Result<FetchResponse, DslError> {
    match host(r, HostCall::Fetch(req)).await {
        HostReply::Fetch(reply) => reply,
        _ => Err(internal("the host answered a fetch with another reply")),
    }
}

/// `wait` through the host.
pub(crate) async fn wait(
    r: Shared<'_, '_>,
    on: Vec<WaitFor>,
    timeout_ms: u32,
) -> Result<Option<Value>, DslError> {
    match host(r, HostCall::Wait { on, timeout_ms }).await {
        HostReply::Wait(reply) => reply,
        _ => Err(internal("the host answered a wait with another reply")),
    }
}

/// An automation call through the host.
pub(crate) async fn call(
    r: Shared<'_, '_>,
    slug: &str,
    arguments: Value,
) -> Result<Value, DslError> {
    let call = HostCall::Call {
        slug: slug.to_owned(),
        arguments,
    };
    match host(r, call).await {
        HostReply::Call(reply) => reply,
        _ => Err(internal("the host answered a call with another reply")),
    }
}

/// Runs `branches` together until each has settled; their results in the order they settled
/// (the spec's "time order").
pub(crate) async fn join(
    r: Shared<'_, '_>,
    branches: Vec<Branch<'_>>,
) -> Vec<Result<Flow, DslError>> {
    let outermost = {
        let mut g = r.borrow_mut();
        g.concurrent += 1;
        g.concurrent == 1
    };
    let mut running: Vec<Option<Branch<'_>>> = branches.into_iter().map(Some).collect();
    let mut settled = Vec::with_capacity(running.len());
    loop {
        let mut cx = Context::from_waker(Waker::noop());
        for slot in &mut running {
            if let Some(branch) = slot
                && let Poll::Ready(result) = branch.as_mut().poll(&mut cx)
            {
                settled.push(result);
                *slot = None;
            }
        }
        if settled.len() == running.len() {
            break;
        }
        if !outermost {
            // The enclosing `all` collects the host's replies, then polls this one again.
            YieldOnce(false).await;
            continue;
        }
        let replies = r.borrow_mut().out.next_done();
        if replies.is_empty() {
            // Branches wait on calls the host no longer knows: none can end. Dropping them
            // drops their nested `all`s too, so the run leaves every `all` here at once.
            let lost = running.iter().filter(|s| s.is_some()).count();
            settled.extend((0..lost).map(|_| Err(internal("a host call in flight was lost"))));
            running.clear();
            let mut g = r.borrow_mut();
            g.concurrent = 1;
            g.replies.clear();
            break;
        }
        r.borrow_mut().replies.extend(replies);
    }
    r.borrow_mut().concurrent -= 1;
    settled
}

/// Suspends once.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            Poll::Pending
        }
    }
}
