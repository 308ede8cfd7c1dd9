"""Sequence and multimodal experiments on ogbg-molhiv: SMILES token
sequences pooled by a readout over tokens (:mod:`.smiles`, :mod:`.models`),
fusion of graph, sequence and fingerprint embeddings (:mod:`.fusion`), and
the shared training loop (:mod:`.loop`)."""
