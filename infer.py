"""Local resolution of a cryo-EM map, with a summary, a picture and a ChimeraX script.

    python infer.py                                    # the demo: bundled model on the bundled map
    python infer.py method=deepres input.map=M.mrc [input.mask=K.mrc] output.dir=OUT
    python infer.py method=monores input.half1=H1.mrc input.half2=H2.mrc input.mask=K.mrc output.dir=OUT
    python infer.py method=all input.half1=H1.mrc input.half2=H2.mrc output.dir=OUT   # + compare.json/png
    python infer.py method=deepres input.map=SHARP.mrc input.reference_map=ORIG.mrc   # sharpening check
    python infer.py method=modelfsc input.map=M.mrc input.model=MODEL.pdb output.dir=OUT   # vs a fitted model

Method parameters go under ``method.`` (``method.box=20``); ``device=auto|cpu|cuda``;
``input.voxel_size=`` overrides a missing or wrong header value; ``debug=true`` shows tracebacks.
For each method NAME, ``output.dir`` receives NAME.mrc (on the input map's grid, 0 = not estimated),
NAME.json, NAME.png and NAME.cxc (see configs/infer.yaml and locres/pipeline/).
"""

from __future__ import annotations

from pathlib import Path

from locres.cli import run_cli

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def main(cfg) -> None:
    """Hydra task: hand the composed config to the library and print its summary table."""
    from locres.pipeline import infer_from_config

    print(infer_from_config(cfg, config_dir=CONFIG_DIR)["table"])


if __name__ == "__main__":
    run_cli(main, config_name="infer", config_dir=CONFIG_DIR, doc=__doc__)
