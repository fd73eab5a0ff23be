"""Which technology runs a window's recurrence fastest here? One process, 1 thread, side by side.

    .venv/bin/python benchmarks/recurrence_options.py

One LSTM layer, B=16 rows, T=64 columns (no resets), input projection one GEMM over all T x B cells in
every option. Each option's time is the best of 5; ``vs torch.nn`` = torch.nn.LSTM's time on the same full
batch / the option's time (the efficiency of the bench). Options:

- python loop: the torch executor's way, a Python loop of torch ops per column (GEMM on oneDNN);
- TorchScript: the same loop compiled by ``torch.jit.script`` (no compiler needed, no Python per column);
- C++ extension: ebatch's compiled backend (``ebatch.runtime.compiled``), one call for the whole window.

Then the recurrent GEMM alone (16 x H times H x 4H) in the BLAS libraries torch ships: MKL ``sgemm``
(``torch.addmm``), MKL packed (``_mkl_linear``), oneDNN on a reordered weight (``_linear_pointwise``).
"""

from __future__ import annotations

import time

import torch

torch.set_num_threads(1)
B, T = 16, 64


def best(fn, repeats: int = 5) -> float:
    fn()
    out = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out = min(out, time.perf_counter() - start)
    return out


@torch.jit.script
def script_loop(gates: torch.Tensor, w_dnn: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor, steps: int,
                rows: int) -> torch.Tensor:
    hid = h0.shape[1]
    h, c = h0, c0
    outs = []
    for j in range(steps):
        z = torch.ops.mkldnn._linear_pointwise(h, gates[j * rows:(j + 1) * rows], w_dnn, None, "add")
        sig = z[:, : 3 * hid].sigmoid()
        c = sig[:, hid: 2 * hid] * c + sig[:, :hid] * z[:, 3 * hid:].tanh()
        h = sig[:, 2 * hid:] * c.tanh()
        outs.append(h)
    return torch.cat(outs)


def python_loop(gates, w_dnn, h0, c0):
    hid = h0.shape[1]
    h, c = h0, c0
    out = torch.empty(T * B, hid)
    for j in range(T):
        z = torch.ops.mkldnn._linear_pointwise(h, w_dnn, None, "none", [], "")
        z += gates[j * B:(j + 1) * B]
        z[:, : 3 * hid].sigmoid_()
        z[:, 3 * hid:].tanh_()
        c = torch.addcmul(z[:, hid: 2 * hid] * c, z[:, :hid], z[:, 3 * hid:])
        h = out[j * B:(j + 1) * B]
        torch.mul(z[:, 2 * hid: 3 * hid], c.tanh(), out=h)
    return out


def measure(ext, hid: int, inp: int) -> tuple[str, str]:
    """(row of the loop table, row of the GEMM table) for one layer size."""
    g = 4 * hid
    module = torch.nn.LSTM(inp, hid).eval()
    w_ih, w_hh = module.weight_ih_l0.detach(), module.weight_hh_l0.detach()
    w_hh_ifog = torch.cat([w_hh[: 2 * hid], w_hh[3 * hid:], w_hh[2 * hid: 3 * hid]]).contiguous()
    w_ih_ifog = torch.cat([w_ih[: 2 * hid], w_ih[3 * hid:], w_ih[2 * hid: 3 * hid]]).contiguous()
    dnn_ih = torch.ops.mkldnn._reorder_linear_weight(w_ih_ifog, B)
    dnn_hh = torch.ops.mkldnn._reorder_linear_weight(w_hh_ifog, B)
    bias = torch.zeros(g)
    x = torch.randn(T, B, inp)
    flat = x.view(T * B, inp)
    h0 = torch.zeros(B, hid)
    off = torch.arange(T) * B
    count = torch.full((T,), B)
    slices = torch.cat([torch.tensor([-1]), torch.arange(T - 1) * B])
    pred = torch.full((T * B,), -1, dtype=torch.int64)
    pred[B:] = torch.arange((T - 1) * B)
    last = torch.arange((T - 1) * B, T * B)
    empty = torch.empty(0)

    def project():
        return torch.ops.mkldnn._linear_pointwise(flat, dnn_ih, bias, "none", [], "")

    with torch.inference_mode():
        ref = best(lambda: module(x))
        times = [
            best(lambda: python_loop(project(), dnn_hh, h0, h0)),
            best(lambda: script_loop(project(), dnn_hh, h0, h0, T, B)),
            best(lambda: ext.recur(project(), dnn_hh, w_hh_ifog, torch.zeros(hid), empty, empty, off, count,
                                   slices, pred, last, True)),
        ]
        row = f"| {hid}, {inp} | {ref * 1e3:.1f} | " + " | ".join(f"{ref / t:.2f}" for t in times) + " |"
        a = torch.randn(B, hid)
        packed = torch.ops.mkl._mkl_reorder_linear_weight(w_hh_ifog, B)
        flops = 2 * B * hid * g
        gemm = [best(lambda: [torch.addmm(bias, a, w_hh_ifog.t()) for _ in range(20)]) / 20,
                best(lambda: [torch.ops.mkl._mkl_linear(a, packed, w_hh_ifog, bias, B) for _ in range(20)]) / 20,
                best(lambda: [torch.ops.mkldnn._linear_pointwise(a, dnn_hh, None, "none", [], "")
                              for _ in range(20)]) / 20]
        return row, f"| {B} x {hid} x {g} | " + " | ".join(f"{flops / t / 1e9:.0f}" for t in gemm) + " |"


def main() -> None:
    from ebatch.runtime.compiled import load_extension

    ext = load_extension()
    print(f"torch {torch.__version__}, 1 thread, B={B}, T={T}\n")
    print("| H, input | torch.nn.LSTM ms | python loop | TorchScript | C++ extension |")
    print("|---|---:|---:|---:|---:|")
    gemm_rows = []
    for hid, inp in ((512, 512), (320, 120), (320, 640)):
        row, gemm_row = measure(ext, hid, inp)
        print(row)
        gemm_rows.append(gemm_row)
    print("\n| recurrent GEMM (M x K x N) | MKL sgemm GFLOP/s | MKL packed | oneDNN reordered |")
    print("|---|---:|---:|---:|")
    print("\n".join(gemm_rows))


if __name__ == "__main__":
    main()
