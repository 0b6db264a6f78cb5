//! Running the app on a listener: connection limits, slow-client timeouts, and graceful
//! shutdown (stop accepting, answer every accepted request, return).

use crate::config::{ModelSpec, ServerConfig};
use crate::state::{load_models, AppState};
use crate::{router, DRAIN_LIMIT};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Serves `state` on `listener` until `shutdown` resolves, then marks the server as
/// draining, stops accepting, and returns once every accepted connection has been answered
/// (or after [`DRAIN_LIMIT`]).
pub async fn serve(listener: TcpListener, state: Arc<AppState>, shutdown: impl Future<Output = ()>) {
    let app = router(state.clone());
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(state.config.header_timeout);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(state.config.max_connections));
    tokio::pin!(shutdown);
    loop {
        // Beyond max_connections, clients wait in the kernel's backlog: memory stays bounded.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            _ = &mut shutdown => break,
        };
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                // Out of file descriptors and the like: back off rather than spin.
                Err(_) => { tokio::time::sleep(std::time::Duration::from_millis(20)).await; continue }
            },
            _ = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
            drop(slot);
        });
    }
    state.drain();
    drop(listener);
    // Idle keep-alive connections close now; busy ones after their answer.
    let _ = tokio::time::timeout(DRAIN_LIMIT, graceful.shutdown()).await;
}

/// SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

/// `e5 serve`: binds first (so `/health` answers and `/ready` says 503 while loading), loads
/// the models, serves until SIGINT/SIGTERM, and drains. Logs to stderr.
pub fn run(specs: Vec<ModelSpec>, config: ServerConfig, host: &str, port: u16) -> Result<(), String> {
    config.validate()?;
    if specs.is_empty() {
        return Err("give at least one --model".into());
    }
    let start = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("e5-http")
        .build()
        .map_err(|e| format!("starting the runtime: {e}"))?;
    runtime.block_on(async move {
        let listener = TcpListener::bind((host, port)).await.map_err(|e| format!("binding {host}:{port}: {e}"))?;
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        let state = AppState::new(config);
        let server = tokio::spawn(serve(listener, state.clone(), shutdown_signal()));
        eprintln!("e5 serve: listening on http://{address}");
        let loading = state.clone();
        let models = tokio::task::spawn_blocking(move || load_models(&specs, &loading.config))
            .await
            .map_err(|e| format!("loading: {e}"))??;
        let names: Vec<String> = models.iter().map(|(n, _)| n.clone()).collect();
        state.set_models(models)?;
        eprintln!("e5 serve: ready in {:.3} s, serving {names:?}", start.elapsed().as_secs_f64());
        server.await.map_err(|e| format!("server task: {e}"))?;
        eprintln!("e5 serve: drained, exiting");
        Ok(())
    })
}
