"""Compiles the Triton kernels of :mod:`sap_graph.ops.triton` for a GPU
target (sm_90) without a GPU: Triton's front end, its GPU passes and
``ptxas`` all run on the CPU. This catches what the interpreter accepts but
the compiler rejects (types of names bound in both branches of an ``if``,
loop-carried types, shapes of :func:`triton.language.dot`).

Usage (``TRITON_DUMP_PTXAS_LOG=1`` prints registers and spills)::

    python tests/triton_compile_check.py [fp32|bf16 ...]

Run by :func:`tests.ops.test_triton.test_kernels_compile_for_sm90`.
"""
import os
import sys
from typing import Dict

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from sap_graph.ops import triton as _triton


def signature(fn, pointers: Dict[str, str], constants: Dict) -> Dict:
    return {name: 'constexpr' if name in constants else
            pointers.get(name, 'i32') for name in fn.arg_names}


def compile_all(dtype: str = 'fp32') -> None:
    target = GPUTarget('cuda', 90, 32)
    cfg = _triton.launch_config(100_000, 4_000, 64, 4,
                                _triton.torch.device('cpu'))
    blocks = dict(BN=cfg['BN'], BF=cfg['BF'], BH=cfg['BH'], BC=cfg['BC'],
                  PREC=_triton.DOT_PRECISION)
    f32, xt = '*fp32', f'*{dtype}'
    forward = dict(X=xt, W=xt, INDEX='*i64', PTR='*i64', E32=f32, A=xt,
                   POOL=f32, WSUM=f32, PM=f32, PS=f32, PACC=f32)
    backward = dict(X=xt, W=xt, INDEX='*i64', PTR='*i64', A32=f32, GP=xt,
                    GA=xt, GS=xt, GX=xt, DWP=f32, PMEAN=f32)
    flags = dict(HAS_GP=True, HAS_GA=True, HAS_GS=True, NEED_X=True,
                 NEED_W=True)
    jobs = [(_triton._sap_fwd_main, forward, dict(WRITE_A=dtype != 'fp32')),
            (_triton._sap_fwd_long, forward, dict(WRITE_A=dtype != 'fp32')),
            (_triton._sap_bwd_main, backward, flags),
            (_triton._sap_bwd_long, backward, flags)]
    for fn, pointers, extra in jobs:
        consts = {k: v for k, v in {**blocks, **extra}.items()
                  if k in fn.arg_names}
        triton.compile(ASTSource(fn, signature(fn, pointers, consts),
                                 consts),
                       target=target,
                       options=dict(num_warps=cfg['num_warps']))
        print(f'{fn.__name__} {dtype}: compiled for sm_90', flush=True)


if __name__ == '__main__':
    assert os.environ.get('TRITON_INTERPRET') != '1', 'unset TRITON_INTERPRET'
    for dt in sys.argv[1:] or ['fp32']:
        compile_all(dt)
