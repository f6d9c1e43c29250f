#!/bin/bash
# One device call: install, GPU dot tests, the GEMM benchmark, SASS of the 4096^3 kernel.
python3 -m pip install -q --no-index --no-deps _carry/lark-*.whl
python3 -m pip install -q --no-deps --no-build-isolation -e .
python3 -m pytest -m gpu tests/gpu/test_dot_gpu.py -q 2>&1 | tail -15
python3 benchmarks/gemm.py 2>&1 | tee $OUT/gemm.txt | tail -12
cp benchmarks/results/gemm-*.json $OUT/ 2>/dev/null
python3 - <<'PY' > $OUT/sass_stats.txt 2>&1
import subprocess, sys, tempfile, torch
sys.path.insert(0, "benchmarks")
import gemm
from tilec.backends.nvidia.compiler import compile_kernel
for cfg in gemm.TILEC_CONFIGS[:3]:
    bm, bn, bk, w, s = cfg
    m = gemm.matmul.compile(f"A: tensor<?x?xf16>, B: tensor<?x?xf16>, C: tensor<?x?xf16>, "
                            f"BM={bm}, BN={bn}, BK={bk}, num_stages={s}")
    k = compile_kernel(m, "matmul", "sm_90a", w)
    f = tempfile.NamedTemporaryFile(suffix=".cubin", delete=False); f.write(k.cubin); f.close()
    sass = subprocess.run(["cuobjdump", "-sass", f.name], capture_output=True, text=True).stdout
    print(cfg, {op: sass.count(op) for op in ("HMMA", "LDSM", "LDGSTS", "BAR.SYNC", "LDL", "STL", "LDG", "STS")})
PY
cat $OUT/sass_stats.txt
