"""A quantized linear layer: quantize a float weight matrix to 4-bit (with zero points), 3-bit
and float4_e2m1, group size 128, and run y = x @ W.T with `tilec.lib.quant_gemm` on the
packed weights. Checks the kernel against numpy on the dequantized weights (tight), and
reports the quantization error against the float layer (loose: that is what 3 or 4 bits
cost). On the GPU through torch when there is one, else on the CPU interpreter."""
import numpy as np

import tilec as tc
from tilec.lib.quant_gemm import dequantize, quant_gemm, quantize

@tc.kernel(signature="X: tensor<?xf16>, W: tensor<?x?xi32>, S: tensor<?x?xf16>, "
                     "Y: tensor<?xf32>, BN=32, BK=128, WB=12, G=128, WDT=i3")
def quant_linear(X: tc.Tensor, W: tc.Tensor, S: tc.Tensor, Y: tc.Tensor, BN: tc.constexpr,
                 BK: tc.constexpr, WB: tc.constexpr, G: tc.constexpr, WDT: tc.constexpr):
    """y = W x for one activation row, spelled out: each step reads a BN x WB tile of the
    packed weights' 32-bit words, views it as BN x BK weights of dtype WDT in registers,
    scales them per group and reduces against x (quant_gemm does this on tensor cores)."""
    pn = tc.program_id(0)
    acc = tc.zeros((BN,), tc.float32)
    for k in range(tc.cdiv(X.shape[0], BK)):
        q = tc.view(tc.load(W, (pn, k), (BN, WB)), WDT).to(tc.float16)
        w = q * tc.load(S, offsets=(pn * BN, (k * BK) // G), shape=(BN, 1))
        x = tc.expand_dims(tc.load(X, (k,), (BK,)), 0)
        acc += tc.sum(w.to(tc.float32) * x.to(tc.float32), axis=1)
    tc.store(Y, (pn,), acc)


# Relative error of the quantized layer's output against the float one, per format: the
# expected level for Gaussian weights at group size 128, with margin.
BOUNDS = {"u4": 0.15, "i3": 0.35, "f4e2m1": 0.25}


def main() -> None:
    rng = np.random.default_rng(0)
    gpu = tc.gpu_available()
    m, n, k = (16, 4096, 4096) if gpu else (4, 64, 256)
    # A "real" weight: smooth low-rank structure plus noise, as trained layers have.
    w = (rng.standard_normal((n, 8)) @ rng.standard_normal((8, k)) / 8
         + 0.5 * rng.standard_normal((n, k))) / np.sqrt(k)
    x = rng.standard_normal((m, k)).astype(np.float16)
    exact = x.astype(np.float64) @ w.T
    lines = []
    for dtype in (tc.uint4, tc.int3, tc.float4_e2m1):
        packed, scales, zeros = quantize(w, dtype, group_size=128)
        ref = x.astype(np.float64) @ dequantize(packed, scales, zeros, 128).T
        if gpu:
            import torch
            dev = lambda a: None if a is None else torch.from_numpy(a).cuda()  # noqa: E731
            y = quant_gemm(dev(x), tc.to_device(packed), dev(scales), dev(zeros), 128)
            y = y.cpu().numpy()
        else:
            y = quant_gemm(x, packed, scales, zeros, 128)
        kernel_err = np.abs(y - ref).max() / np.abs(ref).max()
        quant_err = np.linalg.norm(y - exact) / np.linalg.norm(exact)
        assert kernel_err < 2e-3, f"{dtype}: kernel differs from numpy by {kernel_err:.2e}"
        assert quant_err < BOUNDS[str(dtype)], f"{dtype}: quantization error {quant_err:.3f}"
        nbytes = packed.data.nbytes  # the host copy: numpy either way
        lines.append(f"  {str(dtype):>7}: {nbytes / 2**20:6.2f} MiB packed "
                     f"({n * k * 2 / nbytes:.1f}x smaller than f16), kernel vs numpy "
                     f"{kernel_err:.1e}, quantization error {quant_err:.3f}")
    # The spelled-out kernel on the 3-bit weights, one row, against numpy.
    packed, scales, _ = quantize(w, tc.int3, group_size=128)
    words = np.ascontiguousarray(packed.data).view(np.int32)  # rows of 32-bit words
    y = np.full(n, np.nan, np.float32)
    args = [x[0], words, scales, y]
    if gpu:
        import torch
        args = [torch.from_numpy(np.ascontiguousarray(v)).cuda() for v in args]
    quant_linear[(tc.cdiv(n, 32),)](*args, BN=32, BK=128, WB=12, G=128, WDT=tc.int3)
    y = args[3].cpu().numpy() if gpu else y
    ref = x[0].astype(np.float64) @ dequantize(packed, scales, None, 128).T
    assert np.abs(y - ref).max() <= 1e-3 * np.abs(ref).max(), "quant_linear kernel differs"
    print(f"quant_linear: {m}x{k} @ ({n}x{k})^T with packed low-bit weights on "
          f"{tc.device_name()}; kernel matches numpy on the dequantized weights")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
