// Variable-length multi-head self-attention over concatenated tokens, no padding.
//
// qkv:     [T, 3*hidden] f32 GEMM output without bias; row t = [q | k | v], head h
//          at columns h*D .. h*D+D of each part.
// bias:    [3*hidden] f32 (q, k, v biases).
// offsets: [n+1] i32 prefix offsets; sequence s owns rows offsets[s] .. offsets[s+1].
// out:     [T, hidden] 16-bit context (input of the attention output GEMM).
//
// Grid (n, ceil(max_len / ATT_QT), heads), block ATT_WARPS*32 threads. Each warp
// owns ATT_QPW queries; the block streams key/value tiles of KT rows through shared
// memory and keeps an online (flash-style) softmax per query: running max m, sum l
// and an unnormalized accumulator, so any length (tested up to 512) fits.
#define ATT_WARPS 4
#define ATT_QPW 4
#define ATT_QT (ATT_WARPS * ATT_QPW)

template <int D, int KT>
__device__ void attention_impl(const float* __restrict__ qkv, const float* __restrict__ bias,
                               const int* __restrict__ offsets, int heads, float scale,
                               act_t* __restrict__ out) {
    constexpr int KPL = KT / 32;  // keys per lane in a tile
    constexpr int DPL = (D + 31) / 32;  // output dims per lane (lanes >= D idle if D < 32)
    __shared__ float qs[ATT_QT][D];
    __shared__ float ks[KT][D + 1];  // +1: lanes read different rows, avoid bank conflicts
    __shared__ float vs[KT][D];
    __shared__ float ps[ATT_WARPS][ATT_QPW][KT];

    const int seq = blockIdx.x, h = blockIdx.z;
    const int start = offsets[seq], len = offsets[seq + 1] - start;
    const int q0 = blockIdx.y * ATT_QT;
    if (q0 >= len) return;  // uniform over the block
    const int hidden = heads * D, stride = 3 * hidden;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const float* base = qkv + (size_t)start * stride + h * D;
    const float* qb = bias + h * D;
    const float* kb = bias + hidden + h * D;
    const float* vb = bias + 2 * hidden + h * D;

    for (int i = threadIdx.x; i < ATT_QT * D; i += blockDim.x) {
        const int r = i / D, d = i % D, q = q0 + r;
        qs[r][d] = q < len ? (base[(size_t)q * stride + d] + qb[d]) * scale : 0.0f;
    }

    float m[ATT_QPW], l[ATT_QPW], acc[ATT_QPW][DPL];
#pragma unroll
    for (int qi = 0; qi < ATT_QPW; ++qi) {
        m[qi] = E5_NEG_INF;
        l[qi] = 0.0f;
#pragma unroll
        for (int c = 0; c < DPL; ++c) acc[qi][c] = 0.0f;
    }
    const float(*qw)[D] = qs + warp * ATT_QPW;

    for (int k0 = 0; k0 < len; k0 += KT) {
        __syncthreads();  // previous tile fully consumed (and qs written on first pass)
        for (int i = threadIdx.x; i < KT * D; i += blockDim.x) {
            const int j = i / D, d = i % D, key = k0 + j;
            const bool ok = key < len;
            const float* row = base + (size_t)key * stride;
            ks[j][d] = ok ? row[hidden + d] + kb[d] : 0.0f;
            vs[j][d] = ok ? row[2 * hidden + d] + vb[d] : 0.0f;
        }
        __syncthreads();

        float s[ATT_QPW][KPL];
#pragma unroll
        for (int qi = 0; qi < ATT_QPW; ++qi)
#pragma unroll
            for (int r = 0; r < KPL; ++r) s[qi][r] = 0.0f;
#pragma unroll 8
        for (int d = 0; d < D; ++d) {
            float kv[KPL];
#pragma unroll
            for (int r = 0; r < KPL; ++r) kv[r] = ks[lane + 32 * r][d];
#pragma unroll
            for (int qi = 0; qi < ATT_QPW; ++qi) {
                const float qv = qw[qi][d];
#pragma unroll
                for (int r = 0; r < KPL; ++r) s[qi][r] = fmaf(qv, kv[r], s[qi][r]);
            }
        }

        const int kn = min(KT, len - k0);  // valid keys in this tile (>= 1)
#pragma unroll
        for (int qi = 0; qi < ATT_QPW; ++qi) {
            float tmax = E5_NEG_INF;
#pragma unroll
            for (int r = 0; r < KPL; ++r) {
                if (lane + 32 * r >= kn) s[qi][r] = E5_NEG_INF;
                tmax = fmaxf(tmax, s[qi][r]);
            }
            const float mn = fmaxf(m[qi], warp_max(tmax));  // finite: kn >= 1
            const float corr = expf(m[qi] - mn);             // 0 on the first tile
            float psum = 0.0f;
#pragma unroll
            for (int r = 0; r < KPL; ++r) {
                const float p = expf(s[qi][r] - mn);
                ps[warp][qi][lane + 32 * r] = p;
                psum += p;
            }
            l[qi] = l[qi] * corr + warp_sum(psum);
            m[qi] = mn;
#pragma unroll
            for (int c = 0; c < DPL; ++c) acc[qi][c] *= corr;
        }
        __syncwarp();
        for (int j = 0; j < kn; ++j) {
            float vv[DPL];
#pragma unroll
            for (int c = 0; c < DPL; ++c) vv[c] = lane + 32 * c < D ? vs[j][lane + 32 * c] : 0.0f;
#pragma unroll
            for (int qi = 0; qi < ATT_QPW; ++qi) {
                const float p = ps[warp][qi][j];
#pragma unroll
                for (int c = 0; c < DPL; ++c) acc[qi][c] = fmaf(p, vv[c], acc[qi][c]);
            }
        }
        __syncwarp();  // ps reused by the next tile
    }

#pragma unroll
    for (int qi = 0; qi < ATT_QPW; ++qi) {
        const int q = q0 + warp * ATT_QPW + qi;
        if (q < len) {
            const float inv = 1.0f / l[qi];
            act_t* o = out + (size_t)(start + q) * hidden + h * D;
#pragma unroll
            for (int c = 0; c < DPL; ++c)
                if (lane + 32 * c < D) o[lane + 32 * c] = to_act(acc[qi][c] * inv);
        }
    }
}

// Static shared memory stays under 48 KiB: KT = 64 for D <= 64, 32 for D = 128.
extern "C" __global__ void attention_d16(const float* qkv, const float* bias, const int* offsets,
                                         int heads, float scale, act_t* out) {
    attention_impl<16, 64>(qkv, bias, offsets, heads, scale, out);
}
extern "C" __global__ void attention_d32(const float* qkv, const float* bias, const int* offsets,
                                         int heads, float scale, act_t* out) {
    attention_impl<32, 64>(qkv, bias, offsets, heads, scale, out);
}
extern "C" __global__ void attention_d64(const float* qkv, const float* bias, const int* offsets,
                                         int heads, float scale, act_t* out) {
    attention_impl<64, 64>(qkv, bias, offsets, heads, scale, out);
}
extern "C" __global__ void attention_d128(const float* qkv, const float* bias, const int* offsets,
                                          int heads, float scale, act_t* out) {
    attention_impl<128, 32>(qkv, bias, offsets, heads, scale, out);
}
