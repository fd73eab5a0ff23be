// ebatch: a window's whole LSTM/GRU recurrence in one call (the "compiled" backend).
//
// For every column of a step, in order: gather the previous states of the column's cells (one slice of
// earlier outputs, or per cell: an earlier output, zeros for a reset, a state saved by an earlier step),
// the recurrent GEMM on W_hh reordered once for oneDNN (torch's mkldnn::_linear_pointwise, the matmul that
// TorchInductor's CPU freezing uses; plain ATen addmm where oneDNN is absent), then one fused, vectorised
// pass of gate math (ATen's Vectorized<float>; every activation is one Sleef 1-ulp expf) that writes h
// (and the LSTM cell state c) straight into the step's outputs. Cells are column-major; gate blocks come
// prepared by ebatch.runtime.gates (LSTM reordered to i, f, o, g; biases folded).
#include <torch/extension.h>
#include <ATen/cpu/vec/vec.h>
#include <cstring>
#include <vector>

namespace {
using Vec = at::vec::Vectorized<float>;

// gh[m, G*H] = a[m, H] @ W_hh^T: oneDNN on the reordered weight when given (w_dnn defined), else addmm.
torch::Tensor recurrent_gemm(const float* a, int64_t m, const torch::Tensor& w_dnn, const torch::Tensor& w_hh) {
  auto at_a = torch::from_blob(const_cast<float*>(a), {m, w_hh.size(1)}, torch::TensorOptions().dtype(torch::kFloat32));
  if (w_dnn.defined() && w_dnn.numel() > 0) {
    static auto op = c10::Dispatcher::singleton()
                         .findSchemaOrThrow("mkldnn::_linear_pointwise", "")
                         .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                                           c10::string_view, c10::List<std::optional<at::Scalar>>,
                                           std::optional<c10::string_view>)>();
    return op.call(at_a, w_dnn, std::nullopt, "none", c10::List<std::optional<at::Scalar>>(), std::nullopt);
  }
  return at::mm(at_a, w_hh.t());
}

// Activations through one exp each (Sleef's 1-ulp expf, several times faster than its tanhf here); the
// absolute error of both stays within a few float32 ulps of 1.
inline Vec sigmoid(const Vec& x) {
  const Vec one(1.0f);
  return one / (one + x.neg().exp());
}
inline Vec tanh(const Vec& x) {
  const Vec two(2.0f), one(1.0f);
  return two / (one + (x * Vec(-2.0f)).exp()) - one;
}

inline Vec pre(const float* gx, const float* gh, int64_t at, int64_t cnt) {
  return Vec::loadu(gx + at, cnt) + Vec::loadu(gh + at, cnt);
}

// LSTM, one row: gx = input projection [i, f, o, g] (biases folded), gh = h W_hh^T.
inline void lstm_row(const float* gx, const float* gh, const float* c_prev, float* c_out, float* h_out, int64_t h) {
  for (int64_t j = 0; j < h; j += Vec::size()) {
    const int64_t cnt = std::min<int64_t>(Vec::size(), h - j);
    Vec i = sigmoid(pre(gx, gh, j, cnt));
    Vec f = sigmoid(pre(gx, gh, h + j, cnt));
    Vec o = sigmoid(pre(gx, gh, 2 * h + j, cnt));
    Vec g = tanh(pre(gx, gh, 3 * h + j, cnt));
    Vec c = at::vec::fmadd(f, Vec::loadu(c_prev + j, cnt), i * g);
    c.store(c_out + j, cnt);
    (o * tanh(c)).store(h_out + j, cnt);
  }
}

// GRU, one row: gx = input projection [r, z, n] (r, z with their recurrent biases), gh = h W_hh^T.
inline void gru_row(const float* gx, const float* gh, const float* b_hn, const float* h_prev, float* h_out,
                    int64_t h) {
  for (int64_t j = 0; j < h; j += Vec::size()) {
    const int64_t cnt = std::min<int64_t>(Vec::size(), h - j);
    Vec r = sigmoid(Vec::loadu(gx + j, cnt) + Vec::loadu(gh + j, cnt));
    Vec u = sigmoid(Vec::loadu(gx + h + j, cnt) + Vec::loadu(gh + h + j, cnt));
    Vec hn = Vec::loadu(gh + 2 * h + j, cnt) + Vec::loadu(b_hn + j, cnt);
    Vec n = tanh(at::vec::fmadd(r, hn, Vec::loadu(gx + 2 * h + j, cnt)));
    Vec hp = Vec::loadu(h_prev + j, cnt);
    at::vec::fmadd(u, hp - n, n).store(h_out + j, cnt);
  }
}

