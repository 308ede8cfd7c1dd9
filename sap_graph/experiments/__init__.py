r"""The experiment harness of :obj:`sap_graph`: datasets, models and
readouts, the training protocols, explanations and the :obj:`sap-graph`
command line. It needs the :obj:`train` extra
(:obj:`pip install 'sap-graph[train]'`); the layer itself
(:mod:`sap_graph`) needs only PyTorch and PyG and never imports this
package.
"""
