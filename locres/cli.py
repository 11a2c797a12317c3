"""Entry-point wrapper shared by ``infer.py``, ``train.py``, ``bench.py`` and ``data_prep/*.py``.

:func:`run_cli` composes the Hydra config from the command line, configures logging, calls the task
and turns every expected failure into **one line** ``error: ...`` on stderr with exit status 1 (130
when interrupted). A traceback is shown only with ``debug=true`` (or the
environment variable ``LOCRES_DEBUG=1``).

Hydra is kept at the edge: the config is composed first with Hydra's compose API so that a bad override
(``method=nosuch``, ``input.mapp=x``) gives a one-line error instead of Hydra's multi-line report, and
then the task runs under ``hydra.main`` so Hydra's own flags (``--cfg job``, ``-m``, ``--hydra-help``)
keep working. ``--help`` (``-h``) is answered here, before Hydra: :func:`usage_text` shows the entry
point's own docstring, the keys of its primary config with their comments and the config groups it uses
(not every group in ``configs/``). Whether Hydra changes directory or writes ``outputs/`` folders is
decided by each primary config's ``hydra:`` node (``infer.yaml`` sets ``run.dir: .``, ``output_subdir:
null``, ``job.chdir: false``).
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


def _register_resolvers() -> None:
    """``${locres_or:A,B}``: A unless it is null or empty, else B (e.g. a sweep folder under output.dir)."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("locres_or"):
        OmegaConf.register_new_resolver("locres_or", lambda a, b: b if a in (None, "", "None") else a)


_register_resolvers()

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


def first_of_sweeps(overrides: Sequence[str]) -> list[str]:
    """A multirun's overrides with each choice/range sweep cut to its first value (the rest are checked
    by Hydra itself when their job starts); interval sweeps (Optuna) are left out."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    out = []
    for o in OverridesParser.create().parse_overrides(list(overrides)):
        if not o.is_sweep_override():
            out.append(o.input_line)
            continue
        try:
            out.append(f"{o.get_key_element()}={next(iter(o.sweep_string_iterator()))}")
        except Exception:  # noqa: BLE001 - interval(...) and the like cannot be enumerated
            continue
    return out


CLUSTER_PLUGINS = ("hydra_joblib_launcher", "hydra_submitit_launcher", "hydra_optuna_sweeper")


def missing_cluster_plugins() -> list[str]:
    """The Hydra plugins of the ``cluster`` extra that cannot be imported here."""
    import importlib.util

    missing = []
    for name in CLUSTER_PLUGINS:
        try:
            found = importlib.util.find_spec(f"hydra_plugins.{name}") is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name.replace("_", "-"))
    return missing


def _cluster_error(text: str, argv: Sequence[str]) -> str | None:
    """One line naming the extra to install when a launcher/sweeper config is missing, else None."""
    if "hydra/launcher" not in text and "hydra/sweeper" not in text:
        return None
    missing = missing_cluster_plugins()
    if not missing:
        return None
    asked = [a for a in argv if a.lstrip("+~").startswith(("hydra/launcher=", "hydra/sweeper="))] or \
        [a for a in argv if a.lstrip("+~").startswith("experiment=")]
    what = " ".join(asked) or "this launcher or sweeper"
    return (f"{what} needs Hydra's launcher/sweeper plugins ({', '.join(missing)} missing), an optional "
            'extra: pip install -e ".[cluster]"')


def _composition_error(exc: BaseException, argv: Sequence[str], config_dir: Path) -> str:
    """Turn Hydra's multi-line composition report into one line, naming the bad group option."""
    text = str(exc)
    cause = exc.__cause__
    cluster = _cluster_error(f"{text} {cause or ''}", argv)
    if cluster:
        return cluster
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


HELP_FLAGS = ("--help", "-h")
_SKIP_KEYS = ("defaults", "hydra")


def _split_comment(line: str) -> tuple[str, str]:
    """``"key: value   # text"`` -> (``"key: value"``, ``"text"``)."""
    body, _, comment = line.partition(" #")
    return body.strip(), comment.strip()


def config_options(text: str) -> list[tuple[str, str, str]]:
    """(key, default, comment) for the top-level keys of a YAML config and their direct children.

    ``defaults`` and ``hydra`` are left out, and so are private keys (``_target_``, ``_partial_``).
    """
    out, top = [], None
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith(("#", "-")):
            continue
        indent = len(raw) - len(raw.lstrip())
        body, comment = _split_comment(raw)
        key, sep, value = body.partition(":")
        if not sep:
            continue
        if indent == 0:
            top = key
        if top in _SKIP_KEYS or key.startswith("_") or indent not in (0, 2):
            continue
        out.append((key if indent == 0 else f"{top}.{key}", value.strip(), comment))
    return out


