// One block per sequence: out[s] = mean (or CLS row) of x[offsets[s]..offsets[s+1]],
// then optionally L2-normalized. x: [T, hidden] f32, out: [n, hidden] f32.
// Dynamic shared memory = hidden * 4 bytes.
extern "C" __global__ void pool_normalize(const float* __restrict__ x,
                                          const int* __restrict__ offsets, int hidden, int cls,
                                          int normalize, float* __restrict__ out) {
    extern __shared__ float acc[];
    __shared__ float scratch[32];
    const int s = blockIdx.x;
    const int start = offsets[s], end = cls ? offsets[s] + 1 : offsets[s + 1];
    const float inv = 1.0f / (float)(end - start);
    float sq = 0.0f;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) {
        float v = 0.0f;
        for (int t = start; t < end; ++t) v += x[(size_t)t * hidden + i];
        v *= inv;
        acc[i] = v;
        sq += v * v;
    }
    const float norm = block_sum(sq, scratch);
    const float scale = normalize ? 1.0f / fmaxf(sqrtf(norm), 1e-12f) : 1.0f;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x)
        out[(size_t)s * hidden + i] = acc[i] * scale;
}
