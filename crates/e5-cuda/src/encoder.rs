//! The GPU encoder: weights uploaded once, one forward pass per `embed` call.
//!
//! Per layer, for T concatenated tokens (no padding):
//! `qkv[T,3H] = xh·Wqkvᵀ` → attention (adds qkv bias) → `ctx_h[T,H]` →
//! `tmp = ctx_h·Woᵀ` → `x = LN(tmp + bo + x)` → `up = xh·Wupᵀ` → `up_h = gelu(up + bu)` →
//! `tmp = up_h·Wdownᵀ` → `x = LN(tmp + bd + x)`. `x` is the f32 residual stream and
//! `xh` its 16-bit copy used as GEMM input.

use std::sync::{Arc, Mutex, PoisonError};

use cudarc::driver::sys::CUresult;
use cudarc::driver::{CudaContext, CudaSlice, CudaStream, LaunchConfig, PushKernelArg};

use crate::config::{validate_batch, validate_weights};
use crate::device;
use crate::gemm::Gemm;
use crate::kernels::Kernels;
use crate::{CudaError, EncoderWeights, GpuPrecision};
use e5_arch::{GeluKind, ModelConfig};

/// Tokens the construction-time memory check reserves workspace for (16 × 512).
const WORKSPACE_ESTIMATE_TOKENS: usize = 16 * 512;
/// Slack for cuBLAS workspaces, the kernel module and allocator granularity.
const RESERVE_BYTES: usize = 256 << 20;
/// Elements converted to 16 bits per host→device chunk.
const UPLOAD_CHUNK: usize = 1 << 22;
/// Query rows per attention block (ATT_QT in attention.cu).
const ATTENTION_QUERY_TILE: usize = 16;
const ATTENTION_THREADS: u32 = 128;

struct LayerBuffers {
    qkv_w: CudaSlice<u16>,
    qkv_b: CudaSlice<f32>,
    out_w: CudaSlice<u16>,
    out_b: CudaSlice<f32>,
    ln1_g: CudaSlice<f32>,
    ln1_b: CudaSlice<f32>,
    up_w: CudaSlice<u16>,
    up_b: CudaSlice<f32>,
    down_w: CudaSlice<u16>,
    down_b: CudaSlice<f32>,
    ln2_g: CudaSlice<f32>,
    ln2_b: CudaSlice<f32>,
}

struct DeviceWeights {
    /// `[V, H]` 16-bit.
    word: CudaSlice<u16>,
    /// `[P, H]`
    pos: CudaSlice<f32>,
    type_row: CudaSlice<f32>,
    ln_g: CudaSlice<f32>,
    ln_b: CudaSlice<f32>,
    layers: Vec<LayerBuffers>,
}

/// Activation buffers for up to `tokens` tokens and `seqs` sequences; grow-only.
struct Workspace {
    tokens: usize,
    seqs: usize,
    ids: CudaSlice<u32>,
    pos: CudaSlice<u32>,
    offsets: CudaSlice<i32>,
    x: CudaSlice<f32>,
    xh: CudaSlice<u16>,
    qkv: CudaSlice<f32>,
    ctx: CudaSlice<u16>,
    tmp: CudaSlice<f32>,
    up: CudaSlice<f32>,
    up_h: CudaSlice<u16>,
    pooled: CudaSlice<f32>,
}

/// Mutable per-call state; the lock also serializes use of the single stream.
struct State {
    gemm: Gemm,
    ws: Option<Workspace>,
}

pub struct CudaEncoder {
    cfg: ModelConfig,
    vocab: usize,
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    kernels: Kernels,
    weights: DeviceWeights,
    state: Mutex<State>,
}

/// Device bytes of activations per token (see `Workspace`).
fn bytes_per_token(cfg: &ModelConfig) -> usize {
    let (h, i) = (cfg.hidden, cfg.intermediate);
    8 + 4 * h + 2 * h + 12 * h + 2 * h + 4 * h + 4 * i + 2 * i
}

fn weight_bytes(cfg: &ModelConfig, vocab: usize) -> usize {
    let (h, i) = (cfg.hidden, cfg.intermediate);
    let per_layer = 2 * (3 * h * h + h * h + 2 * h * i) + 4 * (3 * h + 6 * h + i);
    2 * vocab * h + 4 * (cfg.max_positions * h + 3 * h) + cfg.layers * per_layer
}

