// Row kernels: one block per token, dynamic shared memory = hidden * 4 bytes.

// x[t] = LN(word[ids[t]] + pos_emb[pos[t]] + type_row); writes f32 x and 16-bit xh.
// word: [V, hidden] act_t, pos_emb: [P, hidden] f32, type_row: [hidden] f32.
extern "C" __global__ void embed_layernorm(const unsigned int* __restrict__ ids,
                                           const unsigned int* __restrict__ pos,
                                           const act_t* __restrict__ word,
                                           const float* __restrict__ pos_emb,
                                           const float* __restrict__ type_row,
                                           const float* __restrict__ gamma,
                                           const float* __restrict__ beta, int hidden, float eps,
                                           float* __restrict__ x, act_t* __restrict__ xh) {
    extern __shared__ float row[];
    __shared__ float scratch[32];
    const size_t t = blockIdx.x;
    const act_t* w = word + (size_t)ids[t] * hidden;
    const float* p = pos_emb + (size_t)pos[t] * hidden;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x)
        row[i] = from_act(w[i]) + p[i] + type_row[i];
    __syncthreads();
    layernorm_row(row, hidden, eps, gamma, beta, x + t * hidden, xh + t * hidden, scratch);
}

// x[t] = LN(y[t] + bias + x[t]) in place; y: [T, hidden] GEMM output (no bias yet).
extern "C" __global__ void bias_residual_layernorm(const float* __restrict__ y,
                                                   const float* __restrict__ bias,
                                                   const float* __restrict__ gamma,
                                                   const float* __restrict__ beta, int hidden,
                                                   float eps, float* __restrict__ x,
                                                   act_t* __restrict__ xh) {
    extern __shared__ float row[];
    __shared__ float scratch[32];
    const size_t off = (size_t)blockIdx.x * hidden;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x)
        row[i] = y[off + i] + bias[i] + x[off + i];
    __syncthreads();
    layernorm_row(row, hidden, eps, gamma, beta, x + off, xh + off, scratch);
}
