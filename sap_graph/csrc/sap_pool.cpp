// Fused CPU kernels of SAPAggregation's core (autograd in sap_graph/ops/native.py).
// For a sorted batch (graph b owns rows ptr[b]..ptr[b+1] of x) and a score
// matrix w [H, F]:
//   forward:  e_ih = <x_i, w_h>, alpha = softmax of e within each graph,
//             pooled[h, b] = sum_i alpha_ih x_i, weight_sum[h, b] = sum_i alpha_ih
//   backward: g_ih = <x_i, dP[h, b]> + dS[h, b] + dalpha_ih,
//             ds_ih = alpha_ih (g_ih - sum_j alpha_jh g_jh),
//             dx_i = sum_h alpha_ih dP[h, b] + sum_h ds_ih w_h,
//             dw_h = sum_i ds_ih x_i
// With a residual mode (1 sum, 2 mean, 3 max) the same passes also give the
// residual pooling res[b] = sum / mean / max of the graph's rows of x and
// add its gradient to dx while those rows are in cache; the max gradient is
// shared evenly by the rows that attain the maximum, as torch's scatter
// 'amax' does.
// Every graph is handled by one thread from start to end, so its rows of x
// are read from memory once and then served from cache: for graphs that fit
// in cache the forward reads x once, the backward reads x once and writes
// dx once (the memory traffic of mean pooling); a graph larger than the
// cache is read twice per pass. No [N, H, F] buffer exists; the only
// [N, H] one is alpha.
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace {

// Register-blocked micro-kernels over a block of HB <= 4 heads. Features
// are processed in chunks of one cache line (C elements) so that the
// partial sums of all heads of the block stay in vector registers.
template <typename T>
constexpr int64_t chunk() { return 64 / sizeof(T); }

// out[h] = <x, Y[h * ystride : h * ystride + F]> for h < HB.
template <typename T, int HB>
inline void dots(const T* __restrict x, const T* __restrict Y, int64_t ystride,
                 int64_t F, T* __restrict out) {
  constexpr int64_t C = chunk<T>();
  T acc[HB][C] = {};
  int64_t f = 0;
  for (; f + C <= F; f += C)
    for (int h = 0; h < HB; ++h) {
      const T* y = Y + h * ystride + f;
#pragma omp simd
      for (int64_t k = 0; k < C; ++k) acc[h][k] += x[f + k] * y[k];
    }
  for (int h = 0; h < HB; ++h) {
    T s = 0;
    for (int64_t k = 0; k < C; ++k) s += acc[h][k];
    for (int64_t g = f; g < F; ++g) s += x[g] * Y[h * ystride + g];
    out[h] = s;
  }
}

// out[h * ostride + f] += sum_i A[i * astride + h] * X[i * F + f] for
// h < HB, over the n rows of X.
template <typename T, int HB>
inline void wsum(const T* __restrict X, int64_t n, int64_t F, const T* __restrict A,
                 int64_t astride, T* __restrict out, int64_t ostride) {
  constexpr int64_t C = chunk<T>();
  int64_t f = 0;
  for (; f + C <= F; f += C) {
    T acc[HB][C] = {};
    for (int64_t i = 0; i < n; ++i) {
      const T* xi = X + i * F + f;
      for (int h = 0; h < HB; ++h) {
        const T a = A[i * astride + h];
#pragma omp simd
        for (int64_t k = 0; k < C; ++k) acc[h][k] += a * xi[k];
      }
    }
    for (int h = 0; h < HB; ++h)
      for (int64_t k = 0; k < C; ++k) out[h * ostride + f + k] += acc[h][k];
  }
  for (int64_t g = f; g < F; ++g)
    for (int h = 0; h < HB; ++h) {
      T s = 0;
      for (int64_t i = 0; i < n; ++i) s += A[i * astride + h] * X[i * F + g];
      out[h * ostride + g] += s;
    }
}

// gx = sum_h a[h] P[h * pstride] + d[h] W[h * F] (P may be null), written
// once per chunk of features.
// Rows gx_r = sum_h a_rh P[h * pstride] + d_rh W[h * F] for R consecutive
// nodes r (a, d: [R, H] row-major; P may be null), one chunk of features:
// L > 0 is a full chunk of compile-time length (the R partial sums stay in
// registers, and each chunk of P and W is loaded once for R rows); L == 0
// is the tail, of run-time length len.
template <typename T, int R, int64_t L>
inline void grad_chunk(const T* __restrict a, const T* __restrict d, const T* __restrict P,
                       int64_t pstride, const T* __restrict W, int64_t H, int64_t F,
                       int64_t len, T* __restrict gx) {
  constexpr int64_t C = L > 0 ? L : chunk<T>();
  const int64_t n = L > 0 ? L : len;
  T acc[R][C] = {};
  for (int64_t h = 0; h < H; ++h) {
    const T* w = W + h * F;
    const T* p = P ? P + h * pstride : nullptr;
    for (int r = 0; r < R; ++r) {
      const T dr = d[r * H + h];
      if (p) {
        const T ar = a[r * H + h];
#pragma omp simd
        for (int64_t k = 0; k < n; ++k) acc[r][k] += ar * p[k] + dr * w[k];
      } else {
#pragma omp simd
        for (int64_t k = 0; k < n; ++k) acc[r][k] += dr * w[k];
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int64_t k = 0; k < n; ++k) gx[r * F + k] = acc[r][k];
}

template <typename T, int R>
inline void grad_rows(const T* __restrict a, const T* __restrict d, const T* __restrict P,
                      int64_t pstride, const T* __restrict W, int64_t H, int64_t F,
                      T* __restrict gx) {
  constexpr int64_t C = chunk<T>();
  int64_t f = 0;
  for (; f + C <= F; f += C)
    grad_chunk<T, R, C>(a, d, P ? P + f : nullptr, pstride, W + f, H, F, C, gx + f);
  if (f < F)
    grad_chunk<T, R, 0>(a, d, P ? P + f : nullptr, pstride, W + f, H, F, F - f, gx + f);
}

// grad_rows over n nodes, four at a time.
template <typename T>
inline void grad_nodes(const T* __restrict a, const T* __restrict d, const T* __restrict P,
                       int64_t pstride, const T* __restrict W, int64_t H, int64_t F,
                       int64_t n, T* __restrict gx) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4)
    grad_rows<T, 4>(a + i * H, d + i * H, P, pstride, W, H, F, gx + i * F);
  for (; i < n; ++i) grad_rows<T, 1>(a + i * H, d + i * H, P, pstride, W, H, F, gx + i * F);
}

// Rows of x per tile of the weighted sums, so a tile stays in cache while
// every chunk of its features is summed (large graphs are tiled).
template <typename T>
int64_t tile_rows(int64_t F) {
  return std::max<int64_t>(8, 65536 / (std::max<int64_t>(1, F) * sizeof(T)));
}

// Runs KERNEL<T, hb>(args...) over the heads in blocks of up to four.
#define SAP_HEAD_BLOCKS(H, KERNEL, ...)                 \
  for (int64_t h0 = 0; h0 < (H); h0 += 4) {             \
    switch (std::min<int64_t>(4, (H)-h0)) {             \
      case 1: KERNEL<scalar_t, 1>(__VA_ARGS__); break;  \
      case 2: KERNEL<scalar_t, 2>(__VA_ARGS__); break;  \
      case 3: KERNEL<scalar_t, 3>(__VA_ARGS__); break;  \
      default: KERNEL<scalar_t, 4>(__VA_ARGS__); break; \
    }                                                   \
  }

// Graphs per task: enough rows of x that a task is worth scheduling.
int64_t grain(int64_t num_graphs, int64_t num_nodes, int64_t channels) {
  const int64_t per_graph =
      std::max<int64_t>(1, num_nodes * channels / std::max<int64_t>(1, num_graphs));
  return std::max<int64_t>(1, 32768 / per_graph);
}
enum Residual : int64_t { kNone = 0, kSum = 1, kMean = 2, kMax = 3 };

// out[f] = sum, mean or max over the n rows of X (NaN propagates in max).
template <typename T>
inline void reduce_rows(const T* __restrict X, int64_t n, int64_t F, int64_t mode,
                        T* __restrict out) {
  if (mode == kMax) {
    std::copy(X, X + F, out);
    for (int64_t i = 1; i < n; ++i) {
      const T* xi = X + i * F;
#pragma omp simd
      for (int64_t f = 0; f < F; ++f) {  // Branch-free, so it vectorises.
        const T v = xi[f], o = out[f];
        out[f] = (v > o || v != v) ? v : o;
      }
    }
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    const T* xi = X + i * F;
#pragma omp simd
    for (int64_t f = 0; f < F; ++f) out[f] += xi[f];
  }
  if (mode == kMean)
    for (int64_t f = 0; f < F; ++f) out[f] /= T(n);
}

// gx_i += d res / d x_i * g over the n rows: g (sum), g / n (mean), or g
// shared by the rows equal to the maximum r (max; count: F scratch).
template <typename T>
inline void reduce_rows_grad(const T* __restrict X, int64_t n, int64_t F, int64_t mode,
                             const T* __restrict r, const T* __restrict g,
                             T* __restrict count, T* __restrict gx) {
  if (mode == kMax) {
    std::fill(count, count + F, T(0));
    for (int64_t i = 0; i < n; ++i) {
      const T* xi = X + i * F;
#pragma omp simd
      for (int64_t f = 0; f < F; ++f) count[f] += xi[f] == r[f] ? T(1) : T(0);
    }
    for (int64_t f = 0; f < F; ++f) count[f] = count[f] > 0 ? g[f] / count[f] : T(0);
    for (int64_t i = 0; i < n; ++i) {
      const T* xi = X + i * F;
      T* gi = gx + i * F;
#pragma omp simd
      for (int64_t f = 0; f < F; ++f) gi[f] += xi[f] == r[f] ? count[f] : T(0);
    }
    return;
  }
  const T scale = mode == kMean ? T(1) / T(n) : T(1);
  for (int64_t i = 0; i < n; ++i) {
    T* gi = gx + i * F;
#pragma omp simd
    for (int64_t f = 0; f < F; ++f) gi[f] += g[f] * scale;
  }
}

void check_inputs(const at::Tensor& x, const at::Tensor& w, const at::Tensor& ptr,
                  int64_t residual) {
  TORCH_CHECK(x.device().is_cpu() && w.device().is_cpu() && ptr.device().is_cpu(),
              "sap_pool native kernel: CPU tensors expected");
  TORCH_CHECK(x.dim() == 2 && w.dim() == 2 && x.size(1) == w.size(1),
              "sap_pool native kernel: x [N, F] and w [H, F] expected");
  TORCH_CHECK(x.scalar_type() == w.scalar_type(),
              "sap_pool native kernel: x and w must share a dtype");
  TORCH_CHECK(ptr.dim() == 1 && ptr.scalar_type() == at::kLong && ptr.numel() >= 1,
              "sap_pool native kernel: int64 ptr [B + 1] expected");
  TORCH_CHECK(residual >= kNone && residual <= kMax,
              "sap_pool native kernel: residual mode 0-3 expected");
}
}  // namespace