fn launch_cfg(grid: (u32, u32, u32), block: u32, shared: usize) -> LaunchConfig {
    LaunchConfig { grid_dim: grid, block_dim: (block, 1, 1), shared_mem_bytes: shared as u32 }
}

fn to_u32(v: usize) -> Result<u32, CudaError> {
    u32::try_from(v).map_err(|_| CudaError::InvalidInput(format!("launch dimension {v} too large")))
}

impl CudaEncoder {
    /// Validates `w` against `cfg` (before touching the GPU), checks memory, compiles
    /// (or loads cached) kernels and uploads the weights.
    pub fn new(
        cfg: ModelConfig,
        w: &EncoderWeights,
        precision: GpuPrecision,
        ordinal: usize,
    ) -> Result<Self, CudaError> {
        let vocab = validate_weights(&cfg, w)?;
        device::require_compute_libs()?;
        let ctx = device::open(ordinal)?;
        // One stream and a lock: cudarc's per-buffer event tracking is not needed.
        // SAFETY: called before any allocation on this context by this encoder.
        unsafe { ctx.disable_event_tracking() };
        let (free, _) = ctx.mem_get_info()?;
        let needed = weight_bytes(&cfg, vocab) + WORKSPACE_ESTIMATE_TOKENS * bytes_per_token(&cfg) + RESERVE_BYTES;
        if needed > free {
            return Err(CudaError::OutOfMemory { needed, free });
        }
        let stream = ctx.default_stream();
        let kernels = Kernels::load(&ctx, precision, cfg.head_dim())?;
        let gemm = Gemm::new(stream.clone(), precision)?;
        let weights = upload_weights(&stream, w, precision)?;
        stream.synchronize()?;
        Ok(CudaEncoder { cfg, vocab, ctx, stream, kernels, weights, state: Mutex::new(State { gemm, ws: None }) })
    }

    /// Token ids of all sequences concatenated; `seq_offsets` holds n+1 prefix
    /// offsets. Returns `[n, H]` pooled (and L2-normalized if `cfg.head.normalize`) f32.
    pub fn embed(&self, token_ids: &[u32], seq_offsets: &[usize]) -> Result<Vec<f32>, CudaError> {
        let n = validate_batch(&self.cfg, self.vocab, token_ids, seq_offsets)?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.ctx.bind_to_thread()?;
        let State { gemm, ws } = &mut *state;
        let ws = self.workspace(ws, token_ids.len(), n)?;

        let pos: Vec<u32> = seq_offsets
            .windows(2)
            .flat_map(|p| (0..p[1] - p[0]).map(|i| (self.cfg.position_offset + i) as u32))
            .collect();
        let offsets: Vec<i32> = seq_offsets.iter().map(|&o| o as i32).collect();
        self.stream.memcpy_htod(token_ids, &mut ws.ids)?;
        self.stream.memcpy_htod(&pos, &mut ws.pos)?;
        self.stream.memcpy_htod(&offsets, &mut ws.offsets)?;

        let max_len = seq_offsets.windows(2).map(|p| p[1] - p[0]).max().unwrap_or(0);
        self.forward(gemm, ws, token_ids.len(), n, max_len)?;

        let out = self.stream.clone_dtoh(&ws.pooled.slice(..n * self.cfg.hidden))?;
        self.stream.synchronize()?;
        self.ctx.check_err()?;
        Ok(out)
    }

