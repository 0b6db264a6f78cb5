// out[i] = gelu(y[i] + bias[i % cols]) as 16-bit; y: [rows, cols] f32 GEMM output.
// tanh_form = 0: exact erf GELU (BERT/XLM-R "gelu"); 1: tanh approximation ("gelu_new").
extern "C" __global__ void bias_gelu(const float* __restrict__ y, const float* __restrict__ bias,
                                     int cols, long long total, int tanh_form,
                                     act_t* __restrict__ out) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        const float v = y[i] + bias[i % cols];
        float g;
        if (tanh_form) {
            const float inner = 0.7978845608028654f * (v + 0.044715f * v * v * v);
            g = 0.5f * v * (1.0f + tanhf(inner));
        } else {
            g = 0.5f * v * (1.0f + erff(v * 0.7071067811865476f));
        }
        out[i] = to_act(g);
    }
}