// Returns (pooled [H, B, F], alpha [N, H], weight_sum [H, B], res [B, F]
// or undefined when residual is 0).
std::vector<at::Tensor> sap_forward(at::Tensor x, at::Tensor w, at::Tensor ptr,
                                    int64_t residual) {
  check_inputs(x, w, ptr, residual);
  x = x.contiguous();
  w = w.contiguous();
  ptr = ptr.contiguous();
  const int64_t N = x.size(0), F = x.size(1), H = w.size(0), B = ptr.numel() - 1;
  auto pooled = at::zeros({H, B, F}, x.options());
  auto alpha = at::empty({N, H}, x.options());
  auto weight_sum = at::zeros({H, B}, x.options());
  at::Tensor res;
  if (residual != kNone) res = at::zeros({B, F}, x.options());
  const int64_t* P = ptr.data_ptr<int64_t>();

  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "sap_forward", [&] {
    scalar_t* R = res.defined() ? res.data_ptr<scalar_t>() : nullptr;
    const scalar_t* X = x.data_ptr<scalar_t>();
    const scalar_t* W = w.data_ptr<scalar_t>();
    scalar_t* A = alpha.data_ptr<scalar_t>();
    scalar_t* OUT = pooled.data_ptr<scalar_t>();
    scalar_t* S = weight_sum.data_ptr<scalar_t>();
    at::parallel_for(0, B, grain(B, N, F), [&](int64_t b0, int64_t b1) {
      std::vector<scalar_t> top(H), total(H);
      const int64_t tile = tile_rows<scalar_t>(F);
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t start = P[b], end = P[b + 1];
        if (start >= end) continue;  // Empty graph: zero rows.
        const int64_t n = end - start;
        scalar_t* Ab = A + start * H;
        const scalar_t* Xb = X + start * F;
        for (int64_t i = 0; i < n; ++i)
          SAP_HEAD_BLOCKS(H, dots, Xb + i * F, W + h0 * F, F, F, Ab + i * H + h0)
        std::fill(top.begin(), top.end(), -std::numeric_limits<scalar_t>::infinity());
        for (int64_t i = 0; i < n; ++i)
          for (int64_t h = 0; h < H; ++h) top[h] = std::max(top[h], Ab[i * H + h]);
        std::fill(total.begin(), total.end(), scalar_t(0));
        for (int64_t i = 0; i < n; ++i)
          for (int64_t h = 0; h < H; ++h) {
            const scalar_t v = std::exp(Ab[i * H + h] - top[h]);
            Ab[i * H + h] = v;
            total[h] += v;
          }
        for (int64_t h = 0; h < H; ++h) S[h * B + b] = 0;
        for (int64_t i = 0; i < n; ++i)
          for (int64_t h = 0; h < H; ++h) {
            const scalar_t a = Ab[i * H + h] / total[h];
            Ab[i * H + h] = a;
            S[h * B + b] += a;
          }
        for (int64_t t = 0; t < n; t += tile)
          SAP_HEAD_BLOCKS(H, wsum, Xb + t * F, std::min(tile, n - t), F, Ab + t * H + h0, H,
                          OUT + (h0 * B + b) * F, B * F)
        if (R) reduce_rows(Xb, n, F, residual, R + b * F);
      }
    });
  });
  return {pooled, alpha, weight_sum, res};
}

