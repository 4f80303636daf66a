"""models.yaml -> validated, frozen ModelSpec objects.

One entry per model. Common fields apply to every backend; each backend adds its own
(see README.md, "models.yaml"). Any mistake raises RegistryError with one line naming
the file, the entry and the field.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from arena.errors import RegistryError

BACKENDS = ("transformers", "openai")

# A name a model goes by (an alias, a vendor): text with something in it, spaces trimmed.
_Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
    name: str = Field(default="", description="display name; defaults to id")
    model: str = Field(min_length=1)
    max_new_tokens: int = Field(default=256, ge=1, le=32768)
    temperature: float = Field(default=0.0, ge=0.0, le=5.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    system_prompt: str | None = None
    weight: float = Field(default=1.0, ge=0.0)
    enabled: bool = True
    # Other names the model goes by and who made it: an answer that says them in an anonymous
    # battle gives the model away (arena.screening.leaks).
    aliases: tuple[_Name, ...] = ()
    vendor: _Name | None = None

    @field_validator("aliases", mode="before")
    @classmethod
    def _no_aliases(cls, value):
        """`aliases:` with nothing after it reads as null in YAML: the same as no aliases."""
        return () if value is None else value

    @property
    def display_name(self) -> str:
        return self.name or self.id


class TransformersSpec(_Spec):
    backend: Literal["transformers"]
    revision: str | None = None
    device: str = Field(default="auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"


class OpenAISpec(_Spec):
    backend: Literal["openai"]
    base_url: str = Field(pattern=r"^https?://")
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=3, ge=0, le=10)


ModelSpec = Annotated[TransformersSpec | OpenAISpec, Field(discriminator="backend")]
_adapter: TypeAdapter = TypeAdapter(ModelSpec)


@dataclass(frozen=True)
class Registry:
    path: Path
    specs: tuple[TransformersSpec | OpenAISpec, ...]

    def get(self, model_id: str) -> TransformersSpec | OpenAISpec:
        for spec in self.specs:
            if spec.id == model_id:
                return spec
        known = ", ".join(s.id for s in self.specs)
        raise RegistryError(f"{self.path}: no model with id '{model_id}' (known: {known}).")

    @property
    def enabled(self) -> list[TransformersSpec | OpenAISpec]:
        return [s for s in self.specs if s.enabled]

    @property
    def battle_pool(self) -> list[TransformersSpec | OpenAISpec]:
        """Models that anonymous battles draw from (enabled, weight > 0)."""
        return [s for s in self.enabled if s.weight > 0]

    def draw_pair(self, rng: random.Random | None = None):
        """Two different models drawn by weight, in random left/right order."""
        rng = rng or random.SystemRandom()
        pool = self.battle_pool
        if len(pool) < 2:
            raise RegistryError(
                f"{self.path}: anonymous battles need at least two enabled models with weight > 0 "
                f"(found {len(pool)})."
            )
        first = rng.choices(pool, weights=[s.weight for s in pool])[0]
        rest = [s for s in pool if s.id != first.id]
        second = rng.choices(rest, weights=[s.weight for s in rest])[0]
        pair = [first, second]
        rng.shuffle(pair)
        return pair[0], pair[1]


def load_registry(path: str | Path) -> Registry:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RegistryError(
            f"{path}: model registry not found; set ARENA_MODELS to a models.yaml."
        ) from None
    except OSError as exc:
        raise RegistryError(f"{path}: cannot read the model registry: {exc.strerror}.") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise RegistryError(f"{path}: YAML error{where}: {problem}.") from None
    entries = data.get("models") if isinstance(data, dict) else data
    if not isinstance(entries, list) or not entries:
        raise RegistryError(f"{path}: expected a 'models:' list with at least one entry.")
    specs = [_parse_entry(path, i, entry) for i, entry in enumerate(entries, start=1)]
    seen: set[str] = set()
    for i, spec in enumerate(specs, start=1):
        if spec.id in seen:
            raise RegistryError(f"{path}: entry {i}: field 'id': duplicate id '{spec.id}'.")
        seen.add(spec.id)
    return Registry(path=path, specs=tuple(specs))


def _parse_entry(path: Path, index: int, entry) -> TransformersSpec | OpenAISpec:
    if not isinstance(entry, dict):
        raise RegistryError(
            f"{path}: entry {index}: expected a mapping of fields, got {type(entry).__name__}."
        )
    label = f"entry {index}" + (
        f" (id '{entry['id']}')" if isinstance(entry.get("id"), str) else ""
    )
    backend = entry.get("backend", "transformers")
    if backend not in BACKENDS:
        raise RegistryError(
            f"{path}: {label}: field 'backend': unknown backend {backend!r}; use one of {', '.join(BACKENDS)}."
        )
    entry = {**entry, "backend": backend}
    if backend == "transformers" and isinstance(entry.get("model"), str):
        entry["model"] = resolve_model_path(path, entry["model"])
    try:
        return _adapter.validate_python(entry)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise RegistryError(
            f"{path}: {label}: {_where(err['loc'][1:])}: {_message(err)}."
        ) from None


def _where(loc: tuple) -> str:
    """`field 'aliases' item 2` for a list's second item, `field 'weight'` otherwise."""
    names = ".".join(str(p) for p in loc if not isinstance(p, int)) or "?"
    items = "".join(f" item {p + 1}" for p in loc if isinstance(p, int))
    return f"field '{names}'{items}"


def _message(err) -> str:
    kind, given = err["type"], err.get("input")
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known field (check its spelling; README lists the fields)"
    if kind == "string_type" and isinstance(given, bool | int | float):
        return f"YAML read {given!r}, not text: put the value in quotes"
    if kind == "string_type" and isinstance(given, list | dict):
        return f"expected text, got a {'list' if isinstance(given, list) else 'mapping'}"
    if kind == "string_too_short" and err.get("ctx", {}).get("min_length") == 1:
        return "must not be empty"
    if kind == "tuple_type":
        return "expected a list, e.g. [SmolVLM, SmolVLM-256M]"
    return err["msg"]


def resolve_model_path(registry_path: Path, model: str) -> str:
    """A relative local directory is taken relative to the registry file; hub ids stay as they are."""
    if model.startswith(("./", "../", "~")) or Path(model).is_absolute():
        return str((registry_path.parent / Path(model).expanduser()).resolve())
    candidate = registry_path.parent / model
    if candidate.is_dir():
        return str(candidate.resolve())
    return model
