//! Where preseed templates render. The simulator renders inline (one thread, virtual time,
//! deterministic); regiond hands in a `RenderPool`: a few OS threads of its own, a bounded
//! queue and a deadline, so a hostile template costs a render thread for at most its fuel and
//! never an HTTP worker, and the caller hears back within the deadline either way.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

use super::template::{
    render_template, sample_context, trial_render, PreseedContext, TemplateError, TemplateLimit,
};

/// Render threads in regiond's pool. Two: a render is bounded by `template::RENDER_FUEL`, so
/// two threads keep a flood of renders to two cores' worth at most, whatever the HTTP load.
pub const RENDER_THREADS: usize = 2;

/// Renders waiting for a thread; past it a render is refused at once (503) rather than queued
/// behind hostile ones without bound.
pub const RENDER_QUEUE: usize = 16;

/// How long a caller waits for a render (1 s): an operator hears about a runaway template in
/// about a second (422 naming the limit); the render itself still ends by its fuel.
pub const RENDER_DEADLINE: Duration = Duration::from_secs(1);

/// Why a render did not produce output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RenderFailure {
    /// The template does not parse, fails to render, or hit a limit (`TemplateError::limit`).
    Template(TemplateError),
    /// Every render thread is busy and the queue is full.
    Busy,
}

/// How the region service renders templates.
#[derive(Clone, Default)]
pub enum TemplateRunner {
    /// On the calling task: the simulator's way (no OS threads on the simulated path).
    #[default]
    Inline,
    /// On a bounded pool of threads, with a deadline: regiond's way.
    Pool(RenderPool),
}

impl TemplateRunner {
    /// Renders `source` for `ctx` under the render limits.
    pub async fn render(
        &self,
        name: &str,
        source: &str,
        ctx: &PreseedContext,
    ) -> Result<String, RenderFailure> {
        let (name, source, ctx) = (name.to_owned(), source.to_owned(), ctx.clone());
        self.run(&name.clone(), move || render_template(&name, &source, &ctx))
            .await
    }

    /// Parses `source` and trial-renders it with sample data under the render limits.
    pub async fn check(&self, name: &str, source: &str) -> Result<(), RenderFailure> {
        let (name, source) = (name.to_owned(), source.to_owned());
        self.run(&name.clone(), move || {
            trial_render(&name, &source, &sample_context())
        })
        .await
    }

    async fn run<T: Send + 'static>(
        &self,
        name: &str,
        job: impl FnOnce() -> Result<T, TemplateError> + Send + 'static,
    ) -> Result<T, RenderFailure> {
        match self {
            TemplateRunner::Inline => job().map_err(RenderFailure::Template),
            TemplateRunner::Pool(pool) => pool.run(name, job).await,
        }
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of render threads fed by a bounded queue.
#[derive(Clone)]
pub struct RenderPool {
    queue: SyncSender<Job>,
    deadline: Duration,
}

impl RenderPool {
    /// Starts `threads` render threads behind a queue of `queue` jobs.
    pub fn start(threads: usize, queue: usize, deadline: Duration) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("render-{n}"))
                .spawn(move || render_thread(&rx))?;
        }
        Ok(RenderPool {
            queue: tx,
            deadline,
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        name: &str,
        job: impl FnOnce() -> Result<T, TemplateError> + Send + 'static,
    ) -> Result<T, RenderFailure> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(job());
        });
        match self.queue.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(RenderFailure::Busy),
            Err(TrySendError::Disconnected(_)) => return Err(RenderFailure::Busy),
        }
        match tokio::time::timeout(self.deadline, rx).await {
            Ok(Ok(result)) => result.map_err(RenderFailure::Template),
            // The thread panicked mid-render: the template broke the renderer.
            Ok(Err(_)) => Err(RenderFailure::Template(TemplateError {
                template: name.to_owned(),
                line: None,
                message: "the render failed".into(),
                limit: None,
            })),
            Err(_) => Err(RenderFailure::Template(TemplateError {
                template: name.to_owned(),
                line: None,
                message: format!(
                    "{} of {} ms",
                    TemplateLimit::Deadline.describe(),
                    self.deadline.as_millis()
                ),
                limit: Some(TemplateLimit::Deadline),
            })),
        }
    }
}

fn render_thread(rx: &Mutex<Receiver<Job>>) {
    loop {
        // Take one job and release the lock before running it.
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        let Ok(job) = job else { return };
        // A panicking render must not take the thread with it.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str =
        "{% for a in range(100000) %}{% for b in range(3000) %}{% endfor %}{% endfor %}ok";

    #[tokio::test]
    async fn a_pool_answers_by_its_deadline_and_refuses_past_its_queue() {
        let pool = RenderPool::start(1, 1, Duration::from_millis(50)).unwrap();
        let runner = TemplateRunner::Pool(pool);
        let ctx = sample_context();
        let started = std::time::Instant::now();
        let first = runner.render("t", HOSTILE, &ctx).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        match first {
            RenderFailure::Template(e) => assert!(e.limit.is_some(), "{e}"),
            other => panic!("{other:?}"),
        }
        // The thread is still burning the first render's fuel: one queued, the next refused.
        let (_, second, third) = tokio::join!(
            runner.render("t", HOSTILE, &ctx),
            async {
                tokio::task::yield_now().await;
                runner.render("t", HOSTILE, &ctx).await
            },
            async {
                tokio::task::yield_now().await;
                tokio::task::yield_now().await;
                runner.render("t", "ok", &ctx).await
            },
        );
        assert!(
            [&second, &third].contains(&&Err(RenderFailure::Busy)),
            "{second:?} {third:?}"
        );
    }

    #[tokio::test]
    async fn inline_and_pool_render_the_same() {
        let pool = TemplateRunner::Pool(RenderPool::start(1, 4, Duration::from_secs(30)).unwrap());
        let ctx = sample_context();
        let source = "{{ hostname }} {{ data.license_key }}";
        let inline = TemplateRunner::Inline.render("t", source, &ctx).await;
        assert_eq!(inline, pool.render("t", source, &ctx).await);
        assert_eq!(inline.unwrap(), "sample-node XXXXX-XXXXX");
    }
}
