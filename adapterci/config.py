"""adapterci.yaml -> typed `Config`. Errors name the key and its line."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, PrivateAttr, ValidationError, ValidationInfo, field_validator

from adapterci import settings
from adapterci.canary.config import CanaryConfig
from adapterci.configbase import StrictModel, resolve_in_project
from adapterci.cost.config import CostConfig
from adapterci.data.config import ChecksConfig, DataConfig
from adapterci.errors import ConfigError
from adapterci.eval.config import EvalConfig
from adapterci.gate.config import GateConfig
from adapterci.harvest.config import HarvestConfig
from adapterci.ggufbase import missing
from adapterci.prompting import template_problem
from adapterci.train.config import TrainConfig, method_config_problems
from adapterci.trust import TrustConfig
from adapterci.yamlmarks import MAX_BYTES, YamlSyntaxError, line_of, load_with_lines

DEFAULT_CONFIG = "adapterci.yaml"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


class Config(StrictModel):
    """The whole adapterci.yaml."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$", description="Adapter name (lowercase); names the registry entry.")
    base_model: str = Field(description="A local directory or `.gguf` file (relative to the config), or a Hub model id.")
    base_revision: str | None = Field(None, description="Hub revision (tag, branch or commit) that pins `base_model`.")
    base_gguf_file: str | None = Field(None, description="A `.gguf` file in the Hub repo `base_model` to use as the base model (dequantized once into a cache).")
    base_upstream: str | None = Field(None, description="Hub id of the model a GGUF base was converted from (default: the GGUF's `general.source` metadata); releases name it as their base.")
    base_tokenizer: str | None = Field(None, description="A directory of tokenizer files (relative to the config) that `adapterci check` counts tokens with when a GGUF base's file is not at hand (gitignored, so absent on a CI runner; or a Hub file, not downloaded for this). Default: `base_upstream`'s tokenizer, fetched from the Hub without weights.")
    prompt_template: str = Field("alpaca", description="`alpaca`, `chat` (the tokenizer's chat template) or a Jinja template over `messages`.")
    data: DataConfig
    checks: ChecksConfig = Field(default_factory=ChecksConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    gate: GateConfig
    canary: CanaryConfig = Field(default_factory=CanaryConfig)
    cost: CostConfig = Field(default_factory=CostConfig)
    harvest: HarvestConfig = Field(default_factory=HarvestConfig)
    trust: TrustConfig = Field(default_factory=TrustConfig)
    registry: str = Field("file://.adapterci/registry", description="`file://PATH` (local registry; relative to the config) or `hf://OWNER/NAME`.")

    _path: Path = PrivateAttr()
    _root: Path = PrivateAttr()
    _lines: dict = PrivateAttr(default_factory=dict)

    @field_validator("base_model")
    @classmethod
    def _base_model(cls, value: str, info: ValidationInfo) -> str:
        base = (info.context or {}).get("base", Path.cwd())
        if not value.strip() or value.strip() in (".", "./"):
            raise ValueError("names no model: a local directory or `.gguf` file (relative to the config), or a Hub "
                             "id `OWNER/NAME`")
        if _is_gguf(value):
            resolve_in_project(value, info)  # absent: `load_config` decides, knowing `base_tokenizer`/`base_upstream`
        elif _looks_local(value, base):
            if not resolve_in_project(value, info).is_dir():
                raise ValueError(f"directory not found: {value} (local paths are relative to the config file)")
        elif not _HUB_ID.match(value):
            raise ValueError("neither a local directory nor a Hub id (`OWNER/NAME`)")
        return value

    @field_validator("prompt_template")
    @classmethod
    def _prompt_template(cls, value: str) -> str:
        if problem := template_problem(value):
            raise ValueError(problem)
        return value

    @field_validator("base_gguf_file")
    @classmethod
    def _base_gguf_file(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        if not _is_gguf(value) or value.startswith("/") or ".." in Path(value).parts:
            raise ValueError("must be the path of a `.gguf` file inside the Hub repo `base_model`")
        model = info.data.get("base_model")
        if model is not None and (_is_gguf(model) or _looks_local(model, (info.context or {}).get("base", Path.cwd()))):
            raise ValueError("needs a Hub id as `base_model` (a local GGUF file is named by `base_model` itself)")
        return value

    @field_validator("base_upstream")
    @classmethod
    def _base_upstream(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        if not _HUB_ID.match(value) or "/" not in value:
            raise ValueError("must be a Hub model id (`OWNER/NAME`)")
        model = info.data.get("base_model")
        if model is not None and not _is_gguf(model) and info.data.get("base_gguf_file") is None:
            raise ValueError("only applies to a GGUF base model (`base_model: FILE.gguf` or `base_gguf_file`)")
        return value

    @field_validator("base_tokenizer")
    @classmethod
    def _base_tokenizer(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        model = info.data.get("base_model")
        if model is not None and not _is_gguf(model) and info.data.get("base_gguf_file") is None:
            raise ValueError("only applies to a GGUF base model (`base_model: FILE.gguf` or `base_gguf_file`): "
                             "another base's tokenizer loads without its weights")
        if not resolve_in_project(value, info).is_dir():
            raise ValueError(f"directory not found: {value} (local paths are relative to the config file)")
        return value

    @field_validator("registry")
    @classmethod
    def _registry_url(cls, value: str) -> str:
        if value.startswith("file://") and len(value) > len("file://"):
            return value
        if value.startswith("hf://") and re.fullmatch(r"hf://[\w.-]+/[\w.-]+", value):
            return value
        raise ValueError("must be `file://PATH` or `hf://OWNER/NAME`")

    @property
    def path(self) -> Path:
        """The config file."""
        return self._path

    @property
    def base_dir(self) -> Path:
        """The directory relative paths are resolved against."""
        return self._path.parent

    @property
    def root(self) -> Path:
        """The repository root; no configured path may point outside it."""
        return self._root

    @property
    def workdir(self) -> Path:
        """Where adapterci keeps run directories and caches (`.adapterci/` beside the config)."""
        return self.base_dir / ".adapterci"

    def error(self, key: str, message: str) -> ConfigError:
        """A ConfigError about `key` (dotted, e.g. `train.learning_rate`) naming its line in the config file."""
        loc = tuple(int(p) if p.isdigit() else p for p in key.split("."))
        return ConfigError(_describe({"loc": loc, "msg": message, "type": "value_error"}, self._lines), str(self.path))

    def resolve(self, value: str | Path) -> Path:
        """A path from the config, resolved and checked to stay inside the repository."""
        return resolve_in_project(value, base=self.base_dir, root=self.root)

    def base_model_path(self) -> Path | None:
        """The local directory (or `.gguf` file) of the base model, or None when `base_model` is a Hub id."""
        local = _is_gguf(self.base_model) or _looks_local(self.base_model, self.base_dir)
        return self.resolve(self.base_model) if local else None

    def is_gguf(self) -> bool:
        """Whether the base model is a GGUF file (local, or `base_gguf_file` of a Hub repo)."""
        return _is_gguf(self.base_model) or self.base_gguf_file is not None

    def registry_location(self) -> str:
        """`registry` with a relative `file://` path resolved against the config's directory."""
        if self.registry.startswith("file://"):
            raw = self.registry[len("file://"):]
            return "file://" + str((self.base_dir / raw).resolve() if not raw.startswith("/") else Path(raw))
        return self.registry


def _is_gguf(value: str) -> bool:
    return value.lower().endswith(".gguf")


def _looks_local(value: str, base: Path) -> bool:
    """A path, not a Hub id: it starts like one, exists, or its first component is a directory beside the
    config (`models/nope` when `models/` exists is a missing local model, not a Hub repository)."""
    return value.startswith((".", "/", "~")) or (Path(base) / value).exists() or \
        (Path(base) / value.split("/")[0]).is_dir()


def find_repo_root(start: Path) -> Path:
    """The nearest enclosing git work tree, else `start` itself."""
    for candidate in (start, *start.parents):
        if (candidate / ".git").exists():
            return candidate
    return start


def load_config(path: str | Path = DEFAULT_CONFIG) -> Config:
    """Read, validate and resolve a config file. Raises ConfigError naming every problem at once."""
    path = Path(path).resolve()
    if not path.exists():
        raise ConfigError(f"config file not found: {path} (use --config PATH or run `adapterci init`)")
    if not path.is_file():  # a FIFO would block the read forever
        raise ConfigError("not a regular file", str(path))
    if path.stat().st_size > MAX_BYTES:
        raise ConfigError(f"the file is {path.stat().st_size:,} bytes, more than a config may have ({MAX_BYTES:,})",
                          str(path))
    try:
        text = path.read_text(encoding="utf-8")
        data, lines = load_with_lines(text)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", str(path)) from None
    except YamlSyntaxError as exc:
        where = f"line {exc.line}: " if exc.line else ""
        raise ConfigError(f"{where}YAML syntax error: {exc}", str(path)) from None
    if not isinstance(data, dict):
        raise ConfigError("the top level must be a mapping of keys", str(path))
    base = path.parent
    root = find_repo_root(base)
    try:
        cfg = Config.model_validate(data, context={"base": base, "root": root})
    except ValidationError as exc:
        raise ConfigError([_describe(err, lines) for err in exc.errors()], str(path)) from None
    problems = _absent_gguf(cfg, base, root)
    problems += [{"loc": loc, "msg": why, "type": "value_error"} for loc, why in method_config_problems(cfg)]
    problems += [{"loc": ("gate", "rules", i), "msg": why, "type": "value_error"}
                 for i, why in cfg.gate.rule_problems(cfg.eval)]
    problems += [{"loc": ("canary", "rules", i), "msg": why, "type": "value_error"}
                 for i, why in cfg.canary.rule_problems()]
    if problems:  # found here, before any model is loaded
        raise ConfigError([_describe(err, lines) for err in problems], str(path))
    cfg._path, cfg._root, cfg._lines = path, root, lines
    if override := settings.current().registry:  # the GitHub Action's `registry` input
        try:
            cfg.registry = override
        except ValidationError as exc:
            raise ConfigError(f"{settings.REGISTRY}={override!r}: {exc.errors()[0]['msg']}") from None
    if cfg.checks.max_tokens is None:
        cfg.checks.max_tokens = cfg.train.max_length
    return cfg


def _absent_gguf(cfg: Config, base: Path, root: Path) -> list[dict]:
    """A local GGUF base that is absent is a problem unless the config names a tokenizer `check` can use instead
    (`base_tokenizer`, `base_upstream`): then only the stages that need its weights refuse to run."""
    if not _is_gguf(cfg.base_model) or cfg.base_tokenizer or cfg.base_upstream or \
            resolve_in_project(cfg.base_model, base=base, root=root).is_file():
        return []
    return [{"loc": ("base_model",), "msg": missing(cfg.base_model, standin=False), "type": "value_error"}]


MISSING = {
    ("gate",): "the `gate:` section is missing: a release policy needs at least one rule in `gate.rules` "
               "(docs/gate.md); without rules every adapter would pass",
    ("gate", "rules"): "missing: a release policy needs at least one rule (docs/gate.md); without rules every "
                       "adapter would pass",
}
"""Messages for required keys whose absence needs more than "Field required"."""


def _describe(err: dict, lines: dict) -> str:
    loc = tuple(err["loc"])
    key = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in loc).replace(".[", "[")
    line = line_of(lines, loc)
    msg = err["msg"]
    if err["type"] == "missing" and loc in MISSING:
        msg = MISSING[loc]
        if len(loc) == 1:  # nowhere in the file: no line to name
            line = None
    elif err["type"] == "extra_forbidden":
        msg = "unknown key"
    elif msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    where = f"line {line}: " if line else ""
    return f"{where}`{key}`: {msg}" if key else f"{where}{msg}"
