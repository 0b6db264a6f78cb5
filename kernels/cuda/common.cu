// Shared helpers for the e5 CUDA kernels. All kernel sources in this folder are
// concatenated (common.cu first) and compiled as one NVRTC program.
//
// act_t: 16-bit storage type of GEMM operands (weights and activations fed to
// cuBLAS). IEEE fp16 by default, bf16 when compiled with -DE5_BF16. Raw bits are
// used so no CUDA headers are needed. Residual stream, GEMM outputs, LayerNorm and
// softmax math stay in f32.
typedef unsigned short act_t;

#define E5_NEG_INF __int_as_float(0xff800000)

__device__ __forceinline__ act_t to_act(float x) {
#ifdef E5_BF16
    unsigned int u = __float_as_uint(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (act_t)((u >> 16) | 0x40u);  // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
    return (act_t)(u >> 16);
#else
    act_t r;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(r) : "f"(x));
    return r;
#endif
}

__device__ __forceinline__ float from_act(act_t h) {
#ifdef E5_BF16
    return __uint_as_float(((unsigned int)h) << 16);
#else
    float r;
    asm("cvt.f32.f16 %0, %1;" : "=f"(r) : "h"(h));
    return r;
#endif
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over the whole block (blockDim.x a multiple of 32, at most 1024). Every
// thread gets the result. `scratch` holds >= 32 floats; safe to call repeatedly.
__device__ float block_sum(float v, float* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();  // protect scratch from a previous call
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < nwarps ? scratch[lane] : 0.0f;
    return warp_sum(v);
}

// LayerNorm of one row held in shared memory `row` [n], two-pass (mean, then
// centred variance) for accuracy. Writes f32 `out` and 16-bit `out_h`.
__device__ void layernorm_row(const float* row, int n, float eps, const float* __restrict__ gamma,
                              const float* __restrict__ beta, float* __restrict__ out,
                              act_t* __restrict__ out_h, float* scratch) {
    float s = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) s += row[i];
    const float mean = block_sum(s, scratch) / n;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const float d = row[i] - mean;
        ss += d * d;
    }
    const float rstd = rsqrtf(block_sum(ss, scratch) / n + eps);
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const float y = (row[i] - mean) * rstd * gamma[i] + beta[i];
        out[i] = y;
        out_h[i] = to_act(y);
    }
}
