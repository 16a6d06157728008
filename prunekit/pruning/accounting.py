"""Sparsity and MAC accounting of a (pruned) model: the numbers of every results-CSV row.

``measure(model, example_inputs, dense=None)``:

* ``params`` / ``macs``: torch-pruning's ``count_ops_and_params`` on the model as it is (per
  example; its MACs count conv, linear, BN, ReLU and pooling modules). Weight-masked layers are
  counted at their full (dense) cost: unstructured zeros save no MACs on dense hardware.
* ``weight_sparsity``: fraction of zero weights among the *prunable layers* -- every ``nn.Conv*``
  and ``nn.Linear`` except the first ``nn.Conv2d`` (stem) and the last ``nn.Linear`` (classifier)
  (:func:`prunekit.pruning.masking.prunable_layers`); biases and norm layers are not counted.
  The denominator is the *dense* model's prunable weight count (``dense`` if given, else the
  model's own), so channels removed physically count as pruned weights, and zeros in masked
  weights (``original * mask``) count as pruned.
* ``macs_reduction = 1 - macs / dense_macs`` (0 when ``dense`` is not given).
* ``nonzero_params``: ``params`` minus the zeros of the prunable layers' (effective) weights,
  i.e. non-zero prunable weights + every other parameter (biases, norm layers, stem,
  classifier) counted in full; for a compacted channel model that is its parameter count.
  ``params_reduction = 1 - nonzero_params / dense_params`` (the CSV column): masked and
  compacted models compare on one parameter axis.

Call it on a finalized model (no pruner hooks attached: they would be deep-copied).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch_pruning as tp
from torch import Tensor, nn
from torch.nn.utils import parametrize

from prunekit.models import build_from_spec
from prunekit.pruning.masking import prunable_layers

__all__ = ["Measurement", "measure", "count_macs_params", "measure_loaded", "measured_columns"]


@dataclass(frozen=True)
class Measurement:
    params: int                 #: parameters of the model (masked weights count in full)
    macs: int                   #: MACs per example (torch-pruning's counter)
    weight_sparsity: float      #: zero fraction of the prunable layers' dense weight count
    macs_reduction: float       #: 1 - macs / dense_macs
    prunable_params: int        #: dense prunable weight count (the sparsity denominator)
    nonzero_prunable: int       #: nonzero weights left in the prunable layers
    dense_params: int
    dense_macs: int
    nonzero_params: int = 0     #: params - zeros of the prunable layers' weights
    params_reduction: float = 0.0  #: 1 - nonzero_params / dense_params

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def count_macs_params(model: nn.Module, example_inputs: Tensor) -> tuple[int, int]:
    """(MACs per example, params) with torch-pruning's counter. Its counter matches module types
    exactly, so parametrized classes (``ParametrizedConv2d`` ...) are mapped to their base class'
    counter for the call (the global it reads is reset by torch-pruning afterwards)."""
    from torch_pruning.utils import op_counter

    for mod in model.modules():
        if parametrize.is_parametrized(mod):
            base = type(mod).__bases__[0]
            if base in op_counter.MODULES_MAPPING:
                op_counter.CUSTOM_MODULES_MAPPING[type(mod)] = op_counter.MODULES_MAPPING[base]
    macs, params = tp.utils.count_ops_and_params(model, example_inputs[:1])
    return int(macs), int(params)


def _prunable_counts(model: nn.Module) -> tuple[int, int]:
    total = nonzero = 0
    with torch.no_grad():
        for mod in prunable_layers(model).values():
            w = mod.weight  # effective weight (original * mask when parametrized)
            total += w.numel()
            nonzero += int(torch.count_nonzero(w))
    return total, nonzero


def measure(model: nn.Module, example_inputs: Tensor, dense: nn.Module | None = None) -> Measurement:
    """Params, MACs, weight sparsity, MACs and non-zero parameter reductions of ``model`` (see
    the module docstring)."""
    macs, params = count_macs_params(model, example_inputs)
    total, nonzero = _prunable_counts(model)
    if dense is not None:
        dense_macs, dense_params = count_macs_params(dense, example_inputs)
        dense_total, _ = _prunable_counts(dense)
    else:
        dense_macs, dense_params, dense_total = macs, params, total
    sparsity = 1.0 - nonzero / dense_total if dense_total else 0.0
    reduction = 1.0 - macs / dense_macs if dense_macs else 0.0
    nonzero_params = params - (total - nonzero)
    return Measurement(params=params, macs=macs, weight_sparsity=max(0.0, sparsity),
                       macs_reduction=reduction, prunable_params=dense_total,
                       nonzero_prunable=nonzero, dense_params=dense_params, dense_macs=dense_macs,
                       nonzero_params=nonzero_params,
                       params_reduction=1.0 - nonzero_params / dense_params if dense_params
                       else 0.0)


def measure_loaded(model: nn.Module, input_shape: tuple[int, ...]) -> Measurement:
    """:func:`measure` of a model loaded from a file, against the dense model its builder spec
    rebuilds (``prunekit eval --csv``, ``bench --reevaluate``); on the model's device."""
    dev = next((p.device for p in model.parameters()), torch.device("cpu"))
    dense = build_from_spec(model.prunekit_spec).to(dev).eval()  # type: ignore[arg-type]
    return measure(model, torch.zeros(1, *input_shape, device=dev), dense=dense)


def measured_columns(meas: Measurement) -> dict[str, Any]:
    """The results-CSV columns of a :class:`Measurement` (docs/results-schema.md)."""
    return {"params": meas.params, "macs": meas.macs, "nonzero_params": meas.nonzero_params,
            "weight_sparsity": meas.weight_sparsity, "macs_reduction": meas.macs_reduction,
            "params_reduction": meas.params_reduction}
