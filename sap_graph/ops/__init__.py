"""Implementations of the SAP core behind :func:`sap_graph.nn.sap_pool`:

* :mod:`~sap_graph.ops.segments`: pure PyTorch (any device; the reference
  for the others) and the dispatch;
* :mod:`~sap_graph.ops.cpu`: fused C++ kernels (``csrc/``), built on first
  use;
* :mod:`~sap_graph.ops.triton`: fused Triton kernels for CUDA tensors,
  imported only when a CUDA batch arrives;
* :mod:`~sap_graph.ops.padded`: padded ``[B, L, F]`` batches with masks.
"""
