"""Ratings from votes: online Elo, Bradley-Terry maximum likelihood (plain and style-controlled),
bootstrap and sandwich intervals.

Pure functions, votes in and ratings out: no database, no Streamlit. The store hands over
aggregated rows `(model_a, model_b, winner, count)` (a SQL GROUP BY) for the plain fit and,
optionally, `(model_a, model_b, winner)` in time order for online Elo.
"""

from arena.ratings.board import (
    CI_METHODS,
    Leaderboard,
    ModelRow,
    PositionBias,
    StyleSummary,
    compute_leaderboard,
    position_bias,
    wilson_interval,
)
from arena.ratings.bt import (
    ALPHA,
    BASE,
    CENTRE,
    PSEUDO_COUNT,
    SCALE,
    Z95,
    bootstrap_ratings,
    bradley_terry,
    expected_score,
)
from arena.ratings.contextual import (
    DEFAULT_LAMBDA,
    FEATURES,
    StyleBattles,
    fit_style,
    style_features,
)
from arena.ratings.counts import PairCounts, aggregate, aggregate_battles
from arena.ratings.elo import elo_loop, online_elo

__all__ = [
    "ALPHA", "BASE", "CENTRE", "CI_METHODS", "DEFAULT_LAMBDA", "FEATURES", "StyleBattles",
    "StyleSummary", "fit_style", "style_features", "PSEUDO_COUNT", "SCALE", "Z95", "Leaderboard", "ModelRow",
    "PairCounts", "PositionBias", "aggregate", "aggregate_battles", "bootstrap_ratings",
    "bradley_terry", "compute_leaderboard", "elo_loop", "expected_score", "online_elo",
    "position_bias", "wilson_interval",
]  # fmt: skip