// Returns (dx [N, F] or undefined, dw [H, F] or undefined). grad_pooled
// [H, B, F], grad_alpha [N, H], grad_weight_sum [H, B] and grad_res [B, F]
// may be undefined; res is the forward's (read for residual 3, max).
std::vector<at::Tensor> sap_backward(at::Tensor x, at::Tensor w, at::Tensor ptr,
                                     at::Tensor alpha, c10::optional<at::Tensor> grad_pooled,
                                     c10::optional<at::Tensor> grad_alpha,
                                     c10::optional<at::Tensor> grad_weight_sum,
                                     int64_t residual, c10::optional<at::Tensor> res,
                                     c10::optional<at::Tensor> grad_res, bool need_x,
                                     bool need_w) {
  check_inputs(x, w, ptr, residual);
  x = x.contiguous();
  w = w.contiguous();
  ptr = ptr.contiguous();
  alpha = alpha.contiguous();
  const int64_t N = x.size(0), F = x.size(1), H = w.size(0), B = ptr.numel() - 1;
  at::Tensor gp, ga, gs;
  if (grad_pooled.has_value() && grad_pooled->defined()) gp = grad_pooled->contiguous();
  if (grad_alpha.has_value() && grad_alpha->defined()) ga = grad_alpha->contiguous();
  if (grad_weight_sum.has_value() && grad_weight_sum->defined())
    gs = grad_weight_sum->contiguous();
  at::Tensor rs, gr;
  if (residual != kNone && grad_res.has_value() && grad_res->defined()) {
    gr = grad_res->contiguous();
    TORCH_CHECK(gr.sizes() == at::IntArrayRef({B, F}),
                "sap_pool native kernel: grad_res [B, F] expected");
    if (residual == kMax) {
      TORCH_CHECK(res.has_value() && res->defined() && res->sizes() == gr.sizes(),
                  "sap_pool native kernel: res [B, F] expected");
      rs = res->contiguous();
    }
  }
  at::Tensor grad_x, grad_w, partial;
  if (need_x) grad_x = at::empty({N, F}, x.options());
  const int64_t threads = at::get_num_threads();
  if (need_w) partial = at::zeros({threads, H, F}, x.options());
  const int64_t* P = ptr.data_ptr<int64_t>();

  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "sap_backward", [&] {
    const scalar_t* X = x.data_ptr<scalar_t>();
    const scalar_t* W = w.data_ptr<scalar_t>();
    const scalar_t* A = alpha.data_ptr<scalar_t>();
    const scalar_t* GP = gp.defined() ? gp.data_ptr<scalar_t>() : nullptr;
    const scalar_t* GA = ga.defined() ? ga.data_ptr<scalar_t>() : nullptr;
    const scalar_t* GS = gs.defined() ? gs.data_ptr<scalar_t>() : nullptr;
    const scalar_t* GR = gr.defined() ? gr.data_ptr<scalar_t>() : nullptr;
    const scalar_t* RS = rs.defined() ? rs.data_ptr<scalar_t>() : nullptr;
    scalar_t* GX = need_x ? grad_x.data_ptr<scalar_t>() : nullptr;
    scalar_t* PART = need_w ? partial.data_ptr<scalar_t>() : nullptr;
    at::parallel_for(0, B, grain(B, N, F), [&](int64_t b0, int64_t b1) {
      const int64_t tid = std::min<int64_t>(at::get_thread_num(), threads - 1);
      scalar_t* GW = need_w ? PART + tid * H * F : nullptr;
      std::vector<scalar_t> ds, mean(H), count(GR && GX ? F : 0);
      const int64_t tile = tile_rows<scalar_t>(F);
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t start = P[b], end = P[b + 1];
        if (start >= end) continue;
        const int64_t n = end - start;
        const scalar_t* Ab = A + start * H;
        const scalar_t* Xb = X + start * F;
        ds.resize(n * H);
        // g_ih = <x_i, dP[h, b]> + dS[h, b] + dalpha_ih, and the per-head
        // sums of alpha_ih g_ih.
        if (GP) {
          for (int64_t i = 0; i < n; ++i)
            SAP_HEAD_BLOCKS(H, dots, Xb + i * F, GP + (h0 * B + b) * F, B * F, F,
                            ds.data() + i * H + h0)
        } else {
          std::fill(ds.begin(), ds.end(), scalar_t(0));
        }
        std::fill(mean.begin(), mean.end(), scalar_t(0));
        for (int64_t i = 0; i < n; ++i)
          for (int64_t h = 0; h < H; ++h) {
            scalar_t& g = ds[i * H + h];
            if (GS) g += GS[h * B + b];
            if (GA) g += GA[(start + i) * H + h];
            mean[h] += Ab[i * H + h] * g;
          }
        // Softmax backward: ds_ih = alpha_ih (g_ih - mean_h).
        for (int64_t i = 0; i < n; ++i)
          for (int64_t h = 0; h < H; ++h)
            ds[i * H + h] = Ab[i * H + h] * (ds[i * H + h] - mean[h]);
        if (GX)
          grad_nodes(Ab, ds.data(), GP ? GP + b * F : nullptr, B * F, W, H, F, n,
                     GX + start * F);
        if (GX && GR)
          reduce_rows_grad(Xb, n, F, residual, RS ? RS + b * F : nullptr, GR + b * F,
                           count.data(), GX + start * F);
        if (GW)
          for (int64_t t = 0; t < n; t += tile)
            SAP_HEAD_BLOCKS(H, wsum, Xb + t * F, std::min(tile, n - t), F,
                            ds.data() + t * H + h0, H, GW + h0 * F, F)
      }
    });
  });
  if (need_w) grad_w = partial.sum(0);
  return {grad_x, grad_w};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &sap_forward, "SAP pooling forward (CPU, sorted batch)");
  m.def("backward", &sap_backward, "SAP pooling backward (CPU, sorted batch)");
}
