"""LightGBM's trees at compiled speed: the model text read into flat arrays (``dump``), a C++
extension (``_kernel.cpp``, built by ``pip install`` through setup.py) for predictions and exact
path-dependent TreeSHAP, and the wrapper that calls it or falls back to LightGBM (``forest``).

``features.model.CollectibilityModel`` predicts and explains through ``forest.CompiledBooster``;
the tests hold both equal to LightGBM's own ``predict`` and ``pred_contrib``.
"""
