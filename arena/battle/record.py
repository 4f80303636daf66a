"""A battle's turns and its vote, written through the store."""

from __future__ import annotations

from arena.battle.flow import Battle
from arena.errors import InputError
from arena.kinds import Outcome
from arena.store import Store


def save_turn(store: Store, battle: Battle, session_id: str | None) -> None:
    """Store the turn just answered: a new battle, a follow-up, or a regenerated last turn."""
    result_a, result_b = battle.results[-1]
    if battle.battle_id is None:
        battle.battle_id = store.save_battle(
            mode=battle.mode,
            model_a=battle.spec_a.id,
            model_b=battle.spec_b.id,
            image=battle.image,
            prompt=battle.prompts[0],
            result_a=result_a,
            result_b=result_b,
            session_id=session_id,
        )
    elif battle.replace_last:
        store.replace_last_turn(battle.battle_id, result_a, result_b)
    else:
        store.add_turn(battle.battle_id, battle.prompts[-1], result_a, result_b)


def cast_vote(store: Store, battle: Battle, outcome: Outcome, voter_id: str | None, session_id: str | None) -> None:
    """Store the battle's one vote; the names may be shown afterwards."""
    if battle.battle_id is None or not battle.last_ok:
        raise InputError("Both answers must finish without error before a vote.")
    store.record_vote(battle.battle_id, Outcome(outcome), voter_id=voter_id, session_id=session_id)
    battle.outcome = Outcome(outcome)
