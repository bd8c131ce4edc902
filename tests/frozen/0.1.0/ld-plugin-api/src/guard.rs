//! Running plugin futures safely from the host's executor: every poll enters the
//! plugin's own tokio runtime and catches panics, so a plugin bug becomes a
//! [`PluginError`] of kind `Panicked` instead of unwinding across `extern "C"`
//! (which aborts the whole process).

use std::{
    any::Any,
    future::Future,
    panic::{catch_unwind, AssertUnwindSafe},
    pin::Pin,
    sync::OnceLock,
    task::{Context, Poll},
};

use abi_stable::std_types::RResult;
use async_ffi::BorrowingFfiFuture;

use crate::PluginError;

/// The library's own tokio runtime. Each `.so` links its own copy of tokio, whose
/// thread-local context the host cannot see, so the plugin's I/O and timers are driven
/// by these threads. Created on first use and never dropped (libraries are never
/// unloaded).
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ld-plugin-io")
            .enable_all()
            .build()
            .expect("cannot start the plugin's tokio runtime")
    })
}

/// Text of a panic payload.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

/// Runs `f` with the plugin runtime entered and turns a panic into an error.
pub fn call<T>(f: impl FnOnce() -> Result<T, PluginError>) -> RResult<T, PluginError> {
    let _enter = runtime().enter();
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result.into(),
        Err(payload) => RResult::RErr(PluginError::panicked(panic_message(&*payload))),
    }
}

pin_project_lite::pin_project! {
    /// A plugin future made safe to poll from the host.
    struct Guarded<F> {
        #[pin]
        inner: Option<F>,
    }
}

impl<T, F> Future for Guarded<F>
where
    F: Future<Output = Result<T, PluginError>>,
{
    type Output = RResult<T, PluginError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            return Poll::Ready(RResult::RErr(PluginError::panicked(
                "future polled after it panicked",
            )));
        };
        let _enter = runtime().enter();
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(result)) => Poll::Ready(result.into()),
            Err(payload) => {
                // A panicked future must not be polled again; drop it now.
                this.inner.set(None);
                Poll::Ready(RResult::RErr(PluginError::panicked(panic_message(
                    &*payload,
                ))))
            }
        }
    }
}

/// Wraps the future that `make` builds (building it may panic too) for the boundary.
pub fn guard<'a, T, F>(make: impl FnOnce() -> F) -> BorrowingFfiFuture<'a, RResult<T, PluginError>>
where
    T: Send + 'a,
    F: Future<Output = Result<T, PluginError>> + Send + 'a,
{
    let built = {
        let _enter = runtime().enter();
        catch_unwind(AssertUnwindSafe(make))
    };
    match built {
        Ok(fut) => BorrowingFfiFuture::new(Guarded { inner: Some(fut) }),
        Err(payload) => {
            let err = PluginError::panicked(panic_message(&*payload));
            BorrowingFfiFuture::new(async move { RResult::RErr(err) })
        }
    }
}