// The recurrence of one step. gates [n_cells, G*H] (the input projection), columns given by
// col_offset/col_count, col_slice[j] >= 0 when column j's previous states are cells col_slice[j] .. + count,
// else pred[cell]: >= 0 an earlier cell, -1 zeros, <= -2 row (-2 - pred) of h0/c0 (saved states).
// Returns out [n_cells, H], and h, c at last_cell (c: LSTM only, else empty).
std::vector<torch::Tensor> recur(const torch::Tensor& gates, const torch::Tensor& w_dnn, const torch::Tensor& w_hh,
                                 const torch::Tensor& b_hn, const torch::Tensor& h0, const torch::Tensor& c0,
                                 const torch::Tensor& col_offset, const torch::Tensor& col_count,
                                 const torch::Tensor& col_slice, const torch::Tensor& pred,
                                 const torch::Tensor& last_cell, bool lstm) {
  TORCH_CHECK(gates.is_contiguous() && gates.dtype() == torch::kFloat32, "recur: gates must be contiguous float32");
  const int64_t h = w_hh.size(1), g = w_hh.size(0), n_cells = gates.size(0), n_cols = col_offset.size(0);
  TORCH_CHECK(g == (lstm ? 4 : 3) * h && gates.size(1) == g, "recur: gates and W_hh disagree");
  auto out = torch::empty({n_cells, h}, torch::kFloat32);
  auto c_all = lstm ? torch::empty({n_cells, h}, torch::kFloat32) : torch::empty({0}, torch::kFloat32);
  int64_t widest = 0;
  const int64_t* counts = col_count.data_ptr<int64_t>();
  for (int64_t j = 0; j < n_cols; ++j) widest = std::max(widest, counts[j]);
  std::vector<float> h_buf(widest * h), c_buf(lstm ? widest * h : 0);
  const int64_t* offs = col_offset.data_ptr<int64_t>();
  const int64_t* slices = col_slice.data_ptr<int64_t>();
  const int64_t* pr = pred.data_ptr<int64_t>();
  float* o = out.data_ptr<float>();
  float* c = lstm ? c_all.data_ptr<float>() : nullptr;
  const float* z = gates.data_ptr<float>();
  const float* hs = h0.numel() ? h0.data_ptr<float>() : nullptr;
  const float* cs = (lstm && c0.numel()) ? c0.data_ptr<float>() : nullptr;
  const float* bhn = b_hn.data_ptr<float>();
  const size_t row_bytes = h * sizeof(float);
  for (int64_t j = 0; j < n_cols; ++j) {
    const int64_t off = offs[j], n = counts[j];
    const float *h_prev, *c_prev = nullptr;
    if (slices[j] >= 0) {
      h_prev = o + slices[j] * h;
      if (lstm) c_prev = c + slices[j] * h;
    } else {  // gather the active rows' previous states
      for (int64_t i = 0; i < n; ++i) {
        const int64_t p = pr[off + i];
        float* hd = h_buf.data() + i * h;
        float* cd = lstm ? c_buf.data() + i * h : nullptr;
        if (p >= 0) {
          std::memcpy(hd, o + p * h, row_bytes);
          if (lstm) std::memcpy(cd, c + p * h, row_bytes);
        } else if (p == -1) {
          std::memset(hd, 0, row_bytes);
          if (lstm) std::memset(cd, 0, row_bytes);
        } else {
          std::memcpy(hd, hs + (-2 - p) * h, row_bytes);
          if (lstm) std::memcpy(cd, cs + (-2 - p) * h, row_bytes);
        }
      }
      h_prev = h_buf.data();
      c_prev = lstm ? c_buf.data() : nullptr;
    }
    const float* gx = z + off * g;
    auto gh_tensor = recurrent_gemm(h_prev, n, w_dnn, w_hh);
    const float* gh = gh_tensor.data_ptr<float>();
    for (int64_t i = 0; i < n; ++i) {
      if (lstm)
        lstm_row(gx + i * g, gh + i * g, c_prev + i * h, c + (off + i) * h, o + (off + i) * h, h);
      else
        gru_row(gx + i * g, gh + i * g, bhn, h_prev + i * h, o + (off + i) * h, h);
    }
  }
  auto h_last = out.index_select(0, last_cell);
  auto c_last = lstm ? c_all.index_select(0, last_cell) : torch::empty({0}, torch::kFloat32);
  return {out, h_last, c_last};
}
}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("recur", &recur, "a step's whole recurrence: gather, recurrent GEMM, gate math, scatter");
}
