"""What every command shares: the global options, plugin modules, the Session, errors, secrets.

The CLI never shows a traceback for an expected failure: :func:`guarded` turns every
:class:`vlmkit.VlmkitError` into one red ``error: ...`` line (exit 1, or 2 for usage and
configuration mistakes) and Ctrl-C into exit 130. ``--verbose`` adds the traceback. Every line
the CLI writes goes through :meth:`CliState.scrub`, which masks the values of secret-looking
options (and of secret-looking environment variables).
"""

from __future__ import annotations

import contextlib
import logging
import os
import traceback
import warnings
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import attrs
import typer

from vlmkit.plugins import import_plugin

if TYPE_CHECKING:
    from vlmkit.plugins import PluginFailure
    from vlmkit.session import Session

__all__ = [
    "DEFAULT_BACKEND",
    "ENV_BACKEND",
    "ENV_PLUGINS",
    "CliState",
    "guarded",
    "is_secret",
    "parse_pairs",
    "parse_sink_options",
]

log = logging.getLogger("vlmkit.cli")

ENV_BACKEND = "VLMKIT_BACKEND"
ENV_PLUGINS = "VLMKIT_PLUGINS"
ENV_CACHE = "VLMKIT_CACHE"
DEFAULT_BACKEND = "gemini-api"  # the main job of DESIGN.md: `pip install vlmkit vlmkit-gemini`
MASK = "***"
EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
_MIN_ENV_SECRET = 8  # shorter environment values ("1", "true") would mask ordinary words
_MIN_SECRET = 4  # a shorter value given as a secret is masked where it is echoed, not scrubbed


def is_secret(name: str) -> bool:
    """Whether an option or variable name looks like it holds a credential: one of its words
    is (or ends in) key, token, secret or password — ``api_key``, ``GEMINI_API_KEY``,
    ``authToken``, ``apikey``; but not ``max_soft_tokens`` (:func:`vlmkit.identity.is_credential`,
    the rule that keeps credentials out of cache keys too)."""
    from vlmkit.identity import is_credential

    return is_credential(name)


