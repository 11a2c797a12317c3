"""Entry-point wrapper shared by ``infer.py``, ``train.py``, ``bench.py`` and ``data_prep/*.py``.

:func:`run_cli` composes the Hydra config from the command line, configures logging, calls the task
and turns every expected failure into **one line** ``error: ...`` on stderr with exit status 1 (130
when interrupted). A traceback is shown only with ``debug=true`` (or the
environment variable ``LOCRES_DEBUG=1``).

Hydra is kept at the edge: the config is composed first with Hydra's compose API so that a bad override
(``method=nosuch``, ``input.mapp=x``) gives a one-line error instead of Hydra's multi-line report, and
then the task runs under ``hydra.main`` so Hydra's own flags (``--help``, ``--cfg job``, ``-m``) keep
working. Whether Hydra changes directory or writes ``outputs/`` folders is decided by each primary
config's ``hydra:`` node (``infer.yaml`` sets ``run.dir: .``, ``output_subdir: null``, ``job.chdir:
false``).
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from locres.errors import LocresError

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"

_HANDLER: logging.Handler | None = None
LOG_FORMAT = "%(asctime)s %(levelname).1s %(name)s: %(message)s"


def _expected_errors() -> tuple[type[BaseException], ...]:
    """Exception types that are the user's (or the machine's) problem, reported in one line."""
    errors: list[type[BaseException]] = [
        LocresError,
        FileNotFoundError,
        PermissionError,
        IsADirectoryError,
        MemoryError,
    ]
    try:
        from omegaconf.errors import ConfigKeyError, MissingMandatoryValue, ValidationError

        errors += [MissingMandatoryValue, ConfigKeyError, ValidationError]
    except ImportError:  # pragma: no cover
        pass
    try:
        import torch

        errors.append(torch.cuda.OutOfMemoryError)
    except (ImportError, AttributeError):  # pragma: no cover
        pass
    return tuple(errors)


def one_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (the type name when it has none)."""
    text = str(exc).strip()
    if isinstance(exc, KeyError) and text.startswith("'") and text.endswith("'"):
        text = text[1:-1]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    return lines[0] if len(lines) == 1 else f"{lines[0]} ({' '.join(lines[1:3])})"


def error_message(exc: BaseException) -> str:
    """What follows ``error:`` for an exception."""
    if isinstance(exc, LocresError):
        return one_line(exc)
    name = type(exc).__name__
    if name == "OutOfMemoryError":
        return f"the GPU ran out of memory ({one_line(exc)}); use device=cpu or a smaller method.chunk_size"
    if isinstance(exc, MemoryError):
        return "out of memory; use a smaller map or a smaller method.chunk_size"
    if isinstance(exc, OSError) and getattr(exc, "filename", None):
        return f"{exc.strerror or name}: {exc.filename}"
    if isinstance(exc, _expected_errors()):
        return f"{one_line(exc)}"
    return f"unexpected {name}: {one_line(exc)} (run again with debug=true for the traceback)"


def setup_logging(debug: bool = False, level: int = logging.INFO) -> None:
    """Log to stderr with a short format (Hydra's own logging is switched off in our configs)."""
    global _HANDLER
    root = logging.getLogger()
    if _HANDLER is not None:  # called again in one process (tests): replace only our own handler
        root.removeHandler(_HANDLER)
    handler = _HANDLER = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT, datefmt="%H:%M:%S"))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else level)
    for noisy in ("matplotlib", "PIL", "fsspec", "urllib3", "numba"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def fail(message: str, exc: BaseException | None = None, debug: bool = False, code: int = 1) -> None:
    """Print ``error: message`` on stderr (with the traceback first when ``debug``) and exit."""
    if debug and exc is not None:
        traceback.print_exception(exc, file=sys.stderr)
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    raise SystemExit(code)


def _debug_requested(argv: Sequence[str]) -> bool:
    if os.environ.get("LOCRES_DEBUG", "").lower() in ("1", "true", "yes"):
        return True
    return any(a.lower() in ("debug=true", "debug=1", "+debug=true", "debug=yes") for a in argv)


def _composition_error(exc: BaseException, argv: Sequence[str], config_dir: Path) -> str:
    """Turn Hydra's multi-line composition report into one line, naming the bad group option."""
    text = str(exc)
    cause = exc.__cause__
    if "Could not find" in text or "Could not load" in text:
        # e.g. "In 'infer': Could not find 'method/nosuch'" -> name the group and its options
        for arg in argv:
            key, _, value = arg.partition("=")
            key = key.lstrip("+~")
            group_dir = config_dir / key
            if value and group_dir.is_dir() and not (group_dir / f"{value}.yaml").exists():
                options = sorted(p.stem for p in group_dir.glob("*.yaml"))
                what = "method" if key == "method" else f"{key} option"
                return f"unknown {what} '{value}': choose one of {', '.join(options)}"
    msg = one_line(exc)
    if cause is not None and str(cause).strip():
        msg = f"{msg}: {one_line(cause)}"
    return f"bad command line: {msg}"


def _preflight(config_name: str, config_dir: Path, overrides: list[str]) -> Any:
    """Compose once with the compose API so that bad overrides fail in one line."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base=None):
            return compose(config_name=config_name, overrides=overrides)
    finally:
        GlobalHydra.instance().clear()


def run_cli(
    task: Callable[[Any], Any],
    config_name: str,
    config_dir: str | os.PathLike | None = None,
    argv: Sequence[str] | None = None,
) -> Any:
    """Run ``task(cfg)`` as a command-line program with one-line errors.

    Parameters
    ----------
    task : function of the composed DictConfig; its return value is returned (when it returns).
    config_name : primary config in ``config_dir`` (e.g. ``"infer"``).
    config_dir : folder of Hydra configs (default: the repository's ``configs/``).
    argv : command-line arguments (default ``sys.argv[1:]``).

    Raises
    ------
    SystemExit
        1 after printing ``error: ...`` (bad input or a bad command line), 130 on Ctrl-C.
    """
    import hydra

    config_dir = Path(config_dir or CONFIG_DIR).resolve()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = _debug_requested(argv)
    flags = [a for a in argv if a.startswith("-")]
    if not flags:  # plain overrides: check them before Hydra prints its own multi-line report
        try:
            _preflight(config_name, config_dir, argv)
        except Exception as exc:  # hydra raises ConfigCompositionException, OverrideParseException, ...
            fail(_composition_error(exc, argv, config_dir), exc, debug)

    def _task(cfg: Any) -> Any:
        dbg = debug or bool(cfg.get("debug", False)) if hasattr(cfg, "get") else debug
        setup_logging(debug=dbg)
        try:
            return task(cfg)
        except KeyboardInterrupt as exc:
            fail("interrupted", exc, dbg, code=130)
        except SystemExit:
            raise
        except Exception as exc:
            fail(error_message(exc), exc, dbg)

    main = hydra.main(config_path=str(config_dir), config_name=config_name, version_base=None)(_task)
    saved = sys.argv
    sys.argv = [saved[0] if saved else config_name, *argv]
    try:
        return main()
    finally:
        sys.argv = saved
