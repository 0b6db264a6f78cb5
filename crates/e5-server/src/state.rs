//! What every handler shares: the limits, the loaded models with their batchers, and
//! whether the server is ready (models loaded, not draining).

use crate::batcher::{Batcher, Encoder};
use crate::config::{ModelSpec, ServerConfig};
use crate::error::ApiError;
use axum::http::StatusCode;
use e5::{Model, ModelInfo, Options};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// A model's alias and the encoder behind it.
pub type NamedEncoder = (String, Arc<dyn Encoder>);

pub struct ServedModel {
    /// The alias requests name.
    pub name: String,
    pub encoder: Arc<dyn Encoder>,
    pub batcher: Batcher,
    pub info: ModelInfo,
    /// `dimensions` whose warnings have been logged (once each).
    warned: Mutex<BTreeSet<usize>>,
}

impl ServedModel {
    pub fn model(&self) -> &Model {
        self.encoder.model()
    }

    /// Counts a request served at `dimensions` despite `warnings`; logs them the first time.
    pub fn warn_dimensions(&self, dimensions: usize, warnings: &[String]) {
        crate::metrics::dimension_warning(&self.name);
        if self.warned.lock().unwrap_or_else(|e| e.into_inner()).insert(dimensions) {
            for w in warnings {
                eprintln!("e5 serve: warning: model {}, dimensions={dimensions}: {w}", self.name);
            }
        }
    }
}

pub struct AppState {
    pub config: ServerConfig,
    models: OnceLock<Vec<ServedModel>>,
    draining: AtomicBool,
}

impl AppState {
    /// A server with no models yet: `/health` answers, `/ready` and the model routes are 503
    /// until [`AppState::set_models`].
    pub fn new(config: ServerConfig) -> Arc<AppState> {
        Arc::new(AppState { config, models: OnceLock::new(), draining: AtomicBool::new(false) })
    }

    /// Serves `models` (alias, encoder); the first is the default for requests naming none.
    pub fn set_models(&self, models: Vec<NamedEncoder>) -> Result<(), String> {
        if models.is_empty() {
            return Err("no model to serve".into());
        }
        for (i, (name, _)) in models.iter().enumerate() {
            if models[..i].iter().any(|(n, _)| n == name) {
                return Err(format!("two models are named {name:?}; give one another NAME= alias"));
            }
        }
        let c = &self.config;
        let served = models
            .into_iter()
            .map(|(name, encoder)| ServedModel {
                info: encoder.model().info(),
                batcher: Batcher::start(encoder.clone(), name.clone(), c.max_batch_tokens, c.max_queue),
                name,
                encoder,
                warned: Mutex::default(),
            })
            .collect();
        self.models.set(served).map_err(|_| "models are already set".to_string())
    }

    /// The loaded models, or 503 while loading.
    pub fn models(&self) -> Result<&[ServedModel], ApiError> {
        self.models.get().map(|m| m.as_slice()).ok_or_else(|| ApiError::unavailable("the models are still loading"))
    }

    /// The model a request names (`None`: the first one), or OpenAI's 404.
    pub fn model(&self, name: Option<&str>) -> Result<&ServedModel, ApiError> {
        let models = self.models()?;
        let Some(name) = name else { return Ok(&models[0]) };
        models.iter().find(|m| m.name == name).ok_or_else(|| {
            let known: Vec<&str> = models.iter().map(|m| m.name.as_str()).collect();
            ApiError {
                param: Some("model"),
                ..ApiError::new(
                    StatusCode::NOT_FOUND,
                    "model_not_found",
                    format!("The model `{name}` does not exist; this server serves {known:?}"),
                )
            }
        })
    }

    /// Stops reporting ready (load balancers take the server out) before it stops accepting.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn ready(&self) -> Result<(), &'static str> {
        if self.draining.load(Ordering::SeqCst) {
            Err("draining")
        } else if self.models.get().is_none() {
            Err("loading")
        } else {
            Ok(())
        }
    }
}

/// Loads every `--model`, with the server's thread count and batch budget.
pub fn load_models(specs: &[ModelSpec], config: &ServerConfig) -> Result<Vec<NamedEncoder>, String> {
    specs
        .iter()
        .map(|s| {
            let options = Options {
                threads: config.threads,
                precision: s.precision,
                max_batch_tokens: config.max_batch_tokens,
                residency: config.residency,
                ..Options::default()
            };
            let model = Model::load(&s.dir, options).map_err(|e| format!("loading model {:?}: {e}", s.name))?;
            Ok((s.name.clone(), Arc::new(model) as Arc<dyn Encoder>))
        })
        .collect()
}