def mask_secrets(value: Any) -> Any:
    """A copy of ``value`` (nested dicts and lists) with secret-looking keys' values masked."""
    if isinstance(value, Mapping):
        return {
            k: (MASK if is_secret(str(k)) and v not in (None, "") else mask_secrets(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [mask_secrets(v) for v in value]
    return value


@attrs.define
class CliState:
    """The global options of one invocation, plus what the CLI learned along the way."""

    plugin_specs: list[str] = attrs.field(factory=list)
    strict: bool = False
    verbose: int = 0
    secrets: set[str] = attrs.field(factory=set)
    failures: list[PluginFailure] = attrs.field(factory=list)  # --plugin modules that failed
    current: str | None = None  # the input being processed, named in error messages
    _modules: list[object] | None = None
    _stop_logging: Any = None

    def __attrs_post_init__(self) -> None:
        for name, value in os.environ.items():
            if is_secret(name) and len(value) >= _MIN_ENV_SECRET:
                self.secrets.add(value)

    # -- output ---------------------------------------------------------------------------
    def scrub(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        return text

    def warn(self, message: str) -> None:
        typer.secho(self.scrub(f"warning: {message}"), fg="yellow", err=True)

    def fail(self, message: str, *, code: int, exc: BaseException | None = None) -> None:
        """Print ``error: message`` (and the traceback with --verbose) and exit with ``code``."""
        if exc is not None and self.verbose:
            trace = "".join(traceback.format_exception(exc)).rstrip()
            typer.echo(self.scrub(trace), err=True)
        typer.secho(self.scrub(f"error: {message}"), fg="red", err=True)
        raise typer.Exit(code)

    def start_logging(self) -> None:
        """(Re)install the stderr log handler for the current verbosity."""
        self.stop_logging()
        self._stop_logging = install_logging(self)

    def stop_logging(self) -> None:
        if self._stop_logging is not None:
            self._stop_logging()
            self._stop_logging = None

    # -- plugins and the session ----------------------------------------------------------
    def plugin_modules(self) -> list[object]:
        """Import the ``--plugin`` / ``$VLMKIT_PLUGINS`` modules (once); failures are recorded."""
        if self._modules is None:
            from vlmkit.errors import PluginError
            from vlmkit.plugins import PluginFailure

            self._modules = []
            for spec in self.plugin_specs:
                try:
                    self._modules.append(import_plugin(spec))
                except Exception as err:
                    if self.strict:
                        raise PluginError(f"could not import plugin {spec!r}: {err}") from err
                    log.debug("plugin %r failed to import", spec, exc_info=True)
                    self.failures.append(
                        PluginFailure(
                            plugin=spec,
                            distribution=None,
                            error=str(err) or repr(err),
                            error_type=type(err).__name__,
                        )
                    )
        return self._modules

    def session(
        self,
        backend: str | None = None,
        *,
        model: str | None = None,
        config: Mapping[str, str] | None = None,
        cache: bool = False,
        report_failures: bool = True,
    ) -> Session:
        """A Session with the installed plugins (per ``$VLMKIT_LOAD_PLUGINS``) and ours.

        With ``report_failures`` every plugin that failed to load is a warning on stderr; the
        listing commands show them in their own "problems" section instead.
        """
        from vlmkit.session import Session

        modules = self.plugin_modules()
        if report_failures:
            for failure in self.failures:
                self.warn(f"{failure}")
        if backend is not None:
            log.info(
                "backend %s, model %s, config %s, cache %s",
                backend,
                model or "(default)",
                mask_secrets(dict(config or {})),
                "on" if cache else "off",
            )
        settings: dict[str, Any] = dict(config or {})
        session = Session(
            backend,
            model=model,
            plugins=modules,
            strict=self.strict,
            cache=True if cache else None,
            **settings,
        )
        if report_failures:
            for failure in session.plugin_failures:
                self.warn(f"{failure}")
        return session


def plugin_specs(flags: Iterable[str]) -> list[str]:
    """``--plugin`` values followed by the comma-separated ``$VLMKIT_PLUGINS``, deduplicated."""
    specs = [*flags, *os.environ.get(ENV_PLUGINS, "").split(",")]
    return list(dict.fromkeys(s.strip() for s in specs if s.strip()))


# -- key=value options ----------------------------------------------------------------------
def parse_pairs(values: Iterable[str] | None, *, flag: str, state: CliState) -> dict[str, str]:
    """``["a=1", "b=x"]`` → ``{"a": "1", "b": "x"}``; values stay strings (the Session and the
    sinks convert them). Values of secret-looking keys are remembered so they are masked."""
    from vlmkit.errors import ConfigError

    pairs: dict[str, str] = {}
    for raw in values or ():
        key, sep, value = raw.partition("=")
        key = key.strip()
        if not sep or not key:
            # The text is not echoed: it may be a bare secret.
            raise ConfigError(f"{flag} takes KEY=VALUE (for example {flag} max_soft_tokens=280)")
        if is_secret(key) and len(value) >= _MIN_SECRET:
            state.secrets.add(value)
        pairs[key] = value
    return pairs


def parse_sink_options(
    values: Iterable[str] | None, sinks: Iterable[str], *, state: CliState
) -> dict[str, dict[str, str]]:
    """``["coco.mask_format=polygon"]`` → ``{"coco": {"mask_format": "polygon"}}``."""
    from vlmkit.errors import ConfigError

    chosen = list(sinks)
    options: dict[str, dict[str, str]] = {}
    for dotted, value in parse_pairs(values, flag="--sink-option", state=state).items():
        sink, sep, key = dotted.rpartition(".")
        if not sep or not sink or not key:
            raise ConfigError(
                f"--sink-option {dotted}=... names no sink; write SINK.KEY=VALUE "
                "(for example --sink-option coco.mask_format=polygon)"
            )
        if sink not in chosen:
            raise ConfigError(
                f"--sink-option {dotted}=... is for sink {sink!r}, which is not among the "
                f"--sink values ({', '.join(chosen) or 'none'})"
            )
        options.setdefault(sink, {})[key] = value
    return options


# -- logging --------------------------------------------------------------------------------
class _EchoHandler(logging.Handler):
    """Log records as ``level: message`` lines on the current stderr, secrets scrubbed."""

    def __init__(self, state: CliState, *, foreign_only: bool = False) -> None:
        super().__init__()
        self.state = state
        self.foreign_only = foreign_only
        template = "%(name)s: %(message)s" if state.verbose else "%(message)s"
        self.setFormatter(logging.Formatter(template))

    def emit(self, record: logging.LogRecord) -> None:
        ours = record.name == "vlmkit" or record.name.startswith("vlmkit.")
        if self.foreign_only and ours:
            return
        if record.name.startswith("vlmkit.plugins") and not self.state.verbose:
            return  # the CLI reports plugin failures itself
        try:
            text = f"{record.levelname.lower()}: {self.format(record)}"
        except Exception:
            self.handleError(record)
            return
        colour = "yellow" if record.levelno >= logging.WARNING else None
        typer.secho(self.state.scrub(text), fg=colour, err=True)


def install_logging(state: CliState) -> Any:
    """Send vlmkit's log records to stderr (warnings; ``-v`` info, ``-vv`` debug and other
    libraries too). Returns a function that undoes it."""
    ours = logging.getLogger("vlmkit")
    root = logging.getLogger()
    saved = (ours.level, root.level)
    handlers: list[tuple[logging.Logger, logging.Handler]] = [(ours, _EchoHandler(state))]
    ours.setLevel(
        logging.DEBUG if state.verbose >= 2 else logging.INFO if state.verbose else logging.WARNING
    )
    if state.verbose >= 2:
        handlers.append((root, _EchoHandler(state, foreign_only=True)))
        root.setLevel(logging.DEBUG)
    for logger, handler in handlers:
        logger.addHandler(handler)

    def undo() -> None:
        for logger, handler in handlers:
            logger.removeHandler(handler)
        ours.setLevel(saved[0])
        root.setLevel(saved[1])

    return undo


# -- errors ---------------------------------------------------------------------------------
@contextlib.contextmanager
def guarded(state: CliState) -> Iterator[None]:
    """Run a command body: expected failures become one clean line and an exit code."""
    from vlmkit.errors import BackendNotFound, ConfigError, UnsupportedTask, VlmkitError
    from vlmkit.plugins import PluginWarning

    usage_errors = (ConfigError, BackendNotFound, UnsupportedTask)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginWarning)  # reported by the CLI itself
        try:
            yield
        except typer.Exit:
            raise
        except KeyboardInterrupt:
            state.fail("interrupted", code=EXIT_INTERRUPTED)
        except VlmkitError as err:
            code = EXIT_USAGE if isinstance(err, usage_errors) else EXIT_ERROR
            state.fail(_where(state, str(err) or type(err).__name__), code=code, exc=err)
        except OSError as err:
            state.fail(_where(state, str(err)), code=EXIT_ERROR, exc=err)
        except Exception as err:
            state.fail(
                _where(state, f"unexpected {type(err).__name__}: {err}")
                + ("" if state.verbose else " (run with -v for the traceback)"),
                code=EXIT_ERROR,
                exc=err,
            )


def _where(state: CliState, message: str) -> str:
    if state.current and state.current not in message:
        return f"{state.current}: {message}"
    return message


def command_state(
    ctx: typer.Context, plugin: list[str] | None, strict: bool, verbose: int
) -> CliState:
    """The invocation's state, with the global options given after the command name added
    (``vlmkit detect x.jpg -v`` works like ``vlmkit -v detect x.jpg``)."""
    state = ctx.ensure_object(CliState)
    if plugin:
        state.plugin_specs = list(dict.fromkeys([*state.plugin_specs, *plugin]))
    state.strict = state.strict or strict
    if verbose:
        state.verbose += verbose
        state.start_logging()
    return state


def seconds_option(flag: str, value: str | None) -> float | None:
    """A time given on the command line (seconds, mm:ss or h:mm:ss), or None."""
    if value is None:
        return None
    from vlmkit.errors import ConfigError, ParseError
    from vlmkit.parsing import parse_timestamp

    try:
        return parse_timestamp(value)
    except ParseError:
        raise ConfigError(f"{flag} {value!r} is not a time (seconds, mm:ss or h:mm:ss)") from None