    /// Returns a workspace for `tokens`/`seqs`, reallocating (after a free-memory
    /// check) when the current one is too small.
    fn workspace<'a>(
        &self,
        slot: &'a mut Option<Workspace>,
        tokens: usize,
        seqs: usize,
    ) -> Result<&'a mut Workspace, CudaError> {
        if let Some(ws) = slot.as_ref() {
            if ws.tokens >= tokens && ws.seqs >= seqs {
                return Ok(slot.as_mut().expect("checked above"));
            }
        }
        let (old_t, old_s) = slot.as_ref().map_or((0, 0), |w| (w.tokens, w.seqs));
        *slot = None;
        self.stream.synchronize()?; // let the freed buffers return to the pool
        let (t, s) = (tokens.max(old_t), seqs.max(old_s));
        let (h, i) = (self.cfg.hidden, self.cfg.intermediate);
        let needed = t * bytes_per_token(&self.cfg) + s * (4 + 4 * h) + 4;
        let (free, _) = self.ctx.mem_get_info()?;
        if needed > free {
            return Err(CudaError::OutOfMemory { needed, free });
        }
        let st = &self.stream;
        let oom = |e: cudarc::driver::DriverError| {
            if e.0 == CUresult::CUDA_ERROR_OUT_OF_MEMORY {
                CudaError::OutOfMemory { needed, free }
            } else {
                e.into()
            }
        };
        Ok(slot.insert(Workspace {
            tokens: t,
            seqs: s,
            ids: st.alloc_zeros(t).map_err(oom)?,
            pos: st.alloc_zeros(t).map_err(oom)?,
            offsets: st.alloc_zeros(s + 1).map_err(oom)?,
            x: st.alloc_zeros(t * h).map_err(oom)?,
            xh: st.alloc_zeros(t * h).map_err(oom)?,
            qkv: st.alloc_zeros(t * 3 * h).map_err(oom)?,
            ctx: st.alloc_zeros(t * h).map_err(oom)?,
            tmp: st.alloc_zeros(t * h).map_err(oom)?,
            up: st.alloc_zeros(t * i).map_err(oom)?,
            up_h: st.alloc_zeros(t * i).map_err(oom)?,
            pooled: st.alloc_zeros(s * h).map_err(oom)?,
        }))
    }

    /// Enqueues the whole forward pass and pooling for `t` tokens in `n` sequences.
    fn forward(&self, gemm: &Gemm, ws: &mut Workspace, t: usize, n: usize, max_len: usize) -> Result<(), CudaError> {
        let c = &self.cfg;
        let (h, i) = (c.hidden, c.intermediate);
        let (hidden, eps) = (h as i32, c.layer_norm_eps);
        let k = &self.kernels;
        let w = &self.weights;
        // Row kernels: ~4 elements per thread, one f32 row in dynamic shared memory.
        let row_threads = to_u32(h.div_ceil(4).next_multiple_of(32).clamp(32, 1024))?;
        let rows = launch_cfg((to_u32(t)?, 1, 1), row_threads, 4 * h);
        let attn = launch_cfg(
            (to_u32(n)?, to_u32(max_len.div_ceil(ATTENTION_QUERY_TILE))?, to_u32(c.heads)?),
            ATTENTION_THREADS,
            0,
        );
        let heads = c.heads as i32;
        let scale = 1.0 / (c.head_dim() as f32).sqrt();
        let gelu_total = (t * i) as i64;
        let gelu_blocks = to_u32((t * i).div_ceil(256).min(1 << 20))?;
        let gelu_cfg = launch_cfg((gelu_blocks, 1, 1), 256, 0);
        let cols = i as i32;
        let tanh_form = i32::from(c.gelu == GeluKind::Tanh);
        let s = &self.stream;

        // SAFETY (all launches): argument lists match the kernel signatures in
        // kernels/cuda; every buffer holds at least the t / n rows indexed.
        unsafe {
            s.launch_builder(&k.embed_layernorm)
                .arg(&ws.ids)
                .arg(&ws.pos)
                .arg(&w.word)
                .arg(&w.pos)
                .arg(&w.type_row)
                .arg(&w.ln_g)
                .arg(&w.ln_b)
                .arg(&hidden)
                .arg(&eps)
                .arg(&mut ws.x)
                .arg(&mut ws.xh)
                .launch(rows)?;
        }
        for l in &w.layers {
            gemm.linear(&ws.xh, &l.qkv_w, &mut ws.qkv, t, 3 * h, h)?;
            unsafe {
                s.launch_builder(&k.attention)
                    .arg(&ws.qkv)
                    .arg(&l.qkv_b)
                    .arg(&ws.offsets)
                    .arg(&heads)
                    .arg(&scale)
                    .arg(&mut ws.ctx)
                    .launch(attn)?;
            }
            gemm.linear(&ws.ctx, &l.out_w, &mut ws.tmp, t, h, h)?;
            self.residual_layernorm(ws, &l.out_b, &l.ln1_g, &l.ln1_b, rows)?;
            gemm.linear(&ws.xh, &l.up_w, &mut ws.up, t, i, h)?;
            unsafe {
                s.launch_builder(&k.bias_gelu)
                    .arg(&ws.up)
                    .arg(&l.up_b)
                    .arg(&cols)
                    .arg(&gelu_total)
                    .arg(&tanh_form)
                    .arg(&mut ws.up_h)
                    .launch(gelu_cfg)?;
            }
            gemm.linear(&ws.up_h, &l.down_w, &mut ws.tmp, t, h, i)?;
            self.residual_layernorm(ws, &l.down_b, &l.ln2_g, &l.ln2_b, rows)?;
        }
        // The caller checks that the head is a fused mean or CLS pooling (`Pooling::fused`).
        let cls = i32::from(c.head.pooling.modes == [e5_arch::PoolingMode::Cls]);
        let normalize = i32::from(c.head.normalize);
        unsafe {
            s.launch_builder(&k.pool_normalize)
                .arg(&ws.x)
                .arg(&ws.offsets)
                .arg(&hidden)
                .arg(&cls)
                .arg(&normalize)
                .arg(&mut ws.pooled)
                .launch(launch_cfg((to_u32(n)?, 1, 1), row_threads, 4 * h))?;
        }
        Ok(())
    }

    /// `x = LN(tmp + bias + x)`, also refreshing `xh`.
    fn residual_layernorm(
        &self,
        ws: &mut Workspace,
        bias: &CudaSlice<f32>,
        gamma: &CudaSlice<f32>,
        beta: &CudaSlice<f32>,
        rows: LaunchConfig,
    ) -> Result<(), CudaError> {
        let hidden = self.cfg.hidden as i32;
        let eps = self.cfg.layer_norm_eps;
        // SAFETY: matches bias_residual_layernorm in layernorm.cu; rows = t blocks.
        unsafe {
            self.stream
                .launch_builder(&self.kernels.bias_residual_layernorm)
                .arg(&ws.tmp)
                .arg(bias)
                .arg(gamma)
                .arg(beta)
                .arg(&hidden)
                .arg(&eps)
                .arg(&mut ws.x)
                .arg(&mut ws.xh)
                .launch(rows)?;
        }
        Ok(())
    }
}

