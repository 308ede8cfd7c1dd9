"""The SAP core behind :class:`sap_graph.SAPAggregation`, one module per
role:

* :mod:`~sap_graph.ops.dispatch`: lays a batch out, decides its path and
  hands it to that path's ``run``
  (:func:`~sap_graph.ops.dispatch.choose_path` names the path);
* :mod:`~sap_graph.ops.layout`: a batch as the paths read it
  (:class:`~sap_graph.ops.layout.Layout`, its
  :class:`~sap_graph.ops.layout.Segments`) and what they return
  (:class:`~sap_graph.ops.layout.Core`);
* :mod:`~sap_graph.ops.env`: the environment switches
  (``SAP_GRAPH_NATIVE``, ``SAP_GRAPH_TRITON``), read in one place;
* :mod:`~sap_graph.ops.native`: fused C++ kernels (``csrc/``), built on
  first use (path ``'native'``);
* :mod:`~sap_graph.ops.triton`: fused Triton kernels for CUDA tensors,
  imported only for a CUDA batch that takes them (path ``'triton'``: by
  default on compute capability 9.0, elsewhere with ``SAP_GRAPH_TRITON=1``);
* :mod:`~sap_graph.ops.torch`: pure PyTorch with a hand-written backward,
  any device (path ``'torch'``, the reference for the others);
* :mod:`~sap_graph.ops.padded`: padded ``[B, L, F]`` batches (their
  layout, and path ``'dense'`` for masks that are not one run per row);
* :mod:`~sap_graph.ops.compiled`: plain differentiable ops under
  :func:`torch.compile` (path ``'compiled'``);
* :mod:`~sap_graph.ops.residual`: the residual poolings outside the fused
  kernels.
"""
