"""Per-model figures from the stored battles, for the models page: answers served, the median
time to first token and tokens per second of those answers, and votes. One statement.

Medians are computed in the database with window functions (SQLite 3.25+ and PostgreSQL both
have them), so the page reads one row per model, not one per answer. A model's n values sorted
by rank 1..n have their middle where 2 * rank lies in [n, n + 2]: the one middle value for an odd
n, the two averaged for an even n, with no integer division (which the dialects do differently).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Float, and_, case, cast, func, select, union, union_all
from sqlalchemy.engine import Connection

from arena.store.schema import battles, turns, votes


@dataclass(frozen=True)
class ModelStats:
    model: str
    answers: int = 0  # turns where this model answered (arena.battle.sides.answer_finished)
    median_ttft: float | None = None  # seconds to the first token, over those answers
    median_tokens_per_s: float | None = None  # tokens / (total - ttft), where all three are known
    votes: int = 0  # votes on battles it took part in


def read(conn: Connection) -> dict[str, ModelStats]:
    """{model id: its ModelStats} for every model with a stored turn or vote."""
    sides = _sides()
    served = (
        select(sides.c.model, func.sum(case((sides.c.ok, 1), else_=0)).label("answers"))
        .group_by(sides.c.model)
        .cte("served")
    )
    ttft = _median(sides, sides.c.ttft, "ttft")
    rate = _median(sides, sides.c.rate, "rate")
    voted = union_all(
        select(votes.c.model_a.label("model")), select(votes.c.model_b.label("model"))
    ).subquery("voted")
    totals = (
        select(voted.c.model, func.count().label("votes")).group_by(voted.c.model).cte("totals")
    )
    models = union(select(served.c.model), select(totals.c.model)).cte("models")
    query = (
        select(
            models.c.model,
            served.c.answers,
            ttft.c.ttft,
            rate.c.rate,
            totals.c.votes,
        )
        .select_from(
            models.outerjoin(served, served.c.model == models.c.model)
            .outerjoin(ttft, ttft.c.model == models.c.model)
            .outerjoin(rate, rate.c.model == models.c.model)
            .outerjoin(totals, totals.c.model == models.c.model)
        )
        .order_by(models.c.model)
    )
    return {
        model: ModelStats(model, int(answers or 0), _float(ttft_s), _float(per_s), int(n or 0))
        for model, answers, ttft_s, per_s, n in conn.execute(query)
    }


def _sides():
    """One row per side of every stored turn: its model, whether it answered, its time to first
    token and its tokens per second (NULL where unknown or not an answer)."""
    parts = []
    for side in ("a", "b"):
        ok, ttft = turns.c[f"ok_{side}"], turns.c[f"ttft_{side}"]
        total, tokens = turns.c[f"total_{side}"], turns.c[f"tokens_{side}"]
        known = and_(ok, tokens.is_not(None), ttft.is_not(None), total > ttft)
        parts.append(
            select(
                battles.c[f"model_{side}"].label("model"),
                ok.label("ok"),
                case((ok, ttft), else_=None).label("ttft"),
                case((known, cast(tokens, Float) / (total - ttft)), else_=None).label("rate"),
            ).select_from(turns.join(battles, battles.c.id == turns.c.battle_id))
        )
    return union_all(*parts).cte("sides")


def _median(sides, column, name: str):
    """{model, <name>}: the median of `column` per model, over its non-NULL values."""
    ranked = (
        select(
            sides.c.model,
            column.label("value"),
            func.row_number().over(partition_by=sides.c.model, order_by=column).label("rank"),
            func.count().over(partition_by=sides.c.model).label("n"),
        )
        .where(column.is_not(None))
        .cte(f"{name}_ranked")
    )
    middle = and_(ranked.c.rank * 2 >= ranked.c.n, ranked.c.rank * 2 <= ranked.c.n + 2)
    return (
        select(ranked.c.model, func.avg(ranked.c.value).label(name))
        .where(middle)
        .group_by(ranked.c.model)
        .cte(name)
    )


def _float(value) -> float | None:
    return None if value is None else float(value)
