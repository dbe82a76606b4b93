"""Pictures of a trained LCNet: ``python -m lcnet_fast.visualize graph|attention|curves ...``.

* ``graph``: the learned label-correlation graph (paper Figs. 5/6) as PNG + CSV adjacency
  (:func:`plot_label_graph`);
* ``attention``: MHA2 attention of chosen labels over an image, per LLCD layer, with the
  Crop-Forwarding grid (paper Figs. 7-10; :func:`plot_attention`, :func:`attention_maps`);
* ``curves``: training loss, validation mAP and learning rate per epoch from a run's log.csv
  (:func:`plot_curves`, :func:`read_log`).

matplotlib draws on its Agg canvas (files only, no display, no pyplot state).
"""

from lcnet_fast.visualize._common import VisualizeError
from lcnet_fast.visualize.attention import attention_maps, plot_attention, tokens_to_maps
from lcnet_fast.visualize.curves import plot_curves, read_log
from lcnet_fast.visualize.graph import (
    correlation_matrix,
    edge_strengths,
    plot_label_graph,
    read_matrix_csv,
)

__all__ = ["VisualizeError", "attention_maps", "correlation_matrix", "edge_strengths",
           "plot_attention", "plot_curves", "plot_label_graph", "read_log", "read_matrix_csv",
           "tokens_to_maps"]