fn upload_f32(s: &Arc<CudaStream>, v: &[f32]) -> Result<CudaSlice<f32>, CudaError> {
    Ok(s.clone_htod(v)?)
}

/// Uploads `v` converted to 16-bit bits in chunks (bounded host memory).
fn upload_half(s: &Arc<CudaStream>, v: &[f32], precision: GpuPrecision) -> Result<CudaSlice<u16>, CudaError> {
    let mut dst = s.alloc_zeros::<u16>(v.len())?;
    for (n, chunk) in v.chunks(UPLOAD_CHUNK).enumerate() {
        let bits: Vec<u16> = match precision {
            GpuPrecision::F16 => chunk.iter().map(|&x| half::f16::from_f32(x).to_bits()).collect(),
            GpuPrecision::Bf16 => chunk.iter().map(|&x| half::bf16::from_f32(x).to_bits()).collect(),
        };
        let start = n * UPLOAD_CHUNK;
        s.memcpy_htod(&bits, &mut dst.slice_mut(start..start + bits.len()))?;
    }
    Ok(dst)
}

fn upload_weights(
    s: &Arc<CudaStream>,
    w: &EncoderWeights,
    precision: GpuPrecision,
) -> Result<DeviceWeights, CudaError> {
    let layers = w
        .layers
        .iter()
        .map(|l| {
            Ok(LayerBuffers {
                qkv_w: upload_half(s, l.qkv_weight, precision)?,
                qkv_b: upload_f32(s, l.qkv_bias)?,
                out_w: upload_half(s, l.attn_out_weight, precision)?,
                out_b: upload_f32(s, l.attn_out_bias)?,
                ln1_g: upload_f32(s, l.attn_ln_gamma)?,
                ln1_b: upload_f32(s, l.attn_ln_beta)?,
                up_w: upload_half(s, l.ffn_up_weight, precision)?,
                up_b: upload_f32(s, l.ffn_up_bias)?,
                down_w: upload_half(s, l.ffn_down_weight, precision)?,
                down_b: upload_f32(s, l.ffn_down_bias)?,
                ln2_g: upload_f32(s, l.ffn_ln_gamma)?,
                ln2_b: upload_f32(s, l.ffn_ln_beta)?,
            })
        })
        .collect::<Result<_, CudaError>>()?;
    Ok(DeviceWeights {
        word: upload_half(s, w.word_embeddings, precision)?,
        pos: upload_f32(s, w.position_embeddings)?,
        type_row: upload_f32(s, w.token_type_row)?,
        ln_g: upload_f32(s, w.emb_ln_gamma)?,
        ln_b: upload_f32(s, w.emb_ln_beta)?,
        layers,
    })
}