def _top_keys(text: str) -> set[str]:
    return {ln.split(":", 1)[0] for ln in text.splitlines() if ln[:1].isalpha() and ":" in ln}


def _belongs(option_file: Path, primary_keys: set[str]) -> bool:
    """A ``@package _global_`` option (an experiment) belongs to the entry point whose config has every
    top-level key it sets (``configs/experiment`` holds train's and bench's experiments side by side)."""
    text = option_file.read_text()
    if "@package _global_" not in text:
        return True
    return _top_keys(text) - {"defaults"} <= primary_keys


def config_groups(text: str, config_dir: Path) -> list[tuple[str, str, str, list[str]]]:
    """(group, default option, comment, the options that fit) for the groups in a config's defaults."""
    out, in_defaults = [], False
    for raw in text.splitlines():
        if not raw.startswith((" ", "-")):
            in_defaults = raw.startswith("defaults:")
            continue
        body, comment = _split_comment(raw)
        if not in_defaults or not body.startswith("- ") or ":" not in body:
            continue
        group, _, option = (s.strip() for s in body[2:].partition(":"))
        if group.startswith("override ") or group.startswith("/"):
            continue
        out.append((group, option, comment, []))
    keys = _top_keys(text) | {g for g, *_ in out}
    for group, _, _, options in out:
        options += sorted(p.stem for p in (config_dir / group).glob("*.yaml") if _belongs(p, keys))
    return out


def usage_text(config_name: str, config_dir: str | os.PathLike, doc: str | None = None) -> str:
    """The ``--help`` text of an entry point: its docstring, its config's options and its groups."""
    config_dir = Path(config_dir)
    text = (config_dir / f"{config_name}.yaml").read_text()
    lines = [doc.strip(), ""] if doc and doc.strip() else []
    options = [(f"{k}={v}" if v else f"{k}.*", c) for k, v, c in config_options(text)]
    width = 34
    lines.append(f"Options (key=value; defaults from configs/{config_name}.yaml):")
    lines += [f"  {kv:<{width}}  {c}".rstrip() for kv, c in options]
    groups = config_groups(text, config_dir)
    if groups:
        lines += ["", "Config groups (group=option):"]
        for group, option, comment, choices in groups:
            what = f"{comment}; " if comment else ""
            lines.append(f"  {f'{group}={option}':<{width}}  {what}one of: {', '.join(choices) or '-'}")
    lines += ["", "Hydra's own flags: --hydra-help, --cfg job (show the composed config), -m (a sweep)."]
    return "\n".join(lines) + "\n"


def run_cli(
    task: Callable[[Any], Any],
    config_name: str,
    config_dir: str | os.PathLike | None = None,
    argv: Sequence[str] | None = None,
    doc: str | None = None,
) -> Any:
    """Run ``task(cfg)`` as a command-line program with one-line errors.

    Parameters
    ----------
    task : function of the composed DictConfig; its return value is returned (when it returns).
    config_name : primary config in ``config_dir`` (e.g. ``"infer"``).
    config_dir : folder of Hydra configs (default: the repository's ``configs/``).
    argv : command-line arguments (default ``sys.argv[1:]``).
    doc : the entry point's usage (its module docstring), shown by ``--help``; default: the docstring
        of ``__main__``.

    Raises
    ------
    SystemExit
        1 after printing ``error: ...`` (bad input or a bad command line), 130 on Ctrl-C.
    """
    import hydra

    from locres.core.memory import reuse_freed_memory

    reuse_freed_memory()  # large temporaries without page faults (see locres.core.memory)
    config_dir = Path(config_dir or CONFIG_DIR).resolve()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = _debug_requested(argv)
    if any(a in HELP_FLAGS for a in argv):
        main_doc = getattr(sys.modules.get("__main__"), "__doc__", None)
        sys.stdout.write(usage_text(config_name, config_dir, doc if doc is not None else main_doc))
        return None
    flags = [a for a in argv if a.startswith("-")]
    multirun = any(f in ("-m", "--multirun") for f in flags)
    if all(f in ("-m", "--multirun") for f in flags):  # check overrides before Hydra's multi-line report
        overrides = [a for a in argv if not a.startswith("-")]
        try:
            _preflight(config_name, config_dir, first_of_sweeps(overrides) if multirun else overrides)
        except Exception as exc:  # hydra raises ConfigCompositionException, OverrideParseException, ...
            fail(_composition_error(exc, overrides, config_dir), exc, debug)

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
