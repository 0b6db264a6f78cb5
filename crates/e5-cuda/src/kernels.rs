//! NVRTC compilation of `kernels/cuda/*.cu` with an on-disk PTX cache, and the
//! loaded kernel handles.
//!
//! Cache: `$XDG_CACHE_HOME/e5/ptx/<sha256>.ptx` (default `~/.cache/e5/ptx`), keyed by
//! source, NVRTC options (architecture, precision define) and NVRTC version. Writes
//! go through a temporary file + rename, so concurrent processes never see a
//! partial file. An unusable cache directory only costs a recompile.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaFunction};
use cudarc::nvrtc::{CompileError, CompileOptions, Ptx};
use sha2::{Digest, Sha256};

use crate::{CudaError, GpuPrecision};

const PROGRAM: &str = "e5_kernels.cu";
/// All kernels as one program; common.cu (types, reductions) must come first.
const SOURCE: &str = concat!(
    include_str!("../../../kernels/cuda/common.cu"),
    include_str!("../../../kernels/cuda/layernorm.cu"),
    include_str!("../../../kernels/cuda/activation.cu"),
    include_str!("../../../kernels/cuda/attention.cu"),
    include_str!("../../../kernels/cuda/pooling.cu"),
);

/// Kernel handles of one loaded module.
pub(crate) struct Kernels {
    pub embed_layernorm: CudaFunction,
    pub bias_residual_layernorm: CudaFunction,
    pub bias_gelu: CudaFunction,
    /// The variant for the model's head dimension.
    pub attention: CudaFunction,
    pub pool_normalize: CudaFunction,
}

impl Kernels {
    pub fn load(ctx: &Arc<CudaContext>, precision: GpuPrecision, head_dim: usize) -> Result<Self, CudaError> {
        let ptx = ptx(ctx.compute_capability()?, precision, default_cache_dir().as_deref())?;
        let module = ctx.load_module(Ptx::from_src(ptx))?;
        Ok(Kernels {
            embed_layernorm: module.load_function("embed_layernorm")?,
            bias_residual_layernorm: module.load_function("bias_residual_layernorm")?,
            bias_gelu: module.load_function("bias_gelu")?,
            attention: module.load_function(&format!("attention_d{head_dim}"))?,
            pool_normalize: module.load_function("pool_normalize")?,
        })
    }
}

fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("e5").join("ptx"))
}

fn options(cc: (i32, i32), precision: GpuPrecision) -> Vec<String> {
    let mut o = vec![format!("--gpu-architecture=compute_{}{}", cc.0, cc.1)];
    if precision == GpuPrecision::Bf16 {
        o.push("-DE5_BF16".into());
    }
    o
}

fn nvrtc_version() -> (i32, i32) {
    let (mut major, mut minor) = (0, 0);
    // SAFETY: plain out-parameters; the library presence was checked by the caller.
    unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
    (major, minor)
}

/// PTX text for the device, from `cache_dir` when present there, else compiled
/// (and stored). Requires libnvrtc to be loadable.
pub(crate) fn ptx(cc: (i32, i32), precision: GpuPrecision, cache_dir: Option<&Path>) -> Result<String, CudaError> {
    let opts = options(cc, precision);
    let mut h = Sha256::new();
    h.update(SOURCE);
    h.update(format!("\0{opts:?}\0{:?}", nvrtc_version()));
    let key: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let path = cache_dir.map(|d| d.join(format!("{key}.ptx")));
    if let Some(text) = path.as_ref().and_then(|p| std::fs::read_to_string(p).ok()) {
        return Ok(text);
    }
    let compiled = cudarc::nvrtc::compile_ptx_with_opts(
        SOURCE,
        CompileOptions { options: opts, name: Some(PROGRAM.into()), ..Default::default() },
    )
    .map_err(|e| CudaError::Nvrtc {
        kernel: PROGRAM.into(),
        log: match e {
            CompileError::CompileError { log, .. } => log.to_string_lossy().into_owned(),
            other => format!("{other:?}"),
        },
    })?
    .to_src();
    if let Some(p) = &path {
        store(p, &compiled);
    }
    Ok(compiled)
}

/// Best-effort atomic write.
fn store(path: &Path, text: &str) {
    let Some(dir) = path.parent() else { return };
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let ok = std::fs::create_dir_all(dir).is_ok()
        && std::fs::write(&tmp, text).is_ok()
        && std::fs::rename(&tmp, path).is_ok();
    if !ok {
        let _ = std::fs::remove_file(&tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs wherever libnvrtc loads (no GPU needed): both precisions compile and
    /// the second lookup comes from the cache.
    #[test]
    fn compiles_and_caches() {
        // SAFETY: only tries to dlopen the library.
        if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
            eprintln!("skipped: libnvrtc not loadable");
            return;
        }
        let dir = std::env::temp_dir().join(format!("e5-ptx-test-{}", std::process::id()));
        for precision in [GpuPrecision::F16, GpuPrecision::Bf16] {
            let first = ptx((9, 0), precision, Some(&dir)).unwrap();
            for name in ["embed_layernorm", "attention_d64", "attention_d32", "pool_normalize"] {
                assert!(first.contains(&format!(".entry {name}")), "{name} missing");
            }
            assert_eq!(ptx((9, 0), precision, Some(&dir)).unwrap(), first);
        }
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
