"""The inference pipeline, the one place that joins ``io``, ``methods`` and ``report``.

load -> validate -> run -> write, one submodule per stage:

- :mod:`~locres.pipeline.inputs`: :func:`load_inputs` reads the map and/or half maps and the mask,
  refuses bad inputs with a one-line :class:`~locres.errors.LocresError` and returns
  :class:`LoadedInputs` (the arrays the methods receive, the grid outputs are written on);
- :mod:`~locres.pipeline.execute`: :func:`run_method` imports a method, checks that it takes these
  inputs and parameters, loads the network it declares it needs, runs it and measures seconds and
  memory (:class:`Measured`);
- :mod:`~locres.pipeline.outputs`: :class:`OutputStage` (nothing partial on failure) and
  :func:`write_method_outputs` (``NAME.mrc``/``.json``/``.png``/``.cxc``);
- :mod:`~locres.pipeline.infer`: :func:`infer_from_config` (the composed Hydra config of ``infer.py``)
  and :func:`run_infer` (plain arguments: one method, ``method=all`` or the sharpening check; the demo).

The library logs and returns; ``run_infer`` returns the summary table as text and ``infer.py`` prints it.
"""

from locres.pipeline.execute import Measured, measure, run_method
from locres.pipeline.infer import infer_from_config, run_infer
from locres.pipeline.inputs import LoadedInputs, load_inputs, load_mask
from locres.pipeline.outputs import Options, OutputStage, RunRecord, write_method_outputs

__all__ = [
    "LoadedInputs", "Measured", "Options", "OutputStage", "RunRecord", "infer_from_config", "load_inputs",
    "load_mask", "measure", "run_infer", "run_method", "write_method_outputs",
]
