"""Settings, read from the environment in one place only.

Each setting has a name, a default, help text and, for numbers, its allowed range; README.md
lists them all (`python -m arena settings` prints the same table). Every value is checked here,
once, whether it comes from the environment (Settings.from_env) or from code (Settings(...)):
a bad one is a ConfigError with one line naming the variable, the value and what is expected.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from dataclasses import field as dc_field

from arena.admin import parse_admins
from arena.clients import SECRET_MIN_CHARS, Secret, parse_trusted_proxies
from arena.errors import ConfigError
from arena.kinds import PairSampling

# Pillow's own decompression-bomb limit (PIL.Image.MAX_IMAGE_PIXELS): it refuses larger images
# whatever ARENA_MAX_PIXELS says, so a higher setting would promise what Pillow does not do.
PILLOW_MAX_PIXELS = 89_478_485


@dataclass(frozen=True)
class Range:
    """The values a numeric setting allows: from `minimum` (or strictly above it), up to
    `maximum` if there is one, and 0 as well where `zero` says what 0 means."""

    minimum: float
    maximum: float | None = None
    above: bool = False  # the minimum itself is not allowed
    zero: str | None = None  # e.g. "no limit": 0 is allowed and means this
    unit: str = ""

    def allows(self, value: float) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if value == 0 and self.zero:
            return True
        low_ok = value > self.minimum if self.above else value >= self.minimum
        return low_ok and (self.maximum is None or value <= self.maximum)

    def describe(self) -> str:
        """The range alone, for the settings table: "above 0, at most 2048"."""
        low = f"above {_num(self.minimum)}" if self.above else f"at least {_num(self.minimum)}"
        text = low if self.maximum is None else f"{low}, at most {_num(self.maximum)}"
        return f"0 = {self.zero}, else {text}" if self.zero else text

    def expected(self, kind: type) -> str:
        """What an error message says is expected: "a number above 0 (megabytes)"."""
        noun = "a whole number" if kind is int else "a number"
        low, high = _num(self.minimum), _num(self.maximum)
        if self.maximum is not None and not self.above:
            text = f"{noun} from {low} to {high}"
        else:
            text = f"{noun} above {low}" if self.above else f"{noun} of at least {low}"
            if self.maximum is not None:
                text += f" and at most {high}"
        if self.zero:
            text += f", or 0 for {self.zero}"
        return f"{text} ({self.unit})" if self.unit else text


def _num(x: float | None) -> str:
    """2048, 89478485, 0.5: every digit, never 8.94785e+07."""
    return str(int(x)) if x is not None and float(x).is_integer() else f"{x}"


def _setting(default, help: str, allowed: Range | None = None, *, check=None, repr: bool = True):
    """check(text, name) raises ConfigError for a text it refuses; repr=False: not in repr()."""
    metadata = {"help": help, "range": allowed, "check": check}
    return dc_field(default=default, repr=repr, metadata=metadata)


@dataclass(frozen=True)
class Settings:
    db_url: str = _setting("sqlite:///arena.db", "SQLAlchemy URL of the vote database")
    models: str = _setting("models.yaml", "path of the model registry (models.yaml)")
    db_auto_upgrade: bool = _setting(
        True, "run Alembic migrations to the latest schema at start-up"
    )
    max_upload_mb: float = _setting(
        20.0,
        "largest accepted image file, in MB (the shipped sample images are exempt)",
        Range(0, 2048, above=True, unit="megabytes"),
    )
    max_pixels: int = _setting(
        40_000_000,
        f"largest accepted image, in pixels (decompression-bomb guard; {PILLOW_MAX_PIXELS} is Pillow's own limit)",
        Range(4096, PILLOW_MAX_PIXELS, unit="pixels"),
    )
    max_image_side: int = _setting(
        1536,
        "images with a longer side are downscaled before the models see them "
        "(the models' processors enlarge small images, so a lower value only loses detail)",
        Range(64, unit="pixels"),
    )
    max_prompt_chars: int = _setting(
        4000, "longest accepted prompt, in characters", Range(1, unit="characters")
    )
    max_turns: int = _setting(
        5,
        "most prompts (first question plus follow-ups) in one battle",
        Range(1, unit="prompts per battle"),
    )
    pair_sampling: str = _setting(
        "active",
        "how anonymous battles draw their two models: active (toward the pairs whose next vote "
        "narrows the rating intervals most, mixed with the models.yaml weights; README: Pair "
        "sampling) or weighted (by weight alone)",
        check=lambda value, name: _choice(value, name, tuple(PairSampling)),
    )
    hub_timeout_s: float = _setting(
        10.0,
        "Hugging Face hub request timeout, in seconds",
        Range(0, 3600, above=True, unit="seconds"),
    )
    generation_timeout_s: float = _setting(
        300.0,
        "longest wait for one answer before that side errors, in seconds",
        Range(0, 86400, above=True, unit="seconds"),
    )
    preload: str = _setting(
        "none",
        "models loaded in the background as soon as the server serves its first page, so the "
        "first battle does not wait for them: none, all (every enabled model) or comma-separated "
        "models.yaml ids",
        check=lambda value, name: _preload_syntax(value, name),
    )
    battles_per_minute: int = _setting(
        10,
        "battles one browser tab, or one logged-in user, may start per minute",
        Range(1, 1_000_000, zero="no limit", unit="battles per minute"),
    )
    votes_per_hour: int = _setting(
        120,
        "votes one browser tab, and one voter (a logged-in user, else the tab), may cast per hour",
        Range(1, 1_000_000, zero="no limit", unit="votes per hour"),
    )
    votes_per_day: int = _setting(
        500,
        "votes one voter may cast per day",
        Range(1, 1_000_000, zero="no limit", unit="votes per day"),
    )
    client_battles_per_minute: int = _setting(
        60,
        "battles one client network address may start per minute (an office behind one NAT shares it)",
        Range(1, 1_000_000, zero="no limit", unit="battles per minute"),
    )
    client_votes_per_hour: int = _setting(
        600,
        "votes one client network address may cast per hour",
        Range(1, 1_000_000, zero="no limit", unit="votes per hour"),
    )
    client_votes_per_day: int = _setting(
        3000,
        "votes one client network address may cast per day",
        Range(1, 1_000_000, zero="no limit", unit="votes per day"),
    )
    require_login: bool = _setting(
        False, "battles and votes need a Streamlit login (st.login; README: [auth])"
    )
    admins: str = _setting(
        "",
        "comma-separated emails of the logged-in users (Streamlit authentication; README: Admin "
        "and login) who may open the admin pages; empty: none",
        check=parse_admins,
    )
    admin_token: Secret = _setting(
        Secret(""),
        "a token (at least 16 characters) that opens the admin pages for one browser session "
        "when typed on the Admin page; empty: none (with ARENA_ADMINS empty too, no admin page)",
        repr=False,
    )
    terms: str = _setting(
        "",
        "markdown file of terms each voter accepts once before their first upload (prompts and "
        "images may be published as a dataset); empty: none",
    )
    secret: Secret = _setting(
        Secret(""),
        "key of the hash that client addresses are stored as (at least 16 characters; "
        "every replica needs the same one); empty: a random key kept in .arena-secret "
        "beside models.yaml",
        repr=False,
    )
    categories: str = _setting(
        "",
        "YAML file of category rules (README: Categories); empty: the rules shipped in "
        "arena/categories/rules.yaml",
    )
    classifier_model: str = _setting(
        "",
        "id of a models.yaml model asked, in the background after each stored turn, which "
        "categories a battle's prompts belong to (temperature 0); empty: the rules alone",
    )
    min_category_votes: int = _setting(
        50,
        'votes a category needs before the leaderboard page\'s "best model for …" view shows it',
        Range(1, unit="votes"),
    )
    dedup_cap: int = _setting(
        10,
        "battles of the same normalised prompt on the same image that the leaderboard counts; "
        "the rest are left out (a seeded, deterministic choice)",
        Range(1, zero="no cap", unit="battles"),
    )
    dedup_rule: str = _setting(
        "cap",
        "how the duplicate cap is chosen: cap (ARENA_DEDUP_CAP) or percentile (FastChat's rule: "
        "the 99.99th percentile of how often each prompt is asked, for big arenas)",
        check=lambda value, name: _choice(value, name, ("cap", "percentile")),
    )
    trusted_proxies: str = _setting(
        "",
        "comma-separated networks of reverse proxies whose X-Forwarded-For is believed "
        "(e.g. 10.0.0.0/8, 127.0.0.1); empty: none, the connection's own address is the client's",
        check=parse_trusted_proxies,
    )

    def __post_init__(self) -> None:
        """Settings(...) built in code is held to the same rules as the environment."""
        for f in fields(self):
            value = _checked(f, getattr(self, f.name), repr(getattr(self, f.name)))
            object.__setattr__(self, f.name, value)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            name = env_name(f.name)
            if name not in environ or environ[name] == "":
                continue
            raw = environ[name]
            values[f.name] = _checked(f, _parse(f, raw), repr(raw))
        return cls(**values)


# The rate-limit settings (arena.store.limits counts them): Settings(**dict.fromkeys(LIMITS, 0))
# has none, as a benchmark or a bulk job wants.
LIMITS = (
    "battles_per_minute",
    "votes_per_hour",
    "votes_per_day",
    "client_battles_per_minute",
    "client_votes_per_hour",
    "client_votes_per_day",
)


def _choice(value: str, name: str, options: tuple[str, ...]) -> None:
    if value not in options:
        raise ConfigError(
            f"Setting {name}={value!r} is invalid: expected one of {', '.join(options)}."
        )


def _preload_syntax(value: str, name: str) -> None:
    if value.strip().lower() in ("none", "all"):
        return
    if not all(part.strip() for part in value.split(",")):
        raise ConfigError(
            f"Setting {name}={value!r} is invalid: expected none, all or comma-separated model ids."
        )


def preload_ids(text: str, known: Sequence[str], enabled: Sequence[str]) -> tuple[str, ...]:
    """ARENA_PRELOAD's models: none, the enabled ones for all, else the ids listed, each of which
    must be a models.yaml id (ConfigError naming the first that is not)."""
    word = text.strip().lower()
    if word == "none":
        return ()
    if word == "all":
        return tuple(enabled)
    ids = tuple(dict.fromkeys(part.strip() for part in text.split(",")))
    unknown = [model_id for model_id in ids if model_id not in known]
    if unknown:
        raise ConfigError(
            f"Setting {env_name('preload')}={text!r} is invalid: no model '{unknown[0]}' in "
            f"models.yaml (its ids: {', '.join(known)})."
        )
    return ids


def env_name(field_name: str) -> str:
    return "ARENA_" + field_name.upper()


def describe() -> list[tuple[str, str, str]]:
    """(environment variable, default, help with the allowed range) for every setting."""
    rows = []
    for f in fields(Settings):
        allowed = f.metadata["range"]
        help_text = f.metadata["help"] + (f"; {allowed.describe()}" if allowed else "")
        rows.append(
            (
                env_name(f.name),
                _num(f.default) if isinstance(f.default, float) else str(f.default),
                help_text,
            )
        )
    return rows


_INVALID = object()


def _parse(f, raw: str):
    """The environment's text as the setting's type, or _INVALID."""
    kind = type(f.default)
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        return _INVALID
    try:
        return kind(raw)
    except ValueError:  # "abc"; for a whole number also "1.5", "nan", "inf", "1e999"
        return _INVALID


def _checked(f, value, shown: str):
    """The value if the setting allows it (ints as float for a float setting), else ConfigError."""
    kind = type(f.default)
    allowed: Range | None = f.metadata["range"]
    ok = value is not _INVALID
    if kind is bool:
        ok = ok and isinstance(value, bool)
        expected = "true or false (or 1/0, yes/no, on/off)"
    elif kind is Secret:
        value = Secret(value) if isinstance(value, (str, bytes)) else value
        ok = ok and isinstance(value, Secret)
        ok = ok and (value.withheld or not value or len(value) >= SECRET_MIN_CHARS)
        expected = f"a text of at least {SECRET_MIN_CHARS} characters, or empty"
        shown = "'<redacted>'"  # never the value itself
    elif kind is str:
        value = os.fspath(value) if isinstance(value, os.PathLike) else value  # models=Path(...)
        ok = ok and isinstance(value, str) and (value.strip() != "" or f.default == "")
        expected = "a non-empty text"
        if ok and f.metadata.get("check"):
            f.metadata["check"](value, env_name(f.name))
    else:
        wanted = numbers.Integral if kind is int else numbers.Real
        ok = ok and isinstance(value, wanted) and not isinstance(value, bool)
        try:
            value = kind(value) if ok else value  # float() of nan/inf stays non-finite: refused
        except OverflowError:  # float(10**400)
            ok = False
        ok = ok and allowed.allows(value)
        expected = allowed.expected(kind)
    if not ok:
        raise ConfigError(f"Setting {env_name(f.name)}={shown} is invalid: expected {expected}.")
    return value
