"""The paper's experiments at a scale that runs anywhere: ``python -m lcnet_fast.experiments
ablation|cost [options]``.

* ``ablation`` (``ablation.py``): Tables 4-8 -- decoder depth, no label graph, mirrored inputs,
  Crop-Forwarding level -- as ordinary training runs of ``lcnet_fast.train`` (any dataset it
  accepts), several seeds, mean ± std, a markdown table, a JSON of every run and a PNG plot.
* ``cost`` (``cost.py``): Tables 9/10 -- peak memory, training time per batch and single-image
  inference time over LLCD depth x crop level, fast model and reference interleaved in one process.

Row definitions live in ``rows.py``; plots in ``plots.py``.
"""
